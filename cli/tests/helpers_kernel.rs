//! Helpers against the running kernel: every object of
//! `testsuite/fixtures/helpers` (C written for this project, rebuilt by its
//! `build.sh`) is loaded into the kernel by libbpf and run with
//! `BPF_PROG_TEST_RUN` (`bpfc_testsuite::kernel_run`), and run by `bpfc run`
//! in the interpreter, checked JIT code and unchecked JIT code, with the same
//! random 64-byte context, the same CPU and the same initial maps. The
//! return value, the context after the run (`SEC("syscall")` programs write
//! it back; `SEC("raw_tp")` contexts are read-only and must come back
//! unchanged), every map's contents and the ring buffer and perf records
//! must agree. Hash maps are compared as sets (their orders differ);
//! prog arrays and maps of maps by which slots are filled (their values
//! are ids, which differ).
//!
//! Prints `N programs x M ctx agree`; on a difference, the program, the
//! context (hex), the engine and what differs. `BPFC_HELPERS_SEED=N`
//! replays a run, `BPFC_HELPERS_CTX=M` sets the number of contexts per
//! program (default 8), `BPFC_HELPERS_ONLY=name` runs one fixture. Needs
//! root (a SKIP line otherwise; a failure under `BPFC_TEST_REQUIRE=all`).

use bpfc_compiler::loader::{self, Object};
use bpfc_runtime::maps::MapType;
use bpfc_testsuite::kernel_run::{self, Driver, KernelRun};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

const TEST: &str = "helpers_kernel";
const CTX_SIZE: usize = 64;

fn fixture_dir() -> PathBuf {
    bpfc_testsuite::workspace_root().join("testsuite/fixtures/helpers")
}

/// What one fixture needs beyond the defaults.
#[derive(Clone, Copy, Default)]
struct Extra {
    /// Maps filled before the run, in `bpfc run --maps-in`'s JSON.
    maps_in: Option<&'static str>,
    /// Milliseconds to wait after the run (timer callbacks).
    wait_ms: u32,
}

fn extra(name: &str) -> Extra {
    match name {
        // The loopback device (ifindex 1) in two slots of each devmap.
        "devmap" => Extra {
            maps_in: Some(
                r#"{"dm": [{"key": [1,0,0,0], "value": [1,0,0,0]}, {"key": [3,0,0,0], "value": [1,0,0,0]}],
                    "dmh": [{"key": [7,0,0,0], "value": [1,0,0,0]}]}"#,
            ),
            ..Default::default()
        },
        "timer" | "timer_cancel" => Extra {
            wait_ms: 100,
            ..Default::default()
        },
        _ => Extra::default(),
    }
}

/// A small deterministic generator (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// One engine configuration of `bpfc run`.
const ENGINES: &[(&str, &[&str])] = &[
    ("interp", &["--engine", "interp"]),
    ("jit checked", &["--engine", "jit"]),
    ("jit unchecked", &["--engine", "jit", "--unchecked"]),
];

/// What a run left behind, normalised for comparison.
#[derive(Debug, PartialEq)]
struct Outcome {
    retval: u32,
    ctx_out: String,
    maps: Value,
    records: Value,
}

/// Maps as sets where their order is not defined, and prog arrays and maps
/// of maps by filled slots.
fn normalise_maps(maps: &Value, obj: &Object) -> Value {
    let mut out = serde_json::Map::new();
    for (name, entries) in maps.as_object().into_iter().flatten() {
        let ty = obj
            .maps
            .iter()
            .find(|d| &d.name == name)
            .and_then(|d| MapType::from_raw(d.map_type));
        let mut list: Vec<Value> = entries.as_array().cloned().unwrap_or_default();
        if matches!(
            ty,
            Some(MapType::ProgArray | MapType::ArrayOfMaps | MapType::HashOfMaps)
        ) {
            list = list.into_iter().map(|e| json!({"key": e["key"]})).collect();
        }
        list.sort_by_key(|e| e["key"].to_string());
        out.insert(name.clone(), Value::Array(list));
    }
    Value::Object(out)
}

/// Whether a fixture's `out` map (the helpers' return codes) holds
/// -ENOMEM (12).
fn reports_enomem(maps: &Value) -> bool {
    let enomem: Vec<Value> = (-12i64)
        .to_le_bytes()
        .iter()
        .map(|b| Value::String(format!("{b:#04x}")))
        .collect();
    maps["out"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| e["value"].as_array() == Some(&enomem))
}

/// Run the kernel side.
fn kernel(
    driver: &Driver,
    obj_path: &Path,
    prog: &str,
    ctx: &[u8],
    cpu: Option<u32>,
    extra: Extra,
) -> Result<(u32, Vec<u8>, Value, Value), String> {
    let run = KernelRun {
        ctx_in: ctx.to_vec(),
        cpu,
        maps_in: extra.maps_in.map(|m| serde_json::from_str(m).unwrap()),
        wait_ms: extra.wait_ms,
        ..Default::default()
    };
    let r = driver.run(obj_path, prog, &run)?;
    // Maps user space cannot read (perf event arrays) are in neither dump.
    for (name, errno) in &r.map_errors {
        if *errno != 524 {
            return Err(format!("the kernel cannot read map {name}: errno {errno}"));
        }
    }
    Ok((r.retval, r.ctx_out, r.maps, r.records))
}

