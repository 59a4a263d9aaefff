//! `BPF_MAP_TYPE_RINGBUF`: programs produce records, user space consumes
//! them, with the kernel's memory layout and record header
//! ([`ring`](super::ring)).
//!
//! Program face (the helpers): [`RingBuf::output`], [`RingBuf::reserve`]
//! (and [`RingBuf::reserve_dynptr`]), [`RingBuf::submit`],
//! [`RingBuf::discard`] — or [`submit_sample`] / [`discard_sample`], which
//! find the ring from the sample pointer alone as `bpf_ringbuf_submit`
//! must — and [`RingBuf::query`]. Producers of every thread and process
//! serialise their reservations on a lock in the block, as kernel producers
//! do on the ring's spin lock; writing and committing records runs in
//! parallel. A record reserved but not yet committed stops the consumer
//! there, and the space from it on stays in use until it is committed.
//!
//! Consumer: [`RingBufConsumer`], libbpf's `ring_buffer__poll` and
//! `ring_buffer__consume` for one ring, woken through a futex in the block,
//! so a consumer in another process (a pinned ring) is woken as well.
//!
//! User-space `bpf()` operations on the map fail with `ENOTSUPP` as in the
//! kernel.

use super::error::{MapError, MapResult};
use super::lock::alive;
use super::notify::{self, Woken};
use super::ring::{record_len, Ring, BUSY_BIT, DISCARD_BIT, STUCK_CHECK_AFTER};
use super::store::Store;
use super::{errno, Map, MapImpl, MapSpec, Slab};
use std::any::Any;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant};

/// The wakeup flags of `bpf_ringbuf_output`, `_submit`, `_discard` and
/// `bpf_user_ringbuf_drain`.
pub use super::ring::{BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP};

/// `bpf_ringbuf_query` flags.
pub const BPF_RB_AVAIL_DATA: u64 = 0;
pub const BPF_RB_RING_SIZE: u64 = 1;
pub const BPF_RB_CONS_POS: u64 = 2;
pub const BPF_RB_PROD_POS: u64 = 3;

/// `DYNPTR_MAX_SIZE`: the largest sample `bpf_ringbuf_reserve_dynptr` takes.
pub const DYNPTR_MAX_SIZE: u64 = (1 << 24) - 1;

/// A `RINGBUF` map.
pub struct RingBuf {
    ring: Arc<Ring>,
}

/// Every live ring of this process, to find a ring from a sample pointer.
fn rings() -> &'static RwLock<Vec<Weak<Ring>>> {
    static R: OnceLock<RwLock<Vec<Weak<Ring>>>> = OnceLock::new();
    R.get_or_init(|| RwLock::new(Vec::new()))
}

fn register(ring: &Arc<Ring>) {
    let mut all = rings().write().unwrap_or_else(|e| e.into_inner());
    all.retain(|w| w.strong_count() > 0);
    all.push(Arc::downgrade(ring));
}

/// The ring whose data mappings contain `addr`.
fn ring_of(addr: usize) -> Option<Arc<Ring>> {
    let all = rings().read().unwrap_or_else(|e| e.into_inner());
    all.iter().filter_map(Weak::upgrade).find(|r| {
        let (start, len) = r.data_range();
        addr >= start && addr < start + len
    })
}

/// `bpf_ringbuf_submit(sample, flags)`: commit the record whose sample
/// starts at `sample`, in whichever ring of this process holds it.
/// `EINVAL` when `sample` is not an outstanding reservation (the kernel's
/// verifier rules that out before a program runs).
pub fn submit_sample(sample: *mut u8, flags: u64) -> MapResult<()> {
    commit_sample(sample, flags, false)
}

/// `bpf_ringbuf_discard(sample, flags)`, as [`submit_sample`].
pub fn discard_sample(sample: *mut u8, flags: u64) -> MapResult<()> {
    commit_sample(sample, flags, true)
}

/// Discard every ring buffer record the calling thread reserved and did
/// not submit or discard, in every ring of this process; returns how many.
/// For the end of a run that stopped before releasing its reservations
/// (a fault), which a kernel program can never do.
pub fn discard_thread_reservations() -> usize {
    let all: Vec<Arc<Ring>> = rings()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    all.iter().map(|r| r.discard_thread_reservations()).sum()
}

fn commit_sample(sample: *mut u8, flags: u64, discard: bool) -> MapResult<()> {
    let ring = ring_of(sample as usize).ok_or(MapError::INVAL)?;
    let pos = ring.reserved_at(sample as usize).ok_or(MapError::INVAL)?;
    ring.commit(pos, discard, flags)
}

impl RingBuf {
    pub fn create(spec: &MapSpec, dir: Option<&Path>) -> MapResult<RingBuf> {
        RingBuf::new(Ring::create(spec, dir)?)
    }

    pub fn attach(store: Store, spec: &MapSpec) -> MapResult<RingBuf> {
        RingBuf::new(Ring::attach(store, spec)?)
    }

