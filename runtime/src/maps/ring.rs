//! The storage block of both ring buffer types (`RINGBUF`, `USER_RINGBUF`),
//! laid out as the kernel lays out `struct bpf_ringbuf` for `mmap`, and the
//! operations on it that both types share.
//!
//! Block layout (offsets from its start, `P` = the host page size):
//! - `0`: the store header, then the control words at `CTRL` (producer
//!   lock, drain owner, wakeup sequence and sleeper count, page size,
//!   consumer lock, where and since when drains are stuck) and the
//!   reservation table at `TABLE`;
//! - `P`: the consumer position (u64);
//! - `2P`: the producer position, then the pending position (u64 each);
//! - `3P`: the data area, `max_entries` bytes.
//!
//! The data area is mapped a second time right behind itself, so a record
//! that runs past the end of the area continues in the second mapping and
//! every record is one contiguous range of addresses, as in the kernel.
//! Positions only grow; `pos & mask` is the offset in the data area.
//!
//! A record is an 8-byte header (`len` with the BUSY and DISCARD bits,
//! `pg_off`: the page of the header counted from the start of the block,
//! which is where the kernel's count starts too) and the sample, padded so
//! the next header is 8-aligned.
//!
//! Reservations (by programs into a `RINGBUF`, by user space into a
//! `USER_RINGBUF`) are also entered in a small table (position, thread) so
//! that a consumer stuck behind the record of a thread that died before
//! committing it can discard that record ([`Ring::recover`]). The kernel
//! has no such case for programs, whose verifier forces them to release
//! what they reserve; for user-space producers it has no remedy.

use super::error::{MapError, MapResult};
use super::flags::BPF_F_NUMA_NODE;
use super::lock::{alive, current_tid, SpinLock};
use super::notify::Notify;
use super::shm::page_size;
use super::store::{Store, HEADER_SIZE};
use super::MapSpec;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// `BPF_RINGBUF_BUSY_BIT`: the record is reserved, not yet committed.
pub const BUSY_BIT: u32 = 1 << 31;
/// `BPF_RINGBUF_DISCARD_BIT`: the record was discarded; consumers skip it.
pub const DISCARD_BIT: u32 = 1 << 30;
/// `BPF_RINGBUF_HDR_SZ`.
pub const HDR_SZ: u64 = 8;
/// `RINGBUF_MAX_RECORD_SZ`: the largest sample a program may reserve.
pub const MAX_RECORD_SZ: u64 = u32::MAX as u64 / 4;

/// `BPF_RB_NO_WAKEUP`, `BPF_RB_FORCE_WAKEUP` (submit, discard, output, drain).
pub const BPF_RB_NO_WAKEUP: u64 = 1 << 0;
pub const BPF_RB_FORCE_WAKEUP: u64 = 1 << 1;

/// How long a consumer stays behind an uncommitted record before checking
/// whether its producer still exists.
pub const STUCK_CHECK_AFTER: std::time::Duration = std::time::Duration::from_millis(50);

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Offset of the control words.
const CTRL: usize = HEADER_SIZE;
const CTRL_LOCK: usize = CTRL;
const CTRL_BUSY: usize = CTRL + 4;
const CTRL_SEQ: usize = CTRL + 8;
const CTRL_SLEEPERS: usize = CTRL + 12;
const CTRL_PAGE: usize = CTRL + 16;
const CTRL_CONSUMER: usize = CTRL + 20;
/// The BUSY record a drainer last stopped at (position + 1) and since when
/// (`CLOCK_MONOTONIC` ns, the same clock in every process).
const CTRL_STUCK_POS: usize = CTRL + 24;
const CTRL_STUCK_SINCE: usize = CTRL + 32;
/// Offset of the reservation table: [`SLOTS`] entries of (position + 1:
/// u64, owner thread: u32, unused: u32); position 0 marks a free entry.
const TABLE: usize = 512;
const SLOTS: usize = 128;
const SLOT_SIZE: usize = 16;
const _: () = assert!(TABLE + SLOTS * SLOT_SIZE <= 4096);

