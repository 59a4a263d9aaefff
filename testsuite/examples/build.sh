#!/bin/sh
# Rebuild the example objects (letters.o) with clang-19 and the libbpf-dev
# headers. The objects are committed; cli/tests/readme_example.rs runs the
# README's command on them.
set -eu
cd "$(dirname "$0")"
CLANG=${CLANG:-clang-19}
$CLANG -O2 -g -mcpu=v3 -I/usr/include/x86_64-linux-gnu -fdebug-prefix-map=$(pwd)=. \
	-target bpf -c letters.c -o letters.o
