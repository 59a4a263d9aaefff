//! `bpf_probe_read*`: copies from host memory that never fault. The user,
//! kernel and legacy forms read the same (host) memory, and their return
//! codes for bad addresses are the kernel's on the host architecture: on
//! x86-64 the kernel forms refuse an address in user space or a
//! non-canonical one with `-ERANGE` before trying it
//! (`copy_from_kernel_nofault_allowed`), the user forms fail with
//! `-EFAULT`, and the legacy forms pick by address. Host memory is all user
//! space, which the program's own stack and maps are part of, so the
//! `-ERANGE` rule applies here to what no host process can map (the first
//! 64 KiB, `vm.mmap_min_addr`'s default: NULL and small offsets from it)
//! and to non-canonical addresses. A failed read zeroes the destination.

use super::args::{self, Stopped};
use super::misc::read_host;
use super::{neg, state, HelperFn};
use crate::abi::RunState;
use crate::maps::errno;

/// The helpers of this module by kernel name.
pub const HELPERS: &[(&str, HelperFn)] = &[
    ("probe_read", probe_read),
    ("probe_read_user", probe_read_user),
    ("probe_read_kernel", probe_read_kernel),
    ("probe_read_str", probe_read_str),
    ("probe_read_user_str", probe_read_user_str),
    ("probe_read_kernel_str", probe_read_kernel_str),
];

/// Which address space a read names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Space {
    User,
    Kernel,
    /// The legacy helpers: user space below `TASK_SIZE`, else kernel.
    Either,
}

/// Addresses below this are never mapped in a host process.
const LOW: u64 = 64 << 10;

/// The error the kernel gives before trying to read `addr` in `space`.
fn refused(space: Space, addr: u64) -> Option<i32> {
    if !cfg!(target_arch = "x86_64") {
        return None;
    }
    // x86-64 with 4-level paging: user space ends at TASK_SIZE, addresses
    // whose bits 47..63 differ are non-canonical.
    const TASK_SIZE: u64 = (1 << 47) - 4096;
    let canonical = (addr as i64) << 16 >> 16 == addr as i64;
    let kernel = match space {
        Space::User => false,
        Space::Kernel => true,
        Space::Either => addr >= TASK_SIZE,
    };
    (kernel && (addr < LOW || !canonical)).then_some(errno::ERANGE)
}

fn read(dst: u64, size: u64, src: u64, space: Space, st: *mut RunState) -> u64 {
    // SAFETY: the engine passes the live run state.
    let st = unsafe { state(st) };
    let mut run = || -> Result<u64, Stopped> {
        // SAFETY: arguments of the program.
        let out = unsafe { args::bytes_mut(st, "dst", dst, size)? };
        let err = match refused(space, src) {
            Some(e) => e,
            None if read_host(src, out).is_ok() => return Ok(0),
            None => errno::EFAULT,
        };
        out.fill(0);
        Ok(neg(err))
    };
    run().unwrap_or(0)
}

/// Copy a NUL-terminated string (at most `size` bytes with the NUL, always
/// terminated): its length with the NUL, or `-errno` with `dst` zeroed.
fn read_str(dst: u64, size: u64, src: u64, space: Space, st: *mut RunState) -> u64 {
    // SAFETY: the engine passes the live run state.
    let st = unsafe { state(st) };
    let mut run = || -> Result<u64, Stopped> {
        // SAFETY: arguments of the program.
        let out = unsafe { args::bytes_mut(st, "dst", dst, size)? };
        if out.is_empty() {
            return Ok(0);
        }
        if let Some(e) = refused(space, src) {
            out.fill(0);
            return Ok(neg(e));
        }
        let mut i = 0;
        while i < out.len() - 1 {
            let mut b = [0u8; 1];
            if read_host(src.wrapping_add(i as u64), &mut b).is_err() {
                out.fill(0);
                return Ok(neg(errno::EFAULT));
            }
            out[i] = b[0];
            if b[0] == 0 {
                return Ok(i as u64 + 1);
            }
            i += 1;
        }
        out[i] = 0;
        Ok(i as u64 + 1)
    };
    run().unwrap_or(0)
}

/// `long bpf_probe_read(void *dst, u32 size, const void *unsafe_ptr)`.
pub unsafe extern "C" fn probe_read(
    dst: u64,
    size: u64,
    src: u64,
    _: u64,
    _: u64,
    st: *mut RunState,
) -> u64 {
    read(dst, size, src, Space::Either, st)
}

/// `long bpf_probe_read_user(void *dst, u32 size, const void *unsafe_ptr)`.
pub unsafe extern "C" fn probe_read_user(
    dst: u64,
    size: u64,
    src: u64,
    _: u64,
    _: u64,
    st: *mut RunState,
) -> u64 {
    read(dst, size, src, Space::User, st)
}

/// `long bpf_probe_read_kernel(void *dst, u32 size, const void *unsafe_ptr)`.
pub unsafe extern "C" fn probe_read_kernel(
    dst: u64,
    size: u64,
    src: u64,
    _: u64,
    _: u64,
    st: *mut RunState,
) -> u64 {
    read(dst, size, src, Space::Kernel, st)
}

/// `long bpf_probe_read_str(void *dst, u32 size, const void *unsafe_ptr)`.
pub unsafe extern "C" fn probe_read_str(
    dst: u64,
    size: u64,
    src: u64,
    _: u64,
    _: u64,
    st: *mut RunState,
) -> u64 {
    read_str(dst, size, src, Space::Either, st)
}

/// `long bpf_probe_read_user_str(void *dst, u32 size, const void *unsafe_ptr)`.
pub unsafe extern "C" fn probe_read_user_str(
    dst: u64,
    size: u64,
    src: u64,
    _: u64,
    _: u64,
    st: *mut RunState,
) -> u64 {
    read_str(dst, size, src, Space::User, st)
}

/// `long bpf_probe_read_kernel_str(void *dst, u32 size, const void *unsafe_ptr)`.
pub unsafe extern "C" fn probe_read_kernel_str(
    dst: u64,
    size: u64,
    src: u64,
    _: u64,
    _: u64,
    st: *mut RunState,
) -> u64 {
    read_str(dst, size, src, Space::Kernel, st)
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn kernel_forms_refuse_null_and_non_canonical_addresses() {
        assert_eq!(refused(Space::Kernel, 0), Some(errno::ERANGE));
        assert_eq!(refused(Space::Kernel, 4096), Some(errno::ERANGE));
        assert_eq!(refused(Space::Kernel, 1 << 63), Some(errno::ERANGE));
        assert_eq!(refused(Space::Kernel, 0x7fff_0000_0000), None);
        assert_eq!(refused(Space::Kernel, 0xffff_8000_0000_0000), None);
        assert_eq!(refused(Space::User, 0), None);
        assert_eq!(refused(Space::User, 1 << 63), None);
        assert_eq!(refused(Space::Either, 0), None);
        assert_eq!(refused(Space::Either, 1 << 63), Some(errno::ERANGE));
    }
}
