#!/usr/bin/env bash
# Rebuilds the eBPF side of the benchmark programs: for each X.c, X.o
# (clang-19 -O2 -target bpf) and X.bin (the raw instructions of its "bench"
# section). Fails if a section still has relocations (calls to non-inlined
# functions, references to globals or .rodata) or if a compiler is missing.
set -euo pipefail
cd "$(dirname "$0")"
CLANG=${CLANG:-clang-19}
OBJCOPY=${OBJCOPY:-llvm-objcopy-19}
READELF=${READELF:-llvm-readelf-19}
for tool in "$CLANG" "$OBJCOPY" "$READELF"; do
	command -v "$tool" >/dev/null || { echo "build.sh: $tool not found" >&2; exit 1; }
done
for src in *.c; do
	name=${src%.c}
	"$CLANG" -O2 -target bpf -fno-builtin -Wall -Werror -c "$src" -o "$name.o"
	if "$READELF" -r "$name.o" | grep -q "Relocation section"; then
		echo "build.sh: $name.o has relocations:" >&2
		"$READELF" -r "$name.o" >&2
		exit 1
	fi
	"$OBJCOPY" -O binary --only-section=bench "$name.o" "$name.bin"
	size=$(stat -c %s "$name.bin")
	if [ "$size" -eq 0 ] || [ $((size % 8)) -ne 0 ]; then
		echo "build.sh: $name.bin has a bad size $size" >&2
		exit 1
	fi
	echo "$name: $((size / 8)) instructions"
done
# The verified programs (src/verified.rs): an object with maps and line info.
"$CLANG" -O2 -g -target bpf -I/usr/include/"$(uname -m)"-linux-gnu -Wall -Werror \
	-c verified/verified.c -o verified/verified.o
echo "verified: verified/verified.o"
