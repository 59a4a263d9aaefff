//! Helper functions and the tables that map helper ids to them.
//!
//! Calling convention (shared by the interpreter, JIT and AOT code): a helper
//! is `extern "C" fn(r1, r2, r3, r4, r5, st: *mut RunState) -> r0`. The
//! helper id in `call imm` selects an entry of the [`HelperTable`] the program
//! is bound with. A helper reaches the run's [`ExecContext`] through `st`;
//! it fails (stopping the run at the call, in every engine) with [`fail`].
//! Helpers with the kernel's ids follow the kernel's argument rules and
//! return codes; each module groups one area.
//!
//! # Safety
//!
//! Every helper is an `unsafe extern "C" fn` with one contract, stated here
//! once rather than on each: `st` is the live run state the engine passes,
//! and the program's arguments are either proven by the verifier (an
//! unchecked run) or checked by the helper against the run's memory with
//! [`args`] before use (a checked run: the interpreter, checked code).
#![allow(clippy::missing_safety_doc)]

/// Define a helper: `helper!(/// docs\n name(a, b, c) |st| { body })`
/// makes `pub unsafe extern "C" fn name(r1..r5, st: *mut RunState) -> u64`
/// whose body sees the arguments it names (r1 first), the run state as
/// `st`, and returns `Result<u64, Stopped>`: `?` on an argument check that
/// stopped the run makes the helper return 0, the run being over.
macro_rules! helper {
    ($(#[$doc:meta])* $name:ident($($a:ident),*) |$st:ident| $body:block) => {
        $(#[$doc])*
        #[allow(unused_variables)]
        pub unsafe extern "C" fn $name(
            a1: u64,
            a2: u64,
            a3: u64,
            a4: u64,
            a5: u64,
            st: *mut $crate::abi::RunState,
        ) -> u64 {
            // SAFETY: the engine passes the live run state.
            let $st = unsafe { $crate::helpers::state(st) };
            let [$($a,)* ..] = [a1, a2, a3, a4, a5];
            #[allow(unused_mut)]
            let mut run = || -> Result<u64, $crate::helpers::args::Stopped> { $body };
            run().unwrap_or(0)
        }
    };
}

pub mod args;
pub mod callbacks;
pub mod events;
pub mod format;
pub mod maps;
pub mod misc;
mod names;
pub mod probe;
pub mod proto;
pub mod strings;
pub mod timers;
pub mod trace;

use crate::abi::{FaultCode, RunState};
use crate::context::ExecContext;
use std::collections::BTreeMap;

/// The kernel's name of helper `id` without its `bpf_` prefix
/// (`map_lookup_elem` for 1), for ids the kernel defines.
pub fn kernel_name(id: i64) -> Option<&'static str> {
    usize::try_from(id)
        .ok()
        .and_then(|i| names::NAMES.get(i).copied())
}

/// The kernel's id of the helper named `name` (with or without `bpf_`).
pub fn kernel_id(name: &str) -> Option<u32> {
    let name = name.strip_prefix("bpf_").unwrap_or(name);
    names::NAMES
        .iter()
        .position(|n| *n == name)
        .map(|i| i as u32)
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernel_table_resolves_every_name() {
        let t = super::HelperTable::kernel();
        assert!(t.get(1).is_some_and(|h| h.name == "map_lookup_elem"));
        assert!(t.get(181).is_some_and(|h| h.name == "loop"));
        assert_eq!(super::kernel_id("bpf_strncmp"), Some(182));
    }
}

/// The native signature of every helper.
pub type HelperFn = unsafe extern "C" fn(u64, u64, u64, u64, u64, *mut RunState) -> u64;

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

/// Ids the engines implement themselves rather than through a table entry.
pub mod ids {
    pub const MAP_LOOKUP_ELEM: u32 = 1;
    pub const MAP_UPDATE_ELEM: u32 = 2;
    pub const MAP_DELETE_ELEM: u32 = 3;
    pub const TAIL_CALL: u32 = 12;
    pub const FOR_EACH_MAP_ELEM: u32 = 164;
    pub const TIMER_SET_CALLBACK: u32 = 170;
    pub const FIND_VMA: u32 = 180;
    pub const LOOP: u32 = 181;
    pub const USER_RINGBUF_DRAIN: u32 = 209;
}

/// Helpers that report the host's call stack (`bpf_get_stackid`,
/// `bpf_get_stack`, `bpf_get_task_stack`): compiled code that calls them
/// has the stack taken when its run starts (unwinders cannot walk through
/// it later).
pub fn reads_stack(id: u32) -> bool {
    matches!(
        kernel_name(id as i64),
        Some("get_stackid" | "get_stack" | "get_task_stack")
    )
}

/// Helpers that call back into the program: the caller's frame pointer
/// must be in the run state's `cb_fp` when they are called.
pub fn calls_back(id: u32) -> bool {
    matches!(
        id,
        ids::FOR_EACH_MAP_ELEM
            | ids::TIMER_SET_CALLBACK
            | ids::FIND_VMA
            | ids::LOOP
            | ids::USER_RINGBUF_DRAIN
    )
}

impl HelperTable {
    pub fn new() -> HelperTable {
        HelperTable::default()
    }

    pub fn insert(&mut self, helper: Helper) {
        self.helpers.insert(helper.id, helper);
    }

    /// Add a host-defined helper under `id`.
    pub fn add(&mut self, id: u32, name: &'static str, func: HelperFn) {
        self.insert(Helper { id, name, func });
    }

    pub fn get(&self, id: u32) -> Option<&Helper> {
        self.helpers.get(&id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Helper> {
        self.helpers.values()
    }

    pub fn contains(&self, id: u32) -> bool {
        self.helpers.contains_key(&id)
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

    /// Every helper of the kernel's that bpfc implements, under its kernel id.
    pub fn kernel() -> HelperTable {
        let mut t = HelperTable::new();
        for &(name, func) in maps::HELPERS
            .iter()
            .chain(misc::HELPERS)
            .chain(probe::HELPERS)
            .chain(trace::HELPERS)
            .chain(strings::HELPERS)
            .chain(callbacks::HELPERS)
            .chain(events::HELPERS)
            .chain(timers::HELPERS)
            .chain(crate::net::xdp::HELPERS)
            .chain(crate::net::skb::HELPERS)
            .chain(crate::net::csum::HELPERS)
            .chain(crate::net::reshape::HELPERS)
        {
            let id = kernel_id(name).expect("helper tables use the kernel's names");
            t.insert(Helper {
                id,
                name: names::NAMES[id as usize],
                func,
            });
        }
        t
    }
}

/// Returns its first argument (helper 5 of the conformance suite).
pub extern "C" fn identity(r1: u64, _: u64, _: u64, _: u64, _: u64, _: *mut RunState) -> u64 {
    r1
}

/// Stop the run at the helper call with `msg` (the engine adds the pc).
/// Returns 0, the value the helper should return.
pub fn fail(st: &mut RunState, msg: impl Into<String>) -> u64 {
    if st.fault.code == 0 {
        st.fault.code = FaultCode::HelperFault as u32;
    }
    // SAFETY: a non-null ctx in a run state is the run's live context.
    if let Some(ctx) = unsafe { st.ctx.as_mut() } {
        ctx.set_fault(msg);
    }
    0
}

/// The run state behind a helper's `st` argument.
///
/// # Safety
/// `st` must be the live run state the engine passed to the helper.
pub unsafe fn state<'a>(st: *mut RunState) -> &'a mut RunState {
    // SAFETY: guaranteed by the caller.
    unsafe { &mut *st }
}

/// The execution context of a run, if the host gave one.
pub fn context(st: &mut RunState) -> Option<&mut ExecContext> {
    // SAFETY: a non-null ctx in a run state is the run's live context.
    unsafe { st.ctx.as_mut() }
}

/// `-errno` as a helper's return value.
pub fn neg(errno: i32) -> u64 {
    (-(errno as i64)) as u64
}
