//! Timers: `bpf_timer_init`, `bpf_timer_set_callback`, `bpf_timer_start`
//! and `bpf_timer_cancel`, with the kernel's return codes and its rules for
//! freeing (an element deleted or replaced, an array value updated, the map
//! dropped: the timer is cancelled and forgotten).
//!
//! A timer is known by the address of its `struct bpf_timer` in map memory;
//! its state lives in a process-wide registry (the 16 bytes in the value
//! are left alone, and user space reads them as zero). One thread per
//! process fires due timers in deadline order, each callback
//! `cb(map, key, value)` as a run of its own ([`DetachedCallback`]): JIT and
//! AOT callbacks through their C-ABI wrapper on a fresh stack, interpreted
//! ones as a new interpreter run of their program. A callback's fault is
//! kept for [`take_faults`]; the kernel's callbacks cannot fault.
//!
//! Lifetimes: an interpreted callback holds its program (as the kernel's
//! timer holds a reference on it); native code belongs to its compiled
//! program, which forgets its timers' callbacks when dropped
//! ([`forget_callbacks`]); a host running AOT code keeps the object loaded
//! while its timers may fire.

use super::args::{self, Stopped};
use super::{context, fail, neg, HelperFn};
use crate::abi::{FaultCode, RunState, FRAME_SIZE, MAX_FRAMES};
use crate::context::{DetachedCallback, ExecContext};
use crate::maps::{errno, KeyOf, Map};
use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The helpers of this module by kernel name.
pub const HELPERS: &[(&str, HelperFn)] = &[
    ("timer_init", timer_init),
    ("timer_set_callback", timer_set_callback),
    ("timer_start", timer_start),
    ("timer_cancel", timer_cancel),
];

/// `MAX_CLOCKS`: `bpf_timer_init`'s flags hold a clock id below it.
const MAX_CLOCKS: u64 = 16;
/// `bpf_timer_start` flags.
pub const BPF_F_TIMER_ABS: u64 = 1;
pub const BPF_F_TIMER_CPU_PIN: u64 = 2;
/// Bytes of `struct bpf_timer`.
const TIMER_SIZE: u64 = 16;

/// What `bpf_timer_set_callback` gave a timer.
struct Callback {
    /// The `CallbackNative` address the program passed.
    cb: u64,
    run: Arc<dyn DetachedCallback>,
    /// The setting run's checked mode and the maps it could reach.
    checked: bool,
    maps: Vec<u32>,
}

struct Timer {
    map_id: u32,
    map_addr: u64,
    key_size: usize,
    value: usize,
    key: KeyOf,
    clock: libc::clockid_t,
    callback: Option<Callback>,
    /// When it fires (armed), and the generation of its queue entry.
    due: Option<Instant>,
    generation: u64,
    cpu: u32,
}

struct Registry {
    timers: BTreeMap<usize, Timer>,
    /// (due, timer address, generation); stale entries are skipped.
    queue: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    /// The timer whose callback the timer thread is running.
    running: Option<usize>,
    next_generation: u64,
    faults: Vec<String>,
    thread: bool,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    timers: BTreeMap::new(),
    queue: BinaryHeap::new(),
    running: None,
    next_generation: 1,
    faults: Vec::new(),
    thread: false,
});
/// Wakes the timer thread (a timer armed earlier than it waits for).
static WAKE: Condvar = Condvar::new();
/// Signalled when a callback returns (cancel waits for a running one).
static DONE: Condvar = Condvar::new();

thread_local! {
    /// The timer whose callback this thread is running (0: none).
    static IN_CALLBACK: Cell<usize> = const { Cell::new(0) };
}

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Wait until no callback in `busy` runs, unless it is this thread's.
fn wait_idle<'a>(
    mut reg: MutexGuard<'a, Registry>,
    busy: impl Fn(&Registry, usize) -> bool,
) -> MutexGuard<'a, Registry> {
    while let Some(t) = reg.running {
        if t == IN_CALLBACK.with(Cell::get) || !busy(&reg, t) {
            break;
        }
        reg = DONE.wait(reg).unwrap_or_else(|e| e.into_inner());
    }
    reg
}

