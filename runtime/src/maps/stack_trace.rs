//! `BPF_MAP_TYPE_STACK_TRACE` and the stack helpers (`bpf_get_stackid`,
//! `bpf_get_stack`), over the native call stack of the host thread that
//! runs the program: its user stack. Kernel stacks do not exist here; asking
//! for one (no `BPF_F_USER_STACK`) gets the kernel's answer for a stack it
//! cannot fetch, `-EFAULT`.
//!
//! The map stores stacks by id: key u32, value `value_size / 8` u64
//! instruction pointers (or, with `BPF_F_STACK_BUILD_ID`, `value_size / 32`
//! `struct bpf_stack_build_id` entries), unused entries zero. An id is
//! `jhash2(ips) & (buckets - 1)` with `roundup_pow_of_two(max_entries)`
//! buckets, so the ids of a stack are the kernel's. `max_entries` stacks are
//! preallocated; a bucket holding another stack is `-EEXIST` unless
//! `BPF_F_REUSE_STACKID` replaces it, and `BPF_F_FAST_STACK_CMP` compares
//! hashes only. User space looks stacks up by id, deletes them and walks the
//! ids in use; updates are `EINVAL`, as in the kernel.
//!
//! Which frames are the program's stack: a run wrapped in [`run_anchored`]
//! sees the stack of the host code that started the run (the runtime's,
//! engine's and program's own frames are left out); without an anchor, the
//! stack starts at the caller of [`StackTraceMap::get_stackid`] or
//! [`get_stack`]. Compiled code has no unwind tables, so an unwinder cannot
//! walk through it: engines running JIT or AOT code pass `capture_now` to
//! take the (unchanging) host stack when the run starts.
//!
//! The map lives in a storage block (buckets hold element numbers, elements
//! a hash, a length and the entries) and can be pinned; stacks are
//! addresses in the process that took them.

use super::error::{errno, MapError, MapResult};
use super::flags::{BPF_F_NUMA_NODE, BPF_F_RDONLY, BPF_F_STACK_BUILD_ID, BPF_F_WRONLY};
use super::lock::SpinLock;
use super::store::{Store, HEADER_SIZE};
use super::{values, MapImpl, MapSpec};
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// Helper flags (`include/uapi/linux/bpf.h`).
pub const BPF_F_SKIP_FIELD_MASK: u64 = 0xff;
pub const BPF_F_USER_STACK: u64 = 1 << 8;
pub const BPF_F_FAST_STACK_CMP: u64 = 1 << 9;
pub const BPF_F_REUSE_STACKID: u64 = 1 << 10;
pub const BPF_F_USER_BUILD_ID: u64 = 1 << 11;

/// `sizeof(struct bpf_stack_build_id)` and its fields.
pub const BUILD_ID_ENTRY: usize = 32;
pub const BUILD_ID_SIZE: usize = 20;
pub const BUILD_ID_STATUS_VALID: i32 = 1;
pub const BUILD_ID_STATUS_IP: i32 = 2;

/// Element header: hash, nr, free link, pad.
const ELEM_HDR: usize = 16;
const CTRL_LOCK: usize = 0;
const CTRL_FREE: usize = 4;
const CTRL_SIZE: usize = 64;

/// `kernel.perf_event_max_stack`: the deepest stack (default 127).
pub fn max_stack() -> u32 {
    static N: OnceLock<u32> = OnceLock::new();
    *N.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/perf_event_max_stack")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(127)
    })
}

