//! Host applications through the C library: every helper fixture is
//! compiled with `bpfc compile` into a self-describing object, linked with
//! a C host (`testsuite/harness/host_run.c`) and `libbpfc_runtime.a`, and
//! run; its return value, context and map contents must equal `bpfc run`'s
//! (the JIT) on the same object and context. The same host linked with
//! `libbpfc_jit.a` opens the `.bpf.o` files at run time and must give what
//! the linked objects give, as must a Rust host's `HostObject` from either
//! path.

use bpfc_compiler::loader::Object;
use bpfc_testsuite::{tool_or_skip, workspace_root};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BPFC: &str = env!("CARGO_BIN_EXE_bpfc");

/// A fresh directory, removed when dropped (also when a test fails: the
/// linked hosts are big).
struct Tmp(PathBuf);

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

fn tmpdir(tag: &str) -> Tmp {
    let d = std::env::temp_dir().join(format!("bpfc-host-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Tmp(d)
}

/// The runtime's static library as cargo built it for this test: a
/// dependency's staticlib is in `deps/` (the copy beside the binaries is
/// only refreshed by `cargo build -p bpfc-runtime`).
pub fn runtime_lib() -> PathBuf {
    Path::new(BPFC)
        .parent()
        .unwrap()
        .join("deps/libbpfc_runtime.a")
}

/// The JIT library (`compiler/capi`: the runtime plus
/// `bpfc_object_open_file`), built beside the runtime's.
pub fn jit_lib() -> PathBuf {
    Path::new(BPFC).parent().unwrap().join("deps/libbpfc_jit.a")
}

/// The C host of [`build_host`] built to open object files at run time
/// (`-DBPFC_HOST_JIT`, linked with the JIT library); its first argument is
/// a `.bpf.o` path instead of a linked object's name.
pub fn build_jit_host(dir: &Path) -> PathBuf {
    let exe = dir.join("jit-host");
    let inc = workspace_root().join("runtime/include");
    ok(
        run(
            Command::new("cc")
                .args(["-O1", "-Wall", "-Werror", "-std=c11", "-DBPFC_HOST_JIT"])
                .arg(format!("-I{}", inc.display()))
                .arg(workspace_root().join("testsuite/harness/host_run.c"))
                .arg(jit_lib())
                .args(["-lpthread", "-ldl", "-lm", "-o"])
                .arg(&exe),
            b"",
        ),
        "linking the JIT host",
    );
    exe
}

fn run(cmd: &mut Command, stdin: &[u8]) -> std::process::Output {
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

fn ok(out: std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Compile `fixture` and link it with the C host; returns the executable.
pub fn build_host(dir: &Path, fixture: &Path, name: &str) -> PathBuf {
    let obj = dir.join(format!("{name}.o"));
    ok(
        run(
            Command::new(BPFC)
                .arg("compile")
                .arg(fixture)
                .arg("-o")
                .arg(&obj),
            b"",
        ),
        "bpfc compile",
    );
    let exe = dir.join(name);
    let inc = workspace_root().join("runtime/include");
    ok(
        run(
            Command::new("cc")
                .args(["-O1", "-Wall", "-Werror", "-std=c11", "-rdynamic"])
                .arg(format!("-I{}", inc.display()))
                .arg(workspace_root().join("testsuite/harness/host_run.c"))
                .arg(&obj)
                .arg(runtime_lib())
                .args(["-lpthread", "-ldl", "-lm", "-o"])
                .arg(&exe),
            b"",
        ),
        "linking the host",
    );
    exe
}

/// Hex of a JSON array of "0x.." strings.
fn hex_of(v: &serde_json::Value) -> String {
    v.as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap().trim_start_matches("0x").to_string())
        .collect()
}

/// `bpfc run --maps-out` as the host prints maps: name -> lines.
fn json_maps(v: &serde_json::Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for (name, elems) in v.as_object().unwrap() {
        let mut set = BTreeSet::new();
        for e in elems.as_array().unwrap() {
            let key = hex_of(&e["key"]);
            let value = match e.get("values") {
                Some(per_cpu) => per_cpu
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| {
                        let mut h = hex_of(&c["value"]);
                        while !h.len().is_multiple_of(16) {
                            h.push_str("00");
                        }
                        h
                    })
                    .collect(),
                None => hex_of(&e["value"]),
            };
            set.insert(format!("{key} {value}"));
        }
        out.insert(name.clone(), set);
    }
    out
}

/// Fixtures whose results depend on the time, randomness, the process or
/// the host's memory (they differ between any two runs).
/// `perf_output`: `bpfc run` opens a perf buffer on the perf event array
/// before the run, so outputs succeed; the host opens none, so they fail
/// with -ENOENT as in the kernel.
const NONDETERMINISTIC: &[&str] = &[
    "ktime",
    "prandom",
    "ids",
    "task",
    "probe_read",
    "perf_output",
];

#[test]
fn c_host_runs_fixtures_as_bpfc_run() {
    if !tool_or_skip("c_host_runs_fixtures_as_bpfc_run", "cc", "--version") {
        return;
    }
    let dir = tmpdir("fixtures");
    let fixtures = workspace_root().join("testsuite/fixtures/helpers");
    let mut names: Vec<String> = std::fs::read_dir(&fixtures)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "o").then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .filter(|n| !NONDETERMINISTIC.contains(&n.as_str()))
        .collect();
    names.sort();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let (mut compared, mut timers) = (0, 0);
    for name in &names {
        let path = fixtures.join(format!("{name}.o"));
        let obj = Object::parse(&std::fs::read(&path).unwrap()).unwrap();
        let exe = build_host(&dir, &path, name);
        for prog in &obj.programs {
            let ctx: Vec<u8> = (0..8)
                .flat_map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    seed.to_le_bytes()
                })
                .collect();
            let what = format!("{name} {}", prog.name);
            let ctx_in = dir.join("ctx.in");
            let ctx_out = dir.join("ctx.out");
            let maps_out = dir.join("maps.json");
            std::fs::write(&ctx_in, &ctx).unwrap();
            // Timer fixtures: both wait for the callbacks (AOT code's
            // callbacks fire on the runtime's timer thread).
            let wait = if name.starts_with("timer") {
                "100"
            } else {
                "0"
            };
            let jit = run(
                Command::new(BPFC)
                    .arg("run")
                    .arg(&path)
                    .args(["--program", &prog.name, "--json", "--ctx-in"])
                    .arg(&ctx_in)
                    .arg("--ctx-out")
                    .arg(&ctx_out)
                    .arg("--maps-out")
                    .arg(&maps_out)
                    .args(["--wait-ms", wait]),
                b"",
            );
            let host = run(
                Command::new(&exe)
                    .args([name.as_str(), &prog.name])
                    .env("BPFC_HOST_WAIT_MS", wait),
                &ctx,
            );
            let text = String::from_utf8_lossy(&host.stdout).into_owned();
            if !jit.status.success() {
                // Both refuse or stop the run.
                assert!(
                    text.starts_with("error "),
                    "{what}: bpfc run failed ({}), the host did not: {text}",
                    String::from_utf8_lossy(&jit.stderr)
                );
                continue;
            }
            assert!(
                host.status.success(),
                "{what}: {text}{}",
                String::from_utf8_lossy(&host.stderr)
            );
            let v: serde_json::Value = serde_json::from_slice(&jit.stdout).unwrap();
            let r0 = v["r0"].as_u64().unwrap();
            let mut lines = text.lines();
            assert_eq!(
                lines.next(),
                Some(format!("retval {r0:#x}").as_str()),
                "{what}"
            );
            let ctx_after = std::fs::read(&ctx_out).unwrap();
            let ctx_hex: String = ctx_after.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(
                lines.next(),
                Some(format!("ctx {ctx_hex}").as_str()),
                "{what}"
            );
            compare_maps(&what, lines, &maps_out);
            compared += 1;
            timers += name.starts_with("timer") as usize;
        }
        let _ = std::fs::remove_file(&exe);
    }
    assert!(compared >= 20, "only {compared} runs compared");
    assert!(timers >= 2, "the timer fixtures did not run in the C host");
}

