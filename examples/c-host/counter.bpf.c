// The C host example's program: counts requests by key in a hash map,
// adds their weights to a .bss total, remembers the last key in .data,
// and reports a key reaching the host-tunable .rodata threshold through a
// ring buffer. examples/c-host/main.c runs it on several threads.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct event {
	__u32 key;
	__u32 count;
	__u64 weight;
};

struct req {
	__u32 key;
	__u32 weight;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 64);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} hits SEC(".maps");

const volatile __u32 threshold = 3;
__u64 total;
__u32 last_key = 7;
struct event last_event;

SEC("syscall")
int count(struct req *r)
{
	__u32 key = r->key, z = 0;
	__u64 one = 1, *v, *h, n = 0;

	for (int tries = 0; tries < 4; tries++) {
		v = bpf_map_lookup_elem(&counts, &key);
		if (v) {
			n = __sync_add_and_fetch(v, 1);
			break;
		}
		if (bpf_map_update_elem(&counts, &key, &one, BPF_NOEXIST) == 0) {
			n = 1;
			break;
		}
	}
	__sync_fetch_and_add(&total, r->weight);
	last_key = key;
	h = bpf_map_lookup_elem(&hits, &z);
	if (h)
		*h += 1;
	if (n == threshold) {
		struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

		if (e) {
			e->key = key;
			e->count = n;
			e->weight = r->weight;
			last_event = *e;
			bpf_ringbuf_submit(e, 0);
		}
	}
	return n;
}
