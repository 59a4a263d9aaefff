/* strcmp of the two NUL-terminated strings that fill the input's halves
 * (1 MiB each). Returns the index where they stop matching times 256 plus the
 * low byte of the strcmp difference, so equal and different strings both give
 * a result that depends on every compared byte. */
#include "bench.h"

BENCH_ENTRY(strcmp)
{
	const u8 *a = buf;
	const u8 *b = buf + len / 2;
	u64 i = 0;
	while (a[i] != 0 && a[i] == b[i])
		i++;
	s32 diff = (s32)a[i] - (s32)b[i];
	return (i << 8) | (u8)diff;
}