/// The host's `map`/`skip` lines against `bpfc run --maps-out`'s file.
fn compare_maps<'a>(what: &str, lines: impl Iterator<Item = &'a str>, maps_out: &Path) {
    let mut got: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut skipped = BTreeSet::new();
    for l in lines {
        let w: Vec<&str> = l.split(' ').collect();
        match w[..] {
            ["map", m, k, v] => {
                got.entry(m.to_string())
                    .or_default()
                    .insert(format!("{k} {v}"));
            }
            ["skip", m] => {
                skipped.insert(m.to_string());
            }
            _ => panic!("{what}: unexpected line {l:?}"),
        }
    }
    let want = json_maps(&serde_json::from_slice(&std::fs::read(maps_out).unwrap()).unwrap());
    for (m, elems) in &want {
        if skipped.contains(m) {
            continue;
        }
        let empty = BTreeSet::new();
        assert_eq!(got.get(m).unwrap_or(&empty), elems, "{what}: map {m}");
    }
    for m in got.keys() {
        assert!(
            want.contains_key(m),
            "{what}: map {m} is not in bpfc run's output"
        );
    }
}

#[test]
fn c_host_test_runs_network_programs_as_bpfc_run() {
    let test = "c_host_test_runs_network_programs_as_bpfc_run";
    if !tool_or_skip(test, "cc", "--version") {
        return;
    }
    let dir = tmpdir("net");
    let fixtures = workspace_root().join("testsuite/fixtures/net");
    let frames = bpfc_testsuite::packets::frames(0x5eed, 10);
    let mut names: Vec<String> = std::fs::read_dir(&fixtures)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "o").then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    let (mut compared, mut refused) = (0, 0);
    for name in &names {
        let path = fixtures.join(format!("{name}.o"));
        let obj = Object::parse(&std::fs::read(&path).unwrap()).unwrap();
        let exe = build_host(&dir, &path, name);
        for prog in &obj.programs {
            for (i, frame) in frames.iter().enumerate() {
                let what = format!("{name} {} frame {i} ({})", prog.name, frame.what);
                let pkt = dir.join("pkt.bin");
                std::fs::write(&pkt, &frame.data).unwrap();
                // XDP: an xdp_md whose data_end is the packet's size (a
                // zeroed one, what ctx_out alone gives, is refused).
                let ctx: Vec<u8> = if prog.section.starts_with("xdp") {
                    let mut c = vec![0u8; 24];
                    c[4..8].copy_from_slice(&(frame.data.len() as u32).to_ne_bytes());
                    c
                } else {
                    Vec::new()
                };
                let ctx_in = dir.join("ctx.in");
                std::fs::write(&ctx_in, &ctx).unwrap();
                let (data_out, ctx_out, maps_out) = (
                    dir.join("data.out"),
                    dir.join("ctx.out"),
                    dir.join("maps.json"),
                );
                let jit = run(
                    Command::new(BPFC)
                        .arg("run")
                        .arg(&path)
                        .args(["--program", &prog.name, "--json", "--data-in"])
                        .arg(&pkt)
                        .arg("--ctx-in")
                        .arg(&ctx_in)
                        .arg("--data-out")
                        .arg(&data_out)
                        .arg("--ctx-out")
                        .arg(&ctx_out)
                        .arg("--maps-out")
                        .arg(&maps_out),
                    b"",
                );
                let host = run(Command::new(&exe).arg(name).arg(&prog.name).arg(&pkt), &ctx);
                let text = String::from_utf8_lossy(&host.stdout).into_owned();
                if !jit.status.success() {
                    assert!(
                        text.starts_with("error "),
                        "{what}: bpfc run failed ({}), the host did not: {text}",
                        String::from_utf8_lossy(&jit.stderr)
                    );
                    eprintln!("{what}: both refuse: {}", text.trim());
                    refused += 1;
                    continue;
                }
                assert!(host.status.success(), "{what}: {text}");
                let v: serde_json::Value = serde_json::from_slice(&jit.stdout).unwrap();
                let hex = |p: &Path| -> String {
                    let b = std::fs::read(p).unwrap_or_default();
                    if b.is_empty() {
                        "-".into()
                    } else {
                        b.iter().map(|b| format!("{b:02x}")).collect()
                    }
                };
                let mut lines = text.lines();
                assert_eq!(
                    lines.next(),
                    Some(format!("retval {:#x}", v["retval"].as_u64().unwrap()).as_str()),
                    "{what}"
                );
                assert_eq!(
                    lines.next(),
                    Some(format!("data {}", hex(&data_out)).as_str()),
                    "{what}"
                );
                assert_eq!(
                    lines.next(),
                    Some(format!("ctx {}", hex(&ctx_out)).as_str()),
                    "{what}"
                );
                compare_maps(&what, lines, &maps_out);
                compared += 1;
            }
        }
        let _ = std::fs::remove_file(&exe);
    }
    assert!(
        compared >= 90 && compared > refused,
        "only {compared} runs compared, {refused} refused"
    );
}

