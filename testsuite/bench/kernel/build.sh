#!/bin/sh
# Rebuild progs.o (bpfc-bench-kernel's programs) with clang-19 and the
# libbpf-dev headers; the object is committed.
set -eu
cd "$(dirname "$0")"
${CLANG:-clang-19} -O2 -g -mcpu=v3 -I/usr/include/x86_64-linux-gnu \
	-fdebug-prefix-map=$(pwd)=. -target bpf -c progs.c -o progs.o
