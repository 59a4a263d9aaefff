//! Socket buffers: the native `struct __sk_buff` (every field a program
//! may access as a field of its own), an skb built from an Ethernet frame
//! as the kernel's `bpf_prog_test_run_skb` builds it, and the skb packet
//! helpers.

#![allow(clippy::missing_safety_doc)]

use super::xdp::{ctx_copy, loopback_ifindex};
use super::{current, Packet, SetupError, ETH_HLEN, PAGE_SIZE, SHINFO_SIZE};
use crate::abi::RunState;
use crate::helpers::args;
use crate::maps::errno;
use std::mem::offset_of;

/// `NET_SKB_PAD + NET_IP_ALIGN`: headroom before the frame.
pub const HEADROOM: usize = 64;
/// `sizeof(struct __sk_buff)`.
pub const SK_BUFF_SIZE: usize = 192;

/// The native `__sk_buff`: pointers as host pointers, 16-bit kernel fields
/// widened to 32 bits (stores write their low half).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkBuff {
    pub data: u64,
    pub data_end: u64,
    pub data_meta: u64,
    pub tstamp: u64,
    pub hwtstamp: u64,
    pub len: u32,
    pub pkt_type: u32,
    pub mark: u32,
    pub queue_mapping: u32,
    pub protocol: u32,
    pub vlan_present: u32,
    pub vlan_tci: u32,
    pub vlan_proto: u32,
    pub priority: u32,
    pub ingress_ifindex: u32,
    pub ifindex: u32,
    pub tc_index: u32,
    pub cb: [u32; 5],
    pub hash: u32,
    pub tc_classid: u32,
    pub napi_id: u32,
    pub family: u32,
    pub remote_ip4: u32,
    pub local_ip4: u32,
    pub remote_ip6: [u32; 4],
    pub local_ip6: [u32; 4],
    pub remote_port: u32,
    pub local_port: u32,
    pub wire_len: u32,
    pub gso_segs: u32,
    pub gso_size: u32,
    pub tstamp_type: u8,
    pub pad: [u8; 3],
}

/// Where a `__sk_buff` field lives in [`SkBuff`]: `(offset, bytes a
/// whole-field store writes)`. `None`: no native field (`sk`, `flow_keys`).
pub fn native_field(name: &str) -> Option<(usize, usize)> {
    macro_rules! at {
        ($f:ident, $n:expr) => {
            Some((offset_of!(SkBuff, $f), $n))
        };
    }
    match name {
        "data" => at!(data, 8),
        "data_end" => at!(data_end, 8),
        "data_meta" => at!(data_meta, 8),
        "tstamp" => at!(tstamp, 8),
        "hwtstamp" => at!(hwtstamp, 8),
        "len" => at!(len, 4),
        "pkt_type" => at!(pkt_type, 4),
        "mark" => at!(mark, 4),
        "queue_mapping" => at!(queue_mapping, 2),
        "protocol" => at!(protocol, 4),
        "vlan_present" => at!(vlan_present, 4),
        "vlan_tci" => at!(vlan_tci, 4),
        "vlan_proto" => at!(vlan_proto, 4),
        "priority" => at!(priority, 4),
        "ingress_ifindex" => at!(ingress_ifindex, 4),
        "ifindex" => at!(ifindex, 4),
        "tc_index" => at!(tc_index, 2),
        "cb" => at!(cb, 4),
        "hash" => at!(hash, 4),
        "tc_classid" => at!(tc_classid, 2),
        "napi_id" => at!(napi_id, 4),
        "family" => at!(family, 4),
        "remote_ip4" => at!(remote_ip4, 4),
        "local_ip4" => at!(local_ip4, 4),
        "remote_ip6" => at!(remote_ip6, 4),
        "local_ip6" => at!(local_ip6, 4),
        "remote_port" => at!(remote_port, 4),
        "local_port" => at!(local_port, 4),
        "wire_len" => at!(wire_len, 4),
        "gso_segs" => at!(gso_segs, 4),
        "gso_size" => at!(gso_size, 4),
        "tstamp_type" => at!(tstamp_type, 1),
        _ => None,
    }
}

/// How a program type sees the skb of a test run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SkbKind {
    /// Data starts at the Ethernet header (tc); otherwise at L3 and the
    /// Ethernet header comes back zeroed in data_out.
    pub l2: bool,
    /// Direct packet access (tc, lwt), as `bpf_prog_test_run_skb` records
    /// it; data and data_end are set for every type all the same.
    pub direct: bool,
}

