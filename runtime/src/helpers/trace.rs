//! Formatted output: `bpf_trace_printk` and `bpf_trace_vprintk` (to the
//! run's trace buffer, which `bpfc run` prints and hosts read, as the
//! kernel's trace pipe) and `bpf_snprintf` (into program memory).

use super::args::{self, Stopped};
use super::format::{self, MAX_BUF, MAX_VARARGS};
use super::{context, neg, HelperFn};
use crate::abi::RunState;
use crate::maps::errno;

/// The helpers of this module by kernel name.
pub const HELPERS: &[(&str, HelperFn)] = &[
    ("trace_printk", trace_printk),
    ("trace_vprintk", trace_vprintk),
    ("snprintf", snprintf),
];

/// The format string argument: `size` bytes that must hold a NUL.
///
/// # Safety
/// Arguments of the program (verified, or checked here).
unsafe fn fmt_arg<'a>(st: &mut RunState, fmt: u64, size: u64) -> Result<&'a [u8], Stopped> {
    // SAFETY: the caller's guarantees.
    unsafe { args::bytes(st, "fmt", fmt, size) }
}

/// The u64 arguments of the `v` forms: `len` bytes, a multiple of 8, at
/// most [`MAX_VARARGS`] of them; NULL only with `len` 0.
///
/// # Safety
/// As for [`fmt_arg`].
unsafe fn data_args(
    st: &mut RunState,
    data: u64,
    len: u64,
) -> Result<Result<Vec<u64>, i32>, Stopped> {
    if !len.is_multiple_of(8) || len > (MAX_VARARGS * 8) as u64 || (data == 0) != (len == 0) {
        return Ok(Err(errno::EINVAL));
    }
    // SAFETY: the caller's guarantees.
    let b = unsafe { args::bytes(st, "data", data, len)? };
    Ok(Ok(b
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().expect("8 bytes")))
        .collect()))
}

/// One line of trace output (the kernel's trace pipe shows each call as a
/// line of its own).
fn emit(st: &mut RunState, text: &[u8]) {
    if let Some(ctx) = context(st) {
        ctx.trace.extend_from_slice(text);
        if !text.ends_with(b"\n") {
            ctx.trace.push(b'\n');
        }
    }
}

fn printk(st: &mut RunState, fmt: &[u8], args: &[u64]) -> u64 {
    match format::format(fmt, args) {
        Ok(mut text) => {
            text.truncate(MAX_BUF - 1);
            emit(st, &text);
            text.len() as u64
        }
        Err(e) => neg(e),
    }
}

helper!(
    /// `long bpf_trace_printk(const char *fmt, u32 fmt_size, ...)`: up to three
    /// arguments; the number of bytes written.
    trace_printk(fmt, size, a1, a2, a3) |st| {
        // SAFETY: arguments of the program (verified, or checked here).
        let f = unsafe { fmt_arg(st, fmt, size)? };
        Ok(printk(st, f, &[a1, a2, a3]))
    }
);

helper!(
    /// `long bpf_trace_vprintk(const char *fmt, u32 fmt_size, const void *data, u32 data_len)`.
    trace_vprintk(fmt, size, data, len) |st| {
        // SAFETY: arguments of the program (verified, or checked here).
        let f = unsafe { fmt_arg(st, fmt, size)? };
        // SAFETY: as above.
        Ok(match unsafe { data_args(st, data, len)? } {
            Ok(a) => printk(st, f, &a),
            Err(e) => neg(e),
        })
    }
);

helper!(
    /// `long bpf_snprintf(char *str, u32 str_size, const char *fmt, u64 *data, u32 data_len)`:
    /// the length the whole text needs including its NUL; `str` holds as much
    /// as fits, NUL-terminated.
    snprintf(out, out_size, fmt, data, len) |st| {
        // SAFETY: arguments of the program (verified, or checked here).
        let f = unsafe { args::cstr(st, "fmt", fmt, MAX_BUF as u64)? };
        let mut f = f.to_vec();
        f.push(0);
        // SAFETY: as above.
        let a = match unsafe { data_args(st, data, len)? } {
            Ok(a) => a,
            Err(e) => return Ok(neg(e)),
        };
        let text = match format::format(&f, &a) {
            Ok(t) => t,
            Err(e) => return Ok(neg(e)),
        };
        // SAFETY: as above.
        let dst = unsafe { args::bytes_mut(st, "str", out, out_size)? };
        if !dst.is_empty() {
            let n = text.len().min(dst.len() - 1);
            dst[..n].copy_from_slice(&text[..n]);
            dst[n] = 0;
        }
        Ok(text.len() as u64 + 1)
    }
);
