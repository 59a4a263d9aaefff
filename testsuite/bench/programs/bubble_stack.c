/* Bubble sort of 96 u32 on the stack (384 of eBPF's 512 stack bytes): the
 * input's first 96 u32 are copied into a local array, sorted, and a
 * position-weighted checksum is returned. */
#include "bench.h"

#define N 96

BENCH_ENTRY(bubble_stack)
{
	u32 a[N];
	const u32 *orig = (const u32 *)buf;
	(void)len;
	for (u64 i = 0; i < N; i++)
		a[i] = orig[i];
	for (u64 i = 0; i + 1 < N; i++) {
		for (u64 j = 0; j + 1 < N - i; j++) {
			u32 x = a[j], y = a[j + 1];
			if (x > y) {
				a[j] = y;
				a[j + 1] = x;
			}
		}
	}
	u64 sum = 0;
	for (u64 i = 0; i < N; i++)
		sum += (u64)a[i] * (i + 1);
	return sum;
}