helper!(
    /// `long bpf_timer_init(struct bpf_timer *timer, struct bpf_map *map, u64 flags)`:
    /// 0, -EINVAL for a clock other than CLOCK_MONOTONIC, CLOCK_REALTIME or
    /// CLOCK_BOOTTIME, -EBUSY when the timer is initialised already.
    timer_init(timer, map, flags) |st| {
        // SAFETY: the program's map argument (verified, or checked here).
        let m = unsafe { args::map(st, map)? };
        if flags >= MAX_CLOCKS
            || ![libc::CLOCK_MONOTONIC, libc::CLOCK_REALTIME, libc::CLOCK_BOOTTIME]
                .contains(&(flags as libc::clockid_t))
        {
            return Ok(neg(errno::EINVAL));
        }
        let Some(off) = m.spec().timer_off else {
            fail(st, format!("map {} has no struct bpf_timer in its values", m.name()));
            return Err(Stopped);
        };
        args::mem(st, "timer", timer, TIMER_SIZE, true)?;
        let value = (timer as usize).wrapping_sub(off as usize);
        let Some(key) = m.imp().key_of_value(value) else {
            fail(st, format!("{timer:#x} is not the struct bpf_timer of a value of map {}", m.name()));
            return Err(Stopped);
        };
        let mut reg = registry();
        if reg.timers.contains_key(&(timer as usize)) {
            return Ok(neg(errno::EBUSY));
        }
        reg.timers.insert(
            timer as usize,
            Timer {
                map_id: m.id(),
                map_addr: map,
                key_size: m.key_size(),
                value,
                key,
                clock: flags as libc::clockid_t,
                callback: None,
                due: None,
                generation: 0,
                cpu: st.cpu,
            },
        );
        Ok(0)
    }
);

helper!(
    /// `long bpf_timer_set_callback(struct bpf_timer *timer, void *callback_fn)`:
    /// 0, -EINVAL for a timer that is not initialised.
    timer_set_callback(timer, cb) |st| {
        let native = super::callbacks::callback(st, cb)?;
        let run: Arc<dyn DetachedCallback> = if native.func.is_null() {
            let invoker = context(st).and_then(|c| c.invoker);
            // SAFETY: the engine installed the invoker for the duration of
            // this helper call and does not touch it meanwhile.
            let detached = invoker.and_then(|inv| unsafe { (*inv).detach(cb) });
            match detached {
                Some(d) => d,
                None => {
                    st.fault.code = FaultCode::BadCallback as u32;
                    st.fault.detail = cb;
                    return Err(Stopped);
                }
            }
        } else {
            Arc::new(NativeCallback { func: native.func })
        };
        let (checked, maps) = match context(st) {
            Some(c) => (c.checked, c.regions.maps().iter().map(|m| m.id()).collect()),
            None => (false, Vec::new()),
        };
        let new = Callback { cb, run, checked, maps };
        let mut reg = registry();
        let Some(t) = reg.timers.get_mut(&(timer as usize)) else {
            drop(reg);
            drop(new);
            return Ok(neg(errno::EINVAL));
        };
        let old = t.callback.replace(new);
        drop(reg);
        // Dropped outside the registry lock: an interpreted callback owns
        // its program, whose maps may go with it.
        drop(old);
        Ok(0)
    }
);

helper!(
    /// `long bpf_timer_start(struct bpf_timer *timer, u64 nsecs, u64 flags)`:
    /// arm the timer `nsecs` from now (`BPF_F_TIMER_ABS`: at `nsecs` on its
    /// clock); 0, -EINVAL for unknown flags or a timer without a callback.
    timer_start(timer, nsecs, flags) |st| {
        if flags & !(BPF_F_TIMER_ABS | BPF_F_TIMER_CPU_PIN) != 0 {
            return Ok(neg(errno::EINVAL));
        }
        let cpu = st.cpu;
        let mut reg = registry();
        let generation = reg.next_generation;
        let Some(t) = reg.timers.get_mut(&(timer as usize)) else {
            return Ok(neg(errno::EINVAL));
        };
        if t.callback.is_none() {
            return Ok(neg(errno::EINVAL));
        }
        let now = Instant::now();
        let delay = if flags & BPF_F_TIMER_ABS != 0 {
            nsecs.saturating_sub(super::misc::clock(t.clock))
        } else {
            nsecs
        };
        let due = now
            .checked_add(Duration::from_nanos(delay))
            .unwrap_or_else(|| now + Duration::from_secs(1 << 30));
        t.due = Some(due);
        t.generation = generation;
        t.cpu = cpu;
        reg.next_generation += 1;
        reg.queue.push(Reverse((due, timer as usize, generation)));
        if !reg.thread {
            reg.thread = true;
            std::thread::Builder::new()
                .name("bpfc-timers".into())
                .spawn(timer_thread)
                .expect("spawning the timer thread");
        }
        drop(reg);
        WAKE.notify_one();
        Ok(0)
    }
);

