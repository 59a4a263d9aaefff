/* Two objects in one program: examples/c-host's counter compiled twice,
 * as `one` and `two` (`bpfc compile --name`). Each has its own maps and
 * globals; both are open at once. Prints "ok" or what differed. */
#include <stdio.h>

#include "bpfc.h"

extern const struct bpfc_object_desc one__object, two__object;

static int run(const struct bpfc_object *o, unsigned key, int times) {
    const struct bpfc_program *p = bpfc_object_find_program(o, "count");
    unsigned req[2] = {key, 1};
    uint64_t r0 = 0;
    for (int i = 0; i < times; i++)
        if (bpfc_prog_run(p, req, sizeof req, &r0) != 0)
            return -1;
    return (int)r0;
}

int main(void) {
    struct bpfc_object *a = bpfc_object_open(&one__object);
    struct bpfc_object *b = bpfc_object_open(&two__object);
    if (a == NULL || b == NULL || bpfc_object_load(a) || bpfc_object_load(b)) {
        printf("open/load: %s\n", bpfc_strerror());
        return 1;
    }
    /* The same key counted 3 times in one, 5 times in the other. */
    int ra = run(a, 4, 3), rb = run(b, 4, 5);
    unsigned key = 4;
    uint64_t va = 0, vb = 0;
    bpfc_map_lookup_elem(bpfc_object_find_map(a, "counts"), &key, &va);
    bpfc_map_lookup_elem(bpfc_object_find_map(b, "counts"), &key, &vb);
    const char *na = bpfc_object_name(a), *nb = bpfc_object_name(b);
    int ok = ra == 3 && rb == 5 && va == 3 && vb == 5 && na[0] == 'o' && nb[0] == 't';
    printf(ok ? "ok\n" : "differ: %d %d %llu %llu %s %s\n", ra, rb,
           (unsigned long long)va, (unsigned long long)vb, na, nb);
    bpfc_object_destroy(a);
    bpfc_object_destroy(b);
    return ok ? 0 : 1;
}
