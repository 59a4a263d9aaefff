/* CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) of the input (4 KiB),
 * computed bitwise: no table, eight shift/xor steps per byte. */
#include "bench.h"

BENCH_ENTRY(crc32)
{
	u32 crc = 0xffffffffu;
	for (u64 i = 0; i < len; i++) {
		crc ^= buf[i];
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
	}
	return ~crc;
}
