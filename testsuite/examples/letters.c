// The README's map example: counts the letters of a 64-byte text (the
// program's context: `bpfc run --ctx-in letters.txt`) into a hash map
// keyed by the lower-case letter, and the text's letters, digits and
// other bytes into a 3-slot array; returns the number of letters.
// Rebuild letters.o with ./build.sh (clang-19 and libbpf's headers).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct text {
	char c[64];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, char);
	__type(value, __u32);
	__uint(max_entries, 26);
} letters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 3);
} kinds SEC(".maps");

SEC("syscall")
int count(struct text *ctx)
{
	struct text t = *ctx;
	int n = 0;

	for (int i = 0; i < 64; i++) {
		char c = t.c[i];
		__u32 kind = 2, one = 1, *v;
		__u64 *k;

		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		if (c >= 'a' && c <= 'z') {
			v = bpf_map_lookup_elem(&letters, &c);
			if (v)
				__sync_fetch_and_add(v, 1);
			else
				bpf_map_update_elem(&letters, &c, &one, BPF_NOEXIST);
			kind = 0;
			n++;
		} else if (c >= '0' && c <= '9') {
			kind = 1;
		}
		k = bpf_map_lookup_elem(&kinds, &kind);
		if (k)
			*k += 1;
	}
	return n;
}
