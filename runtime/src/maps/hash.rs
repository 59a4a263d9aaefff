//! `BPF_MAP_TYPE_HASH`, `PERCPU_HASH`, `LRU_HASH` and `LRU_PERCPU_HASH`.
//!
//! Layout after the header (all links are element numbers + 1, so 0 is
//! "none" and zeroed memory is an empty table):
//! - control words: the live-element count, the hash seed, the LRU clock hand;
//! - [`STRIPES`] free lists, each a lock word and the head of a stack of
//!   free elements (linked through `free_next`);
//! - `n_buckets` (a power of two at least `max_entries`) buckets, each a
//!   lock word, the head of a chain and a sequence word (odd while a writer
//!   changes the chain);
//! - the elements, preallocated: `max_entries` plus [`EXTRA`] spares that
//!   let an update replace an element of a full map.
//!
//! Lookups take no lock: chains are followed with acquire loads, and a
//! chain ends in a "nulls" marker naming its bucket, so a reader that
//! followed an element which was deleted and reused in another bucket in
//! the meantime notices it and starts over, as the kernel's `hlist_nulls`
//! readers do. A freed element's link is a marker of no bucket, so a reader
//! standing on it starts over too. A replacement goes in at the head and
//! the old element is unlinked after, as in the kernel (so chains keep the
//! kernel's order). A reader that misses checks the bucket's sequence word
//! and walks again if a writer changed the chain meanwhile (it may have
//! passed the head before the replacement went in, or a reused element may
//! have led it past the key), so a miss is never false; the kernel's
//! preallocated hash maps can miss a key that is being replaced, rarely
//! (measured through `bpf()`: 0 to 22 misses in 1 million lookups racing
//! two writers).
//! Writers take the bucket's lock; updates of keys in different
//! buckets run in parallel. A replaced or deleted element goes back to a free
//! list at once and stays valid memory (as in the kernel's preallocated
//! maps, a program holding a pointer to it may see it reused).
//!
//! The LRU types evict with a clock: a lookup sets an element's reference
//! bit, and an insertion into a full map sweeps the clock hand over the
//! elements, clearing set bits and evicting the first element whose bit
//! was already clear. With `BPF_F_NO_COMMON_LRU` each CPU slot owns an equal
//! share of the elements and evicts only among its own.

use super::error::{errno, MapError, MapResult};
use super::flags::{
    BPF_EXIST, BPF_F_LOCK, BPF_F_NO_COMMON_LRU, BPF_F_NO_PREALLOC, BPF_F_ZERO_SEED, BPF_NOEXIST,
};
use super::hashfn;
use super::lock::{current_tid, SpinLock};
use super::store::{check_fits_memory, Store, HEADER_SIZE};
use super::{batch, round8, values, MapImpl, MapSpec, MapType, Slab};
use std::any::Any;
use std::path::Path;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicU8, Ordering};

/// Number of free lists (threads pick one by CPU slot or thread id).
const STRIPES: usize = 16;
/// Spare elements beyond `max_entries`, for replacing updates.
const EXTRA: u32 = 64;
/// `PCPU_MIN_UNIT_SIZE`.
const PERCPU_VALUE_MAX: usize = 32 * 1024;
/// The kernel refuses `key_size + value_size >= KMALLOC_MAX_SIZE -
/// sizeof(struct htab_elem)`: 4 MiB (x86-64, 4 KiB pages) less its 48-byte
/// element header.
const KMALLOC_MAX_SIZE: u64 = 4 << 20;
const KERNEL_HTAB_ELEM: u64 = 48;
/// A bucket: lock word, chain head, sequence word (one cache line access
/// for a lookup), padding.
const BUCKET: usize = 16;
/// Element header: next, hash, free_next, state.
const ELEM_HDR: usize = 16;
/// Top bit of a link: a nulls marker, the rest its bucket number.
const NULLS: u32 = 1 << 31;
/// The link of a freed element: a nulls marker of no bucket.
const RECYCLED: u32 = u32::MAX;
/// `state` bits.
const LIVE: u32 = 1;
const REF: u32 = 2;

/// Byte offsets of the control words, free lists and buckets.
const CTRL_COUNT: usize = 0;
const CTRL_SEED: usize = 4;
const CTRL_HAND: usize = 8;
const CTRL_SIZE: usize = 64;

#[derive(Clone, Copy, Debug)]
struct Layout {
    n_buckets: u32,
    n_elems: u32,
    elem_stride: usize,
    key_off: usize,
    value_off: usize,
    /// Offsets from the start of the block.
    ctrl: usize,
    free: usize,
    buckets: usize,
    elems: usize,
    total: usize,
}

