//! XDP: the native `struct xdp_md` and a test run's frame (a 4 KiB page:
//! 256 bytes of headroom, the data, the shared-info tailroom), set up from
//! data_in/ctx_in and read back as the kernel's `bpf_prog_test_run_xdp`
//! does, and the XDP packet helpers.

#![allow(clippy::missing_safety_doc)]

use super::{current, Packet, SetupError, ETH_HLEN, PAGE_SIZE, SHINFO_SIZE};
use crate::abi::RunState;
use crate::helpers::args;
use crate::maps::errno;

/// `XDP_PACKET_HEADROOM`.
pub const HEADROOM: usize = 256;
/// `sizeof(struct xdp_frame)`: the head of the frame adjust_head/meta may not enter.
pub const XDP_FRAME_SIZE: usize = 40;
/// Largest metadata (`xdp_metalen_invalid`: what `skb_shared_info.meta_len`, a u8, holds).
pub const META_MAX: usize = 252;
/// `sizeof(struct xdp_md)`.
pub const XDP_MD_SIZE: usize = 24;

/// The native XDP context: `xdp_md`'s fields, pointers as host pointers.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpMd {
    pub data: u64,
    pub data_end: u64,
    pub data_meta: u64,
    pub ingress_ifindex: u32,
    pub rx_queue_index: u32,
    pub egress_ifindex: u32,
    pub pad: u32,
}

/// XDP return codes.
pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;

/// The name of an XDP verdict.
pub fn verdict_name(v: u32) -> Option<&'static str> {
    Some(match v {
        XDP_ABORTED => "XDP_ABORTED",
        XDP_DROP => "XDP_DROP",
        XDP_PASS => "XDP_PASS",
        XDP_TX => "XDP_TX",
        XDP_REDIRECT => "XDP_REDIRECT",
        _ => return None,
    })
}

/// One XDP frame under test.
#[derive(Debug)]
pub struct XdpRun {
    pub pkt: Packet,
    md: Box<XdpMd>,
    /// The ctx_in the run was set up with (`None`: none given).
    ctx_in: Option<[u8; XDP_MD_SIZE]>,
    /// `data_hard_end`: data_end may grow up to here.
    hard_end: usize,
    /// Where a redirect went: `(ifindex, flags)`.
    pub redirect: Option<u32>,
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

/// The ifindex of the loopback device (the test run's default device).
pub fn loopback_ifindex() -> u32 {
    // SAFETY: a NUL-terminated name.
    match unsafe { libc::if_nametoindex(c"lo".as_ptr()) } {
        0 => 1,
        n => n,
    }
}

/// Receive queues of the device with `ifindex` (`real_num_rx_queues`), if it exists.
pub fn rx_queues(ifindex: u32) -> Option<u32> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes if_indextoname may write.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
    let n = std::fs::read_dir(format!("/sys/class/net/{name}/queues"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count() as u32
        })
        .unwrap_or(1);
    Some(n.max(1))
}

/// Check that the bytes of a ctx_in beyond `size` are zero (`bpf_check_uarg_tail_zero`).
pub(crate) fn ctx_copy<const N: usize>(ctx_in: &[u8]) -> Result<[u8; N], SetupError> {
    if ctx_in.len() > N && ctx_in[N..].iter().any(|&b| b != 0) {
        return Err(SetupError::Ctx(format!(
            "{} bytes, the context has {N}, and the bytes beyond it are not zero",
            ctx_in.len()
        )));
    }
    let mut c = [0u8; N];
    let n = ctx_in.len().min(N);
    c[..n].copy_from_slice(&ctx_in[..n]);
    Ok(c)
}

