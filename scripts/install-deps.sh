#!/usr/bin/env bash
# Install the Debian packages bpfc's tests, CI and benchmarks use (Debian 12
# or newer; .ci/run calls this too, so the list below is the only one).
#
#   scripts/install-deps.sh           install whatever is missing (root, or sudo)
#   scripts/install-deps.sh --check   list what is missing; exit 1 if anything is
#   scripts/install-deps.sh --list    print the package names, one a line
#
# Rust itself (the workspace's rust-version, and a nightly toolchain with
# cargo-fuzz for fuzzing) comes from rustup and cargo, not from here.
set -euo pipefail

# One package a line, with what needs it. Add new packages here.
PACKAGES=(
  clang-19                      # C fixtures (clang-19 -target bpf), the native baseline of the benchmark
  llvm-19                       # llvm-objdump-19 and llvm-mc-19: disassembly and loader cross-checks
  libbpf-dev                    # bpf/bpf_helpers.h for the C fixtures
  bpftool                       # kernel-syntax, map and BTF cross-checks against the running kernel
  qemu-user                     # runs the AOT objects for aarch64, riscv64 and s390x
  gcc-aarch64-linux-gnu         # links the aarch64 AOT harness
  gcc-riscv64-linux-gnu         # links the riscv64 AOT harness
  gcc-s390x-linux-gnu           # links the s390x AOT harness
  python3                       # the bpf_conformance suite's run.py
  linux-source-6.12             # the kernel's sources, read for facts about its behaviour
  gcc-mingw-w64-x86-64          # Windows AOT objects: linking (tests being added)
  wine64                        # Windows AOT objects: running (tests being added)
  valgrind                      # memory checks of compiled code and the runtime (tests being added)
  golang-github-cilium-ebpf-dev # cilium/ebpf's test ELFs: a loader corpus
  xdp-tools                     # xdp-tools' BPF objects: a loader corpus
  libxdp1                       # libxdp's BPF objects: a loader corpus
  libbpf-tools                  # the BPF objects inside libbpf-tools' binaries: a loader corpus
  gcc-bpf                       # GCC's BPF backend, a second compiler of the C fixtures
)

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q ' installed$'
}

mode=install
case "${1:-}" in
  "") ;;
  --check) mode=check ;;
  --list) printf '%s\n' "${PACKAGES[@]}"; exit 0 ;;
  -h|--help) sed -n '2,10s/^# \{0,1\}//p' "$0"; exit 0 ;;
  *) echo "install-deps: unknown argument $1 (try --help)" >&2; exit 2 ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: not a Debian system; install the equivalents of:" >&2
  printf '  %s\n' "${PACKAGES[@]}" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages are installed"
  exit 0
fi
if [ "$mode" = check ]; then
  echo "install-deps: missing: ${missing[*]}"
  echo "install-deps: run scripts/install-deps.sh to install them"
  exit 1
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-deps: run as root (or install sudo)" >&2; exit 1; }
  sudo=(sudo)
fi
# Wait for another apt or dpkg (an engineer's, unattended upgrades) to finish.
lock=(-o DPkg::Lock::Timeout=900)
echo "install-deps: installing ${missing[*]}"
"${sudo[@]}" apt-get "${lock[@]}" update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${lock[@]}" install -y -qq "${missing[@]}" >/dev/null
echo "install-deps: done"
