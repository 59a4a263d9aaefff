//! Helpers that change an skb's size or layout (`bpf_skb_change_tail`,
//! `bpf_skb_change_head`, `bpf_skb_adjust_room`, `bpf_skb_vlan_push`/`pop`,
//! `bpf_skb_pull_data`) and the redirect helpers of XDP and tc. The
//! buffer grows as needed (the kernel reallocates too); the packet region
//! of checked runs follows it.

#![allow(clippy::missing_safety_doc)]

use super::skb::{skb, SkbRun};
use super::{NetRun, ETH_HLEN};
use crate::abi::RunState;
use crate::maps::errno;

/// `BPF_SKB_MAX_LEN` (`SKB_MAX_ALLOC` on 4 KiB pages): the longest skb a
/// helper may make.
pub const SKB_MAX_LEN: usize = 16384 - super::SHINFO_SIZE;
const VLAN_HLEN: usize = 4;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;

/// -ENOTSUPP, the kernel's internal 524.
const ENOTSUPP: i32 = 524;

impl SkbRun {
    /// Make room for `head` more bytes before the data and `tail` after
    /// the end, moving the buffer if needed; returns the old buffer base
    /// when it moved.
    fn reserve(&mut self, head: usize, tail: usize) -> Option<usize> {
        let old = self.pkt.buf.as_ptr() as usize;
        let room_head = self.pkt.meta.min(self.mac).min(self.pkt.data);
        let room_tail = self.pkt.buf.len() - self.pkt.end;
        if room_head >= head && room_tail >= tail {
            return None;
        }
        let shift = head.saturating_sub(room_head) + 64;
        let mut buf = vec![0u8; self.pkt.buf.len() + shift + tail + 64];
        buf[shift..shift + self.pkt.buf.len()].copy_from_slice(&self.pkt.buf);
        self.pkt.buf = buf;
        self.pkt.meta += shift;
        self.pkt.data += shift;
        self.pkt.end += shift;
        self.mac += shift;
        self.network += shift;
        Some(old)
    }

    /// The ethertype the skb carries (`skb->protocol`, host order).
    pub fn protocol(&self) -> u16 {
        u16::from_be_bytes((self.skb().protocol as u16).to_ne_bytes())
    }

    fn set_protocol(&mut self, p: u16) {
        self.skb_mut().protocol = u16::from_ne_bytes(p.to_be_bytes()) as u32;
    }

    /// `bpf_skb_change_tail`.
    pub fn change_tail(&mut self, new_len: u32, flags: u64) -> (i64, Option<usize>) {
        let min = self.network.saturating_sub(self.pkt.data);
        let new_len = new_len as usize;
        if flags != 0 || new_len > SKB_MAX_LEN || new_len < min {
            return (-(errno::EINVAL as i64), None);
        }
        let len = self.len();
        let mut moved = None;
        if new_len > len {
            moved = self.reserve(0, new_len - len);
            let end = self.pkt.end;
            self.pkt.buf[end..end + new_len - len].fill(0);
        }
        self.pkt.end = self.pkt.data + new_len;
        if self.is_gso() {
            let s = self.skb_mut();
            s.gso_size = 0;
            s.gso_segs = 0;
        }
        self.sync();
        (0, moved)
    }

    /// `bpf_skb_change_head`.
    pub fn change_head(&mut self, room: u32, flags: u64) -> (i64, Option<usize>) {
        let room = room as usize;
        if flags != 0 || (!self.is_gso() && self.len() + room > SKB_MAX_LEN) {
            return (-(errno::EINVAL as i64), None);
        }
        let moved = self.reserve(room, 0);
        self.pkt.data -= room;
        self.pkt.meta = self.pkt.data;
        let d = self.pkt.data;
        self.pkt.buf[d..d + room].fill(0);
        self.mac = self.pkt.data;
        self.sync();
        (0, moved)
    }