/// The kernel's `jhash2` (Bob Jenkins' lookup3 over 32-bit words).
pub fn jhash2(words: &[u32], initval: u32) -> u32 {
    fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
        *a = a.wrapping_sub(*c);
        *a ^= c.rotate_left(4);
        *c = c.wrapping_add(*b);
        *b = b.wrapping_sub(*a);
        *b ^= a.rotate_left(6);
        *a = a.wrapping_add(*c);
        *c = c.wrapping_sub(*b);
        *c ^= b.rotate_left(8);
        *b = b.wrapping_add(*a);
        *a = a.wrapping_sub(*c);
        *a ^= c.rotate_left(16);
        *c = c.wrapping_add(*b);
        *b = b.wrapping_sub(*a);
        *b ^= a.rotate_left(19);
        *a = a.wrapping_add(*c);
        *c = c.wrapping_sub(*b);
        *c ^= b.rotate_left(4);
        *b = b.wrapping_add(*a);
    }
    fn fin(a: &mut u32, b: &mut u32, c: &mut u32) {
        *c ^= *b;
        *c = c.wrapping_sub(b.rotate_left(14));
        *a ^= *c;
        *a = a.wrapping_sub(c.rotate_left(11));
        *b ^= *a;
        *b = b.wrapping_sub(a.rotate_left(25));
        *c ^= *b;
        *c = c.wrapping_sub(b.rotate_left(16));
        *a ^= *c;
        *a = a.wrapping_sub(c.rotate_left(4));
        *b ^= *a;
        *b = b.wrapping_sub(a.rotate_left(14));
        *c ^= *b;
        *c = c.wrapping_sub(b.rotate_left(24));
    }
    let init = 0xdead_beefu32
        .wrapping_add((words.len() as u32) << 2)
        .wrapping_add(initval);
    let (mut a, mut b, mut c) = (init, init, init);
    let mut k = words;
    while k.len() > 3 {
        a = a.wrapping_add(k[0]);
        b = b.wrapping_add(k[1]);
        c = c.wrapping_add(k[2]);
        mix(&mut a, &mut b, &mut c);
        k = &k[3..];
    }
    match k.len() {
        3 => {
            c = c.wrapping_add(k[2]);
            b = b.wrapping_add(k[1]);
            a = a.wrapping_add(k[0]);
        }
        2 => {
            b = b.wrapping_add(k[1]);
            a = a.wrapping_add(k[0]);
        }
        1 => a = a.wrapping_add(k[0]),
        _ => return c,
    }
    fin(&mut a, &mut b, &mut c);
    c
}

/// The hash of a stack: `jhash2` over the entries' 32-bit words in memory order.
fn stack_hash(ips: &[u64]) -> u32 {
    let words: Vec<u32> = ips
        .iter()
        .flat_map(|ip| {
            let b = ip.to_ne_bytes();
            [
                u32::from_ne_bytes(b[..4].try_into().expect("4 bytes")),
                u32::from_ne_bytes(b[4..].try_into().expect("4 bytes")),
            ]
        })
        .collect();
    jhash2(&words, 0)
}

// ---- capturing the host thread's stack ----

/// Frames kept by a capture: the host's, above the run's anchor.
const CAPTURE_MAX: usize = 4096;

thread_local! {
    /// The anchor of the run in progress on this thread (0: none). Plain
    /// cells without destructors: the per-run bookkeeping is two stores.
    static ANCHOR: Cell<usize> = const { Cell::new(0) };
    /// Whether [`CAPTURED`] holds the run's stack, taken at once.
    static HAS_CAPTURED: Cell<bool> = const { Cell::new(false) };
    static CAPTURED: RefCell<Option<Rc<Vec<u64>>>> = const { RefCell::new(None) };
}

/// The return addresses of the frames of the callers of the function
/// whose frame holds address `anchor`, innermost first, at most `max`.
#[inline(never)]
fn walk_above(anchor: usize, max: usize) -> Vec<u64> {
    let mut out = Vec::new();
    let mut visit = |frame: &backtrace::Frame| {
        // A frame's stack pointer: the anchoring function's and those of
        // the functions it called are at or below the anchor (a local of
        // the anchoring function); its callers' are above.
        if (frame.sp() as usize) <= anchor {
            return true;
        }
        out.push(frame.ip() as u64);
        out.len() < max
    };
    // SAFETY: on the Linux targets the runtime supports the unwinder
    // (`_Unwind_Backtrace`) is safe to call from many threads at once; the
    // crate's lock only guards platforms where it is not.
    unsafe { backtrace::trace_unsynchronized(&mut visit) };
    out
}

