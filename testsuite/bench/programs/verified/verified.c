/* Programs the verifier accepts, for the checked-code comparison of the
 * benchmark (src/verified.rs): syscall programs whose work is accesses to
 * the stack and to a map value, which checked code leaves unchecked once
 * the verifier has proven them in bounds. The context holds a seed.
 * Built by ../build.sh: clang-19 -O2 -g -target bpf. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define N 1024
#define M 64
#define S 48

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32[N]);
} data SEC(".maps");

struct args {
	__u64 seed;
};

static __always_inline __u64 next(__u64 x)
{
	return x * 6364136223846793005ULL + 1442695040888963407ULL;
}

/* Fills a map value from the seed, then folds it four times. */
SEC("syscall")
int map_scan(struct args *a)
{
	__u32 k = 0;
	__u32 *v = bpf_map_lookup_elem(&data, &k);
	__u64 x = a->seed, sum = 0;

	if (!v)
		return 0;
	for (int i = 0; i < N; i++) {
		x = next(x);
		v[i] = x >> 33;
	}
	for (int r = 0; r < 4; r++)
		for (int i = 0; i < N; i++)
			sum = sum * 31 + v[i];
	return sum ^ (sum >> 32);
}

/* Bubble sort of 64 u32 in a map value; position-weighted checksum. */
SEC("syscall")
int map_sort(struct args *a)
{
	__u32 k = 0;
	__u32 *v = bpf_map_lookup_elem(&data, &k);
	__u64 x = a->seed, sum = 0;

	if (!v)
		return 0;
	for (int i = 0; i < M; i++) {
		x = next(x);
		v[i] = x >> 33;
	}
	for (int i = 0; i < M - 1; i++)
		for (int j = 0; j < M - 1 - i; j++) {
			__u32 p = v[j], q = v[j + 1];
			if (p > q) {
				v[j] = q;
				v[j + 1] = p;
			}
		}
	for (int i = 0; i < M; i++)
		sum += (__u64)v[i] * (i + 1);
	return sum ^ (sum >> 32);
}

/* Fills 48 u64 (384 stack bytes) from the seed, then folds them 16 times. */
SEC("syscall")
int stack_scan(struct args *a)
{
	__u64 s[S];
	__u64 x = a->seed, sum = 0;

	for (int i = 0; i < S; i++) {
		x = next(x);
		s[i] = x;
	}
	for (int r = 0; r < 16; r++)
		for (int i = 0; i < S; i++)
			sum = sum * 31 + (s[i] ^ r);
	return sum ^ (sum >> 32);
}
