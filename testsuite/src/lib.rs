//! Shared pieces of bpfc's integration tests: where the conformance suite
//! lives and how its pre-assembled programs are read.

pub mod aot;
pub mod data;
pub mod gen;

pub use data::{parse_data, read_data, DataError, DataFile};

use std::path::PathBuf;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testsuite has a parent")
        .to_path_buf()
}

/// `../shared/bpf_conformance` beside the checkout (override with `BPFC_CONFORMANCE_DIR`).
pub fn conformance_dir() -> PathBuf {
    std::env::var_os("BPFC_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/bpf_conformance"))
}

/// Decode a hex string ("b7000000...") into bytes.
pub fn hex_decode(s: &str) -> Result<Vec<u8>, String> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if s.len() % 2 != 0 {
        return Err(format!("odd number of hex digits ({})", s.len()));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| format!("bad hex at {i}: {e}")))
        .collect()
}

/// `testsuite/fixtures/elf`, the compiled C fixtures of the ELF loader.
pub fn elf_fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/elf")
}

/// Every `*.o` fixture, sorted by name.
pub fn elf_fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(elf_fixture_dir())
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "o"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Whether tests must not skip for a missing optional tool (`BPFC_TEST_REQUIRE=all`).
pub fn require_all() -> bool {
    std::env::var("BPFC_TEST_REQUIRE").is_ok_and(|v| v == "all")
}
