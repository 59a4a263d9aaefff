//! `BPF_MAP_TYPE_ARRAY` and `BPF_MAP_TYPE_PERCPU_ARRAY`: `max_entries`
//! preallocated values indexed by a u32 key, one copy per CPU slot for the
//! per-CPU type. Every element always exists: lookups of an index in range
//! succeed, deletes fail with `EINVAL`.
//!
//! Layout after the header: the values, `round8(value_size)` bytes apart
//! (page aligned for `BPF_F_MMAPABLE`); per-CPU: all of CPU 0's values,
//! then CPU 1's, and so on. Compiled code inlines lookups from this layout
//! through [`MapNative`](crate::abi::MapNative).

use super::error::{errno, MapError, MapResult};
use super::flags::{BPF_EXIST, BPF_F_LOCK, BPF_F_MMAPABLE, BPF_NOEXIST};
use super::store::{check_fits_memory, Store, HEADER_SIZE};
use super::{round8, values, KeyOf, MapImpl, MapSpec, MapType, NativeLayout, Slab};
use std::any::Any;
use std::path::Path;

/// `PCPU_MIN_UNIT_SIZE`: the largest per-CPU value.
const PERCPU_VALUE_MAX: usize = 32 * 1024;

pub struct ArrayMap {
    store: Store,
    spec: MapSpec,
    ncpus: usize,
    percpu: bool,
    elem_size: usize,
    /// Offset of the first value from the start of the block.
    values_off: usize,
}

fn layout(spec: &MapSpec, ncpus: u32) -> MapResult<(usize, usize)> {
    let percpu = spec.map_type == MapType::PercpuArray;
    if spec.max_entries == 0 || spec.key_size != 4 || spec.value_size == 0 {
        return Err(MapError::invalid(format!(
            "map {}: an array needs key_size 4 and non-zero value_size and max_entries (has {}, {}, {})",
            spec.name, spec.key_size, spec.value_size, spec.max_entries
        )));
    }
    if spec.value_size > i32::MAX as u32 {
        return Err(MapError::with_reason(
            errno::E2BIG,
            format!("map {}: value_size too large", spec.name),
        ));
    }
    let elem = round8(spec.value_size);
    if percpu && elem > PERCPU_VALUE_MAX {
        return Err(MapError::with_reason(
            errno::E2BIG,
            format!(
                "map {}: per-CPU values are at most {PERCPU_VALUE_MAX} bytes",
                spec.name
            ),
        ));
    }
    let copies = if percpu { ncpus as usize } else { 1 };
    let values_off = if spec.flags & BPF_F_MMAPABLE != 0 {
        super::shm::page_round(HEADER_SIZE)
    } else {
        HEADER_SIZE.next_multiple_of(64)
    };
    let bytes = elem
        .checked_mul(spec.max_entries as usize)
        .and_then(|b| b.checked_mul(copies))
        .and_then(|b| b.checked_add(values_off))
        .ok_or_else(|| {
            MapError::with_reason(errno::ENOMEM, format!("map {}: too large", spec.name))
        })?;
    Ok((values_off, bytes - HEADER_SIZE))
}

impl ArrayMap {
    pub fn create(spec: &MapSpec, ncpus: u32, dir: Option<&Path>) -> MapResult<ArrayMap> {
        let (values_off, body) = layout(spec, ncpus)?;
        check_fits_memory(spec, body)?;
        let store = Store::create(spec, ncpus, body, dir)?;
        store.mark_ready();
        Ok(ArrayMap::new(store, spec, ncpus, values_off))
    }

    pub fn attach(store: Store, spec: &MapSpec, ncpus: u32) -> MapResult<ArrayMap> {
        let (values_off, body) = layout(spec, ncpus)?;
        if store.body_len() < body {
            return Err(MapError::invalid(format!(
                "pinned array {} is shorter than its definition",
                spec.name
            )));
        }
        Ok(ArrayMap::new(store, spec, ncpus, values_off))
    }

    fn new(store: Store, spec: &MapSpec, ncpus: u32, values_off: usize) -> ArrayMap {
        ArrayMap {
            store,
            spec: spec.clone(),
            ncpus: ncpus as usize,
            percpu: spec.map_type == MapType::PercpuArray,
            elem_size: round8(spec.value_size),
            values_off,
        }
    }

    fn cpu_stride(&self) -> usize {
        self.elem_size * self.spec.max_entries as usize
    }

    /// The value of `index` in CPU slot `cpu`.
    fn value(&self, index: u32, cpu: usize) -> *mut u8 {
        let off = self.values_off + cpu * self.cpu_stride() + index as usize * self.elem_size;
        self.store.shm().at(off)
    }

    fn index(&self, key: &[u8]) -> Option<u32> {
        let i = u32::from_ne_bytes(key.get(..4)?.try_into().ok()?);
        (i < self.spec.max_entries).then_some(i)
    }

    /// The first value (CPU slot 0), for programs' direct access to global data.
    pub fn values_ptr(&self) -> *mut u8 {
        self.value(0, 0)
    }

