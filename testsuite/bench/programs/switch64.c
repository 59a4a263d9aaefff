/* A 64-case switch over an int array: each element's low six bits select
 * one of 64 different updates of an accumulator. The four case shapes
 * (add-multiply, xor-add, rotate-xor, subtract-xor) with per-case constants
 * keep the compiler from folding the switch into a lookup table. */
#include "bench.h"

#define C(k) ((u64)(k) * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull)
#define CASE0(k) case k: acc += (u64)v * C(k); break;
#define CASE1(k) case k: acc ^= (u64)v + C(k); break;
#define CASE2(k) case k: acc = ((acc << ((k) % 7 + 1)) | (acc >> (63 - (k) % 7))) ^ (u64)v; break;
#define CASE3(k) case k: acc -= (u64)v ^ C(k); break;
#define QUAD(k) CASE0(k) CASE1(k + 1) CASE2(k + 2) CASE3(k + 3)
#define QUAD4(k) QUAD(k) QUAD(k + 4) QUAD(k + 8) QUAD(k + 12)

BENCH_ENTRY(switch64)
{
	const s32 *vals = (const s32 *)buf;
	u64 n = len / 4;
	u64 acc = 0;
	for (u64 i = 0; i < n; i++) {
		s32 v = vals[i];
		switch (v & 63) {
			QUAD4(0)
			QUAD4(16)
			QUAD4(32)
			QUAD4(48)
		}
	}
	return acc;
}