    fn new(ring: Ring) -> MapResult<RingBuf> {
        let ring = Arc::new(ring);
        register(&ring);
        Ok(RingBuf { ring })
    }

    /// The ring buffer behind `map`, if it is one.
    pub fn from_map(map: &Map) -> Option<&RingBuf> {
        map.imp().as_any().downcast_ref::<RingBuf>()
    }

    /// `bpf_ringbuf_output`: copy `data` into a new record and submit it.
    /// `EINVAL` for flags other than the wakeup flags, `EAGAIN` when the
    /// record does not fit now.
    pub fn output(&self, data: &[u8], flags: u64) -> MapResult<()> {
        if flags & !(BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP) != 0 {
            return Err(MapError::INVAL);
        }
        let pos = self
            .ring
            .reserve(data.len() as u64)
            .ok_or(MapError::errno(errno::EAGAIN))?;
        let dst = self.sample_ptr(pos);
        // SAFETY: the reserved record has room for `data` after its header
        // (contiguous thanks to the double mapping) and is ours until
        // committed.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        self.ring.commit(pos, false, flags)
    }

    fn sample_ptr(&self, pos: u64) -> *mut u8 {
        self.ring.data_at((pos & self.ring.mask()) + 8)
    }

    /// `bpf_ringbuf_reserve`: room for `size` bytes, to be passed to
    /// [`RingBuf::submit`] or [`RingBuf::discard`]; `None` for non-zero
    /// flags, a size that never fits, or no room now.
    pub fn reserve(&self, size: u64, flags: u64) -> Option<*mut u8> {
        if flags != 0 {
            return None;
        }
        self.ring.reserve(size).map(|pos| self.sample_ptr(pos))
    }

    /// `bpf_ringbuf_reserve_dynptr`: as [`RingBuf::reserve`], with the
    /// helper's errors: `EINVAL` for flags or no room, `E2BIG` above
    /// [`DYNPTR_MAX_SIZE`].
    pub fn reserve_dynptr(&self, size: u64, flags: u64) -> MapResult<*mut u8> {
        if flags != 0 {
            return Err(MapError::INVAL);
        }
        if size > DYNPTR_MAX_SIZE {
            return Err(MapError::TOO_BIG);
        }
        self.ring
            .reserve(size)
            .map(|pos| self.sample_ptr(pos))
            .ok_or(MapError::INVAL)
    }

    /// `bpf_ringbuf_submit`: commit a record [`RingBuf::reserve`] returned.
    pub fn submit(&self, sample: *mut u8, flags: u64) -> MapResult<()> {
        self.commit(sample, flags, false)
    }

    /// `bpf_ringbuf_discard`: drop a reserved record; consumers skip it.
    pub fn discard(&self, sample: *mut u8, flags: u64) -> MapResult<()> {
        self.commit(sample, flags, true)
    }

    fn commit(&self, sample: *mut u8, flags: u64, discard: bool) -> MapResult<()> {
        let pos = self
            .ring
            .reserved_at(sample as usize)
            .ok_or(MapError::INVAL)?;
        self.ring.commit(pos, discard, flags)
    }

    /// `bpf_ringbuf_query`: available bytes, ring size, consumer or
    /// producer position; 0 for other flags.
    pub fn query(&self, flags: u64) -> u64 {
        match flags {
            BPF_RB_AVAIL_DATA => self.ring.avail(),
            BPF_RB_RING_SIZE => self.ring.size(),
            BPF_RB_CONS_POS => self.ring.consumer_pos().load(Ordering::Acquire),
            BPF_RB_PROD_POS => self.ring.producer_pos().load(Ordering::Acquire),
            _ => 0,
        }
    }

    /// A consumer of this ring.
    pub fn consumer(&self) -> RingBufConsumer {
        RingBufConsumer {
            ring: self.ring.clone(),
            stuck: None,
        }
    }
}

impl MapImpl for RingBuf {
    fn lookup(&self, _key: Option<&[u8]>, _value: &mut [u8], _flags: u64) -> MapResult<()> {
        Err(MapError::NOTSUPP)
    }

    fn update(&self, _key: Option<&[u8]>, _value: &[u8], _flags: u64) -> MapResult<()> {
        Err(MapError::NOTSUPP)
    }

    fn delete(&self, _key: &[u8]) -> MapResult<()> {
        Err(MapError::NOTSUPP)
    }

    fn get_next_key(&self, _key: Option<&[u8]>, _next: &mut [u8]) -> MapResult<()> {
        Err(MapError::NOTSUPP)
    }

    fn slabs(&self) -> Vec<Slab> {
        // Reserved samples lie anywhere in the two data mappings; the
        // verifier's bound (the reserved size) is not known here.
        let (base, len) = self.ring.data_range();
        vec![Slab {
            base,
            count: 1,
            stride: len,
            value_off: 0,
            value_len: len,
            writable: true,
        }]
    }