impl XdpRun {
    /// Set up a frame from `data_in` and an optional `ctx_in` (`struct
    /// xdp_md` bytes), or fail as the kernel's test run does.
    pub fn new(data_in: &[u8], ctx_in: Option<&[u8]>) -> Result<XdpRun, SetupError> {
        let size = data_in.len();
        let ctx = ctx_in.map(ctx_copy::<XDP_MD_SIZE>).transpose()?;
        let mut headroom = HEADROOM;
        let (mut ingress, mut rxq) = (loopback_ifindex(), 0);
        let mut metalen = 0;
        if let Some(c) = &ctx {
            let (data, data_end, data_meta) = (u32_at(c, 0), u32_at(c, 4), u32_at(c, 8));
            let bad = |why: &str| Err(SetupError::Ctx(why.to_string()));
            if data_meta != 0 {
                return bad("data_meta must be 0");
            }
            if data_end as usize != size {
                return bad("data_end must be the size of data_in");
            }
            if data > data_end {
                return bad("data must not exceed data_end");
            }
            if !data.is_multiple_of(4) || data as usize > META_MAX.min(HEADROOM - XDP_FRAME_SIZE) {
                return bad("data (the metadata length) must be a multiple of 4, at most 216");
            }
            if (data_end - data) < ETH_HLEN as u32 {
                return bad("the packet after the metadata must be at least 14 bytes");
            }
            if u32_at(c, 20) != 0 {
                return bad("egress_ifindex must be 0");
            }
            let (ifindex, queue) = (u32_at(c, 12), u32_at(c, 16));
            if ifindex == 0 && queue != 0 {
                return bad("rx_queue_index needs an ingress_ifindex");
            }
            if ifindex != 0 {
                let Some(n) = rx_queues(ifindex) else {
                    return Err(SetupError::NoDevice(ifindex));
                };
                if queue >= n {
                    return Err(SetupError::Ctx(format!(
                        "rx_queue_index {queue}: the device has {n} receive queues"
                    )));
                }
                ingress = ifindex;
                rxq = queue;
            }
            metalen = data as usize;
            headroom -= metalen;
        }
        let max = PAGE_SIZE - headroom - SHINFO_SIZE;
        if size < ETH_HLEN || size > max {
            return Err(SetupError::DataSize(size, ETH_HLEN, max));
        }
        let mut buf = vec![0u8; PAGE_SIZE];
        buf[headroom..headroom + size].copy_from_slice(data_in);
        let pkt = Packet {
            buf,
            meta: headroom,
            data: headroom + metalen,
            end: headroom + size,
        };
        let md = Box::new(XdpMd {
            ingress_ifindex: ingress,
            rx_queue_index: rxq,
            ..XdpMd::default()
        });
        let mut run = XdpRun {
            pkt,
            md,
            ctx_in: ctx,
            hard_end: PAGE_SIZE - SHINFO_SIZE,
            redirect: None,
        };
        run.sync();
        Ok(run)
    }

    /// Write the packet bounds into the native context.
    fn sync(&mut self) {
        let base = self.pkt.base();
        self.md.data = base + self.pkt.data as u64;
        self.md.data_end = base + self.pkt.end as u64;
        self.md.data_meta = base + self.pkt.meta as u64;
    }

    pub fn md_addr(&self) -> u64 {
        &*self.md as *const XdpMd as u64
    }

    pub fn md_bytes(&mut self) -> &mut [u8] {
        // SAFETY: XdpMd is plain old data of XDP_MD_SIZE + 8 bytes.
        unsafe {
            std::slice::from_raw_parts_mut(
                &mut *self.md as *mut XdpMd as *mut u8,
                std::mem::size_of::<XdpMd>(),
            )
        }
    }

    pub fn md(&self) -> &XdpMd {
        &self.md
    }

    /// data_out: metadata and packet, as the kernel copies them.
    pub fn data_out(&self) -> &[u8] {
        &self.pkt.buf[self.pkt.meta..self.pkt.end]
    }

    /// ctx_out: the ctx_in with data and data_end as offsets from data_meta
    /// (a zeroed `xdp_md` when there was no ctx_in).
    pub fn ctx_out(&self) -> Vec<u8> {
        let mut c = self.ctx_in.unwrap_or([0; XDP_MD_SIZE]);
        let data = (self.pkt.data - self.pkt.meta) as u32;
        let end = (self.pkt.end - self.pkt.meta) as u32;
        c[0..4].copy_from_slice(&data.to_ne_bytes());
        c[4..8].copy_from_slice(&end.to_ne_bytes());
        c.to_vec()
    }

    /// `bpf_xdp_adjust_head`.
    pub fn adjust_head(&mut self, offset: i32) -> i64 {
        let p = &mut self.pkt;
        let metalen = p.data - p.meta;
        let data = p.data as i64 + offset as i64;
        if data < (XDP_FRAME_SIZE + metalen) as i64 || data > (p.end - ETH_HLEN) as i64 {
            return -(errno::EINVAL as i64);
        }
        let data = data as usize;
        let meta = data - metalen;
        if metalen > 0 {
            p.buf.copy_within(p.meta..p.data, meta);
        }
        p.meta = meta;
        p.data = data;
        self.sync();
        0
    }

    /// `bpf_xdp_adjust_meta`.
    pub fn adjust_meta(&mut self, offset: i32) -> i64 {
        let p = &mut self.pkt;
        let meta = p.meta as i64 + offset as i64;
        if meta < XDP_FRAME_SIZE as i64 || meta > p.data as i64 {
            return -(errno::EINVAL as i64);
        }
        let metalen = p.data - meta as usize;
        if !metalen.is_multiple_of(4) || metalen > META_MAX {
            return -(errno::EACCES as i64);
        }
        p.meta = meta as usize;
        self.sync();
        0
    }

