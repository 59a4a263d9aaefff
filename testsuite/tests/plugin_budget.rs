//! The conformance plugin as `run.py` runs it: a program in hex on stdin.
//! A looping program must stop with the default instruction budget and a
//! one-line error naming its pc, not hang until the runner's timeout, in
//! every engine.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `mov r0, 0; ja -1; exit` as the suite writes programs (hex bytes).
const LOOP: &str = "b7 00 00 00 00 00 00 00 05 00 ff ff 00 00 00 00 95 00 00 00 00 00 00 00";

fn plugin(args: &[&str], program: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bpfc-conformance-plugin"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the plugin");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(program.as_bytes())
        .expect("write the program");
    drop(stdin);
    child.wait_with_output().expect("plugin output")
}

fn one_line_failure(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert_eq!(err.lines().count(), 1, "{err:?}");
    err.trim_end().to_string()
}

#[test]
fn default_budget_stops_a_loop() {
    let start = Instant::now();
    let out = plugin(&["--interp"], LOOP);
    let err = one_line_failure(&out);
    assert_eq!(
        err,
        "bpfc-conformance-plugin: instruction 1: instruction limit of 10000000 reached"
    );
    // Far below run.py's 20 s timeout, even in a debug build on a busy machine.
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}

/// Compiled code counts too: JIT and AOT stop the same loop at the same
/// block (the `ja`, a block of its own).
#[test]
fn compiled_code_has_the_default_budget() {
    let out = plugin(&["--jit"], LOOP);
    assert_eq!(
        one_line_failure(&out),
        "bpfc-conformance-plugin: instruction 1: instruction limit of 10000000 reached"
    );
    let out = plugin(&["--aot"], LOOP);
    assert_eq!(
        one_line_failure(&out),
        "bpfc-conformance-plugin: the program faulted with code 8 at instruction 1 \
         (detail 0x989680)"
    );
}

#[test]
fn explicit_budget_and_no_limit() {
    let out = plugin(&["--interp", "--max-insns", "5"], LOOP);
    assert_eq!(
        one_line_failure(&out),
        "bpfc-conformance-plugin: instruction 1: instruction limit of 5 reached"
    );
    // 0 removes the limit: a terminating program is unaffected.
    let out = plugin(
        &["--interp", "--max-insns", "0"],
        "b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00",
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0x2a\n");
    // Exactly enough instructions (mov, exit) is enough.
    let out = plugin(
        &["--interp", "--max-insns", "2"],
        "b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00",
    );
    assert!(out.status.success(), "{out:?}");
    let out = plugin(
        &["--interp", "--max-insns", "1"],
        "b7 00 00 00 2a 00 00 00 95 00 00 00 00 00 00 00",
    );
    assert!(one_line_failure(&out).ends_with("instruction 1: instruction limit of 1 reached"));
}
