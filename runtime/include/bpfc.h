/* bpfc.h: the bpfc runtime as a C library (libbpfc_runtime.a / .so), for
 * hosts that link objects compiled with `bpfc compile FILE.bpf.o`, or
 * with the JIT (libbpfc_jit.a / .so) for hosts that open FILE.bpf.o at
 * run time (bpfc_object_open_file).
 * Written by hand from runtime/src/host/capi and compiler/capi;
 * testsuite/tests/abi_header.rs checks that every function here is
 * exported by the libraries and every exported function is declared here.
 *
 *   cc app.c X.o -Iruntime/include -Ltarget/release -l:libbpfc_runtime.a \
 *      -lpthread -ldl -lm
 *   cc app.c -Iruntime/include -Ltarget/release -l:libbpfc_jit.a \
 *      -lpthread -ldl -lm
 *
 * Errors: functions return 0 or a negative errno (handles: NULL), and
 * bpfc_strerror() gives the calling thread's last error message.
 * Threads: runs and map operations may come from any thread at once;
 * open, load and destroy of one object must not race with other calls on
 * it (a destroy waits for runs in progress). */
#ifndef BPFC_H
#define BPFC_H

#include <stddef.h>
#include <stdint.h>

#include "bpfc_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

struct bpfc_object;
struct bpfc_program;
struct bpfc_map;
struct bpfc_ring_buffer;
struct bpfc_perf_buffer;
struct bpfc_link;

/* Errors. */
const char *bpfc_strerror(void);
int bpfc_errno(void);

/* Objects: open from the linked descriptor (&NAME__object), or by name
 * through dlsym (the executable must export NAME__object: -rdynamic). */
struct bpfc_object *bpfc_object_open(const struct bpfc_object_desc *desc);
struct bpfc_object *bpfc_object_open_linked(const char *name);
/* JIT (libbpfc_jit.a / .so only, which hold the whole runtime too: link
 * it instead of libbpfc_runtime): open an ELF object (X.bpf.o, named X)
 * at run time, every program verified and compiled in memory. The object
 * is then used as a linked one: bpfc_object_load, runs, maps, hooks,
 * bpfc_object_destroy. A verifier rejection is -EACCES. */
struct bpfc_object *bpfc_object_open_file(const char *path);
struct bpfc_object *bpfc_object_open_mem(const void *buf, size_t size,
                                         const char *name);
int bpfc_object_set_pin_root(struct bpfc_object *obj, const char *dir);
int bpfc_object_load(struct bpfc_object *obj);
int bpfc_object_destroy(struct bpfc_object *obj);
const char *bpfc_object_name(const struct bpfc_object *obj);
int bpfc_object_program_count(const struct bpfc_object *obj);
const struct bpfc_program *bpfc_object_program(const struct bpfc_object *obj,
                                               size_t i);
const struct bpfc_program *bpfc_object_find_program(
    const struct bpfc_object *obj, const char *name);
int bpfc_object_map_count(const struct bpfc_object *obj);
const struct bpfc_map *bpfc_object_map(const struct bpfc_object *obj,
                                       size_t i);
const struct bpfc_map *bpfc_object_find_map(const struct bpfc_object *obj,
                                            const char *name);

/* Programs. A run gets r1 = ctx and r2 = ctx_size; *retval is r0. A fault
 * returns -EFAULT with its message. As the kernel's test run, a context
 * smaller than the program accesses (the verifier's max_ctx_offset) is
 * refused with -EINVAL, here, in bpfc_prog_test_run and in hooks. */
const char *bpfc_program_name(const struct bpfc_program *prog);
const char *bpfc_program_section(const struct bpfc_program *prog);
int bpfc_program_type(const struct bpfc_program *prog);
int bpfc_prog_run(const struct bpfc_program *prog, void *ctx,
                  size_t ctx_size, uint64_t *retval);
int bpfc_prog_run_on_cpu(const struct bpfc_program *prog, void *ctx,
                         size_t ctx_size, uint32_t cpu, uint64_t *retval);
int bpfc_num_possible_cpus(void);

/* As the kernel's BPF_PROG_TEST_RUN (libbpf's bpf_test_run_opts): network
 * programs (xdp, tc, socket filters, cgroup_skb, lwt) run on the packet
 * data_in (an Ethernet frame) with their context built from ctx_in (an
 * xdp_md / __sk_buff); others on a copy of ctx_in. data_size_out and
 * ctx_size_out give the room on entry and the size on return (-ENOSPC
 * when it is too small). bpfc_prog_run refuses network programs. */
