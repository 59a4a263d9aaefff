//! Events to user space and locks: ring buffers (`bpf_ringbuf_*`,
//! `bpf_user_ringbuf_drain` with its dynptrs), `bpf_perf_event_output`,
//! stack traces, cgroup tests and `bpf_spin_lock`.

use super::args::{self, Stopped};
use super::callbacks::invoke;
use super::{context, fail, neg, HelperFn};
use crate::abi::RunState;
use crate::maps::cgroup::CgroupArray;
use crate::maps::lock::{current_tid, SpinLock};
use crate::maps::perf::PerfEventArray;
use crate::maps::ringbuf::{self, RingBuf};
use crate::maps::user_ringbuf::UserRingBuf;
use crate::maps::{errno, stack_trace, Map, MapResult};

/// The helpers of this module by kernel name.
pub const HELPERS: &[(&str, HelperFn)] = &[
    ("ringbuf_output", ringbuf_output),
    ("ringbuf_reserve", ringbuf_reserve),
    ("ringbuf_submit", ringbuf_submit),
    ("ringbuf_discard", ringbuf_discard),
    ("ringbuf_query", ringbuf_query),
    ("user_ringbuf_drain", user_ringbuf_drain),
    ("dynptr_read", dynptr_read),
    ("dynptr_write", dynptr_write),
    ("dynptr_data", dynptr_data),
    ("perf_event_output", perf_event_output),
    ("get_stackid", get_stackid),
    ("get_stack", get_stack),
    ("current_task_under_cgroup", current_task_under_cgroup),
    ("spin_lock", spin_lock),
    ("spin_unlock", spin_unlock),
];

fn errno_ret(r: MapResult<()>) -> u64 {
    match r {
        Ok(()) => 0,
        Err(e) => neg(e.code()),
    }
}

/// The map argument as a family's own type, or a stop naming what it is not.
fn family<'a, T>(
    st: &mut RunState,
    map: u64,
    what: &str,
    get: fn(&Map) -> Option<&T>,
) -> Result<&'a T, Stopped> {
    // SAFETY: the program's map argument (verified, or checked).
    let m = unsafe { args::map(st, map)? };
    match get(m) {
        // SAFETY: the map outlives the run (bound program or run regions).
        Some(t) => Ok(unsafe { &*(t as *const T) }),
        None => {
            fail(st, format!("map {} is not a {what}", m.name()));
            Err(Stopped)
        }
    }
}

helper!(
    /// `long bpf_ringbuf_output(void *ringbuf, void *data, u64 size, u64 flags)`.
    ringbuf_output(map, data, size, flags) |st| {
        let rb = family(st, map, "ring buffer", RingBuf::from_map)?;
        // SAFETY: the program's buffer (verified, or checked here).
        let d = unsafe { args::bytes(st, "data", data, size)? };
        Ok(errno_ret(rb.output(d, flags)))
    }
);

helper!(
    /// `void *bpf_ringbuf_reserve(void *ringbuf, u64 size, u64 flags)`: a
    /// record the program fills and then submits or discards, or NULL.
    ringbuf_reserve(map, size, flags) |st| {
        let rb = family(st, map, "ring buffer", RingBuf::from_map)?;
        Ok(rb.reserve(size, flags).map_or(0, |p| p as u64))
    }
);

helper!(
    /// `void bpf_ringbuf_submit(void *data, u64 flags)`.
    ringbuf_submit(data, flags) |st| {
        if let Err(e) = ringbuf::submit_sample(data as *mut u8, flags) {
            fail(st, format!("ringbuf_submit of {data:#x}, which is not a reserved record ({e})"));
        }
        Ok(0)
    }
);

helper!(
    /// `void bpf_ringbuf_discard(void *data, u64 flags)`.
    ringbuf_discard(data, flags) |st| {
        if let Err(e) = ringbuf::discard_sample(data as *mut u8, flags) {
            fail(st, format!("ringbuf_discard of {data:#x}, which is not a reserved record ({e})"));
        }
        Ok(0)
    }
);

helper!(
    /// `u64 bpf_ringbuf_query(void *ringbuf, u64 flags)`.
    ringbuf_query(map, flags) |st| {
        let rb = family(st, map, "ring buffer", RingBuf::from_map)?;
        Ok(rb.query(flags))
    }
);

