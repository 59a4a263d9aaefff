//! `BPF_MAP_TYPE_ARRAY_OF_MAPS` and `BPF_MAP_TYPE_HASH_OF_MAPS`: maps whose
//! values are other maps.
//!
//! Every map-in-map has an inner-map template ([`MapSpec::inner`]), checked
//! as the kernel's `bpf_map_meta_alloc` checks the inner map it is given:
//! the template must be a map that can be created, not itself a map-in-map
//! (`EINVAL`), and of a type that can be an inner map (a program array,
//! cgroup storage or struct_ops map cannot: `ENOTSUPP`). Each map stored
//! must then match the template as `map_meta_equal` decides: same type, key
//! and value size, flags (but for `BPF_F_RDONLY`/`BPF_F_WRONLY`, which the
//! kernel keeps with the descriptor) and special fields (spin lock,
//! timer), and for arrays and per-CPU arrays the same `max_entries` unless
//! the template has `BPF_F_INNER_MAP`; a mismatch is `EINVAL`.
//!
//! User space names inner maps by id both ways: an update takes the inner
//! map's id (the kernel takes a file descriptor) and a lookup returns it (as
//! the kernel does). An id of no live map is `EBADF`. The outer map holds a
//! reference to each inner map; a replaced or deleted one is released after
//! the programs running at that moment have finished ([`super::rcu`]).
//! Programs get the inner map's address ([`Map::as_ptr`]), which they pass
//! back to the map helpers, or NULL; they cannot update or delete entries.
//!
//! The array's slots are 8-byte pointers that compiled code can read
//! directly ([`MapImpl::native`]). The hash is a hash map of 8-byte
//! pointers with the hash family's semantics. Both hold process-local
//! references and cannot be pinned.

use super::error::{errno, MapError, MapResult};
use super::flags::{BPF_ANY, BPF_F_INNER_MAP, BPF_F_RDONLY, BPF_F_WRONLY};
use super::hash::HashMap;
use super::slots::{self, ArcSlots};
use super::{rcu, values, Map, MapImpl, MapOptions, MapSpec, MapType, NativeLayout};
use std::any::Any;
use std::sync::{Arc, Mutex};

/// Whether an inner map with definition `have` matches template `meta`
/// (`bpf_map_meta_equal`, and for arrays `array_map_meta_equal`).
pub fn meta_equal(meta: &MapSpec, have: &MapSpec) -> bool {
    // The kernel keeps BPF_F_RDONLY and BPF_F_WRONLY with the descriptor,
    // not in the map's flags, so they do not take part.
    let fd_only = BPF_F_RDONLY | BPF_F_WRONLY;
    let base = meta.map_type == have.map_type
        && meta.key_size == have.key_size
        && meta.value_size == have.value_size
        && meta.flags & !fd_only == have.flags & !fd_only
        && meta.spin_lock_off == have.spin_lock_off
        && meta.timer_off == have.timer_off;
    if !base {
        return false;
    }
    // Arrays must also have the same size unless the template allows any
    // (`BPF_F_INNER_MAP`); the running 6.18 kernel holds per-CPU arrays to
    // this too (the 6.12 sources did not).
    !matches!(meta.map_type, MapType::Array | MapType::PercpuArray)
        || meta.flags & BPF_F_INNER_MAP != 0
        || meta.max_entries == have.max_entries
}

enum Kind {
    Array(ArcSlots<Map>),
    /// Values are `Arc::into_raw` pointers of the inner maps.
    Hash(HashMap),
}

pub struct MapInMap {
    spec: MapSpec,
    /// The template as a created map reports it.
    meta: MapSpec,
    kind: Kind,
    /// Serialises user-space writers of the hash (which swap references).
    writers: Mutex<()>,
}

impl MapInMap {
    pub fn create(spec: &MapSpec, opts: &MapOptions) -> MapResult<MapInMap> {
        let name = &spec.name;
        let hash = spec.map_type == MapType::HashOfMaps;
        if hash {
            if spec.value_size != 4 {
                return Err(MapError::invalid(format!(
                    "map {name}: a hash of maps needs value_size 4 (has {})",
                    spec.value_size
                )));
            }
        } else {
            slots::check_fd_array(spec)?;
        }
        let meta = template(spec, opts)?;
        let kind = if hash {
            let internal = MapSpec {
                value_size: 8,
                inner: None,
                ..spec.clone()
            };
            Kind::Hash(HashMap::create(&internal, 1, None)?)
        } else {
            Kind::Array(slots::alloc_slots(spec)?)
        };
        Ok(MapInMap {
            spec: spec.clone(),
            meta,
            kind,
            writers: Mutex::new(()),
        })
    }

