//! What the loader's corpus tests share: the corpora (objects of Debian
//! packages nobody on this project wrote, and the fixtures rebuilt by GCC),
//! BPF objects pulled out of the binaries that embed them, libbpf's view of
//! an object (through `harness/libbpf_dump.c`), and the comparison of loaded
//! instructions with `llvm-objdump-19 -dr`.

#![allow(dead_code)]

pub mod objdump;

use bpfc_testsuite::{elf_fixture_dir, skip};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Where an object of a corpus comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// A `.o` file or an object embedded in a binary of xdp-tools or libxdp1.
    Xdp,
    /// An `.elf` file under cilium/ebpf's testdata.
    Cilium,
    /// The object a libbpf-tools binary embeds (its skeleton).
    LibbpfTools,
    /// A fixture of this project built by GCC (`fixtures/elf/gcc`).
    Gcc,
}

/// One object of a corpus.
#[derive(Clone, Debug)]
pub struct CorpusObject {
    pub source: Source,
    /// A name for messages: the file, or `binary[n]` for an embedded one.
    pub name: String,
    /// The object file (for embedded objects, a copy in the temporary directory).
    pub path: PathBuf,
}

/// The files of an installed Debian package, or `None` after a skip line.
fn package_files(test: &str, package: &str) -> Option<Vec<PathBuf>> {
    match Command::new("dpkg").args(["-L", package]).output() {
        Ok(o) if o.status.success() => Some(
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(PathBuf::from)
                .filter(|p| p.is_file())
                .collect(),
        ),
        _ => {
            skip(test, &format!("Debian package {package} is not installed"));
            None
        }
    }
}

/// The BPF ELF objects (64-bit, EM_BPF) a file embeds, each as the bytes
/// from its header to the end of its section header table.
pub fn embedded_objects(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(at) = data[i..]
        .windows(5)
        .position(|w| w == b"\x7fELF\x02")
        .map(|p| p + i)
    {
        i = at + 4;
        let h = &data[at..];
        if h.len() < 64 {
            break;
        }
        let le = h[5] == 1;
        let u16_at = |o: usize| {
            let b = [h[o], h[o + 1]];
            if le {
                u16::from_le_bytes(b)
            } else {
                u16::from_be_bytes(b)
            }
        };
        let u64_at = |o: usize| {
            let b: [u8; 8] = h[o..o + 8].try_into().unwrap();
            if le {
                u64::from_le_bytes(b)
            } else {
                u64::from_be_bytes(b)
            }
        };
        if u16_at(18) != 247 {
            continue;
        }
        let end = u64_at(0x28) as usize + u16_at(0x3c) as usize * 64;
        if end <= h.len() {
            out.push(h[..end].to_vec());
        }
    }
    out
}

/// Where extracted objects and the libbpf driver go: one directory per test
/// binary under cargo's scratch space, reused (and overwritten) by the next
/// run instead of a new directory per process left in /tmp.
fn scratch_dir() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("loader-corpus-{}", env!("CARGO_CRATE_NAME")));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Write the objects `binary` embeds into the scratch directory.
fn extract(source: Source, binary: &Path, out: &mut Vec<CorpusObject>) {
    let data = std::fs::read(binary).unwrap();
    let stem = binary.file_name().unwrap().to_string_lossy().into_owned();
    for (n, obj) in embedded_objects(&data).into_iter().enumerate() {
        let path = scratch_dir().join(format!("{stem}.{n}.bpf.o"));
        std::fs::write(&path, obj).unwrap();
        out.push(CorpusObject {
            source,
            name: format!("{}[{n}]", binary.display()),
            path,
        });
    }
}

fn is_elf(p: &Path) -> bool {
    std::fs::read(p).is_ok_and(|b| b.starts_with(b"\x7fELF"))
}

