//! Shared pieces of bpfc's integration tests: where the conformance suite
//! lives, how its pre-assembled programs are read, how a test skips, the
//! kernel oracle ([`kernel`], the `bpf()` syscall; [`kernel_run`], whole
//! objects loaded by libbpf and run) and raw BTF for it ([`rawbtf`]).

pub mod aot;
pub mod bpftool;
pub mod data;
pub mod gen;
/// The kernel oracle (the `bpf()` system call), shared with the runtime's tests.
pub use bpfc_oracle as kernel;
pub mod kernel_run;
#[cfg(target_os = "linux")]
pub mod kernel_verify;
pub mod mapdiff;
/// Raw BTF for the kernel oracle.
pub use bpfc_oracle::btf as rawbtf;
pub mod net;
pub mod packets;

pub use data::{parse_data, read_data, DataError, DataFile};

use std::path::PathBuf;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testsuite has a parent")
        .to_path_buf()
}

/// Where the conformance suite lives: `BPFC_CONFORMANCE_DIR` if set, else
/// `../shared/bpf_conformance` beside the checkout. A relative
/// `BPFC_CONFORMANCE_DIR` is taken from the workspace root, since cargo runs
/// each test binary in its own package directory.
pub fn conformance_dir() -> PathBuf {
    match std::env::var_os("BPFC_CONFORMANCE_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("../shared/bpf_conformance"),
    }
}

/// The conformance suite's directory, or why it cannot be used (it is not
/// where [`conformance_dir`] looks).
pub fn conformance_dir_checked() -> Result<PathBuf, String> {
    let dir = conformance_dir();
    if dir.join("programs.json").is_file() {
        return Ok(dir);
    }
    Err(format!(
        "the bpf_conformance suite is not at {} (set BPFC_CONFORMANCE_DIR)",
        dir.display()
    ))
}

/// The conformance suite's directory, or `None` after printing a skip line
/// for `test` when the suite is not there. Under `BPFC_TEST_REQUIRE=all` a
/// missing suite is a failure instead.
pub fn conformance_dir_or_skip(test: &str) -> Option<PathBuf> {
    conformance_dir_checked()
        .map_err(|why| skip(test, &why))
        .ok()
}

/// [`conformance_programs`] for a test, or `None` when the suite is missing
/// and the test may skip ([`conformance_dir_or_skip`]). A suite that is there
/// but unreadable fails the test.
pub fn conformance_programs_or_skip(test: &str) -> Option<Vec<ConformanceCase>> {
    conformance_dir_or_skip(test)?;
    Some(conformance_programs().unwrap_or_else(|e| panic!("{test}: {e}")))
}

/// Decode a hex string ("b7000000...") into bytes.
pub fn hex_decode(s: &str) -> Result<Vec<u8>, String> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !s.len().is_multiple_of(2) {
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

pub use bpfc_oracle::{require_all, skip};

/// Whether `tool arg` can be started; otherwise [`skip`]s `test`.
pub fn tool_or_skip(test: &str, tool: &str, arg: &str) -> bool {
    let found = std::process::Command::new(tool)
        .arg(arg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if !found {
        skip(
            test,
            &format!("{tool} not found (scripts/install-deps.sh installs the tests' tools)"),
        );
    }
    found
}

/// One pre-assembled case of the conformance suite (`programs.json`).
#[derive(Clone, Debug)]
pub struct ConformanceCase {
    pub name: String,
    /// Raw little-endian instructions.
    pub program: Vec<u8>,
    /// Input memory (empty when the case has none).
    pub mem: Vec<u8>,
    /// Expected r0.
    pub result: u64,
}

/// Every case of `programs.json`, in file order.
pub fn conformance_programs() -> Result<Vec<ConformanceCase>, String> {
    let path = conformance_dir().join("programs.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let list = json
        .as_array()
        .ok_or_else(|| format!("{}: not an array", path.display()))?;
    list.iter()
        .enumerate()
        .map(|(i, c)| {
            let field = |k: &str| {
                c[k].as_str()
                    .ok_or_else(|| format!("case #{i}: field `{k}` missing or not a string"))
            };
            let name = field("name")?.to_string();
            let result = field("result")?;
            Ok(ConformanceCase {
                program: hex_decode(field("program")?)
                    .map_err(|e| format!("{name}: program: {e}"))?,
                mem: hex_decode(field("mem")?).map_err(|e| format!("{name}: mem: {e}"))?,
                result: u64::from_str_radix(result.trim_start_matches("0x"), 16)
                    .map_err(|e| format!("{name}: result {result:?}: {e}"))?,
                name,
            })
        })
        .collect()
}
