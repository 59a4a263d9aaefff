/* bpfc_abi.h: the layouts compiled eBPF programs and the bpfc runtime share
 * (docs/abi.md). Written by hand from runtime/src/abi.rs, whose #[repr(C)]
 * types are the one definition; a test (testsuite/tests/abi_header.rs)
 * compiles this header and checks every size and offset against them. */
#ifndef BPFC_ABI_H
#define BPFC_ABI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Why a run stopped early: written by the entry point on a fault. */
struct bpfc_fault {
    uint32_t code;   /* enum bpfc_fault_code; 0: no fault */
    uint32_t pc;     /* eBPF instruction index */
    uint64_t detail; /* address, helper id, ... by code */
};

enum bpfc_fault_code {
    BPFC_FAULT_CALL_DEPTH = 1,
    BPFC_FAULT_OUT_OF_BOUNDS = 2,
    BPFC_FAULT_UNKNOWN_HELPER = 3,
    BPFC_FAULT_KFUNC_CALL = 4,
    BPFC_FAULT_HELPER = 5,
    BPFC_FAULT_PACKET_LOAD = 6,
    BPFC_FAULT_UNRESOLVED_LDDW = 7,
    BPFC_FAULT_INSN_LIMIT = 8,
    BPFC_FAULT_BAD_CALLBACK = 9,
};

struct bpfc_exec_ctx; /* the runtime's per-run context (opaque; starts with the CPU slot) */

/* The state of one run, made by the entry on its stack and passed to every
 * eBPF function and helper. */
struct bpfc_run_state {
    struct bpfc_fault fault;
    struct bpfc_exec_ctx *ctx;
    uint64_t stack_base;
    uint64_t stack_top;
    uint64_t input_lo;
    uint64_t input_hi;
    uint64_t budget;
    uint64_t cb_fp;
    uint32_t cpu;
    uint32_t tail_calls;
};

/* The start of every runtime map: what a program holds for a map. */
struct bpfc_map_native {
    uint32_t map_type;
    uint32_t max_entries;
    uint32_t key_size;
    uint32_t value_size;
    uint32_t elem_size;
    uint32_t ncpus;
    uint8_t *values;
    uint64_t cpu_stride;
};

/* What an lddw of a BPF_PSEUDO_FUNC loads the address of. */
struct bpfc_callback {
    uint64_t magic; /* BPFC_CALLBACK_MAGIC */
    uint64_t pc;
    uint64_t (*func)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t,
                     uint64_t fp, struct bpfc_run_state *st);
    const void *prog;
};
#define BPFC_CALLBACK_MAGIC 0x627066635f636231ULL

/* What a prog array slot points at. */
struct bpfc_prog_native {
    const void *func;
    const void *prog;
    uint32_t id;
    uint32_t prog_type;
};

/* A self-describing object's descriptor, exported as NAME__object by
 * `bpfc compile FILE.bpf.o` (docs/abi.md, "Self-describing objects"). */
struct bpfc_prog_code {
    const void *entry; /* the entry point (bpfc_entry_fn) */
    const void *main;  /* the first eBPF function (tail call target) */
};

struct bpfc_object_desc {
    uint64_t magic;     /* BPFC_OBJECT_MAGIC */
    uint32_t version;   /* BPFC_DESC_VERSION */
    uint32_t nprogs;
    const uint8_t *image; /* the descriptor image (little-endian) */
    uint64_t image_len;
    void **maps;        /* NAME__maps: map addresses by map index */
    uint64_t nmaps;
    void **helpers;     /* helper functions, by the image's helper list */
    uint64_t nhelpers;
    const struct bpfc_prog_code *progs; /* nprogs entries */
};
#define BPFC_OBJECT_MAGIC 0x314a424f43465042ULL /* "BPFCOBJ1" */
#define BPFC_DESC_VERSION 2

/* Entry point of a compiled program (bpfc compile --symbol SYM). */
typedef uint64_t (*bpfc_entry_fn)(uint64_t r1, uint64_t r2, void *exec_ctx,
                                  struct bpfc_fault *fault);

/* A helper: r1..r5 and the run state; the result is r0. */
typedef uint64_t (*bpfc_helper_fn)(uint64_t r1, uint64_t r2, uint64_t r3,
                                   uint64_t r4, uint64_t r5,
                                   struct bpfc_run_state *st);

/* The native contexts of network programs (runtime/src/net): compiled
 * XDP programs read `struct bpfc_xdp_md`, skb programs (tc, socket filters,
 * cgroup_skb, lwt) `struct bpfc_sk_buff`; the binding step rewrote their
 * `xdp_md` / `__sk_buff` accesses to these fields. Pointers are host
 * pointers into the packet; 16-bit kernel fields are widened to 32 bits. */
struct bpfc_xdp_md {
    uint64_t data;
    uint64_t data_end;
    uint64_t data_meta;
    uint32_t ingress_ifindex;
    uint32_t rx_queue_index;
    uint32_t egress_ifindex;
    uint32_t pad;
};

struct bpfc_sk_buff {
    uint64_t data;
    uint64_t data_end;
    uint64_t data_meta;
    uint64_t tstamp;
    uint64_t hwtstamp;
    uint32_t len;
    uint32_t pkt_type;
    uint32_t mark;
    uint32_t queue_mapping;
    uint32_t protocol;     /* the ethertype as the kernel's __be16 reads */
    uint32_t vlan_present;
    uint32_t vlan_tci;
    uint32_t vlan_proto;
    uint32_t priority;
    uint32_t ingress_ifindex;
    uint32_t ifindex;
    uint32_t tc_index;
    uint32_t cb[5];
    uint32_t hash;
    uint32_t tc_classid;
    uint32_t napi_id;
    uint32_t family;
    uint32_t remote_ip4;
    uint32_t local_ip4;
    uint32_t remote_ip6[4];
    uint32_t local_ip6[4];
    uint32_t remote_port;
    uint32_t local_port;
    uint32_t wire_len;
    uint32_t gso_segs;
    uint32_t gso_size;
    uint8_t tstamp_type;
    uint8_t pad[3];
};

/* Runtime entry points compiled code may import. */
uint32_t bpfc_check_access(struct bpfc_run_state *st, uint64_t addr,
                           uint64_t size, uint32_t write);
const void *bpfc_tail_call_target(struct bpfc_run_state *st, uint64_t map,
                                  uint64_t index);
/* ldabs/ldind: the bytes at offset of the run's packet, or a negative
 * value outside it (runtime/src/net/ldabs.rs). */
uint64_t bpfc_load_packet(struct bpfc_run_state *st, uint64_t offset,
                          uint64_t size);

#ifdef __cplusplus
}
#endif
#endif
