//! The Rust host example (`examples/rust-host`): built with cargo, its
//! build script running clang and this build's bpfc through bpfc-build,
//! without warnings; it fires its limiter at a hook in its request loop,
//! and its output must be what a model of the token bucket gives for the
//! same requests (and nothing limits a request once the limiter is
//! detached), and what `bpfc run` gives on the same object and requests
//! (verdicts, map contents, ring buffer records).

mod common;

use bpfc_testsuite::{tool_or_skip, workspace_root};
use common::data::{bytes, json_bytes, sorted, u64_at};
use common::host::{cargo_without_warnings, ok, run, BPFC};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The limiter of `limiter.bpf.c` and the request loop of `main.rs`.
fn model(requests: u64, rate: u64, burst: u64) -> Vec<String> {
    let mut buckets: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    let (mut allowed, mut denied, mut denials) = (0, 0, [0u64; 3]);
    let mut verdicts = String::new();
    for i in 0..requests {
        let client = (i % 3) as u32;
        let cost = if i % 3 == 0 { 2 } else { 1 };
        let now = i * 50_000_000;
        let b = buckets.entry(client).or_insert((burst, now));
        let mut tokens = b.0;
        if now > b.1 {
            tokens = (tokens + (now - b.1) * rate / 1_000_000_000).min(burst);
            b.1 = now;
        }
        verdicts.push(if tokens >= cost { '1' } else { '0' });
        if tokens >= cost {
            b.0 = tokens - cost;
            allowed += 1;
        } else {
            b.0 = tokens;
            denied += 1;
            denials[client as usize] += 1;
        }
    }
    let mut out = vec![
        format!("served {allowed}"),
        format!("verdicts {verdicts}"),
        // The request after the limiter was detached passes.
        "after detach admitted true".to_string(),
        format!("allowed {allowed} denied {denied}"),
    ];
    for (c, (t, l)) in &buckets {
        out.push(format!("bucket {c} tokens {t} last {l}"));
    }
    out.push(format!(
        "denials {} {} {}",
        denials[0], denials[1], denials[2]
    ));
    out
}

#[test]
fn rust_example_builds_with_bpfc_build_and_limits_as_modelled() {
    let test = "rust_example_builds_with_bpfc_build_and_limits_as_modelled";
    if !tool_or_skip(test, "clang-19", "--version") || !tool_or_skip(test, "ar", "--version") {
        return;
    }
    let root = workspace_root();
    let target = root.join("target/rust-host-example");
    let manifest = root.join("examples/rust-host/Cargo.toml");
    let env = [("BPFC", BPFC), ("CLANG", "clang-19")];
    cargo_without_warnings("build", &manifest, &target, &env);
    let exe = target.join("debug/bpfc-rust-host-example");
    replay_with_bpfc_run(&exe, &built_object(&target), 45, 10, 5);
    for (requests, rate, burst) in [(60u64, 10u64, 5u64), (200, 3, 2), (90, 40, 8)] {
        let text = run_example(&exe, requests, rate, burst);
        let got: Vec<&str> = text.lines().collect();
        assert_eq!(
            got,
            model(requests, rate, burst),
            "{requests} {rate} {burst}"
        );
    }
}

/// What the example prints for `requests` at `rate` per second, `burst`.
fn run_example(exe: &Path, requests: u64, rate: u64, burst: u64) -> String {
    let args = [requests, rate, burst].map(|n| n.to_string());
    ok(run(Command::new(exe).args(args), b""), "the example")
}

/// The `.bpf.o` bpfc-build made for the example (the newest, should an
/// older build directory linger).
fn built_object(target: &Path) -> PathBuf {
    let mut found: Vec<(std::time::SystemTime, PathBuf)> =
        std::fs::read_dir(target.join("debug/build"))
            .unwrap()
            .filter_map(|e| {
                let p = e.ok()?.path().join("out/limiter.bpf.o");
                Some((p.metadata().ok()?.modified().ok()?, p))
            })
            .collect();
    found.sort();
    found.pop().expect("bpfc-build left limiter.bpf.o").1
}

