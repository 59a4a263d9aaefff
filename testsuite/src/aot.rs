//! Running AOT objects: links a relocatable object produced for one of the
//! Linux targets with the C driver `harness/aot_main.c` and runs the result
//! natively or under qemu-user, returning r0 or the program's fault.
//!
//! The driver is compiled once per target per process and cached in the
//! temporary directory; each run links in a fresh directory that is removed
//! afterwards.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

mod batch;
pub use batch::{link_and_run_batch, BatchResult};

/// A Linux target the harness can link for and run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AotTarget {
    /// Target triple as given to the code generator.
    pub triple: &'static str,
    /// C compiler (and linker driver) for the target.
    pub cc: &'static str,
    /// Emulator to run the executable with; `None` runs it directly.
    pub runner: Option<&'static str>,
    /// Sysroot passed to the emulator with `-L`.
    pub sysroot: Option<&'static str>,
}

impl AotTarget {
    pub const X86_64: AotTarget = AotTarget {
        triple: "x86_64-unknown-linux-gnu",
        cc: "cc",
        runner: None,
        sysroot: None,
    };
    pub const AARCH64: AotTarget = AotTarget {
        triple: "aarch64-unknown-linux-gnu",
        cc: "aarch64-linux-gnu-gcc",
        runner: Some("qemu-aarch64"),
        sysroot: Some("/usr/aarch64-linux-gnu"),
    };
    pub const RISCV64: AotTarget = AotTarget {
        triple: "riscv64gc-unknown-linux-gnu",
        cc: "riscv64-linux-gnu-gcc",
        runner: Some("qemu-riscv64"),
        sysroot: Some("/usr/riscv64-linux-gnu"),
    };
    pub const S390X: AotTarget = AotTarget {
        triple: "s390x-unknown-linux-gnu",
        cc: "s390x-linux-gnu-gcc",
        runner: Some("qemu-s390x"),
        sysroot: Some("/usr/s390x-linux-gnu"),
    };

    /// Windows x64 (COFF objects): linked by mingw-w64, run under wine.
    pub const WINDOWS: AotTarget = AotTarget {
        triple: "x86_64-pc-windows-msvc",
        cc: "x86_64-w64-mingw32-gcc",
        runner: Some("wine"),
        sysroot: None,
    };

    /// The four Linux targets, host (x86_64) first.
    pub const LINUX: [AotTarget; 4] = [Self::X86_64, Self::AARCH64, Self::RISCV64, Self::S390X];

    /// Whether executables for this target are Windows ones (`.exe`, wine).
    pub fn is_windows(&self) -> bool {
        self.triple.contains("windows")
    }

    /// The target for `triple` (exact match, or the architecture alone for
    /// the Linux ones).
    pub fn for_triple(triple: &str) -> Option<AotTarget> {
        if triple == Self::WINDOWS.triple {
            return Some(Self::WINDOWS);
        }
        Self::LINUX.into_iter().find(|t| {
            t.triple == triple || t.triple.split('-').next() == Some(triple) || {
                // riscv64 / riscv64gc spellings.
                triple.starts_with("riscv64") && t.triple.starts_with("riscv64")
            }
        })
    }
}

/// Why an object could not be linked or run, or how its run ended badly.
#[derive(Debug, thiserror::Error)]
pub enum AotRunError {
    #[error("{tool} is not available: {reason}")]
    ToolMissing { tool: String, reason: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("compiling the driver with {tool} failed: {stderr}")]
    DriverCompile { tool: String, stderr: String },
    #[error("linking with {tool} failed: {stderr}")]
    Link { tool: String, stderr: String },
    #[error("the program faulted with code {code} at instruction {pc} (detail {detail:#x})")]
    Fault { code: u32, pc: u32, detail: u64 },
    #[error("running {program} ended with {status}: {stderr}")]
    Run {
        program: String,
        status: String,
        stderr: String,
    },
    #[error("the driver printed {stdout:?}, not a hex r0")]
    BadOutput { stdout: String },
}

/// Path of the C driver source.
pub fn driver_source() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("harness/aot_main.c")
}