/// A record's total size: header and sample, rounded up to 8 bytes.
pub fn record_len(sample_len: u64) -> u64 {
    (sample_len + HDR_SZ).next_multiple_of(8)
}

/// The checks `ringbuf_map_alloc` makes, for both ring buffer types.
pub fn check_spec(spec: &MapSpec) -> MapResult<()> {
    let t = spec.map_type;
    let name = &spec.name;
    if spec.flags & !BPF_F_NUMA_NODE != 0 {
        return Err(MapError::invalid(format!(
            "map {name}: flags {:#x} are not valid for a {t} map",
            spec.flags & !BPF_F_NUMA_NODE
        )));
    }
    if spec.key_size != 0 || spec.value_size != 0 {
        return Err(MapError::invalid(format!(
            "map {name}: a {t} map has key_size and value_size 0 (has {} and {})",
            spec.key_size, spec.value_size
        )));
    }
    let n = spec.max_entries as usize;
    if !n.is_power_of_two() || !n.is_multiple_of(page_size()) {
        return Err(MapError::invalid(format!(
            "map {name}: max_entries of a {t} map is its size in bytes, a power of two and a multiple of the page size ({}); {n} is not",
            page_size()
        )));
    }
    Ok(())
}

/// A ring buffer's block, mapped, with its data area mapped twice.
pub struct Ring {
    store: Store,
    /// The first of the two mappings of the data area.
    data: *mut u8,
    size: usize,
    mask: u64,
    page: usize,
}

// SAFETY: the block is shared memory accessed through atomics and the
// ring protocol; `data` is a mapping owned by the ring.
unsafe impl Send for Ring {}
// SAFETY: as above.
unsafe impl Sync for Ring {}

impl Ring {
    /// Bytes of the block before the data area.
    fn data_off(page: usize) -> usize {
        3 * page
    }

    /// A new zeroed ring for a checked `spec`.
    pub fn create(spec: &MapSpec, dir: Option<&Path>) -> MapResult<Ring> {
        check_spec(spec)?;
        let page = page_size();
        let body = Ring::data_off(page) + spec.max_entries as usize - HEADER_SIZE;
        let store = Store::create(spec, 1, body, dir)?;
        // SAFETY: the page-size word lies in the control area of the block.
        unsafe { AtomicU32::from_ptr(store.shm().at(CTRL_PAGE) as *mut u32) }
            .store(page as u32, Ordering::Relaxed);
        let ring = Ring::map(store, spec)?;
        ring.store.mark_ready();
        Ok(ring)
    }

    /// The ring of a pinned block.
    pub fn attach(store: Store, spec: &MapSpec) -> MapResult<Ring> {
        check_spec(spec)?;
        let page = page_size();
        let need = Ring::data_off(page) + spec.max_entries as usize;
        // SAFETY: the control area is inside any block longer than a page.
        let made_with = (store.shm().len() >= need)
            .then(|| unsafe { AtomicU32::from_ptr(store.shm().at(CTRL_PAGE) as *mut u32) })
            .map(|w| w.load(Ordering::Relaxed) as usize);
        if made_with != Some(page) {
            return Err(MapError::invalid(format!(
                "pinned {} map {} does not have the layout of its definition",
                spec.map_type, spec.name
            )));
        }
        Ring::map(store, spec)
    }

