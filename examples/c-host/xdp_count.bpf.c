// The C host example's packet program: an XDP program that walks
// Ethernet (up to two VLAN tags), ARP, IPv4 and IPv6 headers and counts
// packets and bytes per protocol in an array map. Two .rodata constants
// the host sets before load tune it: `drop_proto` drops one protocol and
// `min_len` drops frames shorter than that many bytes. Frames whose
// headers are cut short are counted as `truncated` and aborted.
// examples/c-host/xdp_count.c runs it on every packet of a pcap.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

/* The map's keys. The skeleton carries this enum to the host. */
enum proto {
	PROTO_TCP,
	PROTO_UDP,
	PROTO_ICMP,
	PROTO_ICMPV6,
	PROTO_ARP,
	PROTO_OTHER,
	PROTO_TRUNCATED,
	PROTO_MAX,
};

struct tally {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct tally);
	__uint(max_entries, PROTO_MAX);
} counts SEC(".maps");

/* PROTO_MAX: drop nothing. */
const volatile __u32 drop_proto = PROTO_MAX;
const volatile __u32 min_len = 0;

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

static __always_inline __u32 classify(void *data, void *end)
{
	struct ethhdr *eth = data;
	void *p = eth + 1;
	__u16 proto;

	if (p > end)
		return PROTO_TRUNCATED;
	proto = bpf_ntohs(eth->h_proto);
#pragma unroll
	for (int i = 0; i < 2; i++) {
		struct vlan_hdr *v = p;

		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD)
			break;
		if ((void *)(v + 1) > end)
			return PROTO_TRUNCATED;
		proto = bpf_ntohs(v->proto);
		p = v + 1;
	}
	if (proto == ETH_P_ARP)
		return PROTO_ARP;
	if (proto == ETH_P_IP) {
		struct iphdr *ip = p;

		if ((void *)(ip + 1) > end || ip->ihl < 5)
			return PROTO_TRUNCATED;
		switch (ip->protocol) {
		case IPPROTO_TCP: return PROTO_TCP;
		case IPPROTO_UDP: return PROTO_UDP;
		case IPPROTO_ICMP: return PROTO_ICMP;
		}
		return PROTO_OTHER;
	}
	if (proto == ETH_P_IPV6) {
		struct ipv6hdr *ip6 = p;

		if ((void *)(ip6 + 1) > end)
			return PROTO_TRUNCATED;
		switch (ip6->nexthdr) {
		case IPPROTO_TCP: return PROTO_TCP;
		case IPPROTO_UDP: return PROTO_UDP;
		case IPPROTO_ICMPV6: return PROTO_ICMPV6;
		}
		return PROTO_OTHER;
	}
	return PROTO_OTHER;
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 key = classify(data, end);
	__u64 len = end - data;
	struct tally *t = bpf_map_lookup_elem(&counts, &key);

	if (t) {
		__sync_fetch_and_add(&t->packets, 1);
		__sync_fetch_and_add(&t->bytes, len);
	}
	if (key == PROTO_TRUNCATED)
		return XDP_ABORTED;
	if (key == drop_proto || len < min_len)
		return XDP_DROP;
	return XDP_PASS;
}
