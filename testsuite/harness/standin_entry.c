/* Stand-in for a compiled program, used by the harness self-test
 * (tests/aot_harness.rs): implements the entry ABI of docs/abi.md by hand.
 *   - empty input: returns r2 + bpfc_helper_5(r1) (r1 is NULL, r2 is 0);
 *   - otherwise: the sum of the input bytes plus r2 plus helper_5(0x1000),
 *     so the result depends on the memory, the length and the helper;
 *   - first byte 0xff: reports fault 2 at instruction (input length), with
 *     detail 0xd00d0000 + length. */
#include <stdint.h>

struct bpfc_fault { uint32_t code; uint32_t pc; uint64_t detail; };

uint64_t bpfc_helper_5(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, void *);

uint64_t standin_entry(uint64_t r1, uint64_t r2, void *ctx, struct bpfc_fault *fault) {
    const unsigned char *mem = (const unsigned char *)(uintptr_t)r1;
    if (mem == 0)
        return r2 + bpfc_helper_5(r1, 0, 0, 0, 0, ctx);
    if (r2 > 0 && mem[0] == 0xff) {
        fault->code = 2;
        fault->pc = (uint32_t)r2;
        fault->detail = 0xd00d0000u + r2;
        return 0;
    }
    uint64_t sum = 0;
    for (uint64_t i = 0; i < r2; i++)
        sum += mem[i];
    return sum + r2 + bpfc_helper_5(0x1000, 1, 2, 3, 4, ctx);
}
