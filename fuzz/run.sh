#!/bin/sh
# Run each fuzz target for a bounded time (seconds each, default 60), seeded
# with the project's ELF fixtures, assembly and raw programs; for CI and
# local checks.
# Needs `cargo install cargo-fuzz` and a nightly toolchain.
set -eu
cd "$(dirname "$0")"
SECS=${1:-60}
mkdir -p corpus/loader corpus/loader_core corpus/asm corpus/interp corpus/verifier
cargo +nightly fuzz run loader corpus/loader ../testsuite/fixtures/elf -- -max_total_time="$SECS"
# Seeds: each fixture whole (an ELF file with .BTF) as the target BTF.
cargo +nightly fuzz run loader_core corpus/loader_core ../testsuite/fixtures/elf -- -max_total_time="$SECS"
cargo +nightly fuzz run asm corpus/asm ../testsuite/examples ../testsuite/cases -- -max_total_time="$SECS"
cargo +nightly fuzz run interp corpus/interp ../testsuite/examples ../testsuite/bench/programs -- -max_total_time="$SECS"
# Seeds: raw programs (examples, benchmark programs) and the conformance cases.
cargo +nightly fuzz run verifier corpus/verifier ../testsuite/examples ../testsuite/bench/programs -- -max_total_time="$SECS"