    /// `bpf_xdp_adjust_tail`.
    pub fn adjust_tail(&mut self, offset: i32) -> i64 {
        let p = &mut self.pkt;
        let end = p.end as i64 + offset as i64;
        if end > self.hard_end as i64 || end < (p.data + ETH_HLEN) as i64 {
            return -(errno::EINVAL as i64);
        }
        let end = end as usize;
        if end > p.end {
            p.buf[p.end..end].fill(0);
        }
        p.end = end;
        self.sync();
        0
    }

    /// The packet range `[data + off, data + off + len)` for xdp_load/store_bytes.
    fn range(&self, off: u32, len: u32) -> Result<std::ops::Range<usize>, i64> {
        if off > 0xffff || len > 0xffff {
            return Err(-(errno::EFAULT as i64));
        }
        if (off + len) as usize > self.pkt.len() {
            return Err(-(errno::EINVAL as i64));
        }
        let start = self.pkt.data + off as usize;
        Ok(start..start + len as usize)
    }
}

fn xdp<'a>(st: &mut RunState, r1: u64, what: &str) -> Option<&'a mut XdpRun> {
    match current(st, r1, what)? {
        super::NetRun::Xdp(x) => Some(x),
        _ => {
            crate::helpers::fail(st, format!("{what}: not an XDP context"));
            None
        }
    }
}

helper!(
    /// `long bpf_xdp_adjust_head(struct xdp_md *ctx, int offset)`.
    xdp_adjust_head(ctx, off) |st| {
        Ok(xdp(st, ctx, "xdp_adjust_head").map_or(0, |x| x.adjust_head(off as i32) as u64))
    }
);
helper!(
    /// `long bpf_xdp_adjust_meta(struct xdp_md *ctx, int offset)`.
    xdp_adjust_meta(ctx, off) |st| {
        Ok(xdp(st, ctx, "xdp_adjust_meta").map_or(0, |x| x.adjust_meta(off as i32) as u64))
    }
);
helper!(
    /// `long bpf_xdp_adjust_tail(struct xdp_md *ctx, int offset)`.
    xdp_adjust_tail(ctx, off) |st| {
        Ok(xdp(st, ctx, "xdp_adjust_tail").map_or(0, |x| x.adjust_tail(off as i32) as u64))
    }
);
helper!(
    /// `long bpf_xdp_load_bytes(struct xdp_md *ctx, u32 offset, void *buf, u32 len)`.
    xdp_load_bytes(ctx, off, buf, len) |st| {
        let Some(x) = xdp(st, ctx, "xdp_load_bytes") else { return Ok(0) };
        let r = match x.range(off as u32, len as u32) {
            Ok(r) => r,
            Err(e) => return Ok(e as u64),
        };
        // SAFETY: checked against the run's memory (or proven by the verifier).
        let out = unsafe { args::bytes_mut(st, "xdp_load_bytes buf", buf, len as u32 as u64)? };
        out.copy_from_slice(&x.pkt.buf[r]);
        Ok(0)
    }
);
helper!(
    /// `long bpf_xdp_store_bytes(struct xdp_md *ctx, u32 offset, void *buf, u32 len)`.
    xdp_store_bytes(ctx, off, buf, len) |st| {
        let Some(x) = xdp(st, ctx, "xdp_store_bytes") else { return Ok(0) };
        let r = match x.range(off as u32, len as u32) {
            Ok(r) => r,
            Err(e) => return Ok(e as u64),
        };
        // SAFETY: as above.
        let src = unsafe { args::bytes(st, "xdp_store_bytes buf", buf, len as u32 as u64)? };
        x.pkt.buf[r].copy_from_slice(src);
        Ok(0)
    }
);
helper!(
    /// `long bpf_xdp_get_buff_len(struct xdp_md *ctx)`.
    xdp_get_buff_len(ctx) |st| {
        Ok(xdp(st, ctx, "xdp_get_buff_len").map_or(0, |x| x.pkt.len() as u64))
    }
);

/// The helpers of this module by kernel name.
pub const HELPERS: &[(&str, crate::HelperFn)] = &[
    ("xdp_adjust_head", xdp_adjust_head),
    ("xdp_adjust_meta", xdp_adjust_meta),
    ("xdp_adjust_tail", xdp_adjust_tail),
    ("xdp_load_bytes", xdp_load_bytes),
    ("xdp_store_bytes", xdp_store_bytes),
    ("xdp_get_buff_len", xdp_get_buff_len),
];
