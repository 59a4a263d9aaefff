//! Host applications in tests: scratch directories, processes fed on
//! standard input, C hosts compiled and linked with the runtime or JIT
//! library, the C example made with its Makefile, Rust examples built with
//! cargo, and the helper and net fixtures with the inputs their programs
//! run on.

use bpfc_testsuite::packets::Frame;
use bpfc_testsuite::workspace_root;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const BPFC: &str = env!("CARGO_BIN_EXE_bpfc");

/// A fresh directory, removed when dropped (also when a test fails: the
/// linked hosts are big).
pub struct Tmp(PathBuf);

impl std::ops::Deref for Tmp {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn tmpdir(tag: &str) -> Tmp {
    let d = std::env::temp_dir().join(format!("bpfc-host-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Tmp(d)
}

/// A [`tmpdir`] for a test that needs a C compiler; `None`, after a skip
/// line (a failure under `BPFC_TEST_REQUIRE=all`), without `cc`.
pub fn cc_tmpdir(test: &str, tag: &str) -> Option<Tmp> {
    bpfc_testsuite::tool_or_skip(test, "cc", "--version").then(|| tmpdir(tag))
}

/// Run `cmd` with `stdin` as its standard input.
pub fn run(cmd: &mut Command, stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// Standard output of a command that must have succeeded (`what` names it
/// when it did not).
pub fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// valgrind, to fail with exit code 9 on an invalid access or a leak.
pub fn valgrind() -> Command {
    let mut c = Command::new("valgrind");
    c.args([
        "--leak-check=full",
        "--errors-for-leak-kinds=definite,indirect",
        "--error-exitcode=9",
        "--quiet",
    ]);
    c
}

/// The runtime's static library as cargo built it for this test (with
/// `jit`, the JIT library, `compiler/capi`: the runtime plus
/// `bpfc_object_open_file`): a dependency's staticlib is in `deps/` (the
/// copy beside the binaries is only refreshed by `cargo build -p`).
pub fn lib(jit: bool) -> PathBuf {
    let name = if jit {
        "libbpfc_jit.a"
    } else {
        "libbpfc_runtime.a"
    };
    Path::new(BPFC).parent().unwrap().join("deps").join(name)
}

/// `runtime/include`, the C headers.
pub fn include_dir() -> PathBuf {
    workspace_root().join("runtime/include")
}

/// A C program of `testsuite/harness`.
pub fn harness(name: &str) -> PathBuf {
    workspace_root().join("testsuite/harness").join(name)
}

/// `bpfc compile SRC ARGS -o OBJ`, which must succeed.
pub fn compile(src: &Path, args: &[&str], obj: &Path) {
    ok(
        run(
            Command::new(BPFC)
                .arg("compile")
                .arg(src)
                .args(args)
                .arg("-o")
                .arg(obj),
            b"",
        ),
        &format!("bpfc compile {}", src.display()),
    );
}

/// C11 `inputs` (sources, objects, flags) linked with the runtime's
/// library, or with `jit` the JIT's (`-DBPFC_HOST_JIT`), into `exe`.
pub fn link_host<S: AsRef<OsStr>>(
    exe: &Path,
    jit: bool,
    inputs: impl IntoIterator<Item = S>,
    what: &str,
) {
    ok(
        run(
            Command::new("cc")
                .args(["-O1", "-Wall", "-Werror", "-std=c11"])
                .arg(format!("-I{}", include_dir().display()))
                .args(jit.then_some("-DBPFC_HOST_JIT"))
                .args(inputs)
                .arg(lib(jit))
                .args(["-lpthread", "-ldl", "-lm", "-o"])
                .arg(exe),
            b"",
        ),
        what,
    );
}

/// Compile `fixture` and link it with the C host
/// (`testsuite/harness/host_run.c`); returns the executable.
pub fn build_host(dir: &Path, fixture: &Path, name: &str) -> PathBuf {
    let obj = dir.join(format!("{name}.o"));
    compile(fixture, &[], &obj);
    let exe = dir.join(name);
    link_host(
        &exe,
        false,
        [
            OsStr::new("-rdynamic"),
            harness("host_run.c").as_os_str(),
            obj.as_os_str(),
        ],
        "linking the host",
    );
    exe
}

/// The C host of [`build_host`] built to open object files at run time
/// (`-DBPFC_HOST_JIT`, linked with the JIT library); its first argument is
/// a `.bpf.o` path instead of a linked object's name.
pub fn build_jit_host(dir: &Path) -> PathBuf {
    let exe = dir.join("jit-host");
    link_host(&exe, true, [harness("host_run.c")], "linking the JIT host");
    exe
}

/// Copy `examples/c-host`'s sources into `dir` and `make GOAL` there
/// against this build's bpfc, headers and library (with `jit`, the JIT's),
/// `keep` the committed files make must not rebuild (the copies' times say
/// nothing), `vars` more make variables; returns `dir/GOAL`.
pub fn make_c_example(
    dir: &Path,
    goal: &str,
    keep: &[&str],
    jit: bool,
    vars: &[String],
) -> PathBuf {
    for e in std::fs::read_dir(workspace_root().join("examples/c-host")).unwrap() {
        let p = e.unwrap().path();
        // The sources, not what a make in the checkout left there.
        let name = p.file_name().unwrap().to_string_lossy();
        if name == "Makefile"
            || [".c", ".bpf.o", ".pcap", ".py"]
                .iter()
                .any(|x| name.ends_with(x))
        {
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
    }
    ok(
        run(
            Command::new("make")
                .arg("-s")
                .arg("-C")
                .arg(dir)
                .args(keep.iter().flat_map(|k| ["-o", k]))
                .arg(format!("BPFC={BPFC}"))
                .arg(format!("LIB={}", lib(jit).display()))
                .arg(format!("INCLUDE={}", include_dir().display()))
                .args(vars)
                .arg(goal),
            b"",
        ),
        &format!("make {goal} in examples/c-host"),
    );
    dir.join(goal)
}

/// `cargo SUB --offline --manifest-path MANIFEST --target-dir TARGET` with
/// `env` and without RUSTFLAGS: it must succeed without a warning.
pub fn cargo_without_warnings(sub: &str, manifest: &Path, target: &Path, env: &[(&str, &str)]) {
    let out = Command::new(env!("CARGO"))
        .args([sub, "--offline", "--manifest-path"])
        .arg(manifest)
        .arg("--target-dir")
        .arg(target)
        .envs(env.iter().copied())
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cargo {sub}: {stderr}");
    assert!(
        !stderr.contains("warning"),
        "cargo {sub} {} warns: {stderr}",
        manifest.display()
    );
}

/// Helper fixtures whose results depend on the time, randomness, the
/// process or the host's memory (they differ between any two runs).
/// `perf_output`: `bpfc run` opens a perf buffer on the perf event array
/// before the run, so outputs succeed; a host opens none, so they fail
/// with -ENOENT as in the kernel.
pub const NONDETERMINISTIC: &[&str] = &[
    "ktime",
    "prandom",
    "ids",
    "task",
    "probe_read",
    "perf_output",
];

/// `testsuite/fixtures/SUB`: the directory and the names of its objects,
/// sorted, without the [`NONDETERMINISTIC`] ones.
pub fn fixtures(sub: &str) -> (PathBuf, Vec<String>) {
    let dir = workspace_root().join("testsuite/fixtures").join(sub);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "o").then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .filter(|n| !NONDETERMINISTIC.contains(&n.as_str()))
        .collect();
    names.sort();
    (dir, names)
}

/// Eight words of a 64-bit LCG stepped from `seed`: the context a program
/// that does not run on a packet is given.
pub fn lcg_ctx(seed: &mut u64) -> Vec<u8> {
    (0..8)
        .flat_map(|_| {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed.to_le_bytes()
        })
        .collect()
}

/// The context of a network program run on a `len`-byte packet: for XDP
/// an xdp_md whose data_end is the packet's size (a zeroed one, what
/// ctx_out alone gives, is refused), for the others none.
pub fn packet_ctx(section: &str, len: usize) -> Vec<u8> {
    if section.starts_with("xdp") {
        let mut c = vec![0u8; 24];
        c[4..8].copy_from_slice(&(len as u32).to_ne_bytes());
        c
    } else {
        Vec::new()
    }
}

/// What one program of a fixture runs on: with `frames` (net fixtures),
/// each frame and its context; without, one context from `seed`.
pub fn program_inputs<'a>(
    frames: Option<&'a [Frame]>,
    section: &str,
    seed: &mut u64,
) -> Vec<(Option<&'a Frame>, Vec<u8>)> {
    match frames {
        Some(frames) => frames
            .iter()
            .map(|f| (Some(f), packet_ctx(section, f.data.len())))
            .collect(),
        None => vec![(None, lcg_ctx(seed))],
    }
}

/// The files `bpfc run` wrote: context, packet, maps.
pub struct RunFiles {
    pub ctx_out: PathBuf,
    pub data_out: PathBuf,
    pub maps_out: PathBuf,
}

/// `bpfc run OBJ --json ARGS` on `ctx` (`--ctx-in`) and, if any, `packet`
/// (`--data-in`), writing the context, the packet and the maps to files in
/// `dir`.
pub fn bpfc_run_to_files(
    dir: &Path,
    obj: &Path,
    args: &[&str],
    ctx: &[u8],
    packet: Option<&Path>,
) -> (Output, RunFiles) {
    let files = RunFiles {
        ctx_out: dir.join("ctx.out"),
        data_out: dir.join("data.out"),
        maps_out: dir.join("maps.json"),
    };
    let ctx_in = dir.join("ctx.in");
    std::fs::write(&ctx_in, ctx).unwrap();
    let mut cmd = Command::new(BPFC);
    cmd.arg("run").arg(obj).arg("--json").args(args);
    if let Some(p) = packet {
        cmd.arg("--data-in")
            .arg(p)
            .arg("--data-out")
            .arg(&files.data_out);
    }
    cmd.arg("--ctx-in")
        .arg(&ctx_in)
        .arg("--ctx-out")
        .arg(&files.ctx_out)
        .arg("--maps-out")
        .arg(&files.maps_out);
    (run(&mut cmd, b""), files)
}

/// Lower-case hex of `b`.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// A host's output `text` (`testsuite/harness/host_run.c`): the `want`
/// lines first, in order, then `map`/`skip` lines equal to the maps `bpfc
/// run` wrote to `maps_out`.
pub fn check_host_output(what: &str, text: &str, want: &[String], maps_out: &Path) {
    let mut lines = text.lines();
    for w in want {
        assert_eq!(lines.next(), Some(w.as_str()), "{what}");
    }
    super::data::compare_maps(what, lines, maps_out);
}
