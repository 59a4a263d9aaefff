/* A stand-in for the bpfc runtime on targets where the Rust runtime
 * library cannot be built here (aarch64, riscv64, s390x under qemu-user):
 * loads a self-describing object from its descriptor the way the runtime
 * does for array maps and global data (docs/abi.md, "Self-describing
 * objects"), runs program argv[1] on the context read from stdin and
 * prints
 *   retval 0x<r0>
 *   ctx <hex>
 *   map <name> <key hex> <value hex>   (every element of every array map)
 * Only what array maps need is here: array and global data maps (other
 * map types are refused), and the helpers bpf_map_lookup_elem and
 * bpf_map_update_elem and bpf_map_delete_elem on them; any other helper
 * stops the run.
 * The descriptor's image is little-endian; map memory holds the bytecode's
 * (little-endian) values, so keys are read as little-endian words. The
 * object's descriptor symbol is reached as `bpfc_standin_object`, aliased
 * at link time (-Wl,--defsym,bpfc_standin_object=NAME__object). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpfc_abi.h"

extern const struct bpfc_object_desc bpfc_standin_object;

struct reader {
    const uint8_t *p, *end;
    int bad;
};

static uint32_t u32(struct reader *r) {
    if (r->end - r->p < 4) {
        r->bad = 1;
        return 0;
    }
    uint32_t v = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 |
                 (uint32_t)r->p[3] << 24;
    r->p += 4;
    return v;
}

static uint64_t u64(struct reader *r) {
    uint64_t lo = u32(r);
    return lo | (uint64_t)u32(r) << 32;
}

static const uint8_t *bytes(struct reader *r, uint32_t *len) {
    *len = u32(r);
    if ((uint64_t)(r->end - r->p) < *len) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *s = r->p;
    r->p += *len;
    return s;
}

struct map {
    char name[64];
    uint32_t type, key_size, value_size, max_entries;
    struct bpfc_map_native *native;
};

static struct map maps[64];
static unsigned nmaps;
static char prog_names[64][64];

static void copy_name(char *dst, const uint8_t *s, uint32_t n) {
    if (n > 63)
        n = 63;
    memcpy(dst, s, n);
    dst[n] = 0;
}

/* One map of the image (returns 0 for a map this stand-in cannot make). */
static int read_map(struct reader *r, struct map *m, int top) {
    uint32_t n;
    const uint8_t *s = bytes(r, &n);
    if (s)
        copy_name(m->name, s, n);
    uint8_t kind = r->p < r->end ? *r->p++ : 0;
    bytes(r, &n); /* section */
    m->type = u32(r);
    m->key_size = u32(r);
    m->value_size = u32(r);
    m->max_entries = u32(r);
    u32(r);           /* flags */
    u64(r);           /* map_extra */
    u32(r);           /* pinning */
    u32(r); u32(r);   /* spin lock, timer */
    u32(r); u32(r);   /* key, value type ids */
    uint8_t inner = r->p < r->end ? *r->p++ : 0;
    if (inner) {
        struct map ignored;
        read_map(r, &ignored, 0);
    }
    uint32_t slots = u32(r);
    for (uint32_t i = 0; i < slots && !r->bad; i++) {
        u32(r);
        uint8_t what = r->p < r->end ? *r->p++ : 0;
        if (what == 0)
            u32(r);
        else
            bytes(r, &n);
    }
    const uint8_t *data = bytes(r, &n);
    if (!top || kind == 5)
        return 1; /* not created: its table slot stays NULL */
    if (m->type != 2) {
        fprintf(stderr, "map %s: type %u needs the bpfc runtime\n", m->name, m->type);
        return 0;
    }
    uint32_t elem = (m->value_size + 7) / 8 * 8;
    struct bpfc_map_native *nat = calloc(1, sizeof *nat);
    nat->map_type = m->type;
    nat->max_entries = m->max_entries;
    nat->key_size = m->key_size;
    nat->value_size = m->value_size;
    nat->elem_size = elem;
    nat->ncpus = 1;
    nat->values = calloc(m->max_entries ? m->max_entries : 1, elem);
    nat->cpu_stride = (uint64_t)elem * m->max_entries;
    if (data != NULL && n > 0)
        memcpy(nat->values, data, n < m->value_size ? n : m->value_size);
    m->native = nat;
    return 1;
}

