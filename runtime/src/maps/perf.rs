//! `BPF_MAP_TYPE_PERF_EVENT_ARRAY`: an array of per-CPU perf buffers that
//! programs write records into with `bpf_perf_event_output`, read by a
//! user-space [`PerfBuffer`] (libbpf's `perf_buffer`).
//!
//! The array's slots hold [`PerfEvent`]s, this runtime's stand-in for a
//! perf event of type `PERF_COUNT_SW_BPF_OUTPUT` opened on one CPU and
//! mapped: a power-of-two number of pages of records with a head (moved by
//! producers) and a tail (moved by the consumer). User space names a
//! perf event by its id where the kernel takes a perf event fd
//! (`update(key, id)`). [`PerfBuffer::new`] opens one event per CPU slot and
//! puts it in the slot of that CPU, as `perf_buffer__new` does.
//!
//! Records have the kernel's shapes (`struct perf_event_header`, then the
//! body): `PERF_RECORD_SAMPLE` with only `PERF_SAMPLE_RAW` (a u32 size and
//! the data, padded so the record is a multiple of 8 bytes; the size counts
//! the padding, whose bytes are left as they were, and the consumer sees the
//! padded data as libbpf's `sample_cb` does) and `PERF_RECORD_LOST` (event id, count). A record that
//! does not fit is dropped and counted; the count goes out as a LOST record
//! in front of the next record that fits, and the helper returns `ENOSPC`.
//!
//! The events and buffers live in process memory: this map cannot be pinned.

use super::error::{MapError, MapResult};
use super::lock::SpinLock;
use super::notify::{self, Notify, Woken};
use super::shm::page_size;
use super::{errno, flags, Map, MapImpl, MapSpec};
use std::any::Any;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Duration;

/// `BPF_F_INDEX_MASK`: the slot index in `bpf_perf_event_output`'s flags.
pub const BPF_F_INDEX_MASK: u64 = 0xffff_ffff;
/// `BPF_F_CURRENT_CPU`: the slot of the CPU the program runs on.
pub const BPF_F_CURRENT_CPU: u64 = BPF_F_INDEX_MASK;
/// `BPF_F_CTXLEN_MASK`: bytes of the context appended (skb and XDP programs).
pub const BPF_F_CTXLEN_MASK: u64 = 0xfffff << 32;

/// `perf_event_header.type` values.
pub const PERF_RECORD_LOST: u32 = 2;
pub const PERF_RECORD_SAMPLE: u32 = 9;
/// `perf_event_header.misc` of samples: the kernel writes them from kernel
/// context (`PERF_RECORD_MISC_KERNEL`).
pub const PERF_RECORD_MISC_KERNEL: u16 = 1;

/// Size of `struct perf_event_header`.
const EVENT_HDR: usize = 8;
/// Size of a `PERF_RECORD_LOST` record (header, id, lost).
const LOST_REC: usize = 24;

/// A perf buffer of one CPU: the records of `bpf_perf_event_output` calls
/// that chose this event.
pub struct PerfEvent {
    id: u32,
    cpu: u32,
    data: *mut u8,
    size: usize,
    /// `data_head`: where the next record goes (producers, under `lock`).
    head: AtomicU64,
    /// `data_tail`: how far the consumer has read.
    tail: AtomicU64,
    /// Records dropped since the last LOST record went out.
    lost: AtomicU64,
    /// Producers of one CPU slot may run on several threads here.
    lock: AtomicU32,
    wake: Arc<WakeWords>,
}

// SAFETY: `data` is a private mapping owned by the event; producers write
// it under `lock` and publish with `head`, the consumer reads up to `head`
// and frees with `tail`.
unsafe impl Send for PerfEvent {}
// SAFETY: as above.
unsafe impl Sync for PerfEvent {}

#[derive(Default)]
struct WakeWords {
    seq: AtomicU32,
    sleepers: AtomicU32,
}

impl WakeWords {
    fn notify(&self) -> Notify<'_> {
        Notify::new(&self.seq, &self.sleepers)
    }
}

