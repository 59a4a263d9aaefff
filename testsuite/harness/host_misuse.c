/* Bad use of the bpfc C library must give errors, never crashes: links
 * examples/c-host's counter.o and prints "ok <check>" for each check that
 * behaves, "FAIL <check>: <details>" otherwise; exits 1 on a failure.
 * Built with -DBPFC_HOST_JIT (and libbpfc_jit), it also checks the JIT's
 * opens on $BPFC_HOST_OBJECT (counter.bpf.o). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpfc.h"

extern const struct bpfc_object_desc counter__object;

static int failed;

static void check(int ok, const char *what) {
    if (ok) {
        printf("ok %s\n", what);
    } else {
        printf("FAIL %s: errno %d: %s\n", what, bpfc_errno(), bpfc_strerror());
        failed = 1;
    }
}

static int says(const char *part) {
    return strstr(bpfc_strerror(), part) != NULL;
}

int main(void) {
    struct bpfc_object_desc d;
    struct bpfc_object *o;

    check(bpfc_object_open(NULL) == NULL && bpfc_errno() == -EINVAL,
          "open NULL");
    d = counter__object;
    d.magic ^= 1;
    check(bpfc_object_open(&d) == NULL && says("bad magic"), "bad magic");
    d = counter__object;
    d.version = 99;
    check(bpfc_object_open(&d) == NULL && says("version 99"),
          "other descriptor version");
    /* A corrupt image: every truncation and a flipped header byte. */
    int all = 1;
    for (uint64_t len = 0; len < counter__object.image_len; len += 7) {
        d = counter__object;
        d.image_len = len;
        if (bpfc_object_open(&d) != NULL || !says("corrupt"))
            all = 0;
    }
    check(all, "truncated images");
    uint8_t *copy = malloc(counter__object.image_len);
    memcpy(copy, counter__object.image, counter__object.image_len);
    copy[9] ^= 0x40; /* the image's version */
    d = counter__object;
    d.image = copy;
    check(bpfc_object_open(&d) == NULL && says("version"), "image version");
    free(copy);
    d = counter__object;
    d.nmaps += 1;
    check(bpfc_object_open(&d) == NULL && says("do not match"),
          "tables that do not match the image");

    o = bpfc_object_open(&counter__object);
    check(o != NULL, "open");
    check(bpfc_object_open(&counter__object) == NULL && bpfc_errno() == -EBUSY,
          "open twice");
    const struct bpfc_program *p = bpfc_object_find_program(o, "count");
    uint64_t r0;
    unsigned req[2] = {1, 1};
    check(p != NULL && bpfc_prog_run(p, req, sizeof req, &r0) == -EINVAL &&
              says("not loaded"),
          "run before load");
    check(bpfc_object_find_map(o, "nosuch") == NULL &&
              bpfc_errno() == -ENOENT && says("nosuch") && says("counts"),
          "missing map");
    check(bpfc_object_find_program(o, "nosuch") == NULL &&
              bpfc_errno() == -ENOENT && says("count"),
          "missing program");
    check(bpfc_object_load(o) == 0, "load");
    check(bpfc_object_load(o) == -EBUSY, "load twice");
    check(bpfc_prog_run(p, NULL, 8, &r0) == -EINVAL, "NULL context of size 8");
    check(bpfc_prog_run(p, req, 0, &r0) == -EINVAL, "context of size 0");
    check(bpfc_prog_run_on_cpu(p, req, sizeof req, 1u << 20, &r0) == -EINVAL,
          "CPU slot out of range");
    /* A context shorter than the program reads (count reads 8 bytes):
     * refused as the kernel's test run refuses it, never read past. A
     * heap buffer, so valgrind would see a read past it. */
    unsigned *small = malloc(4);
    *small = 1;
    check(bpfc_prog_run(p, small, 4, &r0) == -EINVAL && says("8 bytes") &&
              says("4 bytes"),
          "context smaller than the program reads");
    struct bpfc_test_run_opts topts = {.sz = sizeof topts, .ctx_in = small,
                                       .ctx_size_in = 4, .repeat = 1};
    check(bpfc_prog_test_run(p, &topts) == -EINVAL && says("8 bytes"),
          "test run with a context smaller than the program reads");
    struct bpfc_link *link = bpfc_program_attach_hook(p, "misuse/small");
    check(link != NULL &&
              bpfc_hook_fire("misuse/small", small, 4, 0, &r0, 1) == -EINVAL &&
              says("8 bytes"),
          "hook fired with a context smaller than the program reads");
    bpfc_link_destroy(link);
    free(small);
    check(bpfc_prog_run(p, req, sizeof req, &r0) == 0 && r0 == 1, "run");
    const struct bpfc_map *m = bpfc_object_find_map(o, "counts");
    unsigned key = 99;
    uint64_t v;
    check(bpfc_map_lookup_elem(m, &key, &v) == -ENOENT, "lookup missing key");
    check(bpfc_map_lookup_elem(m, NULL, &v) == -EINVAL, "NULL key");
    check(bpfc_map_close((struct bpfc_map *)m) == -EINVAL,
          "close an object's map");
    check(bpfc_ring_buffer_new(m, NULL, NULL) == NULL, "ring buffer on a hash");
    check(bpfc_object_destroy(o) == 0, "destroy");
    check(bpfc_object_destroy(o) == -EBADF, "destroy twice");
    check(bpfc_object_destroy(NULL) == -EBADF, "destroy NULL");
    o = bpfc_object_open(&counter__object);
    check(o != NULL && bpfc_object_load(o) == 0, "open again after destroy");
    p = bpfc_object_find_program(o, "count");
    check(bpfc_prog_run(p, req, sizeof req, &r0) == 0 && r0 == 1,
          "fresh maps after reopening");
    check(bpfc_object_destroy(o) == 0, "destroy again");