/// Copy `examples/c-host` and build it with `make` against this build's
/// bpfc and runtime library.
/// With `jit`, the skeleton opens `counter.bpf.o` at run time
/// (`BPFC_SKEL_COUNTER_JIT_FILE`) and the JIT library is linked.
fn build_c_example(dir: &Path, jit: bool) -> PathBuf {
    let src = workspace_root().join("examples/c-host");
    for e in std::fs::read_dir(&src).unwrap() {
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
    // `make` would rebuild the committed object with clang if the copy
    // looked newer than it; keep the committed one.
    ok(
        run(
            Command::new("make")
                .arg("-s")
                .arg("-C")
                .arg(dir)
                .arg("-o")
                .arg("counter.bpf.o")
                .arg("counter-host")
                .arg(format!("BPFC={BPFC}"))
                .arg(format!(
                    "LIB={}",
                    if jit { jit_lib() } else { runtime_lib() }.display()
                ))
                .args(jit.then(|| {
                    format!(
                        "CFLAGS=-O2 -Wall -Werror -std=c11 -DBPFC_SKEL_COUNTER_JIT_FILE='\"{}\"'",
                        dir.join("counter.bpf.o").display()
                    )
                }))
                .arg(format!(
                    "INCLUDE={}",
                    workspace_root().join("runtime/include").display()
                )),
            b"",
        ),
        "make in examples/c-host",
    );
    dir.join("counter-host")
}

/// What `counter-host THREADS REQUESTS THRESHOLD` must print.
fn expected_counter_output(threads: u64, requests: u64) -> Vec<String> {
    let mut v = Vec::new();
    let per_key = |k: u64| threads * (requests / 8 + u64::from(k < requests % 8));
    for k in 0..8 {
        if per_key(k) > 0 {
            v.push(format!("count {k} {}", per_key(k)));
        }
    }
    v.push(format!("hits {}", threads * requests));
    // The host starts the total at 1000000 after load; thread t adds
    // weight t + 1 per request.
    v.push(format!(
        "total {}",
        1_000_000 + requests * threads * (threads + 1) / 2
    ));
    v
}

#[test]
fn c_example_with_skeleton_counts_across_threads() {
    counter_example("c_example_with_skeleton_counts_across_threads", false);
}

/// The same example, unchanged but for one macro: its skeleton opens
/// `counter.bpf.o` at run time and the JIT library is linked; the output
/// (hooks on threads, maps, `.rodata` set before load, `.bss`, `.data`,
/// ring buffer events) and valgrind's verdict must be the same.
#[test]
fn c_example_with_skeleton_counts_across_threads_jit() {
    counter_example("c_example_with_skeleton_counts_across_threads_jit", true);
}

fn counter_example(test: &str, jit: bool) {
    if !tool_or_skip(test, "cc", "--version") || !tool_or_skip(test, "make", "--version") {
        return;
    }
    let dir = tmpdir(if jit { "example-jit" } else { "example" });
    let exe = build_c_example(&dir, jit);
    let threads = u64::from(bpfc_runtime::maps::possible_cpus().clamp(1, 4));
    let (requests, threshold) = (3000u64, 5u64);
    let out = ok(
        run(
            Command::new(&exe).args([
                threads.to_string(),
                requests.to_string(),
                threshold.to_string(),
            ]),
            b"",
        ),
        "counter-host",
    );
    let lines: Vec<&str> = out.lines().collect();
    let want = expected_counter_output(threads, requests);
    assert_eq!(&lines[..want.len()], want.as_slice(), "{out}");
    // .data: the last key some thread wrote.
    let last: u32 = lines[want.len()]
        .strip_prefix("last_key ")
        .unwrap()
        .parse()
        .unwrap();
    assert!(last < 8, "{out}");
    // One event per key, from the run that took its count to the
    // threshold set through .rodata before load.
    let mut events: Vec<&str> = lines[want.len() + 1..].to_vec();
    events.sort();
    let want_events: Vec<String> = (0..8)
        .map(|k| format!("event key {k} count {threshold}"))
        .collect();
    assert_eq!(events, want_events, "{out}");
    // Under valgrind: no invalid access and nothing leaked after destroy.
    if tool_or_skip(test, "valgrind", "--version") {
        let out = run(
            Command::new("valgrind")
                .args([
                    "--leak-check=full",
                    "--errors-for-leak-kinds=definite,indirect",
                    "--error-exitcode=9",
                    "--quiet",
                ])
                .arg(&exe)
                .args(["2", "200", "3"]),
            b"",
        );
        assert!(
            out.status.success(),
            "valgrind: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn bad_use_is_an_error_never_a_crash() {
    misuse("bad_use_is_an_error_never_a_crash", false);
}

/// The same harness linked with the JIT library, which adds the JIT's
/// opens (NULL and empty input, a file open twice at once, destroy).
#[test]
fn bad_use_is_an_error_never_a_crash_jit() {
    misuse("bad_use_is_an_error_never_a_crash_jit", true);
}

fn misuse(test: &str, jit: bool) {
    if !tool_or_skip(test, "cc", "--version") {
        return;
    }
    let dir = tmpdir(if jit { "misuse-jit" } else { "misuse" });
    let counter = workspace_root().join("examples/c-host/counter.bpf.o");
    let obj = dir.join("counter.o");
    ok(
        run(
            Command::new(BPFC)
                .arg("compile")
                .arg(&counter)
                .arg("-o")
                .arg(&obj),
            b"",
        ),
        "bpfc compile",
    );
    let exe = dir.join("misuse");
    ok(
        run(
            Command::new("cc")
                .args(["-O1", "-Wall", "-Werror", "-std=c11"])
                .arg(format!(
                    "-I{}",
                    workspace_root().join("runtime/include").display()
                ))
                .args(jit.then_some("-DBPFC_HOST_JIT"))
                .arg(workspace_root().join("testsuite/harness/host_misuse.c"))
                .arg(&obj)
                .arg(if jit { jit_lib() } else { runtime_lib() })
                .args(["-lpthread", "-ldl", "-lm", "-o"])
                .arg(&exe),
            b"",
        ),
        "linking",
    );
    let out = run(Command::new(&exe).env("BPFC_HOST_OBJECT", &counter), b"");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("FAIL"), "{text}");
    // The same under valgrind: no invalid access, nothing leaked.
    if tool_or_skip(test, "valgrind", "--version") {
        let out = run(
            Command::new("valgrind")
                .args([
                    "--leak-check=full",
                    "--errors-for-leak-kinds=definite,indirect",
                    "--error-exitcode=9",
                    "--quiet",
                ])
                .arg(&exe)
                .env("BPFC_HOST_OBJECT", &counter),
            b"",
        );
        assert!(
            out.status.success(),
            "valgrind: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        text.lines().filter(|l| l.starts_with("ok ")).count() >= 25,
        "{text}"
    );
    let jit_checks = text.lines().filter(|l| l.starts_with("ok JIT:")).count();
    assert_eq!(jit_checks, if jit { 12 } else { 0 }, "{text}");
}

#[test]
fn skeletons_of_fixtures_compile_as_c11() {
    let test = "skeletons_of_fixtures_compile_as_c11";
    if !tool_or_skip(test, "cc", "--version") {
        return;
    }
    let dir = tmpdir("skeletons");
    let mut n = 0;
    for sub in [
        "testsuite/fixtures/helpers",
        "testsuite/fixtures/elf",
        "examples/c-host",
    ] {
        let fixtures = workspace_root().join(sub);
        for e in std::fs::read_dir(&fixtures).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_none_or(|x| x != "o") {
                continue;
            }
            let Ok(obj) = Object::parse(&std::fs::read(&path).unwrap()) else {
                continue;
            };
            if obj.btf.is_none() || obj.endian != bpfc_compiler::isa::Endian::Little {
                continue;
            }
            let out = run(
                Command::new(BPFC).arg("gen").arg("skeleton").arg(&path),
                b"",
            );
            let header = ok(out, &format!("gen skeleton {}", path.display()));
            let stem = path
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .replace('.', "_");
            let h = dir.join(format!("{stem}.skel.h"));
            std::fs::write(&h, &header).unwrap();
            let c = dir.join(format!("{stem}.c"));
            std::fs::write(&c, format!("#include \"{stem}.skel.h\"\n")).unwrap();
            ok(
                run(
                    Command::new("cc")
                        .args(["-std=c11", "-Wall", "-Werror", "-c"])
                        .arg(format!(
                            "-I{}",
                            workspace_root().join("runtime/include").display()
                        ))
                        .arg(format!("-I{}", dir.display()))
                        .arg(&c)
                        .arg("-o")
                        .arg(dir.join(format!("{stem}.o"))),
                    b"",
                ),
                &format!("compiling the skeleton of {}:\n{header}", path.display()),
            );
            n += 1;
        }
    }
    assert!(n >= 30, "only {n} skeletons");
}

#[test]
fn two_objects_link_into_one_program() {
    two_objects("two_objects_link_into_one_program", "host_two.c", false);
}

/// Hooks: programs of two objects attached to one hook run in attach
/// order; attach, detach and fire on threads at once lose no run.
#[test]
fn hooks_run_attached_programs_in_order_across_threads() {
    two_objects(
        "hooks_run_attached_programs_in_order_across_threads",
        "host_hooks.c",
        false,
    );
}

/// The same with `one` compiled at run time from the `.bpf.o`'s bytes
/// (`bpfc_object_open_mem`, the JIT library): a JIT object and a linked
/// one attach to one hook, run in order, detach under fire, and the JIT
/// object's destroy detaches its program.
#[test]
fn hooks_run_jit_and_linked_programs_alike() {
    two_objects(
        "hooks_run_jit_and_linked_programs_alike",
        "host_hooks.c",
        true,
    );
}

/// examples/c-host's counter compiled as `one` and `two`, linked with the
/// C program `harness/SRC`, which prints "ok". With `jit`, `one` is left
/// to the program to open at run time (`-DBPFC_HOST_JIT`, the JIT
/// library, `$BPFC_HOST_OBJECT` the `.bpf.o`).
fn two_objects(test: &str, src_c: &str, jit: bool) {
    if !tool_or_skip(test, "cc", "--version") {
        return;
    }
    let tag = format!(
        "{}{}",
        src_c.replace(".c", ""),
        if jit { "-jit" } else { "" }
    );
    let dir = tmpdir(&tag);
    let src = workspace_root().join("examples/c-host/counter.bpf.o");
    for name in ["one", "two"] {
        ok(
            run(
                Command::new(BPFC)
                    .arg("compile")
                    .arg(&src)
                    .args(["--name", name, "-o"])
                    .arg(dir.join(format!("{name}.o"))),
                b"",
            ),
            "bpfc compile --name",
        );
    }
    let exe = dir.join("two");
    let mut cc = Command::new("cc");
    cc.args(["-O1", "-Wall", "-Werror", "-std=c11"])
        .arg(format!(
            "-I{}",
            workspace_root().join("runtime/include").display()
        ))
        .arg(workspace_root().join("testsuite/harness").join(src_c));
    if jit {
        cc.arg("-DBPFC_HOST_JIT")
            .arg(dir.join("two.o"))
            .arg(jit_lib());
    } else {
        cc.arg(dir.join("one.o"))
            .arg(dir.join("two.o"))
            .arg(runtime_lib());
    }
    ok(
        run(cc.args(["-lpthread", "-ldl", "-lm", "-o"]).arg(&exe), b""),
        "linking two objects",
    );
    assert_eq!(
        ok(
            run(Command::new(&exe).env("BPFC_HOST_OBJECT", &src), b""),
            "two objects"
        ),
        "ok\n"
    );
}

/// Self-describing objects on the other Linux targets, where the Rust
/// runtime library cannot be built here: linked with the C stand-in
/// (`host_standin.c`: array maps and global data from the descriptor) and
/// run under qemu-user; the same as `bpfc run` on x86_64.
#[test]
fn other_targets_run_described_objects_through_a_stand_in() {
    use bpfc_testsuite::aot::{tool_available, AotTarget};
    let dir = tmpdir("standin");
    let fixtures = workspace_root().join("testsuite/fixtures/helpers");
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut runs = 0;
    for target in AotTarget::LINUX {
        if let Err(why) = tool_available(&target) {
            bpfc_testsuite::skip(
                "other_targets_run_described_objects_through_a_stand_in",
                &why,
            );
            continue;
        }
        for name in ["globals", "array_ops"] {
            let path = fixtures.join(format!("{name}.o"));
            let obj = dir.join(format!("{name}-{}.o", target.triple));
            ok(
                run(
                    Command::new(BPFC)
                        .arg("compile")
                        .arg(&path)
                        .args(["--target", target.triple, "-o"])
                        .arg(&obj),
                    b"",
                ),
                "bpfc compile",
            );
            let exe = dir.join(format!("{name}-{}", target.triple));
            ok(
                run(
                    Command::new(target.cc)
                        .args(["-O1", "-std=c11", "-Wall", "-Werror", "-static"])
                        .arg(format!(
                            "-I{}",
                            workspace_root().join("runtime/include").display()
                        ))
                        .arg(workspace_root().join("testsuite/harness/host_standin.c"))
                        .arg(&obj)
                        .arg(format!("-Wl,--defsym,bpfc_standin_object={name}__object"))
                        .arg("-o")
                        .arg(&exe),
                    b"",
                ),
                "linking the stand-in",
            );
            for _ in 0..4 {
                let ctx: Vec<u8> = (0..8)
                    .flat_map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        seed.to_le_bytes()
                    })
                    .collect();
                let ctx_in = dir.join("ctx.in");
                let (ctx_out, maps_out) = (dir.join("ctx.out"), dir.join("maps.json"));
                std::fs::write(&ctx_in, &ctx).unwrap();
                let jit = ok(
                    run(
                        Command::new(BPFC)
                            .arg("run")
                            .arg(&path)
                            .args(["--json", "--ctx-in"])
                            .arg(&ctx_in)
                            .arg("--ctx-out")
                            .arg(&ctx_out)
                            .arg("--maps-out")
                            .arg(&maps_out),
                        b"",
                    ),
                    "bpfc run",
                );
                let mut cmd = match target.runner {
                    Some(q) => {
                        let mut c = Command::new(q);
                        if let Some(root) = target.sysroot {
                            c.arg("-L").arg(root);
                        }
                        c.arg(&exe);
                        c
                    }
                    None => Command::new(&exe),
                };
                let text = ok(run(cmd.arg("run"), &ctx), "the stand-in");
                let what = format!("{name} on {}", target.triple);
                let v: serde_json::Value = serde_json::from_str(&jit).unwrap();
                let mut lines = text.lines();
                assert_eq!(
                    lines.next(),
                    Some(format!("retval {:#x}", v["r0"].as_u64().unwrap()).as_str()),
                    "{what}"
                );
                let hex: String = std::fs::read(&ctx_out)
                    .unwrap()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                assert_eq!(lines.next(), Some(format!("ctx {hex}").as_str()), "{what}");
                compare_maps(&what, lines, &maps_out);
                runs += 1;
            }
        }
    }
    assert!(
        runs >= 8 || !bpfc_testsuite::require_all(),
        "only {runs} runs"
    );
}

