/* Hook points: examples/c-host's counter compiled as `one` and `two`,
 * both attached to the hook "request"; firing runs both in attach order;
 * a detached program stops running; a thread fires the hook while
 * another attaches and detaches, and every run a fire reports is counted
 * by the programs' maps (nothing lost, nothing run after its object is
 * gone). Prints "ok" or what differed.
 * Built with -DBPFC_HOST_JIT (and libbpfc_jit), `one` is instead the
 * object file $BPFC_HOST_OBJECT compiled at run time from its bytes
 * (bpfc_object_open_mem): a JIT object and a linked one on one hook. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpfc.h"

extern const struct bpfc_object_desc one__object, two__object;

#ifdef BPFC_HOST_JIT
static struct bpfc_object *open_one(void) {
    static unsigned char buf[1 << 20];
    const char *path = getenv("BPFC_HOST_OBJECT");
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (f == NULL) {
        printf("BPFC_HOST_OBJECT: cannot open %s\n", path ? path : "(unset)");
        return NULL;
    }
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    return bpfc_object_open_mem(buf, n, "one");
}
#else
static struct bpfc_object *open_one(void) { return bpfc_object_open(&one__object); }
#endif

static const struct bpfc_program *pa, *pb;
static volatile int stop;
static long fired_runs;

static void *firer(void *arg) {
    (void)arg;
    unsigned req[2] = {1, 1};
    uint64_t r[4];
    while (!stop) {
        int n = bpfc_hook_fire("request", req, sizeof req, 1, r, 4);
        if (n < 0) {
            printf("fire: %s\n", bpfc_strerror());
            return NULL;
        }
        fired_runs += n;
    }
    return NULL;
}

static uint64_t count(const struct bpfc_object *o) {
    unsigned key = 1;
    uint64_t v = 0;
    bpfc_map_lookup_elem(bpfc_object_find_map(o, "counts"), &key, &v);
    return v;
}

int main(void) {
    struct bpfc_object *a = open_one();
    struct bpfc_object *b = bpfc_object_open(&two__object);
    if (a == NULL || b == NULL || bpfc_object_load(a) || bpfc_object_load(b)) {
        printf("open/load: %s\n", bpfc_strerror());
        return 1;
    }
    pa = bpfc_object_find_program(a, "count");
    pb = bpfc_object_find_program(b, "count");
    unsigned req[2] = {1, 1};
    uint64_t r[4] = {0};
    int ok = 1;
    if (bpfc_hook_fire("request", req, sizeof req, 0, r, 4) != 0) {
        printf("an empty hook ran something\n");
        ok = 0;
    }
    /* b first, then a: the counts tell the order (b's 1, then a's 1). */
    struct bpfc_link *lb = bpfc_program_attach_hook(pb, "request");
    bpfc_hook_fire("request", req, sizeof req, 0, r, 4);
    struct bpfc_link *la = bpfc_program_attach_hook(pa, "request");
    int n = bpfc_hook_fire("request", req, sizeof req, 0, r, 4);
    if (n != 2 || r[0] != 2 || r[1] != 1) {
        printf("order: %d programs, r0 %llu %llu\n", n, (unsigned long long)r[0],
               (unsigned long long)r[1]);
        ok = 0;
    }
    bpfc_link_destroy(lb);
    n = bpfc_hook_fire("request", req, sizeof req, 0, r, 4);
    if (n != 1 || r[0] != 2) {
        printf("after detach: %d programs, r0 %llu\n", n, (unsigned long long)r[0]);
        ok = 0;
    }
    /* The section's hook. */
    struct bpfc_link *ls = bpfc_program_attach(pb);
    n = bpfc_hook_fire("syscall", req, sizeof req, 0, r, 4);
    if (ls == NULL || n != 1 || r[0] != 3) {
        printf("section hook: %d programs, r0 %llu\n", n, (unsigned long long)r[0]);
        ok = 0;
    }
    bpfc_link_destroy(ls);
    bpfc_link_destroy(la);
    uint64_t before = count(a) + count(b);
    /* Concurrent attach/detach while another thread fires. */
    pthread_t t;
    pthread_create(&t, NULL, firer, NULL);
    for (int i = 0; i < 2000; i++) {
        struct bpfc_link *x = bpfc_program_attach_hook(i % 2 ? pa : pb, "request");
        struct bpfc_link *y = bpfc_program_attach_hook(i % 2 ? pb : pa, "request");
        bpfc_link_destroy(x);
        bpfc_link_destroy(y);
    }
    stop = 1;
    pthread_join(t, NULL);
    uint64_t after = count(a) + count(b);
    if ((long)(after - before) != fired_runs) {
        printf("fires reported %ld runs, the maps counted %llu\n", fired_runs,
               (unsigned long long)(after - before));
        ok = 0;
    }
    /* Destroying an object detaches its programs. */
    bpfc_program_attach_hook(pa, "request");
    bpfc_object_destroy(a);
    n = bpfc_hook_fire("request", req, sizeof req, 0, r, 4);
    if (n != 0) {
        printf("a destroyed object's program still ran (%d)\n", n);
        ok = 0;
    }
    bpfc_object_destroy(b);
    if (ok)
        printf("ok\n");
    return ok ? 0 : 1;
}
