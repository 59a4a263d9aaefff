//! A fixed array of slots, each empty or holding one reference (`Arc`) to a
//! process-local object: the storage of fd arrays (array of maps, cgroup
//! array). A slot is one pointer-sized word, so compiled code can read it;
//! replaced and cleared references are released after a grace period
//! ([`rcu`](super::rcu)), since a running program may still use them.

use super::error::{errno, MapError, MapResult};
use super::flags::{BPF_F_RDONLY_PROG, BPF_F_WRONLY_PROG};
use super::{rcu, MapSpec};
use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Arc;

/// The definition checks of the kernel's fd arrays (cgroup array, array of
/// maps): an array's rules, 4-byte values (the descriptor), no
/// program-side access flags.
pub fn check_fd_array(spec: &MapSpec) -> MapResult<()> {
    let name = &spec.name;
    if spec.max_entries == 0 || spec.key_size != 4 || spec.value_size != 4 {
        return Err(MapError::invalid(format!(
            "map {name}: a {} map needs key_size 4, value_size 4 and non-zero max_entries (has {}, {}, {})",
            spec.map_type, spec.key_size, spec.value_size, spec.max_entries
        )));
    }
    if spec.flags & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG) != 0 {
        return Err(MapError::invalid(format!(
            "map {name}: a {} map takes no BPF_F_RDONLY_PROG or BPF_F_WRONLY_PROG",
            spec.map_type
        )));
    }
    Ok(())
}

/// [`ArcSlots::new`] with the kernel's error when the memory cannot be had.
pub fn alloc_slots<T: Send + Sync + 'static>(spec: &MapSpec) -> MapResult<ArcSlots<T>> {
    ArcSlots::new(spec.max_entries).ok_or_else(|| {
        MapError::with_reason(
            errno::ENOMEM,
            format!(
                "map {}: cannot allocate {} slots",
                spec.name, spec.max_entries
            ),
        )
    })
}

/// The array index in a 4-byte key.
pub fn index_of(key: &[u8]) -> u32 {
    key.get(..4)
        .and_then(|k| k.try_into().ok())
        .map_or(u32::MAX, u32::from_ne_bytes)
}

/// `get_next_key` of every array type: the index after `key`, the first for
/// no key or one out of range, `ENOENT` after the last.
pub fn array_next_key(max_entries: u32, key: Option<&[u8]>, next: &mut [u8]) -> MapResult<()> {
    let index = key.map_or(u32::MAX, index_of);
    let n = if index >= max_entries {
        0
    } else if index == max_entries - 1 {
        return Err(MapError::NOENT);
    } else {
        index + 1
    };
    next[..4].copy_from_slice(&n.to_ne_bytes());
    Ok(())
}

pub struct ArcSlots<T: Send + Sync + 'static> {
    slots: NonNull<AtomicPtr<T>>,
    len: usize,
}

// SAFETY: the slots hold `Arc<T>` references of `Send + Sync` objects and
// are only accessed through atomics.
unsafe impl<T: Send + Sync + 'static> Send for ArcSlots<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync + 'static> Sync for ArcSlots<T> {}

impl<T: Send + Sync + 'static> ArcSlots<T> {
    /// `len` empty slots, or `None` when the memory cannot be had.
    pub fn new(len: u32) -> Option<ArcSlots<T>> {
        let len = (len as usize).max(1);
        let layout = Layout::array::<AtomicPtr<T>>(len).ok()?;
        // SAFETY: the layout has a non-zero size; a null pointer (failure)
        // is turned into `None`. Zeroed memory is an array of null pointers.
        let p = unsafe { alloc_zeroed(layout) } as *mut AtomicPtr<T>;
        Some(ArcSlots {
            slots: NonNull::new(p)?,
            len,
        })
    }

    fn slot(&self, i: u32) -> Option<&AtomicPtr<T>> {
        // SAFETY: `i` is checked against the allocation's length.
        ((i as usize) < self.len).then(|| unsafe { &*self.slots.as_ptr().add(i as usize) })
    }

    /// The object in slot `i`, as a raw pointer that stays valid until the
    /// caller's read-side section ([`rcu::read_lock`]) ends.
    pub fn get_raw(&self, i: u32) -> Option<*const T> {
        let p = self.slot(i)?.load(Ordering::Acquire);
        (!p.is_null()).then_some(p as *const T)
    }

    /// A new reference to the object in slot `i`.
    pub fn get(&self, i: u32) -> Option<Arc<T>> {
        let _section = rcu::read_lock();
        let p = self.get_raw(i)?;
        // SAFETY: `p` came from `Arc::into_raw` and is not released before
        // the section ends (replaced references are retired through rcu).
        unsafe {
            Arc::increment_strong_count(p);
            Some(Arc::from_raw(p))
        }
    }

    /// Put `new` in slot `i` (or empty it): `Some(true)` if it held
    /// something, `None` for an index out of range.
    pub fn replace(&self, i: u32, new: Option<Arc<T>>) -> Option<bool> {
        let slot = self.slot(i)?;
        let raw = new.map_or(std::ptr::null_mut(), |a| Arc::into_raw(a) as *mut T);
        let old = slot.swap(raw, Ordering::AcqRel);
        if old.is_null() {
            return Some(false);
        }
        // SAFETY: `old` came from `Arc::into_raw` and the slot no longer has it.
        let old = unsafe { Arc::from_raw(old) };
        rcu::retire(old);
        Some(true)
    }

    /// The slot array: `len` pointers, each null or the object's address.
    pub fn base(&self) -> *mut u8 {
        self.slots.as_ptr() as *mut u8
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots in use.
    pub fn count(&self) -> usize {
        (0..self.len as u32)
            .filter(|&i| self.get_raw(i).is_some())
            .count()
    }
}

impl<T: Send + Sync + 'static> Drop for ArcSlots<T> {
    fn drop(&mut self) {
        for i in 0..self.len as u32 {
            let _ = self.replace(i, None);
        }
        let layout = Layout::array::<AtomicPtr<T>>(self.len).expect("layout made in new");
        // SAFETY: allocated in `new` with this layout; no slot is used after.
        unsafe { dealloc(self.slots.as_ptr() as *mut u8, layout) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_and_releases_references() {
        let s: ArcSlots<String> = ArcSlots::new(3).unwrap();
        let a = Arc::new("a".to_string());
        assert_eq!(s.replace(1, Some(a.clone())), Some(false));
        assert_eq!(Arc::strong_count(&a), 2);
        assert_eq!(s.get(1).as_deref().map(String::as_str), Some("a"));
        assert_eq!(s.get_raw(1), Some(Arc::as_ptr(&a)));
        assert_eq!(s.count(), 1);
        assert_eq!(s.replace(3, None), None);
        assert_eq!(s.replace(1, None), Some(true));
        assert_eq!(s.replace(1, None), Some(false));
        for _ in 0..30_000 {
            if Arc::strong_count(&a) == 1 {
                break;
            }
            rcu::collect();
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(Arc::strong_count(&a), 1);
        s.replace(0, Some(a.clone())).unwrap();
        drop(s);
        rcu::collect();
        for _ in 0..30_000 {
            if Arc::strong_count(&a) == 1 {
                break;
            }
            rcu::collect();
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(Arc::strong_count(&a), 1);
    }
}