    /// The template inner maps must match.
    pub fn template(&self) -> &MapSpec {
        &self.meta
    }

    /// The live map `id`, if it may be stored here (`map_fd_get_ptr`).
    fn inner_by_id(&self, id: u32) -> MapResult<Arc<Map>> {
        let m = Map::by_id(id)
            .ok_or_else(|| MapError::with_reason(errno::EBADF, format!("no map has id {id}")))?;
        if !meta_equal(&self.meta, m.spec()) {
            return Err(MapError::with_reason(
                errno::EINVAL,
                format!(
                    "map {} ({} key {} value {} entries {} flags {:#x}) does not match the inner map of {} ({} key {} value {} entries {} flags {:#x})",
                    m.name(),
                    m.map_type(),
                    m.spec().key_size,
                    m.spec().value_size,
                    m.spec().max_entries,
                    m.spec().flags,
                    self.spec.name,
                    self.meta.map_type,
                    self.meta.key_size,
                    self.meta.value_size,
                    self.meta.max_entries,
                    self.meta.flags
                ),
            ));
        }
        Ok(m)
    }

    /// The inner map stored under `key` (a new reference).
    pub fn get(&self, key: &[u8]) -> Option<Arc<Map>> {
        match &self.kind {
            Kind::Array(s) => s.get(slots::index_of(key)),
            Kind::Hash(h) => {
                let _section = rcu::read_lock();
                let p = hash_ptr(h, key)?;
                // SAFETY: `p` is a live `Arc<Map>` pointer the hash holds;
                // a replaced one is retired, not freed, while the section lasts.
                unsafe {
                    Arc::increment_strong_count(p);
                    Some(Arc::from_raw(p))
                }
            }
        }
    }
}

/// The template of `spec`, created as a map to check it (as libbpf creates
/// the inner map it passes to the kernel), as that map reports itself.
fn template(spec: &MapSpec, opts: &MapOptions) -> MapResult<MapSpec> {
    let name = &spec.name;
    let inner = spec.inner.as_deref().ok_or_else(|| {
        MapError::invalid(format!(
            "map {name}: a {} map needs an inner map definition",
            spec.map_type
        ))
    })?;
    match inner.map_type {
        MapType::ArrayOfMaps | MapType::HashOfMaps => {
            return Err(MapError::invalid(format!(
                "map {name}: the inner map cannot itself be a map of maps"
            )))
        }
        MapType::ProgArray
        | MapType::CgroupStorage
        | MapType::PercpuCgroupStorage
        | MapType::StructOps => {
            return Err(MapError::with_reason(
                errno::ENOTSUPP,
                format!(
                    "map {name}: a {} map cannot be an inner map",
                    inner.map_type
                ),
            ))
        }
        _ => {}
    }
    let made = Map::create_with(inner, opts).map_err(|e| {
        MapError::with_reason(
            e.code(),
            format!(
                "map {name}: inner map: {}",
                e.reason().map_or_else(|| e.to_string(), str::to_string)
            ),
        )
    })?;
    Ok(made.spec().clone())
}

/// The inner map pointer the hash holds for `key`.
fn hash_ptr(h: &HashMap, key: &[u8]) -> Option<*const Map> {
    let v = h.prog_lookup(key, 0)?;
    let mut b = [0u8; 8];
    // SAFETY: an 8-byte value of a live element.
    unsafe { values::read(v, &mut b) };
    let p = u64::from_ne_bytes(b) as usize as *const Map;
    (!p.is_null()).then_some(p)
}

fn id_of(p: *const Map) -> u32 {
    // SAFETY: the caller holds a read-side section over a pointer a slot or
    // the hash held, so the map is alive.
    unsafe { (*p).id() }
}

impl MapImpl for MapInMap {
    fn lookup(&self, key: Option<&[u8]>, value: &mut [u8], _flags: u64) -> MapResult<()> {
        let key = key.unwrap_or(&[]);
        let _section = rcu::read_lock();
        let p = match &self.kind {
            Kind::Array(s) => s.get_raw(slots::index_of(key)),
            Kind::Hash(h) => hash_ptr(h, key),
        }
        .ok_or(MapError::NOENT)?;
        value[..4].copy_from_slice(&id_of(p).to_ne_bytes());
        Ok(())
    }

