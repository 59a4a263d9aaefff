//! The interpreter's address space: the call-frame stacks and the input,
//! which the interpreter owns or borrows, and the regions of the run's
//! [`ExecContext`](bpfc_runtime::ExecContext) (map values, records helpers
//! hand out), which live in shared memory.
//!
//! Addresses are host addresses (a pointer a program hands to a native
//! helper is a real pointer), but every load, store and atomic is first
//! matched to the one region that wholly contains it: the stack and the
//! input are accessed through their slices, shared regions through relaxed
//! atomic accesses (other threads and processes use them at the same time;
//! an atomic instruction on an aligned word is a real atomic operation). An
//! access that no region contains is [`RunError::OutOfBounds`].

use super::RunError;
use crate::isa::{Endian, Size, MAX_CALL_FRAMES, STACK_SIZE};
use bpfc_runtime::regions::{Check, Regions};
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};

/// The kind of access, for messages and the writability check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Load,
    Store,
    Atomic,
}

impl Access {
    pub fn name(self) -> &'static str {
        match self {
            Access::Load => "load",
            Access::Store => "store",
            Access::Atomic => "atomic",
        }
    }
}

/// Host address of a slice (0 when empty).
fn addr_of(data: &[u8]) -> u64 {
    if data.is_empty() {
        0
    } else {
        data.as_ptr() as u64
    }
}

/// The offset of `[addr, addr + size)` inside `[base, base + len)`, if it fits.
fn offset_in(addr: u64, size: usize, base: u64, len: usize) -> Option<usize> {
    let off = addr.checked_sub(base)?;
    let end = off.checked_add(size as u64)?;
    if len > 0 && end <= len as u64 {
        usize::try_from(off).ok()
    } else {
        None
    }
}

/// Where an access lands.
enum Place<'s> {
    Own(&'s mut [u8]),
    Shared(*mut u8),
}

/// The whole address space of one run.
pub struct Memory<'a> {
    /// All frames' stacks, frame 0 (the entry function) at the top: frame `k`
    /// occupies `[(MAX_CALL_FRAMES - 1 - k) * STACK_SIZE, +STACK_SIZE)`.
    stack: Box<[u8]>,
    /// Index of the current (innermost) frame.
    depth: usize,
    input: &'a mut [u8],
    /// The eBPF machine's byte order (the bytecode's), not the host's.
    order: Endian,
}

impl<'a> Memory<'a> {
    pub fn new(input: &'a mut [u8], order: Endian) -> Memory<'a> {
        Memory {
            stack: vec![0u8; MAX_CALL_FRAMES * STACK_SIZE].into_boxed_slice(),
            depth: 0,
            input,
            order,
        }
    }

    /// Address programs see for the input buffer (0 when it is empty).
    pub fn input_addr(&self) -> u64 {
        addr_of(self.input)
    }

    pub fn input_len(&self) -> usize {
        self.input.len()
    }

    pub fn stack_base(&self) -> u64 {
        self.stack.as_ptr() as u64
    }

    /// One past the top of the entry frame.
    pub fn stack_top(&self) -> u64 {
        self.stack_base() + self.stack.len() as u64
    }

    /// The frame pointer (r10) of frame `depth`: the top of its stack.
    pub fn frame_pointer(&self, depth: usize) -> u64 {
        self.stack_base() + ((MAX_CALL_FRAMES - depth) * STACK_SIZE) as u64
    }

    /// Select the current frame; frames deeper than it become inaccessible.
    /// `depth` must be below [`MAX_CALL_FRAMES`] (the caller checks).
    pub fn set_depth(&mut self, depth: usize) {
        debug_assert!(depth < MAX_CALL_FRAMES);
        self.depth = depth;
    }

    pub fn depth(&self) -> usize {
        self.depth
    }

    /// The accessible part of the stack: the current and all callers' frames.
    fn stack_range(&self) -> (usize, usize) {
        let lo = (MAX_CALL_FRAMES - 1 - self.depth) * STACK_SIZE;
        (lo, self.stack.len())
    }

    fn place(
        &mut self,
        pc: usize,
        addr: u64,
        size: usize,
        access: Access,
        regions: &Regions,
    ) -> Result<Place<'_>, RunError> {
        let (lo, hi) = self.stack_range();
        let stack_lo = self.stack_base() + lo as u64;
        if let Some(off) = offset_in(addr, size, stack_lo, hi - lo) {
            let start = lo + off;
            return Ok(Place::Own(&mut self.stack[start..start + size]));
        }
        if let Some(off) = offset_in(addr, size, addr_of(self.input), self.input.len()) {
            return Ok(Place::Own(&mut self.input[off..off + size]));
        }
        match regions.check(addr as usize, size, access != Access::Load) {
            Check::Ok => Ok(Place::Shared(addr as *mut u8)),
            Check::ReadOnly(region) => Err(RunError::ReadOnly {
                pc,
                addr,
                size,
                region,
            }),
            Check::Outside => Err(RunError::OutOfBounds {
                pc,
                addr,
                size,
                access: access.name(),
                regions: self.describe(regions),
            }),
        }
    }

