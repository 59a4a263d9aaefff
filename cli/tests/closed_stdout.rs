//! Every subcommand that prints exits quietly with status 0 when its
//! standard output is a pipe nobody reads any more (`bpfc ... | head -0`).
//! The pipe's read end is closed before the child starts, so the child's
//! first write fails with EPIPE every time; no timing is involved.

use std::path::PathBuf;
use std::process::{Command, Stdio};

fn tmp(name: &str, bytes: &[u8]) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("closed-{name}"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Run bpfc with a closed pipe as stdout; return (status, stderr).
fn with_closed_stdout(args: &[&str]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_bpfc"))
        .args(args)
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .expect("run bpfc");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn closed_stdout_is_a_quiet_success() {
    // mov r0, 7; exit
    let prog = tmp(
        "prog.bin",
        &[0xb7, 0, 0, 0, 7, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0],
    );
    let p = prog.to_str().unwrap();
    let elf = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testsuite/fixtures/elf/calls.o");
    let e = elf.to_str().unwrap();
    let commands: Vec<Vec<&str>> = vec![
        vec!["run", p, "--engine", "interp"],
        vec!["run", p, "--engine", "interp", "--json"],
        vec!["run", p],
        vec!["disasm", p],
        vec!["disasm", e],
        vec!["dump", p],
        vec!["dump", e],
        vec!["dump", e, "--json"],
        vec!["dump", p, "--clif"],
        vec!["targets"],
    ];
    for args in commands {
        let (status, stderr) = with_closed_stdout(&args);
        assert_eq!(
            (status, stderr.as_str()),
            (Some(0), ""),
            "bpfc {}",
            args.join(" ")
        );
    }
}

#[test]
fn errors_still_fail_with_closed_stdout() {
    let (status, stderr) = with_closed_stdout(&["run", "/nonexistent/bpfc-prog.bin"]);
    assert_eq!(status, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        stderr.starts_with("bpfc: error: /nonexistent/bpfc-prog.bin"),
        "{stderr}"
    );
}
