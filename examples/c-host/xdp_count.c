/* A packet counter built on a bpfc skeleton: it tunes the XDP program of
 * xdp_count.bpf.c through .rodata before loading it, runs it on every
 * frame of a pcap capture (bpfc_prog_test_run, as the kernel's
 * BPF_PROG_TEST_RUN), tallies the verdicts and prints the per-protocol
 * packet and byte counts the program left in its array map.
 *
 *   usage: xdp-count FILE.pcap [DROP_PROTO [MIN_LEN]]
 * DROP_PROTO: tcp, udp, icmp, icmpv6, arp, other or none (the default);
 * frames shorter than MIN_LEN bytes are dropped too (default 0). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xdp_count.skel.h"

/* The program's enum proto, in order. */
static const char *const protos[] = {"tcp", "udp",   "icmp",     "icmpv6",
                                     "arp", "other", "truncated"};
#define NPROTOS (sizeof protos / sizeof protos[0])

/* The map's value type (struct tally in the program). */
struct tally {
    uint64_t packets;
    uint64_t bytes;
};

static const char *const verdicts[] = {"XDP_ABORTED", "XDP_DROP", "XDP_PASS",
                                       "XDP_TX", "XDP_REDIRECT"};
#define NVERDICTS (sizeof verdicts / sizeof verdicts[0])

/* A little pcap reader: the classic format in either byte order, with
 * micro- or nanosecond stamps, Ethernet frames. */
struct pcap {
    FILE *f;
    int swap;
};

static uint32_t get32(const unsigned char *b, int swap) {
    return swap ? (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
                      (uint32_t)b[2] << 8 | b[3]
                : (uint32_t)b[3] << 24 | (uint32_t)b[2] << 16 |
                      (uint32_t)b[1] << 8 | b[0];
}

static int pcap_open(struct pcap *p, const char *path) {
    unsigned char h[24];
    p->f = fopen(path, "rb");
    if (p->f == NULL || fread(h, 1, sizeof h, p->f) != sizeof h) {
        fprintf(stderr, "%s: cannot read a pcap header\n", path);
        return -1;
    }
    uint32_t magic = get32(h, 0);
    if (magic == 0xa1b2c3d4 || magic == 0xa1b23c4d)
        p->swap = 0;
    else if (magic == 0xd4c3b2a1 || magic == 0x4d3cb2a1)
        p->swap = 1;
    else {
        fprintf(stderr, "%s: not a pcap file (magic %08x)\n", path, magic);
        return -1;
    }
    if (get32(h + 20, p->swap) != 1) {
        fprintf(stderr, "%s: link type %u, not Ethernet\n", path,
                get32(h + 20, p->swap));
        return -1;
    }
    return 0;
}

/* The next frame into buf (room for cap bytes): its length, 0 at the
 * end, -1 on a broken file. */
static long pcap_next(struct pcap *p, unsigned char *buf, size_t cap) {
    unsigned char h[16];
    size_t n = fread(h, 1, sizeof h, p->f);
    if (n == 0)
        return 0;
    uint32_t len = get32(h + 8, p->swap);
    if (n != sizeof h || len > cap || fread(buf, 1, len, p->f) != len)
        return -1;
    return (long)len;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: %s FILE.pcap [DROP_PROTO [MIN_LEN]]\n",
                argv[0]);
        return 2;
    }
    unsigned drop = NPROTOS; /* PROTO_MAX in the program: none */
    if (argc > 2 && strcmp(argv[2], "none") != 0) {
        unsigned i = 0;
        while (i < NPROTOS && strcmp(protos[i], argv[2]) != 0)
            i++;
        if (i == NPROTOS) {
            fprintf(stderr, "unknown protocol %s\n", argv[2]);
            return 2;
        }
        drop = i;
    }
    struct pcap pc;
    if (pcap_open(&pc, argv[1]))
        return 1;

    struct xdp_count *skel = xdp_count__open();
    if (skel == NULL) {
        fprintf(stderr, "open: %s\n", bpfc_strerror());
        return 1;
    }
    /* .rodata is read-only for the program and fixed at load: set it now. */
    skel->rodata->drop_proto = drop;
    skel->rodata->min_len = argc > 3 ? (unsigned)atoi(argv[3]) : 0;
    if (xdp_count__load(skel)) {
        fprintf(stderr, "load: %s\n", bpfc_strerror());
        xdp_count__destroy(skel);
        return 1;
    }
    if (bpfc_map_value_size(skel->maps.counts) != sizeof(struct tally)) {
        fprintf(stderr, "counts: unexpected value size\n");
        return 1;
    }

    static unsigned char frame[262144];
    unsigned long packets = 0, refused = 0, tally[NVERDICTS + 1] = {0};
    long len;
    while ((len = pcap_next(&pc, frame, sizeof frame)) > 0) {
        struct bpfc_test_run_opts opts = {
            .sz = sizeof opts,
            .data_in = frame,
            .data_size_in = (size_t)len,
            .repeat = 1,
        };
        packets++;
        int err = bpfc_prog_test_run(skel->progs.xdp_count, &opts);
        if (err == -22) {
            /* As the kernel, the test run refuses a frame shorter than an
             * Ethernet header. */
            refused++;
            continue;
        }
        if (err) {
            fprintf(stderr, "packet %lu: %s\n", packets, bpfc_strerror());
            return 1;
        }
        tally[opts.retval < NVERDICTS ? opts.retval : NVERDICTS]++;
    }
    fclose(pc.f);
    if (len < 0) {
        fprintf(stderr, "%s: frame %lu is cut short\n", argv[1], packets + 1);
        return 1;
    }

    printf("packets %lu\n", packets);
    printf("refused %lu\n", refused);
    for (unsigned v = 0; v < NVERDICTS; v++)
        if (tally[v])
            printf("verdict %s %lu\n", verdicts[v], tally[v]);
    if (tally[NVERDICTS])
        printf("verdict other %lu\n", tally[NVERDICTS]);
    for (uint32_t key = 0; key < NPROTOS; key++) {
        struct tally t;
        if (bpfc_map_lookup_elem(skel->maps.counts, &key, &t)) {
            fprintf(stderr, "lookup: %s\n", bpfc_strerror());
            return 1;
        }
        printf("proto %u %s %llu %llu\n", key, protos[key],
               (unsigned long long)t.packets, (unsigned long long)t.bytes);
    }
    xdp_count__destroy(skel);
    return 0;
}
