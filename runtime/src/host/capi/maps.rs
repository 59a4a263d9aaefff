//! `struct bpfc_map`: an object's map (valid until the object is
//! destroyed), or a pinned map opened on its own (`bpfc_map_open_pinned`,
//! freed with `bpfc_map_close`). Keys and values are the sizes the map was
//! made with; per-CPU values are one 8-byte aligned slot per CPU, as
//! libbpf's.

use super::{bpfc_object, c_str, guard, inval, read, status, HostError};
use crate::maps::{errno, Map};
use std::ffi::{c_char, c_int, c_void, CString};
use std::sync::Arc;

pub struct bpfc_map {
    obj: *const bpfc_object,
    index: usize,
    /// A map opened on its own.
    own: Option<Arc<Map>>,
    name: CString,
}

// SAFETY: refers to its object (shared) or owns an `Arc<Map>`.
unsafe impl Send for bpfc_map {}
// SAFETY: as above.
unsafe impl Sync for bpfc_map {}

impl bpfc_map {
    pub(super) fn of_object(obj: *const bpfc_object, index: usize, name: &str) -> bpfc_map {
        bpfc_map {
            obj,
            index,
            own: None,
            name: super::cstring(name),
        }
    }

    /// The live map, once its object is loaded.
    fn get(&self) -> Result<Arc<Map>, HostError> {
        if let Some(m) = &self.own {
            return Ok(m.clone());
        }
        // SAFETY: an object's map handles live as long as the object.
        let o = read(unsafe { &*self.obj });
        o.maps
            .get(self.index)
            .and_then(Option::clone)
            .ok_or_else(|| {
                inval(format!(
                    "map {} of object {} does not exist yet: load the object first",
                    self.name.to_string_lossy(),
                    o.name()
                ))
            })
    }
}

fn handle<'a>(p: *const bpfc_map) -> Result<&'a bpfc_map, HostError> {
    // SAFETY: a handle from an object or `bpfc_map_open_pinned`.
    unsafe { p.as_ref() }.ok_or_else(|| inval("map is NULL"))
}

fn live(p: *const bpfc_map) -> Result<Arc<Map>, HostError> {
    handle(p)?.get()
}

/// A buffer argument of `len` bytes.
unsafe fn buf<'a>(p: *const c_void, len: usize, what: &str) -> Result<&'a [u8], HostError> {
    if p.is_null() {
        return Err(inval(format!("{what} is NULL")));
    }
    // SAFETY: the caller passes `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(p.cast(), len) })
}

unsafe fn buf_mut<'a>(p: *mut c_void, len: usize, what: &str) -> Result<&'a mut [u8], HostError> {
    if p.is_null() {
        return Err(inval(format!("{what} is NULL")));
    }
    // SAFETY: the caller passes `len` writable bytes.
    Ok(unsafe { std::slice::from_raw_parts_mut(p.cast(), len) })
}

