//! Programs as the runtime sees them: what a prog array slot holds (a
//! [`TailTarget`], the bound program of one engine), the process-wide ids
//! user space names programs by, and the tail call's runtime side.

use crate::abi::{FaultCode, ProgNative, RunState};
use crate::maps::prog_array::ProgArray;
use crate::maps::{Map, MapType};
use std::any::Any;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// `MAX_TAIL_CALL_CNT`: the most tail calls one run may take.
pub const MAX_TAIL_CALLS: u32 = 33;

/// A program that can sit in a prog array: an engine's bound program.
pub trait TailTarget: Send + Sync + 'static {
    /// What compiled code jumps to (its `func`), or what the interpreter
    /// runs (its `prog`). Lives as long as the program.
    fn native(&self) -> &ProgNative;
    fn name(&self) -> &str;
    fn as_any(&self) -> &dyn Any;
    /// The program as `Any`, for an engine to find its own program type.
    fn into_any_arc(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

fn registry() -> std::sync::MutexGuard<'static, BTreeMap<u32, Weak<dyn TailTarget>>> {
    static R: OnceLock<Mutex<BTreeMap<u32, Weak<dyn TailTarget>>>> = OnceLock::new();
    R.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

static NEXT_ID: AtomicU32 = AtomicU32::new(1);

/// A fresh program id (ids are never reused within a process).
pub fn next_id() -> u32 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Make `prog` findable by its id (`native().id`), as user space updates
/// prog arrays with program ids.
pub fn register(prog: &Arc<dyn TailTarget>) {
    registry().insert(prog.native().id, Arc::downgrade(prog));
}

/// The live program with id `id`.
pub fn by_id(id: u32) -> Option<Arc<dyn TailTarget>> {
    let mut r = registry();
    let p = r.get(&id).and_then(Weak::upgrade);
    if p.is_none() {
        r.remove(&id);
    }
    p
}

/// The runtime side of `bpf_tail_call(ctx, map, index)` for compiled code:
/// the entry function to jump to, or NULL to go on after the call (index
/// out of range, empty slot, 33 tail calls taken). A map that is not a prog
/// array, or a slot holding another engine's program, stops the run.
///
/// # Safety
/// `st` must be the caller's live run state; `map` a value of the program.
pub unsafe extern "C" fn tail_call_target(st: *mut RunState, map: u64, index: u64) -> *const u8 {
    // SAFETY: generated code passes its own run state.
    let st = unsafe { &mut *st };
    // SAFETY: the map argument of the program, checked in checked runs.
    let Ok(m) = (unsafe { crate::helpers::args::map(st, map) }) else {
        return std::ptr::null();
    };
    match target(st, m, index) {
        Some(p) if !p.func.is_null() => p.func,
        Some(p) => {
            crate::helpers::fail(
                st,
                format!(
                    "tail call into program {} (id {}) of another engine",
                    m.name(),
                    p.id
                ),
            );
            std::ptr::null()
        }
        None => std::ptr::null(),
    }
}

/// The program a tail call through `map` at `index` reaches, counting it,
/// or `None` to fall through. Shared by every engine.
pub fn target<'a>(st: &mut RunState, map: &'a Map, index: u64) -> Option<&'a ProgNative> {
    if map.map_type() != MapType::ProgArray {
        st.fault.code = FaultCode::HelperFault as u32;
        crate::helpers::fail(
            st,
            format!(
                "tail call through map {}, which is not a prog array",
                map.name()
            ),
        );
        return None;
    }
    let arr = map.imp().as_any().downcast_ref::<ProgArray>()?;
    let index = u32::try_from(index & 0xffff_ffff).ok()?;
    if index >= map.spec().max_entries || st.tail_calls >= MAX_TAIL_CALLS {
        return None;
    }
    let p = arr.slot(index)?;
    st.tail_calls += 1;
    Some(p)
}

/// The symbol AOT objects import for [`tail_call_target`].
pub const TAIL_CALL_SYMBOL: &str = "bpfc_tail_call_target";