/// `PACKET_*` values of `pkt_type`.
pub const PACKET_HOST: u32 = 0;
pub const PACKET_BROADCAST: u32 = 1;
pub const PACKET_MULTICAST: u32 = 2;
pub const PACKET_OTHERHOST: u32 = 3;

/// One skb under test.
#[derive(Debug)]
pub struct SkbRun {
    pub pkt: Packet,
    skb: Box<SkbBox>,
    kind: SkbKind,
    ctx_in: Option<[u8; SK_BUFF_SIZE]>,
    /// Offset of the Ethernet header in the buffer.
    pub mac: usize,
    /// Offset of the network header in the buffer.
    pub network: usize,
    /// Where `bpf_redirect` or `bpf_redirect_map` sent the packet (ifindex).
    pub redirect: Option<u32>,
}

/// The native struct with room for the 8-byte aligned loads of `cb`.
#[repr(C, align(8))]
#[derive(Debug, Default)]
struct SkbBox {
    skb: SkBuff,
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

/// The MAC `address` (or `broadcast` address) of the device with
/// `ifindex` (the loopback device's are zero).
fn dev_addr(ifindex: u32, which: &str) -> Option<[u8; 6]> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes if_indextoname may write.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/{which}")).ok()?;
    let mut a = [0u8; 6];
    for (i, part) in text.trim().split(':').take(6).enumerate() {
        a[i] = u8::from_str_radix(part, 16).ok()?;
    }
    Some(a)
}

/// `__sk_buff` ranges a ctx_in may set (the kernel's `convert___skb_to_skb`).
const CTX_IN_ALLOWED: &[(usize, usize, &str)] = &[
    (8, 12, "mark"),
    (32, 44, "priority, ingress_ifindex, ifindex"),
    (48, 68, "cb"),
    (152, 168, "tstamp, wire_len, gso_segs"),
    (176, 180, "gso_size"),
    (184, 192, "hwtstamp"),
];

/// `__sk_buff` field names by offset, for messages.
fn skb_field_at(off: usize) -> &'static str {
    const NAMES: &[(usize, &str)] = &[
        (0, "len"),
        (4, "pkt_type"),
        (12, "queue_mapping"),
        (16, "protocol"),
        (20, "vlan_present"),
        (24, "vlan_tci"),
        (28, "vlan_proto"),
        (44, "tc_index"),
        (68, "hash"),
        (72, "tc_classid"),
        (76, "data"),
        (80, "data_end"),
        (84, "napi_id"),
        (88, "family"),
        (92, "remote_ip4"),
        (96, "local_ip4"),
        (100, "remote_ip6"),
        (116, "local_ip6"),
        (132, "remote_port"),
        (136, "local_port"),
        (140, "data_meta"),
        (144, "flow_keys"),
        (168, "sk"),
        (180, "tstamp_type"),
    ];
    NAMES
        .iter()
        .rev()
        .find(|(o, _)| *o <= off)
        .map_or("?", |(_, n)| n)
}