    fn store(&self) -> Option<&Store> {
        Some(self.ring.store())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Reads the records of one `RINGBUF` map, as libbpf's `struct ring_buffer`
/// does with one ring. Consumers of one ring (in any process) take turns,
/// so each record is delivered once.
pub struct RingBufConsumer {
    ring: Arc<Ring>,
    /// The uncommitted record the consumer last stopped at, and since when.
    stuck: Option<(u64, Instant)>,
}

impl RingBufConsumer {
    /// A consumer of the ring buffer `map`; `EINVAL` for another map type.
    pub fn new(map: &Map) -> MapResult<RingBufConsumer> {
        RingBuf::from_map(map)
            .map(RingBuf::consumer)
            .ok_or_else(|| {
                MapError::invalid(format!(
                    "map {} is a {} map, not a ringbuf",
                    map.name(),
                    map.map_type()
                ))
            })
    }

    /// Hand every committed record to `f` in order, up to the first record
    /// not yet committed (`ring_buffer__consume`). Discarded records are
    /// skipped. `f` returning `Break` stops after that record. Returns the
    /// number of records handed to `f`.
    pub fn consume(&mut self, mut f: impl FnMut(&[u8]) -> ControlFlow<()>) -> usize {
        self.consume_dyn(&mut f)
    }

    fn consume_dyn(&mut self, f: &mut dyn FnMut(&[u8]) -> ControlFlow<()>) -> usize {
        let (mut n, mut stuck) = self.process(f);
        if let Some(pos) = stuck {
            match self.stuck {
                Some((p, since)) if p == pos => {
                    if since.elapsed() >= STUCK_CHECK_AFTER && self.ring.recover(pos) {
                        let (more, still) = self.process(f);
                        n += more;
                        stuck = still;
                        self.stuck = stuck.map(|p| (p, Instant::now()));
                    }
                }
                _ => self.stuck = Some((pos, Instant::now())),
            }
        } else {
            self.stuck = None;
        }
        n
    }

    /// Wait up to `timeout` (`None`: without limit) for records, then
    /// consume them (`ring_buffer__poll`). Returns the number of records
    /// handed to `f`; 0 when the time ran out, or when a wakeup came
    /// without a record (`BPF_RB_FORCE_WAKEUP`).
    pub fn poll(
        &mut self,
        timeout: Option<Duration>,
        mut f: impl FnMut(&[u8]) -> ControlFlow<()>,
    ) -> usize {
        let deadline = notify::deadline(timeout);
        let ring = self.ring.clone();
        let notify = ring.notify();
        loop {
            let seen = notify.seq();
            let n = self.consume_dyn(&mut f);
            if n > 0 {
                return n;
            }
            // Behind an uncommitted record, look again now and then: its
            // producer may have died (see `Ring::recover`).
            let until = match (self.stuck, deadline) {
                (Some(_), Some(d)) => Some(d.min(Instant::now() + STUCK_CHECK_AFTER)),
                (Some(_), None) => Some(Instant::now() + STUCK_CHECK_AFTER),
                (None, d) => d,
            };
            match notify.wait(seen, until) {
                Woken::Notified => return self.consume_dyn(&mut f),
                Woken::TimedOut => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return self.consume_dyn(&mut f);
                    }
                }
            }
        }
    }

    /// libbpf's `ringbuf_process_ring`: returns the records handed to `f`
    /// and the position of an uncommitted record that stopped it.
    fn process(&mut self, f: &mut dyn FnMut(&[u8]) -> ControlFlow<()>) -> (usize, Option<u64>) {
        let ring = &*self.ring;
        let lock = ring.consumer_lock();
        // Another consumer is at it: it takes these records. One that died
        // holding the lock is taken over.
        let _turn = match lock.try_lock() {
            Some(g) => g,
            None if alive(lock.owner()) => return (0, None),
            None => lock.lock(),
        };
        let mut cons = ring.consumer_pos().load(Ordering::Acquire);
        let mut n = 0;
        loop {
            let mut got_new = false;
            let prod = ring.producer_pos().load(Ordering::Acquire);
            while cons < prod {
                let len = ring.hdr_len(cons & ring.mask()).load(Ordering::Acquire);
                if len & BUSY_BIT != 0 {
                    return (n, Some(cons));
                }
                got_new = true;
                let rec = cons;
                let sample_len = len & !(BUSY_BIT | DISCARD_BIT);
                cons += record_len(u64::from(sample_len));
                if len & DISCARD_BIT == 0 {
                    // SAFETY: a committed record before the consumer
                    // position is stored; producers stay off it until then.
                    let s = unsafe { ring.sample(rec, sample_len) };
                    n += 1;
                    if f(s).is_break() {
                        ring.consumer_pos().store(cons, Ordering::Release);
                        return (n, None);
                    }
                }
                ring.consumer_pos().store(cons, Ordering::Release);
            }
            if !got_new {
                return (n, None);
            }
        }
    }

    /// Bytes not yet consumed (committed or not).
    pub fn avail(&self) -> u64 {
        self.ring.avail()
    }
}

#[cfg(test)]
#[path = "ringbuf_tests.rs"]
mod tests;
