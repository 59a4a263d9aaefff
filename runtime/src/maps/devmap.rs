//! `BPF_MAP_TYPE_DEVMAP` and `BPF_MAP_TYPE_DEVMAP_HASH`: redirect targets
//! for `bpf_redirect_map`, each a port of [`crate::ports`] named by its
//! ifindex. The value is `struct bpf_devmap_val` cut to `value_size`: 4
//! bytes (ifindex) or 8 (ifindex, then the id of a program to run on
//! redirected packets, which is always 0 here: attaching programs to
//! entries is refused with `EINVAL`).
//!
//! DEVMAP is an array of `max_entries` 8-byte slots, a zero ifindex meaning
//! empty. DEVMAP_HASH keys are any u32 (conventionally the ifindex itself);
//! it is a chained table of `roundup_pow_of_two(max_entries)` buckets picked
//! by `key & (buckets - 1)` with the newest element first in its bucket, so
//! `get_next_key` walks elements in exactly the kernel's order. Writers
//! serialise on one lock in the block (as the kernel's `index_lock`);
//! program lookups take no lock, following chains that end in a "nulls"
//! marker naming their bucket, and start over if an element they followed
//! was recycled into another bucket meanwhile.
//!
//! Both live in a storage block and can be pinned. The map's flags include
//! `BPF_F_RDONLY_PROG` (programs read entries, never write them), which
//! the kernel adds to every device map.

use super::error::{errno, MapError, MapResult};
use super::flags::{BPF_EXIST, BPF_F_RDONLY_PROG, BPF_F_WRONLY_PROG, BPF_NOEXIST};
use super::lock::SpinLock;
use super::store::{Store, HEADER_SIZE};
use super::{slots, MapImpl, MapSpec, MapType, Slab};
use crate::ports::{self, PortWatcher};
use std::any::Any;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// Top bit of a chain link: a nulls marker, the rest its bucket.
const NULLS: u32 = 1 << 31;
/// DEVMAP_HASH element: next (u32), key (u32), value (u64), free link.
const ELEM: usize = 24;
const CTRL_LOCK: usize = 0;
const CTRL_ITEMS: usize = 4;
const CTRL_FREE: usize = 8;
const CTRL_SIZE: usize = 64;

/// The definition the map reports: the kernel adds `BPF_F_RDONLY_PROG`.
pub fn effective_spec(spec: MapSpec) -> MapSpec {
    MapSpec {
        flags: spec.flags | BPF_F_RDONLY_PROG,
        ..spec
    }
}

#[derive(Clone, Copy, Debug)]
struct HashLayout {
    n_buckets: u32,
    n_elems: u32,
    ctrl: usize,
    buckets: usize,
    elems: usize,
}

#[derive(Clone, Copy, Debug)]
enum Layout {
    Array { slots: usize },
    Hash(HashLayout),
}

fn layout(spec: &MapSpec) -> MapResult<(Layout, usize)> {
    let name = &spec.name;
    if spec.max_entries == 0 || spec.key_size != 4 || !matches!(spec.value_size, 4 | 8) {
        return Err(MapError::invalid(format!(
            "map {name}: a {} map needs key_size 4, value_size 4 or 8 and non-zero max_entries (has {}, {}, {})",
            spec.map_type, spec.key_size, spec.value_size, spec.max_entries
        )));
    }
    if spec.flags & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG) != 0 {
        return Err(MapError::invalid(format!(
            "map {name}: a {} map takes no BPF_F_RDONLY_PROG or BPF_F_WRONLY_PROG",
            spec.map_type
        )));
    }
    let too_big = || MapError::with_reason(errno::ENOMEM, format!("map {name}: too large"));
    if spec.map_type == MapType::Devmap {
        let slots = HEADER_SIZE;
        let end = (spec.max_entries as usize)
            .checked_mul(8)
            .and_then(|b| b.checked_add(slots))
            .ok_or_else(too_big)?;
        return Ok((Layout::Array { slots }, end - HEADER_SIZE));
    }
    if spec.max_entries > 1 << 31 {
        return Err(MapError::invalid(format!(
            "map {name}: max_entries {} is more than 2^31",
            spec.max_entries
        )));
    }
    let n_buckets = spec.max_entries.next_power_of_two();
    // One spare: an update takes its new element before freeing the old.
    let n_elems = spec.max_entries + 1;
    let ctrl = HEADER_SIZE;
    let buckets = ctrl + CTRL_SIZE;
    let elems = (buckets + n_buckets as usize * 4).next_multiple_of(64);
    let end = (n_elems as usize)
        .checked_mul(ELEM)
        .and_then(|b| b.checked_add(elems))
        .ok_or_else(too_big)?;
    Ok((
        Layout::Hash(HashLayout {
            n_buckets,
            n_elems,
            ctrl,
            buckets,
            elems,
        }),
        end - HEADER_SIZE,
    ))
}