    fn update(&self, key: Option<&[u8]>, value: &[u8], flags: u64) -> MapResult<()> {
        let key = key.unwrap_or(&[]);
        let id = slots::index_of(value);
        match &self.kind {
            Kind::Array(s) => {
                if flags != BPF_ANY {
                    return Err(MapError::INVAL);
                }
                let index = slots::index_of(key);
                if index >= self.spec.max_entries {
                    return Err(MapError::TOO_BIG);
                }
                let m = self.inner_by_id(id)?;
                s.replace(index, Some(m));
                Ok(())
            }
            Kind::Hash(h) => {
                let m = self.inner_by_id(id)?;
                let _w = self.writers.lock().unwrap_or_else(|e| e.into_inner());
                let old = hash_ptr(h, key);
                let raw = Arc::into_raw(m);
                let bytes = (raw as usize as u64).to_ne_bytes();
                if let Err(e) = h.update(Some(key), &bytes, flags) {
                    // SAFETY: `raw` came from `Arc::into_raw` above and was not stored.
                    drop(unsafe { Arc::from_raw(raw) });
                    return Err(e);
                }
                if let Some(old) = old {
                    // SAFETY: the hash held this reference and no longer does.
                    rcu::retire(unsafe { Arc::from_raw(old) });
                }
                Ok(())
            }
        }
    }

    fn delete(&self, key: &[u8]) -> MapResult<()> {
        match &self.kind {
            Kind::Array(s) => {
                let index = slots::index_of(key);
                if index >= self.spec.max_entries {
                    return Err(MapError::TOO_BIG);
                }
                match s.replace(index, None) {
                    Some(true) => Ok(()),
                    _ => Err(MapError::NOENT),
                }
            }
            Kind::Hash(h) => {
                let _w = self.writers.lock().unwrap_or_else(|e| e.into_inner());
                let old = hash_ptr(h, key).ok_or(MapError::NOENT)?;
                h.delete(key)?;
                // SAFETY: the hash held this reference and no longer does.
                rcu::retire(unsafe { Arc::from_raw(old) });
                Ok(())
            }
        }
    }

    fn get_next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> MapResult<()> {
        match &self.kind {
            Kind::Array(_) => slots::array_next_key(self.spec.max_entries, key, next),
            Kind::Hash(h) => h.get_next_key(key, next),
        }
    }

    fn prog_lookup(&self, key: &[u8], _cpu: u32) -> Option<*mut u8> {
        let p = match &self.kind {
            Kind::Array(s) => s.get_raw(slots::index_of(key)),
            Kind::Hash(h) => hash_ptr(h, key),
        }?;
        Some(p as *mut u8)
    }

    fn prog_update(&self, _key: &[u8], _value: &[u8], _flags: u64, _cpu: u32) -> MapResult<()> {
        // Programs only look inner maps up (the kernel's verifier refuses
        // other helpers on a map of maps).
        Err(MapError::OPNOTSUPP)
    }

    fn prog_delete(&self, _key: &[u8]) -> MapResult<()> {
        Err(MapError::OPNOTSUPP)
    }

    fn native(&self) -> NativeLayout {
        match &self.kind {
            Kind::Array(s) => NativeLayout {
                values: s.base() as usize,
                elem_size: 8,
                cpu_stride: 0,
            },
            Kind::Hash(_) => NativeLayout::default(),
        }
    }

    fn elements(&self) -> Option<usize> {
        match &self.kind {
            Kind::Array(s) => Some(s.count()),
            Kind::Hash(h) => h.elements(),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Drop for MapInMap {
    fn drop(&mut self) {
        let Kind::Hash(h) = &self.kind else {
            return;
        };
        // Give back the references the hash holds.
        let mut key = vec![0u8; self.spec.key_size as usize];
        while h.get_next_key(None, &mut key).is_ok() {
            if let Some(p) = hash_ptr(h, &key) {
                // SAFETY: the hash held this reference; the entry goes next.
                rcu::retire(unsafe { Arc::from_raw(p) });
            }
            if h.delete(&key).is_err() {
                break;
            }
        }
    }
}

/// The inner map stored under `key` in a map of maps.
pub fn inner_map(map: &Map, key: &[u8]) -> Option<Arc<Map>> {
    map.imp().as_any().downcast_ref::<MapInMap>()?.get(key)
}

#[cfg(test)]
#[path = "of_maps_tests.rs"]
mod tests;