    /// `bpf_skb_adjust_room` without encapsulation flags.
    pub fn adjust_room(&mut self, diff: i32, mode: u32, flags: u64) -> (i64, Option<usize>) {
        // BPF_F_ADJ_ROOM_FIXED_GSO and BPF_F_ADJ_ROOM_NO_CSUM_RESET change
        // nothing observable here; encapsulation flags are not modelled.
        const FIXED_GSO: u64 = 1;
        const NO_CSUM_RESET: u64 = 1 << 5;
        if flags & !(FIXED_GSO | NO_CSUM_RESET) != 0 {
            return (-(errno::EINVAL as i64), None);
        }
        let abs = diff.unsigned_abs() as usize;
        if abs > 0xfff {
            return (-(errno::EFAULT as i64), None);
        }
        let base = match self.protocol() {
            0x0800 => 20,
            0x86dd => 40,
            _ => return (-(ENOTSUPP as i64), None),
        };
        let mut off = self.network - self.mac;
        match mode {
            0 => off += base,
            1 => {}
            _ => return (-(ENOTSUPP as i64), None),
        }
        let cur = self.pkt.end.saturating_sub(self.network);
        let shrink = diff < 0;
        if (shrink && (abs >= cur || cur - abs < base))
            || (!shrink && self.len() + abs > SKB_MAX_LEN)
        {
            return (-(ENOTSUPP as i64), None);
        }
        // A GSO skb of the test run has no GSO type (not TCP): refused.
        if self.is_gso() {
            return (-(ENOTSUPP as i64), None);
        }
        let mut moved = None;
        if shrink {
            if off + abs > self.len() {
                return (-(errno::ENOMEM as i64), None);
            }
            let d = self.pkt.data;
            self.pkt.buf.copy_within(d..d + off, d + abs);
            self.pkt.data += abs;
            self.mac += abs;
            self.network += abs;
        } else {
            moved = self.reserve(abs, 0);
            let d = self.pkt.data;
            self.pkt.buf.copy_within(d..d + off, d - abs);
            self.pkt.data -= abs;
            let d = self.pkt.data;
            self.pkt.buf[d + off..d + off + abs].fill(0);
            self.mac -= abs;
            self.network -= abs;
        }
        self.pkt.meta = self.pkt.data;
        self.sync();
        (0, moved)
    }

    fn is_gso(&self) -> bool {
        self.skb().gso_size != 0
    }

    fn vlan_tag_present(&self) -> bool {
        self.skb().vlan_present != 0
    }

    /// `__skb_vlan_pop`: take the tag after the MAC addresses out of the packet.
    fn vlan_pop_data(&mut self) -> Result<u16, i64> {
        if self.pkt.data != self.mac {
            return Err(-(errno::EINVAL as i64));
        }
        if self.len() < ETH_HLEN + VLAN_HLEN {
            return Err(-(errno::ENOMEM as i64));
        }
        let d = self.pkt.data;
        let b = &self.pkt.buf;
        let tci = u16::from_be_bytes([b[d + 14], b[d + 15]]);
        let inner = u16::from_be_bytes([b[d + 16], b[d + 17]]);
        self.pkt.buf.copy_within(d..d + 12, d + VLAN_HLEN);
        self.pkt.data += VLAN_HLEN;
        self.pkt.meta = self.pkt.data;
        self.mac += VLAN_HLEN;
        let proto = if inner >= 0x0600 {
            inner
        } else if self.len() >= ETH_HLEN + 2
            && self.pkt.buf[self.pkt.data + 14] == 0xff
            && self.pkt.buf[self.pkt.data + 15] == 0xff
        {
            0x0001
        } else {
            0x0004
        };
        self.set_protocol(proto);
        if self.network < self.mac + ETH_HLEN {
            self.network = self.mac + ETH_HLEN;
        }
        Ok(tci)
    }

    /// `bpf_skb_vlan_pop`.
    pub fn vlan_pop(&mut self) -> i64 {
        let r = (|| {
            if self.vlan_tag_present() {
                let s = self.skb_mut();
                s.vlan_present = 0;
                s.vlan_tci = 0;
                s.vlan_proto = 0;
            } else {
                if !matches!(self.protocol(), ETH_P_8021Q | ETH_P_8021AD) {
                    return Ok(());
                }
                self.vlan_pop_data()?;
            }
            let proto = self.protocol();
            if !matches!(proto, ETH_P_8021Q | ETH_P_8021AD) {
                return Ok(());
            }
            let tci = self.vlan_pop_data()?;
            self.put_tag(proto, tci);
            Ok(())
        })();
        self.sync();
        r.err().unwrap_or(0)
    }

