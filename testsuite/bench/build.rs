//! Compiles the benchmark's C programs for the host with `cc -O2` (the
//! native baseline of every comparison) and, when clang-19 is installed,
//! again with `clang-19 -O2` (a second native reference with the same
//! optimizer as the eBPF side), and links them into the bench binary.

use std::path::Path;
use std::process::Command;

const PROGRAMS: &[&str] = &[
    "primes",
    "memcpy",
    "strcmp",
    "switch64",
    "log2",
    "bubble",
    "bubble_stack",
    "crc32",
];

fn build(compiler: Option<&str>, prefix: &str, lib: &str) {
    let dir = Path::new("programs");
    let mut build = cc::Build::new();
    if let Some(c) = compiler {
        build.compiler(c);
    }
    build
        .opt_level(2)
        .debug(false)
        .define("BENCH_NATIVE_PREFIX", prefix)
        .flag("-fno-builtin")
        .flag_if_supported("-fno-tree-loop-distribute-patterns");
    for name in PROGRAMS {
        build.file(dir.join(format!("{name}.c")));
    }
    build.compile(lib);
}

fn main() {
    for name in PROGRAMS {
        println!("cargo:rerun-if-changed=programs/{name}.c");
        println!("cargo:rerun-if-changed=programs/{name}.bin");
    }
    println!("cargo:rerun-if-changed=programs/bench.h");
    println!("cargo:rustc-check-cfg=cfg(bench_clang_native)");
    build(None, "bench_native_", "bpfc_bench_native");
    let clang = "clang-19";
    if Command::new(clang)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        build(Some(clang), "bench_clang_", "bpfc_bench_clang");
        println!("cargo:rustc-cfg=bench_clang_native");
    } else {
        println!("cargo:warning=clang-19 not found: the native clang-19 column is left out");
    }
}