/// A `struct bpf_devmap_val` as one word: ifindex first, program id second.
fn pack(ifindex: u32, prog_id: u32) -> u64 {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&ifindex.to_ne_bytes());
    b[4..].copy_from_slice(&prog_id.to_ne_bytes());
    u64::from_ne_bytes(b)
}

fn ifindex_of(v: u64) -> u32 {
    u32::from_ne_bytes(v.to_ne_bytes()[..4].try_into().expect("4 bytes"))
}

struct Inner {
    store: Store,
    spec: MapSpec,
    l: Layout,
}

pub struct DevMap {
    inner: Arc<Inner>,
}

impl DevMap {
    pub fn create(spec: &MapSpec, dir: Option<&Path>) -> MapResult<DevMap> {
        let (l, body) = layout(spec)?;
        let store = Store::create(spec, 1, body, dir)?;
        let map = DevMap::new(store, spec, l);
        if let Layout::Hash(h) = l {
            let inner = &map.inner;
            for b in 0..h.n_buckets {
                inner.bucket(b).store(NULLS | b, Ordering::Relaxed);
            }
            for e in (0..h.n_elems).rev() {
                inner.free_next(e).store(
                    inner.ctrl(CTRL_FREE).load(Ordering::Relaxed),
                    Ordering::Relaxed,
                );
                inner.ctrl(CTRL_FREE).store(e + 1, Ordering::Relaxed);
            }
        }
        map.inner.store.mark_ready();
        Ok(map)
    }

    pub fn attach(store: Store, spec: &MapSpec) -> MapResult<DevMap> {
        let (l, body) = layout(spec)?;
        if store.body_len() < body {
            return Err(MapError::invalid(format!(
                "pinned device map {} is shorter than its definition",
                spec.name
            )));
        }
        Ok(DevMap::new(store, spec, l))
    }

    fn new(store: Store, spec: &MapSpec, l: Layout) -> DevMap {
        let inner = Arc::new(Inner {
            store,
            spec: spec.clone(),
            l,
        });
        let weak = Arc::downgrade(&inner);
        ports::watch(weak);
        DevMap { inner }
    }

    /// `bpf_redirect_map`'s target: the ifindex of the entry `key`.
    pub fn redirect_target(&self, key: u32) -> Option<u32> {
        self.inner.find_value(key).map(ifindex_of)
    }
}

/// The redirect target of entry `key` of a device map (`None` for another
/// map type or an empty entry).
pub fn redirect_target(map: &super::Map, key: u32) -> Option<u32> {
    map.imp()
        .as_any()
        .downcast_ref::<DevMap>()?
        .redirect_target(key)
}

impl Inner {
    fn word(&self, off: usize) -> &AtomicU32 {
        // SAFETY: a 4-aligned offset of this layout inside the block, which
        // lives as long as `self`.
        unsafe { AtomicU32::from_ptr(self.store.shm().at(off) as *mut u32) }
    }

    fn dword(&self, off: usize) -> &AtomicU64 {
        // SAFETY: an 8-aligned offset of this layout inside the block.
        unsafe { AtomicU64::from_ptr(self.store.shm().at(off) as *mut u64) }
    }

