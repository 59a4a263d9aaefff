/* Driver for bpfc AOT objects: reads the program's input memory from stdin,
 * calls the entry point per docs/abi.md and prints r0 in hex on stdout.
 * On a fault it prints "fault <code> at instruction <pc> detail <hex>" to
 * stderr and exits 2; I/O problems exit 3.
 *
 * The entry point is reached through the symbol `bpfc_entry`, which the
 * harness aliases to the object's symbol at link time
 * (-Wl,--defsym,bpfc_entry=SYM), so one compiled driver serves any symbol.
 * Nothing here depends on byte order. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpfc_abi.h"

extern uint64_t bpfc_entry(uint64_t r1, uint64_t r2, void *exec_ctx,
                           struct bpfc_fault *fault);

/* The conformance suite's helper: returns its first argument. */
uint64_t bpfc_helper_5(uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4,
                       uint64_t r5, struct bpfc_run_state *st) {
    (void)r2; (void)r3; (void)r4; (void)r5; (void)st;
    return r1;
}

/* Stand-ins for the runtime's entry points: this driver gives programs no
 * memory beyond their stack and input, and no prog arrays. */
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

int main(void) {
    size_t cap = 4096, len = 0;
    unsigned char *buf = malloc(cap);
    if (buf == NULL) {
        fprintf(stderr, "out of memory\n");
        return 3;
    }
    for (;;) {
        if (len == cap) {
            unsigned char *grown = realloc(buf, cap * 2);
            if (grown == NULL) {
                fprintf(stderr, "out of memory\n");
                return 3;
            }
            buf = grown;
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len, stdin);
        len += n;
        if (n == 0) {
            if (ferror(stdin)) {
                fprintf(stderr, "reading stdin failed\n");
                return 3;
            }
            break;
        }
    }
    struct bpfc_fault fault;
    memset(&fault, 0, sizeof fault);
    uint64_t r1 = len == 0 ? 0 : (uint64_t)(uintptr_t)buf;
    uint64_t r0 = bpfc_entry(r1, (uint64_t)len, NULL, &fault);
    if (fault.code != 0) {
        fprintf(stderr, "fault %u at instruction %u detail 0x%llx\n",
                (unsigned)fault.code, (unsigned)fault.pc,
                (unsigned long long)fault.detail);
        free(buf);
        return 2;
    }
    printf("0x%016llx\n", (unsigned long long)r0);
    free(buf);
    return 0;
}
