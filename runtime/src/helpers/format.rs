//! The kernel's `bpf_bprintf` format rules, shared by `bpf_trace_printk`,
//! `bpf_trace_vprintk` and `bpf_snprintf`: which conversions a format may
//! use (`%d %i %u %x %X` with `l`/`ll`, `%c`, `%s`, `%p` and its `K x s S
//! B i4 I4 i6 I6 ks us` forms, `%%`, flags `0+- ` and a width), that every
//! byte of it is printable, and how many arguments it takes; then the text.
//! Strings and addresses behind `%s`/`%pI4`... are read from host memory
//! without faulting; an unreadable one prints as empty or zeroes, as in the
//! kernel. `%p` prints the raw address (the kernel prints a hashed one).

use super::misc::read_host;
use crate::maps::errno;

/// Longest formatted text (`MAX_BPRINTF_BUF`).
pub const MAX_BUF: usize = 1024;
/// Most arguments of `trace_vprintk` and `snprintf` (`MAX_BPRINTF_VARARGS`).
pub const MAX_VARARGS: usize = 12;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Conv {
    Int {
        bytes: u8,
        signed: bool,
        hex: Option<bool>,
    },
    Char,
    Str,
    Ptr,
    Ip {
        v6: bool,
        upper: bool,
    },
}

struct Spec {
    flags: Vec<u8>,
    width: usize,
    conv: Conv,
}

fn is_print_or_space(c: u8) -> bool {
    !c.is_ascii() || c.is_ascii_graphic() || c == b' ' || (b'\t'..=b'\r').contains(&c)
}

/// Split `fmt` (up to its NUL) into literal text and conversions, checking
/// it as the kernel does. `Err(errno)` for an invalid format.
fn parse(fmt: &[u8], nargs: usize) -> Result<Vec<Result<Vec<u8>, Spec>>, i32> {
    let end = fmt.iter().position(|&b| b == 0).ok_or(errno::EINVAL)?;
    let f = &fmt[..end];
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    let mut out = Vec::new();
    let mut lit = Vec::new();
    let mut specs = 0;
    let mut i = 0;
    while i < f.len() {
        let c = f[i];
        if !is_print_or_space(c) {
            return Err(errno::EINVAL);
        }
        if c != b'%' {
            lit.push(c);
            i += 1;
            continue;
        }
        if at(i + 1) == b'%' {
            lit.push(b'%');
            i += 2;
            continue;
        }
        if specs >= nargs {
            return Err(errno::EINVAL);
        }
        i += 1;
        if !at(i).is_ascii() {
            return Err(errno::EINVAL);
        }
        let mut flags = Vec::new();
        while matches!(at(i), b'0' | b'+' | b'-' | b' ') {
            flags.push(at(i));
            i += 1;
        }
        let mut width = 0usize;
        if (b'1'..=b'9').contains(&at(i)) {
            while at(i).is_ascii_digit() {
                width = (width * 10 + (at(i) - b'0') as usize).min(MAX_BUF);
                i += 1;
            }
        }
        let ends_word = |c: u8| c == 0 || c.is_ascii_whitespace() || c.is_ascii_punctuation();
        let conv = match at(i) {
            b'p' => {
                let n = at(i + 1);
                if ends_word(n) {
                    i += 1;
                    Conv::Ptr
                } else if (n == b'k' || n == b'u') && at(i + 2) == b's' {
                    i += 3;
                    if !ends_word(at(i)) {
                        return Err(errno::EINVAL);
                    }
                    Conv::Str
                } else if matches!(n, b'K' | b'x' | b's' | b'S' | b'B') {
                    i += 2;
                    Conv::Ptr
                } else if matches!(n, b'i' | b'I') && matches!(at(i + 2), b'4' | b'6') {
                    let v6 = at(i + 2) == b'6';
                    i += 3;
                    Conv::Ip {
                        v6,
                        upper: n == b'I',
                    }
                } else {
                    return Err(errno::EINVAL);
                }
            }
            b's' => {
                i += 1;
                if !ends_word(at(i)) {
                    return Err(errno::EINVAL);
                }
                Conv::Str
            }
            b'c' => {
                i += 1;
                Conv::Char
            }
            _ => {
                let mut bytes = 4;
                if at(i) == b'l' {
                    bytes = 8;
                    i += 1;
                }
                if at(i) == b'l' {
                    i += 1;
                }
                let (signed, hex) = match at(i) {
                    b'd' | b'i' => (true, None),
                    b'u' => (false, None),
                    b'x' => (false, Some(false)),
                    b'X' => (false, Some(true)),
                    _ => return Err(errno::EINVAL),
                };
                i += 1;
                Conv::Int { bytes, signed, hex }
            }
        };
        if !lit.is_empty() {
            out.push(Ok(std::mem::take(&mut lit)));
        }
        out.push(Err(Spec { flags, width, conv }));
        specs += 1;
    }
    if !lit.is_empty() {
        out.push(Ok(lit));
    }
    Ok(out)
}