/// The same C host opens each fixture twice, once linked (AOT, `bpfc
/// compile`) and once as the `.bpf.o` file at run time (JIT,
/// `bpfc_object_open_file`), and runs every program on the same input:
/// return values, contexts, packets and map contents must be identical,
/// and so must the refusals.
#[test]
fn c_host_jit_open_file_runs_as_the_linked_object() {
    let test = "c_host_jit_open_file_runs_as_the_linked_object";
    if !tool_or_skip(test, "cc", "--version") {
        return;
    }
    let dir = tmpdir("jit");
    let jit = build_jit_host(&dir);
    let frames = bpfc_testsuite::packets::frames(0x7a11, 3);
    let mut seed = 0x51ed_2701_aa3c_0f6bu64;
    let (mut same, mut refused) = (0, 0);
    for sub in ["helpers", "net"] {
        let fixtures = workspace_root().join("testsuite/fixtures").join(sub);
        let mut names: Vec<String> = std::fs::read_dir(&fixtures)
            .unwrap()
            .filter_map(|e| {
                let p = e.unwrap().path();
                (p.extension()? == "o")
                    .then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
            })
            .filter(|n| !NONDETERMINISTIC.contains(&n.as_str()))
            .collect();
        names.sort();
        for name in &names {
            let path = fixtures.join(format!("{name}.o"));
            let obj = Object::parse(&std::fs::read(&path).unwrap()).unwrap();
            let aot = build_host(&dir, &path, name);
            let wait = if name.starts_with("timer") {
                "100"
            } else {
                "0"
            };
            for prog in &obj.programs {
                // Network programs run on packets (XDP: an xdp_md whose
                // data_end is the packet's size), others on a context.
                let mut inputs: Vec<(Option<&[u8]>, Vec<u8>)> = Vec::new();
                if sub == "net" {
                    for f in &frames {
                        let ctx = if prog.section.starts_with("xdp") {
                            let mut c = vec![0u8; 24];
                            c[4..8].copy_from_slice(&(f.data.len() as u32).to_ne_bytes());
                            c
                        } else {
                            Vec::new()
                        };
                        inputs.push((Some(&f.data), ctx));
                    }
                } else {
                    let ctx: Vec<u8> = (0..8)
                        .flat_map(|_| {
                            seed = seed
                                .wrapping_mul(6364136223846793005)
                                .wrapping_add(1442695040888963407);
                            seed.to_le_bytes()
                        })
                        .collect();
                    inputs.push((None, ctx));
                }
                for (i, (pkt, ctx)) in inputs.iter().enumerate() {
                    let what = format!("{sub}/{name} {} input {i}", prog.name);
                    let mut args = vec![prog.name.clone()];
                    if let Some(p) = pkt {
                        let f = dir.join("pkt.bin");
                        std::fs::write(&f, p).unwrap();
                        args.push(f.display().to_string());
                    }
                    let a = run(
                        Command::new(&aot)
                            .arg(name)
                            .args(&args)
                            .env("BPFC_HOST_WAIT_MS", wait),
                        ctx,
                    );
                    let j = run(
                        Command::new(&jit)
                            .arg(&path)
                            .args(&args)
                            .env("BPFC_HOST_WAIT_MS", wait),
                        ctx,
                    );
                    let (at, jt) = (
                        String::from_utf8_lossy(&a.stdout),
                        String::from_utf8_lossy(&j.stdout),
                    );
                    // Map lines in key order per map, except hash maps,
                    // whose order is the process's own: compare sorted.
                    let sorted = |t: &str| {
                        let mut l: Vec<String> = t.lines().map(str::to_string).collect();
                        l.sort();
                        l
                    };
                    assert_eq!(
                        (a.status.code(), sorted(&at)),
                        (j.status.code(), sorted(&jt)),
                        "{what}: AOT, then JIT{}",
                        String::from_utf8_lossy(&j.stderr)
                    );
                    if a.status.success() {
                        assert!(at.starts_with("retval "), "{what}: {at}");
                        same += 1;
                    } else {
                        assert!(at.starts_with("error "), "{what}: {at}");
                        refused += 1;
                    }
                }
            }
            let _ = std::fs::remove_file(&aot);
        }
    }
    eprintln!("{same} runs identical, {refused} refused by both");
    assert!(
        same >= 40 && same > refused,
        "{same} runs, {refused} refused"
    );
}