/// Every live perf event by id, for `update(key, id)`.
fn events() -> &'static Mutex<BTreeMap<u32, Weak<PerfEvent>>> {
    static E: OnceLock<Mutex<BTreeMap<u32, Weak<PerfEvent>>>> = OnceLock::new();
    E.get_or_init(|| Mutex::new(BTreeMap::new()))
}

static NEXT_EVENT_ID: AtomicU32 = AtomicU32::new(1);

impl PerfEvent {
    fn new(cpu: u32, pages: usize, wake: Arc<WakeWords>) -> MapResult<Arc<PerfEvent>> {
        let size = pages
            .checked_mul(page_size())
            .filter(|&s| s <= isize::MAX as usize)
            .ok_or(MapError::NOMEM)?;
        // SAFETY: a fresh private anonymous mapping, checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(MapError::with_reason(
                errno::ENOMEM,
                format!(
                    "cannot allocate a perf buffer of {size} bytes: {}",
                    std::io::Error::last_os_error()
                ),
            ));
        }
        let ev = Arc::new(PerfEvent {
            id: NEXT_EVENT_ID.fetch_add(1, Ordering::Relaxed),
            cpu,
            data: p.cast(),
            size,
            head: AtomicU64::new(0),
            tail: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            lock: AtomicU32::new(0),
            wake,
        });
        events()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ev.id, Arc::downgrade(&ev));
        Ok(ev)
    }

    /// The number user space puts in a perf event array slot.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The CPU slot the event belongs to.
    pub fn cpu(&self) -> u32 {
        self.cpu
    }

    /// Records dropped and not yet reported.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    fn by_id(id: u32) -> Option<Arc<PerfEvent>> {
        events()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .and_then(Weak::upgrade)
    }

    /// Copy `bytes` to data offset `pos` (mod size), wrapping at the end.
    fn put(&self, pos: u64, bytes: &[u8]) {
        let off = (pos as usize) & (self.size - 1);
        let first = bytes.len().min(self.size - off);
        // SAFETY: both pieces lie inside the mapping, in space reserved by
        // the caller (between head and tail) that the consumer is not reading.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.data.add(off), first);
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr().add(first),
                self.data,
                bytes.len() - first,
            );
        }
    }

    fn get(&self, pos: u64, out: &mut [u8]) {
        let off = (pos as usize) & (self.size - 1);
        let first = out.len().min(self.size - off);
        // SAFETY: inside the mapping, in published records before `head`.
        unsafe {
            std::ptr::copy_nonoverlapping(self.data.add(off), out.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(
                self.data,
                out.as_mut_ptr().add(first),
                out.len() - first,
            );
        }
    }

    /// `perf_event_output` of a raw sample made of `frags`.
    fn output(&self, frags: &[&[u8]]) -> MapResult<()> {
        let sum: usize = frags.iter().map(|f| f.len()).sum();
        let raw = (sum + 4).next_multiple_of(8);
        let rec = EVENT_HDR + raw;
        // `perf_event_header.size` is 16 bits.
        if rec > usize::from(u16::MAX) {
            return Err(MapError::TOO_BIG);
        }
        let _g = SpinLock::new(&self.lock).lock();
        let lost = self.lost.load(Ordering::Relaxed);
        let need = rec + if lost != 0 { LOST_REC } else { 0 };
        let head = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Acquire);
        // CIRC_SPACE: one byte always stays free.
        let space = (tail.wrapping_sub(head + 1) as usize) & (self.size - 1);
        if space < need {
            self.lost.fetch_add(1, Ordering::Relaxed);
            return Err(MapError::errno(errno::ENOSPC));
        }
        let mut at = head;
        if lost != 0 {
            let mut r = [0u8; LOST_REC];
            r[..4].copy_from_slice(&PERF_RECORD_LOST.to_ne_bytes());
            r[6..8].copy_from_slice(&(LOST_REC as u16).to_ne_bytes());
            r[8..16].copy_from_slice(&u64::from(self.id).to_ne_bytes());
            r[16..24].copy_from_slice(&self.lost.swap(0, Ordering::Relaxed).to_ne_bytes());
            self.put(at, &r);
            at += LOST_REC as u64;
        }
        let mut h = [0u8; EVENT_HDR + 4];
        h[..4].copy_from_slice(&PERF_RECORD_SAMPLE.to_ne_bytes());
        h[4..6].copy_from_slice(&PERF_RECORD_MISC_KERNEL.to_ne_bytes());
        h[6..8].copy_from_slice(&(rec as u16).to_ne_bytes());
        h[8..12].copy_from_slice(&((raw - 4) as u32).to_ne_bytes());
        self.put(at, &h);
        at += h.len() as u64;
        for f in frags {
            self.put(at, f);
            at += f.len() as u64;
        }
        // The padding is skipped, not written: it holds what was there
        // before, as in the kernel (`perf_output_skip`).
        self.head.store(head + need as u64, Ordering::Release);
        // `wakeup_events = 1`: every sample wakes the reader.
        self.wake.notify().wake();
        Ok(())
    }
}

