// A token-bucket rate limiter per client: each request costs tokens,
// buckets refill at .rodata's rate up to its burst, the state lives in a
// hash map, denials go out through a ring buffer and totals to .bss.
// The host passes the clock, so runs are reproducible.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct request {
	__u32 client;
	__u32 cost;
	__u64 now_ns;
};

struct bucket {
	__u64 tokens;
	__u64 last_ns;
};

struct denial {
	__u32 client;
	__u32 cost;
	__u64 tokens;
	__u64 now_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct bucket);
	__uint(max_entries, 1024);
} buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} denials SEC(".maps");

const volatile __u64 rate_per_sec = 10;
const volatile __u64 burst = 5;
__u64 allowed_total;
__u64 denied_total;

SEC("syscall")
int limit(struct request *r)
{
	__u32 client = r->client;
	struct bucket *b = bpf_map_lookup_elem(&buckets, &client);

	if (!b) {
		struct bucket fresh = { .tokens = burst, .last_ns = r->now_ns };

		bpf_map_update_elem(&buckets, &client, &fresh, BPF_NOEXIST);
		b = bpf_map_lookup_elem(&buckets, &client);
		if (!b)
			return 0;
	}
	__u64 tokens = b->tokens;
	if (r->now_ns > b->last_ns) {
		tokens += (r->now_ns - b->last_ns) * rate_per_sec / 1000000000;
		if (tokens > burst)
			tokens = burst;
		b->last_ns = r->now_ns;
	}
	if (tokens >= r->cost) {
		b->tokens = tokens - r->cost;
		__sync_fetch_and_add(&allowed_total, 1);
		return 1;
	}
	b->tokens = tokens;
	__sync_fetch_and_add(&denied_total, 1);
	struct denial *d = bpf_ringbuf_reserve(&denials, sizeof(*d), 0);
	if (d) {
		d->client = client;
		d->cost = r->cost;
		d->tokens = tokens;
		d->now_ns = r->now_ns;
		bpf_ringbuf_submit(d, 0);
	}
	return 0;
}