/// `runtime/include`, where `bpfc_abi.h` lives.
pub fn abi_include_dir() -> PathBuf {
    crate::workspace_root().join("runtime/include")
}

/// `Ok` when the target's compiler (and emulator) can be started; the `Err`
/// says what is missing, for SKIP messages.
pub fn tool_available(target: &AotTarget) -> Result<(), String> {
    probe(target.cc, "--version")?;
    if let Some(runner) = target.runner {
        probe(runner, "--version")?;
    }
    if let Some(root) = target.sysroot {
        if !Path::new(root).is_dir() {
            return Err(format!("sysroot {root} for {} is missing", target.triple));
        }
    }
    Ok(())
}

fn probe(tool: &str, arg: &str) -> Result<(), String> {
    match Command::new(tool)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("`{tool} {arg}` ended with {s}")),
        Err(e) => Err(format!("cannot run {tool}: {e}")),
    }
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A fresh, empty directory under the system temporary directory.
fn fresh_dir(tag: &str) -> Result<PathBuf, AotRunError> {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir =
        std::env::temp_dir().join(format!("bpfc-aot-{tag}-{}-{n}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| AotRunError::Io {
        context: format!("creating {}", dir.display()),
        source,
    })?;
    Ok(dir)
}

/// Removes its directory when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

type DriverCache = Mutex<BTreeMap<&'static str, PathBuf>>;