impl Drop for PerfEvent {
    fn drop(&mut self) {
        let mut all = events().lock().unwrap_or_else(|e| e.into_inner());
        if all.get(&self.id).is_some_and(|w| w.strong_count() == 0) {
            all.remove(&self.id);
        }
        // SAFETY: unmapping the event's own mapping; nothing refers to it.
        unsafe { libc::munmap(self.data.cast(), self.size) };
    }
}

/// A `PERF_EVENT_ARRAY` map.
pub struct PerfEventArray {
    spec: MapSpec,
    slots: Box<[RwLock<Option<Arc<PerfEvent>>>]>,
}

impl PerfEventArray {
    /// The kernel's checks (`fd_array_map_alloc_check`, then the array's),
    /// after [`default_entries`].
    pub fn create(spec: &MapSpec) -> MapResult<PerfEventArray> {
        let name = &spec.name;
        if spec.key_size != 4 || spec.value_size != 4 || spec.max_entries == 0 {
            return Err(MapError::invalid(format!(
                "map {name}: a perf_event_array needs key_size 4, value_size 4 and non-zero max_entries (has {}, {}, {})",
                spec.key_size, spec.value_size, spec.max_entries
            )));
        }
        if spec.flags & (flags::BPF_F_RDONLY_PROG | flags::BPF_F_WRONLY_PROG) != 0 {
            return Err(MapError::invalid(format!(
                "map {name}: a perf_event_array cannot be read-only or write-only for programs"
            )));
        }
        let slots = (0..spec.max_entries).map(|_| RwLock::new(None)).collect();
        Ok(PerfEventArray {
            spec: spec.clone(),
            slots,
        })
    }

    /// The perf event array behind `map`, if it is one.
    pub fn from_map(map: &Map) -> Option<&PerfEventArray> {
        map.imp().as_any().downcast_ref::<PerfEventArray>()
    }

    fn index(&self, key: &[u8]) -> u32 {
        u32::from_ne_bytes(key[..4].try_into().expect("4-byte key"))
    }

    fn slot(&self, i: u32) -> Option<&RwLock<Option<Arc<PerfEvent>>>> {
        self.slots.get(i as usize)
    }

    /// `bpf_perf_event_output(ctx, map, flags, data, size)` from a program
    /// running on CPU slot `cpu`. `flags` is the slot index or
    /// [`BPF_F_CURRENT_CPU`]; other bits are `EINVAL`. Errors as the
    /// kernel's: `E2BIG` index out of range, `ENOENT` empty slot,
    /// `EOPNOTSUPP` the slot's event belongs to another CPU, `ENOSPC` no
    /// room (counted as lost). `E2BIG` also for a record above the 64 KiB
    /// a perf record header can describe.
    pub fn output(&self, flags: u64, cpu: u32, data: &[u8]) -> MapResult<()> {
        if flags & !BPF_F_INDEX_MASK != 0 {
            return Err(MapError::INVAL);
        }
        self.output_frags(flags, cpu, &[data])
    }