struct bpfc_test_run_opts {
    size_t sz; /* sizeof(struct bpfc_test_run_opts) */
    const void *data_in;
    size_t data_size_in;
    void *data_out;
    size_t data_size_out;
    const void *ctx_in;
    size_t ctx_size_in;
    void *ctx_out;
    size_t ctx_size_out;
    uint32_t repeat;
    uint32_t cpu;
    uint32_t retval;   /* out: the low 32 bits of r0 */
    uint32_t duration; /* out: nanoseconds per run */
};
int bpfc_prog_test_run(const struct bpfc_program *prog,
                       struct bpfc_test_run_opts *opts);

/* Hook points: a host fires a named hook (any string, e.g. the section
 * name "uprobe/handle_request") with a context; the programs attached to
 * it run in attach order. bpfc_program_attach uses the program's section
 * as the hook name. Attach, detach and fire from any threads at once.
 * bpfc_hook_fire returns how many programs ran (their r0 in retvals, up
 * to max) or the first failure's negative errno. */
struct bpfc_link *bpfc_program_attach(const struct bpfc_program *prog);
struct bpfc_link *bpfc_program_attach_hook(const struct bpfc_program *prog,
                                           const char *hook);
int bpfc_link_destroy(struct bpfc_link *link);
int bpfc_hook_fire(const char *hook, void *ctx, size_t ctx_size, uint32_t cpu,
                   uint64_t *retvals, size_t max);

/* Maps. Per-CPU lookups fill bpfc_num_possible_cpus() values, each
 * rounded up to 8 bytes. */
const char *bpfc_map_name(const struct bpfc_map *map);
int bpfc_map_type(const struct bpfc_map *map);
int bpfc_map_key_size(const struct bpfc_map *map);
int bpfc_map_value_size(const struct bpfc_map *map);
int bpfc_map_max_entries(const struct bpfc_map *map);
int bpfc_map_lookup_elem(const struct bpfc_map *map, const void *key,
                         void *value);
int bpfc_map_update_elem(const struct bpfc_map *map, const void *key,
                         const void *value, uint64_t flags);
int bpfc_map_delete_elem(const struct bpfc_map *map, const void *key);
int bpfc_map_get_next_key(const struct bpfc_map *map, const void *key,
                          void *next_key);
int bpfc_map_lookup_and_delete_elem(const struct bpfc_map *map,
                                    const void *key, void *value);
int bpfc_map_freeze(const struct bpfc_map *map);
/* Global data (.data, .rodata, .bss): before load the image load writes,
 * after load the map's value memory. */
void *bpfc_map_initial_value(const struct bpfc_map *map, size_t *size);
int bpfc_map_pin(const struct bpfc_map *map, const char *path);
int bpfc_map_unpin(const struct bpfc_map *map);
struct bpfc_map *bpfc_map_open_pinned(const char *path);
int bpfc_map_close(struct bpfc_map *map);

#define BPFC_ANY 0
#define BPFC_NOEXIST 1
#define BPFC_EXIST 2
#define BPFC_F_LOCK 4

/* Ring buffers: a negative callback return stops the poll, which returns
 * it. Timeouts in milliseconds; negative waits without limit. */
typedef int (*bpfc_ring_buffer_sample_fn)(void *ctx, void *data, size_t size);
struct bpfc_ring_buffer *bpfc_ring_buffer_new(const struct bpfc_map *map,
                                              bpfc_ring_buffer_sample_fn sample,
                                              void *ctx);
int bpfc_ring_buffer_poll(struct bpfc_ring_buffer *rb, int timeout_ms);
int bpfc_ring_buffer_consume(struct bpfc_ring_buffer *rb);
void bpfc_ring_buffer_free(struct bpfc_ring_buffer *rb);

/* Perf buffers over a perf event array: page_cnt pages (a power of two)
 * per CPU slot. */
typedef void (*bpfc_perf_buffer_sample_fn)(void *ctx, int cpu, void *data,
                                           uint32_t size);
typedef void (*bpfc_perf_buffer_lost_fn)(void *ctx, int cpu, uint64_t count);
struct bpfc_perf_buffer *bpfc_perf_buffer_new(const struct bpfc_map *map,
                                              size_t page_cnt,
                                              bpfc_perf_buffer_sample_fn sample,
                                              bpfc_perf_buffer_lost_fn lost,
                                              void *ctx);
int bpfc_perf_buffer_poll(struct bpfc_perf_buffer *pb, int timeout_ms);
int bpfc_perf_buffer_consume(struct bpfc_perf_buffer *pb);
void bpfc_perf_buffer_free(struct bpfc_perf_buffer *pb);

#ifdef __cplusplus
}
#endif
#endif
