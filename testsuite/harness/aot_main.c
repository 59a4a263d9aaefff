/* Driver for bpfc AOT objects: reads the program's input memory from stdin,
 * calls the entry point per docs/abi.md and prints r0 in hex on stdout.
 * On a fault it prints "fault <code> at instruction <pc> detail <hex>" to
 * stderr and exits 2; I/O problems exit 3.
 *
 * The entry point is reached through the symbol `bpfc_entry`, which the
 * harness aliases to the object's symbol at link time
 * (-Wl,--defsym,bpfc_entry=SYM), so one compiled driver serves any symbol.
 * Nothing here depends on byte order.
 *
 * With the argument --pt-regs the input is not read: r1 points at the
 * target's own `struct pt_regs` (its uapi asm/ptrace.h; the struct
 * bpf_tracing.h reads on that architecture), every byte 0xab but for the
 * five argument registers of the C calling convention, which hold
 * PT_REGS_ARG1..5 below. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
/* Windows (mingw-w64, run under wine): stdin in binary mode; no pt_regs. */
#include <fcntl.h>
#include <io.h>
#else
#include <asm/ptrace.h>
#endif

#include "bpfc_abi.h"

#define PT_REGS_ARG1 0x1111ULL
#define PT_REGS_ARG2 0x22220000ULL
#define PT_REGS_ARG3 0x333300000000ULL
#define PT_REGS_ARG4 0x44ULL
#define PT_REGS_ARG5 0x5500ULL

#if defined(_WIN32)
/* No --pt-regs mode. */
#elif defined(__x86_64__)
typedef struct pt_regs regs_t;
#define SET_ARGS(r) ((r).rdi = PT_REGS_ARG1, (r).rsi = PT_REGS_ARG2, (r).rdx = PT_REGS_ARG3, \
                     (r).rcx = PT_REGS_ARG4, (r).r8 = PT_REGS_ARG5)
#elif defined(__aarch64__)
typedef struct user_pt_regs regs_t;
#define SET_ARGS(r) ((r).regs[0] = PT_REGS_ARG1, (r).regs[1] = PT_REGS_ARG2, \
                     (r).regs[2] = PT_REGS_ARG3, (r).regs[3] = PT_REGS_ARG4, \
                     (r).regs[4] = PT_REGS_ARG5)
#elif defined(__riscv)
typedef struct user_regs_struct regs_t;
#define SET_ARGS(r) ((r).a0 = PT_REGS_ARG1, (r).a1 = PT_REGS_ARG2, (r).a2 = PT_REGS_ARG3, \
                     (r).a3 = PT_REGS_ARG4, (r).a4 = PT_REGS_ARG5)
#elif defined(__s390x__)
typedef user_pt_regs regs_t;
#define SET_ARGS(r) ((r).gprs[2] = PT_REGS_ARG1, (r).gprs[3] = PT_REGS_ARG2, \
                     (r).gprs[4] = PT_REGS_ARG3, (r).gprs[5] = PT_REGS_ARG4, \
                     (r).gprs[6] = PT_REGS_ARG5)
#endif

extern uint64_t bpfc_entry(uint64_t r1, uint64_t r2, void *exec_ctx,
                           struct bpfc_fault *fault);

/* The conformance suite's helper: returns its first argument. */
uint64_t bpfc_helper_5(uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4,
                       uint64_t r5, struct bpfc_run_state *st) {
    (void)r2; (void)r3; (void)r4; (void)r5; (void)st;
    return r1;
}

/* Stand-ins for the runtime's entry points: this driver gives programs no
 * memory beyond their stack and input, no prog arrays and no packet. */
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

int main(int argc, char **argv) {
#ifdef SET_ARGS
    if (argc > 1 && strcmp(argv[1], "--pt-regs") == 0) {
        regs_t regs;
        memset(&regs, 0xab, sizeof regs);
        SET_ARGS(regs);
        struct bpfc_fault f;
        memset(&f, 0, sizeof f);
        uint64_t v = bpfc_entry((uint64_t)(uintptr_t)&regs, sizeof regs, NULL, &f);
        if (f.code != 0) {
            fprintf(stderr, "fault %u at instruction %u detail 0x%llx\n", (unsigned)f.code,
                    (unsigned)f.pc, (unsigned long long)f.detail);
            return 2;
        }
        printf("0x%016llx\n", (unsigned long long)v);
        return 0;
    }
#endif
    (void)argc;
    (void)argv;
#ifdef _WIN32
    _setmode(_fileno(stdin), _O_BINARY);
#endif
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