fn layout(spec: &MapSpec, ncpus: u32) -> MapResult<Layout> {
    let t = spec.map_type;
    let percpu = t.is_percpu();
    let lru = matches!(t, MapType::LruHash | MapType::LruPercpuHash);
    let name = &spec.name;
    if spec.flags & BPF_F_NO_COMMON_LRU != 0 && !lru {
        return Err(MapError::invalid(format!(
            "map {name}: BPF_F_NO_COMMON_LRU is only for LRU maps"
        )));
    }
    if lru && spec.flags & BPF_F_NO_PREALLOC != 0 {
        return Err(MapError::with_reason(
            errno::ENOTSUPP,
            format!("map {name}: LRU maps are always preallocated (BPF_F_NO_PREALLOC)"),
        ));
    }
    if spec.max_entries == 0 || spec.key_size == 0 || spec.value_size == 0 {
        return Err(MapError::invalid(format!(
            "map {name}: a hash map needs non-zero key_size, value_size and max_entries (has {}, {}, {})",
            spec.key_size, spec.value_size, spec.max_entries
        )));
    }
    if spec.key_size as u64 + spec.value_size as u64 >= KMALLOC_MAX_SIZE - KERNEL_HTAB_ELEM {
        return Err(MapError::with_reason(
            errno::E2BIG,
            format!("map {name}: key and value too large"),
        ));
    }
    if percpu && round8(spec.value_size) > PERCPU_VALUE_MAX {
        return Err(MapError::with_reason(
            errno::E2BIG,
            format!("map {name}: per-CPU values are at most {PERCPU_VALUE_MAX} bytes"),
        ));
    }
    if spec.max_entries > 1 << 30 {
        return Err(MapError::with_reason(
            errno::E2BIG,
            format!("map {name}: max_entries {} is too large", spec.max_entries),
        ));
    }
    let n_buckets = spec.max_entries.next_power_of_two();
    // LRU maps evict instead of needing spares for replacement.
    let n_elems = if lru {
        spec.max_entries
    } else {
        spec.max_entries + EXTRA
    };
    let copies = if percpu { ncpus as usize } else { 1 };
    let key_off = ELEM_HDR;
    let value_off = key_off + round8(spec.key_size);
    let elem_stride = value_off + round8(spec.value_size) * copies;
    let ctrl = HEADER_SIZE;
    let free = ctrl + CTRL_SIZE;
    let buckets = free + STRIPES * 8;
    let elems = (buckets + n_buckets as usize * BUCKET).next_multiple_of(64);
    let total = (n_elems as usize)
        .checked_mul(elem_stride)
        .and_then(|b| b.checked_add(elems))
        .ok_or_else(|| MapError::with_reason(errno::ENOMEM, format!("map {name}: too large")))?;
    Ok(Layout {
        n_buckets,
        n_elems,
        elem_stride,
        key_off,
        value_off,
        ctrl,
        free,
        buckets,
        elems,
        total,
    })
}

/// The effective definition: LRU maps with per-CPU lists round
/// `max_entries` to a multiple of the CPU slots, as the kernel does.
pub fn effective_spec(spec: &MapSpec, ncpus: u32) -> MapSpec {
    let mut s = spec.clone();
    let lru = matches!(spec.map_type, MapType::LruHash | MapType::LruPercpuHash);
    if lru && spec.flags & BPF_F_NO_COMMON_LRU != 0 && ncpus > 0 {
        let up = spec.max_entries.div_ceil(ncpus).saturating_mul(ncpus);
        s.max_entries = if up < spec.max_entries {
            spec.max_entries / ncpus * ncpus
        } else {
            up
        };
    }
    s
}

pub struct HashMap {
    store: Store,
    spec: MapSpec,
    l: Layout,
    ncpus: u32,
    percpu: bool,
    lru: bool,
    /// Per-CPU LRU lists: each CPU slot owns `max_entries / ncpus` elements.
    lru_per_cpu: bool,
}

/// An element number (0-based).
type Elem = u32;

impl HashMap {
    pub fn create(spec: &MapSpec, ncpus: u32, dir: Option<&Path>) -> MapResult<HashMap> {
        let l = layout(spec, ncpus)?;
        check_fits_memory(spec, l.total)?;
        let store = Store::create(spec, ncpus, l.total - HEADER_SIZE, dir)?;
        let map = HashMap::new(store, spec, ncpus, l);
        let seed = if spec.flags & BPF_F_ZERO_SEED != 0 {
            0
        } else {
            random_u32()
        };
        map.ctrl(CTRL_SEED).store(seed, Ordering::Relaxed);
        for b in 0..l.n_buckets {
            map.bucket_head(b).store(NULLS | b, Ordering::Relaxed);
        }
        // Fill the free lists: with per-CPU LRU lists each CPU slot's share
        // goes to its own list; otherwise spread over the stripes.
        for e in (0..l.n_elems).rev() {
            let stripe = map.home_stripe(e);
            map.push_free_unlocked(stripe, e);
        }
        map.store.mark_ready();
        Ok(map)
    }