static uint32_t le32(const void *p) {
    const uint8_t *b = p;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t fail(struct bpfc_run_state *st) {
    st->fault.code = BPFC_FAULT_HELPER;
    return 0;
}

static uint64_t lookup(uint64_t map, uint64_t key, uint64_t a3, uint64_t a4, uint64_t a5,
                       struct bpfc_run_state *st) {
    (void)a3; (void)a4; (void)a5; (void)st;
    struct bpfc_map_native *m = (struct bpfc_map_native *)(uintptr_t)map;
    uint32_t i = le32((const void *)(uintptr_t)key);
    return i < m->max_entries ? (uint64_t)(uintptr_t)(m->values + (uint64_t)i * m->elem_size) : 0;
}

static uint64_t update(uint64_t map, uint64_t key, uint64_t value, uint64_t flags, uint64_t a5,
                       struct bpfc_run_state *st) {
    (void)a5; (void)st;
    struct bpfc_map_native *m = (struct bpfc_map_native *)(uintptr_t)map;
    uint32_t i = le32((const void *)(uintptr_t)key);
    /* The kernel's order of checks (array_map_update_elem); BPF_F_LOCK
     * (4) needs a spin lock, which these maps do not have. */
    if ((flags & ~(uint64_t)4) > 2)
        return (uint64_t)-22;
    if (i >= m->max_entries)
        return (uint64_t)-7;
    if (flags & 1)
        return (uint64_t)-17;
    if (flags & 4)
        return (uint64_t)-22;
    memcpy(m->values + (uint64_t)i * m->elem_size, (const void *)(uintptr_t)value, m->value_size);
    return 0;
}

/* Array elements cannot be deleted: -EINVAL, as the kernel says. */
static uint64_t delete_elem(uint64_t map, uint64_t key, uint64_t a3, uint64_t a4, uint64_t a5,
                            struct bpfc_run_state *st) {
    (void)map; (void)key; (void)a3; (void)a4; (void)a5; (void)st;
    return (uint64_t)-22;
}

static uint64_t unsupported(uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5,
                            struct bpfc_run_state *st) {
    (void)a1; (void)a2; (void)a3; (void)a4; (void)a5;
    return fail(st);
}

/* The runtime's entry points compiled code may import. */
uint32_t bpfc_check_access(struct bpfc_run_state *st, uint64_t addr, uint64_t size,
                           uint32_t write) {
    (void)st; (void)addr; (void)size; (void)write;
    return 0;
}

const void *bpfc_tail_call_target(struct bpfc_run_state *st, uint64_t map, uint64_t index) {
    (void)st; (void)map; (void)index;
    return NULL;
}

uint64_t bpfc_load_packet(struct bpfc_run_state *st, uint64_t off, uint64_t size) {
    (void)st; (void)off; (void)size;
    return (uint64_t)1 << 63;
}

static void hex(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
    if (n == 0)
        printf("-");
}

int main(int argc, char **argv) {
    const struct bpfc_object_desc *d = &bpfc_standin_object;
    if (argc != 2 || d->magic != BPFC_OBJECT_MAGIC || d->version != BPFC_DESC_VERSION) {
        fprintf(stderr, "usage: %s PROGRAM < ctx (and a version %d descriptor)\n", argv[0],
                BPFC_DESC_VERSION);
        return 2;
    }
    struct reader r = {d->image, d->image + d->image_len, 0};
    uint32_t n;
    r.p += 12; /* magic, version */
    bytes(&r, &n); bytes(&r, &n); bytes(&r, &n); /* bpfc version, name, license */
    u32(&r); u64(&r);                             /* checked, insn limit */
    uint32_t nhelpers = u32(&r);
    for (uint32_t i = 0; i < nhelpers && !r.bad; i++) {
        uint32_t id = u32(&r);
        d->helpers[i] = id == 1   ? (void *)lookup
                        : id == 2 ? (void *)update
                        : id == 3 ? (void *)delete_elem
                                  : (void *)unsupported;
    }
    uint32_t nprogs = u32(&r);
    for (uint32_t i = 0; i < nprogs && i < 64 && !r.bad; i++) {
        const uint8_t *s = bytes(&r, &n);
        if (s)
            copy_name(prog_names[i], s, n);
        /* section, type, attach type, entry, reads_stack, ctx, ctx_min */
        bytes(&r, &n); u32(&r); bytes(&r, &n); bytes(&r, &n); u32(&r); u32(&r); u32(&r);
    }
    nmaps = u32(&r);
    for (unsigned i = 0; i < nmaps && i < 64 && !r.bad; i++) {
        if (!read_map(&r, &maps[i], 1))
            return 1;
        d->maps[i] = maps[i].native;
    }
    if (r.bad || nmaps > 64 || nprogs != d->nprogs) {
        fprintf(stderr, "corrupt descriptor\n");
        return 1;
    }
    int prog = -1;
    for (uint32_t i = 0; i < nprogs; i++)
        if (strcmp(prog_names[i], argv[1]) == 0)
            prog = (int)i;
    if (prog < 0) {
        fprintf(stderr, "no program %s\n", argv[1]);
        return 1;
    }
    static uint8_t ctx[1 << 16];
    size_t len = fread(ctx, 1, sizeof ctx, stdin);
    struct bpfc_fault f;
    memset(&f, 0, sizeof f);
    bpfc_entry_fn entry = (bpfc_entry_fn)d->progs[prog].entry;
    uint64_t r0 = entry(len ? (uint64_t)(uintptr_t)ctx : 0, len, NULL, &f);
    if (f.code != 0) {
        printf("fault %u at instruction %u\n", (unsigned)f.code, (unsigned)f.pc);
        return 0;
    }
    printf("retval 0x%llx\nctx ", (unsigned long long)r0);
    hex(ctx, len);
    printf("\n");
    for (unsigned i = 0; i < nmaps; i++) {
        struct map *m = &maps[i];
        if (m->native == NULL)
            continue;
        for (uint32_t k = 0; k < m->max_entries; k++) {
            uint8_t key[4] = {(uint8_t)k, (uint8_t)(k >> 8), (uint8_t)(k >> 16), (uint8_t)(k >> 24)};
            printf("map %s ", m->name);
            hex(key, 4);
            printf(" ");
            hex(m->native->values + (uint64_t)k * m->native->elem_size, m->value_size);
            printf("\n");
        }
    }
    return 0;
}
