//! What the CLI's integration tests share: running the `bpfc` binary and
//! reading what it printed, files in the tests' scratch directory, raw
//! programs assembled from text, and the fixtures' paths; host
//! applications built and run ([`host`]) and what runs print ([`data`]).
//! Each test crate includes this module (`mod common;`) and uses a part of
//! it.
#![allow(dead_code)]

pub mod data;
pub mod host;

use bpfc_compiler::asm::assemble;
use bpfc_compiler::isa::{encode_program, Endian};
use std::path::PathBuf;
use std::process::{Command, Output};

/// Run `bpfc` with `args`.
pub fn bpfc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bpfc"))
        .args(args)
        .output()
        .expect("bpfc runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Standard output of a command that must have succeeded.
pub fn success(o: &Output) -> String {
    assert!(o.status.success(), "{}", stderr(o));
    stdout(o)
}

/// The one line a failed command (exit 1) wrote to standard error.
pub fn one_line_error(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let err = stderr(o);
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    err.trim_end().to_string()
}

/// A path in the scratch directory, unique to the test crate (the file is
/// not created).
pub fn scratch(name: &str) -> String {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("{}-{name}", env!("CARGO_CRATE_NAME")))
        .display()
        .to_string()
}

/// `bytes` written to a scratch file; its path.
pub fn scratch_file(name: &str, bytes: &[u8]) -> String {
    let path = scratch(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// A raw little-endian program assembled from `src`, in a scratch file.
pub fn raw(name: &str, src: &str) -> String {
    let insns = assemble(src).unwrap_or_else(|e| panic!("{name}: {e}"));
    scratch_file(name, &encode_program(&insns, Endian::Little))
}

/// An object of the ELF fixtures (`testsuite/fixtures/elf`).
pub fn elf_fixture(name: &str) -> String {
    bpfc_testsuite::elf_fixture_dir()
        .join(name)
        .display()
        .to_string()
}

/// An object of the verifier corpus (`testsuite/fixtures/verifier`).
pub fn verifier_corpus(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testsuite/fixtures/verifier")
        .join(name)
        .display()
        .to_string()
}