    pub fn attach(store: Store, spec: &MapSpec, ncpus: u32) -> MapResult<HashMap> {
        let l = layout(spec, ncpus)?;
        if store.body_len() + HEADER_SIZE < l.total {
            return Err(MapError::invalid(format!(
                "pinned hash map {} is shorter than its definition",
                spec.name
            )));
        }
        Ok(HashMap::new(store, spec, ncpus, l))
    }

    fn new(store: Store, spec: &MapSpec, ncpus: u32, l: Layout) -> HashMap {
        let t = spec.map_type;
        let lru = matches!(t, MapType::LruHash | MapType::LruPercpuHash);
        HashMap {
            store,
            spec: spec.clone(),
            l,
            ncpus: ncpus.max(1),
            percpu: t.is_percpu(),
            lru,
            lru_per_cpu: lru && spec.flags & BPF_F_NO_COMMON_LRU != 0,
        }
    }

    // ---- raw layout access ----

    fn word(&self, off: usize) -> &AtomicU32 {
        // SAFETY: `off` is a 4-aligned offset of this layout inside the block,
        // which lives as long as `self`.
        unsafe { AtomicU32::from_ptr(self.store.shm().at(off) as *mut u32) }
    }

    fn ctrl(&self, off: usize) -> &AtomicU32 {
        self.word(self.l.ctrl + off)
    }

