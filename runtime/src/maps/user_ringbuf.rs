//! `BPF_MAP_TYPE_USER_RINGBUF`: user space produces samples, programs drain
//! them with `bpf_user_ringbuf_drain`. Same block and record header as
//! `RINGBUF` ([`ring`](super::ring)).
//!
//! User side ([`UserRingBuf::reserve`], [`UserSample::submit`] /
//! [`UserSample::discard`], [`UserRingBuf::reserve_blocking`]) follows
//! libbpf's `user_ring_buffer__*`: the producer position moves at reserve
//! time, the sample stays BUSY until submitted or discarded. Unlike libbpf,
//! reservations take the ring's producer lock, so several threads or
//! processes may produce into one ring.
//!
//! Program side: [`UserRingBuf::drain`] with the kernel's rules — one
//! drainer at a time (`EBUSY`), at most [`MAX_SAMPLES`] samples a call
//! (discarded ones count towards it and are skipped), a BUSY sample ends
//! the drain, and a producer that breaks the protocol gets `EINVAL`
//! (positions not 8-aligned, a sample longer than what was published) or
//! `E2BIG` (a sample larger than the ring or a dynptr).

use super::error::{MapError, MapResult};
use super::lock::{alive, current_tid};
use super::notify::{self, Woken};
use super::ring::{
    record_len, Ring, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BUSY_BIT, DISCARD_BIT, HDR_SZ,
};
use super::ringbuf::DYNPTR_MAX_SIZE;
use super::store::Store;
use super::{errno, Map, MapImpl, MapSpec, Slab};
use std::any::Any;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// `BPF_MAX_USER_RINGBUF_SAMPLES`.
pub const MAX_SAMPLES: i64 = 128 * 1024;

/// A `USER_RINGBUF` map.
pub struct UserRingBuf {
    ring: Ring,
}

/// What `__bpf_user_ringbuf_peek` found at the consumer position.
enum Peek {
    Sample { pos: u64, len: u32 },
    Discarded,
    NoData,
    Error(i64),
}

impl UserRingBuf {
    pub fn create(spec: &MapSpec, dir: Option<&Path>) -> MapResult<UserRingBuf> {
        Ok(UserRingBuf {
            ring: Ring::create(spec, dir)?,
        })
    }

    pub fn attach(store: Store, spec: &MapSpec) -> MapResult<UserRingBuf> {
        Ok(UserRingBuf {
            ring: Ring::attach(store, spec)?,
        })
    }

    /// The user ring buffer behind `map`, if it is one.
    pub fn from_map(map: &Map) -> Option<&UserRingBuf> {
        map.imp().as_any().downcast_ref::<UserRingBuf>()
    }

