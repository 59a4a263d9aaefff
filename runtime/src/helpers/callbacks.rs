//! Helpers that call back into the program: `bpf_loop` and
//! `bpf_for_each_map_elem`. A callback is the address of a
//! [`CallbackNative`] (what `lddw` of a `BPF_PSEUDO_FUNC` loads); native
//! callbacks run in the frame below the calling function's (`cb_fp`),
//! interpreted ones through the engine's [`Invoker`](crate::context::Invoker).

use super::args::{self, Stopped};
use super::{context, fail, neg, HelperFn};
use crate::abi::{CallbackNative, FaultCode, RunState};
use crate::maps::{errno, MapType};

/// The helpers of this module by kernel name.
pub const HELPERS: &[(&str, HelperFn)] =
    &[("loop", bpf_loop), ("for_each_map_elem", for_each_map_elem)];

/// `BPF_MAX_LOOPS`: the most iterations `bpf_loop` runs.
pub const MAX_LOOPS: u64 = 1 << 23;
const FRAME: u64 = crate::abi::FRAME_SIZE;

/// The callback behind `cb`, checked in checked runs.
pub(crate) fn callback(st: &mut RunState, cb: u64) -> Result<&'static CallbackNative, Stopped> {
    // SAFETY: a non-null ctx in a run state is the run's live context.
    let checked = unsafe { st.ctx.as_ref() }.is_none_or(|c| c.checked);
    if checked {
        let mut magic = [0u8; 8];
        let ok = cb.is_multiple_of(8)
            && super::misc::read_host(cb, &mut magic).is_ok()
            && u64::from_ne_bytes(magic) == CallbackNative::MAGIC;
        if !ok {
            st.fault.code = FaultCode::BadCallback as u32;
            st.fault.detail = cb;
            return Err(Stopped);
        }
    }
    // SAFETY: checked above, or a verified program's PTR_TO_FUNC argument,
    // which points at a callback the bound program owns for its lifetime.
    Ok(unsafe { &*(cb as *const CallbackNative) })
}

/// Call callback `cb` with `args` in the frame below `cb_fp`. `Err` when the
/// callback (or the call) faulted; the fault is in `st`.
pub fn invoke(st: &mut RunState, cb_fp: u64, cb: u64, args: [u64; 5]) -> Result<u64, Stopped> {
    let c = callback(st, cb)?;
    invoke_resolved(st, cb_fp, cb, c, args)
}

/// [`invoke`] of a callback already checked by [`callback`] (helpers that
/// call one callback many times check it once).
fn invoke_resolved(
    st: &mut RunState,
    cb_fp: u64,
    cb: u64,
    c: &CallbackNative,
    args: [u64; 5],
) -> Result<u64, Stopped> {
    if c.func.is_null() {
        let invoker = context(st).and_then(|ctx| ctx.invoker);
        let Some(invoker) = invoker else {
            fail(
                st,
                "callback of an interpreted program without its interpreter",
            );
            return Err(Stopped);
        };
        // SAFETY: the engine installed the invoker for the duration of this
        // helper call and does not touch it meanwhile.
        return unsafe { (*invoker).invoke(st, cb, args) }.map_err(|_| Stopped);
    }
    let fp = cb_fp.wrapping_sub(FRAME);
    if cb_fp < st.stack_base + 2 * FRAME {
        st.fault.code = FaultCode::CallDepth as u32;
        return Err(Stopped);
    }
    type CbFn = unsafe extern "C" fn(u64, u64, u64, u64, u64, u64, *mut RunState) -> u64;
    // SAFETY: `func` is the C-ABI wrapper the code generator made for this
    // callback function, with exactly this signature.
    let f = unsafe { std::mem::transmute::<*const u8, CbFn>(c.func) };
    // SAFETY: the callback runs in the frame below its caller's, inside
    // the stack its entry reserved (checked above).
    let r = unsafe { f(args[0], args[1], args[2], args[3], args[4], fp, st) };
    if st.fault.code != 0 {
        return Err(Stopped);
    }
    Ok(r)
}

helper!(
    /// `long bpf_loop(u32 nr_loops, void *callback_fn, void *callback_ctx, u64 flags)`:
    /// calls `callback_fn(i, callback_ctx)` for i = 0.. until it returns
    /// non-zero; the number of calls made.
    bpf_loop(nr, cb, cb_ctx, flags) |st| {
        let cb_fp = st.cb_fp;
        let nr = nr & 0xffff_ffff;
        if flags != 0 {
            return Ok(neg(errno::EINVAL));
        }
        if nr > MAX_LOOPS {
            // The kernel inlines bpf_loop calls whose flags are a known 0 (nearly
            // all of them), and its inlined code sets -E2BIG with a 32-bit move:
            // programs see 0xfffffff9, not the helper's 64-bit -7.
            return Ok(neg(errno::E2BIG) & 0xffff_ffff);
        }
        if nr == 0 {
            return Ok(0);
        }
        // Checked once (in a checked run, a read of host memory).
        let c = callback(st, cb)?;
        for i in 0..nr {
            if invoke_resolved(st, cb_fp, cb, c, [i, cb_ctx, 0, 0, 0])? != 0 {
                return Ok(i + 1);
            }
        }
        Ok(nr)
    }
);

helper!(
    /// `long bpf_for_each_map_elem(map, callback_fn, callback_ctx, flags)`:
    /// calls `callback_fn(map, &key, &value, callback_ctx)` for each element
    /// until it returns non-zero; the number of elements visited.
    for_each_map_elem(map, cb, cb_ctx, flags) |st| {
        let cb_fp = st.cb_fp;
        // SAFETY: the program's map argument (verified, or checked here).
        let m = unsafe { args::map(st, map)? };
        if flags != 0 {
            return Ok(neg(errno::EINVAL));
        }
        if !matches!(
            m.map_type(),
            MapType::Array
                | MapType::PercpuArray
                | MapType::Hash
                | MapType::PercpuHash
                | MapType::LruHash
                | MapType::LruPercpuHash
        ) {
            return Ok(neg(errno::EOPNOTSUPP));
        }
        let Ok(keys) = m.keys() else {
            return Ok(0);
        };
        // The key the callback sees lives in a buffer the run may read.
        let key_buf = vec![0u8; m.key_size().max(1)].into_boxed_slice();
        let key_addr = key_buf.as_ptr() as usize;
        if let Some(ctx) = context(st) {
            ctx.regions.add("for_each key", key_addr, key_buf.len(), false);
        }
        let mut visited = 0u64;
        let mut result = Ok(());
        for k in keys {
            let Some(v) = m.prog_lookup(&k, st.cpu) else {
                continue;
            };
            // SAFETY: the buffer is ours and as long as a key.
            unsafe { std::ptr::copy_nonoverlapping(k.as_ptr(), key_addr as *mut u8, k.len()) };
            visited += 1;
            match invoke(st, cb_fp, cb, [map, key_addr as u64, v as u64, cb_ctx, 0]) {
                Ok(0) => {}
                Ok(_) => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if let Some(ctx) = context(st) {
            ctx.regions.remove(key_addr);
        }
        drop(key_buf);
        result.map(|()| visited)
    }
);
