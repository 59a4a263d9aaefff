//! Ring buffer and perf buffer consumers (libbpf's `ring_buffer__*` and
//! `perf_buffer__*`): records go to the host's callbacks on the thread
//! that polls.

use super::maps::{bpfc_map, map_arc};
use super::{guard, inval, HostError};
use crate::maps::perf::PerfBuffer;
use crate::maps::ringbuf::RingBufConsumer;
use std::ffi::{c_int, c_void};
use std::ops::ControlFlow;
use std::time::Duration;

/// `int fn(void *ctx, void *data, size_t size)`: a negative return stops
/// the poll, which returns it.
pub type bpfc_ring_buffer_sample_fn =
    Option<unsafe extern "C" fn(*mut c_void, *mut c_void, usize) -> c_int>;
/// `void fn(void *ctx, int cpu, void *data, uint32_t size)`.
pub type bpfc_perf_buffer_sample_fn =
    Option<unsafe extern "C" fn(*mut c_void, c_int, *mut c_void, u32)>;
/// `void fn(void *ctx, int cpu, uint64_t count)`.
pub type bpfc_perf_buffer_lost_fn = Option<unsafe extern "C" fn(*mut c_void, c_int, u64)>;

pub struct bpfc_ring_buffer {
    consumer: RingBufConsumer,
    sample: unsafe extern "C" fn(*mut c_void, *mut c_void, usize) -> c_int,
    ctx: *mut c_void,
    /// The map stays alive while the consumer reads it.
    _map: std::sync::Arc<crate::maps::Map>,
}

fn timeout(ms: c_int) -> Option<Duration> {
    (ms >= 0).then(|| Duration::from_millis(ms as u64))
}

/// A consumer of ring buffer `map` calling `sample(ctx, data, size)`.
#[no_mangle]
pub unsafe extern "C" fn bpfc_ring_buffer_new(
    map: *const bpfc_map,
    sample: bpfc_ring_buffer_sample_fn,
    ctx: *mut c_void,
) -> *mut bpfc_ring_buffer {
    guard(
        |_| std::ptr::null_mut(),
        || {
            let sample = sample.ok_or_else(|| inval("sample callback is NULL"))?;
            let m = map_arc(map)?;
            let consumer = RingBufConsumer::new(&m)?;
            Ok(Box::into_raw(Box::new(bpfc_ring_buffer {
                consumer,
                sample,
                ctx,
                _map: m,
            })))
        },
    )
}

fn ring<'a>(rb: *mut bpfc_ring_buffer) -> Result<&'a mut bpfc_ring_buffer, HostError> {
    // SAFETY: a handle from `bpfc_ring_buffer_new`, used by one thread.
    unsafe { rb.as_mut() }.ok_or_else(|| inval("ring buffer is NULL"))
}

