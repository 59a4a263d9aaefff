/* Count the primes below a limit (10^4, read from the input's first u32) by
 * trial division. */
#include "bench.h"

BENCH_ENTRY(primes)
{
	u32 limit = *(u32 *)buf;
	u64 count = 0;
	(void)len;
	for (u32 n = 2; n < limit; n++) {
		u32 prime = 1;
		for (u32 d = 2; d * d <= n; d++) {
			if (n % d == 0) {
				prime = 0;
				break;
			}
		}
		count += prime;
	}
	return count;
}