/// Run `f` as one program run: stack helpers called inside it see the stack
/// of the code that called `run_anchored`, without the frames of the
/// runtime, the engine or the program. With `capture_now` that stack is
/// taken at once (engines running compiled code, which unwinders cannot
/// walk through, need this); otherwise it is taken when a helper asks.
#[inline(never)]
pub fn run_anchored<R>(capture_now: bool, f: impl FnOnce() -> R) -> R {
    let marker = 0u8;
    let anchor = std::hint::black_box(&marker) as *const u8 as usize;
    let prev_anchor = ANCHOR.replace(anchor);
    // The captured stack is touched only when this run or the one around
    // it (a nested run) has one.
    let prev_captured = (capture_now || HAS_CAPTURED.get()).then(|| {
        let c = capture_now.then(|| Rc::new(walk_above(anchor, CAPTURE_MAX)));
        HAS_CAPTURED.set(c.is_some());
        CAPTURED.with(|r| r.replace(c))
    });
    struct Restore {
        anchor: usize,
        captured: Option<Option<Rc<Vec<u64>>>>,
    }
    impl Drop for Restore {
        fn drop(&mut self) {
            ANCHOR.set(self.anchor);
            if let Some(prev) = self.captured.take() {
                HAS_CAPTURED.set(prev.is_some());
                let _ = CAPTURED.try_with(|r| *r.borrow_mut() = prev);
            }
        }
    }
    let _restore = Restore {
        anchor: prev_anchor,
        captured: prev_captured,
    };
    let r = f();
    std::hint::black_box(&marker);
    r
}

/// The user stack a helper sees, at most `max` entries: the anchored run's
/// host stack, or the stack above `own_anchor` (the helper's own frame).
fn user_stack(own_anchor: usize, max: usize) -> Vec<u64> {
    let anchor = ANCHOR.get();
    if anchor == 0 {
        return walk_above(own_anchor, max);
    }
    let captured = HAS_CAPTURED
        .get()
        .then(|| CAPTURED.with(|r| r.borrow().clone()))
        .flatten();
    match captured {
        Some(captured) => captured.iter().take(max).copied().collect(),
        None => walk_above(anchor, max),
    }
}

// ---- build ids ----

/// A loaded object's file-backed segments and build id.
struct Object {
    /// (start, end, page-rounded file offset of start) per loadable segment.
    segments: Vec<(u64, u64, u64)>,
    build_id: Option<[u8; BUILD_ID_SIZE]>,
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

#[cfg(target_pointer_width = "64")]
type Phdr = libc::Elf64_Phdr;
#[cfg(target_pointer_width = "32")]
type Phdr = libc::Elf32_Phdr;

/// The objects mapped into this process, from the dynamic loader's list
/// (the vDSO left out: it is not backed by a file, so the kernel finds no
/// build id for it either).
// The casts widen 32-bit targets' ELF fields.
#[allow(clippy::unnecessary_cast)]
fn loaded_objects() -> Vec<Object> {
    extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut libc::c_void,
    ) -> i32 {
        // SAFETY: the loader passes a valid `info` for the duration of the
        // call and `data` is the `Vec<Object>` given to dl_iterate_phdr; the
        // program headers and PT_NOTE segments it lists are mapped readable.
        let (info, out) = unsafe { (&*info, &mut *(data as *mut Vec<Object>)) };
        let base = info.dlpi_addr as u64;
        // SAFETY: getauxval has no preconditions.
        let vdso = unsafe { libc::getauxval(libc::AT_SYSINFO_EHDR) } as u64;
        if vdso != 0 && base == vdso {
            return 0;
        }
        // SAFETY: `dlpi_phdr` points to `dlpi_phnum` program headers.
        let phdrs: &[Phdr] =
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
        let page = page_size();
        let mut obj = Object {
            segments: Vec::new(),
            build_id: None,
        };
        for ph in phdrs {
            let vaddr = base + ph.p_vaddr as u64;
            if ph.p_type == libc::PT_LOAD {
                let start = vaddr & !(page - 1);
                let end = vaddr + ph.p_memsz as u64;
                obj.segments
                    .push((start, end, (ph.p_offset as u64) & !(page - 1)));
            } else if ph.p_type == libc::PT_NOTE && obj.build_id.is_none() {
                // SAFETY: a PT_NOTE segment of a loaded object lies inside
                // one of its mapped, readable load segments.
                let notes =
                    unsafe { std::slice::from_raw_parts(vaddr as *const u8, ph.p_filesz as usize) };
                obj.build_id = find_build_id(notes);
            }
        }
        out.push(obj);
        0
    }
    let mut out: Vec<Object> = Vec::new();
    // SAFETY: `each` only uses `data` as the vector passed here.
    unsafe {
        libc::dl_iterate_phdr(
            Some(each),
            &mut out as *mut Vec<Object> as *mut libc::c_void,
        )
    };
    out
}

