//! Maps with Rust key and value types, for generated Rust skeletons: the
//! types' sizes are checked against the map's once, then keys and values
//! go in and out as plain bytes (the types are `#[repr(C)]` plain data
//! generated from the program's BTF).

use super::object::HostError;
use crate::maps::{errno, Map, MapError};
use std::marker::PhantomData;
use std::sync::Arc;

/// Plain data: any bit pattern of its size is a value (integers, arrays
/// and `#[repr(C)]` structs of them, as skeletons generate).
///
/// # Safety
/// Implementors must have no padding-sensitive invariants, references or
/// niches: every byte pattern must be valid.
pub unsafe trait Plain: Copy + 'static {}

macro_rules! plain {
    ($($t:ty),*) => { $(
        // SAFETY: integers and floats accept every bit pattern.
        unsafe impl Plain for $t {}
    )* };
}
plain!(u8, u16, u32, u64, u128, i8, i16, i32, i64, i128, f32, f64);
// SAFETY: arrays of plain data are plain.
unsafe impl<T: Plain, const N: usize> Plain for [T; N] {}

fn bytes<T: Plain>(v: &T) -> &[u8] {
    // SAFETY: `T` is plain data of `size_of::<T>()` bytes.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }
}

/// A map read and written with key type `K` and value type `V` (per-CPU
/// maps: one `V` per CPU slot, each 8-byte aligned in the map).
pub struct TypedMap<K, V> {
    map: Arc<Map>,
    _types: PhantomData<fn(K) -> V>,
}

impl<K: Plain, V: Plain> TypedMap<K, V> {
    /// `map` with the types: their sizes must be the map's.
    pub fn new(map: Arc<Map>) -> Result<TypedMap<K, V>, HostError> {
        let s = map.spec();
        if size_of::<K>() != s.key_size as usize || size_of::<V>() != s.value_size as usize {
            return Err(HostError::new(
                errno::EINVAL,
                format!(
                    "map {}: key {} and value {} bytes, not {} and {}",
                    map.name(),
                    s.key_size,
                    s.value_size,
                    size_of::<K>(),
                    size_of::<V>()
                ),
            ));
        }
        Ok(TypedMap {
            map,
            _types: PhantomData,
        })
    }

    pub fn map(&self) -> &Arc<Map> {
        &self.map
    }

    fn slot(&self) -> usize {
        crate::maps::round8(self.map.spec().value_size)
    }

    /// The value of `key` (per-CPU maps: CPU slot 0's), `None` when absent.
    pub fn get(&self, key: &K) -> Result<Option<V>, HostError> {
        Ok(self.get_percpu(key)?.and_then(|v| v.into_iter().next()))
    }

    /// Every CPU slot's value of `key` (one for other maps).
    pub fn get_percpu(&self, key: &K) -> Result<Option<Vec<V>>, HostError> {
        let mut buf = vec![0u8; self.map.user_value_size()];
        match self.map.lookup(bytes(key), &mut buf) {
            Ok(()) => {}
            Err(e) if e.code() == errno::ENOENT => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let step = if self.map.map_type().is_percpu() {
            self.slot()
        } else {
            size_of::<V>()
        };
        Ok(Some(
            buf.chunks(step.max(1))
                .filter(|c| c.len() >= size_of::<V>())
                // SAFETY: each chunk holds a `V` (plain data, read unaligned).
                .map(|c| unsafe { std::ptr::read_unaligned(c.as_ptr().cast::<V>()) })
                .collect(),
        ))
    }

    /// Create or replace (`flags`: `BPF_ANY`, `BPF_NOEXIST`, `BPF_EXIST`);
    /// per-CPU maps get `value` in every CPU slot.
    pub fn set(&self, key: &K, value: &V, flags: u64) -> Result<(), HostError> {
        let mut buf = vec![0u8; self.map.user_value_size()];
        let step = if self.map.map_type().is_percpu() {
            self.slot()
        } else {
            size_of::<V>()
        };
        for c in buf.chunks_mut(step.max(1)) {
            let n = size_of::<V>().min(c.len());
            c[..n].copy_from_slice(&bytes(value)[..n]);
        }
        Ok(self.map.update(bytes(key), &buf, flags)?)
    }

    pub fn remove(&self, key: &K) -> Result<(), HostError> {
        Ok(self.map.delete(bytes(key))?)
    }

    /// Every key, in the map's order.
    pub fn keys(&self) -> Result<Vec<K>, HostError> {
        let keys = self.map.keys().map_err(|e: MapError| HostError::from(e))?;
        Ok(keys
            .iter()
            .filter(|k| k.len() == size_of::<K>())
            // SAFETY: a key of `K`'s size (plain data).
            .map(|k| unsafe { std::ptr::read_unaligned(k.as_ptr().cast::<K>()) })
            .collect())
    }
}
