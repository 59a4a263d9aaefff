//! The reference interpreter: the semantic oracle for ISA v4 that the JIT and
//! AOT code are differential-tested against. Precision first; it still
//! decodes once and runs a tight `match` over [`Insn`].
//!
//! Machine model:
//! - On entry r1 holds the address of the input buffer (0 when it is empty)
//!   and r2 its length; the other registers are 0 except r10.
//! - Each call frame has its own [`STACK_SIZE`](isa::STACK_SIZE)-byte stack, r10 pointing at
//!   its top. A local call (`call` with `src = 1`) saves r6-r9 and r10,
//!   switches to a fresh frame and restores them on `exit`; at most
//!   [`MAX_CALL_FRAMES`](isa::MAX_CALL_FRAMES) frames (the entry function included) may be live.
//!   A callee may access its callers' stacks (a program can pass a pointer
//!   to its own stack down), never a frame below its own.
//! - `call imm` calls helper `imm` of the [`HelperTable`]; `callx reg` calls
//!   the helper whose id is the value of `reg` (this is what the conformance
//!   case `callx` expects: `r2 = 5; callx r2` calls helper 5). Helpers
//!   receive r1-r5 and the [`ExecContext`]; r0 receives their result, r1-r5
//!   keep their values. A helper that records a fault in the context stops
//!   the run.
//! - Every load, store and atomic is checked against the accessible regions
//!   (see [`memory`]); unaligned accesses inside a region are allowed.
//! - [`run`] validates the program with [`isa::validate`] first, so callers may
//!   pass freshly decoded or hand-built instruction vectors alike.
//!
//! Maps, global data and callbacks come from the [`BoundProgram`]; helpers
//! check their pointer arguments against the run's regions; tail calls go
//! through prog arrays holding [`InterpProgram`]s. Not executable: kfunc
//! calls, and the legacy packet loads `ldabs`/`ldind` outside packet
//! program types; each stops the run with its own error.

mod alu;
mod exec;
pub mod memory;

#[cfg(test)]
mod tests;

use crate::bind::BoundProgram;
use crate::isa::{self, DecodeError, Endian, Insn, LddwSrc};
use bpfc_runtime::abi::ProgNative;
use bpfc_runtime::programs::{self, TailTarget};
use bpfc_runtime::{ExecContext, HelperTable};
use std::sync::Arc;
use thiserror::Error;

/// Run options.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Stop with [`RunError::InsnLimit`] after this many executed instructions
    /// (`None`: no limit).
    pub max_insns: Option<u64>,
    /// The eBPF machine's byte order: memory accesses and `le`/`be` follow
    /// it (the bytecode's order, little-endian unless the program is `bpfeb`).
    pub endian: Endian,
}

/// Why a run stopped without a return value. Every variant carries the slot
/// index `pc` of the instruction it concerns. Messages are one line; where
/// compiled code reports the same fault, the interpreter's message starts
/// with the same words ([`bpfc_runtime::abi::FaultCode::describe`]) and adds
/// the detail only the interpreter knows (address, helper id, ...).
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RunError {
    /// The program failed [`isa::validate`] (`pc` is 0 for an empty program).
    #[error("{source}")]
    Invalid { pc: usize, source: DecodeError },
    #[error("instruction {pc}: out-of-bounds memory access: {size}-byte {access} at {addr:#x} ({regions})")]
    OutOfBounds {
        pc: usize,
        addr: u64,
        size: usize,
        access: &'static str,
        /// The accessible regions at the time, e.g. `stack is 0x..-0x.., input is empty`.
        regions: String,
    },
    #[error("instruction {pc}: {size}-byte write at {addr:#x} into read-only {}", region.escape_debug())]
    ReadOnly {
        pc: usize,
        addr: u64,
        size: usize,
        region: String,
    },
    #[error("instruction {pc}: instruction limit of {limit} reached")]
    InsnLimit { pc: usize, limit: u64 },
    #[error("instruction {pc}: call depth exceeds {max} frames")]
    CallDepth { pc: usize, max: usize },
    #[error("instruction {pc}: unknown helper {id}")]
    UnknownHelper { pc: usize, id: i128 },
    /// `message` is the helper's own text, escaped to keep the message on one line.
    #[error("instruction {pc}: helper failed: {} (helper {id}, {name})", message.escape_debug())]
    HelperFault {
        pc: usize,
        id: u32,
        name: &'static str,
        message: String,
    },
    #[error("instruction {pc}: kfunc calls cannot run (btf id {btf_id})")]
    Kfunc { pc: usize, btf_id: i32 },
    /// The loader's poison call (`bpfc_runtime::abi::CORE_POISON_HELPER`).
    #[error(
        "instruction {pc}: reached an instruction whose CO-RE relocation could not be applied"
    )]
    CoreRelocation { pc: usize },
    #[error("instruction {pc}: legacy packet load needs a packet program type")]
    PacketLoad { pc: usize },
    #[error("instruction {pc}: {} (src {})", bpfc_runtime::abi::FaultCode::UnresolvedLddw.describe(), src.raw())]
    UnresolvedLddw { pc: usize, src: LddwSrc },
    #[error("instruction {pc}: bad callback {addr:#x}")]
    BadCallback { pc: usize, addr: u64 },
    /// Reached an instruction that is never executed (the second `lddw` slot);
    /// validation rules this out, so it signals an interpreter bug.
    #[error("instruction {pc}: not executable ({insn:?})")]
    NotExecutable { pc: usize, insn: Insn },
}