    fn free_lock(&self, stripe: usize) -> SpinLock<'_> {
        SpinLock::new(self.word(self.l.free + stripe * 8))
    }

    fn free_head(&self, stripe: usize) -> &AtomicU32 {
        self.word(self.l.free + stripe * 8 + 4)
    }

    fn bucket_lock(&self, b: u32) -> SpinLock<'_> {
        SpinLock::new(self.word(self.l.buckets + b as usize * BUCKET))
    }

    fn bucket_head(&self, b: u32) -> &AtomicU32 {
        self.word(self.l.buckets + b as usize * BUCKET + 4)
    }

    fn seq(&self, b: u32) -> &AtomicU32 {
        self.word(self.l.buckets + b as usize * BUCKET + 8)
    }

    /// Before changing bucket `b`'s chain (its lock held): make its
    /// sequence odd. A writer that died here leaves it odd; the next one
    /// keeps it odd and [`HashMap::chain_write_end`] makes it even again.
    fn chain_write_begin(&self, b: u32) {
        let s = self.seq(b);
        s.store(s.load(Ordering::Relaxed) | 1, Ordering::Relaxed);
        fence(Ordering::Release);
    }

    /// After changing bucket `b`'s chain: an even sequence again.
    fn chain_write_end(&self, b: u32) {
        let s = self.seq(b);
        s.store(s.load(Ordering::Relaxed).wrapping_add(1), Ordering::Release);
    }

    fn elem_off(&self, e: Elem) -> usize {
        self.l.elems + e as usize * self.l.elem_stride
    }

    fn next(&self, e: Elem) -> &AtomicU32 {
        self.word(self.elem_off(e))
    }

    fn hash_of(&self, e: Elem) -> &AtomicU32 {
        self.word(self.elem_off(e) + 4)
    }

    fn free_next(&self, e: Elem) -> &AtomicU32 {
        self.word(self.elem_off(e) + 8)
    }

    fn state(&self, e: Elem) -> &AtomicU32 {
        self.word(self.elem_off(e) + 12)
    }

    fn key_ptr(&self, e: Elem) -> *mut u8 {
        self.store.shm().at(self.elem_off(e) + self.l.key_off)
    }

    /// The value of `e` in CPU slot `cpu` (0 for maps that are not per-CPU).
    fn value_ptr(&self, e: Elem, cpu: u32) -> *mut u8 {
        let slot = if self.percpu {
            (cpu % self.ncpus) as usize * round8(self.spec.value_size)
        } else {
            0
        };
        self.store
            .shm()
            .at(self.elem_off(e) + self.l.value_off + slot)
    }

    /// Whether element `e` holds `key`, compared a word at a time straight
    /// from map memory (atomic loads: a writer may be refilling it).
    fn key_eq(&self, e: Elem, key: &[u8]) -> bool {
        let p = self.key_ptr(e);
        let n = key.len();
        let mut i = 0;
        if (p as usize).is_multiple_of(8) {
            while i + 8 <= n {
                // SAFETY: an aligned word of the element's key field.
                let w =
                    unsafe { AtomicU64::from_ptr(p.add(i) as *mut u64) }.load(Ordering::Relaxed);
                if w != u64::from_ne_bytes(key[i..i + 8].try_into().expect("8 bytes")) {
                    return false;
                }
                i += 8;
            }
            if i + 4 <= n {
                // SAFETY: as above, 4-aligned after whole words.
                let w =
                    unsafe { AtomicU32::from_ptr(p.add(i) as *mut u32) }.load(Ordering::Relaxed);
                if w != u32::from_ne_bytes(key[i..i + 4].try_into().expect("4 bytes")) {
                    return false;
                }
                i += 4;
            }
        }
        while i < n {
            // SAFETY: a byte of the element's key field.
            let b = unsafe { AtomicU8::from_ptr(p.add(i)) }.load(Ordering::Relaxed);
            if b != key[i] {
                return false;
            }
            i += 1;
        }
        true
    }

    fn read_key(&self, e: Elem, out: &mut [u8]) {
        // SAFETY: the key field of an element inside the block.
        unsafe { values::read(self.key_ptr(e), out) };
    }

    fn hash(&self, key: &[u8]) -> u32 {
        hashfn::hash(key, self.ctrl(CTRL_SEED).load(Ordering::Relaxed))
    }

    fn bucket_of(&self, hash: u32) -> u32 {
        hash & (self.l.n_buckets - 1)
    }

    fn count(&self) -> &AtomicU32 {
        self.ctrl(CTRL_COUNT)
    }

    // ---- free lists ----

    /// The stripe an element returns to: its CPU slot's list for per-CPU
    /// LRU lists, else a spread by element number.
    fn home_stripe(&self, e: Elem) -> usize {
        if self.lru_per_cpu {
            let share = (self.spec.max_entries / self.ncpus).max(1);
            ((e / share).min(self.ncpus - 1) as usize) % STRIPES
        } else {
            e as usize % STRIPES
        }
    }

    fn push_free_unlocked(&self, stripe: usize, e: Elem) {
        let head = self.free_head(stripe);
        self.free_next(e)
            .store(head.load(Ordering::Relaxed), Ordering::Relaxed);
        head.store(e + 1, Ordering::Relaxed);
    }

    fn push_free(&self, e: Elem) {
        // A reader still standing on this element (it was unlinked, not yet
        // reused) must not walk on from it: once the element is reused its
        // key changes while its link may still lead down the old chain to
        // that chain's end, and the reader would miss a key that is there.
        // The marker names no bucket, so such a reader starts over.
        self.next(e).store(RECYCLED, Ordering::Release);
        self.state(e).store(0, Ordering::Release);
        if self.spec.timer_off.is_some() && !self.percpu {
            values::free_fields(&self.spec, self.value_ptr(e, 0));
        }
        let stripe = self.home_stripe(e);
        let _g = self.free_lock(stripe).lock();
        self.push_free_unlocked(stripe, e);
    }

    fn pop_stripe(&self, stripe: usize) -> Option<Elem> {
        let _g = self.free_lock(stripe).lock();
        let head = self.free_head(stripe);
        let h = head.load(Ordering::Relaxed);
        if h == 0 {
            return None;
        }
        let e = h - 1;
        head.store(self.free_next(e).load(Ordering::Relaxed), Ordering::Relaxed);
        Some(e)
    }

    /// A free element, from the caller's own stripe first. Per-CPU LRU
    /// lists only use the CPU slot's own stripe.
    fn pop_free(&self, cpu: u32) -> Option<Elem> {
        if self.lru_per_cpu {
            return self.pop_stripe((cpu % self.ncpus) as usize % STRIPES);
        }
        let start = (current_tid() as usize) % STRIPES;
        (0..STRIPES).find_map(|i| self.pop_stripe((start + i) % STRIPES))
    }

    // ---- chains ----

    /// Find `key` without locks. A hit is certain. A miss is certain only
    /// if no writer changed the bucket's chain during the walk (its
    /// sequence word is even and unchanged): an element freed and reused
    /// while the walk stood on it may have led it past the key, and a walk
    /// that retries too often settles it under the bucket's lock.
    fn find(&self, key: &[u8], hash: u32) -> Option<Elem> {
        let b = self.bucket_of(hash);
        let mut misses = 0u32;
        'again: loop {
            let seq = self.seq(b).load(Ordering::Acquire);
            let mut link = self.bucket_head(b).load(Ordering::Acquire);
            let mut steps = 0u32;
            while link & NULLS == 0 {
                let e = link - 1;
                if self.hash_of(e).load(Ordering::Relaxed) == hash && self.key_eq(e, key) {
                    return Some(e);
                }
                // See `fill`: the key read above may be a reuser's.
                fence(Ordering::Acquire);
                link = self.next(e).load(Ordering::Acquire);
                steps += 1;
                if steps > self.l.n_elems {
                    // Only a chain rewritten under our feet can be this long.
                    continue 'again;
                }
            }
            if link & !NULLS != b {
                continue 'again;
            }
            fence(Ordering::Acquire);
            if seq & 1 == 0 && self.seq(b).load(Ordering::Relaxed) == seq {
                return None;
            }
            misses += 1;
            if misses > 64 {
                let _g = self.bucket_lock(b).lock();
                return self.find_locked(key, hash, b).map(|(e, _)| e);
            }
            std::hint::spin_loop();
        }
    }

    /// Find `key` in bucket `b`, whose lock the caller holds: the element and
    /// the link that points at it.
    fn find_locked(&self, key: &[u8], hash: u32, b: u32) -> Option<(Elem, &AtomicU32)> {
        let mut prev = self.bucket_head(b);
        let mut link = prev.load(Ordering::Relaxed);
        while link & NULLS == 0 {
            let e = link - 1;
            if self.hash_of(e).load(Ordering::Relaxed) == hash && self.key_eq(e, key) {
                return Some((e, prev));
            }
            prev = self.next(e);
            link = prev.load(Ordering::Relaxed);
        }
        None
    }

    fn link_head(&self, b: u32, e: Elem) {
        let head = self.bucket_head(b);
        self.next(e)
            .store(head.load(Ordering::Relaxed), Ordering::Relaxed);
        head.store(e + 1, Ordering::Release);
    }

    /// Replace `old` (reached through `prev`) by `new` as the kernel does:
    /// `new` goes in at the head of bucket `b`, then `old` is unlinked, so
    /// the chain keeps the kernel's order. A reader already past the head
    /// and not yet at `old` can miss both; its miss finds the bucket's
    /// sequence changed and it walks again (see `find`).
    fn replace(&self, b: u32, prev: &AtomicU32, old: Elem, new: Elem) {
        self.link_head(b, new);
        // If `old` was first, the link to it is now `new`'s.
        let prev = if std::ptr::eq(prev, self.bucket_head(b)) {
            self.next(new)
        } else {
            prev
        };
        self.unlink(prev, old);
    }

    fn unlink(&self, prev: &AtomicU32, e: Elem) {
        prev.store(self.next(e).load(Ordering::Relaxed), Ordering::Release);
    }

    /// Fill a free element with `key` and `value` (for per-CPU maps: all CPU
    /// slots from a user value, or slot `cpu` with the others zeroed).
    fn fill(&self, e: Elem, key: &[u8], hash: u32, value: &[u8], cpu: Option<u32>) {
        // Pairs with the reader's fence in `find`: a reader that sees the new
        // key also sees the RECYCLED marker stored when the element was freed.
        fence(Ordering::Release);
        // SAFETY: a free element owned by this thread until it is linked.
        unsafe { values::write(self.key_ptr(e), key) };
        self.hash_of(e).store(hash, Ordering::Relaxed);
        self.write_value(e, value, cpu, true);
        self.state(e).store(LIVE, Ordering::Release);
    }

    /// Write a value: all CPU slots of a per-CPU map from a user buffer
    /// (`cpu` None), or one slot from a program (`cpu` Some, the others
    /// zeroed when `fresh`).
    fn write_value(&self, e: Elem, value: &[u8], cpu: Option<u32>, fresh: bool) {
        let vs = self.spec.value_size as usize;
        if !self.percpu {
            // SAFETY: the value field of an element inside the block.
            unsafe { values::store_value(&self.spec, self.value_ptr(e, 0), &value[..vs]) };
            return;
        }
        let slot = round8(self.spec.value_size);
        match cpu {
            None => {
                for c in 0..self.ncpus {
                    let src = &value[c as usize * slot..(c as usize + 1) * slot];
                    // SAFETY: one CPU slot of the element's value.
                    unsafe { values::write(self.value_ptr(e, c), src) };
                }
            }
            Some(cpu) => {
                let cpu = cpu % self.ncpus;
                for c in 0..self.ncpus {
                    if c == cpu {
                        // SAFETY: one CPU slot of the element's value.
                        unsafe { values::write(self.value_ptr(e, c), &value[..vs]) };
                    } else if fresh {
                        // SAFETY: as above.
                        unsafe { values::zero(self.value_ptr(e, c), slot) };
                    }
                }
            }
        }
    }

    fn read_value(&self, e: Elem, out: &mut [u8], locked: bool) {
        if self.percpu {
            let slot = round8(self.spec.value_size);
            for (c, chunk) in out.chunks_exact_mut(slot).enumerate() {
                // SAFETY: one CPU slot of the element's value.
                unsafe { values::read(self.value_ptr(e, c as u32), chunk) };
            }
        } else if locked {
            // SAFETY: a live value with a spin lock (checked by the caller).
            unsafe { values::load_value_locked(&self.spec, self.value_ptr(e, 0), out) };
        } else {
            // SAFETY: the value field of an element inside the block.
            unsafe { values::load_value(&self.spec, self.value_ptr(e, 0), out) };
        }
    }

    // ---- allocation ----

    /// An element for a new key. Plain maps count live keys against
    /// `max_entries` (`E2BIG` when full, except when `replacing`); LRU maps
    /// evict instead.
    fn alloc(&self, replacing: bool, cpu: u32) -> MapResult<Elem> {
        if self.lru {
            return self.alloc_lru(cpu);
        }
        if !replacing {
            let count = self.count();
            let mut c = count.load(Ordering::Relaxed);
            loop {
                if c >= self.spec.max_entries {
                    return Err(MapError::TOO_BIG);
                }
                match count.compare_exchange_weak(c, c + 1, Ordering::AcqRel, Ordering::Relaxed) {
                    Ok(_) => break,
                    Err(now) => c = now,
                }
            }
        }
        // Counted keys always find an element; a replacement may have to
        // wait for another replacement to give its old element back.
        for _ in 0..1_000_000 {
            if let Some(e) = self.pop_free(cpu) {
                return Ok(e);
            }
            std::thread::yield_now();
        }
        if !replacing {
            self.uncount();
        }
        Err(MapError::NOMEM)
    }

    /// One counted element fewer. Never below zero: a process killed
    /// between linking a replacement and unlinking the element it replaces
    /// leaves the key twice in its chain with one count, and deleting both
    /// must not wrap the count around (the map would refuse every insert).
    fn uncount(&self) {
        let _ = self
            .count()
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |c| c.checked_sub(1));
    }

    fn release(&self, e: Elem, counted: bool) {
        if counted {
            self.uncount();
        }
        self.push_free(e);
    }

    fn alloc_lru(&self, cpu: u32) -> MapResult<Elem> {
        for _ in 0..64 {
            if let Some(e) = self.pop_free(cpu) {
                self.count().fetch_add(1, Ordering::AcqRel);
                return Ok(e);
            }
            self.evict_one(cpu);
        }
        Err(MapError::NOMEM)
    }

    /// The range of elements the clock sweeps for CPU slot `cpu`.
    fn lru_range(&self, cpu: u32) -> (u32, u32) {
        if self.lru_per_cpu {
            let share = (self.spec.max_entries / self.ncpus).max(1);
            let c = cpu % self.ncpus;
            let start = c * share;
            let end = if c == self.ncpus - 1 {
                self.l.n_elems
            } else {
                start + share
            };
            (start, end)
        } else {
            (0, self.l.n_elems)
        }
    }

    /// Evict one live element that has not been used since the clock hand
    /// last passed it.
    fn evict_one(&self, cpu: u32) {
        let (start, end) = self.lru_range(cpu);
        let span = end - start;
        let hand = self.ctrl(CTRL_HAND);
        for _ in 0..2 * span + 1 {
            let e = start + hand.fetch_add(1, Ordering::Relaxed) % span;
            let st = self.state(e);
            let s = st.load(Ordering::Acquire);
            if s & LIVE == 0 {
                continue;
            }
            if s & REF != 0 {
                st.fetch_and(!REF, Ordering::AcqRel);
                continue;
            }
            // Unlink under the element's bucket lock, if it is still there.
            let hash = self.hash_of(e).load(Ordering::Relaxed);
            let b = self.bucket_of(hash);
            let g = self.bucket_lock(b).lock();
            let mut prev = self.bucket_head(b);
            let mut link = prev.load(Ordering::Relaxed);
            while link & NULLS == 0 && link - 1 != e {
                prev = self.next(link - 1);
                link = prev.load(Ordering::Relaxed);
            }
            if link & NULLS == 0 {
                self.chain_write_begin(b);
                self.unlink(prev, e);
                self.chain_write_end(b);
                drop(g);
                self.uncount();
                self.push_free(e);
                return;
            }
        }
    }

    fn user_cpu() -> u32 {
        // SAFETY: sched_getcpu has no preconditions.
        let c = unsafe { libc::sched_getcpu() };
        c.max(0) as u32
    }

    /// The shared update of user space (`cpu` None) and programs.
    fn do_update(&self, key: &[u8], value: &[u8], flags: u64, cpu: Option<u32>) -> MapResult<()> {
        let plain_flags = flags & !BPF_F_LOCK;
        let bad = if self.lru || self.percpu {
            flags > BPF_EXIST
        } else {
            plain_flags > BPF_EXIST
        };
        if bad {
            return Err(MapError::INVAL);
        }
        let hash = self.hash(key);
        let b = self.bucket_of(hash);
        let alloc_cpu = cpu.unwrap_or_else(HashMap::user_cpu);
        if flags & BPF_F_LOCK != 0 {
            if self.spec.spin_lock_off.is_none() {
                return Err(MapError::INVAL);
            }
            if let Some(e) = self.find(key, hash) {
                if plain_flags == BPF_NOEXIST {
                    return Err(MapError::EXIST);
                }
                // SAFETY: a live value with a spin lock.
                unsafe { values::store_value_locked(&self.spec, self.value_ptr(e, 0), value) };
                return Ok(());
            }
        }
        if self.lru {
            // LRU maps take an element (perhaps evicting) before the bucket
            // lock, as the kernel does; a failed update gives it back.
            let new = self.alloc(false, alloc_cpu)?;
            let g = self.bucket_lock(b).lock();
            let old = self.find_locked(key, hash, b);
            if let Err(e) = check_flags(old.is_some(), flags) {
                drop(g);
                self.release(new, true);
                return Err(e);
            }
            if self.percpu {
                if let Some((e, _)) = old {
                    self.write_value(e, value, cpu, false);
                    self.state(e).fetch_or(REF, Ordering::AcqRel);
                    drop(g);
                    self.release(new, true);
                    return Ok(());
                }
            }
            self.fill(new, key, hash, value, cpu);
            self.chain_write_begin(b);
            match old {
                Some((e, prev)) => {
                    self.state(new).fetch_or(REF, Ordering::AcqRel);
                    self.replace(b, prev, e, new);
                    self.chain_write_end(b);
                    drop(g);
                    self.release(e, true);
                }
                None => {
                    self.link_head(b, new);
                    self.chain_write_end(b);
                }
            }
            return Ok(());
        }
        let g = self.bucket_lock(b).lock();
        let old = self.find_locked(key, hash, b);
        check_flags(old.is_some(), flags)?;
        if let Some((e, _)) = old {
            if flags & BPF_F_LOCK != 0 {
                // SAFETY: a live value with a spin lock.
                unsafe { values::store_value_locked(&self.spec, self.value_ptr(e, 0), value) };
                return Ok(());
            }
            if self.percpu {
                // Per-CPU values are updated in place.
                self.write_value(e, value, cpu, false);
                return Ok(());
            }
        }
        let new = self.alloc(old.is_some(), alloc_cpu)?;
        self.fill(new, key, hash, value, cpu);
        self.chain_write_begin(b);
        match old {
            Some((e, prev)) => {
                self.replace(b, prev, e, new);
                self.chain_write_end(b);
                drop(g);
                // The replaced element does not count: the new one took its place.
                self.push_free(e);
            }
            None => {
                self.link_head(b, new);
                self.chain_write_end(b);
            }
        }
        Ok(())
    }

    fn do_delete(&self, key: &[u8], out: Option<(&mut [u8], bool)>) -> MapResult<()> {
        let hash = self.hash(key);
        let b = self.bucket_of(hash);
        let g = self.bucket_lock(b).lock();
        let (e, prev) = self.find_locked(key, hash, b).ok_or(MapError::NOENT)?;
        if let Some((out, locked)) = out {
            self.read_value(e, out, locked);
        }
        self.chain_write_begin(b);
        self.unlink(prev, e);
        self.chain_write_end(b);
        drop(g);
        self.release(e, true);
        Ok(())
    }
}