/// Run `bpfc run` with one engine configuration.
#[allow(clippy::too_many_arguments)]
fn bpfc(
    dir: &Path,
    obj_path: &Path,
    prog: &str,
    ctx: &[u8],
    cpu: Option<u32>,
    extra: Extra,
    engine: &[&str],
) -> Result<(u32, Vec<u8>, Value, Value), String> {
    let ctx_in = dir.join("ctx.in");
    let ctx_out = dir.join("ctx.out");
    let maps_out = dir.join("maps.out");
    std::fs::write(&ctx_in, ctx).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bpfc"));
    cmd.arg("run")
        .arg(obj_path)
        .args(["--program", prog, "--json"])
        .arg("--ctx-in")
        .arg(&ctx_in)
        .arg("--ctx-out")
        .arg(&ctx_out)
        .arg("--maps-out")
        .arg(&maps_out)
        .args(engine);
    if let Some(cpu) = cpu {
        cmd.args(["--cpu", &cpu.to_string()]);
    }
    if let Some(m) = extra.maps_in {
        let p = dir.join("maps.in");
        std::fs::write(&p, m).unwrap();
        cmd.arg("--maps-in").arg(p);
    }
    if extra.wait_ms > 0 {
        cmd.args(["--wait-ms", &extra.wait_ms.to_string()]);
    }
    let out = cmd.output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let maps: Value = serde_json::from_slice(&std::fs::read(&maps_out).unwrap())
        .map_err(|e| format!("--maps-out: {e}"))?;
    Ok((
        v["retval"].as_u64().unwrap_or(u64::MAX) as u32,
        std::fs::read(&ctx_out).unwrap(),
        maps,
        v["records"].clone(),
    ))
}

/// Every fixture object with its entry program (`run`) and whether it is a
/// raw_tp program (read-only context, pinned to a CPU).
fn fixtures() -> Vec<(String, PathBuf, Object, bool)> {
    let only = std::env::var("BPFC_HELPERS_ONLY").ok();
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "o"))
        .collect();
    v.sort();
    v.into_iter()
        .filter_map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            if only.as_ref().is_some_and(|o| *o != name) {
                return None;
            }
            let obj = loader::load(&std::fs::read(&p).unwrap(), &Default::default())
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let prog = obj
                .programs
                .iter()
                .find(|p| p.name == "run")
                .unwrap_or_else(|| panic!("{}: no program `run`", p.display()));
            let raw_tp = prog.section.starts_with("raw_tp");
            Some((name, p, obj, raw_tp))
        })
        .collect()
}

