//! Copying values in and out of map memory. Map memory is shared with
//! running programs (and other processes), which read and write it without
//! locks as kernel programs do; these copies therefore go through relaxed
//! atomic accesses, never through plain references into shared memory.
//! Special fields (`struct bpf_spin_lock`, `struct bpf_timer`) are skipped
//! by copies and read as zero, as the kernel's `copy_map_value` and
//! `check_and_init_map_value` do.

use super::lock::SpinLock;
use super::MapSpec;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

/// Size of `struct bpf_spin_lock` and `struct bpf_timer`.
pub const SPIN_LOCK_SIZE: usize = 4;
pub const TIMER_SIZE: usize = 16;

/// Copy `dst.len()` bytes of map memory at `src` into `dst`.
///
/// # Safety
/// `src..src + dst.len()` must be mapped map memory.
pub unsafe fn read(src: *const u8, dst: &mut [u8]) {
    let mut i = 0;
    if (src as usize).is_multiple_of(8) {
        while i + 8 <= dst.len() {
            // SAFETY: aligned and inside the caller's range.
            let w = unsafe { AtomicU64::from_ptr(src.add(i) as *mut u64) }.load(Ordering::Relaxed);
            dst[i..i + 8].copy_from_slice(&w.to_ne_bytes());
            i += 8;
        }
    }
    while i < dst.len() {
        // SAFETY: inside the caller's range.
        dst[i] = unsafe { AtomicU8::from_ptr(src.add(i) as *mut u8) }.load(Ordering::Relaxed);
        i += 1;
    }
}

/// Copy `src` into map memory at `dst`.
///
/// # Safety
/// `dst..dst + src.len()` must be mapped, writable map memory.
pub unsafe fn write(dst: *mut u8, src: &[u8]) {
    let mut i = 0;
    if (dst as usize).is_multiple_of(8) {
        while i + 8 <= src.len() {
            let w = u64::from_ne_bytes(src[i..i + 8].try_into().expect("8 bytes"));
            // SAFETY: aligned and inside the caller's range.
            unsafe { AtomicU64::from_ptr(dst.add(i) as *mut u64) }.store(w, Ordering::Relaxed);
            i += 8;
        }
    }
    while i < src.len() {
        // SAFETY: inside the caller's range.
        unsafe { AtomicU8::from_ptr(dst.add(i)) }.store(src[i], Ordering::Relaxed);
        i += 1;
    }
}

/// Fill `len` bytes of map memory at `dst` with zeroes.
///
/// # Safety
/// As for [`write`].
pub unsafe fn zero(dst: *mut u8, len: usize) {
    for i in 0..len {
        // SAFETY: inside the caller's range.
        unsafe { AtomicU8::from_ptr(dst.add(i)) }.store(0, Ordering::Relaxed);
    }
}

/// The byte ranges of a value that copies skip, sorted.
fn special(spec: &MapSpec) -> impl Iterator<Item = (usize, usize)> {
    let mut v: Vec<(usize, usize)> = [
        spec.spin_lock_off.map(|o| (o as usize, SPIN_LOCK_SIZE)),
        spec.timer_off.map(|o| (o as usize, TIMER_SIZE)),
    ]
    .into_iter()
    .flatten()
    .collect();
    v.sort_unstable();
    v.into_iter()
}

/// Copy a value from user memory into map memory, leaving special fields
/// as they are (`copy_map_value`).
///
/// # Safety
/// As for [`write`], for `src.len()` bytes.
pub unsafe fn store_value(spec: &MapSpec, dst: *mut u8, src: &[u8]) {
    if spec.spin_lock_off.is_none() && spec.timer_off.is_none() {
        // SAFETY: the caller's range.
        unsafe { write(dst, src) };
        return;
    }
    let mut at = 0;
    for (off, len) in special(spec) {
        if off >= src.len() {
            break;
        }
        // SAFETY: a sub-range of the caller's range.
        unsafe { write(dst.add(at), &src[at..off]) };
        at = (off + len).min(src.len());
    }
    // SAFETY: a sub-range of the caller's range.
    unsafe { write(dst.add(at), &src[at..]) };
}

/// Copy a value out of map memory with its special fields zeroed
/// (`copy_map_value` then `check_and_init_map_value`).
///
/// # Safety
/// As for [`read`].
pub unsafe fn load_value(spec: &MapSpec, src: *const u8, dst: &mut [u8]) {
    // SAFETY: the caller's range.
    unsafe { read(src, dst) };
    if spec.spin_lock_off.is_none() && spec.timer_off.is_none() {
        return;
    }
    for (off, len) in special(spec) {
        if off < dst.len() {
            let end = (off + len).min(dst.len());
            dst[off..end].fill(0);
        }
    }
}

/// The value's spin lock, for `BPF_F_LOCK` operations.
///
/// # Safety
/// `value` must be a live map value of `spec` that has a spin lock.
unsafe fn value_lock<'a>(spec: &MapSpec, value: *mut u8) -> Option<SpinLock<'a>> {
    let off = spec.spin_lock_off? as usize;
    // SAFETY: the lock field lies inside the value; BTF places it 4-aligned.
    Some(unsafe { SpinLock::from_ptr(value.add(off) as *mut u32) })
}

/// [`store_value`] under the value's own spin lock (`BPF_F_LOCK` update).
///
/// # Safety
/// As for [`store_value`]; the spec must have a spin lock.
pub unsafe fn store_value_locked(spec: &MapSpec, dst: *mut u8, src: &[u8]) {
    // SAFETY: the caller's guarantees.
    let lock = unsafe { value_lock(spec, dst) };
    let _g = lock.map(|l| l.lock());
    // SAFETY: the caller's guarantees.
    unsafe { store_value(spec, dst, src) };
}

/// [`load_value`] under the value's own spin lock (`BPF_F_LOCK` lookup).
///
/// # Safety
/// As for [`load_value`]; the spec must have a spin lock.
pub unsafe fn load_value_locked(spec: &MapSpec, src: *mut u8, dst: &mut [u8]) {
    // SAFETY: the caller's guarantees.
    let lock = unsafe { value_lock(spec, src) };
    let _g = lock.map(|l| l.lock());
    // SAFETY: the caller's guarantees.
    unsafe { load_value(spec, src, dst) };
}

/// Free what a value's special fields hold (`bpf_obj_free_fields`): its
/// timer is cancelled and freed, as the kernel does when an element is
/// deleted or replaced or an array value is updated.
pub fn free_fields(spec: &MapSpec, value: *mut u8) {
    if let Some(off) = spec.timer_off {
        crate::helpers::timers::free(value as usize + off as usize);
    }
}
