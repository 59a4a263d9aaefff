//! Map helpers: lookup, update, delete, push/pop/peek and per-CPU lookup,
//! as `bpf_map_*_elem` behave for programs (a pointer into the map or
//! NULL; 0 or `-errno`).

use super::args::{self, Stopped};
use super::{neg, HelperFn};
use crate::abi::RunState;
use crate::maps::{Map, MapResult};

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

/// 0 or `-errno`.
pub(crate) fn errno_ret(r: MapResult<()>) -> u64 {
    match r {
        Ok(()) => 0,
        Err(e) => neg(e.code()),
    }
}

/// The map argument and its key, checked.
fn map_and_key<'a>(st: &mut RunState, map: u64, key: u64) -> Result<(&'a Map, &'a [u8]), Stopped> {
    // SAFETY: arguments of the program (verified, or checked here).
    let m = unsafe { args::map(st, map)? };
    // SAFETY: as above.
    let k = unsafe { args::bytes(st, "key", key, m.key_size() as u64)? };
    Ok((m, k))
}

/// The map argument and a value-sized buffer of the program.
fn map_and_value<'a>(
    st: &mut RunState,
    map: u64,
    value: u64,
    write: bool,
) -> Result<(&'a Map, &'a mut [u8]), Stopped> {
    // SAFETY: arguments of the program (verified, or checked here).
    let m = unsafe { args::map(st, map)? };
    let len = m.spec().value_size as u64;
    args::mem(st, "value", value, len, write)?;
    if len == 0 {
        return Ok((m, &mut []));
    }
    // SAFETY: checked above (or proven by the verifier); a read-only use
    // never writes through it.
    Ok((m, unsafe {
        std::slice::from_raw_parts_mut(value as *mut u8, len as usize)
    }))
}

helper!(
    /// `void *bpf_map_lookup_elem(map, key)`.
    map_lookup_elem(map, key) |st| {
        let (m, k) = map_and_key(st, map, key)?;
        Ok(m.prog_lookup(k, st.cpu).map_or(0, |p| p as u64))
    }
);

helper!(
    /// `long bpf_map_update_elem(map, key, value, flags)`.
    map_update_elem(map, key, value, flags) |st| {
        let (m, k) = map_and_key(st, map, key)?;
        let (_, v) = map_and_value(st, map, value, false)?;
        Ok(errno_ret(m.prog_update(k, v, flags, st.cpu)))
    }
);

helper!(
    /// `long bpf_map_delete_elem(map, key)`.
    map_delete_elem(map, key) |st| {
        let (m, k) = map_and_key(st, map, key)?;
        Ok(errno_ret(m.prog_delete(k)))
    }
);

helper!(
    /// `long bpf_map_push_elem(map, value, flags)`.
    map_push_elem(map, value, flags) |st| {
        let (m, v) = map_and_value(st, map, value, false)?;
        Ok(errno_ret(m.imp().prog_push(v, flags)))
    }
);

helper!(
    /// `long bpf_map_pop_elem(map, value)`.
    map_pop_elem(map, value) |st| {
        let (m, v) = map_and_value(st, map, value, true)?;
        Ok(errno_ret(m.imp().prog_pop(v)))
    }
);

helper!(
    /// `long bpf_map_peek_elem(map, value)`.
    map_peek_elem(map, value) |st| {
        let (m, v) = map_and_value(st, map, value, true)?;
        Ok(errno_ret(m.imp().prog_peek(v)))
    }
);

helper!(
    /// `void *bpf_map_lookup_percpu_elem(map, key, cpu)`.
    map_lookup_percpu_elem(map, key, cpu) |st| {
        let (m, k) = map_and_key(st, map, key)?;
        let Ok(cpu) = u32::try_from(cpu) else {
            return Ok(0);
        };
        Ok(m.imp().prog_lookup_percpu(k, cpu).map_or(0, |p| p as u64))
    }
);