/// The map called `name`. NULL (`-ENOENT`) when there is none.
#[no_mangle]
pub unsafe extern "C" fn bpfc_object_find_map(
    obj: *const bpfc_object,
    name: *const c_char,
) -> *const bpfc_map {
    guard(
        |_| std::ptr::null(),
        || {
            let o = super::object(obj)?;
            // SAFETY: the caller passes a C string.
            let name = unsafe { c_str(name, "name") }?;
            let r = read(o);
            let i = r.map_index(name).ok_or_else(|| {
                let names: Vec<&str> = r.desc.maps.iter().map(|m| m.name.as_str()).collect();
                HostError::new(
                    errno::ENOENT,
                    format!(
                        "object {} has no map {name} (maps: {})",
                        r.name(),
                        names.join(", ")
                    ),
                )
            })?;
            Ok(&o.maps[i] as *const bpfc_map)
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn bpfc_object_map_count(obj: *const bpfc_object) -> c_int {
    guard(|e| e, || Ok(super::object(obj)?.maps.len() as c_int))
}

/// Map `i` by map index, NULL when out of range.
#[no_mangle]
pub unsafe extern "C" fn bpfc_object_map(obj: *const bpfc_object, i: usize) -> *const bpfc_map {
    guard(
        |_| std::ptr::null(),
        || {
            let o = super::object(obj)?;
            o.maps.get(i).map(|m| m as *const bpfc_map).ok_or_else(|| {
                HostError::new(errno::ENOENT, format!("object has {} maps", o.maps.len()))
            })
        },
    )
}

#[no_mangle]
pub unsafe extern "C" fn bpfc_map_name(map: *const bpfc_map) -> *const c_char {
    guard(|_| std::ptr::null(), || Ok(handle(map)?.name.as_ptr()))
}

/// The definition's numbers, before or after load.
fn def(map: *const bpfc_map) -> Result<[u32; 4], HostError> {
    let h = handle(map)?;
    if let Some(m) = &h.own {
        let s = m.spec();
        return Ok([s.map_type as u32, s.key_size, s.value_size, s.max_entries]);
    }
    // SAFETY: an object's map handles live as long as the object.
    let o = read(unsafe { &*h.obj });
    if let Some(Some(m)) = o.maps.get(h.index) {
        let s = m.spec();
        return Ok([s.map_type as u32, s.key_size, s.value_size, s.max_entries]);
    }
    let d = &o.desc.maps[h.index];
    Ok([d.map_type, d.key_size, d.value_size, d.max_entries])
}

#[no_mangle]
pub unsafe extern "C" fn bpfc_map_type(map: *const bpfc_map) -> c_int {
    guard(|e| e, || Ok(def(map)?[0] as c_int))
}

#[no_mangle]
pub unsafe extern "C" fn bpfc_map_key_size(map: *const bpfc_map) -> c_int {
    guard(|e| e, || Ok(def(map)?[1] as c_int))
}

#[no_mangle]
pub unsafe extern "C" fn bpfc_map_value_size(map: *const bpfc_map) -> c_int {
    guard(|e| e, || Ok(def(map)?[2] as c_int))
}

#[no_mangle]
pub unsafe extern "C" fn bpfc_map_max_entries(map: *const bpfc_map) -> c_int {
    guard(|e| e, || Ok(def(map)?[3] as c_int))
}

/// Look `key` up, copying the value out (per-CPU maps: every CPU slot's).
#[no_mangle]
pub unsafe extern "C" fn bpfc_map_lookup_elem(
    map: *const bpfc_map,
    key: *const c_void,
    value: *mut c_void,
) -> c_int {
    status(|| {
        let m = live(map)?;
        // SAFETY: the caller passes buffers of the map's sizes.
        let (k, v) = unsafe {
            (
                buf(key, m.key_size(), "key")?,
                buf_mut(value, m.user_value_size(), "value")?,
            )
        };
        Ok(m.lookup(k, v)?)
    })
}

/// Create or replace `key`'s value (`BPF_ANY`, `BPF_NOEXIST`, `BPF_EXIST`,
/// `BPF_F_LOCK`).
#[no_mangle]
pub unsafe extern "C" fn bpfc_map_update_elem(
    map: *const bpfc_map,
    key: *const c_void,
    value: *const c_void,
    flags: u64,
) -> c_int {
    status(|| {
        let m = live(map)?;
        // SAFETY: the caller passes buffers of the map's sizes.
        let (k, v) = unsafe {
            (
                buf(key, m.key_size(), "key")?,
                buf(value, m.user_value_size(), "value")?,
            )
        };
        Ok(m.update(k, v, flags)?)
    })
}

#[no_mangle]
pub unsafe extern "C" fn bpfc_map_delete_elem(map: *const bpfc_map, key: *const c_void) -> c_int {
    status(|| {
        let m = live(map)?;
        // SAFETY: the caller passes a key of the map's size.
        let k = unsafe { buf(key, m.key_size(), "key") }?;
        Ok(m.delete(k)?)
    })
}

/// The key after `key` (NULL: the first key); `-ENOENT` after the last.
#[no_mangle]
pub unsafe extern "C" fn bpfc_map_get_next_key(
    map: *const bpfc_map,
    key: *const c_void,
    next_key: *mut c_void,
) -> c_int {
    status(|| {
        let m = live(map)?;
        let k = if key.is_null() {
            None
        } else {
            // SAFETY: the caller passes a key of the map's size.
            Some(unsafe { buf(key, m.key_size(), "key") }?)
        };
        // SAFETY: the caller passes room for a key.
        let n = unsafe { buf_mut(next_key, m.key_size(), "next_key") }?;
        Ok(m.get_next_key(k, n)?)
    })
}

/// Look up and delete (queues and stacks: pop, with a NULL key).
#[no_mangle]
pub unsafe extern "C" fn bpfc_map_lookup_and_delete_elem(
    map: *const bpfc_map,
    key: *const c_void,
    value: *mut c_void,
) -> c_int {
    status(|| {
        let m = live(map)?;
        let k = if key.is_null() {
            &[][..]
        } else {
            // SAFETY: the caller passes a key of the map's size.
            unsafe { buf(key, m.key_size(), "key") }?
        };
        // SAFETY: the caller passes room for a value.
        let v = unsafe { buf_mut(value, m.user_value_size(), "value") }?;
        Ok(m.lookup_and_delete(k, v, 0)?)
    })
}

#[no_mangle]
pub unsafe extern "C" fn bpfc_map_freeze(map: *const bpfc_map) -> c_int {
    status(|| Ok(live(map)?.freeze()?))
}

/// Global data: before load, the image load will write (change it to
/// set `.rodata` constants); after load, the live value in the map (an
/// array's value memory). `*size` gets its size when not NULL.
#[no_mangle]
pub unsafe extern "C" fn bpfc_map_initial_value(
    map: *const bpfc_map,
    size: *mut usize,
) -> *mut c_void {
    guard(
        |_| std::ptr::null_mut(),
        || {
            let h = handle(map)?;
            if h.own.is_some() {
                return Err(inval("a pinned map opened alone has no initial value"));
            }
            // SAFETY: an object's map handles live as long as the object.
            let o = unsafe { &*h.obj };
            let mut w = o.obj.write().unwrap_or_else(|e| e.into_inner());
            let vsize = w.desc.maps[h.index].value_size as usize;
            let p = if let Some(img) = w.images.get_mut(h.index).and_then(Option::as_mut) {
                img.as_mut_ptr()
            } else if let Some(Some(m)) = w.maps.get(h.index) {
                let v = m.native().values;
                if v.is_null() || m.map_type().is_percpu() {
                    return Err(inval(format!(
                        "map {} has no value memory to map",
                        m.name()
                    )));
                }
                v
            } else {
                return Err(inval(format!(
                    "map {} is not global data",
                    h.name.to_string_lossy()
                )));
            };
            // SAFETY: the caller passes a writable size_t or NULL.
            if let Some(s) = unsafe { size.as_mut() } {
                *s = vsize;
            }
            Ok(p.cast())
        },
    )
}

/// Pin the map at `path` (shared with other processes by name).
#[no_mangle]
pub unsafe extern "C" fn bpfc_map_pin(map: *const bpfc_map, path: *const c_char) -> c_int {
    status(|| {
        let m = live(map)?;
        // SAFETY: the caller passes a C string.
        let p = unsafe { c_str(path, "path") }?;
        Ok(m.pin(std::path::Path::new(p))?)
    })
}

#[no_mangle]
pub unsafe extern "C" fn bpfc_map_unpin(map: *const bpfc_map) -> c_int {
    status(|| Ok(live(map)?.unpin()?))
}

/// Open the map pinned at `path`; free it with `bpfc_map_close`.
#[no_mangle]
pub unsafe extern "C" fn bpfc_map_open_pinned(path: *const c_char) -> *mut bpfc_map {
    guard(
        |_| std::ptr::null_mut(),
        || {
            // SAFETY: the caller passes a C string.
            let p = unsafe { c_str(path, "path") }?;
            let m = Map::open_pinned(std::path::Path::new(p), None)?;
            let name = super::cstring(m.name());
            Ok(Box::into_raw(Box::new(bpfc_map {
                obj: std::ptr::null(),
                index: 0,
                own: Some(m),
                name,
            })))
        },
    )
}

/// Free a map from `bpfc_map_open_pinned` (an object's maps go with it).
#[no_mangle]
pub unsafe extern "C" fn bpfc_map_close(map: *mut bpfc_map) -> c_int {
    status(|| {
        let h = handle(map)?;
        if h.own.is_none() {
            return Err(inval(
                "the map belongs to an object: destroy the object instead",
            ));
        }
        // SAFETY: made by `Box::into_raw` in `bpfc_map_open_pinned`.
        drop(unsafe { Box::from_raw(map) });
        Ok(())
    })
}

pub(super) fn map_arc(map: *const bpfc_map) -> Result<Arc<Map>, HostError> {
    live(map)
}