impl SkbRun {
    /// Build the skb of a test run from an Ethernet frame and an optional
    /// `__sk_buff` ctx_in, or fail as the kernel does.
    pub fn new(kind: SkbKind, data_in: &[u8], ctx_in: Option<&[u8]>) -> Result<SkbRun, SetupError> {
        let size = data_in.len();
        let max = PAGE_SIZE - HEADROOM - SHINFO_SIZE;
        if size < ETH_HLEN || size > max {
            return Err(SetupError::DataSize(size, ETH_HLEN, max));
        }
        let ctx = ctx_in.map(ctx_copy::<SK_BUFF_SIZE>).transpose()?;
        if let Some(c) = &ctx {
            for (i, &b) in c.iter().enumerate() {
                if b != 0
                    && !CTX_IN_ALLOWED
                        .iter()
                        .any(|&(lo, hi, _)| (lo..hi).contains(&i))
                {
                    return Err(SetupError::Ctx(format!(
                        "field {} (byte {i}) must be 0: a test run accepts only {}",
                        skb_field_at(i),
                        CTX_IN_ALLOWED
                            .iter()
                            .map(|a| a.2)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
        }
        let lo = loopback_ifindex();
        let mut ifindex = lo;
        let mut addr = [0u8; 6];
        // The loopback device's broadcast address is all zeros too.
        let mut brd = [0u8; 6];
        if let Some(c) = &ctx {
            let i = u32_at(c, 40);
            if i > 1 {
                addr = dev_addr(i, "address").ok_or(SetupError::NoDevice(i))?;
                brd = dev_addr(i, "broadcast").unwrap_or([0xff; 6]);
                ifindex = i;
            }
        }
        let mut buf = vec![0u8; HEADROOM + size + SHINFO_SIZE];
        buf[HEADROOM..HEADROOM + size].copy_from_slice(data_in);
        let mac = HEADROOM;
        let network = mac + ETH_HLEN;
        // eth_type_trans
        let dest = &data_in[0..6];
        let pkt_type = if dest == addr {
            PACKET_HOST
        } else if dest[0] & 1 != 0 {
            if dest == brd {
                PACKET_BROADCAST
            } else {
                PACKET_MULTICAST
            }
        } else {
            PACKET_OTHERHOST
        };
        let proto_be = u16::from_be_bytes([data_in[12], data_in[13]]);
        let proto_be = if proto_be >= 0x0600 {
            proto_be
        } else if size >= ETH_HLEN + 2 && data_in[14] == 0xff && data_in[15] == 0xff {
            0x0001 // ETH_P_802_3
        } else {
            0x0004 // ETH_P_802_2
        };
        let mut s = SkBuff {
            pkt_type,
            protocol: u16::from_ne_bytes(proto_be.to_be_bytes()) as u32,
            ifindex,
            ..SkBuff::default()
        };
        let l3 = &data_in[ETH_HLEN..];
        // The test run refuses frames too short for their network header.
        let need = match proto_be {
            0x0800 => 20,
            0x86dd => 40,
            _ => 0,
        };
        if l3.len() < need {
            return Err(SetupError::Ctx(format!(
                "a {}-byte frame is too short for its network header",
                size
            )));
        }
        match proto_be {
            0x0800 => {
                s.family = libc::AF_INET as u32;
                if l3.len() >= 20 {
                    s.local_ip4 = u32::from_ne_bytes(l3[12..16].try_into().expect("4"));
                    s.remote_ip4 = u32::from_ne_bytes(l3[16..20].try_into().expect("4"));
                }
            }
            0x86dd => {
                s.family = libc::AF_INET6 as u32;
                if l3.len() >= 40 {
                    for i in 0..4 {
                        s.local_ip6[i] = u32_at(l3, 8 + 4 * i);
                        s.remote_ip6[i] = u32_at(l3, 24 + 4 * i);
                    }
                }
            }
            _ => {}
        }
        let (data, len) = if kind.l2 {
            (mac, size)
        } else {
            (network, size - ETH_HLEN)
        };
        if let Some(c) = &ctx {
            s.mark = u32_at(c, 8);
            s.priority = u32_at(c, 32);
            s.ingress_ifindex = u32_at(c, 36);
            for i in 0..5 {
                s.cb[i] = u32_at(c, 48 + 4 * i);
            }
            s.tstamp = u64_at(c, 152);
            let wire = u32_at(c, 160);
            s.wire_len = if wire == 0 {
                len as u32
            } else if (wire as usize) < len || wire > 65536 {
                return Err(SetupError::Ctx(format!(
                    "wire_len {wire} must be at least the packet's length ({len}) and at most 65536"
                )));
            } else {
                wire
            };
            let segs = u32_at(c, 164);
            if segs > 65535 {
                return Err(SetupError::Ctx(format!("gso_segs {segs} exceeds 65535")));
            }
            s.gso_segs = segs;
            s.gso_size = u32_at(c, 176) & 0xffff;
            s.hwtstamp = u64_at(c, 184);
        }
        let mut run = SkbRun {
            pkt: Packet {
                buf,
                meta: data,
                data,
                end: data + len,
            },
            skb: Box::new(SkbBox { skb: s }),
            kind,
            ctx_in: ctx,
            mac,
            network,
            redirect: None,
        };
        run.sync();
        Ok(run)
    }

    /// Write the packet's bounds into the native struct.
    pub fn sync(&mut self) {
        let base = self.pkt.base();
        let s = &mut self.skb.skb;
        s.len = self.pkt.len() as u32;
        s.data = base + self.pkt.data as u64;
        s.data_meta = base + self.pkt.meta as u64;
        s.data_end = base + self.pkt.end as u64;
    }

    pub fn skb_addr(&self) -> u64 {
        &self.skb.skb as *const SkBuff as u64
    }

    pub fn skb_bytes(&mut self) -> &mut [u8] {
        // SAFETY: SkBuff is plain old data.
        unsafe {
            std::slice::from_raw_parts_mut(
                &mut self.skb.skb as *mut SkBuff as *mut u8,
                std::mem::size_of::<SkBuff>(),
            )
        }
    }

    pub fn skb(&self) -> &SkBuff {
        &self.skb.skb
    }

    pub fn skb_mut(&mut self) -> &mut SkBuff {
        &mut self.skb.skb
    }

    /// After the run: the bytes the kernel copies to data_out (programs
    /// that see L3 get the Ethernet header back as zeros).
    pub fn data_out(&mut self) -> Vec<u8> {
        let p = &self.pkt;
        if self.kind.l2 {
            return p.bytes().to_vec();
        }
        let mut v = vec![0u8; ETH_HLEN];
        v.extend_from_slice(p.bytes());
        v
    }

    /// After the run: the ctx_out (the ctx_in with the fields the kernel
    /// copies back; zeros elsewhere when there was none).
    pub fn ctx_out(&self) -> Vec<u8> {
        let mut c = self.ctx_in.unwrap_or([0; SK_BUFF_SIZE]);
        let s = &self.skb.skb;
        let mut put4 = |off: usize, v: u32| c[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        put4(8, s.mark);
        put4(32, s.priority);
        put4(36, s.ingress_ifindex);
        put4(40, s.ifindex);
        for i in 0..5 {
            put4(48 + 4 * i, s.cb[i]);
        }
        put4(160, s.wire_len);
        put4(164, s.gso_segs);
        c[152..160].copy_from_slice(&s.tstamp.to_ne_bytes());
        c[184..192].copy_from_slice(&s.hwtstamp.to_ne_bytes());
        c.to_vec()
    }

    /// `skb->len`.
    pub fn len(&self) -> usize {
        self.pkt.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pkt.is_empty()
    }
}

/// A flow hash of the packet: FNV-1a over the addresses, protocol and
/// ports of IPv4/IPv6 packets (the whole L3 header otherwise). The kernel
/// keys its hash with a random boot-time secret, so only its presence, not
/// its value, can agree with a kernel run.
pub fn flow_hash(s: &SkbRun) -> u32 {
    let l3 = &s.pkt.buf[s.network.min(s.pkt.end)..s.pkt.end];
    let mut h: u32 = 0x811c_9dc5;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h = (h ^ x as u32).wrapping_mul(0x0100_0193);
        }
    };
    match l3.first().map(|v| v >> 4) {
        Some(4) if l3.len() >= 20 => {
            eat(&l3[9..10]);
            eat(&l3[12..20]);
            let ihl = (l3[0] & 15) as usize * 4;
            if l3.len() >= ihl + 4 {
                eat(&l3[ihl..ihl + 4]);
            }
        }
        Some(6) if l3.len() >= 40 => {
            eat(&l3[6..7]);
            eat(&l3[8..40]);
            if l3.len() >= 44 {
                eat(&l3[40..44]);
            }
        }
        _ => eat(&l3[..l3.len().min(40)]),
    }
    h.max(1)
}

pub(crate) fn skb<'a>(st: &mut RunState, r1: u64, what: &str) -> Option<&'a mut SkbRun> {
    match current(st, r1, what)? {
        super::NetRun::Skb(s) => Some(s),
        _ => {
            crate::helpers::fail(st, format!("{what}: not an skb context"));
            None
        }
    }
}

fn efault() -> u64 {
    -(errno::EFAULT as i64) as u64
}

helper!(
    /// `long bpf_skb_load_bytes(const void *skb, u32 offset, void *to, u32 len)`.
    skb_load_bytes(ctx, off, to, len) |st| {
        let Some(s) = skb(st, ctx, "skb_load_bytes") else { return Ok(0) };
        let (off, len) = (off as u32 as usize, len as u32 as usize);
        // SAFETY: checked against the run's memory (or proven by the verifier).
        let out = unsafe { args::bytes_mut(st, "skb_load_bytes to", to, len as u64)? };
        if off > i32::MAX as usize || off + len > s.len() {
            out.fill(0);
            return Ok(efault());
        }
        let start = s.pkt.data + off;
        out.copy_from_slice(&s.pkt.buf[start..start + len]);
        Ok(0)
    }
);
helper!(
    /// `long bpf_skb_load_bytes_relative(const void *skb, u32 offset, void
    /// *to, u32 len, u32 start_header)`.
    skb_load_bytes_relative(ctx, off, to, len, hdr) |st| {
        let Some(s) = skb(st, ctx, "skb_load_bytes_relative") else { return Ok(0) };
        let (off, len) = (off as u32 as usize, len as u32 as usize);
        // SAFETY: as above.
        let out = unsafe { args::bytes_mut(st, "skb_load_bytes_relative to", to, len as u64)? };
        let start = match hdr as u32 {
            0 => s.mac,
            1 => s.network,
            _ => usize::MAX,
        };
        if off > 0xffff || start == usize::MAX || start + off + len > s.pkt.end {
            out.fill(0);
            return Ok(efault());
        }
        out.copy_from_slice(&s.pkt.buf[start + off..start + off + len]);
        Ok(0)
    }
);
helper!(
    /// `long bpf_skb_store_bytes(struct sk_buff *skb, u32 offset, const void
    /// *from, u32 len, u64 flags)`: BPF_F_RECOMPUTE_CSUM (the skb has no
    /// checksum to recompute here) and BPF_F_INVALIDATE_HASH.
    skb_store_bytes(ctx, off, from, len, flags) |st| {
        let Some(s) = skb(st, ctx, "skb_store_bytes") else { return Ok(0) };
        if flags & !3 != 0 {
            return Ok(-(errno::EINVAL as i64) as u64);
        }
        let (off, len) = (off as u32 as usize, len as u32 as usize);
        if off > i32::MAX as usize {
            return Ok(efault());
        }
        // SAFETY: as above.
        let src = unsafe { args::bytes(st, "skb_store_bytes from", from, len as u64)? };
        if off + len > s.len() {
            return Ok(efault());
        }
        let start = s.pkt.data + off;
        s.pkt.buf[start..start + len].copy_from_slice(src);
        if flags & 2 != 0 {
            s.skb_mut().hash = 0;
        }
        Ok(0)
    }
);
helper!(
    /// `long bpf_l3_csum_replace(struct sk_buff *skb, u32 offset, u64 from, u64 to, u64 size)`.
    l3_csum_replace(ctx, off, from, to, flags) |st| {
        let Some(s) = skb(st, ctx, "l3_csum_replace") else { return Ok(0) };
        Ok(super::csum::l3_replace(s, off as u32, from, to, flags) as u64)
    }
);
helper!(
    /// `long bpf_l4_csum_replace(struct sk_buff *skb, u32 offset, u64 from, u64 to, u64 flags)`.
    l4_csum_replace(ctx, off, from, to, flags) |st| {
        let Some(s) = skb(st, ctx, "l4_csum_replace") else { return Ok(0) };
        Ok(super::csum::l4_replace(s, off as u32, from, to, flags) as u64)
    }
);
helper!(
    /// `u32 bpf_get_hash_recalc(struct sk_buff *skb)`: the flow hash (see
    /// [`flow_hash`]), stored in `skb->hash`.
    get_hash_recalc(ctx) |st| {
        let Some(s) = skb(st, ctx, "get_hash_recalc") else { return Ok(0) };
        if s.skb().hash == 0 {
            let h = flow_hash(s);
            s.skb_mut().hash = h;
        }
        Ok(s.skb().hash as u64)
    }
);
helper!(
    /// `long bpf_set_hash(struct sk_buff *skb, u32 hash)`.
    set_hash(ctx, hash) |st| {
        let Some(s) = skb(st, ctx, "set_hash") else { return Ok(0) };
        s.skb_mut().hash = hash as u32;
        Ok(0)
    }
);
helper!(
    /// `void bpf_set_hash_invalid(struct sk_buff *skb)`.
    set_hash_invalid(ctx) |st| {
        let Some(s) = skb(st, ctx, "set_hash_invalid") else { return Ok(0) };
        s.skb_mut().hash = 0;
        Ok(0)
    }
);

/// The helpers of this module by kernel name.
pub const HELPERS: &[(&str, crate::HelperFn)] = &[
    ("skb_load_bytes", skb_load_bytes),
    ("skb_load_bytes_relative", skb_load_bytes_relative),
    ("skb_store_bytes", skb_store_bytes),
    ("l3_csum_replace", l3_csum_replace),
    ("l4_csum_replace", l4_csum_replace),
    ("get_hash_recalc", get_hash_recalc),
    ("set_hash", set_hash),
    ("set_hash_invalid", set_hash_invalid),
];