/// The driver compiled for `target` (once per process).
fn driver_object(target: &AotTarget) -> Result<PathBuf, AotRunError> {
    static CACHE: OnceLock<DriverCache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(BTreeMap::new()));
    // A poisoned lock only means another thread panicked mid-insert; the map is still usable.
    let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(path) = map.get(target.triple) {
        if path.is_file() {
            return Ok(path.clone());
        }
    }
    let dir = fresh_dir("driver")?;
    let obj = dir.join("aot_main.o");
    let out = Command::new(target.cc)
        .args(["-O2", "-std=c99", "-Wall", "-c"])
        .arg(format!("-I{}", abi_include_dir().display()))
        .arg(driver_source())
        .arg("-o")
        .arg(&obj)
        .output()
        .map_err(|e| missing(target.cc, e))?;
    if !out.status.success() {
        return Err(AotRunError::DriverCompile {
            tool: target.cc.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    map.insert(target.triple, obj.clone());
    Ok(obj)
}

fn missing(tool: &str, e: std::io::Error) -> AotRunError {
    AotRunError::ToolMissing {
        tool: tool.to_string(),
        reason: e.to_string(),
    }
}

/// Link `object` (exporting `symbol` with the entry ABI of docs/abi.md) with
/// the driver for `target`, run it with `mem` as input memory, and return r0.
pub fn link_and_run(
    target: &AotTarget,
    object: &[u8],
    symbol: &str,
    mem: &[u8],
) -> Result<u64, AotRunError> {
    let exe = link(target, &[object], symbol)?;
    let result = run(target, &exe.1, mem, &[]);
    drop(exe);
    result
}

/// Link `object` like [`link_and_run`] and run it with r1 pointing at the
/// target's own `struct pt_regs` the driver fills (`--pt-regs`: argument
/// registers 1 to 5 hold [`PT_REGS_ARGS`], every other byte is 0xab).
pub fn link_and_run_pt_regs(
    target: &AotTarget,
    object: &[u8],
    symbol: &str,
) -> Result<u64, AotRunError> {
    let exe = link(target, &[object], symbol)?;
    let result = run(target, &exe.1, &[], &["--pt-regs"]);
    drop(exe);
    result
}

/// The argument values the driver's `--pt-regs` mode puts in pt_regs.
pub const PT_REGS_ARGS: [u64; 5] = [0x1111, 0x2222_0000, 0x3333_0000_0000, 0x44, 0x5500];

/// Link objects into an executable in a fresh directory; returns the guard and the path.
fn link(
    target: &AotTarget,
    objects: &[&[u8]],
    symbol: &str,
) -> Result<(TempDir, PathBuf), AotRunError> {
    let driver = driver_object(target)?;
    let dir = TempDir(fresh_dir("run")?);
    let mut cmd = Command::new(target.cc);
    let exe = dir.0.join(if target.is_windows() {
        "prog.exe"
    } else {
        "prog"
    });
    cmd.arg("-static").arg("-o").arg(&exe);
    cmd.arg(&driver);
    for (i, bytes) in objects.iter().enumerate() {
        let path = dir.0.join(format!("prog{i}.o"));
        std::fs::write(&path, bytes).map_err(|source| AotRunError::Io {
            context: format!("writing {}", path.display()),
            source,
        })?;
        cmd.arg(path);
    }
    cmd.arg(format!("-Wl,--defsym,bpfc_entry={symbol}"));
    let out = cmd.output().map_err(|e| missing(target.cc, e))?;
    if !out.status.success() {
        return Err(AotRunError::Link {
            tool: target.cc.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok((dir, exe))
}

/// Run a linked driver executable on `mem` and interpret its output.
fn run(target: &AotTarget, exe: &Path, mem: &[u8], args: &[&str]) -> Result<u64, AotRunError> {
    let mut cmd = match target.runner {
        Some(runner) => {
            let mut c = Command::new(runner);
            if let Some(root) = target.sysroot {
                c.arg("-L").arg(root);
            }
            if target.is_windows() {
                // A prefix of our own (made on first use), and wine's
                // diagnostics off: stderr carries the driver's fault line.
                c.env("WINEPREFIX", std::env::temp_dir().join("bpfc-wine"))
                    .env("WINEDEBUG", "-all");
            }
            c.arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.args(args);
    let program = target.runner.unwrap_or("the driver").to_string();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| missing(&program, e))?;
    if let Some(mut stdin) = child.stdin.take() {
        // The driver reads all of stdin before anything else, so this cannot deadlock.
        stdin.write_all(mem).map_err(|source| AotRunError::Io {
            context: "writing the input memory".to_string(),
            source,
        })?;
    }
    let out = child.wait_with_output().map_err(|source| AotRunError::Io {
        context: format!("waiting for {program}"),
        source,
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if out.status.code() == Some(2) {
        if let Some(fault) = parse_fault(&stderr) {
            return Err(fault);
        }
    }
    if !out.status.success() {
        return Err(AotRunError::Run {
            program,
            status: out.status.to_string(),
            stderr,
        });
    }
    stdout
        .strip_prefix("0x")
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .ok_or(AotRunError::BadOutput { stdout })
}

/// Parse the driver's `fault <code> at instruction <pc> detail <hex>` line.
fn parse_fault(stderr: &str) -> Option<AotRunError> {
    let line = stderr.lines().find(|l| l.starts_with("fault "))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let ["fault", code, "at", "instruction", pc, "detail", detail] = words[..] else {
        return None;
    };
    Some(AotRunError::Fault {
        code: code.parse().ok()?,
        pc: pc.parse().ok()?,
        detail: u64::from_str_radix(detail.strip_prefix("0x")?, 16).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fault_lines() {
        match parse_fault("fault 2 at instruction 17 detail 0x7f00") {
            Some(AotRunError::Fault {
                code: 2,
                pc: 17,
                detail: 0x7f00,
            }) => {}
            other => panic!("unexpected {other:?}"),
        }
        assert!(parse_fault("fault 2 at instruction 17").is_none());
        assert!(parse_fault("segfault").is_none());
        assert!(parse_fault("fault x at instruction 1").is_none());
    }

    #[test]
    fn finds_targets_by_triple() {
        assert_eq!(
            AotTarget::for_triple("s390x-unknown-linux-gnu"),
            Some(AotTarget::S390X)
        );
        assert_eq!(AotTarget::for_triple("aarch64"), Some(AotTarget::AARCH64));
        assert_eq!(
            AotTarget::for_triple("riscv64gc-unknown-linux-gnu"),
            Some(AotTarget::RISCV64)
        );
        assert_eq!(AotTarget::for_triple("mips-unknown-linux-gnu"), None);
    }
}