    /// `stack is 0x..-0x.., input is 0x..-0x.., map m values is ...` for
    /// error messages (end exclusive).
    pub fn describe(&self, regions: &Regions) -> String {
        let (lo, hi) = self.stack_range();
        let base = self.stack_base();
        let mut s = format!("stack is {:#x}-{:#x}", base + lo as u64, base + hi as u64);
        if self.input.is_empty() {
            s.push_str(", input is empty");
        } else {
            let a = addr_of(self.input);
            s.push_str(&format!(
                ", input is {:#x}-{:#x}",
                a,
                a + self.input.len() as u64
            ));
        }
        s.push_str(&regions.describe());
        s
    }

    /// Load `size` bytes at `addr`, zero-extended, in the machine's byte order.
    pub fn load(
        &mut self,
        pc: usize,
        addr: u64,
        size: Size,
        regions: &Regions,
    ) -> Result<u64, RunError> {
        let order = self.order;
        let mut buf = [0u8; 8];
        let n = size.bytes();
        match self.place(pc, addr, n, Access::Load, regions)? {
            Place::Own(b) => buf[..n].copy_from_slice(b),
            // SAFETY: `place` found the whole access inside a live region.
            Place::Shared(p) => unsafe { shared_read(p, &mut buf[..n]) },
        }
        Ok(read(&buf[..n], order))
    }

    /// Store the low `size` bytes of `value` at `addr`, in the machine's byte order.
    pub fn store(
        &mut self,
        pc: usize,
        addr: u64,
        size: Size,
        value: u64,
        regions: &Regions,
    ) -> Result<(), RunError> {
        let order = self.order;
        let n = size.bytes();
        let mut buf = [0u8; 8];
        write(&mut buf[..n], value, order);
        match self.place(pc, addr, n, Access::Store, regions)? {
            Place::Own(b) => b.copy_from_slice(&buf[..n]),
            // SAFETY: `place` found the whole access inside a live, writable region.
            Place::Shared(p) => unsafe { shared_write(p, &buf[..n]) },
        }
        Ok(())
    }

    /// Replace the `size` bytes at `addr` by `f(old)`; returns the old value
    /// (zero-extended). One access check covers both halves; in shared
    /// memory an aligned word is updated atomically.
    pub fn update(
        &mut self,
        pc: usize,
        addr: u64,
        size: Size,
        regions: &Regions,
        f: impl Fn(u64) -> u64,
    ) -> Result<u64, RunError> {
        let order = self.order;
        let n = size.bytes();
        match self.place(pc, addr, n, Access::Atomic, regions)? {
            Place::Own(b) => {
                let old = read(b, order);
                write(b, f(old), order);
                Ok(old)
            }
            Place::Shared(p) => {
                // `shared_rmw` works on native words; memory holds the
                // machine's order: convert around `f`.
                let conv = |raw: u64| read(&native_bytes(raw, n)[..n], order);
                let back = |v: u64| {
                    let mut b = [0u8; 8];
                    write(&mut b[..n], v, order);
                    from_native(&b[..n])
                };
                // SAFETY: `place` found the whole access inside a live, writable region.
                let old = unsafe { shared_rmw(p, n, &|raw| back(f(conv(raw)))) };
                Ok(conv(old))
            }
        }
    }
}

/// Copy shared memory at `p` into `out` with relaxed atomic loads.
///
/// # Safety
/// `p..p + out.len()` must be live memory.
unsafe fn shared_read(p: *mut u8, out: &mut [u8]) {
    let n = out.len();
    // SAFETY: (all arms) aligned accesses of the size inside the caller's range.
    unsafe {
        if (p as usize).is_multiple_of(n) {
            match n {
                8 => out.copy_from_slice(
                    &AtomicU64::from_ptr(p.cast())
                        .load(Ordering::Relaxed)
                        .to_ne_bytes(),
                ),
                4 => out.copy_from_slice(
                    &AtomicU32::from_ptr(p.cast())
                        .load(Ordering::Relaxed)
                        .to_ne_bytes(),
                ),
                2 => out.copy_from_slice(
                    &AtomicU16::from_ptr(p.cast())
                        .load(Ordering::Relaxed)
                        .to_ne_bytes(),
                ),
                _ => out[0] = AtomicU8::from_ptr(p).load(Ordering::Relaxed),
            }
        } else {
            for (i, b) in out.iter_mut().enumerate() {
                *b = AtomicU8::from_ptr(p.add(i)).load(Ordering::Relaxed);
            }
        }
    }
}