    fn check_update(&self, key: &[u8], flags: u64) -> MapResult<u32> {
        let bad_flags = if self.percpu {
            flags > BPF_EXIST
        } else {
            flags & !BPF_F_LOCK > BPF_EXIST
        };
        if bad_flags {
            return Err(MapError::INVAL);
        }
        let index = self.index(key).ok_or(MapError::TOO_BIG)?;
        if flags & BPF_NOEXIST != 0 {
            return Err(MapError::EXIST);
        }
        if flags & BPF_F_LOCK != 0 && self.spec.spin_lock_off.is_none() {
            return Err(MapError::INVAL);
        }
        Ok(index)
    }
}

impl MapImpl for ArrayMap {
    fn lookup(&self, key: Option<&[u8]>, value: &mut [u8], flags: u64) -> MapResult<()> {
        let index = self.index(key.unwrap_or(&[])).ok_or(MapError::NOENT)?;
        if self.percpu {
            for (cpu, out) in value.chunks_exact_mut(self.elem_size).enumerate() {
                // SAFETY: a whole value slot inside the block.
                unsafe { values::load_value(&self.spec, self.value(index, cpu), out) };
            }
        } else if flags & BPF_F_LOCK != 0 {
            // SAFETY: a live value with a spin lock (checked by the caller).
            unsafe { values::load_value_locked(&self.spec, self.value(index, 0), value) };
        } else {
            // SAFETY: a live value inside the block.
            unsafe { values::load_value(&self.spec, self.value(index, 0), value) };
        }
        Ok(())
    }

    fn update(&self, key: Option<&[u8]>, value: &[u8], flags: u64) -> MapResult<()> {
        let index = self.check_update(key.unwrap_or(&[]), flags)?;
        if self.percpu {
            for (cpu, v) in value.chunks_exact(self.elem_size).enumerate() {
                // SAFETY: a whole value slot inside the block.
                unsafe { values::store_value(&self.spec, self.value(index, cpu), v) };
            }
        } else {
            let v = self.value(index, 0);
            if flags & BPF_F_LOCK != 0 {
                // SAFETY: a live value with a spin lock.
                unsafe { values::store_value_locked(&self.spec, v, value) };
            } else {
                // SAFETY: a live value inside the block.
                unsafe { values::store_value(&self.spec, v, value) };
            }
            values::free_fields(&self.spec, v);
        }
        Ok(())
    }

    fn key_of_value(&self, value: usize) -> Option<KeyOf> {
        if self.percpu {
            return None;
        }
        let off = value.checked_sub(self.value(0, 0) as usize)?;
        let index = u32::try_from(off / self.elem_size).ok()?;
        (off % self.elem_size == 0 && index < self.spec.max_entries).then_some(KeyOf::Index(index))
    }

    fn delete(&self, _key: &[u8]) -> MapResult<()> {
        Err(MapError::INVAL)
    }

    fn get_next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> MapResult<()> {
        let index = key.and_then(|k| k.get(..4)).map_or(u32::MAX, |k| {
            u32::from_ne_bytes(k.try_into().expect("4 bytes"))
        });
        let n = if index >= self.spec.max_entries {
            0
        } else if index == self.spec.max_entries - 1 {
            return Err(MapError::NOENT);
        } else {
            index + 1
        };
        next.copy_from_slice(&n.to_ne_bytes());
        Ok(())
    }

    fn prog_lookup(&self, key: &[u8], cpu: u32) -> Option<*mut u8> {
        let index = self.index(key)?;
        let cpu = if self.percpu {
            cpu as usize % self.ncpus
        } else {
            0
        };
        Some(self.value(index, cpu))
    }

    fn prog_lookup_percpu(&self, key: &[u8], cpu: u32) -> Option<*mut u8> {
        if !self.percpu || cpu as usize >= self.ncpus {
            return None;
        }
        Some(self.value(self.index(key)?, cpu as usize))
    }

    fn prog_update(&self, key: &[u8], value: &[u8], flags: u64, cpu: u32) -> MapResult<()> {
        if !self.percpu {
            return self.update(Some(key), value, flags);
        }
        // A program writes its own CPU slot's value only.
        let bad = flags & !BPF_F_LOCK > BPF_EXIST;
        if bad {
            return Err(MapError::INVAL);
        }
        let index = self.index(key).ok_or(MapError::TOO_BIG)?;
        if flags & BPF_NOEXIST != 0 {
            return Err(MapError::EXIST);
        }
        let cpu = cpu as usize % self.ncpus;
        let n = (self.spec.value_size as usize).min(value.len());
        // SAFETY: a value slot inside the block.
        unsafe { values::store_value(&self.spec, self.value(index, cpu), &value[..n]) };
        Ok(())
    }

    fn slabs(&self) -> Vec<Slab> {
        let copies = if self.percpu { self.ncpus } else { 1 };
        vec![Slab {
            base: self.value(0, 0) as usize,
            count: self.spec.max_entries as usize * copies,
            stride: self.elem_size,
            value_off: 0,
            value_len: self.spec.value_size as usize,
            writable: true,
        }]
    }

    fn native(&self) -> NativeLayout {
        NativeLayout {
            values: self.value(0, 0) as usize,
            elem_size: self.elem_size as u32,
            cpu_stride: self.cpu_stride() as u64,
        }
    }

    fn store(&self) -> Option<&Store> {
        Some(&self.store)
    }

    fn elements(&self) -> Option<usize> {
        Some(self.spec.max_entries as usize)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