#[test]
fn helpers_agree_with_the_kernel() {
    let Some(driver) = kernel_run::driver(TEST) else {
        return;
    };
    let seed = std::env::var("BPFC_HELPERS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let nctx: usize = std::env::var("BPFC_HELPERS_CTX")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    let fixtures = fixtures();
    assert!(
        std::env::var("BPFC_HELPERS_ONLY").is_ok() || fixtures.len() >= 30,
        "expected at least 30 helper fixtures, found {}",
        fixtures.len()
    );
    let ncpus = bpfc_runtime::maps::possible_cpus();
    // Jobs: (fixture, ctx number), each with its own context and CPU.
    let mut rng = Rng(seed);
    let jobs: Vec<(usize, Vec<u8>, u32)> = (0..fixtures.len())
        .flat_map(|f| (0..nctx).map(move |_| f))
        .map(|f| {
            let ctx: Vec<u8> = (0..CTX_SIZE / 8)
                .flat_map(|_| rng.next().to_ne_bytes())
                .collect();
            let cpu = (rng.next() % ncpus as u64) as u32;
            (f, ctx, cpu)
        })
        .collect();
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::<String>::new());
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("helpers_kernel");
    std::thread::scope(|s| {
        for worker in 0..2 {
            let (jobs, next, failures, fixtures, driver) =
                (&jobs, &next, &failures, &fixtures, &driver);
            let dir = base.join(format!("w{worker}"));
            std::fs::create_dir_all(&dir).unwrap();
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((f, ctx, cpu)) = jobs.get(i) else {
                    break;
                };
                let (name, path, obj, raw_tp) = &fixtures[*f];
                let cpu = raw_tp.then_some(*cpu);
                let ex = extra(name);
                let what = format!(
                    "{name} (ctx {}{})",
                    hex(ctx),
                    cpu.map(|c| format!(", cpu {c}")).unwrap_or_default()
                );
                let norm =
                    |(retval, ctx_out, maps, records): (u32, Vec<u8>, Value, Value)| Outcome {
                        retval,
                        ctx_out: hex(&ctx_out),
                        maps: normalise_maps(&maps, obj),
                        records,
                    };
                // A map without preallocation gets its elements from the
                // kernel's per-CPU caches, which a program can empty before
                // the kernel refills them (asynchronously): a transient
                // -ENOMEM that bpfc, whose allocations do not fail, never
                // returns. Such a kernel run is repeated (on fresh maps).
                let mut attempts = 0;
                let first = loop {
                    let r = kernel(driver, path, "run", ctx, cpu, ex);
                    attempts += 1;
                    match &r {
                        Ok(k) if attempts < 5 && reports_enomem(&k.2) => {
                            eprintln!("NOTE: {what}: the kernel ran out of cached elements (-ENOMEM); run again");
                            std::thread::sleep(std::time::Duration::from_millis(20));
                        }
                        _ => break r,
                    }
                };
                let want = match first {
                    Ok(mut k) => {
                        if *raw_tp {
                            // A raw_tp context is read-only: it comes back as it went in.
                            k.1 = ctx.clone();
                        }
                        norm(k)
                    }
                    Err(e) => {
                        failures
                            .lock()
                            .unwrap()
                            .push(format!("{what}: kernel: {e}"));
                        continue;
                    }
                };
                for (engine, args) in ENGINES {
                    match bpfc(&dir, path, "run", ctx, cpu, ex, args) {
                        Ok(o) => {
                            let got = norm(o);
                            if got != want {
                                failures
                                    .lock()
                                    .unwrap()
                                    .push(describe(&what, engine, &want, &got));
                            }
                        }
                        Err(e) => failures
                            .lock()
                            .unwrap()
                            .push(format!("{what}: bpfc {engine}: {e}")),
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    let agreed = jobs.len() - {
        let mut bad: Vec<&str> = failures
            .iter()
            .map(|f| f.split(')').next().unwrap_or(f))
            .collect();
        bad.sort();
        bad.dedup();
        bad.len()
    };
    eprintln!(
        "helpers_kernel: seed {seed}: {} programs x {nctx} ctx agree ({agreed} of {} runs in all {} engines)",
        fixtures.len(),
        jobs.len(),
        ENGINES.len()
    );
    assert!(
        failures.is_empty(),
        "{} differences (replay with BPFC_HELPERS_SEED={seed}):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// What differs between the kernel's outcome and an engine's.
fn describe(what: &str, engine: &str, want: &Outcome, got: &Outcome) -> String {
    let mut s = format!("{what}: bpfc {engine} differs from the kernel:");
    if want.retval != got.retval {
        s += &format!("\n  retval: kernel {} bpfc {}", want.retval, got.retval);
    }
    if want.ctx_out != got.ctx_out {
        s += &format!(
            "\n  ctx: kernel {}\n       bpfc   {}",
            want.ctx_out, got.ctx_out
        );
    }
    for (name, k) in want.maps.as_object().into_iter().flatten() {
        let b = &got.maps[name];
        if k != b {
            s += &format!("\n  map {name}:{}", entry_diff(k, b));
        }
    }
    for (name, b) in got.maps.as_object().into_iter().flatten() {
        if want.maps.get(name).is_none() {
            s += &format!("\n  map {name}: only bpfc has it: {b}");
        }
    }
    if want.records != got.records {
        s += &format!(
            "\n  records: kernel {}\n           bpfc {}",
            want.records, got.records
        );
    }
    s
}

/// The entries two dumps of a map disagree on (at most 6), one a line.
fn entry_diff(kernel: &Value, bpfc: &Value) -> String {
    let index = |v: &Value| -> std::collections::BTreeMap<String, String> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                let mut rest = e.clone();
                if let Some(o) = rest.as_object_mut() {
                    o.remove("key");
                }
                (compact(&e["key"]), compact(&rest))
            })
            .collect()
    };
    let (k, b) = (index(kernel), index(bpfc));
    let mut keys: Vec<&String> = k.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = String::new();
    let mut n = 0;
    for key in keys {
        let (x, y) = (k.get(key), b.get(key));
        if x == y {
            continue;
        }
        n += 1;
        if n <= 6 {
            let none = "(none)".to_string();
            out += &format!(
                "\n    key {key}: kernel {} bpfc {}",
                x.unwrap_or(&none),
                y.unwrap_or(&none)
            );
        }
    }
    if n > 6 {
        out += &format!("\n    ... {} more", n - 6);
    }
    out
}

/// A JSON value with byte lists shown as hex strings.
fn compact(v: &Value) -> String {
    match v {
        Value::Array(a)
            if a.iter()
                .all(|x| x.as_str().is_some_and(|s| s.starts_with("0x"))) =>
        {
            a.iter()
                .map(|x| x.as_str().unwrap().trim_start_matches("0x").to_string())
                .collect()
        }
        Value::Array(a) => format!("[{}]", a.iter().map(compact).collect::<Vec<_>>().join(" ")),
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| format!("{k}={}", compact(v)))
            .collect::<Vec<_>>()
            .join(" "),
        v => v.to_string(),
    }
}