fn check_flags(exists: bool, flags: u64) -> MapResult<()> {
    let f = flags & !BPF_F_LOCK;
    if exists && f == BPF_NOEXIST {
        return Err(MapError::EXIST);
    }
    if !exists && f == BPF_EXIST {
        return Err(MapError::NOENT);
    }
    Ok(())
}

/// A random 32-bit seed.
pub(crate) fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // SAFETY: getrandom writes at most 4 bytes into `b`.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), 4, 0) };
    if n == 4 {
        u32::from_ne_bytes(b)
    } else {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        t ^ std::process::id().rotate_left(16)
    }
}

impl MapImpl for HashMap {
    fn key_of_value(&self, value: usize) -> Option<super::KeyOf> {
        if self.percpu {
            return None;
        }
        let first = self.value_ptr(0, 0) as usize;
        let off = value.checked_sub(first)?;
        let e = off / self.l.elem_stride;
        (off % self.l.elem_stride == 0 && e < self.l.n_elems as usize)
            .then(|| super::KeyOf::At(self.key_ptr(e as Elem) as usize))
    }

    fn lookup(&self, key: Option<&[u8]>, value: &mut [u8], flags: u64) -> MapResult<()> {
        let key = key.unwrap_or(&[]);
        let e = self.find(key, self.hash(key)).ok_or(MapError::NOENT)?;
        self.read_value(e, value, flags & BPF_F_LOCK != 0);
        Ok(())
    }

