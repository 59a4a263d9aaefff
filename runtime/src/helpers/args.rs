//! Checking helper arguments of unverified programs: pointers must lie in
//! memory the run may access (its stack, its input, the regions of its
//! [`ExecContext`](crate::ExecContext)), maps must be live maps. A verified
//! program's arguments are proven by the verifier, and with
//! `ExecContext::checked` off these checks are skipped, as the kernel's
//! helpers trust their verified callers.

use super::fail;
use crate::abi::RunState;
use crate::maps::Map;
use crate::regions::Check;
use std::sync::Arc;

/// A helper argument that failed its check; the run has been stopped.
#[derive(Debug)]
pub struct Stopped;

fn checked(st: &RunState) -> bool {
    // SAFETY: a non-null ctx in a run state is the run's live context.
    unsafe { st.ctx.as_ref() }.is_none_or(|c| c.checked)
}

fn within(addr: u64, len: u64, lo: u64, hi: u64) -> bool {
    addr >= lo && addr.checked_add(len).is_some_and(|end| end <= hi)
}

/// Check that `len` bytes at `addr` may be read (and written, with
/// `write`) by the program; `what` names the argument for the message.
pub fn mem(st: &mut RunState, what: &str, addr: u64, len: u64, write: bool) -> Result<(), Stopped> {
    if len == 0 || !checked(st) {
        return Ok(());
    }
    if within(addr, len, st.stack_base, st.stack_top) || within(addr, len, st.input_lo, st.input_hi)
    {
        return Ok(());
    }
    // SAFETY: a non-null ctx in a run state is the run's live context.
    let verdict =
        unsafe { st.ctx.as_ref() }.map(|c| c.regions.check(addr as usize, len as usize, write));
    match verdict {
        Some(Check::Ok) => Ok(()),
        Some(Check::ReadOnly(name)) => {
            fail(
                st,
                format!("{what}: {len} bytes at {addr:#x} are in read-only {name}"),
            );
            Err(Stopped)
        }
        _ => {
            fail(
                st,
                format!("{what}: {len} bytes at {addr:#x} are outside the program's memory"),
            );
            Err(Stopped)
        }
    }
}

/// The bytes at `addr` for reading, after [`mem`].
///
/// # Safety
/// In unchecked runs the caller (a verified program) guarantees the memory.
pub unsafe fn bytes<'a>(
    st: &mut RunState,
    what: &str,
    addr: u64,
    len: u64,
) -> Result<&'a [u8], Stopped> {
    mem(st, what, addr, len, false)?;
    if len == 0 {
        return Ok(&[]);
    }
    // SAFETY: checked above (or proven by the verifier).
    Ok(unsafe { std::slice::from_raw_parts(addr as *const u8, len as usize) })
}

/// The bytes at `addr` for writing, after [`mem`].
///
/// # Safety
/// As for [`bytes`].
pub unsafe fn bytes_mut<'a>(
    st: &mut RunState,
    what: &str,
    addr: u64,
    len: u64,
) -> Result<&'a mut [u8], Stopped> {
    mem(st, what, addr, len, true)?;
    if len == 0 {
        return Ok(&mut []);
    }
    // SAFETY: checked above (or proven by the verifier).
    Ok(unsafe { std::slice::from_raw_parts_mut(addr as *mut u8, len as usize) })
}

/// A NUL-terminated string of at most `max` bytes (without the NUL) at
/// `addr`, checked byte by byte in checked runs.
///
/// # Safety
/// As for [`bytes`].
pub unsafe fn cstr<'a>(
    st: &mut RunState,
    what: &str,
    addr: u64,
    max: u64,
) -> Result<&'a [u8], Stopped> {
    let mut n = 0u64;
    loop {
        if n > max {
            fail(
                st,
                format!("{what}: string at {addr:#x} is not NUL-terminated"),
            );
            return Err(Stopped);
        }
        mem(st, what, addr + n, 1, false)?;
        // SAFETY: checked above (or proven by the verifier).
        if unsafe { *((addr + n) as *const u8) } == 0 {
            break;
        }
        n += 1;
    }
    // SAFETY: the n bytes before the NUL were checked.
    Ok(unsafe { std::slice::from_raw_parts(addr as *const u8, n as usize) })
}

/// The map a program passed: checked against the live maps in checked runs.
///
/// # Safety
/// In unchecked runs `addr` must be a live map's address (the verifier
/// proves it for `ARG_CONST_MAP_PTR`).
pub unsafe fn map<'a>(st: &mut RunState, addr: u64) -> Result<&'a Map, Stopped> {
    if checked(st) {
        match Map::at_addr(addr as usize) {
            Some(m) => {
                let p = Arc::as_ptr(&m);
                // SAFETY: a non-null ctx in a run state is the run's live context.
                match unsafe { st.ctx.as_mut() } {
                    // The run's regions keep the map alive until the run ends.
                    Some(ctx) => ctx.regions.add_map(&m),
                    // Without a context nothing keeps it: a map removed from an
                    // outer map during the call could go away.
                    None => std::mem::forget(m),
                }
                // SAFETY: kept alive above.
                return Ok(unsafe { &*p });
            }
            None => {
                fail(st, format!("{addr:#x} is not a map"));
                return Err(Stopped);
            }
        }
    }
    // SAFETY: guaranteed by the caller.
    Ok(unsafe { Map::from_ptr(addr as *const Map) })
}