    fn hl(&self) -> HashLayout {
        match self.l {
            Layout::Hash(h) => h,
            Layout::Array { .. } => unreachable!("hash layout of an array device map"),
        }
    }

    fn ctrl(&self, off: usize) -> &AtomicU32 {
        self.word(self.hl().ctrl + off)
    }

    fn bucket(&self, b: u32) -> &AtomicU32 {
        self.word(self.hl().buckets + b as usize * 4)
    }

    fn elem_off(&self, e: u32) -> usize {
        self.hl().elems + e as usize * ELEM
    }

    fn next(&self, e: u32) -> &AtomicU32 {
        self.word(self.elem_off(e))
    }

    fn key(&self, e: u32) -> &AtomicU32 {
        self.word(self.elem_off(e) + 4)
    }

    fn val(&self, e: u32) -> &AtomicU64 {
        self.dword(self.elem_off(e) + 8)
    }

    fn free_next(&self, e: u32) -> &AtomicU32 {
        self.word(self.elem_off(e) + 16)
    }

    fn slot(&self, i: u32) -> &AtomicU64 {
        match self.l {
            Layout::Array { slots } => self.dword(slots + i as usize * 8),
            Layout::Hash(_) => unreachable!("slot of a hash device map"),
        }
    }

    fn is_hash(&self) -> bool {
        matches!(self.l, Layout::Hash(_))
    }

    fn bucket_of(&self, key: u32) -> u32 {
        key & (self.hl().n_buckets - 1)
    }

    /// The element holding `key`, without locks (see the module docs).
    fn find_elem(&self, key: u32) -> Option<u32> {
        let b = self.bucket_of(key);
        loop {
            let mut link = self.bucket(b).load(Ordering::Acquire);
            while link & NULLS == 0 {
                let e = link - 1;
                if self.key(e).load(Ordering::Acquire) == key {
                    return Some(e);
                }
                link = self.next(e).load(Ordering::Acquire);
            }
            if link == NULLS | b {
                return None;
            }
        }
    }

    /// The packed value of entry `key`, if there is one.
    fn find_value(&self, key: u32) -> Option<u64> {
        if self.is_hash() {
            let e = self.find_elem(key)?;
            Some(self.val(e).load(Ordering::Acquire))
        } else {
            if key >= self.spec.max_entries {
                return None;
            }
            let v = self.slot(key).load(Ordering::Acquire);
            (ifindex_of(v) != 0).then_some(v)
        }
    }

    fn value_ptr(&self, key: u32) -> Option<*mut u8> {
        if self.is_hash() {
            let e = self.find_elem(key)?;
            Some(self.store.shm().at(self.elem_off(e) + 8))
        } else {
            self.find_value(key)?;
            Some(self.slot(key).as_ptr() as *mut u8)
        }
    }