/// The `NT_GNU_BUILD_ID` note in a notes segment, padded to 20 bytes.
fn find_build_id(mut notes: &[u8]) -> Option<[u8; BUILD_ID_SIZE]> {
    let word = |b: &[u8]| u32::from_ne_bytes(b[..4].try_into().expect("4 bytes")) as usize;
    while notes.len() >= 12 {
        let (namesz, descsz, ty) = (word(notes), word(&notes[4..]), word(&notes[8..]));
        let name_end = 12 + namesz.next_multiple_of(4);
        let desc_end = name_end.checked_add(descsz.next_multiple_of(4))?;
        if desc_end > notes.len() {
            return None;
        }
        if ty == 3 && namesz == 4 && &notes[12..16] == b"GNU\0" && descsz > 0 {
            let mut id = [0u8; BUILD_ID_SIZE];
            let n = descsz.min(BUILD_ID_SIZE);
            id[..n].copy_from_slice(&notes[name_end..name_end + n]);
            return Some(id);
        }
        notes = &notes[desc_end..];
    }
    None
}

/// `struct bpf_stack_build_id` entries for `ips`: the build id and file
/// offset where an object with a build id maps the address, else the
/// address itself with `BPF_STACK_BUILD_ID_IP`.
pub fn build_id_entries(ips: &[u64]) -> Vec<[u8; BUILD_ID_ENTRY]> {
    let objects = loaded_objects();
    ips.iter()
        .map(|&ip| {
            let mut e = [0u8; BUILD_ID_ENTRY];
            let hit = objects.iter().find_map(|o| {
                let id = o.build_id?;
                o.segments
                    .iter()
                    .find(|(s, end, _)| ip >= *s && ip < *end)
                    .map(|(s, _, off)| (id, off + (ip - s)))
            });
            match hit {
                Some((id, off)) => {
                    e[..4].copy_from_slice(&BUILD_ID_STATUS_VALID.to_ne_bytes());
                    e[4..24].copy_from_slice(&id);
                    e[24..].copy_from_slice(&off.to_ne_bytes());
                }
                None => {
                    e[..4].copy_from_slice(&BUILD_ID_STATUS_IP.to_ne_bytes());
                    e[24..].copy_from_slice(&ip.to_ne_bytes());
                }
            }
            e
        })
        .collect()
}

/// `min(size / elem + skip, perf_event_max_stack)`.
fn max_depth(size: u32, elem: u32, flags: u64) -> u32 {
    let skip = (flags & BPF_F_SKIP_FIELD_MASK) as u32;
    (size / elem + skip).min(max_stack())
}

// ---- bpf_get_stack ----

