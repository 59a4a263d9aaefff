//! The execution loop: registers, the call-frame stack, control flow, calls
//! to helpers, local functions and callbacks, tail calls, and dispatch of
//! every instruction.

use super::alu;
use super::memory::Memory;
use super::{InterpProgram, Options, RunError};
use crate::bind::BoundProgram;
use crate::isa::{
    AtomicOp, CallTarget, Insn, LddwSrc, Reg, Size, Src, Width, MAX_CALL_FRAMES, MAY_GOTO_BUDGET,
};
use bpfc_runtime::abi::CORE_POISON_HELPER;
use bpfc_runtime::abi::{CallbackNative, FaultCode, RunState};
use bpfc_runtime::context::CallbackFault;
use bpfc_runtime::helpers::{args, ids};
use bpfc_runtime::maps::prog_array::ProgArray;
use bpfc_runtime::{programs, ExecContext, Invoker};
use std::sync::Arc;

/// What a call saves: where to return (in which program) and the
/// callee-saved registers. A callback's frame ends the nested run that
/// [`Invoker::invoke`] started.
struct Frame {
    return_pc: usize,
    prog: usize,
    saved: [u64; 4],
    callback: bool,
    /// The caller's remaining `may_goto` budget.
    may_goto: u64,
}

/// One run of the interpreter.
pub(super) struct Machine<'a> {
    /// Program 0 is the one the run started with; tail calls add the others.
    main: &'a BoundProgram,
    tails: Vec<Arc<InterpProgram>>,
    cur: usize,
    regs: [u64; Reg::COUNT],
    frames: Vec<Frame>,
    /// The current function call's remaining `may_goto` budget.
    may_goto: u64,
    mem: Memory<'a>,
    ctx: &'a mut ExecContext,
    limit: u64,
    executed: u64,
    tail_calls: u32,
    /// `struct bpfc_callback`s handed out by `lddw` of functions: (program,
    /// pc, the struct).
    callbacks: Vec<(usize, usize, Box<CallbackNative>)>,
    /// A fault inside a callback, reported when its helper returns.
    pending: Option<RunError>,
    opts: Options,
}

/// Value of the second operand at `width`.
#[inline]
fn operand(regs: &[u64; Reg::COUNT], width: Width, src: Src) -> u64 {
    match src {
        Src::Imm(i) => alu::imm(width, i),
        Src::Reg(r) => regs[r.index()],
    }
}

/// `base + off`, the effective address of a memory access.
#[inline]
fn address(base: u64, off: i16) -> u64 {
    base.wrapping_add(off as i64 as u64)
}

/// `pc + 1 + off`. Validation guarantees the target is inside the program.
#[inline]
fn target(pc: usize, off: i64) -> usize {
    (pc as i64 + 1 + off) as usize
}

