/* A host built on the bpfc C library (bpfc.h): opens the linked object
 * NAME (argv[1], found by its NAME__object symbol: link with -rdynamic),
 * loads it, runs program argv[2] on the context read from stdin (with a
 * packet file argv[3]: a test run on that packet, stdin its ctx_in), and
 * prints
 *   retval 0x<r0>                         (a test run: the low 32 bits)
 *   data <hex of the packet after the run> (test runs only)
 *   ctx <hex of the context after the run>
 *   map <name> <key hex> <value hex>      (every element, key order)
 *   skip <name>                           (maps that cannot be walked,
 *                                          prog arrays)
 * Errors print "error <negative errno> <message>" and exit 1.
 * BPFC_HOST_WAIT_MS=N waits N ms after the run before the maps are read
 * (bpf_timer callbacks fire meanwhile).
 * Built with -DBPFC_HOST_JIT (and libbpfc_jit), argv[1] is an object file
 * (X.bpf.o) that the host opens at run time with bpfc_object_open_file;
 * everything after the open is the same code. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bpfc.h"

static void hex(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
    if (n == 0)
        printf("-");
}

static int fail(int err) {
    printf("error %d %s\n", err, bpfc_strerror());
    return 1;
}

static void dump_map(const struct bpfc_map *m) {
    int ksz = bpfc_map_key_size(m), vsz = bpfc_map_value_size(m);
    int type = bpfc_map_type(m);
    /* Per-CPU hashes (5, 10) and arrays (6): one 8-aligned slot per CPU. */
    if (type == 5 || type == 6 || type == 10)
        vsz = ((vsz + 7) / 8 * 8) * bpfc_num_possible_cpus();
    unsigned char *key = calloc(1, ksz + 1), *next = calloc(1, ksz + 1);
    unsigned char *val = calloc(1, vsz + 1);
    const void *prev = NULL;
    int err;
    /* Walk first, so a map that cannot be walked prints nothing else. */
    err = bpfc_map_get_next_key(m, NULL, next);
    /* Prog arrays hold program ids, which are the process's own. */
    if (ksz == 0 || type == 3 || (err != 0 && err != -2)) {
        printf("skip %s\n", bpfc_map_name(m));
        goto out;
    }
    while (err == 0) {
        memcpy(key, next, ksz);
        prev = key;
        if (bpfc_map_lookup_elem(m, key, val) == 0) {
            printf("map %s ", bpfc_map_name(m));
            hex(key, ksz);
            printf(" ");
            hex(val, vsz);
            printf("\n");
        }
        err = bpfc_map_get_next_key(m, prev, next);
    }
out:
    free(key);
    free(next);
    free(val);
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s OBJECT PROGRAM [PACKET] < ctx\n", argv[0]);
        return 2;
    }
    static unsigned char ctx[1 << 16];
    size_t len = fread(ctx, 1, sizeof ctx, stdin);
#ifdef BPFC_HOST_JIT
    struct bpfc_object *obj = bpfc_object_open_file(argv[1]);
#else
    struct bpfc_object *obj = bpfc_object_open_linked(argv[1]);
#endif
    if (obj == NULL)
        return fail(bpfc_errno());
    int err = bpfc_object_load(obj);
    if (err)
        return fail(err);
    const struct bpfc_program *prog = bpfc_object_find_program(obj, argv[2]);
    if (prog == NULL)
        return fail(bpfc_errno());
    if (argc == 4) {
        static unsigned char pkt[1 << 16], data_out[1 << 16], ctx_out[1 << 16];
        FILE *f = fopen(argv[3], "rb");
        if (f == NULL) {
            perror(argv[3]);
            return 3;
        }
        size_t plen = fread(pkt, 1, sizeof pkt, f);
        fclose(f);
        struct bpfc_test_run_opts o = {
            .sz = sizeof o,
            .data_in = pkt,
            .data_size_in = plen,
            .data_out = data_out,
            .data_size_out = sizeof data_out,
            .ctx_in = len ? ctx : NULL,
            .ctx_size_in = len,
            .ctx_out = ctx_out,
            .ctx_size_out = sizeof ctx_out,
            .repeat = 1,
        };
        err = bpfc_prog_test_run(prog, &o);
        if (err)
            return fail(err);
        printf("retval 0x%x\ndata ", o.retval);
        hex(data_out, o.data_size_out);
        printf("\nctx ");
        hex(ctx_out, o.ctx_size_out);
        printf("\n");
    } else {
        uint64_t r0 = 0;
        err = bpfc_prog_run(prog, len ? ctx : NULL, len, &r0);
        if (err)
            return fail(err);
        printf("retval 0x%llx\nctx ", (unsigned long long)r0);
        hex(ctx, len);
        printf("\n");
    }
    const char *wait = getenv("BPFC_HOST_WAIT_MS");
    if (wait != NULL && atoi(wait) > 0) {
        struct timespec ts = {atoi(wait) / 1000, (atoi(wait) % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < bpfc_object_map_count(obj); i++) {
        const struct bpfc_map *m = bpfc_object_map(obj, i);
        /* Inner map templates and struct_ops maps exist only as
         * definitions. */
        if (bpfc_map_lookup_elem(m, NULL, NULL) == -22 &&
            strstr(bpfc_strerror(), "does not exist") != NULL)
            continue;
        dump_map(m);
    }
    err = bpfc_object_destroy(obj);
    if (err)
        return fail(err);
    return 0;
}