/// `bpf_get_stack(ctx, buf, size, flags)` for the calling host thread:
/// the user stack's addresses (or build id entries with
/// `BPF_F_USER_BUILD_ID`) after `flags & BPF_F_SKIP_FIELD_MASK` skipped
/// ones, the rest of `buf` zeroed; returns the bytes filled or `-errno`
/// (the whole buffer zeroed).
#[inline(never)]
pub fn get_stack(buf: &mut [u8], flags: u64) -> i64 {
    let marker = 0u8;
    let anchor = std::hint::black_box(&marker) as *const u8 as usize;
    let r = get_stack_from(|max| user_stack(anchor, max), buf, flags);
    std::hint::black_box(&marker);
    r
}

/// [`get_stack`] over a stack given as addresses (innermost first).
pub fn get_stack_ips(ips: &[u64], buf: &mut [u8], flags: u64) -> i64 {
    get_stack_from(|max| ips.iter().take(max).copied().collect(), buf, flags)
}

fn get_stack_from(trace: impl FnOnce(usize) -> Vec<u64>, buf: &mut [u8], flags: u64) -> i64 {
    let fail = |buf: &mut [u8], code: i32| {
        buf.fill(0);
        -(code as i64)
    };
    if flags & !(BPF_F_SKIP_FIELD_MASK | BPF_F_USER_STACK | BPF_F_USER_BUILD_ID) != 0 {
        return fail(buf, errno::EINVAL);
    }
    let user = flags & BPF_F_USER_STACK != 0;
    let build_id = flags & BPF_F_USER_BUILD_ID != 0;
    if !user && build_id {
        return fail(buf, errno::EINVAL);
    }
    let elem = if build_id { BUILD_ID_ENTRY } else { 8 };
    let Ok(size) = u32::try_from(buf.len()) else {
        return fail(buf, errno::EINVAL);
    };
    if !buf.len().is_multiple_of(elem) {
        return fail(buf, errno::EINVAL);
    }
    if !user {
        // No kernel stack to fetch.
        return fail(buf, errno::EFAULT);
    }
    let skip = (flags & BPF_F_SKIP_FIELD_MASK) as usize;
    let depth = max_depth(size, elem as u32, flags) as usize;
    let ips = trace(depth);
    if ips.len() < skip {
        return fail(buf, errno::EFAULT);
    }
    let kept = &ips[skip..];
    let len = kept.len() * elem;
    if build_id {
        for (i, e) in build_id_entries(kept).iter().enumerate() {
            buf[i * elem..(i + 1) * elem].copy_from_slice(e);
        }
    } else {
        for (i, ip) in kept.iter().enumerate() {
            buf[i * 8..i * 8 + 8].copy_from_slice(&ip.to_ne_bytes());
        }
    }
    buf[len..].fill(0);
    len as i64
}

// ---- the map ----

#[derive(Clone, Copy, Debug)]
struct Layout {
    n_buckets: u32,
    elem_stride: usize,
    ctrl: usize,
    buckets: usize,
    elems: usize,
    total: usize,
}