fn deliver(rb: &mut bpfc_ring_buffer, wait: Option<Option<Duration>>) -> c_int {
    let (sample, ctx) = (rb.sample, rb.ctx);
    let mut err = 0;
    let mut f = |data: &[u8]| {
        // SAFETY: the host's callback with its context; the record is
        // readable for the call.
        let r = unsafe { sample(ctx, data.as_ptr() as *mut c_void, data.len()) };
        if r < 0 {
            err = r;
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let n = match wait {
        Some(t) => rb.consumer.poll(t, &mut f),
        None => rb.consumer.consume(&mut f),
    };
    if err < 0 {
        err
    } else {
        n.min(c_int::MAX as usize) as c_int
    }
}

/// Wait up to `timeout_ms` (negative: without limit) for records and hand
/// them to the callback. Returns the number of records, or the
/// callback's negative return.
#[no_mangle]
pub unsafe extern "C" fn bpfc_ring_buffer_poll(
    rb: *mut bpfc_ring_buffer,
    timeout_ms: c_int,
) -> c_int {
    guard(|e| e, || Ok(deliver(ring(rb)?, Some(timeout(timeout_ms)))))
}

/// Hand every record available now to the callback.
#[no_mangle]
pub unsafe extern "C" fn bpfc_ring_buffer_consume(rb: *mut bpfc_ring_buffer) -> c_int {
    guard(|e| e, || Ok(deliver(ring(rb)?, None)))
}

#[no_mangle]
pub unsafe extern "C" fn bpfc_ring_buffer_free(rb: *mut bpfc_ring_buffer) {
    if !rb.is_null() {
        // SAFETY: made by `Box::into_raw` in `bpfc_ring_buffer_new`.
        drop(unsafe { Box::from_raw(rb) });
    }
}

pub struct bpfc_perf_buffer {
    buf: PerfBuffer,
    sample: bpfc_perf_buffer_sample_fn,
    lost: bpfc_perf_buffer_lost_fn,
    ctx: *mut c_void,
}

/// A reader of perf event array `map` with `page_cnt` pages (a power of
/// two) per CPU slot.
#[no_mangle]
pub unsafe extern "C" fn bpfc_perf_buffer_new(
    map: *const bpfc_map,
    page_cnt: usize,
    sample: bpfc_perf_buffer_sample_fn,
    lost: bpfc_perf_buffer_lost_fn,
    ctx: *mut c_void,
) -> *mut bpfc_perf_buffer {
    guard(
        |_| std::ptr::null_mut(),
        || {
            let m = map_arc(map)?;
            let buf = PerfBuffer::new(&m, page_cnt)?;
            Ok(Box::into_raw(Box::new(bpfc_perf_buffer {
                buf,
                sample,
                lost,
                ctx,
            })))
        },
    )
}

fn perf<'a>(pb: *mut bpfc_perf_buffer) -> Result<&'a mut bpfc_perf_buffer, HostError> {
    // SAFETY: a handle from `bpfc_perf_buffer_new`, used by one thread.
    unsafe { pb.as_mut() }.ok_or_else(|| inval("perf buffer is NULL"))
}

fn read_perf(pb: &mut bpfc_perf_buffer, wait: Option<Option<Duration>>) -> c_int {
    let (sample, lost, ctx) = (pb.sample, pb.lost, pb.ctx);
    let on_sample = |cpu: u32, data: &[u8]| {
        if let Some(f) = sample {
            // SAFETY: the host's callback; the record is readable for the call.
            unsafe {
                f(
                    ctx,
                    cpu as c_int,
                    data.as_ptr() as *mut c_void,
                    data.len() as u32,
                )
            };
        }
    };
    let on_lost = |cpu: u32, n: u64| {
        if let Some(f) = lost {
            // SAFETY: the host's callback.
            unsafe { f(ctx, cpu as c_int, n) };
        }
    };
    let n = match wait {
        Some(t) => pb.buf.poll(t, on_sample, on_lost),
        None => pb.buf.consume(on_sample, on_lost),
    };
    n.min(c_int::MAX as usize) as c_int
}

/// Wait up to `timeout_ms` (negative: without limit) for records; returns
/// the number read.
#[no_mangle]
pub unsafe extern "C" fn bpfc_perf_buffer_poll(
    pb: *mut bpfc_perf_buffer,
    timeout_ms: c_int,
) -> c_int {
    guard(
        |e| e,
        || Ok(read_perf(perf(pb)?, Some(timeout(timeout_ms)))),
    )
}

#[no_mangle]
pub unsafe extern "C" fn bpfc_perf_buffer_consume(pb: *mut bpfc_perf_buffer) -> c_int {
    guard(|e| e, || Ok(read_perf(perf(pb)?, None)))
}

#[no_mangle]
pub unsafe extern "C" fn bpfc_perf_buffer_free(pb: *mut bpfc_perf_buffer) {
    if !pb.is_null() {
        // SAFETY: made by `Box::into_raw` in `bpfc_perf_buffer_new`.
        drop(unsafe { Box::from_raw(pb) });
    }
}
