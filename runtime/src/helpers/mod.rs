//! Helper functions and the tables that map helper ids to them.
//!
//! Calling convention (shared by the interpreter, JIT and AOT code): a helper
//! is `extern "C" fn(r1, r2, r3, r4, r5, ctx: *mut ExecContext) -> r0`. The
//! helper id in `call imm` selects an entry of the [`HelperTable`] the program
//! is run or compiled with.

mod names;
pub mod proto;

use crate::context::ExecContext;
use std::collections::BTreeMap;

/// The kernel's name of helper `id` without its `bpf_` prefix
/// (`map_lookup_elem` for 1), for ids the kernel defines.
pub fn kernel_name(id: i64) -> Option<&'static str> {
    usize::try_from(id)
        .ok()
        .and_then(|i| names::NAMES.get(i).copied())
}

/// The native signature of every helper.
pub type HelperFn = unsafe extern "C" fn(u64, u64, u64, u64, u64, *mut ExecContext) -> u64;

/// One helper: its id, a name for messages and symbols, and its code.
#[derive(Clone, Copy, Debug)]
pub struct Helper {
    pub id: u32,
    pub name: &'static str,
    pub func: HelperFn,
}

/// Helper ids to helpers, in id order.
#[derive(Clone, Debug, Default)]
pub struct HelperTable {
    helpers: BTreeMap<u32, Helper>,
}

impl HelperTable {
    pub fn new() -> HelperTable {
        HelperTable::default()
    }

    pub fn insert(&mut self, helper: Helper) {
        self.helpers.insert(helper.id, helper);
    }

    pub fn get(&self, id: u32) -> Option<&Helper> {
        self.helpers.get(&id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Helper> {
        self.helpers.values()
    }

    /// The table the bpf_conformance suite assumes: helper 5 returns its first argument.
    pub fn conformance() -> HelperTable {
        let mut t = HelperTable::new();
        t.insert(Helper {
            id: 5,
            name: "identity",
            func: identity,
        });
        t
    }
}

/// Returns its first argument (helper 5 of the conformance suite).
pub extern "C" fn identity(r1: u64, _: u64, _: u64, _: u64, _: u64, _: *mut ExecContext) -> u64 {
    r1
}