fn layout(spec: &MapSpec) -> MapResult<Layout> {
    let name = &spec.name;
    let allowed = BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY | BPF_F_STACK_BUILD_ID;
    if spec.flags & !allowed != 0 {
        return Err(MapError::invalid(format!(
            "map {name}: flags {:#x} are not valid for a stack_trace map",
            spec.flags & !allowed
        )));
    }
    let v = spec.value_size;
    if spec.max_entries == 0 || spec.key_size != 4 || v < 8 || !v.is_multiple_of(8) {
        return Err(MapError::invalid(format!(
            "map {name}: a stack_trace map needs key_size 4, a non-zero max_entries and a value_size that is a multiple of 8 (has {}, {}, {v})",
            spec.key_size, spec.max_entries
        )));
    }
    let max = max_stack();
    if spec.flags & BPF_F_STACK_BUILD_ID != 0 {
        if !(v as usize).is_multiple_of(BUILD_ID_ENTRY) || v / BUILD_ID_ENTRY as u32 > max {
            return Err(MapError::invalid(format!(
                "map {name}: with BPF_F_STACK_BUILD_ID value_size must be a multiple of {BUILD_ID_ENTRY} of at most {max} entries (has {v})"
            )));
        }
    } else if v / 8 > max {
        return Err(MapError::invalid(format!(
            "map {name}: value_size {v} holds more than perf_event_max_stack ({max}) addresses"
        )));
    }
    if spec.max_entries > 1 << 31 {
        return Err(MapError::with_reason(
            errno::E2BIG,
            format!(
                "map {name}: max_entries {} is more than 2^31",
                spec.max_entries
            ),
        ));
    }
    let n_buckets = spec.max_entries.next_power_of_two();
    let elem_stride = ELEM_HDR + v as usize;
    let ctrl = HEADER_SIZE;
    let buckets = ctrl + CTRL_SIZE;
    let elems = (buckets + n_buckets as usize * 4).next_multiple_of(64);
    let total = (spec.max_entries as usize)
        .checked_mul(elem_stride)
        .and_then(|b| b.checked_add(elems))
        .ok_or_else(|| MapError::with_reason(errno::ENOMEM, format!("map {name}: too large")))?;
    Ok(Layout {
        n_buckets,
        elem_stride,
        ctrl,
        buckets,
        elems,
        total,
    })
}

pub struct StackTraceMap {
    store: Store,
    spec: MapSpec,
    l: Layout,
    build_id: bool,
}

impl StackTraceMap {
    pub fn create(spec: &MapSpec, dir: Option<&Path>) -> MapResult<StackTraceMap> {
        let l = layout(spec)?;
        let store = Store::create(spec, 1, l.total - HEADER_SIZE, dir)?;
        let map = StackTraceMap::new(store, spec, l);
        for e in (0..spec.max_entries).rev() {
            map.push_free_unlocked(e);
        }
        map.store.mark_ready();
        Ok(map)
    }

    pub fn attach(store: Store, spec: &MapSpec) -> MapResult<StackTraceMap> {
        let l = layout(spec)?;
        if store.body_len() + HEADER_SIZE < l.total {
            return Err(MapError::invalid(format!(
                "pinned stack_trace map {} is shorter than its definition",
                spec.name
            )));
        }
        Ok(StackTraceMap::new(store, spec, l))
    }

    fn new(store: Store, spec: &MapSpec, l: Layout) -> StackTraceMap {
        StackTraceMap {
            store,
            spec: spec.clone(),
            l,
            build_id: spec.flags & BPF_F_STACK_BUILD_ID != 0,
        }
    }

    fn word(&self, off: usize) -> &AtomicU32 {
        // SAFETY: a 4-aligned offset of this layout inside the block, which
        // lives as long as `self`.
        unsafe { AtomicU32::from_ptr(self.store.shm().at(off) as *mut u32) }
    }

    fn bucket(&self, id: u32) -> &AtomicU32 {
        self.word(self.l.buckets + id as usize * 4)
    }

    fn elem_off(&self, e: u32) -> usize {
        self.l.elems + e as usize * self.l.elem_stride
    }

    fn hash_of(&self, e: u32) -> &AtomicU32 {
        self.word(self.elem_off(e))
    }

    fn nr_of(&self, e: u32) -> &AtomicU32 {
        self.word(self.elem_off(e) + 4)
    }

    fn free_next(&self, e: u32) -> &AtomicU32 {
        self.word(self.elem_off(e) + 8)
    }

    fn data(&self, e: u32) -> *mut u8 {
        self.store.shm().at(self.elem_off(e) + ELEM_HDR)
    }

    fn entry_size(&self) -> usize {
        if self.build_id {
            BUILD_ID_ENTRY
        } else {
            8
        }
    }