/// `struct bpf_dynptr` as the kernel lays out `struct bpf_dynptr_kern`:
/// the data pointer, then the size (low 24 bits; bit 31 read-only, bits
/// 28-30 the type), then the offset.
const DYNPTR_SIZE_MASK: u32 = 0x00ff_ffff;
const DYNPTR_RDONLY: u32 = 1 << 31;
/// `BPF_DYNPTR_TYPE_LOCAL` in the type bits: what the kernel gives a user
/// ring buffer sample.
const DYNPTR_TYPE_USER_RINGBUF: u32 = 1 << 28;

helper!(
    /// `long bpf_user_ringbuf_drain(void *map, void *callback_fn, void *ctx, u64 flags)`:
    /// `callback_fn(&dynptr, ctx)` for each published sample; the number of
    /// samples drained, or `-errno`.
    user_ringbuf_drain(map, cb, cb_ctx, flags) |st| {
        let cb_fp = st.cb_fp;
        let rb = family(st, map, "user ring buffer", UserRingBuf::from_map)?;
        // The dynptr lives in memory the callback may read.
        let mut dynptr = Box::new([0u64; 2]);
        let addr = dynptr.as_mut_ptr() as usize;
        if let Some(ctx) = context(st) {
            ctx.regions.add("user ringbuf dynptr", addr, 16, false);
        }
        let mut stopped = false;
        let n = rb.drain(flags, |sample| {
            if stopped {
                return 1;
            }
            // The sample itself is readable through the dynptr helpers only.
            dynptr[0] = sample.as_ptr() as u64;
            dynptr[1] = (sample.len() as u32 & DYNPTR_SIZE_MASK | DYNPTR_RDONLY | DYNPTR_TYPE_USER_RINGBUF) as u64;
            match invoke(st, cb_fp, cb, [addr as u64, cb_ctx, 0, 0, 0]) {
                Ok(r) => r as i64,
                Err(Stopped) => {
                    stopped = true;
                    1
                }
            }
        });
        if let Some(ctx) = context(st) {
            ctx.regions.remove(addr);
        }
        drop(dynptr);
        if stopped {
            return Err(Stopped);
        }
        Ok(n as u64)
    }
);

/// A dynptr argument: (data, size, read-only), checked to be one this
/// runtime handed out (a 16-byte region).
fn dynptr_arg(st: &mut RunState, p: u64) -> Result<(u64, u32, bool), Stopped> {
    // SAFETY: the program's pointer (verified, or checked here).
    let raw = unsafe { args::bytes(st, "dynptr", p, 16)? };
    let data = u64::from_ne_bytes(raw[..8].try_into().expect("8"));
    let word = u32::from_ne_bytes(raw[8..12].try_into().expect("4"));
    let off = u32::from_ne_bytes(raw[12..16].try_into().expect("4"));
    if data == 0 {
        return Ok((0, 0, true));
    }
    Ok((
        data + off as u64,
        word & DYNPTR_SIZE_MASK,
        word & DYNPTR_RDONLY != 0,
    ))
}

helper!(
    /// `long bpf_dynptr_read(void *dst, u32 len, const struct bpf_dynptr *src, u32 offset, u64 flags)`.
    dynptr_read(dst, len, src, offset, flags) |st| {
        let (data, size, _) = dynptr_arg(st, src)?;
        // SAFETY: the program's buffer (verified, or checked here).
        let out = unsafe { args::bytes_mut(st, "dst", dst, len & 0xffff_ffff)? };
        let (off, len) = (offset & 0xffff_ffff, len & 0xffff_ffff);
        if flags != 0 {
            return Ok(neg(errno::EINVAL));
        }
        if data == 0 || off + len > size as u64 {
            return Ok(neg(errno::E2BIG));
        }
        // SAFETY: inside the sample the dynptr describes.
        out.copy_from_slice(unsafe { std::slice::from_raw_parts((data + off) as *const u8, len as usize) });
        Ok(0)
    }
);

helper!(
    /// `long bpf_dynptr_write(const struct bpf_dynptr *dst, u32 offset, void *src, u32 len, u64 flags)`.
    dynptr_write(dst, offset, src, len, flags) |st| {
        let (data, size, rdonly) = dynptr_arg(st, dst)?;
        // SAFETY: the program's buffer (verified, or checked here).
        let input = unsafe { args::bytes(st, "src", src, len & 0xffff_ffff)? };
        let (off, len) = (offset & 0xffff_ffff, len & 0xffff_ffff);
        if flags != 0 {
            return Ok(neg(errno::EINVAL));
        }
        if data == 0 || off + len > size as u64 {
            return Ok(neg(errno::E2BIG));
        }
        if rdonly {
            return Ok(neg(errno::EINVAL));
        }
        // SAFETY: inside the writable sample the dynptr describes.
        unsafe { std::slice::from_raw_parts_mut((data + off) as *mut u8, len as usize) }.copy_from_slice(input);
        Ok(0)
    }
);