/// The corpora (docs: README, "Corpora"), or `None` when a package is
/// missing (a skip line, a failure under `BPFC_TEST_REQUIRE=all`).
pub fn corpus(test: &str) -> Option<Vec<CorpusObject>> {
    let mut out = Vec::new();
    for package in ["xdp-tools", "libxdp1"] {
        for f in package_files(test, package)? {
            let name = f.to_string_lossy();
            if name.ends_with(".o") {
                out.push(CorpusObject {
                    source: Source::Xdp,
                    name: name.into_owned(),
                    path: f,
                });
            } else if !name.contains("/share/") && is_elf(&f) {
                extract(Source::Xdp, &f, &mut out);
            }
        }
    }
    for f in package_files(test, "golang-github-cilium-ebpf-dev")? {
        if f.extension().is_some_and(|e| e == "elf") {
            out.push(CorpusObject {
                source: Source::Cilium,
                name: f.display().to_string(),
                path: f,
            });
        }
    }
    for f in package_files(test, "libbpf-tools")? {
        if !f.to_string_lossy().contains("/share/") && is_elf(&f) {
            extract(Source::LibbpfTools, &f, &mut out);
        }
    }
    let gcc = elf_fixture_dir().join("gcc");
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(&gcc)
        .unwrap_or_else(|e| panic!("{}: {e}", gcc.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "o"))
        // Built without BTF to be refused (loader_gcc.rs checks the error).
        .filter(|p| !p.ends_with("nobtf_maps_common.o"))
        .collect();
    fixtures.sort();
    for f in fixtures {
        out.push(CorpusObject {
            source: Source::Gcc,
            name: f.display().to_string(),
            path: f,
        });
    }
    Some(out)
}

/// The libbpf driver, built once per process with the system's libbpf
/// (libbpf-dev), or `None` after a skip line.
pub fn libbpf_dump(test: &str) -> Option<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("harness/libbpf_dump.c");
        let exe = scratch_dir().join("libbpf_dump");
        match Command::new("cc")
            .arg("-O1")
            .arg("-o")
            .arg(&exe)
            .arg(&src)
            .arg("-lbpf")
            .output()
        {
            Ok(o) if o.status.success() => Ok(exe),
            Ok(o) => Err(format!(
                "cc -lbpf failed (libbpf-dev missing?): {}",
                String::from_utf8_lossy(&o.stderr)
            )),
            Err(e) => Err(format!("cc: {e}")),
        }
    });
    match built {
        Ok(p) => Some(p.clone()),
        Err(e) => {
            skip(test, e);
            None
        }
    }
}

/// What libbpf says about an object: its programs, or why it cannot open it.
pub fn libbpf_programs(driver: &Path, obj: &Path) -> Result<Vec<(String, String)>, String> {
    let out = Command::new(driver).arg(obj).output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("prog "))
        .map(|l| {
            let (n, s) = l.split_once(' ').unwrap();
            (n.to_string(), s.to_string())
        })
        .collect())
}

/// One instruction slot as libbpf gave it to the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawInsn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
    /// For a map load, the map's name.
    pub map: Option<String>,
}

/// Each program libbpf loaded (alone) into the kernel with CO-RE against
/// `btf`, and its final instructions; the programs the kernel refused, with
/// the error number.
pub struct LibbpfLoad {
    pub loaded: BTreeMap<String, Vec<RawInsn>>,
    pub refused: Vec<(String, i32)>,
}

pub fn libbpf_load(driver: &Path, obj: &Path, btf: &Path) -> Result<LibbpfLoad, String> {
    let out = Command::new(driver).arg(obj).arg(btf).output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let mut r = LibbpfLoad {
        loaded: BTreeMap::new(),
        refused: Vec::new(),
    };
    let mut cur: Option<String> = None;
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = l.split(' ').collect();
        match f.as_slice() {
            ["prog", name, _] => {
                r.loaded.insert(name.to_string(), Vec::new());
                cur = Some(name.to_string());
            }
            ["refused", name, _, err] => {
                r.refused.push((name.to_string(), err.parse().unwrap()));
                cur = None;
            }
            ["insn", _, code, dst, src, off, imm, map @ ..] => {
                let name = cur.as_ref().expect("insn outside a program");
                r.loaded.get_mut(name).unwrap().push(RawInsn {
                    code: code.parse().unwrap(),
                    dst: dst.parse().unwrap(),
                    src: src.parse().unwrap(),
                    off: off.parse().unwrap(),
                    imm: imm.parse().unwrap(),
                    map: map.first().map(|m| m.to_string()),
                });
            }
            _ => panic!("libbpf_dump printed {l:?}"),
        }
    }
    Ok(r)
}

/// Whether this process may load programs into the kernel.
pub fn can_load_bpf() -> bool {
    // Root: the kernel checks CAP_BPF/CAP_SYS_ADMIN; effective uid 0 has them here.
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
    })
}