    /// Map the data area twice, back to back.
    fn map(store: Store, spec: &MapSpec) -> MapResult<Ring> {
        let page = page_size();
        let size = spec.max_entries as usize;
        let fd = store.shm().file().as_raw_fd();
        let fail = |what: &str| {
            MapError::with_reason(
                super::errno::ENOMEM,
                format!(
                    "map {}: cannot map the ring's data area ({what}): {}",
                    spec.name,
                    std::io::Error::last_os_error()
                ),
            )
        };
        // SAFETY: reserving fresh address space; checked below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                2 * size,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(fail("address space"));
        }
        // Populated now, as the kernel allocates a ring's pages when it
        // creates the map: records then never wait for a page fault.
        for half in 0..2 {
            // SAFETY: replaces half of the reservation made above with the
            // file's data pages (page-aligned offset, inside the file).
            let p = unsafe {
                libc::mmap(
                    base.cast::<u8>().add(half * size).cast(),
                    size,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_FIXED | libc::MAP_POPULATE,
                    fd,
                    Ring::data_off(page) as libc::off_t,
                )
            };
            if p == libc::MAP_FAILED {
                let e = fail("data pages");
                // SAFETY: unmapping the reservation made above.
                unsafe { libc::munmap(base, 2 * size) };
                return Err(e);
            }
        }
        Ok(Ring {
            store,
            data: base.cast(),
            size,
            mask: size as u64 - 1,
            page,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The data area's size in bytes (`BPF_RB_RING_SIZE`).
    pub fn size(&self) -> u64 {
        self.size as u64
    }

    pub fn mask(&self) -> u64 {
        self.mask
    }

    /// The two mappings of the data area: start and length.
    pub fn data_range(&self) -> (usize, usize) {
        (self.data as usize, 2 * self.size)
    }

    fn word32(&self, off: usize) -> &AtomicU32 {
        // SAFETY: `off` is a 4-aligned offset of this layout inside the block.
        unsafe { AtomicU32::from_ptr(self.store.shm().at(off) as *mut u32) }
    }

    fn word64(&self, off: usize) -> &AtomicU64 {
        // SAFETY: `off` is an 8-aligned offset of this layout inside the block.
        unsafe { AtomicU64::from_ptr(self.store.shm().at(off) as *mut u64) }
    }

    pub fn consumer_pos(&self) -> &AtomicU64 {
        self.word64(self.page)
    }

    pub fn producer_pos(&self) -> &AtomicU64 {
        self.word64(2 * self.page)
    }

    fn pending_pos(&self) -> &AtomicU64 {
        self.word64(2 * self.page + 8)
    }

    /// The producers' lock (`rb->spinlock`).
    pub fn lock(&self) -> SpinLock<'_> {
        SpinLock::new(self.word32(CTRL_LOCK))
    }

    /// The lock consumers take turns with (user-space consumers of a
    /// `RINGBUF`).
    pub fn consumer_lock(&self) -> SpinLock<'_> {
        SpinLock::new(self.word32(CTRL_CONSUMER))
    }

    /// The drain owner (`rb->busy`, holding the draining thread's id).
    pub fn busy(&self) -> &AtomicU32 {
        self.word32(CTRL_BUSY)
    }

