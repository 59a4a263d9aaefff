//! The README's map example (`testsuite/examples/letters.o`): the exact
//! command the README shows, run in both engines, prints the output the
//! README shows (the duration aside, hash entries in any order); and the running kernel,
//! given the same object and context, returns the same value and leaves
//! the same maps (hash entries compared as sets; needs root, a SKIP line
//! otherwise).

mod common;

use bpfc_testsuite::kernel_run::{self, KernelRun};
use common::data::sorted;
use common::success;
use serde_json::Value;
use std::process::Command;

/// The README's command (its words after `cargo run -p bpfc-cli --`) and
/// the output block that follows it.
fn readme_example() -> (Vec<String>, String) {
    let root = bpfc_testsuite::workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let lines: Vec<&str> = readme.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("run testsuite/examples/letters.o"))
        .expect("the README shows the letters example");
    let args = lines[at]
        .split_once("cargo run -p bpfc-cli --")
        .expect("the README runs it through cargo")
        .1
        .split_whitespace()
        .map(String::from)
        .collect();
    let first = at
        + lines[at..]
            .iter()
            .position(|l| l.starts_with("    Return value:"))
            .expect("the README shows the output");
    let out: String = lines[first..]
        .iter()
        .take_while(|l| l.starts_with("    "))
        .map(|l| format!("{}\n", &l[4..]))
        .collect();
    (args, out)
}

/// `duration: 123ns` with the number taken out.
fn without_duration(s: &str) -> String {
    let mut out = String::new();
    for line in s.lines() {
        match line.split_once("duration: ") {
            Some((head, tail)) => {
                let rest = tail.trim_start_matches(|c: char| c.is_ascii_digit());
                out += &format!("{head}duration: N{rest}\n");
            }
            None => out += &format!("{line}\n"),
        }
    }
    out
}

#[test]
fn readme_letters_example_prints_what_the_readme_shows() {
    let (args, want) = readme_example();
    let root = bpfc_testsuite::workspace_root();
    for engine in [&[][..], &["--engine", "interp"][..]] {
        let out = Command::new(env!("CARGO_BIN_EXE_bpfc"))
            .current_dir(&root)
            .args(&args)
            .args(engine)
            .output()
            .unwrap();
        let got = success(&out);
        let (got_line, got_maps) = got.split_once('\n').unwrap();
        let (want_line, want_maps) = want.split_once('\n').unwrap();
        assert_eq!(
            without_duration(got_line),
            without_duration(want_line),
            "bpfc run {args:?} {engine:?} and the README differ"
        );
        // The text as printed, but the hash map's entries in any order.
        let parse = |s: &str| -> Value { serde_json::from_str(s).unwrap() };
        assert_eq!(
            sorted(&parse(got_maps)),
            sorted(&parse(want_maps)),
            "bpfc run {args:?} {engine:?} and the README differ"
        );
        assert_eq!(got_maps.lines().count(), want_maps.lines().count());
    }
}

#[test]
fn letters_example_agrees_with_the_kernel() {
    let Some(driver) = kernel_run::driver("readme_example::letters_example_agrees_with_the_kernel")
    else {
        return;
    };
    let dir = bpfc_testsuite::workspace_root().join("testsuite/examples");
    let text = std::fs::read(dir.join("letters.txt")).unwrap();
    let run = KernelRun {
        ctx_in: text,
        ..Default::default()
    };
    let k = driver
        .run(&dir.join("letters.o"), "count", &run)
        .unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_bpfc"))
        .current_dir(&dir)
        .args([
            "run",
            "letters.o",
            "--ctx-in",
            "letters.txt",
            "--maps-out",
            "-",
            "--json",
        ])
        .output()
        .unwrap();
    let b: Value = serde_json::from_str(&success(&out)).unwrap();
    assert_eq!(b["retval"].as_u64(), Some(k.retval as u64));
    assert_eq!(sorted(&b["maps"]), sorted(&k.maps));
}
