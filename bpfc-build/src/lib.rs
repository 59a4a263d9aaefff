//! `build.rs` support for Rust programs that host bpfc-compiled eBPF
//! programs, in the manner of libbpf-cargo: [`Builder`] runs clang on a
//! `.bpf.c` (when given a source), `bpfc compile` on the object for
//! cargo's `TARGET`, puts the native object in a static library cargo
//! links, and writes a typed Rust skeleton (`bpfc gen skeleton --lang
//! rust`) to include:
//!
//! ```no_run
//! // build.rs
//! bpfc_build::Builder::new()
//!     .source("src/bpf/limiter.bpf.c")
//!     .build()
//!     .unwrap();
//! ```
//! ```ignore
//! // main.rs (with bpfc-runtime as a dependency)
//! include!(concat!(env!("OUT_DIR"), "/limiter.skel.rs"));
//! let mut skel = limiter::Skel::open_and_load()?;
//! ```
//!
//! Tools: `$BPFC` (else `bpfc` on the `PATH`), `$CLANG` (else `clang`),
//! `ar`. Nothing here depends on the rest of bpfc, so build scripts stay
//! quick to compile.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a build step failed: the command and what it said.
#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// What [`Builder::build`] made.
#[derive(Debug, Clone)]
pub struct Built {
    /// The object's name (the skeleton's module, the symbols' prefix).
    pub name: String,
    /// The generated skeleton (`OUT_DIR/NAME.skel.rs`).
    pub skeleton: PathBuf,
    /// The native object (`OUT_DIR/NAME.o`).
    pub object: PathBuf,
}

/// Builds one eBPF object for a Rust host.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    source: Option<PathBuf>,
    object: Option<PathBuf>,
    name: Option<String>,
    clang_args: Vec<String>,
    out_dir: Option<PathBuf>,
    target: Option<String>,
}

impl Builder {
    pub fn new() -> Builder {
        Builder::default()
    }

    /// A `.bpf.c` to compile with clang (`-O2 -g -target bpf`).
    pub fn source(mut self, path: impl Into<PathBuf>) -> Builder {
        self.source = Some(path.into());
        self
    }

    /// A prebuilt `.bpf.o` (instead of a source).
    pub fn object(mut self, path: impl Into<PathBuf>) -> Builder {
        self.object = Some(path.into());
        self
    }

    /// The object's name (default: the file name without `.bpf.c`/`.bpf.o`).
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// More clang arguments (`-I...`).
    pub fn clang_arg(mut self, arg: impl Into<String>) -> Builder {
        self.clang_args.push(arg.into());
        self
    }

    /// Where to write (default: `$OUT_DIR`).
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Builder {
        self.out_dir = Some(dir.into());
        self
    }

    /// The target triple (default: `$TARGET`, what cargo builds for).
    pub fn target(mut self, triple: impl Into<String>) -> Builder {
        self.target = Some(triple.into());
        self
    }

    /// Compile, link and generate; prints cargo's directives.
    pub fn build(self) -> Result<Built, Error> {
        let out = match &self.out_dir {
            Some(d) => d.clone(),
            None => PathBuf::from(env("OUT_DIR")?),
        };
        let target = match &self.target {
            Some(t) => t.clone(),
            None => env("TARGET")?,
        };
        let (input, stem) = match (&self.source, &self.object) {
            (Some(src), _) => {
                println!("cargo:rerun-if-changed={}", src.display());
                let stem = stem_of(src, ".bpf.c", ".c");
                let obj = out.join(format!("{stem}.bpf.o"));
                let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
                let mut cmd = Command::new(&clang);
                cmd.args(["-O2", "-g", "-target", "bpf", "-c"])
                    .args(multiarch_include())
                    .args(&self.clang_args)
                    .arg(src)
                    .arg("-o")
                    .arg(&obj);
                run(&mut cmd)?;
                (obj, stem)
            }
            (None, Some(o)) => {
                println!("cargo:rerun-if-changed={}", o.display());
                (o.clone(), stem_of(o, ".bpf.o", ".o"))
            }
            (None, None) => return Err(Error("bpfc-build: give a source or an object".into())),
        };
        let name = self.name.clone().unwrap_or(stem);
        let bpfc = std::env::var("BPFC").unwrap_or_else(|_| "bpfc".into());
        println!("cargo:rerun-if-env-changed=BPFC");
        if Path::new(&bpfc).is_file() {
            // A new bpfc compiles differently: build again.
            println!("cargo:rerun-if-changed={bpfc}");
        }
        println!("cargo:rerun-if-env-changed=CLANG");
        let object = out.join(format!("{name}.o"));
        run(Command::new(&bpfc)
            .arg("compile")
            .arg(&input)
            .args(["--target", &rust_to_bpfc(&target), "--name", &name, "-o"])
            .arg(&object))?;
        let lib = out.join(format!("lib{name}_bpf.a"));
        let _ = std::fs::remove_file(&lib);
        run(
            Command::new(std::env::var("AR").unwrap_or_else(|_| "ar".into()))
                .arg("crs")
                .arg(&lib)
                .arg(&object),
        )?;
        println!("cargo:rustc-link-search=native={}", out.display());
        println!("cargo:rustc-link-lib=static={name}_bpf");
        let skel = run(Command::new(&bpfc)
            .args(["gen", "skeleton", "--lang", "rust", "--name", &name])
            .arg(&input))?;
        let skeleton = out.join(format!("{name}.skel.rs"));
        std::fs::write(&skeleton, skel)
            .map_err(|e| Error(format!("writing {}: {e}", skeleton.display())))?;
        Ok(Built {
            name,
            skeleton,
            object,
        })
    }
}

fn env(name: &str) -> Result<String, Error> {
    std::env::var(name).map_err(|_| {
        Error(format!(
            "bpfc-build: ${name} is not set (run from build.rs, or set it)"
        ))
    })
}

fn stem_of(p: &Path, long: &str, short: &str) -> String {
    let f = p
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let s = f
        .strip_suffix(long)
        .or_else(|| f.strip_suffix(short))
        .unwrap_or(&f);
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// bpfc's spelling of cargo's target triple.
fn rust_to_bpfc(t: &str) -> String {
    match t {
        "riscv64gc-unknown-linux-gnu" => t.into(),
        _ if t.starts_with("x86_64") && t.contains("windows") => "x86_64-pc-windows-msvc".into(),
        _ => t.into(),
    }
}

/// The multiarch include directory clang needs for `<asm/types.h>`.
fn multiarch_include() -> Vec<String> {
    let dir = format!("/usr/include/{}-linux-gnu", std::env::consts::ARCH);
    if Path::new(&dir).is_dir() {
        vec![format!("-I{dir}")]
    } else {
        Vec::new()
    }
}

fn run(cmd: &mut Command) -> Result<Vec<u8>, Error> {
    let out = cmd
        .output()
        .map_err(|e| Error(format!("running {cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(Error(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}