    /// [`PerfEventArray::output`] of a sample made of several pieces, for
    /// `bpf_skb_output`/`bpf_xdp_output` (the metadata, then the context
    /// bytes the caller copied). Only the index bits of `flags` are read:
    /// the caller has checked the others.
    pub fn output_frags(&self, flags: u64, cpu: u32, frags: &[&[u8]]) -> MapResult<()> {
        let mut index = flags & BPF_F_INDEX_MASK;
        if index == BPF_F_CURRENT_CPU {
            index = u64::from(cpu);
        }
        let slot = u32::try_from(index)
            .ok()
            .and_then(|i| self.slot(i))
            .ok_or(MapError::TOO_BIG)?;
        let guard = slot.read().unwrap_or_else(|e| e.into_inner());
        let ev = guard.as_ref().ok_or(MapError::NOENT)?;
        if ev.cpu != cpu {
            return Err(MapError::OPNOTSUPP);
        }
        ev.output(frags)
    }

    /// Put `ev` in slot `index` (what `update(key, id)` does).
    fn set(&self, index: u32, ev: Option<Arc<PerfEvent>>) -> MapResult<Option<Arc<PerfEvent>>> {
        let slot = self.slot(index).ok_or(MapError::TOO_BIG)?;
        let mut g = slot.write().unwrap_or_else(|e| e.into_inner());
        Ok(std::mem::replace(&mut *g, ev))
    }
}

/// libbpf's rule for a perf event array declared without `max_entries`:
/// one slot per CPU (here: per CPU slot). The kernel itself refuses 0.
pub fn default_entries(spec: &MapSpec, ncpus: u32) -> MapSpec {
    let mut s = spec.clone();
    if s.max_entries == 0 {
        s.max_entries = ncpus;
    }
    s
}

impl MapImpl for PerfEventArray {
    fn lookup(&self, _key: Option<&[u8]>, _value: &mut [u8], _flags: u64) -> MapResult<()> {
        // The kernel cannot turn a stored perf event back into an fd.
        Err(MapError::NOTSUPP)
    }

    fn update(&self, key: Option<&[u8]>, value: &[u8], flags: u64) -> MapResult<()> {
        if flags != flags::BPF_ANY {
            return Err(MapError::INVAL);
        }
        let index = self.index(key.unwrap_or(&[0; 4]));
        if index >= self.spec.max_entries {
            return Err(MapError::TOO_BIG);
        }
        let id = u32::from_ne_bytes(value[..4].try_into().expect("4-byte value"));
        let ev = PerfEvent::by_id(id).ok_or(MapError::errno(errno::EBADF))?;
        self.set(index, Some(ev))?;
        Ok(())
    }

    fn delete(&self, key: &[u8]) -> MapResult<()> {
        match self.set(self.index(key), None)? {
            Some(_) => Ok(()),
            None => Err(MapError::NOENT),
        }
    }

