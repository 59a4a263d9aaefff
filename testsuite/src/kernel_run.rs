//! The kernel as the oracle for whole objects: `harness/kernel_run.c`, a
//! small libbpf program, loads a `.bpf.o` into the running kernel the way
//! libbpf does (maps created, global data written, prog arrays and maps of
//! maps filled from their `values`), optionally fills maps, runs one
//! program with `BPF_PROG_TEST_RUN` and reports what the run left behind in
//! the shapes `bpfc run` uses, so that a test can put the two side by side.
//!
//! # For test authors
//!
//! ```no_run
//! use bpfc_testsuite::kernel_run::{self, KernelRun};
//! # let obj = std::path::Path::new("x.o");
//! let Some(driver) = kernel_run::driver("my_test") else { return };
//! let run = KernelRun { ctx_in: vec![0; 64], ..Default::default() };
//! let out = driver.run(obj, "prog", &run).unwrap();
//! println!("{} {}", out.retval, out.maps);
//! ```
//!
//! - [`driver`] builds the program once per test process with `cc -lbpf`
//!   (libbpf-dev). Without a C compiler or libbpf, or when the kernel cannot
//!   be asked (not root: [`crate::kernel::available`]), it prints a `SKIP:`
//!   line and returns `None`; under `BPFC_TEST_REQUIRE=all` it fails instead.
//! - [`KernelRun`] is what `BPF_PROG_TEST_RUN` gets: `ctx_in` (a
//!   `SEC("syscall")` program writes its context back, reported as
//!   `ctx_out`), `ctx_out_size` for the program types that copy a context
//!   out, `data_in`/`data_out_size` for packet programs, `repeat` (the kernel
//!   then reports the average `duration`), `cpu` (`BPF_F_TEST_RUN_ON_CPU`).
//!   `maps_in` fills maps before the run from the JSON `bpfc run --maps-in`
//!   reads (`{name: [{"key": [...], "value": [...]}, ...]}`; per-CPU maps
//!   take either `"value"` for every CPU or `"values"`), and `wait_ms`
//!   sleeps after the run before the maps are read (timer callbacks).
//! - [`KernelResult`] has `retval`, `duration`, `ctx_out`, `data_out`, every
//!   map's contents in exactly the shape `bpfc run --maps-out` writes
//!   (bpftool's dump; maps without keys left out; global data maps named by
//!   section: `.data`, `.rodata`, `.bss`), the maps user space cannot read
//!   (`map_errors`, errno by name), and the records ring buffers and perf
//!   event arrays held after the run (`records`, as `bpfc run --json`
//!   prints them: hex bytes separated by spaces, perf records prefixed with
//!   `cpu N: `).
//! - The command line of the C program is in its header comment, for running
//!   it by hand.

use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// One `BPF_PROG_TEST_RUN` of a program of an object.
#[derive(Clone, Debug, Default)]
pub struct KernelRun {
    pub ctx_in: Vec<u8>,
    pub ctx_out_size: usize,
    pub data_in: Vec<u8>,
    pub data_out_size: usize,
    /// `test.repeat` (0 and 1: one run).
    pub repeat: u32,
    /// Run on this CPU (`BPF_F_TEST_RUN_ON_CPU`).
    pub cpu: Option<u32>,
    /// Map contents to write before the run, in `bpfc run --maps-in`'s JSON.
    pub maps_in: Option<Value>,
    /// Milliseconds to wait after the run before reading the maps.
    pub wait_ms: u32,
}

/// What the kernel's run left behind.
#[derive(Clone, Debug)]
pub struct KernelResult {
    pub retval: u32,
    /// Nanoseconds per run, as the kernel measured it (0 for program types
    /// whose test run does not time).
    pub duration: u32,
    pub ctx_out: Vec<u8>,
    pub data_out: Vec<u8>,
    /// Map name to entries, as `bpfc run --maps-out` writes them.
    pub maps: Value,
    /// Maps whose elements user space cannot read, with the errno.
    pub map_errors: BTreeMap<String, i32>,
    /// Map name to records, as `bpfc run --json` prints them.
    pub records: Value,
}

/// The built `kernel_run` program.
#[derive(Clone, Debug)]
pub struct Driver {
    exe: PathBuf,
}

/// The driver, built once per process, or `None` after a skip line for
/// `test` (no cc or libbpf, or no kernel to ask).
pub fn driver(test: &str) -> Option<Driver> {
    libbpf_harness(test, "kernel_run").map(|exe| Driver { exe })
}

/// A C program of `harness/NAME.c` linked with libbpf (a driver that loads
/// objects into the running kernel), built once per process; `None` after
/// a skip line for `test` when the kernel cannot be asked or the program
/// cannot be built.
pub fn libbpf_harness(test: &str, name: &str) -> Option<PathBuf> {
    type Built = Mutex<HashMap<String, Result<PathBuf, String>>>;
    static BUILT: OnceLock<Built> = OnceLock::new();
    if !crate::kernel::available(test) {
        return None;
    }
    let built = {
        let mut map = BUILT
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.entry(name.to_string())
            .or_insert_with(|| build_harness(name))
            .clone()
    };
    match built {
        Ok(exe) => Some(exe),
        Err(why) => {
            crate::skip(test, &why);
            None
        }
    }
}

