/* A host application built on a bpfc skeleton: it tunes the program
 * through .rodata before loading it, attaches it to its hook and fires
 * the hook from several threads for a stream of requests, then reads the results back from a hash map, a
 * per-CPU array, .bss and .data, and the events the program sent through
 * a ring buffer.
 *
 *   usage: counter-host THREADS REQUESTS THRESHOLD
 * (per-CPU counts are exact with at most one thread per possible CPU) */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "counter.skel.h"

struct req {
    unsigned int key;
    unsigned int weight;
};

static struct counter *skel;
static int requests, ncpus;

static void *worker(void *arg) {
    long id = (long)arg;
    for (int i = 0; i < requests; i++) {
        struct req r = {.key = (unsigned)(i % 8), .weight = (unsigned)(id + 1)};
        uint64_t ret;
        /* The hook: counter__attach put the program on the hook its
         * section names. Each thread fires it on its own CPU slot, as
         * per-CPU maps expect. */
        int err = bpfc_hook_fire("syscall", &r, sizeof r, (uint32_t)(id % ncpus),
                                 &ret, 1);
        if (err != 1) {
            fprintf(stderr, "run: %s\n", bpfc_strerror());
            exit(1);
        }
    }
    return NULL;
}

/* struct event comes from the skeleton (the program's BTF). */
static int on_event(void *ctx, void *data, size_t size) {
    const struct event *e = data;
    (void)ctx;
    if (size != sizeof *e)
        return -22;
    printf("event key %u count %u\n", e->key, e->count);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s THREADS REQUESTS THRESHOLD\n", argv[0]);
        return 2;
    }
    int threads = atoi(argv[1]);
    requests = atoi(argv[2]);
    ncpus = bpfc_num_possible_cpus();
    skel = counter__open();
    if (skel == NULL) {
        fprintf(stderr, "open: %s\n", bpfc_strerror());
        return 1;
    }
    skel->rodata->threshold = (unsigned)atoi(argv[3]);
    if (counter__load(skel) || counter__attach(skel)) {
        fprintf(stderr, "load: %s\n", bpfc_strerror());
        counter__destroy(skel);
        return 1;
    }
    /* After load, the pointers are the live global data: the program
     * adds to this starting total. */
    skel->bss->total = 1000000;
    pthread_t tid[64];
    for (long t = 0; t < threads && t < 64; t++)
        pthread_create(&tid[t], NULL, worker, (void *)t);
    for (long t = 0; t < threads && t < 64; t++)
        pthread_join(tid[t], NULL);

    for (unsigned key = 0; key < 8; key++) {
        uint64_t n = 0;
        if (bpfc_map_lookup_elem(skel->maps.counts, &key, &n) == 0)
            printf("count %u %llu\n", key, (unsigned long long)n);
    }
    uint64_t *hits = calloc((size_t)ncpus, sizeof *hits);
    unsigned zero = 0;
    uint64_t sum = 0;
    if (bpfc_map_lookup_elem(skel->maps.hits, &zero, hits) == 0)
        for (int c = 0; c < ncpus; c++)
            sum += hits[c];
    free(hits);
    printf("hits %llu\n", (unsigned long long)sum);
    printf("total %llu\n", (unsigned long long)skel->bss->total);
    printf("last_key %u\n", skel->data->last_key);
    struct bpfc_ring_buffer *rb =
        bpfc_ring_buffer_new(skel->maps.events, on_event, NULL);
    if (rb == NULL || bpfc_ring_buffer_consume(rb) < 0) {
        fprintf(stderr, "ring buffer: %s\n", bpfc_strerror());
        return 1;
    }
    bpfc_ring_buffer_free(rb);
    counter__destroy(skel);
    return 0;
}