    fn update(&self, key: Option<&[u8]>, value: &[u8], flags: u64) -> MapResult<()> {
        self.do_update(key.unwrap_or(&[]), value, flags, None)
    }

    fn delete(&self, key: &[u8]) -> MapResult<()> {
        self.do_delete(key, None)
    }

    fn get_next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> MapResult<()> {
        let mut start = 0;
        if let Some(key) = key {
            let hash = self.hash(key);
            if let Some(e) = self.find(key, hash) {
                let link = self.next(e).load(Ordering::Acquire);
                if link & NULLS == 0 {
                    self.read_key(link - 1, next);
                    return Ok(());
                }
                start = self.bucket_of(hash) + 1;
            }
        }
        for b in start..self.l.n_buckets {
            let link = self.bucket_head(b).load(Ordering::Acquire);
            if link & NULLS == 0 {
                self.read_key(link - 1, next);
                return Ok(());
            }
        }
        Err(MapError::NOENT)
    }

    fn lookup_and_delete(&self, key: Option<&[u8]>, value: &mut [u8], flags: u64) -> MapResult<()> {
        self.do_delete(key.unwrap_or(&[]), Some((value, flags & BPF_F_LOCK != 0)))
    }

    fn prog_lookup(&self, key: &[u8], cpu: u32) -> Option<*mut u8> {
        let e = self.find(key, self.hash(key))?;
        if self.lru {
            let st = self.state(e);
            if st.load(Ordering::Relaxed) & REF == 0 {
                st.fetch_or(REF, Ordering::Relaxed);
            }
        }
        Some(self.value_ptr(e, cpu))
    }

