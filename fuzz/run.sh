#!/bin/sh
# Run each fuzz target for a bounded time (seconds, default 60), seeded with
# the ELF fixtures; for CI and local checks. Needs `cargo install cargo-fuzz`
# and a nightly toolchain.
set -eu
cd "$(dirname "$0")"
SECS=${1:-60}
mkdir -p corpus/loader
cargo +nightly fuzz run loader corpus/loader ../testsuite/fixtures/elf -- -max_total_time="$SECS"
