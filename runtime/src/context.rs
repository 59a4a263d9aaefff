//! The per-run execution context: state one program run carries across
//! helper calls (CPU slot, the memory it may touch beyond its stack and
//! input, trace output, the first helper failure, callbacks into the engine).

use crate::abi::RunState;
use crate::regions::Regions;
use std::sync::Arc;

/// A callback stopped the run; the fault is recorded in the run state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallbackFault;

/// Calls back into the engine running a program (the interpreter; native
/// code is called through [`CallbackNative::func`](crate::abi::CallbackNative)).
pub trait Invoker {
    /// Run callback `cb` (a `CallbackNative` address the program loaded)
    /// with r1-r5 in the frame below `st.cb_fp`'s.
    fn invoke(&mut self, st: &mut RunState, cb: u64, args: [u64; 5]) -> Result<u64, CallbackFault>;

    /// A callback of this run that can be called later, outside the run,
    /// from another thread (timers): `None` if `cb` is not one of the
    /// run's callbacks.
    fn detach(&mut self, cb: u64) -> Option<Arc<dyn DetachedCallback>> {
        let _ = cb;
        None
    }
}

/// A callback called outside the run that handed it out (a timer's): each
/// call is a run of its own, on the calling thread, with `ctx` as its
/// execution context. `Err` carries the fault, worded as a run error.
pub trait DetachedCallback: Send + Sync {
    fn call(&self, ctx: &mut ExecContext, args: [u64; 5]) -> Result<u64, String>;
}

/// State of one program run. Compiled code reads only `cpu` (copied into
/// its [`RunState`] by the entry); helpers and the engines use the rest.
#[repr(C)]
pub struct ExecContext {
    /// The CPU slot this run executes on (indexes per-CPU maps).
    pub cpu: u32,
    /// Text written by trace helpers (`bpf_trace_printk` and the like).
    pub trace: Vec<u8>,
    /// The first error a helper reported; the engine stops the run with it.
    pub fault: Option<String>,
    /// Memory the program may access besides its stack and input: the
    /// values of its maps, ring buffer records it holds ...
    pub regions: Regions,
    /// The engine's callback invoker while a helper runs (interpreter).
    pub invoker: Option<*mut dyn Invoker>,
    /// Spin locks (their addresses) taken by `bpf_spin_lock` and not yet
    /// released; the engine releases them if the run ends holding one.
    pub locks: Vec<usize>,
    /// State of `bpf_get_prandom_u32` for this run.
    pub prandom: u64,
    /// Whether helpers must check their pointer arguments (an unverified
    /// program: the interpreter and checked code). Verified programs'
    /// arguments are proven by the verifier, as in the kernel.
    pub checked: bool,
    /// The packet of a network program's run (XDP, skb), which packet
    /// helpers and legacy packet loads work on.
    pub net: Option<Box<crate::net::NetRun>>,
}

impl std::fmt::Debug for ExecContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecContext")
            .field("cpu", &self.cpu)
            .field("fault", &self.fault)
            .finish_non_exhaustive()
    }
}

impl Default for ExecContext {
    fn default() -> Self {
        ExecContext {
            cpu: 0,
            trace: Vec::new(),
            fault: None,
            regions: Regions::new(),
            invoker: None,
            locks: Vec::new(),
            prandom: crate::helpers::misc::seed(),
            checked: true,
            net: None,
        }
    }
}

impl ExecContext {
    pub fn new() -> ExecContext {
        ExecContext::default()
    }

    /// Record a helper failure; the first one wins.
    pub fn set_fault(&mut self, msg: impl Into<String>) {
        if self.fault.is_none() {
            self.fault = Some(msg.into());
        }
    }

    /// Release spin locks a run left held (a program that exits holding a
    /// lock, which the verifier forbids; unverified runs may do it).
    pub fn release_locks(&mut self) {
        for addr in self.locks.drain(..) {
            // SAFETY: the address was a lock word in map memory when taken,
            // and maps outlive the runs that use them.
            unsafe { crate::maps::lock::SpinLock::from_ptr(addr as *mut u32) }.unlock_raw();
        }
    }
}

/// Run `f` as one program run the way every engine wraps a run: a
/// read-side section (objects a map replaces stay alive until the run
/// ends) and the anchor stack helpers take the host's stack from
/// (`capture_stack`: take it at once, for compiled code that unwinders
/// cannot walk; only worth its cost when the program asks for stacks). When
/// the run `failed`, ring buffer records it reserved and did not release
/// are discarded and spin locks it holds are released, so a stopped program
/// never blocks others.
pub fn run_section<R>(
    capture_stack: bool,
    ctx: &mut ExecContext,
    f: impl FnOnce(&mut ExecContext) -> R,
    failed: impl FnOnce(&R) -> bool,
) -> R {
    let _section = crate::maps::rcu::read_lock();
    let r = crate::maps::stack_trace::run_anchored(capture_stack, || f(ctx));
    if failed(&r) {
        crate::maps::ringbuf::discard_thread_reservations();
    }
    ctx.release_locks();
    r
}
