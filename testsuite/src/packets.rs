//! Generated test packets for network programs: valid and malformed
//! Ethernet, VLAN (802.1Q and QinQ), IPv4 (with options), IPv6 (with an
//! extension header), TCP, UDP, ICMP and ICMPv6 frames, truncated at every
//! header, odd lengths and random bytes, deterministically from a seed.

/// A small deterministic generator (xorshift64*).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// The Internet checksum of `b`.
pub fn inet_csum(b: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in b.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from_be_bytes([c[0], 0])
        };
        s += w as u32;
    }
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn l4(rng: &mut Rng, proto: u8, payload: usize) -> Vec<u8> {
    let mut v = Vec::new();
    let ports = [53u16, 80, 443, 22, 1023, 1024, 8080, 0, 65535];
    match proto {
        6 => {
            v.extend(rng.pick(&ports).to_be_bytes());
            v.extend(rng.pick(&ports).to_be_bytes());
            v.extend(rng.bytes(8));
            v.push(0x50);
            v.push(*rng.pick(&[0x02u8, 0x10, 0x12, 0x11, 0x04]));
            v.extend(rng.bytes(6));
        }
        17 => {
            v.extend(rng.pick(&ports).to_be_bytes());
            v.extend(rng.pick(&ports).to_be_bytes());
            v.extend(((8 + payload) as u16).to_be_bytes());
            v.extend([0, 0]);
        }
        1 | 58 => {
            v.push(*rng.pick(&[0u8, 8, 3, 11, 128, 129]));
            v.push(rng.below(4) as u8);
            v.extend([0, 0]);
            v.extend(rng.bytes(4));
        }
        _ => v.extend(rng.bytes(8)),
    }
    v.extend(rng.bytes(payload));
    v
}

fn ipv4(rng: &mut Rng, proto: u8, payload: usize) -> Vec<u8> {
    let opts = if rng.below(4) == 0 {
        4 * (1 + rng.below(3) as usize)
    } else {
        0
    };
    let body = l4(rng, proto, payload);
    let ihl = 5 + opts / 4;
    let total = ihl * 4 + body.len();
    let mut h = vec![
        0x40 | ihl as u8,
        rng.below(256) as u8 & 0xfc,
        (total >> 8) as u8,
        total as u8,
    ];
    h.extend(rng.bytes(2));
    h.extend([0x40, 0]);
    h.push(*rng.pick(&[1u8, 2, 64, 255]));
    h.push(proto);
    h.extend([0, 0]);
    let addrs: [[u8; 4]; 4] = [
        [10, 0, 0, 1],
        [192, 168, 0, 2],
        [8, 8, 8, 8],
        [127, 0, 0, 1],
    ];
    h.extend(rng.pick(&addrs));
    h.extend(rng.pick(&addrs));
    h.extend(std::iter::repeat_n(1, opts)); // NOP options
    let c = inet_csum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend(body);
    h
}

fn ipv6(rng: &mut Rng, proto: u8, payload: usize) -> Vec<u8> {
    let ext = rng.below(5) == 0;
    let body = l4(rng, proto, payload);
    let plen = body.len() + if ext { 8 } else { 0 };
    let mut h = vec![0x60, 0, 0, 0];
    h.extend((plen as u16).to_be_bytes());
    h.push(if ext { 0 } else { proto });
    h.push(64);
    let a1 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let a2 = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    h.extend(if rng.below(2) == 0 { a1 } else { a2 });
    h.extend(if rng.below(2) == 0 { a2 } else { a1 });
    if ext {
        h.extend([proto, 0, 1, 4, 0, 0, 0, 0]);
    }
    h.extend(body);
    h
}

fn eth(rng: &mut Rng, ethertype: u16, vlans: usize) -> Vec<u8> {
    let dests: [[u8; 6]; 4] = [
        [0xff; 6],
        [0; 6],
        [0x01, 0x00, 0x5e, 0, 0, 1],
        [0x02, 0x11, 0x22, 0x33, 0x44, 0x55],
    ];
    let mut v = rng.pick(&dests).to_vec();
    v.extend([0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
    for i in 0..vlans {
        v.extend(
            if i == 0 && vlans == 2 {
                0x88a8u16
            } else {
                0x8100
            }
            .to_be_bytes(),
        );
        v.extend((rng.below(4096) as u16).to_be_bytes());
    }
    v.extend(ethertype.to_be_bytes());
    v
}

/// One generated frame and a word about it.
#[derive(Clone, Debug)]
pub struct Frame {
    pub what: String,
    pub data: Vec<u8>,
}

/// `n` frames from `seed`: mostly well-formed ones of every kind, then
/// truncated, corrupted, odd-length and random ones.
pub fn frames(seed: u64, n: usize) -> Vec<Frame> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n);
    let protos = [6u8, 17, 1, 58, 47];
    for i in 0..n {
        let kind = i % 10;
        let vlans = *rng.pick(&[0usize, 0, 0, 1, 2]);
        let payload = rng.below(64) as usize + if rng.below(8) == 0 { 600 } else { 0 };
        let proto = *rng.pick(&protos);
        let (mut data, mut what) = match kind {
            0..=3 => {
                let mut f = eth(&mut rng, 0x0800, vlans);
                f.extend(ipv4(&mut rng, if proto == 58 { 1 } else { proto }, payload));
                (f, format!("ipv4 proto {proto} vlans {vlans}"))
            }
            4..=6 => {
                let mut f = eth(&mut rng, 0x86dd, vlans);
                f.extend(ipv6(&mut rng, if proto == 1 { 58 } else { proto }, payload));
                (f, format!("ipv6 proto {proto} vlans {vlans}"))
            }
            7 => {
                let t = *rng.pick(&[0x0806u16, 0x0005, 0x05dc, 0x88cc, 0x8847]);
                let mut f = eth(&mut rng, t, vlans);
                if t < 0x0600 && rng.below(2) == 0 {
                    f.extend([0xff, 0xff]);
                }
                f.extend(rng.bytes(payload + 28));
                (f, format!("ethertype {t:#06x}"))
            }
            8 => {
                let n = 14 + rng.below(80) as usize;
                (rng.bytes(n), "random bytes".to_string())
            }
            _ => {
                let mut f = eth(&mut rng, 0x0800, vlans);
                let mut ip = ipv4(&mut rng, proto, payload);
                match rng.below(3) {
                    0 => ip[0] = 0x40 | rng.below(5) as u8,
                    1 => ip[0] = 0x60 | (ip[0] & 15),
                    _ => ip[9] = rng.below(256) as u8,
                }
                f.extend(ip);
                (f, format!("bad ipv4 header proto {proto}"))
            }
        };
        // Truncate a quarter of the frames somewhere in their headers.
        if rng.below(4) == 0 && data.len() > 14 {
            let cut = 14 + rng.below((data.len() - 14).min(70) as u64) as usize;
            data.truncate(cut);
            what.push_str(&format!(", truncated to {cut}"));
        }
        out.push(Frame { what, data });
    }
    out
}