    fn lock(&self) -> super::lock::LockGuard<'_> {
        SpinLock::new(self.ctrl(CTRL_LOCK)).lock()
    }

    /// With the lock held: the element of `key` and the link pointing to it.
    fn find_locked(&self, key: u32) -> Option<(u32, &AtomicU32)> {
        let mut prev = self.bucket(self.bucket_of(key));
        let mut link = prev.load(Ordering::Acquire);
        while link & NULLS == 0 {
            let e = link - 1;
            if self.key(e).load(Ordering::Relaxed) == key {
                return Some((e, prev));
            }
            prev = self.next(e);
            link = prev.load(Ordering::Acquire);
        }
        None
    }

    fn pop_free(&self) -> Option<u32> {
        let head = self.ctrl(CTRL_FREE);
        let link = head.load(Ordering::Relaxed);
        if link == 0 {
            return None;
        }
        head.store(
            self.free_next(link - 1).load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        Some(link - 1)
    }

    fn push_free(&self, e: u32) {
        let head = self.ctrl(CTRL_FREE);
        self.free_next(e)
            .store(head.load(Ordering::Relaxed), Ordering::Relaxed);
        head.store(e + 1, Ordering::Relaxed);
    }

    /// With the lock held: take `e` out of its chain (`prev` links to it).
    fn unlink(&self, prev: &AtomicU32, e: u32) {
        prev.store(self.next(e).load(Ordering::Acquire), Ordering::Release);
        self.ctrl(CTRL_ITEMS).fetch_sub(1, Ordering::Relaxed);
        self.push_free(e);
    }

    /// Parse a user value: the ifindex, checked against the ports; a
    /// program descriptor is refused.
    fn parse_value(&self, value: &[u8]) -> MapResult<u32> {
        let ifindex = slots::index_of(value);
        let prog_fd = value
            .get(4..8)
            .map_or(0, |b| i32::from_ne_bytes(b.try_into().expect("4 bytes")));
        if ifindex == 0 {
            // Only an array entry can be emptied this way (checked by callers).
            return if prog_fd > 0 {
                Err(MapError::with_reason(
                    errno::EINVAL,
                    "a program descriptor needs a non-zero ifindex",
                ))
            } else {
                Ok(0)
            };
        }
        if !ports::exists(ifindex) {
            return Err(MapError::with_reason(
                errno::EINVAL,
                format!("no port has ifindex {ifindex}"),
            ));
        }
        if prog_fd > 0 {
            return Err(MapError::with_reason(
                errno::EINVAL,
                "programs on device map entries are not supported by the runtime",
            ));
        }
        Ok(ifindex)
    }

    fn hash_update(&self, key: u32, value: &[u8], flags: u64) -> MapResult<()> {
        if flags > BPF_EXIST || slots::index_of(value) == 0 {
            return Err(MapError::INVAL);
        }
        let g = self.lock();
        let old = self.find_locked(key);
        if old.is_some() && flags & BPF_NOEXIST != 0 {
            return Err(MapError::EXIST);
        }
        let ifindex = self.parse_value(value)?;
        let items = self.ctrl(CTRL_ITEMS);
        if old.is_none() && items.load(Ordering::Relaxed) >= self.spec.max_entries {
            return Err(MapError::TOO_BIG);
        }
        let new = self.pop_free().ok_or(MapError::NOMEM)?;
        self.key(new).store(key, Ordering::Relaxed);
        self.val(new).store(pack(ifindex, 0), Ordering::Relaxed);
        // As the kernel: the old element leaves, the new one goes in first.
        if let Some((e, prev)) = old {
            self.unlink(prev, e);
        }
        let head = self.bucket(self.bucket_of(key));
        self.next(new)
            .store(head.load(Ordering::Relaxed), Ordering::Relaxed);
        head.store(new + 1, Ordering::Release);
        items.fetch_add(1, Ordering::Relaxed);
        drop(g);
        Ok(())
    }

    fn array_update(&self, key: u32, value: &[u8], flags: u64) -> MapResult<()> {
        if flags > BPF_EXIST {
            return Err(MapError::INVAL);
        }
        if key >= self.spec.max_entries {
            return Err(MapError::TOO_BIG);
        }
        if flags == BPF_NOEXIST {
            return Err(MapError::EXIST);
        }
        let ifindex = self.parse_value(value)?;
        self.slot(key).store(pack(ifindex, 0), Ordering::Release);
        Ok(())
    }
}

impl PortWatcher for Inner {
    fn port_removed(&self, ifindex: u32) {
        if !self.is_hash() {
            for i in 0..self.spec.max_entries {
                let s = self.slot(i);
                let v = s.load(Ordering::Acquire);
                if ifindex_of(v) == ifindex {
                    let _ = s.compare_exchange(v, 0, Ordering::AcqRel, Ordering::Relaxed);
                }
            }
            return;
        }
        let _g = self.lock();
        for b in 0..self.hl().n_buckets {
            let mut prev = self.bucket(b);
            let mut link = prev.load(Ordering::Acquire);
            while link & NULLS == 0 {
                let e = link - 1;
                let next = self.next(e).load(Ordering::Acquire);
                if ifindex_of(self.val(e).load(Ordering::Relaxed)) == ifindex {
                    self.unlink(prev, e);
                } else {
                    prev = self.next(e);
                }
                link = next;
            }
        }
    }
}

