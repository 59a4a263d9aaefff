//! String helpers: `bpf_strtol`, `bpf_strtoul` and `bpf_strncmp`, with the
//! kernel's parsing rules (leading white space, a sign, base 0/8/10/16 with
//! `0x` and `0` prefixes, at most 63 characters looked at, `-ERANGE` on
//! overflow, the number of characters consumed as the result).

use super::args;
use super::{neg, HelperFn};
use crate::maps::errno;

/// The helpers of this module by kernel name.
pub const HELPERS: &[(&str, HelperFn)] = &[
    ("strtol", strtol),
    ("strtoul", strtoul),
    ("strncmp", strncmp),
];

const BASE_MASK: u64 = 0x1f;

/// The kernel's `isspace` (Latin-1 table: also NBSP).
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0xa0)
}

/// Parse as `__bpf_strtoull`: (characters consumed, value, negative) or `-errno`.
pub fn parse_u64(buf: &[u8], flags: u64) -> Result<(usize, u64, bool), i32> {
    let mut base = (flags & BASE_MASK) as u32;
    if buf.is_empty() || !matches!(base, 0 | 8 | 10 | 16) || flags & !BASE_MASK != 0 {
        return Err(errno::EINVAL);
    }
    let mut i = 0;
    while i < buf.len() && is_space(buf[i]) {
        i += 1;
    }
    let negative = i < buf.len() && buf[i] == b'-';
    if negative {
        i += 1;
    }
    if i == buf.len() {
        return Err(errno::EINVAL);
    }
    let consumed_prefix = i;
    let window = &buf[i..buf.len().min(i + 63)];
    let at = |k: usize| window.get(k).copied().unwrap_or(0);
    if base == 0 {
        base = if at(0) == b'0' {
            if at(1).eq_ignore_ascii_case(&b'x') && at(2).is_ascii_hexdigit() {
                16
            } else {
                8
            }
        } else {
            10
        };
    }
    let mut k = 0;
    if base == 16 && at(0) == b'0' && at(1).eq_ignore_ascii_case(&b'x') {
        k = 2;
    }
    let start = k;
    let mut value: u64 = 0;
    let mut overflow = false;
    while k < window.len() {
        let c = window[k];
        let d = match c {
            b'0'..=b'9' => (c - b'0') as u32,
            b'a'..=b'f' | b'A'..=b'F' => (c.to_ascii_lowercase() - b'a') as u32 + 10,
            _ => break,
        };
        if d >= base {
            break;
        }
        match value
            .checked_mul(base as u64)
            .and_then(|v| v.checked_add(d as u64))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
        k += 1;
    }
    if overflow {
        return Err(errno::ERANGE);
    }
    if k == start {
        return Err(errno::EINVAL);
    }
    Ok((consumed_prefix + k, value, negative))
}

/// `__bpf_strtoll`.
pub fn parse_i64(buf: &[u8], flags: u64) -> Result<(usize, i64), i32> {
    let (n, v, negative) = parse_u64(buf, flags)?;
    let r = if negative {
        let r = (v as i64).wrapping_neg();
        if r > 0 {
            return Err(errno::ERANGE);
        }
        r
    } else {
        if (v as i64) < 0 {
            return Err(errno::ERANGE);
        }
        v as i64
    };
    Ok((n, r))
}

helper!(
    /// `long bpf_strtol(const char *buf, size_t buf_len, u64 flags, long *res)`.
    strtol(buf, len, flags, res) |st| {
        // SAFETY: arguments of the program (verified, or checked here).
        let b = unsafe { args::bytes(st, "buf", buf, len)? };
        // SAFETY: as above.
        let out = unsafe { args::bytes_mut(st, "res", res, 8)? };
        Ok(match parse_i64(b, flags) {
            Ok((n, v)) => {
                out.copy_from_slice(&v.to_ne_bytes());
                n as u64
            }
            Err(e) => neg(e),
        })
    }
);

helper!(
    /// `long bpf_strtoul(const char *buf, size_t buf_len, u64 flags, unsigned long *res)`:
    /// a leading `-` is `-EINVAL`.
    strtoul(buf, len, flags, res) |st| {
        // SAFETY: arguments of the program (verified, or checked here).
        let b = unsafe { args::bytes(st, "buf", buf, len)? };
        // SAFETY: as above.
        let out = unsafe { args::bytes_mut(st, "res", res, 8)? };
        Ok(match parse_u64(b, flags) {
            Ok((_, _, true)) => neg(errno::EINVAL),
            Ok((n, v, false)) => {
                out.copy_from_slice(&v.to_ne_bytes());
                n as u64
            }
            Err(e) => neg(e),
        })
    }
);

helper!(
    /// `long bpf_strncmp(const char *s1, u32 s1_sz, const char *s2)`: -1, 0 or
    /// 1, comparing at most `s1_sz` bytes and stopping at a NUL.
    strncmp(s1, n, s2) |st| {
        // SAFETY: arguments of the program (verified, or checked here).
        let a = unsafe { args::bytes(st, "s1", s1, n)? };
        // SAFETY: as above.
        let b = unsafe { args::cstr(st, "s2", s2, u32::MAX as u64)? };
        for (i, &c1) in a.iter().enumerate() {
            let c2 = b.get(i).copied().unwrap_or(0);
            if c1 != c2 {
                return Ok(if c1 < c2 { u64::MAX } else { 1 });
            }
            if c1 == 0 {
                break;
            }
        }
        Ok(0)
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_parse_rules() {
        assert_eq!(parse_i64(b"  -42xyz", 0), Ok((5, -42)));
        assert_eq!(parse_u64(b"0x1F", 0), Ok((4, 31, false)));
        assert_eq!(parse_u64(b"017", 0), Ok((3, 15, false)));
        assert_eq!(parse_u64(b"0x", 0), Ok((1, 0, false)));
        assert_eq!(parse_u64(b"ff", 16), Ok((2, 255, false)));
        assert_eq!(parse_u64(b"   ", 0), Err(errno::EINVAL));
        assert_eq!(parse_u64(b"z", 10), Err(errno::EINVAL));
        assert_eq!(parse_u64(b"12", 7), Err(errno::EINVAL));
        assert_eq!(parse_u64(b"12", 0x20), Err(errno::EINVAL));
        assert_eq!(parse_u64(b"99999999999999999999", 10), Err(errno::ERANGE));
        assert_eq!(parse_i64(b"9223372036854775808", 10), Err(errno::ERANGE));
        assert_eq!(parse_i64(b"-9223372036854775808", 10), Ok((20, i64::MIN)));
    }
}