/// The same requests through `bpfc run` on the same object, one run per
/// request with the maps carried from one run to the next (`--maps-in`,
/// `.rodata` tuned as the host tunes it): the same verdicts, the same
/// buckets and totals, the same denials.
fn replay_with_bpfc_run(exe: &Path, obj: &Path, requests: u64, rate: u64, burst: u64) {
    let host = run_example(exe, requests, rate, burst);
    let dir = std::env::temp_dir().join(format!("bpfc-rust-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rodata = [rate.to_le_bytes(), burst.to_le_bytes()].concat();
    let ro = serde_json::json!([{"key": json_bytes(&[0; 4]), "value": json_bytes(&rodata)}]);
    let mut maps = serde_json::json!({ ".rodata": ro });
    let (maps_in, maps_out, ctx) = (dir.join("in.json"), dir.join("out.json"), dir.join("ctx"));
    let (mut verdicts, mut denials) = (String::new(), [0u64; 3]);
    // The kernel, when it can be asked: the same runs, maps carried the
    // same way.
    let kernel = bpfc_testsuite::kernel_run::driver("rust_example_replays_in_the_kernel");
    let mut kmaps = maps.clone();
    for i in 0..requests {
        let client = (i % 3) as u32;
        let cost: u32 = if i % 3 == 0 { 2 } else { 1 };
        let req = [
            &client.to_le_bytes()[..],
            &cost.to_le_bytes(),
            &(i * 50_000_000).to_le_bytes(),
        ]
        .concat();
        std::fs::write(&ctx, req).unwrap();
        std::fs::write(&maps_in, maps.to_string()).unwrap();
        let mut cmd = Command::new(BPFC);
        let out = cmd
            .arg("run")
            .arg(obj)
            .arg("--json")
            .arg("--ctx-in")
            .arg(&ctx)
            .arg("--maps-in")
            .arg(&maps_in)
            .arg("--maps-out")
            .arg(&maps_out);
        let v: serde_json::Value = serde_json::from_str(&ok(run(out, b""), "bpfc run")).unwrap();
        verdicts.push(if v["retval"] == 1 { '1' } else { '0' });
        for r in v["records"]["denials"].as_array().into_iter().flatten() {
            let first = &r.as_str().unwrap()[..2];
            denials[usize::from_str_radix(first, 16).unwrap() % 3] += 1;
        }
        maps = serde_json::from_slice(&std::fs::read(&maps_out).unwrap()).unwrap();
        if let Some(k) = &kernel {
            let run = bpfc_testsuite::kernel_run::KernelRun {
                ctx_in: std::fs::read(&ctx).unwrap(),
                maps_in: Some(kmaps.clone()),
                ..Default::default()
            };
            let r = k.run(obj, "limit", &run).unwrap();
            assert_eq!(
                u64::from(r.retval),
                v["retval"].as_u64().unwrap(),
                "request {i}"
            );
            let no = serde_json::json!([]);
            assert_eq!(
                r.records.get("denials").unwrap_or(&no),
                v["records"].get("denials").unwrap_or(&no),
                "request {i}: ring buffer records"
            );
            kmaps = r.maps;
        }
    }
    if kernel.is_some() {
        let (kmaps, maps) = (sorted(&kmaps), sorted(&maps));
        for name in ["buckets", ".bss"] {
            assert!(maps[name].is_array(), "map {name}");
            assert_eq!(kmaps[name], maps[name], "map {name}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let bss = bytes(&maps[".bss"][0]["value"]);
    let mut want = vec![
        format!("verdicts {verdicts}"),
        format!("allowed {} denied {}", u64_at(&bss, 0), u64_at(&bss, 8)),
    ];
    let mut buckets: Vec<(u32, u64, u64)> = maps["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let (k, v) = (bytes(&e["key"]), bytes(&e["value"]));
            (
                u32::from_le_bytes(k[..4].try_into().unwrap()),
                u64_at(&v, 0),
                u64_at(&v, 8),
            )
        })
        .collect();
    buckets.sort();
    for (c, t, l) in buckets {
        want.push(format!("bucket {c} tokens {t} last {l}"));
    }
    want.push(format!(
        "denials {} {} {}",
        denials[0], denials[1], denials[2]
    ));
    for line in &want {
        assert!(
            host.lines().any(|l| l == line),
            "bpfc run gives {line:?}; the host printed:\n{host}"
        );
    }
    assert!(
        verdicts.contains('0') && verdicts.contains('1'),
        "{verdicts}"
    );
}

/// `bpfc gen skeleton --lang rust` for every fixture with BTF (and the C
/// examples' objects), all in one crate: `cargo check` without a warning.
#[test]
fn rust_skeletons_of_fixtures_check_without_warnings() {
    let root = workspace_root();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("rust-skeletons");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"skeletons\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
             [dependencies]\nbpfc-runtime = {{ path = {:?} }}\n\n[workspace]\n",
            root.join("runtime").display().to_string()
        ),
    )
    .unwrap();
    let mut lib = String::new();
    let mut n = 0;
    for sub in [
        "testsuite/fixtures/helpers",
        "testsuite/fixtures/elf",
        "testsuite/fixtures/net",
        "testsuite/fixtures/host",
        "examples/c-host",
    ] {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(root.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "o"))
            .collect();
        paths.sort();
        for p in paths {
            let obj = bpfc_compiler::loader::Object::parse(&std::fs::read(&p).unwrap());
            if !obj.is_ok_and(|o| o.btf.is_some()) {
                continue;
            }
            let out = Command::new(BPFC)
                .args(["gen", "skeleton", "--lang", "rust"])
                .arg(&p)
                .output()
                .unwrap();
            if !out.status.success() {
                // Objects the skeleton generator refuses say why in one line.
                let err = String::from_utf8_lossy(&out.stderr);
                assert_eq!(err.trim_end().lines().count(), 1, "{}: {err}", p.display());
                continue;
            }
            n += 1;
            std::fs::write(dir.join(format!("src/s{n}.rs")), &out.stdout).unwrap();
            lib.push_str(&format!("mod m{n} {{\n    include!(\"s{n}.rs\");\n}}\n"));
        }
    }
    std::fs::write(dir.join("src/lib.rs"), lib).unwrap();
    assert!(n >= 60, "only {n} skeletons");
    let target = root.join("target/rust-host-example");
    cargo_without_warnings("check", &dir.join("Cargo.toml"), &target, &[]);
}

extern "C" {
    /// The C library's fire (`runtime/include/bpfc.h`), from this process.
    fn bpfc_hook_fire(
        hook: *const std::ffi::c_char,
        ctx: *mut std::ffi::c_void,
        ctx_size: usize,
        cpu: u32,
        retvals: *mut u64,
        max: usize,
    ) -> std::ffi::c_int;
}

/// The Rust hooks (what the Rust skeleton's `attach*` and `fire` call) and
/// the C library's are one registry: programs attached from Rust run in
/// attach order whether Rust or C fires the hook; a dropped link detaches;
/// a too small context is refused; a dropped object detaches the rest.
#[test]
fn rust_and_c_hooks_share_one_registry() {
    use bpfc_runtime::host::hooks;
    let path = workspace_root().join("examples/c-host/counter.bpf.o");
    let mut obj = bpfc_compiler::host::open_file(&path).unwrap();
    assert!(
        hooks::attach(&obj, "count", "test/rust").is_err(),
        "attached before load"
    );
    obj.load().unwrap();
    let first = hooks::attach(&obj, "count", "test/rust").unwrap();
    let second = hooks::attach(&obj, "count", "test/rust").unwrap();
    // `count` returns how many requests its key has seen.
    let mut req: [u32; 2] = [3, 1];
    let mut r0 = [0u64; 4];
    assert_eq!(hooks::fire("test/rust", &mut req, 0, &mut r0).unwrap(), 2);
    assert_eq!(r0[..2], [1, 2]);
    // SAFETY: a C string, the 8-byte request and room for 4 values.
    let n = unsafe {
        bpfc_hook_fire(
            c"test/rust".as_ptr(),
            (&mut req as *mut [u32; 2]).cast(),
            8,
            0,
            r0.as_mut_ptr(),
            4,
        )
    };
    assert_eq!((n, &r0[..2]), (2, &[3, 4][..]));
    drop(first);
    assert_eq!(hooks::fire("test/rust", &mut req, 0, &mut r0).unwrap(), 1);
    assert_eq!(r0[0], 5);
    let mut small = 3u32;
    let e = hooks::fire("test/rust", &mut small, 0, &mut r0).unwrap_err();
    assert!(e.to_string().contains("8 bytes"), "{e}");
    // A context one of the programs refuses runs none of them: a packet
    // program attached after `count` is checked before `count` runs.
    let xdp =
        bpfc_compiler::host::open_file(workspace_root().join("examples/c-host/xdp_count.bpf.o"));
    let mut xdp = xdp.unwrap();
    xdp.load().unwrap();
    let packet = hooks::attach(&xdp, "xdp_count", "test/rust").unwrap();
    let e = hooks::fire("test/rust", &mut req, 0, &mut r0).unwrap_err();
    assert!(e.to_string().contains("runs on a packet"), "{e}");
    drop(packet);
    assert_eq!(hooks::fire("test/rust", &mut req, 0, &mut r0).unwrap(), 1);
    assert_eq!(r0[0], 6, "the refused fire ran count");
    assert_eq!(hooks::fire("test/none", &mut req, 0, &mut r0).unwrap(), 0);
    // The object's end detaches what is still attached; the link is inert.
    drop(obj);
    assert_eq!(hooks::fire("test/rust", &mut req, 0, &mut r0).unwrap(), 0);
    drop(second);
}