impl MapImpl for DevMap {
    fn lookup(&self, key: Option<&[u8]>, value: &mut [u8], _flags: u64) -> MapResult<()> {
        let key = slots::index_of(key.unwrap_or(&[]));
        let v = self.inner.find_value(key).ok_or(MapError::NOENT)?;
        let n = value.len().min(8);
        value[..n].copy_from_slice(&v.to_ne_bytes()[..n]);
        Ok(())
    }

    fn update(&self, key: Option<&[u8]>, value: &[u8], flags: u64) -> MapResult<()> {
        let key = slots::index_of(key.unwrap_or(&[]));
        if self.inner.is_hash() {
            self.inner.hash_update(key, value, flags)
        } else {
            self.inner.array_update(key, value, flags)
        }
    }

    fn delete(&self, key: &[u8]) -> MapResult<()> {
        let key = slots::index_of(key);
        let m = &self.inner;
        if !m.is_hash() {
            if key >= m.spec.max_entries {
                return Err(MapError::INVAL);
            }
            // Emptying an empty entry succeeds, as in the kernel.
            m.slot(key).store(0, Ordering::Release);
            return Ok(());
        }
        let _g = m.lock();
        let (e, prev) = m.find_locked(key).ok_or(MapError::NOENT)?;
        m.unlink(prev, e);
        Ok(())
    }

    fn get_next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> MapResult<()> {
        let m = &self.inner;
        if !m.is_hash() {
            return slots::array_next_key(m.spec.max_entries, key, next);
        }
        let _g = m.lock();
        let mut start = 0;
        if let Some(k) = key.map(slots::index_of) {
            if let Some((e, _)) = m.find_locked(k) {
                let link = m.next(e).load(Ordering::Acquire);
                if link & NULLS == 0 {
                    next[..4]
                        .copy_from_slice(&m.key(link - 1).load(Ordering::Relaxed).to_ne_bytes());
                    return Ok(());
                }
                start = m.bucket_of(k) + 1;
            }
        }
        for b in start..m.hl().n_buckets {
            let link = m.bucket(b).load(Ordering::Acquire);
            if link & NULLS == 0 {
                next[..4].copy_from_slice(&m.key(link - 1).load(Ordering::Relaxed).to_ne_bytes());
                return Ok(());
            }
        }
        Err(MapError::NOENT)
    }

    fn prog_lookup(&self, key: &[u8], _cpu: u32) -> Option<*mut u8> {
        self.inner.value_ptr(slots::index_of(key))
    }

    fn prog_update(&self, _key: &[u8], _value: &[u8], _flags: u64, _cpu: u32) -> MapResult<()> {
        // Device maps are filled from user space only (the kernel's
        // verifier refuses updates from most programs; entries hold devices).
        Err(MapError::OPNOTSUPP)
    }

    fn prog_delete(&self, _key: &[u8]) -> MapResult<()> {
        Err(MapError::OPNOTSUPP)
    }

    fn slabs(&self) -> Vec<Slab> {
        let m = &self.inner;
        let (base, count, stride, value_off) = match m.l {
            Layout::Array { slots } => (slots, m.spec.max_entries as usize, 8, 0),
            Layout::Hash(h) => (h.elems, h.n_elems as usize, ELEM, 8),
        };
        vec![Slab {
            base: m.store.shm().at(base) as usize,
            count,
            stride,
            value_off,
            value_len: m.spec.value_size as usize,
            writable: false,
        }]
    }

    fn store(&self) -> Option<&Store> {
        Some(&self.inner.store)
    }

    fn elements(&self) -> Option<usize> {
        let m = &self.inner;
        if m.is_hash() {
            Some(m.ctrl(CTRL_ITEMS).load(Ordering::Relaxed) as usize)
        } else {
            Some(
                (0..m.spec.max_entries)
                    .filter(|&i| ifindex_of(m.slot(i).load(Ordering::Relaxed)) != 0)
                    .count(),
            )
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
#[path = "devmap_tests.rs"]
mod tests;