helper!(
    /// `long bpf_timer_cancel(struct bpf_timer *timer)`: disarm the timer and
    /// drop its callback, waiting for a running callback to return; 1 when
    /// it was armed, 0 when not, -EINVAL for a timer that is not
    /// initialised, -EDEADLK from the timer's own callback.
    timer_cancel(timer) |st| {
        let addr = timer as usize;
        let mut reg = registry();
        if !reg.timers.contains_key(&addr) {
            return Ok(neg(errno::EINVAL));
        }
        if IN_CALLBACK.with(Cell::get) == addr {
            return Ok(neg(errno::EDEADLK));
        }
        let t = reg.timers.get_mut(&addr).expect("checked above");
        let old = t.callback.take();
        let armed = t.due.take().is_some();
        let reg = wait_idle(reg, |_, running| running == addr);
        drop(reg);
        drop(old);
        Ok(armed as u64)
    }
);

/// Forget the timer at `addr` (its element is freed): disarmed, its
/// callback dropped, a running callback waited for (unless it is the
/// caller's own).
pub fn free(addr: usize) {
    let mut reg = registry();
    let Some(t) = reg.timers.remove(&addr) else {
        return;
    };
    let reg = wait_idle(reg, |_, running| running == addr);
    drop(reg);
    drop(t);
}

/// Forget every timer of the map with id `map_id` (the map is dropped).
pub fn map_dropped(map_id: u32) {
    let mut reg = registry();
    let addrs: Vec<usize> = reg
        .timers
        .iter()
        .filter(|(_, t)| t.map_id == map_id)
        .map(|(a, _)| *a)
        .collect();
    let gone: Vec<Timer> = addrs.iter().filter_map(|a| reg.timers.remove(a)).collect();
    let reg = wait_idle(reg, |_, running| addrs.contains(&running));
    drop(reg);
    drop(gone);
}

/// Drop the callbacks at the `CallbackNative` addresses `cbs` (their code
/// is going away): timers using them are disarmed, running ones waited for.
pub fn forget_callbacks(cbs: &[u64]) {
    if cbs.is_empty() {
        return;
    }
    let mut reg = registry();
    let mut gone = Vec::new();
    let mut addrs = Vec::new();
    for (a, t) in reg.timers.iter_mut() {
        if t.callback.as_ref().is_some_and(|c| cbs.contains(&c.cb)) {
            gone.extend(t.callback.take());
            t.due = None;
            addrs.push(*a);
        }
    }
    let reg = wait_idle(reg, |_, running| addrs.contains(&running));
    drop(reg);
    drop(gone);
}

/// Faults of timer callbacks since the last call, one line each.
pub fn take_faults() -> Vec<String> {
    std::mem::take(&mut registry().faults)
}

/// Timers armed now.
pub fn armed() -> usize {
    registry()
        .timers
        .values()
        .filter(|t| t.due.is_some())
        .count()
}

/// What the timer thread needs to fire one timer.
struct Firing {
    run: Arc<dyn DetachedCallback>,
    checked: bool,
    maps: Vec<u32>,
    map_id: u32,
    map_addr: u64,
    key_size: usize,
    value: usize,
    key: KeyOf,
    cpu: u32,
}

fn timer_thread() {
    loop {
        let (addr, firing) = next_due();
        IN_CALLBACK.with(|c| c.set(addr));
        let result = fire(&firing);
        IN_CALLBACK.with(|c| c.set(0));
        drop(firing);
        let mut reg = registry();
        reg.running = None;
        if let Err(e) = result {
            reg.faults.push(e);
        }
        drop(reg);
        DONE.notify_all();
    }
}

