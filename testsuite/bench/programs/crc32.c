/* CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) of the input (4 KiB),
 * computed bitwise: no table, eight shift/xor steps per byte. The eight steps
 * are written out: clang unrolls an 8-trip inner loop at -O2 but gcc does
 * not, and the comparison should not hinge on that. */
#include "bench.h"

#define STEP(c) (((c) >> 1) ^ (0xedb88320u & (0u - ((c) & 1u))))

BENCH_ENTRY(crc32)
{
	u32 crc = 0xffffffffu;
	for (u64 i = 0; i < len; i++) {
		crc ^= buf[i];
		crc = STEP(crc);
		crc = STEP(crc);
		crc = STEP(crc);
		crc = STEP(crc);
		crc = STEP(crc);
		crc = STEP(crc);
		crc = STEP(crc);
		crc = STEP(crc);
	}
	return ~crc;
}