    fn push_free_unlocked(&self, e: u32) {
        let head = self.word(self.l.ctrl + CTRL_FREE);
        self.free_next(e)
            .store(head.load(Ordering::Relaxed), Ordering::Relaxed);
        head.store(e + 1, Ordering::Relaxed);
    }

    fn push_free(&self, e: u32) {
        let _g = SpinLock::new(self.word(self.l.ctrl + CTRL_LOCK)).lock();
        self.push_free_unlocked(e);
    }

    fn pop_free(&self) -> Option<u32> {
        let _g = SpinLock::new(self.word(self.l.ctrl + CTRL_LOCK)).lock();
        let head = self.word(self.l.ctrl + CTRL_FREE);
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

    /// Whether element `e` holds `nr` entries equal to `data`.
    fn same(&self, e: u32, nr: usize, data: &[u8]) -> bool {
        if self.nr_of(e).load(Ordering::Acquire) as usize != nr {
            return false;
        }
        let mut have = vec![0u8; data.len()];
        // SAFETY: `data.len()` is at most value_size: inside the element.
        unsafe { values::read(self.data(e), &mut have) };
        have == data
    }

    /// `bpf_get_stackid(ctx, map, flags)` for the calling host thread: the
    /// id of its user stack (after `flags & BPF_F_SKIP_FIELD_MASK` frames),
    /// storing the stack if its bucket is free, or `-errno`.
    #[inline(never)]
    pub fn get_stackid(&self, flags: u64) -> i64 {
        let marker = 0u8;
        let anchor = std::hint::black_box(&marker) as *const u8 as usize;
        let r = self.stackid_from(|max| user_stack(anchor, max), flags);
        std::hint::black_box(&marker);
        r
    }

    /// [`StackTraceMap::get_stackid`] over a stack given as addresses,
    /// innermost first (before skipping).
    pub fn get_stackid_ips(&self, ips: &[u64], flags: u64) -> i64 {
        self.stackid_from(|max| ips.iter().take(max).copied().collect(), flags)
    }

    fn stackid_from(&self, trace: impl FnOnce(usize) -> Vec<u64>, flags: u64) -> i64 {
        let err = |code: i32| -(code as i64);
        let known =
            BPF_F_SKIP_FIELD_MASK | BPF_F_USER_STACK | BPF_F_FAST_STACK_CMP | BPF_F_REUSE_STACKID;
        if flags & !known != 0 {
            return err(errno::EINVAL);
        }
        if flags & BPF_F_USER_STACK == 0 {
            // No kernel stack to fetch.
            return err(errno::EFAULT);
        }
        let skip = (flags & BPF_F_SKIP_FIELD_MASK) as usize;
        let depth = max_depth(self.spec.value_size, self.entry_size() as u32, flags) as usize;
        let ips = trace(depth);
        if ips.len() <= skip {
            return err(errno::EFAULT);
        }
        let nr = (ips.len() - skip).min(depth.saturating_sub(skip));
        let ips = &ips[skip..skip + nr];
        let hash = stack_hash(ips);
        let id = hash & (self.l.n_buckets - 1);
        let slot = self.bucket(id);
        let cur = slot.load(Ordering::Acquire);
        let cur = (cur != 0).then(|| cur - 1);
        let hash_matches = cur.is_some_and(|e| self.hash_of(e).load(Ordering::Acquire) == hash);
        if hash_matches && flags & BPF_F_FAST_STACK_CMP != 0 {
            return id as i64;
        }
        let raw: Vec<u8> = ips.iter().flat_map(|ip| ip.to_ne_bytes()).collect();
        if !self.build_id {
            if let Some(e) = cur.filter(|_| hash_matches) {
                if self.same(e, nr, &raw) {
                    return id as i64;
                }
            }
            if cur.is_some() && flags & BPF_F_REUSE_STACKID == 0 {
                return err(errno::EEXIST);
            }
        }
        let Some(new) = self.pop_free() else {
            return err(errno::ENOMEM);
        };
        let data: Vec<u8> = if self.build_id {
            build_id_entries(ips).concat()
        } else {
            raw
        };
        if self.build_id {
            if let Some(e) = cur.filter(|_| hash_matches) {
                if self.same(e, nr, &data) {
                    self.push_free(new);
                    return id as i64;
                }
            }
            if cur.is_some() && flags & BPF_F_REUSE_STACKID == 0 {
                self.push_free(new);
                return err(errno::EEXIST);
            }
        }
        // SAFETY: `data` is `nr` entries, at most value_size bytes.
        unsafe { values::write(self.data(new), &data) };
        self.hash_of(new).store(hash, Ordering::Relaxed);
        self.nr_of(new).store(nr as u32, Ordering::Release);
        let old = slot.swap(new + 1, Ordering::AcqRel);
        if old != 0 {
            self.push_free(old - 1);
        }
        id as i64
    }

    /// The stack stored under `id`, as its entries' bytes.
    fn copy_out(&self, id: u32, value: &mut [u8]) -> MapResult<()> {
        if id >= self.l.n_buckets {
            return Err(MapError::NOENT);
        }
        // Take the stack out while copying so it cannot be recycled meanwhile.
        let slot = self.bucket(id);
        let link = slot.swap(0, Ordering::AcqRel);
        if link == 0 {
            return Err(MapError::NOENT);
        }
        let e = link - 1;
        let len =
            (self.nr_of(e).load(Ordering::Acquire) as usize * self.entry_size()).min(value.len());
        // SAFETY: `len` bytes of the element's data.
        unsafe { values::read(self.data(e), &mut value[..len]) };
        value[len..].fill(0);
        let old = slot.swap(link, Ordering::AcqRel);
        if old != 0 {
            self.push_free(old - 1);
        }
        Ok(())
    }
}

impl MapImpl for StackTraceMap {
    fn lookup(&self, key: Option<&[u8]>, value: &mut [u8], _flags: u64) -> MapResult<()> {
        self.copy_out(super::slots::index_of(key.unwrap_or(&[])), value)
    }