impl<'a> Machine<'a> {
    pub(super) fn new(
        main: &'a BoundProgram,
        mem: Memory<'a>,
        ctx: &'a mut ExecContext,
        opts: &Options,
    ) -> Machine<'a> {
        Machine {
            main,
            tails: Vec::new(),
            cur: 0,
            regs: [0; Reg::COUNT],
            frames: Vec::with_capacity(MAX_CALL_FRAMES),
            may_goto: MAY_GOTO_BUDGET,
            mem,
            ctx,
            limit: opts.max_insns.unwrap_or(u64::MAX),
            executed: 0,
            tail_calls: 0,
            callbacks: Vec::new(),
            pending: None,
            opts: opts.clone(),
        }
    }

    fn prog(&self, i: usize) -> &BoundProgram {
        if i == 0 {
            self.main
        } else {
            &self.tails[i - 1].bound
        }
    }

    /// Run from the start with r1 and r2 given.
    pub(super) fn run(&mut self, r1: u64, r2: u64) -> Result<u64, RunError> {
        self.regs[1] = r1;
        self.regs[2] = r2;
        self.regs[10] = self.mem.frame_pointer(0);
        self.execute(0)
    }

    /// Run the callback function at `pc` with r1-r5 given, as the first
    /// frame of this run (a timer's callback).
    pub(super) fn run_callback(&mut self, pc: usize, args: [u64; 5]) -> Result<u64, RunError> {
        self.regs[1..6].copy_from_slice(&args);
        self.regs[10] = self.mem.frame_pointer(0);
        self.may_goto = MAY_GOTO_BUDGET;
        self.execute(pc)
    }

    /// Execute from `pc` in the current program until the function at the
    /// bottom of this nested run exits.
    fn execute(&mut self, mut pc: usize) -> Result<u64, RunError> {
        loop {
            let insn = match self.prog(self.cur).insns.get(pc) {
                Some(i) => *i,
                // Validation rules this out; stop cleanly anyway.
                None => {
                    return Err(RunError::NotExecutable {
                        pc,
                        insn: Insn::Exit,
                    })
                }
            };
            if self.executed >= self.limit {
                return Err(RunError::InsnLimit {
                    pc,
                    limit: self.limit,
                });
            }
            self.executed += 1;
            let mut next = pc + 1;
            let regs = &mut self.regs;
            match insn {
                Insn::Alu {
                    width,
                    op,
                    dst,
                    src,
                } => {
                    let s = operand(regs, width, src);
                    regs[dst.index()] = alu::alu(width, op, regs[dst.index()], s);
                }
                Insn::Neg { width, dst } => regs[dst.index()] = alu::neg(width, regs[dst.index()]),
                Insn::End { order, bits, dst } => {
                    regs[dst.index()] = alu::end(order, bits, regs[dst.index()], self.opts.endian)
                }
                Insn::Ja { off, .. } => next = target(pc, off as i64),
                Insn::MayGoto { off } => {
                    if self.may_goto == 0 {
                        next = target(pc, off as i64);
                    } else {
                        self.may_goto -= 1;
                    }
                }
                Insn::Jmp {
                    width,
                    cond,
                    dst,
                    src,
                    off,
                } => {
                    let s = operand(regs, width, src);
                    if cond.eval(width, regs[dst.index()], s) {
                        next = target(pc, off as i64);
                    }
                }
                Insn::Call(CallTarget::Helper(CORE_POISON_HELPER)) => {
                    return Err(RunError::CoreRelocation { pc });
                }
                Insn::Call(CallTarget::Helper(id)) if id as u32 == ids::TAIL_CALL && id >= 0 => {
                    if let Some(start) = self.tail_call(pc)? {
                        next = start;
                    }
                }
                Insn::Call(CallTarget::Helper(id)) => {
                    self.regs[0] = self.call_helper(pc, id as i128)?;
                }
                Insn::Callx { reg } => {
                    let id = regs[reg.index()] as i128;
                    self.regs[0] = self.call_helper(pc, id)?;
                }
                Insn::Call(CallTarget::Local(off)) => {
                    self.push_frame(pc, next, false)?;
                    next = target(pc, off as i64);
                }
                Insn::Call(CallTarget::Kfunc { btf_id, .. }) => {
                    return Err(RunError::Kfunc { pc, btf_id });
                }
                Insn::Exit => match self.frames.pop() {
                    None => return Ok(self.regs[0]),
                    Some(f) => {
                        self.regs[6..10].copy_from_slice(&f.saved);
                        self.may_goto = f.may_goto;
                        let depth = self.frames.len();
                        self.mem.set_depth(depth);
                        self.regs[10] = self.mem.frame_pointer(depth);
                        self.cur = f.prog;
                        if f.callback {
                            return Ok(self.regs[0]);
                        }
                        next = f.return_pc;
                    }
                },
                Insn::Lddw { dst, src, imm } => {
                    self.regs[dst.index()] = self.lddw(pc, src, imm)?;
                    next = pc + 2;
                }
                Insn::LddwHigh => return Err(RunError::NotExecutable { pc, insn }),
                Insn::Ldx {
                    size,
                    sx,
                    dst,
                    src,
                    off,
                } => {
                    let addr = address(regs[src.index()], off);
                    let v = self.mem.load(pc, addr, size, &self.ctx.regions)?;
                    self.regs[dst.index()] = if sx {
                        alu::sign_extend(v, (size.bytes() * 8) as u8)
                    } else {
                        v
                    };
                }
                Insn::St {
                    size,
                    dst,
                    off,
                    imm,
                } => {
                    let addr = address(regs[dst.index()], off);
                    self.mem
                        .store(pc, addr, size, imm as i64 as u64, &self.ctx.regions)?
                }
                Insn::Stx {
                    size,
                    dst,
                    src,
                    off,
                } => {
                    let addr = address(regs[dst.index()], off);
                    let v = regs[src.index()];
                    self.mem.store(pc, addr, size, v, &self.ctx.regions)?
                }
                Insn::Atomic {
                    size,
                    op,
                    fetch,
                    dst,
                    src,
                    off,
                } => self.atomic(pc, size, op, fetch, dst, src, off)?,
                Insn::LdAbs { size, imm } | Insn::LdInd { size, imm, .. } => {
                    let Some(net) = self.ctx.net.as_deref() else {
                        return Err(RunError::PacketLoad { pc });
                    };
                    let offset = match insn {
                        Insn::LdInd { src, .. } => {
                            regs[src.index()].wrapping_add(imm as i64 as u64)
                        }
                        _ => imm as i64 as u64,
                    };
                    let v = bpfc_runtime::net::ldabs::read(net, offset as u32 as i32, size.bytes());
                    if v < 0 {
                        // Outside the packet: the program ends with 0
                        // (legacy loads never appear beside local calls).
                        return Ok(0);
                    }
                    regs[0] = v as u64;
                }
            }
            pc = next;
        }
    }

    /// Enter a new frame below the current one (a local call or a callback).
    fn push_frame(&mut self, pc: usize, return_pc: usize, callback: bool) -> Result<(), RunError> {
        let depth = self.frames.len() + 1;
        if depth >= MAX_CALL_FRAMES {
            return Err(RunError::CallDepth {
                pc,
                max: MAX_CALL_FRAMES,
            });
        }
        self.frames.push(Frame {
            return_pc,
            prog: self.cur,
            saved: [self.regs[6], self.regs[7], self.regs[8], self.regs[9]],
            callback,
            may_goto: self.may_goto,
        });
        self.may_goto = MAY_GOTO_BUDGET;
        self.mem.set_depth(depth);
        self.regs[10] = self.mem.frame_pointer(depth);
        Ok(())
    }

    /// The value of an `lddw`: an immediate, a map, an address in a map's
    /// values, or a callback.
    fn lddw(&mut self, pc: usize, src: LddwSrc, imm: u64) -> Result<u64, RunError> {
        let prog = self.prog(self.cur);
        let map = |idx: usize| prog.maps.get(idx).and_then(Option::as_ref);
        let v = match src {
            LddwSrc::Imm => Some(imm),
            LddwSrc::MapIdx => map(imm as u32 as usize).map(|m| m.as_ptr() as u64),
            LddwSrc::MapIdxValue => map(imm as u32 as usize).and_then(|m| {
                let values = m.native().values;
                (!values.is_null()).then(|| values as u64 + (imm >> 32))
            }),
            LddwSrc::Func => {
                let t = pc as i64 + 1 + imm as u32 as i32 as i64;
                Some(self.callback(t as usize))
            }
            _ => None,
        };
        v.ok_or(RunError::UnresolvedLddw { pc, src })
    }

    /// The `struct bpfc_callback` for the function at `pc` of the current program.
    fn callback(&mut self, pc: usize) -> u64 {
        let cur = self.cur;
        if let Some((_, _, cb)) = self
            .callbacks
            .iter()
            .find(|(p, f, _)| *p == cur && *f == pc)
        {
            return &**cb as *const CallbackNative as u64;
        }
        let cb = Box::new(CallbackNative {
            magic: CallbackNative::MAGIC,
            pc: pc as u64,
            func: std::ptr::null(),
            prog: cur as *const u8,
        });
        let addr = &*cb as *const CallbackNative as u64;
        self.callbacks.push((cur, pc, cb));
        addr
    }

    /// A run state for a helper called from the current frame.
    fn state(&mut self) -> RunState {
        let mut st = RunState::new(&mut *self.ctx);
        st.stack_base = self.mem.stack_base();
        st.stack_top = self.mem.stack_top();
        st.input_lo = self.mem.input_addr();
        st.input_hi = st.input_lo + self.mem.input_len() as u64;
        st.cb_fp = self.regs[10];
        st.tail_calls = self.tail_calls;
        st
    }

    /// The error for a run state a helper left with a fault.
    fn helper_error(&mut self, pc: usize, id: u32, name: &'static str, st: &RunState) -> RunError {
        if let Some(e) = self.pending.take() {
            return e;
        }
        match FaultCode::from_raw(st.fault.code) {
            Some(FaultCode::CallDepth) => RunError::CallDepth {
                pc,
                max: MAX_CALL_FRAMES,
            },
            Some(FaultCode::BadCallback) => RunError::BadCallback {
                pc,
                addr: st.fault.detail,
            },
            _ => RunError::HelperFault {
                pc,
                id,
                name,
                message: self.ctx.fault.take().unwrap_or_default(),
            },
        }
    }

    /// Call helper `id` with r1-r5; returns its r0.
    fn call_helper(&mut self, pc: usize, id: i128) -> Result<u64, RunError> {
        let helper = u32::try_from(id)
            .ok()
            .and_then(|id| self.prog(self.cur).helpers.get(id).copied())
            .ok_or(RunError::UnknownHelper { pc, id })?;
        let mut st = self.state();
        let r = self.regs;
        let ctx: *mut ExecContext = &mut *self.ctx;
        let me: *mut Machine<'a> = self;
        // SAFETY: the invoker pointer is only used by helpers during this
        // call, while this function does not touch `self`; its lifetime is
        // erased because the context outlives no run that installs it (it
        // is removed right after the call).
        let prev = unsafe {
            let inv: *mut (dyn Invoker + 'a) = me;
            let inv: *mut dyn Invoker =
                std::mem::transmute::<*mut (dyn Invoker + 'a), *mut dyn Invoker>(inv);
            (*ctx).invoker.replace(inv)
        };
        // SAFETY: `helper.func` follows the shared helper ABI
        // (`bpfc_runtime::HelperFn`): five integers and the run state, whose
        // context is this run's. Helpers check pointer arguments against the
        // run's regions (the context is in checked mode in the interpreter).
        let r0 = unsafe { (helper.func)(r[1], r[2], r[3], r[4], r[5], &mut st) };
        // SAFETY: as above; the helper has returned.
        unsafe { (*ctx).invoker = prev };
        self.tail_calls = st.tail_calls;
        if st.fault.code != 0 || self.pending.is_some() {
            return Err(self.helper_error(pc, helper.id, helper.name, &st));
        }
        Ok(r0)
    }

    /// `bpf_tail_call(ctx, map, index)`: the first pc of the target, now the
    /// current program, or `None` to go on after the call.
    fn tail_call(&mut self, pc: usize) -> Result<Option<usize>, RunError> {
        let (map_addr, index) = (self.regs[2], self.regs[3]);
        let mut st = self.state();
        let name = "tail_call";
        // SAFETY: the program's r2, checked against the live maps (the
        // interpreter's context is in checked mode).
        let found = match unsafe { args::map(&mut st, map_addr) } {
            Ok(m) => programs::target(&mut st, m, index).map(|_| m),
            Err(_) => None,
        };
        if st.fault.code != 0 {
            return Err(self.helper_error(pc, ids::TAIL_CALL, name, &st));
        }
        self.tail_calls = st.tail_calls;
        let Some(map) = found else {
            return Ok(None);
        };
        let target = map
            .imp()
            .as_any()
            .downcast_ref::<ProgArray>()
            .and_then(|a| a.program(index as u32));
        let Some(prog) = target.and_then(|t| {
            let p: Arc<dyn std::any::Any + Send + Sync> = t.into_any_arc();
            p.downcast::<InterpProgram>().ok()
        }) else {
            return Err(RunError::HelperFault {
                pc,
                id: ids::TAIL_CALL,
                name,
                message: format!(
                    "tail call through {} slot {index} into a program of another engine",
                    map.name()
                ),
            });
        };
        let idx = match self.tails.iter().position(|t| Arc::ptr_eq(t, &prog)) {
            Some(i) => i + 1,
            None => {
                self.tails.push(prog);
                self.tails.len()
            }
        };
        self.cur = idx;
        self.may_goto = MAY_GOTO_BUDGET;
        let ctx = self.regs[1];
        let fp = self.regs[10];
        self.regs = [0; Reg::COUNT];
        self.regs[1] = ctx;
        self.regs[10] = fp;
        Ok(Some(0))
    }

    /// One atomic read-modify-write. 32-bit forms operate on the low halves
    /// and zero-extend the fetched value.
    #[allow(clippy::too_many_arguments)]
    fn atomic(
        &mut self,
        pc: usize,
        size: Size,
        op: AtomicOp,
        fetch: bool,
        dst: Reg,
        src: Reg,
        off: i16,
    ) -> Result<(), RunError> {
        let regs = &mut self.regs;
        let addr = address(regs[dst.index()], off);
        let mask = if size == Size::W {
            u32::MAX as u64
        } else {
            u64::MAX
        };
        let s = regs[src.index()] & mask;
        let r0 = regs[0] & mask;
        let old = self
            .mem
            .update(pc, addr, size, &self.ctx.regions, |old| match op {
                AtomicOp::Add => old.wrapping_add(s) & mask,
                AtomicOp::Or => old | s,
                AtomicOp::And => old & s,
                AtomicOp::Xor => old ^ s,
                AtomicOp::Xchg => s,
                AtomicOp::CmpXchg => {
                    if old == r0 {
                        s
                    } else {
                        old
                    }
                }
            })?;
        match op {
            AtomicOp::CmpXchg => self.regs[0] = old,
            _ if fetch => self.regs[src.index()] = old,
            _ => {}
        }
        Ok(())
    }
}

impl Invoker for Machine<'_> {
    fn detach(&mut self, cb: u64) -> Option<Arc<dyn bpfc_runtime::DetachedCallback>> {
        let (prog, pc) = self
            .callbacks
            .iter()
            .find(|(_, _, c)| &**c as *const CallbackNative as u64 == cb)
            .map(|(p, f, _)| (*p, *f))?;
        Some(Arc::new(super::InterpCallback {
            prog: self.prog(prog).clone(),
            pc,
            opts: self.opts.clone(),
        }))
    }

    fn invoke(&mut self, st: &mut RunState, cb: u64, args: [u64; 5]) -> Result<u64, CallbackFault> {
        let found = self
            .callbacks
            .iter()
            .find(|(_, _, c)| &**c as *const CallbackNative as u64 == cb)
            .map(|(p, f, _)| (*p, *f));
        let Some((prog, pc)) = found else {
            st.fault.code = FaultCode::BadCallback as u32;
            st.fault.detail = cb;
            return Err(CallbackFault);
        };
        let saved_regs = self.regs;
        let saved_cur = self.cur;
        self.tail_calls = st.tail_calls;
        let call_pc = pc;
        let result = self.push_frame(call_pc, 0, true).and_then(|()| {
            self.cur = prog;
            self.regs[1..6].copy_from_slice(&args);
            self.execute(pc)
        });
        st.tail_calls = self.tail_calls;
        let depth = self.frames.len();
        match result {
            Ok(r0) => {
                self.regs = saved_regs;
                self.cur = saved_cur;
                self.mem.set_depth(depth);
                Ok(r0)
            }
            Err(e) => {
                self.pending = Some(e);
                st.fault.code = FaultCode::HelperFault as u32;
                Err(CallbackFault)
            }
        }
    }
}
