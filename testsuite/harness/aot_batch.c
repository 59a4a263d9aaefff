/* Batch driver for bpfc AOT objects: one executable holds many programs
 * (the generated table `bpfc_batch`), so a slow runner (wine) starts once.
 * stdin holds records [u32 index][u32 length][length bytes of input
 * memory], little-endian; each runs program `index` on a fresh copy of its
 * memory and prints one line, "<record> 0x<r0 hex>" or
 * "<record> fault <code> <pc> 0x<detail hex>". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#include <fcntl.h>
#include <io.h>
#endif

#include "bpfc_abi.h"

extern const bpfc_entry_fn bpfc_batch[];
extern const unsigned bpfc_batch_len;

/* The conformance suite's helper: returns its first argument. */
uint64_t bpfc_helper_5(uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4,
                       uint64_t r5, struct bpfc_run_state *st) {
    (void)r2; (void)r3; (void)r4; (void)r5; (void)st;
    return r1;
}

/* Stand-ins for the runtime's entry points, as in aot_main.c. */
uint64_t bpfc_load_packet(struct bpfc_run_state *st, uint64_t off, uint64_t size) {
    (void)st; (void)off; (void)size;
    return (uint64_t)1 << 63;
}

uint32_t bpfc_check_access(struct bpfc_run_state *st, uint64_t addr,
                           uint64_t size, uint32_t write) {
    (void)st; (void)addr; (void)size; (void)write;
    return 0;
}

const void *bpfc_tail_call_target(struct bpfc_run_state *st, uint64_t map,
                                  uint64_t index) {
    (void)st; (void)map; (void)index;
    return NULL;
}

static int read_u32(uint32_t *v) {
    unsigned char b[4];
    if (fread(b, 1, 4, stdin) != 4)
        return 0;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 1;
}

int main(void) {
#ifdef _WIN32
    _setmode(_fileno(stdin), _O_BINARY);
#endif
    uint32_t index, len;
    for (unsigned rec = 0; read_u32(&index) && read_u32(&len); rec++) {
        unsigned char *mem = malloc(len ? len : 1);
        if (mem == NULL || fread(mem, 1, len, stdin) != len || index >= bpfc_batch_len) {
            fprintf(stderr, "bad record %u\n", rec);
            return 3;
        }
        struct bpfc_fault f;
        memset(&f, 0, sizeof f);
        uint64_t r1 = len == 0 ? 0 : (uint64_t)(uintptr_t)mem;
        uint64_t r0 = bpfc_batch[index](r1, len, NULL, &f);
        if (f.code != 0)
            printf("%u fault %u %u 0x%llx\n", rec, (unsigned)f.code, (unsigned)f.pc,
                   (unsigned long long)f.detail);
        else
            printf("%u 0x%016llx\n", rec, (unsigned long long)r0);
        free(mem);
    }
    return 0;
}
