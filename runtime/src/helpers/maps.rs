//! Map helpers: lookup, update, delete, push/pop/peek and per-CPU lookup,
//! as `bpf_map_*_elem` behave for programs (a pointer into the map or
//! NULL; 0 or `-errno`).

use super::args::{self, Stopped};
use super::{neg, state, HelperFn};
use crate::abi::RunState;
use crate::maps::Map;

/// The helpers of this module by kernel name.
pub const HELPERS: &[(&str, HelperFn)] = &[
    ("map_lookup_elem", map_lookup_elem),
    ("map_update_elem", map_update_elem),
    ("map_delete_elem", map_delete_elem),
    ("map_push_elem", map_push_elem),
    ("map_pop_elem", map_pop_elem),
    ("map_peek_elem", map_peek_elem),
    ("map_lookup_percpu_elem", map_lookup_percpu_elem),
];

fn ret(r: Result<u64, Stopped>) -> u64 {
    r.unwrap_or(0)
}

fn errno_ret(r: crate::maps::MapResult<()>) -> u64 {
    match r {
        Ok(()) => 0,
        Err(e) => neg(e.code()),
    }
}

/// The map and its key, checked.
///
/// # Safety
/// `map`/`key` come from the program (verified, or checked here).
unsafe fn map_and_key<'a>(
    st: &mut RunState,
    map: u64,
    key: u64,
) -> Result<(&'a Map, &'a [u8]), Stopped> {
    // SAFETY: the caller's guarantees.
    let m = unsafe { args::map(st, map)? };
    // SAFETY: as above.
    let k = unsafe { args::bytes(st, "key", key, m.key_size() as u64)? };
    Ok((m, k))
}

/// `void *bpf_map_lookup_elem(map, key)`.
pub unsafe extern "C" fn map_lookup_elem(
    map: u64,
    key: u64,
    _: u64,
    _: u64,
    _: u64,
    st: *mut RunState,
) -> u64 {
    // SAFETY: the engine passes the live run state.
    let st = unsafe { state(st) };
    ret((|| {
        // SAFETY: arguments of the program.
        let (m, k) = unsafe { map_and_key(st, map, key)? };
        Ok(m.prog_lookup(k, st.cpu).map_or(0, |p| p as u64))
    })())
}

/// `long bpf_map_update_elem(map, key, value, flags)`.
pub unsafe extern "C" fn map_update_elem(
    map: u64,
    key: u64,
    value: u64,
    flags: u64,
    _: u64,
    st: *mut RunState,
) -> u64 {
    // SAFETY: the engine passes the live run state.
    let st = unsafe { state(st) };
    ret((|| {
        // SAFETY: arguments of the program.
        let (m, k) = unsafe { map_and_key(st, map, key)? };
        let vs = m.spec().value_size as u64;
        // SAFETY: as above.
        let v = unsafe { args::bytes(st, "value", value, vs)? };
        Ok(errno_ret(m.prog_update(k, v, flags, st.cpu)))
    })())
}

/// `long bpf_map_delete_elem(map, key)`.
pub unsafe extern "C" fn map_delete_elem(
    map: u64,
    key: u64,
    _: u64,
    _: u64,
    _: u64,
    st: *mut RunState,
) -> u64 {
    // SAFETY: the engine passes the live run state.
    let st = unsafe { state(st) };
    ret((|| {
        // SAFETY: arguments of the program.
        let (m, k) = unsafe { map_and_key(st, map, key)? };
        Ok(errno_ret(m.prog_delete(k)))
    })())
}

/// `long bpf_map_push_elem(map, value, flags)`.
pub unsafe extern "C" fn map_push_elem(
    map: u64,
    value: u64,
    flags: u64,
    _: u64,
    _: u64,
    st: *mut RunState,
) -> u64 {
    // SAFETY: the engine passes the live run state.
    let st = unsafe { state(st) };
    ret((|| {
        // SAFETY: arguments of the program.
        let m = unsafe { args::map(st, map)? };
        let vs = m.spec().value_size as u64;
        // SAFETY: as above.
        let v = unsafe { args::bytes(st, "value", value, vs)? };
        Ok(errno_ret(m.imp().prog_push(v, flags)))
    })())
}

fn pop_like(
    st: *mut RunState,
    map: u64,
    value: u64,
    op: fn(&Map, &mut [u8]) -> crate::maps::MapResult<()>,
) -> u64 {
    // SAFETY: the engine passes the live run state.
    let st = unsafe { state(st) };
    ret((|| {
        // SAFETY: arguments of the program.
        let m = unsafe { args::map(st, map)? };
        let vs = m.spec().value_size as u64;
        // SAFETY: as above.
        let v = unsafe { args::bytes_mut(st, "value", value, vs)? };
        Ok(errno_ret(op(m, v)))
    })())
}

/// `long bpf_map_pop_elem(map, value)`.
pub unsafe extern "C" fn map_pop_elem(
    map: u64,
    value: u64,
    _: u64,
    _: u64,
    _: u64,
    st: *mut RunState,
) -> u64 {
    pop_like(st, map, value, |m, v| m.imp().prog_pop(v))
}

/// `long bpf_map_peek_elem(map, value)`.
pub unsafe extern "C" fn map_peek_elem(
    map: u64,
    value: u64,
    _: u64,
    _: u64,
    _: u64,
    st: *mut RunState,
) -> u64 {
    pop_like(st, map, value, |m, v| m.imp().prog_peek(v))
}

/// `void *bpf_map_lookup_percpu_elem(map, key, cpu)`.
pub unsafe extern "C" fn map_lookup_percpu_elem(
    map: u64,
    key: u64,
    cpu: u64,
    _: u64,
    _: u64,
    st: *mut RunState,
) -> u64 {
    // SAFETY: the engine passes the live run state.
    let st = unsafe { state(st) };
    ret((|| {
        // SAFETY: arguments of the program.
        let (m, k) = unsafe { map_and_key(st, map, key)? };
        let Ok(cpu) = u32::try_from(cpu) else {
            return Ok(0);
        };
        Ok(m.imp().prog_lookup_percpu(k, cpu).map_or(0, |p| p as u64))
    })())
}
