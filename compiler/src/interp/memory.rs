//! The interpreter's address space: the call-frame stacks, the input buffer
//! and any extra regions, each a buffer the interpreter owns or borrows.
//!
//! Addresses are the host addresses of those buffers (so a pointer a program
//! hands to a native helper is a real pointer), but the interpreter itself
//! never dereferences an address: every load, store and atomic is translated
//! to an offset into the one region that wholly contains it, and performed
//! on that region's slice. An access that no region contains is
//! [`RunError::OutOfBounds`].
//!
//! Extension point: memory that appears during a run (a map value a helper
//! returns, a ring-buffer reservation) is meant to be added as a [`Region`]
//! too; today the list is fixed before the run ([`super::run_with_regions`]),
//! and a later helper issue can let the execution loop append the regions a
//! helper reports through the `ExecContext` after each call. The helpers in
//! use now never dereference pointer arguments; ones that will must only
//! touch memory a region describes.

use super::RunError;
use crate::isa::{Endian, Size, MAX_CALL_FRAMES, STACK_SIZE};
use std::fmt::Write as _;

/// An extra memory region a run may access, beside the stack and the input.
///
/// This is the extension point for memory that is neither stack nor input:
/// map values, or buffers a helper hands out. Register it in a [`Regions`]
/// list before the run.
#[derive(Debug)]
pub struct Region<'a> {
    /// What the region is, for error messages (`map value`, `ringbuf` ...).
    pub name: String,
    /// The memory; its host address is the address programs see.
    pub data: &'a mut [u8],
    /// Whether stores and atomics may modify it.
    pub writable: bool,
}

/// Extra regions of one run (see [`Region`]).
#[derive(Debug, Default)]
pub struct Regions<'a> {
    list: Vec<Region<'a>>,
}

impl<'a> Regions<'a> {
    pub fn new() -> Regions<'a> {
        Regions::default()
    }

    /// Make `data` accessible to the program at its host address.
    pub fn add(&mut self, name: impl Into<String>, data: &'a mut [u8], writable: bool) {
        self.list.push(Region {
            name: name.into(),
            data,
            writable,
        });
    }

    pub fn iter(&self) -> impl Iterator<Item = &Region<'a>> {
        self.list.iter()
    }
}

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

/// The whole address space of one run.
pub struct Memory<'a, 'e> {
    /// All frames' stacks, frame 0 (the entry function) at the top: frame `k`
    /// occupies `[(MAX_CALL_FRAMES - 1 - k) * STACK_SIZE, +STACK_SIZE)`.
    stack: Box<[u8]>,
    /// Index of the current (innermost) frame.
    depth: usize,
    input: &'a mut [u8],
    extra: &'a mut Regions<'e>,
    /// The eBPF machine's byte order (the bytecode's), not the host's.
    order: Endian,
}

impl<'a, 'e> Memory<'a, 'e> {
    pub fn new(input: &'a mut [u8], extra: &'a mut Regions<'e>, order: Endian) -> Memory<'a, 'e> {
        Memory {
            stack: vec![0u8; MAX_CALL_FRAMES * STACK_SIZE].into_boxed_slice(),
            depth: 0,
            input,
            extra,
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

    fn stack_base(&self) -> u64 {
        self.stack.as_ptr() as u64
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

    /// The accessible part of the stack: the current and all callers' frames.
    fn stack_range(&self) -> (usize, usize) {
        let lo = (MAX_CALL_FRAMES - 1 - self.depth) * STACK_SIZE;
        (lo, self.stack.len())
    }

    /// The bytes of `[addr, addr + size)`, if one accessible region holds them all.
    fn slice(
        &mut self,
        pc: usize,
        addr: u64,
        size: usize,
        access: Access,
    ) -> Result<&mut [u8], RunError> {
        let (lo, hi) = self.stack_range();
        let stack_lo = self.stack_base() + lo as u64;
        if let Some(off) = offset_in(addr, size, stack_lo, hi - lo) {
            let start = lo + off;
            return Ok(&mut self.stack[start..start + size]);
        }
        if let Some(off) = offset_in(addr, size, addr_of(self.input), self.input.len()) {
            return Ok(&mut self.input[off..off + size]);
        }
        let mut found = None;
        for (i, r) in self.extra.list.iter().enumerate() {
            if let Some(off) = offset_in(addr, size, addr_of(r.data), r.data.len()) {
                found = Some((i, off, r.writable));
                break;
            }
        }
        match found {
            Some((i, off, writable)) if writable || access == Access::Load => {
                Ok(&mut self.extra.list[i].data[off..off + size])
            }
            Some((i, _, _)) => Err(RunError::ReadOnly {
                pc,
                addr,
                size,
                region: self.extra.list[i].name.clone(),
            }),
            None => Err(RunError::OutOfBounds {
                pc,
                addr,
                size,
                access: access.name(),
                regions: self.describe(),
            }),
        }
    }

    /// `stack is 0x..-0x.., input is 0x..-0x..` for error messages (end exclusive).
    pub fn describe(&self) -> String {
        let (lo, hi) = self.stack_range();
        let base = self.stack_base();
        let mut s = format!("stack is {:#x}-{:#x}", base + lo as u64, base + hi as u64);
        // Region names come from the host: escaped, the message stays one line.
        let mut region = |name: &str, data: &[u8]| {
            let name = name.escape_debug();
            if data.is_empty() {
                let _ = write!(s, ", {name} is empty");
            } else {
                let a = addr_of(data);
                let _ = write!(s, ", {name} is {:#x}-{:#x}", a, a + data.len() as u64);
            }
        };
        region("input", self.input);
        for r in self.extra.list.iter() {
            region(&r.name, r.data);
        }
        s
    }

    /// Load `size` bytes at `addr`, zero-extended, in the machine's byte order.
    pub fn load(&mut self, pc: usize, addr: u64, size: Size) -> Result<u64, RunError> {
        let order = self.order;
        let bytes = self.slice(pc, addr, size.bytes(), Access::Load)?;
        Ok(read(bytes, order))
    }

    /// Store the low `size` bytes of `value` at `addr`, in the machine's byte order.
    pub fn store(&mut self, pc: usize, addr: u64, size: Size, value: u64) -> Result<(), RunError> {
        let order = self.order;
        let bytes = self.slice(pc, addr, size.bytes(), Access::Store)?;
        write(bytes, value, order);
        Ok(())
    }

    /// Replace the `size` bytes at `addr` by `f(old)`; returns the old value
    /// (zero-extended). One access check covers both halves.
    pub fn update(
        &mut self,
        pc: usize,
        addr: u64,
        size: Size,
        f: impl FnOnce(u64) -> u64,
    ) -> Result<u64, RunError> {
        let order = self.order;
        let bytes = self.slice(pc, addr, size.bytes(), Access::Atomic)?;
        let old = read(bytes, order);
        write(bytes, f(old), order);
        Ok(old)
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
