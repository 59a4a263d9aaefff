//! Memory a run may access besides its stack and input, as ranges of host
//! addresses: the values of the maps it uses ([`Slab`]s) and memory helpers
//! hand out during the run (ring buffer records). The interpreter checks
//! every access against them, and checked native code asks
//! [`check_access`] when an access is not in its stack or input.

use crate::maps::{Map, Slab};
use std::collections::BTreeSet;
use std::sync::Arc;

/// One range of memory handed out during a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    pub name: String,
    pub base: usize,
    pub len: usize,
    pub writable: bool,
}

/// What an access check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    Ok,
    /// Inside a region that may not be written (named).
    ReadOnly(String),
    Outside,
}

/// The regions of one run.
#[derive(Clone, Debug, Default)]
pub struct Regions {
    slabs: Vec<(String, Slab)>,
    maps: BTreeSet<u32>,
    /// The maps whose values are listed, kept alive for the run.
    keep: Vec<Arc<Map>>,
    dynamic: Vec<Region>,
}

impl Regions {
    pub fn new() -> Regions {
        Regions::default()
    }

    /// Make `map`'s values accessible (once per map); the map stays alive
    /// as long as the regions do.
    pub fn add_map(&mut self, map: &Arc<Map>) {
        if self.maps.insert(map.id()) {
            for s in map.slabs() {
                self.slabs.push((format!("map {} values", map.name()), s));
            }
            self.keep.push(map.clone());
        }
    }

    /// The maps whose values are accessible.
    pub fn maps(&self) -> &[Arc<Map>] {
        &self.keep
    }

    /// Make `[base, base + len)` accessible.
    pub fn add(&mut self, name: impl Into<String>, base: usize, len: usize, writable: bool) {
        self.dynamic.push(Region {
            name: name.into(),
            base,
            len,
            writable,
        });
    }

    /// Forget the region starting at `base` (a submitted ring buffer record).
    pub fn remove(&mut self, base: usize) {
        self.dynamic.retain(|r| r.base != base);
    }

    pub fn dynamic(&self) -> &[Region] {
        &self.dynamic
    }

    /// Whether `[addr, addr + size)` may be accessed (written, with `write`).
    pub fn check(&self, addr: usize, size: usize, write: bool) -> Check {
        for (name, s) in &self.slabs {
            if s.contains(addr, size) {
                return if write && !s.writable {
                    Check::ReadOnly(name.clone())
                } else {
                    Check::Ok
                };
            }
        }
        for r in &self.dynamic {
            let inside = addr >= r.base
                && addr
                    .checked_add(size)
                    .is_some_and(|end| end <= r.base + r.len);
            if inside {
                return if write && !r.writable {
                    Check::ReadOnly(r.name.clone())
                } else {
                    Check::Ok
                };
            }
        }
        Check::Outside
    }

    /// `, map counts values is 0x..-0x.., record is ...` for error messages.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for (name, slab) in &self.slabs {
            let end = slab.base + slab.count * slab.stride;
            s.push_str(&format!(
                ", {} is {:#x}-{:#x}",
                name.escape_debug(),
                slab.base,
                end
            ));
        }
        for r in &self.dynamic {
            s.push_str(&format!(
                ", {} is {:#x}-{:#x}",
                r.name.escape_debug(),
                r.base,
                r.base + r.len
            ));
        }
        s
    }
}

/// Checked native code's slow path: whether the run whose state is `st` may
/// access `size` bytes at `addr` (`write`: store or atomic). Returns 1 or 0.
///
/// # Safety
/// `st` must be the live run state of the calling program.
pub unsafe extern "C" fn check_access(
    st: *mut crate::abi::RunState,
    addr: u64,
    size: u64,
    write: u32,
) -> u32 {
    // SAFETY: guaranteed by the caller (generated code passes its state).
    let Some(ctx) = (unsafe { (*st).ctx.as_ref() }) else {
        return 0;
    };
    matches!(
        ctx.regions.check(addr as usize, size as usize, write != 0),
        Check::Ok
    ) as u32
}

/// The symbol AOT objects import for [`check_access`].
pub const CHECK_ACCESS_SYMBOL: &str = "bpfc_check_access";