    fn prog_lookup_percpu(&self, key: &[u8], cpu: u32) -> Option<*mut u8> {
        if !self.percpu || cpu >= self.ncpus {
            return None;
        }
        self.prog_lookup(key, cpu)
    }

    fn prog_update(&self, key: &[u8], value: &[u8], flags: u64, cpu: u32) -> MapResult<()> {
        self.do_update(key, value, flags, Some(cpu))
    }

    fn slabs(&self) -> Vec<Slab> {
        let copies = if self.percpu { self.ncpus as usize } else { 1 };
        vec![Slab {
            base: self.store.shm().at(self.l.elems) as usize,
            count: self.l.n_elems as usize,
            stride: self.l.elem_stride,
            value_off: self.l.value_off,
            value_len: if copies == 1 {
                self.spec.value_size as usize
            } else {
                round8(self.spec.value_size) * copies
            },
            writable: true,
        }]
    }

    fn store(&self) -> Option<&Store> {
        Some(&self.store)
    }

    fn elements(&self) -> Option<usize> {
        Some(self.count().load(Ordering::Relaxed) as usize)
    }

    fn batch_buckets(&self) -> Option<u32> {
        Some(self.l.n_buckets)
    }

    fn batch_bucket(
        &self,
        b: u32,
        room: u32,
        delete: bool,
        lock: bool,
        keys: &mut [u8],
        values: &mut [u8],
    ) -> MapResult<batch::Bucket> {
        if b >= self.l.n_buckets {
            return Err(MapError::INVAL);
        }
        // An empty bucket needs no lock (the kernel counts without it too).
        if self.bucket_head(b).load(Ordering::Acquire) & NULLS != 0 {
            return Ok(batch::Bucket::Taken(0));
        }
        let g = self.bucket_lock(b).lock();
        let mut chain = Vec::new();
        let mut link = self.bucket_head(b).load(Ordering::Relaxed);
        while link & NULLS == 0 && chain.len() <= self.l.n_elems as usize {
            chain.push(link - 1);
            link = self.next(link - 1).load(Ordering::Relaxed);
        }
        if chain.len() > room as usize {
            return Ok(batch::Bucket::TooMany(chain.len() as u32));
        }
        let ks = self.spec.key_size as usize;
        let vs = if self.percpu {
            round8(self.spec.value_size) * self.ncpus as usize
        } else {
            self.spec.value_size as usize
        };
        for (i, &e) in chain.iter().enumerate() {
            self.read_key(e, &mut keys[i * ks..(i + 1) * ks]);
            self.read_value(e, &mut values[i * vs..(i + 1) * vs], lock);
        }
        if delete {
            self.chain_write_begin(b);
            self.bucket_head(b).store(NULLS | b, Ordering::Release);
            self.chain_write_end(b);
            drop(g);
            for &e in &chain {
                self.release(e, true);
            }
        }
        Ok(batch::Bucket::Taken(chain.len() as u32))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
