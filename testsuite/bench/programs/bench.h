/* Shared definitions for bpfc's benchmark programs.
 *
 * Each program is one C file compiled twice from the same source:
 *   eBPF:   clang-19 -O2 -target bpf -fno-builtin -c X.c -o X.o   (entry in section "bench")
 *   native: cc -O2 -fno-builtin -fno-tree-loop-distribute-patterns (entry bench_native_X)
 * The entry receives a pointer to the input buffer (r1) and its length in
 * bytes (r2) and returns a u64 (r0). No helpers, no maps, no globals: every
 * callee is always_inline so the section holds one self-contained function.
 * -fno-builtin (and gcc's -fno-tree-loop-distribute-patterns) keep copy loops
 * as loops on both sides instead of turning them into memcpy calls.
 */
#ifndef BPFC_BENCH_H
#define BPFC_BENCH_H

typedef unsigned char u8;
typedef unsigned int u32;
typedef int s32;
typedef unsigned long long u64;
typedef long long s64;

#define INLINE static inline __attribute__((always_inline))

#ifdef __bpf__
#define BENCH_ENTRY(name) \
	__attribute__((section("bench"), used)) u64 bench_##name(u8 *buf, u64 len)
#else
/* build.rs compiles the native side twice: with cc (bench_native_NAME) and,
 * when available, with clang-19 (-DBENCH_NATIVE_PREFIX=bench_clang_). */
#ifndef BENCH_NATIVE_PREFIX
#define BENCH_NATIVE_PREFIX bench_native_
#endif
#define BENCH_CAT2(a, b) a##b
#define BENCH_CAT(a, b) BENCH_CAT2(a, b)
#define BENCH_ENTRY(name) u64 BENCH_CAT(BENCH_NATIVE_PREFIX, name)(u8 *buf, u64 len)
#endif

#endif