/// `bpfc_object_open_file` on bad input: NULL and a negative errno with
/// a message naming the file (and the program, instruction and source
/// line the verifier rejects), never a crash; and open, load, runs and
/// destroy of a JIT object leak nothing under valgrind.
#[test]
fn c_host_jit_open_file_refuses_bad_objects() {
    let test = "c_host_jit_open_file_refuses_bad_objects";
    if !tool_or_skip(test, "cc", "--version") {
        return;
    }
    let dir = tmpdir("jit-bad");
    let jit = build_jit_host(&dir);
    let counter = workspace_root().join("examples/c-host/counter.bpf.o");
    let bytes = std::fs::read(&counter).unwrap();
    let corrupt = dir.join("corrupt.bpf.o");
    let mut c = bytes[..64].to_vec();
    c.extend(std::iter::repeat_n(0xa5u8, 200));
    std::fs::write(&corrupt, &c).unwrap();
    let truncated = dir.join("truncated.bpf.o");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let missing = dir.join("missing.bpf.o");
    let rejected = workspace_root().join("testsuite/fixtures/elf/core_vmlinux.o");
    let cases: [(&Path, i32, &[&str]); 4] = [
        (&missing, -2, &["missing.bpf.o", "No such file"]),
        (&corrupt, -22, &["corrupt.bpf.o: "]),
        (&truncated, -22, &["truncated.bpf.o: "]),
        (
            &rejected,
            -13,
            &[
                "core_vmlinux.o: program on_switch",
                "rejected at instruction 1",
                "core_vmlinux.c:22",
            ],
        ),
    ];
    for (path, errno, needles) in cases {
        let out = run(Command::new(&jit).arg(path).arg("any"), b"");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}: {text}{}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let want = format!("error {errno} ");
        assert!(text.starts_with(&want), "{}: {text}", path.display());
        for n in needles {
            assert!(text.contains(n), "{}: {n:?} not in {text}", path.display());
        }
    }
    if tool_or_skip(test, "valgrind", "--version") {
        let globals = workspace_root().join("testsuite/fixtures/helpers/globals.o");
        let obj = Object::parse(&std::fs::read(&globals).unwrap()).unwrap();
        for (path, prog) in [
            (counter.as_path(), "count"),
            (globals.as_path(), obj.programs[0].name.as_str()),
            (rejected.as_path(), "on_switch"),
        ] {
            let out = run(
                Command::new("valgrind")
                    .args([
                        "--leak-check=full",
                        "--errors-for-leak-kinds=definite,indirect",
                        "--error-exitcode=9",
                        "--quiet",
                    ])
                    .arg(&jit)
                    .arg(path)
                    .arg(prog),
                &[0u8; 16],
            );
            assert_ne!(
                out.status.code(),
                Some(9),
                "valgrind, {}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.code().is_some(),
                "valgrind, {}: killed",
                path.display()
            );
        }
    }
}