#ifdef BPFC_HOST_JIT
    const char *path = getenv("BPFC_HOST_OBJECT");
    check(bpfc_object_open_file(NULL) == NULL && bpfc_errno() == -EINVAL &&
              says("path"),
          "JIT: open_file NULL");
    check(bpfc_object_open_mem(NULL, 16, "x") == NULL &&
              bpfc_errno() == -EINVAL,
          "JIT: open_mem NULL");
    check(bpfc_object_open_mem(req, 0, "x") == NULL &&
              bpfc_errno() == -EINVAL && says("object x"),
          "JIT: open_mem of no bytes");
    check(bpfc_object_open_mem(req, sizeof req, NULL) == NULL &&
              bpfc_errno() == -EINVAL && says("name"),
          "JIT: open_mem without a name");
    /* Every open compiles a fresh copy: two at once, each with its maps. */
    struct bpfc_object *j1 = bpfc_object_open_file(path);
    struct bpfc_object *j2 = bpfc_object_open_file(path);
    check(j1 != NULL && j2 != NULL && j1 != j2, "JIT: open a file twice");
    const struct bpfc_program *p1 = bpfc_object_find_program(j1, "count");
    const struct bpfc_program *p2 = bpfc_object_find_program(j2, "count");
    check(bpfc_prog_run(p1, req, sizeof req, &r0) == -EINVAL &&
              says("not loaded"),
          "JIT: run before load");
    check(bpfc_object_load(j1) == 0 && bpfc_object_load(j2) == 0 &&
              bpfc_object_load(j1) == -EBUSY,
          "JIT: load, load twice");
    uint64_t r1 = 0, r2 = 0;
    check(bpfc_prog_run(p1, req, sizeof req, &r0) == 0 &&
              bpfc_prog_run(p1, req, sizeof req, &r1) == 0 &&
              bpfc_prog_run(p2, req, sizeof req, &r2) == 0 && r0 == 1 &&
              r1 == 2 && r2 == 1,
          "JIT: two opens have their own maps");
    small = malloc(4);
    *small = 1;
    check(bpfc_prog_run(p1, small, 4, &r0) == -EINVAL && says("8 bytes"),
          "JIT: context smaller than the program reads");
    free(small);
    check(bpfc_object_destroy(j1) == 0 && bpfc_object_destroy(j1) == -EBADF,
          "JIT: destroy, destroy twice");
    check(bpfc_prog_run(p2, req, sizeof req, &r2) == 0 && r2 == 2,
          "JIT: the other open runs on");
    check(bpfc_object_destroy(j2) == 0, "JIT: destroy the other");
#endif
    return failed;
}