fn pad(body: Vec<u8>, spec: &Spec, numeric: bool) -> Vec<u8> {
    if body.len() >= spec.width {
        return body;
    }
    let fill = spec.width - body.len();
    if spec.flags.contains(&b'-') {
        let mut v = body;
        v.extend(std::iter::repeat_n(b' ', fill));
        v
    } else if numeric && spec.flags.contains(&b'0') {
        let (sign, digits) = match body.first() {
            Some(b'-' | b'+' | b' ') => body.split_at(1),
            _ => body.split_at(0),
        };
        let mut v = sign.to_vec();
        v.extend(std::iter::repeat_n(b'0', fill));
        v.extend_from_slice(digits);
        v
    } else {
        let mut v = vec![b' '; fill];
        v.extend(body);
        v
    }
}

fn read_cstr(addr: u64, max: usize) -> Vec<u8> {
    let mut v = Vec::new();
    while v.len() < max {
        let mut b = [0u8; 1];
        if read_host(addr.wrapping_add(v.len() as u64), &mut b).is_err() || b[0] == 0 {
            break;
        }
        v.push(b[0]);
    }
    v
}

fn format_one(spec: &Spec, arg: u64) -> Vec<u8> {
    match spec.conv {
        Conv::Int { bytes, signed, hex } => {
            let v = if bytes == 4 { arg & 0xffff_ffff } else { arg };
            let body = match hex {
                Some(upper) => {
                    let s = format!("{v:x}");
                    if upper {
                        s.to_uppercase()
                    } else {
                        s
                    }
                }
                None if signed => {
                    let n = if bytes == 4 {
                        v as u32 as i32 as i64
                    } else {
                        v as i64
                    };
                    let mut s = n.to_string();
                    if n >= 0 {
                        if spec.flags.contains(&b'+') {
                            s.insert(0, '+');
                        } else if spec.flags.contains(&b' ') {
                            s.insert(0, ' ');
                        }
                    }
                    s
                }
                None => v.to_string(),
            };
            pad(body.into_bytes(), spec, true)
        }
        Conv::Char => pad(vec![arg as u8], spec, false),
        Conv::Str => pad(read_cstr(arg, MAX_BUF), spec, false),
        Conv::Ptr => pad(format!("{arg:016x}").into_bytes(), spec, false),
        Conv::Ip { v6, upper } => {
            let mut b = [0u8; 16];
            let n = if v6 { 16 } else { 4 };
            if read_host(arg, &mut b[..n]).is_err() {
                b = [0; 16];
            }
            let text = if !v6 {
                let parts: Vec<String> = b[..4]
                    .iter()
                    .map(|x| {
                        if upper {
                            x.to_string()
                        } else {
                            format!("{x:03}")
                        }
                    })
                    .collect();
                parts.join(".")
            } else {
                let groups: Vec<String> = b
                    .chunks(2)
                    .map(|g| format!("{:02x}{:02x}", g[0], g[1]))
                    .collect();
                groups.join(if upper { ":" } else { "" })
            };
            pad(text.into_bytes(), spec, false)
        }
    }
}

/// Format `fmt` with `args` (at most `args.len()` conversions), or the
/// errno the kernel gives for the format.
pub fn format(fmt: &[u8], args: &[u64]) -> Result<Vec<u8>, i32> {
    let parts = parse(fmt, args.len())?;
    let mut out = Vec::new();
    let mut next = 0;
    for p in parts {
        match p {
            Ok(lit) => out.extend_from_slice(&lit),
            Err(spec) => {
                out.extend(format_one(&spec, args[next]));
                next += 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::format;
    use crate::maps::errno::EINVAL;

    #[test]
    fn kernel_rules() {
        assert_eq!(
            format(b"x=%d y=%u\0", &[(-5i64) as u64, 7]).unwrap(),
            b"x=-5 y=7"
        );
        assert_eq!(
            format(b"%ld %lx %llX\0", &[u64::MAX, 255, 255]).unwrap(),
            b"-1 ff FF"
        );
        assert_eq!(format(b"%d\0", &[0xffff_ffff]).unwrap(), b"-1");
        assert_eq!(
            format(b"%05d|%-4u|%4x\0", &[42, 7, 10]).unwrap(),
            b"00042|7   |   a"
        );
        assert_eq!(format(b"100%%\0", &[]).unwrap(), b"100%");
        let ip = [10u8, 0, 0, 1];
        assert_eq!(
            format(b"%pI4 %pi4\0", &[ip.as_ptr() as u64, ip.as_ptr() as u64]).unwrap(),
            b"10.0.0.1 010.000.000.001"
        );
        let s = b"hi\0";
        assert_eq!(format(b"<%s>\0", &[s.as_ptr() as u64]).unwrap(), b"<hi>");
        // Too many conversions, unknown conversion, precision, control bytes,
        // no NUL, %s glued to a letter.
        assert_eq!(format(b"%d %d\0", &[1]), Err(EINVAL));
        assert_eq!(format(b"%f\0", &[1]), Err(EINVAL));
        assert_eq!(format(b"%.2d\0", &[1]), Err(EINVAL));
        assert_eq!(format(b"a\x01\0", &[]), Err(EINVAL));
        assert_eq!(format(b"abc", &[]), Err(EINVAL));
        assert_eq!(format(b"%sx\0", &[0]), Err(EINVAL));
        // An unreadable string prints as nothing.
        assert_eq!(format(b"[%s]\0", &[8]).unwrap(), b"[]");
    }
}