    /// `user_ring_buffer__reserve`: room for a `size`-byte sample. `E2BIG`
    /// when the size uses the header's flag bits or the record is larger
    /// than the ring, `ENOSPC` when the ring has no room now.
    pub fn reserve(&self, size: u32) -> MapResult<UserSample<'_>> {
        let pos = self.ring.user_reserve(size)?;
        Ok(UserSample {
            rb: self,
            pos,
            len: size,
            done: false,
        })
    }

    /// `user_ring_buffer__reserve_blocking`: [`UserRingBuf::reserve`],
    /// waiting up to `timeout` (`None`: without limit) for a drain to make
    /// room while the ring is full.
    pub fn reserve_blocking(
        &self,
        size: u32,
        timeout: Option<Duration>,
    ) -> MapResult<UserSample<'_>> {
        let deadline = notify::deadline(timeout);
        let n = self.ring.notify();
        loop {
            let seen = n.seq();
            match self.reserve(size) {
                Err(e) if e.code() == errno::ENOSPC => {}
                r => return r,
            }
            if n.wait(seen, deadline) == Woken::TimedOut {
                return self.reserve(size);
            }
        }
    }

    fn commit(&self, pos: u64, discard: bool) {
        self.ring.user_commit(pos, discard);
    }

    /// `__bpf_user_ringbuf_peek`.
    fn peek(&self) -> Peek {
        let ring = &self.ring;
        let prod = ring.producer_pos().load(Ordering::Acquire);
        if !prod.is_multiple_of(8) {
            return Peek::Error(-i64::from(errno::EINVAL));
        }
        let cons = ring.consumer_pos().load(Ordering::Acquire);
        if cons >= prod {
            return Peek::NoData;
        }
        let hdr = ring.hdr_len(cons & ring.mask()).load(Ordering::Acquire);
        let len = hdr & !(BUSY_BIT | DISCARD_BIT);
        let total = record_len(u64::from(len));
        if total > prod - cons {
            return Peek::Error(-i64::from(errno::EINVAL));
        }
        if total > ring.size() || u64::from(len) > DYNPTR_MAX_SIZE {
            return Peek::Error(-i64::from(errno::E2BIG));
        }
        if hdr & DISCARD_BIT != 0 {
            ring.consumer_pos().store(cons + total, Ordering::Release);
            return Peek::Discarded;
        }
        if hdr & BUSY_BIT != 0 {
            // Still being written, or abandoned by a producer that died.
            if ring.drain_stuck_at(cons) {
                return Peek::Discarded;
            }
            return Peek::NoData;
        }
        Peek::Sample { pos: cons, len }
    }

    /// The runtime side of `bpf_user_ringbuf_drain(map, callback, ctx,
    /// flags)`: call `f` with each published sample until it returns
    /// non-zero, the ring holds no more published samples, or
    /// [`MAX_SAMPLES`] were taken. Returns the number of samples handed to
    /// `f`, or `-EINVAL` (bad flags, broken producer), `-EBUSY` (another
    /// drain is running), `-E2BIG` (oversized sample). Wakes producers
    /// waiting for room as the kernel does: with `BPF_RB_FORCE_WAKEUP`
    /// always, without `BPF_RB_NO_WAKEUP` when a sample was taken.
    pub fn drain(&self, flags: u64, mut f: impl FnMut(&[u8]) -> i64) -> i64 {
        if flags & !(BPF_RB_NO_WAKEUP | BPF_RB_FORCE_WAKEUP) != 0 {
            return -i64::from(errno::EINVAL);
        }
        let busy = self.ring.busy();
        let me = current_tid();
        if let Err(owner) = busy.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
            // A drainer that died holding the ring is taken over; anyone
            // else (this thread too: a drain inside a drain) is busy.
            let dead = owner != me && !alive(owner);
            if !dead
                || busy
                    .compare_exchange(owner, me, Ordering::Acquire, Ordering::Relaxed)
                    .is_err()
            {
                return -i64::from(errno::EBUSY);
            }
        }
        let mut samples = 0i64;
        let mut discarded = 0i64;
        let mut ret = 0i64;
        let mut error = None;
        while samples < MAX_SAMPLES && ret == 0 {
            match self.peek() {
                Peek::NoData => break,
                Peek::Discarded => discarded += 1,
                Peek::Error(e) => {
                    error = Some(e);
                    break;
                }
                Peek::Sample { pos, len } => {
                    // SAFETY: a published sample at the consumer position;
                    // producers stay off it until the position moves on.
                    let s = unsafe { self.ring.sample(pos, len) };
                    ret = f(s);
                    let cons = self.ring.consumer_pos().load(Ordering::Relaxed);
                    self.ring
                        .consumer_pos()
                        .store(cons + record_len(u64::from(len)), Ordering::Release);
                }
            }
            samples += 1;
        }
        busy.store(0, Ordering::Release);
        if flags & BPF_RB_FORCE_WAKEUP != 0 || (flags & BPF_RB_NO_WAKEUP == 0 && samples > 0) {
            self.ring.notify().wake();
        }
        error.unwrap_or(samples - discarded)
    }

    /// Bytes reserved or published and not yet drained.
    pub fn avail(&self) -> u64 {
        self.ring.avail()
    }

    /// The ring's size in bytes.
    pub fn size(&self) -> u64 {
        self.ring.size()
    }
}

/// A sample reserved in a user ring buffer: write it, then
/// [`submit`](UserSample::submit) or [`discard`](UserSample::discard) it.
/// Dropping it discards it.
pub struct UserSample<'a> {
    rb: &'a UserRingBuf,
    pos: u64,
    len: u32,
    done: bool,
}

impl UserSample<'_> {
    /// The sample's bytes.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let p = self.as_ptr();
        // SAFETY: the reserved sample is ours until committed; it lies in
        // the two data mappings.
        unsafe { std::slice::from_raw_parts_mut(p, self.len as usize) }
    }

    /// The sample's address (libbpf returns this pointer).
    pub fn as_ptr(&self) -> *mut u8 {
        self.rb
            .ring
            .data_at((self.pos + HDR_SZ) & self.rb.ring.mask())
    }

    /// `user_ring_buffer__submit`.
    pub fn submit(mut self) {
        self.done = true;
        self.rb.commit(self.pos, false);
    }

    /// `user_ring_buffer__discard`.
    pub fn discard(mut self) {
        self.done = true;
        self.rb.commit(self.pos, true);
    }
}

impl Drop for UserSample<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.rb.commit(self.pos, true);
        }
    }
}

impl MapImpl for UserRingBuf {
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
        // Programs read samples (through dynptrs) anywhere in the data area.
        let (base, len) = self.ring.data_range();
        vec![Slab {
            base,
            count: 1,
            stride: len,
            value_off: 0,
            value_len: len,
            writable: false,
        }]
    }

    fn store(&self) -> Option<&Store> {
        Some(self.ring.store())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
#[path = "user_ringbuf_tests.rs"]
mod tests;