    fn put_tag(&mut self, proto: u16, tci: u16) {
        let s = self.skb_mut();
        s.vlan_present = 1;
        s.vlan_tci = tci as u32;
        s.vlan_proto = u16::from_ne_bytes(proto.to_be_bytes()) as u32;
    }

    /// `bpf_skb_vlan_push` (`vlan_proto` as the program passed it, in
    /// network order).
    pub fn vlan_push(&mut self, proto_be: u16, tci: u16) -> (i64, Option<usize>) {
        let mut proto = u16::from_be(proto_be);
        if proto != ETH_P_8021Q && proto != ETH_P_8021AD {
            proto = ETH_P_8021Q;
        }
        let mut moved = None;
        if self.vlan_tag_present() {
            if self.pkt.data != self.mac {
                return (-(errno::EINVAL as i64), None);
            }
            if self.len() < 2 * 6 {
                return (-(errno::ENOMEM as i64), None);
            }
            moved = self.reserve(VLAN_HLEN, 0);
            let d = self.pkt.data;
            self.pkt.buf.copy_within(d..d + 12, d - VLAN_HLEN);
            self.pkt.data -= VLAN_HLEN;
            self.pkt.meta = self.pkt.data;
            self.mac -= VLAN_HLEN;
            let d = self.pkt.data;
            let old_proto = (self.skb().vlan_proto as u16).to_ne_bytes();
            let old_tci = (self.skb().vlan_tci as u16).to_be_bytes();
            self.pkt.buf[d + 12..d + 14].copy_from_slice(&old_proto);
            self.pkt.buf[d + 14..d + 16].copy_from_slice(&old_tci);
            let p = u16::from_be_bytes(old_proto);
            self.set_protocol(p);
        }
        self.put_tag(proto, tci);
        self.sync();
        (0, moved)
    }

    /// `bpf_skb_pull_data`: every byte is in the linear part already.
    pub fn pull_data(&self, len: u32) -> i64 {
        if len as usize > self.len() {
            -(errno::ENOMEM as i64)
        } else {
            0
        }
    }
}

/// After a helper: move the packet region if the buffer moved.
fn done(st: &mut RunState, (r, moved): (i64, Option<usize>)) -> u64 {
    if let Some(old) = moved {
        // SAFETY: a non-null ctx in a run state is the run's live context.
        if let Some(ctx) = unsafe { st.ctx.as_mut() } {
            ctx.regions.remove(old);
            if let Some(n) = ctx.net.as_deref() {
                let (base, len) = n.region();
                ctx.regions.add(super::PACKET_REGION, base, len, true);
            }
        }
    }
    r as u64
}

helper!(
    /// `long bpf_skb_change_tail(struct sk_buff *skb, u32 len, u64 flags)`.
    skb_change_tail(ctx, len, flags) |st| {
        let Some(s) = skb(st, ctx, "skb_change_tail") else { return Ok(0) };
        let r = s.change_tail(len as u32, flags);
        Ok(done(st, r))
    }
);
helper!(
    /// `long bpf_skb_change_head(struct sk_buff *skb, u32 len, u64 flags)`.
    skb_change_head(ctx, len, flags) |st| {
        let Some(s) = skb(st, ctx, "skb_change_head") else { return Ok(0) };
        let r = s.change_head(len as u32, flags);
        Ok(done(st, r))
    }
);
helper!(
    /// `long bpf_skb_adjust_room(struct sk_buff *skb, s32 len_diff, u32 mode, u64 flags)`.
    skb_adjust_room(ctx, diff, mode, flags) |st| {
        let Some(s) = skb(st, ctx, "skb_adjust_room") else { return Ok(0) };
        let r = s.adjust_room(diff as i32, mode as u32, flags);
        Ok(done(st, r))
    }
);
helper!(
    /// `long bpf_skb_vlan_push(struct sk_buff *skb, __be16 vlan_proto, u16 vlan_tci)`.
    skb_vlan_push(ctx, proto, tci) |st| {
        let Some(s) = skb(st, ctx, "skb_vlan_push") else { return Ok(0) };
        let r = s.vlan_push(proto as u16, tci as u16);
        Ok(done(st, r))
    }
);
helper!(
    /// `long bpf_skb_vlan_pop(struct sk_buff *skb)`.
    skb_vlan_pop(ctx) |st| {
        let Some(s) = skb(st, ctx, "skb_vlan_pop") else { return Ok(0) };
        Ok(s.vlan_pop() as u64)
    }
);
helper!(
    /// `long bpf_skb_pull_data(struct sk_buff *skb, u32 len)`.
    skb_pull_data(ctx, len) |st| {
        let Some(s) = skb(st, ctx, "skb_pull_data") else { return Ok(0) };
        Ok(s.pull_data(len as u32) as u64)
    }
);