    /// The ring's wakeup channel (`rb->waitq`).
    pub fn notify(&self) -> Notify<'_> {
        Notify::new(self.word32(CTRL_SEQ), self.word32(CTRL_SLEEPERS))
    }

    /// The length word of the record header at data offset `off` (< size).
    pub fn hdr_len(&self, off: u64) -> &AtomicU32 {
        // SAFETY: headers are 8-aligned inside the first data mapping.
        unsafe { AtomicU32::from_ptr(self.data.add(off as usize) as *mut u32) }
    }

    fn hdr_pg_off(&self, off: u64) -> &AtomicU32 {
        // SAFETY: as for `hdr_len`, 4 bytes further.
        unsafe { AtomicU32::from_ptr(self.data.add(off as usize + 4) as *mut u32) }
    }

    /// The address `off` bytes into the (doubly mapped) data area.
    pub fn data_at(&self, off: u64) -> *mut u8 {
        debug_assert!((off as usize) < 2 * self.size);
        // SAFETY: inside the two data mappings.
        unsafe { self.data.add(off as usize) }
    }

    /// The sample of the record at position `pos`, `len` bytes.
    ///
    /// # Safety
    /// The record must be committed or owned by the caller and stay so
    /// while the slice lives (the ring protocol keeps producers off it
    /// until the consumer position passes it).
    pub unsafe fn sample<'a>(&self, pos: u64, len: u32) -> &'a [u8] {
        let p = self.data_at((pos + HDR_SZ) & self.mask);
        // SAFETY: a record never exceeds the data size, so the sample lies
        // within the two mappings; the caller guarantees no writer.
        unsafe { std::slice::from_raw_parts(p, len as usize) }
    }

    /// `BPF_RB_AVAIL_DATA`: bytes between the consumer and producer.
    pub fn avail(&self) -> u64 {
        let cons = self.consumer_pos().load(Ordering::Acquire);
        let prod = self.producer_pos().load(Ordering::Acquire);
        prod.wrapping_sub(cons)
    }

    // ---- kernel-side producers (RINGBUF) ----

    /// `__bpf_ringbuf_reserve`: the position of a new BUSY record of
    /// `size` sample bytes, or `None` when the record can never fit or the
    /// ring has no room now (unconsumed data, or reserved records not yet
    /// committed, would be overrun).
    pub fn reserve(&self, size: u64) -> Option<u64> {
        if size > MAX_RECORD_SZ {
            return None;
        }
        let len = record_len(size);
        if len > self.size() {
            return None;
        }
        let cons = self.consumer_pos().load(Ordering::Acquire);
        let _g = self.lock().lock();
        let mut pend = self.pending_pos().load(Ordering::Relaxed);
        let prod = self.producer_pos().load(Ordering::Relaxed);
        let new_prod = prod + len;
        // Move the pending position over records committed since.
        while prod > pend {
            let l = self.hdr_len(pend & self.mask).load(Ordering::Acquire);
            if l & BUSY_BIT != 0 {
                break;
            }
            pend += record_len(u64::from(l & !DISCARD_BIT));
        }
        self.pending_pos().store(pend, Ordering::Relaxed);
        if new_prod - cons > self.mask || new_prod - pend > self.mask {
            return None;
        }
        let off = prod & self.mask;
        self.hdr_len(off)
            .store(size as u32 | BUSY_BIT, Ordering::Relaxed);
        let pg_off = (Ring::data_off(self.page) + off as usize) / self.page;
        self.hdr_pg_off(off).store(pg_off as u32, Ordering::Relaxed);
        self.track(prod, cons);
        self.producer_pos().store(new_prod, Ordering::Release);
        Some(prod)
    }

    /// The position of the outstanding record whose sample starts at
    /// `sample` (an address in the data mappings), or `None` when no
    /// reserved record starts there.
    pub fn reserved_at(&self, sample: usize) -> Option<u64> {
        let hdr = sample.checked_sub(self.data as usize + HDR_SZ as usize)? as u64;
        if hdr >= self.size() || !hdr.is_multiple_of(8) {
            return None;
        }
        if self.hdr_len(hdr).load(Ordering::Acquire) & BUSY_BIT == 0 {
            return None;
        }
        // The one position before the producer's with this offset.
        let prod = self.producer_pos().load(Ordering::Acquire);
        let pos = prod.checked_sub(((prod.wrapping_sub(hdr).wrapping_sub(1)) & self.mask) + 1)?;
        let cons = self.consumer_pos().load(Ordering::Acquire);
        (pos >= cons).then_some(pos)
    }

    /// `bpf_ringbuf_commit`: submit or discard the reserved record at `pos`,
    /// then wake the consumer as the kernel decides: always with
    /// `BPF_RB_FORCE_WAKEUP`, never with `BPF_RB_NO_WAKEUP`, otherwise when
    /// the consumer has caught up with this record (it may be waiting).
    pub fn commit(&self, pos: u64, discard: bool, flags: u64) -> MapResult<()> {
        let off = pos & self.mask;
        let hdr = self.hdr_len(off);
        let old = hdr.load(Ordering::Acquire);
        if old & BUSY_BIT == 0 {
            return Err(MapError::INVAL);
        }
        let new = (old ^ BUSY_BIT) | if discard { DISCARD_BIT } else { 0 };
        hdr.compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire)
            .map_err(|_| MapError::INVAL)?;
        self.untrack(pos);
        let cons = self.consumer_pos().load(Ordering::Acquire) & self.mask;
        if flags & BPF_RB_FORCE_WAKEUP != 0 || (cons == off && flags & BPF_RB_NO_WAKEUP == 0) {
            self.notify().wake();
        }
        Ok(())
    }

    // ---- user-space producers (USER_RINGBUF) ----

    /// `user_ring_buffer__reserve` under the producer lock: the position
    /// of a new BUSY sample of `size` bytes. `E2BIG` when the size uses the
    /// header's flag bits or the record exceeds the ring, `ENOSPC` when the
    /// ring has no room now (user space may fill it completely).
    pub fn user_reserve(&self, size: u32) -> MapResult<u64> {
        if size & (BUSY_BIT | DISCARD_BIT) != 0 {
            return Err(MapError::TOO_BIG);
        }
        let total = record_len(u64::from(size));
        if total > self.size() {
            return Err(MapError::TOO_BIG);
        }
        let _g = self.lock().lock();
        let cons = self.consumer_pos().load(Ordering::Acquire);
        let prod = self.producer_pos().load(Ordering::Acquire);
        if self.size() - prod.wrapping_sub(cons) < total {
            return Err(MapError::errno(super::errno::ENOSPC));
        }
        let off = prod & self.mask;
        self.hdr_len(off).store(size | BUSY_BIT, Ordering::Relaxed);
        // The header's second word is written as 0, as libbpf does.
        self.hdr_pg_off(off).store(0, Ordering::Relaxed);
        self.track(prod, cons);
        self.producer_pos().store(prod + total, Ordering::Release);
        Ok(prod)
    }

    /// `user_ring_buffer__submit` / `__discard` of the sample at `pos`.
    pub fn user_commit(&self, pos: u64, discard: bool) {
        let hdr = self.hdr_len(pos & self.mask);
        let mut new = hdr.load(Ordering::Relaxed) & !BUSY_BIT;
        if discard {
            new |= DISCARD_BIT;
        }
        hdr.swap(new, Ordering::AcqRel);
        self.untrack(pos);
    }

    /// A drainer found the BUSY sample at `pos`: whether it has blocked
    /// drains for [`STUCK_CHECK_AFTER`] and was discarded because its
    /// producer died. Cheap while that time has not passed.
    pub fn drain_stuck_at(&self, pos: u64) -> bool {
        let now = monotonic_ns();
        let at = self.word64(CTRL_STUCK_POS);
        let since = self.word64(CTRL_STUCK_SINCE);
        if at.load(Ordering::Relaxed) != pos + 1 {
            since.store(now, Ordering::Relaxed);
            at.store(pos + 1, Ordering::Relaxed);
            return false;
        }
        let waited = now.saturating_sub(since.load(Ordering::Relaxed));
        if waited < STUCK_CHECK_AFTER.as_nanos() as u64 {
            return false;
        }
        since.store(now, Ordering::Relaxed);
        self.recover(pos)
    }

    /// Discard every record reserved by the calling thread and not yet
    /// committed (a run that ended without releasing its reservations).
    pub fn discard_thread_reservations(&self) -> usize {
        let me = current_tid();
        let mut n = 0;
        for s in 0..SLOTS {
            let p = self.slot_pos(s).load(Ordering::Acquire);
            if p != 0 && self.slot_tid(s).load(Ordering::Relaxed) == me {
                n += usize::from(self.commit(p - 1, true, 0).is_ok());
            }
        }
        n
    }

    fn slot_pos(&self, i: usize) -> &AtomicU64 {
        self.word64(TABLE + i * SLOT_SIZE)
    }

    fn slot_tid(&self, i: usize) -> &AtomicU32 {
        self.word32(TABLE + i * SLOT_SIZE + 8)
    }

    /// Enter a reservation in the table (under the producer lock). Entries
    /// of consumed positions are stale (left by a producer that died after
    /// entering a reservation it never published) and are reused. A full
    /// table leaves the reservation out: it cannot be recovered then.
    fn track(&self, pos: u64, cons: u64) {
        let hint = (pos / 8) as usize;
        for i in 0..SLOTS {
            let s = (hint + i) % SLOTS;
            let p = self.slot_pos(s).load(Ordering::Acquire);
            if p == 0 || p - 1 < cons || p == pos + 1 {
                self.slot_tid(s).store(current_tid(), Ordering::Relaxed);
                self.slot_pos(s).store(pos + 1, Ordering::Release);
                return;
            }
        }
    }

    /// The table entry of the reservation at `pos`.
    fn find(&self, pos: u64) -> Option<usize> {
        let hint = (pos / 8) as usize;
        (0..SLOTS)
            .map(|i| (hint + i) % SLOTS)
            .find(|&s| self.slot_pos(s).load(Ordering::Acquire) == pos + 1)
    }

    fn untrack(&self, pos: u64) {
        if let Some(s) = self.find(pos) {
            let _ =
                self.slot_pos(s)
                    .compare_exchange(pos + 1, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// Discard the BUSY record at `pos` if the thread that reserved it no
    /// longer exists. Returns whether it did.
    pub fn recover(&self, pos: u64) -> bool {
        // Every entry for `pos` must name a dead thread: a producer that
        // died before publishing a reservation can leave a stale entry for
        // the position the next producer then reserves.
        let entries: Vec<usize> = (0..SLOTS)
            .filter(|&s| self.slot_pos(s).load(Ordering::Acquire) == pos + 1)
            .collect();
        let me = current_tid();
        let all_dead = entries.iter().all(|&s| {
            let tid = self.slot_tid(s).load(Ordering::Relaxed);
            tid != me && !alive(tid)
        });
        if entries.is_empty() || !all_dead {
            return false;
        }
        let hdr = self.hdr_len(pos & self.mask);
        let old = hdr.load(Ordering::Acquire);
        if old & BUSY_BIT == 0 {
            return false;
        }
        let recovered = hdr
            .compare_exchange(
                old,
                (old ^ BUSY_BIT) | DISCARD_BIT,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok();
        for s in entries {
            let _ =
                self.slot_pos(s)
                    .compare_exchange(pos + 1, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
        recovered
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmapping the two data mappings made in `map`; the ring
        // is going away and nothing refers to them any more.
        unsafe { libc::munmap(self.data.cast(), 2 * self.size) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::MapType;

    #[test]
    fn a_stale_table_entry_never_discards_a_live_record() {
        let spec = MapSpec::new("r", MapType::Ringbuf, 0, 0, page_size() as u32, 0);
        let ring = Ring::create(&spec, None).unwrap();
        // A producer entered position 0 and died before publishing it.
        std::thread::scope(|s| {
            s.spawn(|| ring.track(0, 0));
        });
        // Position 0 is reserved again by a live thread.
        assert_eq!(ring.reserve(8), Some(0));
        assert!(!ring.recover(0));
        // A second stale entry for the same position, in another slot.
        std::thread::scope(|s| {
            s.spawn(|| {
                let tid = current_tid();
                ring.slot_tid(5).store(tid, Ordering::Relaxed);
                ring.slot_pos(5).store(1, Ordering::Release);
            });
        });
        assert!(!ring.recover(0));
        ring.commit(0, false, 0).unwrap();
        assert_eq!(ring.hdr_len(0).load(Ordering::Relaxed), 8);
        // Once its position is consumed, the stale entry is reused: with
        // every other entry taken, the next reservation lands in it.
        ring.consumer_pos().store(16, Ordering::Release);
        for s in (0..SLOTS).filter(|&s| s != 5) {
            ring.slot_pos(s).store(100_000, Ordering::Relaxed);
        }
        assert_eq!(ring.reserve(8), Some(16));
        assert_eq!(ring.find(16), Some(5));
    }
}
