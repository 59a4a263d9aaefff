//! The Rust host example (`examples/rust-host`): built with cargo, its
//! build script running clang and this build's bpfc through bpfc-build,
//! without warnings; it fires its limiter at a hook in its request loop,
//! and its output must be what a model of the token bucket gives for the
//! same requests (and nothing limits a request once the limiter is
//! detached).

use bpfc_testsuite::{tool_or_skip, workspace_root};
use std::collections::BTreeMap;
use std::process::Command;

const BPFC: &str = env!("CARGO_BIN_EXE_bpfc");

/// The limiter of `limiter.bpf.c` and the request loop of `main.rs`.
fn model(requests: u64, rate: u64, burst: u64) -> Vec<String> {
    let mut buckets: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    let (mut allowed, mut denied, mut denials) = (0, 0, [0u64; 3]);
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
    let out = Command::new(env!("CARGO"))
        .args(["build", "--offline", "--manifest-path"])
        .arg(root.join("examples/rust-host/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env("BPFC", BPFC)
        .env("CLANG", "clang-19")
        .env_remove("RUSTFLAGS")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cargo build: {stderr}");
    assert!(
        !stderr.contains("warning"),
        "the example builds with warnings: {stderr}"
    );
    let exe = target.join("debug/bpfc-rust-host-example");
    for (requests, rate, burst) in [(60u64, 10u64, 5u64), (200, 3, 2), (90, 40, 8)] {
        let out = Command::new(&exe)
            .args([requests.to_string(), rate.to_string(), burst.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let got: Vec<&str> = text.lines().collect();
        assert_eq!(
            got,
            model(requests, rate, burst),
            "{requests} {rate} {burst}"
        );
    }
}