fn build_harness(name: &str) -> Result<PathBuf, String> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("harness/{name}.c"));
    let dir = std::env::temp_dir().join(format!("bpfc-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let exe = dir.join(name);
    match Command::new("cc")
        .args(["-O1", "-Wall", "-o"])
        .arg(&exe)
        .arg(&src)
        .arg("-lbpf")
        .output()
    {
        Ok(o) if o.status.success() => Ok(exe),
        Ok(o) => Err(format!(
            "cc {} -lbpf failed (libbpf-dev missing?): {}",
            src.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("cc: {e} (scripts/install-deps.sh installs it)")),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// The bytes of a `["0x01", ...]` list.
fn json_bytes(v: &Value, what: &str) -> Result<Vec<u8>, String> {
    let list = v
        .as_array()
        .ok_or_else(|| format!("{what}: not a list of bytes"))?;
    list.iter()
        .map(|x| {
            let n = match x {
                Value::String(s) => match s.strip_prefix("0x") {
                    Some(h) => u8::from_str_radix(h, 16).ok(),
                    None => s.parse().ok(),
                },
                Value::Number(n) => n.as_u64().and_then(|n| u8::try_from(n).ok()),
                _ => None,
            };
            n.ok_or_else(|| format!("{what}: {x} is not a byte"))
        })
        .collect()
}

/// `bpfc run --maps-in` JSON as the driver's `NAME KEYHEX VALUEHEX` lines.
pub fn maps_in_lines(maps: &Value) -> Result<String, String> {
    let obj = maps
        .as_object()
        .ok_or("maps_in: expected an object from map name to entries")?;
    let mut out = String::new();
    for (name, list) in obj {
        for (i, e) in list.as_array().into_iter().flatten().enumerate() {
            let what = format!("map {name} entry {i}");
            let key = json_bytes(&e["key"], &what)?;
            let value = match (e.get("value"), e.get("values")) {
                (Some(v), _) => json_bytes(v, &what)?,
                (None, Some(vs)) => {
                    let vs = vs.as_array().ok_or(format!("{what}: values"))?;
                    let mut all = Vec::new();
                    for c in vs {
                        let mut v = json_bytes(&c["value"], &what)?;
                        v.resize(v.len().div_ceil(8) * 8, 0);
                        all.extend(v);
                    }
                    all
                }
                (None, None) => return Err(format!("{what}: no value")),
            };
            let key = if key.is_empty() {
                "-".into()
            } else {
                hex(&key)
            };
            let _ = writeln!(out, "{name} {key} {}", hex(&value));
        }
    }
    Ok(out)
}

impl Driver {
    /// Load `obj` into the kernel and run its program `prog`. `Err` has the
    /// driver's message: the object refused (libbpf's log included), the
    /// test run failing, bad input.
    pub fn run(&self, obj: &Path, prog: &str, run: &KernelRun) -> Result<KernelResult, String> {
        let mut cmd = Command::new(&self.exe);
        cmd.arg(obj).arg(prog);
        if !run.ctx_in.is_empty() {
            cmd.arg("--ctx-in").arg(hex(&run.ctx_in));
        }
        if run.ctx_out_size > 0 {
            cmd.arg("--ctx-out-size").arg(run.ctx_out_size.to_string());
        }
        if !run.data_in.is_empty() {
            cmd.arg("--data-in").arg(hex(&run.data_in));
        }
        if run.data_out_size > 0 {
            cmd.arg("--data-out-size")
                .arg(run.data_out_size.to_string());
        }
        if run.repeat > 0 {
            cmd.arg("--repeat").arg(run.repeat.to_string());
        }
        if let Some(cpu) = run.cpu {
            cmd.arg("--cpu").arg(cpu.to_string());
        }
        if run.wait_ms > 0 {
            cmd.arg("--wait-ms").arg(run.wait_ms.to_string());
        }
        let _tmp;
        if let Some(maps) = &run.maps_in {
            let lines = maps_in_lines(maps)?;
            let path = std::env::temp_dir().join(format!(
                "bpfc-kernel-run-maps-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            std::fs::write(&path, lines).map_err(|e| format!("{}: {e}", path.display()))?;
            cmd.arg("--maps-in").arg(&path);
            _tmp = TempFile(path);
        }
        let out = cmd
            .output()
            .map_err(|e| format!("{}: {e}", self.exe.display()))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| format!("kernel_run printed bad JSON ({e}): {text}"))?;
        let bytes = |k: &str| -> Result<Vec<u8>, String> {
            crate::hex_decode(v[k].as_str().unwrap_or_default()).map_err(|e| format!("{k}: {e}"))
        };
        let map_errors = v["map_errors"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, e)| (k.clone(), e.as_i64().unwrap_or(0) as i32))
            .collect();
        Ok(KernelResult {
            retval: v["retval"].as_u64().unwrap_or(0) as u32,
            duration: v["duration"].as_u64().unwrap_or(0) as u32,
            ctx_out: bytes("ctx_out")?,
            data_out: bytes("data_out")?,
            maps: v["maps"].clone(),
            map_errors,
            records: v["records"].clone(),
        })
    }
}

/// Removes its file when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_in_lines_shapes() {
        let v = serde_json::json!({
            "h": [{"key": ["0x01", "0x00"], "value": ["0xff", "2"]}],
            "q": [{"key": [], "value": ["0x07"]}],
            "pc": [{"key": ["0x00"], "values": [
                {"cpu": 0, "value": ["0x01"]}, {"cpu": 1, "value": ["0x02"]}]}],
        });
        let lines = maps_in_lines(&v).unwrap();
        assert!(lines.contains("h 0100 ff02\n"), "{lines}");
        assert!(lines.contains("q - 07\n"), "{lines}");
        assert!(
            lines.contains("pc 00 01000000000000000200000000000000\n"),
            "{lines}"
        );
        assert!(maps_in_lines(&serde_json::json!({"h": [{"key": ["0x100"]}]})).is_err());
    }
}
