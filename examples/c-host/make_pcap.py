#!/usr/bin/env python3
"""Write packets.pcap, the C host example's capture: 48 Ethernet frames of
every kind xdp_count.bpf.c tells apart (IPv4 and IPv6 TCP and UDP, ICMP,
ICMPv6, ARP, other EtherTypes and IP protocols), some behind one or two
VLAN tags, some cut short inside a header, and one shorter than an
Ethernet header (a test run refuses it). Deterministic: rerunning it
writes the same bytes."""
import random
import struct

rng = random.Random(12)


def eth(proto, vlans=()):
    h = bytes.fromhex("020000000002020000000001")
    for tpid, vid in vlans:
        h += struct.pack("!HH", tpid, vid)
    return h + struct.pack("!H", proto)


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(proto, payload):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), rng.randrange(65536),
                    0x4000, 64, proto, 0, bytes([192, 0, 2, rng.randrange(1, 255)]),
                    bytes([198, 51, 100, rng.randrange(1, 255)]))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload


def ipv6(nh, payload):
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), nh, 64,
                       bytes.fromhex("20010db8000000000000000000000001"),
                       bytes.fromhex("20010db8000000000000000000000002")) + payload


def tcp():
    body = rng.randbytes(rng.choice([0, 0, 32, 300, 1200]))
    return 6, struct.pack("!HHIIBBHHH", rng.randrange(1024, 65535), rng.choice([80, 443, 22]),
                          rng.randrange(1 << 32), 0, 0x50, 0x18, 65535, 0, 0) + body


def udp():
    body = rng.randbytes(rng.randrange(0, 400))
    return 17, struct.pack("!HHHH", rng.randrange(1024, 65535), rng.choice([53, 123, 4789]),
                           8 + len(body), 0) + body


def icmp(v6=False):
    return (58 if v6 else 1), struct.pack("!BBHHH", 128 if v6 else 8, 0, 0, 1,
                                          rng.randrange(65536)) + rng.randbytes(56)


def arp():
    return eth(0x0806) + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + rng.randbytes(20)


VLAN = [(0x8100, 100)]
QINQ = [(0x88A8, 10), (0x8100, 200)]

frames = []
for i in range(40):
    kind = ["tcp", "udp", "icmp", "tcp", "udp"][i % 5]
    v6 = i % 3 == 2
    vlans = VLAN if i % 7 == 3 else QINQ if i % 11 == 6 else ()
    proto, seg = {"tcp": tcp, "udp": udp}.get(kind, lambda: icmp(v6))()
    if v6:
        frames.append(eth(0x86DD, vlans) + ipv6(proto, seg))
    else:
        frames.append(eth(0x0800, vlans) + ipv4(proto, seg))
frames.insert(5, arp())
frames.insert(17, eth(0x0806, VLAN) + arp()[14:])
frames.insert(23, arp())
# Other: GRE over IPv4, a hop-by-hop header over IPv6, LLDP.
frames.insert(9, eth(0x0800) + ipv4(47, rng.randbytes(24)))
frames.insert(29, eth(0x86DD) + ipv6(0, rng.randbytes(16)))
frames.insert(33, eth(0x88CC) + rng.randbytes(40))
# Cut short: inside the IPv4 header, inside a VLAN tag, inside the IPv6
# header, and shorter than an Ethernet header.
frames.insert(12, (eth(0x0800) + ipv4(*tcp()))[:30])
frames.insert(26, eth(0x8100)[:14] + b"\x00")
frames.insert(38, (eth(0x86DD) + ipv6(*udp()))[:50])
frames.insert(44, eth(0x0800)[:10])

with open("packets.pcap", "wb") as out:
    out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for i, f in enumerate(frames):
        out.write(struct.pack("<IIII", 1767225600 + i // 10, (i % 10) * 100000, len(f), len(f)))
        out.write(f)
