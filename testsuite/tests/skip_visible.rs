//! A skipped test must be visible in a plain `cargo test`, where the
//! harness captures what tests print and a test that returns early counts as
//! passed: [`bpfc_testsuite::skip`]'s line has to reach standard error past
//! that capture. This file's `probe` test skips for a tool that does not
//! exist; the other tests run it in a child process of this test binary,
//! with the harness's capture on, and read what the child printed.

use std::process::{Command, Output};

/// Set in the child's environment; without it `probe` does nothing.
const PROBE: &str = "BPFC_SKIP_PROBE";
const MISSING_TOOL: &str = "bpfc-test-no-such-tool";

#[test]
#[ignore = "run in a child process by the other tests of skip_visible.rs"]
fn probe() {
    if std::env::var_os(PROBE).is_none() {
        return;
    }
    assert!(!bpfc_testsuite::tool_or_skip(
        "probe",
        MISSING_TOOL,
        "--version"
    ));
}

/// This binary running only `probe`, capture on, with or without
/// `BPFC_TEST_REQUIRE=all`.
fn run_probe(require_all: bool) -> (Output, String, String) {
    let mut cmd = Command::new(std::env::current_exe().expect("own path"));
    cmd.args(["--ignored", "--exact", "probe", "--test-threads=1"])
        .env(PROBE, "1")
        .env_remove("RUST_TEST_NOCAPTURE")
        .env_remove("BPFC_TEST_REQUIRE");
    if require_all {
        cmd.env("BPFC_TEST_REQUIRE", "all");
    }
    let out = cmd.output().expect("the test binary starts");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

#[test]
fn a_skip_line_gets_past_the_harness_capture_to_stderr() {
    let (out, stdout, stderr) = run_probe(false);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("test probe ... ok"), "stdout: {stdout}");
    let want = format!(
        "SKIP: probe: {MISSING_TOOL} not found (scripts/install-deps.sh installs the tests' tools)"
    );
    assert!(
        stderr.lines().any(|l| l == want),
        "no {want:?} line on stderr: {stderr:?}"
    );
}

#[test]
fn a_skip_fails_under_require_all() {
    let (out, stdout, _) = run_probe(true);
    assert_eq!(out.status.code(), Some(101), "{out:?}");
    assert!(stdout.contains("test probe ... FAILED"), "stdout: {stdout}");
    assert!(
        stdout.contains("nothing may skip with BPFC_TEST_REQUIRE=all"),
        "stdout: {stdout}"
    );
}
