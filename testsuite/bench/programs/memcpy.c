/* Byte-by-byte copy of the input's first half (1 MiB) into its second half;
 * returns a few copied bytes so the result depends on the copy. */
#include "bench.h"

BENCH_ENTRY(memcpy)
{
	u64 n = len / 2;
	u8 *src = buf;
	u8 *dst = buf + n;
	for (u64 i = 0; i < n; i++)
		dst[i] = src[i];
	return ((u64)dst[0] << 16) | ((u64)dst[n / 3] << 8) | dst[n - 1];
}