/// Wait for the next due timer; mark it running.
fn next_due() -> (usize, Firing) {
    let mut reg = registry();
    loop {
        let Some(&Reverse((due, addr, generation))) = reg.queue.peek() else {
            reg = WAKE.wait(reg).unwrap_or_else(|e| e.into_inner());
            continue;
        };
        let live = reg
            .timers
            .get(&addr)
            .is_some_and(|t| t.generation == generation && t.due == Some(due));
        if !live {
            reg.queue.pop();
            continue;
        }
        let now = Instant::now();
        if due > now {
            reg = WAKE
                .wait_timeout(reg, due - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            continue;
        }
        reg.queue.pop();
        let t = reg.timers.get_mut(&addr).expect("live above");
        t.due = None;
        let Some(cb) = &t.callback else { continue };
        let firing = Firing {
            run: cb.run.clone(),
            checked: cb.checked,
            maps: cb.maps.clone(),
            map_id: t.map_id,
            map_addr: t.map_addr,
            key_size: t.key_size,
            value: t.value,
            key: t.key,
            cpu: t.cpu,
        };
        reg.running = Some(addr);
        return (addr, firing);
    }
}

/// Call a timer's callback: `cb(map, key, value)` with the kernel's key (an
/// array's index in a `u32`, a hash element's key in place).
fn fire(f: &Firing) -> Result<(), String> {
    let Some(map) = Map::by_id(f.map_id) else {
        return Ok(());
    };
    let mut ctx = ExecContext::new();
    ctx.cpu = f.cpu;
    ctx.checked = f.checked;
    let index_key;
    let key_addr = match f.key {
        KeyOf::Index(i) => {
            index_key = Box::new(i);
            &*index_key as *const u32 as usize
        }
        KeyOf::At(a) => a,
    };
    if f.checked {
        ctx.regions.add_map(&map);
        for m in f.maps.iter().filter_map(|id| Map::by_id(*id)) {
            ctx.regions.add_map(&m);
        }
        ctx.regions.add("timer key", key_addr, f.key_size, false);
    }
    let r = f.run.call(
        &mut ctx,
        [f.map_addr, key_addr as u64, f.value as u64, 0, 0],
    );
    drop(ctx);
    drop(map);
    r.map(|_| ())
        .map_err(|e| format!("timer callback of map id {}: {e}", f.map_id))
}

/// A JIT or AOT callback: its C-ABI wrapper, called on a fresh stack.
struct NativeCallback {
    func: *const u8,
}

// SAFETY: the code is immutable and reentrant; the program that owns it
// forgets its timers' callbacks before the code goes away.
unsafe impl Send for NativeCallback {}
// SAFETY: as above.
unsafe impl Sync for NativeCallback {}

impl DetachedCallback for NativeCallback {
    fn call(&self, ctx: &mut ExecContext, args: [u64; 5]) -> Result<u64, String> {
        const STACK: usize = (FRAME_SIZE * MAX_FRAMES) as usize;
        let mut stack = vec![0u128; STACK / 16];
        let base = stack.as_mut_ptr() as u64;
        let top = base + STACK as u64;
        type CbFn = unsafe extern "C" fn(u64, u64, u64, u64, u64, u64, *mut RunState) -> u64;
        // SAFETY: `func` is the C-ABI wrapper the code generator made for
        // a callback function, with exactly this signature.
        let f = unsafe { std::mem::transmute::<*const u8, CbFn>(self.func) };
        let (r0, fault) = crate::context::run_section(
            false,
            ctx,
            |ctx| {
                let mut st = RunState::new(ctx);
                st.stack_base = base;
                st.stack_top = top;
                st.cb_fp = top;
                st.budget = u64::MAX / 2;
                // SAFETY: the callback runs as the first frame of a fresh
                // stack of the full frame count, with a run state of its own.
                let r0 = unsafe { f(args[0], args[1], args[2], args[3], args[4], top, &mut st) };
                (r0, st.fault)
            },
            |(_, f)| f.code != 0,
        );
        drop(stack);
        if fault.code == 0 {
            return Ok(r0);
        }
        let what = FaultCode::from_raw(fault.code).map_or("unknown fault", FaultCode::describe);
        let msg = ctx
            .fault
            .take()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        Err(format!("instruction {}: {what}{msg}", fault.pc))
    }
}