helper!(
    /// `void *bpf_dynptr_data(const struct bpf_dynptr *ptr, u32 offset, u32 len)`:
    /// NULL for read-only dynptrs (user ring buffer samples), as the kernel.
    dynptr_data(p, offset, len) |st| {
        let (data, size, rdonly) = dynptr_arg(st, p)?;
        let (off, len) = (offset & 0xffff_ffff, len & 0xffff_ffff);
        if data == 0 || rdonly || off + len > size as u64 {
            return Ok(0);
        }
        Ok(data + off)
    }
);

helper!(
    /// `long bpf_perf_event_output(void *ctx, void *map, u64 flags, void *data, u64 size)`.
    perf_event_output(ctx_arg, map, flags, data, size) |st| {
        let perf = family(st, map, "perf event array", PerfEventArray::from_map)?;
        // SAFETY: the program's buffer (verified, or checked here).
        let d = unsafe { args::bytes(st, "data", data, size)? };
        let cpu = st.cpu;
        Ok(errno_ret(perf.output(flags, cpu, d)))
    }
);

helper!(
    /// `long bpf_get_stackid(void *ctx, void *map, u64 flags)`: the id of the
    /// host thread's user stack in the stack map.
    get_stackid(ctx_arg, map, flags) |st| {
        let m = family(st, map, "stack trace map", stack_trace::stack_map)?;
        Ok(m.get_stackid(flags) as u64)
    }
);

helper!(
    /// `long bpf_get_stack(void *ctx, void *buf, u32 size, u64 flags)`.
    get_stack(ctx_arg, buf, size, flags) |st| {
        // SAFETY: the program's buffer (verified, or checked here).
        let out = unsafe { args::bytes_mut(st, "buf", buf, size & 0xffff_ffff)? };
        Ok(stack_trace::get_stack(out, flags) as u64)
    }
);

helper!(
    /// `long bpf_current_task_under_cgroup(void *map, u32 index)`.
    current_task_under_cgroup(map, index) |st| {
        let m = family(st, map, "cgroup array", |m: &Map| m.imp().as_any().downcast_ref::<CgroupArray>())?;
        Ok(m.current_task_under_cgroup(index as u32) as u64)
    }
);

/// The lock word a `bpf_spin_lock` argument points at, checked to lie in
/// map memory.
fn lock_arg<'a>(st: &mut RunState, p: u64) -> Result<SpinLock<'a>, Stopped> {
    args::mem(st, "lock", p, 4, true)?;
    if !p.is_multiple_of(4) {
        fail(st, format!("spin lock at {p:#x} is not 4-byte aligned"));
        return Err(Stopped);
    }
    // SAFETY: a 4-aligned word of map memory (checked, or proven by the
    // verifier: ARG_PTR_TO_SPIN_LOCK).
    Ok(unsafe { SpinLock::from_ptr(p as *mut u32) })
}

helper!(
    /// `long bpf_spin_lock(struct bpf_spin_lock *lock)`.
    spin_lock(p) |st| {
        let lock = lock_arg(st, p)?;
        if lock.owner() == current_tid() {
            fail(st, format!("spin lock at {p:#x} is already held by this run"));
            return Err(Stopped);
        }
        lock.lock_raw();
        if let Some(ctx) = context(st) {
            ctx.locks.push(p as usize);
        }
        Ok(0)
    }
);

helper!(
    /// `long bpf_spin_unlock(struct bpf_spin_lock *lock)`.
    spin_unlock(p) |st| {
        let lock = lock_arg(st, p)?;
        if lock.owner() != current_tid() {
            fail(st, format!("spin lock at {p:#x} is not held by this run"));
            return Err(Stopped);
        }
        lock.unlock_raw();
        if let Some(ctx) = context(st) {
            if let Some(i) = ctx.locks.iter().rposition(|&a| a == p as usize) {
                ctx.locks.remove(i);
            }
        }
        Ok(0)
    }
);