    fn get_next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> MapResult<()> {
        let max = self.spec.max_entries;
        let n = match key.map(|k| self.index(k)) {
            Some(i) if i < max && i == max - 1 => return Err(MapError::NOENT),
            Some(i) if i < max => i + 1,
            _ => 0,
        };
        next.copy_from_slice(&n.to_ne_bytes());
        Ok(())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The user-space reader of a perf event array (libbpf's `perf_buffer`):
/// one [`PerfEvent`] per CPU slot, each in the array slot of its CPU.
pub struct PerfBuffer {
    map: Arc<Map>,
    events: Vec<Arc<PerfEvent>>,
    wake: Arc<WakeWords>,
    /// A record that wraps around the end of a buffer is copied here.
    scratch: Vec<u8>,
}

impl PerfBuffer {
    /// `perf_buffer__new(map, pages_per_cpu)`: `pages_per_cpu` pages (a
    /// power of two) for each CPU slot, as many slots as the map's CPU
    /// slots or its `max_entries`, whichever is fewer.
    pub fn new(map: &Arc<Map>, pages_per_cpu: usize) -> MapResult<PerfBuffer> {
        if !pages_per_cpu.is_power_of_two() {
            return Err(MapError::invalid(format!(
                "perf buffer of map {}: the page count must be a power of two, not {pages_per_cpu}",
                map.name()
            )));
        }
        if PerfEventArray::from_map(map).is_none() {
            return Err(MapError::invalid(format!(
                "map {} is a {} map, not a perf_event_array",
                map.name(),
                map.map_type()
            )));
        }
        let cpus = map.ncpus().min(map.spec().max_entries);
        let wake = Arc::new(WakeWords::default());
        let mut pb = PerfBuffer {
            map: map.clone(),
            events: Vec::new(),
            wake: wake.clone(),
            scratch: Vec::new(),
        };
        for cpu in 0..cpus {
            let ev = PerfEvent::new(cpu, pages_per_cpu, wake.clone())?;
            map.update(&cpu.to_ne_bytes(), &ev.id.to_ne_bytes(), flags::BPF_ANY)?;
            pb.events.push(ev);
        }
        Ok(pb)
    }

    /// The perf events, one per CPU slot (`perf_buffer__buffer_fd`).
    pub fn events(&self) -> &[Arc<PerfEvent>] {
        &self.events
    }

    /// Read every record of every CPU's buffer (`perf_buffer__consume`):
    /// samples go to `on_sample(cpu, data)`, lost counts to
    /// `on_lost(cpu, count)`. Returns the number of records read.
    pub fn consume(
        &mut self,
        mut on_sample: impl FnMut(u32, &[u8]),
        mut on_lost: impl FnMut(u32, u64),
    ) -> usize {
        let mut n = 0;
        for i in 0..self.events.len() {
            let ev = self.events[i].clone();
            n += self.read_event(&ev, &mut on_sample, &mut on_lost);
        }
        n
    }

    /// Wait up to `timeout` (`None`: without limit) for a record in any
    /// CPU's buffer, then read them all (`perf_buffer__poll`, which counts
    /// buffers; this counts records).
    pub fn poll(
        &mut self,
        timeout: Option<Duration>,
        mut on_sample: impl FnMut(u32, &[u8]),
        mut on_lost: impl FnMut(u32, u64),
    ) -> usize {
        let deadline = notify::deadline(timeout);
        let wake = self.wake.clone();
        let seen = wake.notify().seq();
        let n = self.consume(&mut on_sample, &mut on_lost);
        if n > 0 {
            return n;
        }
        match wake.notify().wait(seen, deadline) {
            Woken::Notified | Woken::TimedOut => self.consume(&mut on_sample, &mut on_lost),
        }
    }

    /// `perf_event_read_simple` over one buffer.
    fn read_event(
        &mut self,
        ev: &PerfEvent,
        on_sample: &mut dyn FnMut(u32, &[u8]),
        on_lost: &mut dyn FnMut(u32, u64),
    ) -> usize {
        let head = ev.head.load(Ordering::Acquire);
        let mut tail = ev.tail.load(Ordering::Relaxed);
        let mut n = 0;
        while tail != head {
            let mut h = [0u8; EVENT_HDR];
            ev.get(tail, &mut h);
            let kind = u32::from_ne_bytes(h[..4].try_into().expect("4 bytes"));
            let size = u16::from_ne_bytes(h[6..8].try_into().expect("2 bytes")) as usize;
            if size < EVENT_HDR {
                // Cannot happen with records written here; do not spin on it.
                tail = head;
                break;
            }
            self.scratch.resize(size, 0);
            ev.get(tail, &mut self.scratch);
            let rec = &self.scratch;
            match kind {
                PERF_RECORD_SAMPLE => {
                    let len = u32::from_ne_bytes(rec[8..12].try_into().expect("4 bytes")) as usize;
                    on_sample(ev.cpu, &rec[12..12 + len]);
                }
                PERF_RECORD_LOST => {
                    on_lost(
                        ev.cpu,
                        u64::from_ne_bytes(rec[16..24].try_into().expect("8 bytes")),
                    );
                }
                _ => {}
            }
            n += 1;
            tail += size as u64;
        }
        ev.tail.store(tail, Ordering::Release);
        n
    }
}

impl Drop for PerfBuffer {
    /// Empty the slots that still hold this buffer's events
    /// (`perf_buffer__free`).
    fn drop(&mut self) {
        if let Some(arr) = PerfEventArray::from_map(&self.map) {
            for ev in &self.events {
                if let Some(slot) = arr.slot(ev.cpu) {
                    let mut g = slot.write().unwrap_or_else(|e| e.into_inner());
                    if g.as_ref().is_some_and(|cur| Arc::ptr_eq(cur, ev)) {
                        *g = None;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "perf_tests.rs"]
mod tests;