/// The run's network state whatever r1 is (the redirect helpers take no context).
fn net<'a>(st: &mut RunState) -> Option<&'a mut NetRun> {
    // SAFETY: a non-null ctx in a run state is the run's live context; the
    // network state lives until the run ends.
    let n = unsafe { st.ctx.as_mut() }.and_then(|c| c.net.as_deref_mut())?;
    // SAFETY: as above; the reference does not outlive the helper call.
    Some(unsafe { &mut *(n as *mut NetRun) })
}

const TC_ACT_SHOT: u64 = 2;
const TC_ACT_REDIRECT: u64 = 7;
const BPF_F_INGRESS: u64 = 1;

helper!(
    /// `long bpf_redirect(u32 ifindex, u64 flags)`: XDP_REDIRECT or
    /// TC_ACT_REDIRECT, the target recorded for the host.
    redirect(ifindex, flags) |st| {
        let Some(n) = net(st) else {
            crate::helpers::fail(st, "redirect: the run has no packet");
            return Err(crate::helpers::args::Stopped);
        };
        Ok(match n {
            NetRun::Xdp(x) => {
                if flags != 0 {
                    return Ok(super::xdp::XDP_ABORTED as u64);
                }
                x.redirect = Some(ifindex as u32);
                super::xdp::XDP_REDIRECT as u64
            }
            NetRun::Skb(s) => {
                if flags & !BPF_F_INGRESS != 0 {
                    return Ok(TC_ACT_SHOT);
                }
                s.redirect = Some(ifindex as u32);
                TC_ACT_REDIRECT
            }
        })
    }
);
helper!(
    /// `long bpf_redirect_map(struct bpf_map *map, u64 key, u64 flags)`:
    /// through a device map; a missing entry returns the action in the
    /// low bits of `flags`.
    redirect_map(map, key, flags) |st| {
        const ACTION_MASK: u64 = 3;
        const BROADCAST: u64 = 1 << 3;
        const EXCLUDE_INGRESS: u64 = 1 << 4;
        // SAFETY: checked against the live maps (or proven by the verifier).
        let m = unsafe { crate::helpers::args::map(st, map)? };
        if flags & !(ACTION_MASK | BROADCAST | EXCLUDE_INGRESS) != 0 {
            return Ok(super::xdp::XDP_ABORTED as u64);
        }
        let target = if flags & BROADCAST != 0 {
            Some(0)
        } else {
            crate::maps::devmap::redirect_target(m, key as u32)
        };
        let Some(t) = target else {
            return Ok(flags & ACTION_MASK);
        };
        match net(st) {
            Some(NetRun::Xdp(x)) => x.redirect = Some(t),
            Some(NetRun::Skb(s)) => s.redirect = Some(t),
            None => {}
        }
        Ok(super::xdp::XDP_REDIRECT as u64)
    }
);

/// The helpers of this module by kernel name.
pub const HELPERS: &[(&str, crate::HelperFn)] = &[
    ("skb_change_tail", skb_change_tail),
    ("skb_change_head", skb_change_head),
    ("skb_adjust_room", skb_adjust_room),
    ("skb_vlan_push", skb_vlan_push),
    ("skb_vlan_pop", skb_vlan_pop),
    ("skb_pull_data", skb_pull_data),
    ("redirect", redirect),
    ("redirect_map", redirect_map),
];