    fn update(&self, _key: Option<&[u8]>, _value: &[u8], _flags: u64) -> MapResult<()> {
        Err(MapError::INVAL)
    }

    fn delete(&self, key: &[u8]) -> MapResult<()> {
        let id = super::slots::index_of(key);
        if id >= self.l.n_buckets {
            return Err(MapError::TOO_BIG);
        }
        let old = self.bucket(id).swap(0, Ordering::AcqRel);
        if old == 0 {
            return Err(MapError::NOENT);
        }
        self.push_free(old - 1);
        Ok(())
    }

    fn get_next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> MapResult<()> {
        let n = self.l.n_buckets;
        let mut id = match key.map(super::slots::index_of) {
            None => 0,
            Some(k) if k >= n || self.bucket(k).load(Ordering::Acquire) == 0 => 0,
            Some(k) => k + 1,
        };
        while id < n && self.bucket(id).load(Ordering::Acquire) == 0 {
            id += 1;
        }
        if id >= n {
            return Err(MapError::NOENT);
        }
        next[..4].copy_from_slice(&id.to_ne_bytes());
        Ok(())
    }

    fn prog_update(&self, _key: &[u8], _value: &[u8], _flags: u64, _cpu: u32) -> MapResult<()> {
        Err(MapError::INVAL)
    }

    fn store(&self) -> Option<&Store> {
        Some(&self.store)
    }

    fn elements(&self) -> Option<usize> {
        Some(
            (0..self.l.n_buckets)
                .filter(|&i| self.bucket(i).load(Ordering::Relaxed) != 0)
                .count(),
        )
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The stack map behind `map`, for the stack helpers.
pub fn stack_map(map: &super::Map) -> Option<&StackTraceMap> {
    map.imp().as_any().downcast_ref::<StackTraceMap>()
}

#[cfg(test)]
#[path = "stack_trace_tests.rs"]
mod tests;
