//! Internet checksum arithmetic as the kernel's helpers do it
//! (`csum_add`, `csum_fold`, `csum_replace*`, `csum_partial` on a
//! little-endian 64-bit machine), and the checksum helpers.

#![allow(clippy::missing_safety_doc)]

use super::skb::SkbRun;
use crate::helpers::args;
use crate::maps::errno;

/// 32-bit one's complement addition.
pub fn add(a: u32, b: u32) -> u32 {
    let (r, c) = a.overflowing_add(b);
    r.wrapping_add(c as u32)
}

pub fn sub(a: u32, b: u32) -> u32 {
    add(a, !b)
}

/// Fold a 32-bit sum to the 16-bit complemented checksum.
pub fn fold(sum: u32) -> u16 {
    let mut s = (sum & 0xffff) + (sum >> 16);
    s = (s & 0xffff) + (s >> 16);
    !(s as u16)
}

fn add16(a: u16, b: u16) -> u16 {
    let r = a.wrapping_add(b);
    r.wrapping_add((r < b) as u16)
}

/// `csum_partial`: the one's complement sum of `buf` as little-endian
/// 32-bit words (a trailing part padded with zeros), plus `seed`.
pub fn partial(buf: &[u8], seed: u32) -> u32 {
    let mut acc: u64 = seed as u64;
    let mut chunks = buf.chunks_exact(4);
    for c in &mut chunks {
        acc += u32::from_le_bytes(c.try_into().expect("4")) as u64;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 4];
        w[..rest.len()].copy_from_slice(rest);
        acc += u32::from_le_bytes(w) as u64;
    }
    while acc >> 32 != 0 {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

/// Fold a 32-bit sum to 16 bits without complementing it: what
/// `bpf_csum_diff` returns (the same on every architecture since 6.12).
pub fn fold16(sum: u32) -> u16 {
    let mut s = (sum & 0xffff) + (sum >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// `bpf_csum_diff`'s 32-bit arithmetic (folded by [`fold16`]).
pub fn diff(from: &[u8], to: &[u8], seed: u32) -> u32 {
    let mut acc = seed;
    for c in from.chunks_exact(4) {
        acc = add(acc, !u32::from_le_bytes(c.try_into().expect("4")));
    }
    for c in to.chunks_exact(4) {
        acc = add(acc, u32::from_le_bytes(c.try_into().expect("4")));
    }
    acc
}

const HDR_FIELD_MASK: u64 = 0xf;
const PSEUDO_HDR: u64 = 0x10;
const MARK_MANGLED_0: u64 = 0x20;
const MARK_ENFORCE: u64 = 0x40;
const IPV6: u64 = 0x80;

fn einval() -> i64 {
    -(errno::EINVAL as i64)
}

fn efault() -> i64 {
    -(errno::EFAULT as i64)
}

/// The checksum word at `off` from skb data, if the skb has it.
fn sum_at(s: &SkbRun, off: u32) -> Result<usize, i64> {
    if off > 0xffff || off & 1 != 0 {
        return Err(efault());
    }
    if off as usize + 2 > s.len() {
        return Err(efault());
    }
    Ok(s.pkt.data + off as usize)
}

fn get(s: &SkbRun, at: usize) -> u16 {
    u16::from_ne_bytes([s.pkt.buf[at], s.pkt.buf[at + 1]])
}

fn put(s: &mut SkbRun, at: usize, v: u16) {
    s.pkt.buf[at..at + 2].copy_from_slice(&v.to_ne_bytes());
}

/// `bpf_l3_csum_replace`.
pub fn l3_replace(s: &mut SkbRun, off: u32, from: u64, to: u64, flags: u64) -> i64 {
    if flags & !HDR_FIELD_MASK != 0 {
        return einval();
    }
    let at = match sum_at(s, off) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let sum = get(s, at);
    let new = match flags & HDR_FIELD_MASK {
        0 => {
            if from != 0 {
                return einval();
            }
            fold(add(to as u32, !(sum as u32)))
        }
        2 => !add16(add16(!sum, !(from as u16)), to as u16),
        4 => fold(add(sub(!(sum as u32), from as u32), to as u32)),
        _ => return einval(),
    };
    put(s, at, new);
    0
}

/// `bpf_l4_csum_replace` (the skb's checksum is never offloaded here:
/// `CHECKSUM_NONE`, as in a test run).
pub fn l4_replace(s: &mut SkbRun, off: u32, from: u64, to: u64, flags: u64) -> i64 {
    if flags & !(MARK_MANGLED_0 | MARK_ENFORCE | PSEUDO_HDR | HDR_FIELD_MASK | IPV6) != 0 {
        return einval();
    }
    let at = match sum_at(s, off) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let sum = get(s, at);
    let mmzero = flags & MARK_MANGLED_0 != 0;
    if mmzero && flags & MARK_ENFORCE == 0 && sum == 0 {
        return 0;
    }
    let mut new = match flags & HDR_FIELD_MASK {
        0 => {
            if from != 0 {
                return einval();
            }
            fold(add(to as u32, !(sum as u32)))
        }
        2 => fold(add(
            sub(!(sum as u32), from as u16 as u32),
            to as u16 as u32,
        )),
        4 => fold(add(sub(!(sum as u32), from as u32), to as u32)),
        _ => return einval(),
    };
    if mmzero && new == 0 {
        new = 0xffff;
    }
    put(s, at, new);
    0
}

helper!(
    /// `s64 bpf_csum_diff(__be32 *from, u32 from_size, __be32 *to, u32 to_size, __wsum seed)`.
    csum_diff(from, from_size, to, to_size, seed) |st| {
        let (fs, ts) = (from_size as u32, to_size as u32);
        if (fs | ts) & 3 != 0 || fs as u64 + ts as u64 > 512 {
            return Ok(einval() as u64);
        }
        // SAFETY: checked against the run's memory (or proven by the verifier).
        let f = unsafe { args::bytes(st, "csum_diff from", from, fs as u64)? };
        // SAFETY: as above.
        let t = unsafe { args::bytes(st, "csum_diff to", to, ts as u64)? };
        Ok(fold16(diff(f, t, seed as u32)) as u64)
    }
);

/// The helpers of this module by kernel name.
pub const HELPERS: &[(&str, crate::HelperFn)] = &[("csum_diff", csum_diff)];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_checksum() {
        // A header with its checksum field zeroed folds to the known sum.
        let h: [u8; 20] = [
            0x45, 0, 0, 0x73, 0, 0, 0x40, 0, 0x40, 0x11, 0, 0, 0xc0, 0xa8, 0, 1, 0xc0, 0xa8, 0,
            0xc7,
        ];
        let c = fold(partial(&h, 0));
        assert_eq!(c.to_ne_bytes(), [0xb8, 0x61]);
        assert_eq!(diff(&[], &h, 0), partial(&h, 0));
    }
}