/// Write `data` into shared memory at `p` with relaxed atomic stores.
///
/// # Safety
/// `p..p + data.len()` must be live, writable memory.
unsafe fn shared_write(p: *mut u8, data: &[u8]) {
    let n = data.len();
    let mut w = [0u8; 8];
    w[..n].copy_from_slice(data);
    // SAFETY: (all arms) aligned accesses of the size inside the caller's range.
    unsafe {
        if (p as usize).is_multiple_of(n) {
            match n {
                8 => AtomicU64::from_ptr(p.cast()).store(u64::from_ne_bytes(w), Ordering::Relaxed),
                4 => AtomicU32::from_ptr(p.cast()).store(
                    u32::from_ne_bytes(w[..4].try_into().expect("4")),
                    Ordering::Relaxed,
                ),
                2 => AtomicU16::from_ptr(p.cast()).store(
                    u16::from_ne_bytes(w[..2].try_into().expect("2")),
                    Ordering::Relaxed,
                ),
                _ => AtomicU8::from_ptr(p).store(w[0], Ordering::Relaxed),
            }
        } else {
            for (i, &b) in data.iter().enumerate() {
                AtomicU8::from_ptr(p.add(i)).store(b, Ordering::Relaxed);
            }
        }
    }
}

/// Atomically replace the native-order word of `n` (4 or 8) bytes at `p` by
/// `f(old)`; returns the old word. Unaligned words are updated without
/// atomicity (the kernel rejects misaligned atomics).
///
/// # Safety
/// `p..p + n` must be live, writable memory.
unsafe fn shared_rmw(p: *mut u8, n: usize, f: &dyn Fn(u64) -> u64) -> u64 {
    // SAFETY: (all arms) aligned accesses of the size inside the caller's range.
    unsafe {
        if (p as usize).is_multiple_of(n) && n == 8 {
            let a = AtomicU64::from_ptr(p.cast());
            return a
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| Some(f(v)))
                .expect("the closure always returns Some");
        }
        if (p as usize).is_multiple_of(n) && n == 4 {
            let a = AtomicU32::from_ptr(p.cast());
            return a
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                    Some(f(v as u64) as u32)
                })
                .expect("the closure always returns Some") as u64;
        }
        let mut b = [0u8; 8];
        shared_read(p, &mut b[..n]);
        let old = from_native(&b[..n]);
        let new = native_bytes(f(old), n);
        shared_write(p, &new[..n]);
        old
    }
}

/// The `n`-byte native representation of the word `v` (in the first `n` bytes).
fn native_bytes(v: u64, n: usize) -> [u8; 8] {
    let mut b = [0u8; 8];
    match n {
        8 => b = v.to_ne_bytes(),
        4 => b[..4].copy_from_slice(&(v as u32).to_ne_bytes()),
        2 => b[..2].copy_from_slice(&(v as u16).to_ne_bytes()),
        _ => b[0] = v as u8,
    }
    b
}

/// The word whose `n`-byte native representation is `b`.
fn from_native(b: &[u8]) -> u64 {
    match b.len() {
        8 => u64::from_ne_bytes(b.try_into().expect("8")),
        4 => u32::from_ne_bytes(b.try_into().expect("4")) as u64,
        2 => u16::from_ne_bytes(b.try_into().expect("2")) as u64,
        _ => b[0] as u64,
    }
}

/// Read a 1-, 2-, 4- or 8-byte value stored in `order`.
fn read(bytes: &[u8], order: Endian) -> u64 {
    let mut buf = [0u8; 8];
    let n = bytes.len().min(8);
    match order {
        Endian::Little => {
            buf[..n].copy_from_slice(&bytes[..n]);
            u64::from_le_bytes(buf)
        }
        Endian::Big => {
            buf[8 - n..].copy_from_slice(&bytes[..n]);
            u64::from_be_bytes(buf)
        }
    }
}

/// Write the low `bytes.len()` bytes of `value` in `order`.
fn write(bytes: &mut [u8], value: u64, order: Endian) {
    let n = bytes.len().min(8);
    match order {
        Endian::Little => bytes[..n].copy_from_slice(&value.to_le_bytes()[..n]),
        Endian::Big => bytes[..n].copy_from_slice(&value.to_be_bytes()[8 - n..]),
    }
}
