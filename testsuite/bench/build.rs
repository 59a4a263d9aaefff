//! Compiles the benchmark's C programs for the host with `cc -O2` (the
//! native side of every comparison) and links them into the bench binary.

use std::path::Path;

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

fn main() {
    let dir = Path::new("programs");
    let mut build = cc::Build::new();
    build
        .opt_level(2)
        .debug(false)
        .flag("-fno-builtin")
        .flag_if_supported("-fno-tree-loop-distribute-patterns");
    for name in PROGRAMS {
        build.file(dir.join(format!("{name}.c")));
        println!("cargo:rerun-if-changed=programs/{name}.c");
        println!("cargo:rerun-if-changed=programs/{name}.bin");
    }
    println!("cargo:rerun-if-changed=programs/bench.h");
    build.compile("bpfc_bench_native");
}
