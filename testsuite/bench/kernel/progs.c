// Programs of bpfc-bench-kernel: each is an XDP program that ignores its
// packet, so bpfc's JIT and the kernel (BPF_PROG_TEST_RUN with repeat) run
// exactly the same instructions. Rebuild progs.o with ./build.sh.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define N 256

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 64);
} arr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1024);
} h SEC(".maps");

struct lpm_key {
	__u32 prefixlen;
	__u32 addr;
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct lpm_key);
	__type(value, __u32);
	__uint(max_entries, 256);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} lpm SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} rb SEC(".maps");

/* Nothing: the cost of one run. */
SEC("xdp")
int empty(struct xdp_md *ctx)
{
	return XDP_PASS;
}

/* N array lookups (inlined by both JITs) each incrementing the value. */
SEC("xdp")
int array_inc(struct xdp_md *ctx)
{
	for (__u32 i = 0; i < N; i++) {
		__u32 k = i & 63;
		__u64 *v = bpf_map_lookup_elem(&arr, &k);

		if (v)
			*v += 1;
	}
	return XDP_PASS;
}

/* N hash updates and lookups with 4-byte keys (1024 distinct keys). */
SEC("xdp")
int hash_ops(struct xdp_md *ctx)
{
	for (__u32 i = 0; i < N; i++) {
		__u32 k = (i * 2654435761u) & 1023;
		__u64 one = 1, *v;

		bpf_map_update_elem(&h, &k, &one, BPF_ANY);
		v = bpf_map_lookup_elem(&h, &k);
		if (v)
			*v += 1;
	}
	return XDP_PASS;
}

/* N longest-prefix lookups of addresses spread over 10.0.0.0/8. */
SEC("xdp")
int lpm_lookup(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u64 *hits = bpf_map_lookup_elem(&arr, &zero);

	if (!hits)
		return XDP_ABORTED;
	for (__u32 i = 0; i < N; i++) {
		struct lpm_key k = { 32, __builtin_bswap32(0x0a000000 | (i * 40503u & 0xffffff)) };
		__u32 *v = bpf_map_lookup_elem(&lpm, &k);

		if (v)
			*hits += *v;
	}
	return XDP_PASS;
}

int chain(struct xdp_md *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
	__array(values, int (void *));
} progs SEC(".maps") = {
	.values = { [0] = (void *)&chain },
};

/* Tail calls itself until the kernel's limit: 33 tail calls per run. */
SEC("xdp")
int chain(struct xdp_md *ctx)
{
	bpf_tail_call(ctx, &progs, 0);
	return XDP_PASS;
}

static long step(__u64 i, __u64 *sum)
{
	*sum += i;
	return 0;
}

/* bpf_loop of 1000 iterations with a trivial callback. */
SEC("xdp")
int loop(struct xdp_md *ctx)
{
	__u64 sum = 0;

	bpf_loop(1000, step, &sum, 0);
	return sum == 499500 ? XDP_PASS : XDP_DROP;
}

/* One 8-byte ring buffer record per run (no wakeup). */
SEC("xdp")
int ringbuf(struct xdp_md *ctx)
{
	__u64 v = 42;

	bpf_ringbuf_output(&rb, &v, sizeof(v), BPF_RB_NO_WAKEUP);
	return XDP_PASS;
}