/// The Rust side of the one-line switch: a `HostObject` opened from the
/// linked descriptor (`bpfc compile`, put into a shared library this test
/// loads) and one from `bpfc_compiler::host::open_file` on the `.bpf.o`
/// (`open_bytes` on its bytes for some) run every program on the same
/// context: return values, contexts and map contents are identical.
#[test]
fn rust_host_object_is_the_same_from_jit_and_aot() {
    use bpfc_runtime::host::object::HostObject;
    let test = "rust_host_object_is_the_same_from_jit_and_aot";
    if !tool_or_skip(test, "cc", "--version") {
        return;
    }
    let dir = tmpdir("rust-jit");
    let fixtures = workspace_root().join("testsuite/fixtures/helpers");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "o")
                && !NONDETERMINISTIC.contains(&p.file_stem().unwrap().to_str().unwrap())
        })
        .collect();
    paths.sort();
    paths.push(workspace_root().join("examples/c-host/counter.bpf.o"));
    let mut seed = 0x0dd_b1a5_e5ca_1ab1u64;
    let (mut runs, mut refused, mut unlinkable) = (0, 0, Vec::new());
    for (k, path) in paths.iter().enumerate() {
        let name = bpfc_compiler::host::object_name(path);
        let obj_o = dir.join(format!("{name}.o"));
        ok(
            run(
                Command::new(BPFC)
                    .arg("compile")
                    .arg(path)
                    .arg("-o")
                    .arg(&obj_o),
                b"",
            ),
            "bpfc compile",
        );
        // A shared library resolves its undefined symbols when loaded, and
        // this test exports none: objects that import the runtime's entry
        // points (tail calls) are left to the C tests.
        let elf = std::fs::read(&obj_o).unwrap();
        let parsed = object::File::parse(&*elf).unwrap();
        use object::{Object as _, ObjectSymbol as _};
        if parsed
            .symbols()
            .any(|s| s.is_undefined() && !s.name().unwrap_or("").is_empty())
        {
            unlinkable.push(name);
            continue;
        }
        let so = dir.join(format!("lib{name}.so"));
        ok(
            run(
                Command::new("cc")
                    .arg("-shared")
                    .arg(&obj_o)
                    .arg("-o")
                    .arg(&so),
                b"",
            ),
            "cc -shared",
        );
        // SAFETY: a library of one object `bpfc compile` wrote, no
        // constructors.
        let lib = unsafe { libloading::Library::new(&so) }.unwrap();
        // SAFETY: the descriptor's symbol, used as an address only.
        let desc: libloading::Symbol<*const u8> =
            unsafe { lib.get(format!("{name}__object\0").as_bytes()) }.unwrap();
        // AOT, then JIT: the one line a host changes.
        // SAFETY: the descriptor of the library loaded above, which
        // outlives the object.
        let aot = unsafe { HostObject::open((*desc).cast()) };
        let jit = if k % 2 == 0 {
            bpfc_compiler::host::open_file(path)
        } else {
            bpfc_compiler::host::open_bytes(&std::fs::read(path).unwrap(), &name)
        };
        let (mut aot, mut jit) = (aot.unwrap(), jit.unwrap());
        aot.load().unwrap();
        jit.load().unwrap();
        let wait = name.starts_with("timer");
        for i in 0..aot.desc.progs.len() {
            let pname = aot.desc.progs[i].name.clone();
            let what = format!("{name} {pname}");
            let ctx: Vec<u8> = (0..8)
                .flat_map(|_| {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    seed.to_le_bytes()
                })
                .collect();
            let mut outs = Vec::new();
            for o in [&aot, &jit] {
                let p = o.program(&pname).unwrap();
                let mut c = ctx.clone();
                let r = p
                    .run(c.as_mut_ptr() as u64, c.len() as u64, 0)
                    .map_err(|f| f.message);
                if wait {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                let mut maps = Vec::new();
                for m in o.maps.iter().flatten() {
                    if m.map_type().holds_references() {
                        continue;
                    }
                    let mut e = m.entries().unwrap_or_default();
                    e.sort();
                    maps.push((m.name().to_string(), e));
                }
                outs.push((r, c, maps));
            }
            assert_eq!(outs[0], outs[1], "{what}: AOT, then JIT");
            if outs[0].0.is_ok() {
                runs += 1;
            } else {
                refused += 1;
            }
        }
        drop((aot, jit));
        drop(lib);
    }
    eprintln!(
        "{runs} runs identical, {refused} faults identical; not loadable here: {unlinkable:?}"
    );
    assert!(
        runs >= 20 && unlinkable.len() <= 2,
        "{runs} runs, {unlinkable:?}"
    );
}