impl RunError {
    /// The slot index of the instruction the error concerns.
    pub fn pc(&self) -> usize {
        match *self {
            RunError::Invalid { pc, .. }
            | RunError::OutOfBounds { pc, .. }
            | RunError::ReadOnly { pc, .. }
            | RunError::InsnLimit { pc, .. }
            | RunError::CallDepth { pc, .. }
            | RunError::UnknownHelper { pc, .. }
            | RunError::HelperFault { pc, .. }
            | RunError::Kfunc { pc, .. }
            | RunError::CoreRelocation { pc }
            | RunError::PacketLoad { pc }
            | RunError::UnresolvedLddw { pc, .. }
            | RunError::BadCallback { pc, .. }
            | RunError::NotExecutable { pc, .. } => pc,
        }
    }
}

/// Run raw bytecode `insns` (no maps) on the input `mem` and return r0.
/// Memory beyond the stack and `mem` that the program may use is in
/// `ctx.regions`.
pub fn run(
    insns: &[Insn],
    mem: &mut [u8],
    helpers: &HelperTable,
    ctx: &mut ExecContext,
    opts: &Options,
) -> Result<u64, RunError> {
    let prog = BoundProgram::raw(insns, opts.endian, helpers);
    run_bound(&prog, mem, ctx, opts)
}

/// Run a bound program on the input `mem` (r1 = its address or 0, r2 = its
/// length) and return r0.
pub fn run_bound(
    prog: &BoundProgram,
    mem: &mut [u8],
    ctx: &mut ExecContext,
    opts: &Options,
) -> Result<u64, RunError> {
    let (r1, r2) = if mem.is_empty() {
        (0, 0)
    } else {
        (mem.as_ptr() as u64, mem.len() as u64)
    };
    run_bound_with(prog, mem, r1, r2, ctx, opts)
}

/// Run a bound program with r1 and r2 given; `input` is memory r1 may
/// point into (the context).
pub fn run_bound_with(
    prog: &BoundProgram,
    input: &mut [u8],
    r1: u64,
    r2: u64,
    ctx: &mut ExecContext,
    opts: &Options,
) -> Result<u64, RunError> {
    isa::validate(&prog.insns).map_err(|source| RunError::Invalid {
        pc: source.pc().unwrap_or(0),
        source,
    })?;
    ctx.checked = true;
    for m in prog.maps.iter().flatten() {
        ctx.regions.add_map(m);
    }
    let opts = Options {
        endian: prog.endian,
        ..opts.clone()
    };
    bpfc_runtime::context::run_section(
        false,
        ctx,
        |ctx| {
            let memory = memory::Memory::new(input, prog.endian);
            exec::Machine::new(prog, memory, ctx, &opts).run(r1, r2)
        },
        Result::is_err,
    )
}

/// A callback handed out of a run to be called later (a timer's): the
/// program it belongs to (kept alive with its maps) and its first pc.
pub(crate) struct InterpCallback {
    prog: BoundProgram,
    pc: usize,
    opts: Options,
}

impl bpfc_runtime::DetachedCallback for InterpCallback {
    fn call(&self, ctx: &mut ExecContext, args: [u64; 5]) -> Result<u64, String> {
        ctx.checked = true;
        for m in self.prog.maps.iter().flatten() {
            ctx.regions.add_map(m);
        }
        let opts = Options {
            endian: self.prog.endian,
            ..self.opts.clone()
        };
        bpfc_runtime::context::run_section(
            false,
            ctx,
            |ctx| {
                let memory = memory::Memory::new(&mut [], self.prog.endian);
                exec::Machine::new(&self.prog, memory, ctx, &opts).run_callback(self.pc, args)
            },
            Result::is_err,
        )
        .map_err(|e| e.to_string())
    }
}

/// A bound program the interpreter runs, as a prog array slot holds it.
pub struct InterpProgram {
    pub bound: BoundProgram,
    native: ProgNative,
}

impl InterpProgram {
    /// Wrap and register a bound program so prog arrays can hold it.
    pub fn share(bound: BoundProgram) -> Arc<InterpProgram> {
        let native = ProgNative {
            func: std::ptr::null(),
            prog: std::ptr::null(),
            id: programs::next_id(),
            prog_type: bound.prog_type,
        };
        let p = Arc::new(InterpProgram { bound, native });
        let t: Arc<dyn TailTarget> = p.clone();
        programs::register(&t);
        p
    }
}

impl TailTarget for InterpProgram {
    fn native(&self) -> &ProgNative {
        &self.native
    }

    fn name(&self) -> &str {
        &self.bound.name
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn into_any_arc(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}
