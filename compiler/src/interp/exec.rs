//! The execution loop: registers, the call-frame stack, control flow, calls
//! to helpers and local functions, and dispatch of every instruction.

use super::alu;
use super::memory::Memory;
use super::{Options, RunError};
use crate::isa::{AtomicOp, CallTarget, Insn, LddwSrc, Reg, Size, Src, Width, MAX_CALL_FRAMES};
use bpfc_runtime::abi::CORE_POISON_HELPER;
use bpfc_runtime::{ExecContext, HelperTable};

/// What a local call saves: where to return and the callee-saved registers.
struct Frame {
    return_pc: usize,
    saved: [u64; 4],
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

pub(super) fn execute(
    insns: &[Insn],
    mem: &mut Memory<'_, '_>,
    helpers: &HelperTable,
    ctx: &mut ExecContext,
    opts: &Options,
) -> Result<u64, RunError> {
    let mut regs = [0u64; Reg::COUNT];
    regs[1] = mem.input_addr();
    regs[2] = mem.input_len() as u64;
    regs[10] = mem.frame_pointer(0);
    let mut frames: Vec<Frame> = Vec::with_capacity(MAX_CALL_FRAMES);
    let limit = opts.max_insns.unwrap_or(u64::MAX);
    let mut executed: u64 = 0;
    let mut pc: usize = 0;

    loop {
        let insn = match insns.get(pc) {
            Some(i) => *i,
            // Validation rules this out; stop cleanly anyway.
            None => {
                return Err(RunError::NotExecutable {
                    pc,
                    insn: Insn::Exit,
                })
            }
        };
        if executed >= limit {
            return Err(RunError::InsnLimit { pc, limit });
        }
        executed += 1;
        let mut next = pc + 1;
        match insn {
            Insn::Alu {
                width,
                op,
                dst,
                src,
            } => {
                let s = operand(&regs, width, src);
                regs[dst.index()] = alu::alu(width, op, regs[dst.index()], s);
            }
            Insn::Neg { width, dst } => regs[dst.index()] = alu::neg(width, regs[dst.index()]),
            Insn::End { order, bits, dst } => {
                regs[dst.index()] = alu::end(order, bits, regs[dst.index()], opts.endian)
            }
            Insn::Ja { off, .. } => next = target(pc, off as i64),
            Insn::Jmp {
                width,
                cond,
                dst,
                src,
                off,
            } => {
                let s = operand(&regs, width, src);
                if cond.eval(width, regs[dst.index()], s) {
                    next = target(pc, off as i64);
                }
            }
            Insn::Call(CallTarget::Helper(CORE_POISON_HELPER)) => {
                return Err(RunError::CoreRelocation { pc });
            }
            Insn::Call(CallTarget::Helper(id)) => {
                regs[0] = call_helper(pc, id as i128, &regs, helpers, ctx)?;
            }
            Insn::Callx { reg } => {
                regs[0] = call_helper(pc, regs[reg.index()] as i128, &regs, helpers, ctx)?;
            }
            Insn::Call(CallTarget::Local(off)) => {
                let depth = frames.len() + 1;
                if depth >= MAX_CALL_FRAMES {
                    return Err(RunError::CallDepth {
                        pc,
                        max: MAX_CALL_FRAMES,
                    });
                }
                frames.push(Frame {
                    return_pc: next,
                    saved: [regs[6], regs[7], regs[8], regs[9]],
                });
                mem.set_depth(depth);
                regs[10] = mem.frame_pointer(depth);
                next = target(pc, off as i64);
            }
            Insn::Call(CallTarget::Kfunc { btf_id, .. }) => {
                return Err(RunError::Kfunc { pc, btf_id });
            }
            Insn::Exit => match frames.pop() {
                None => return Ok(regs[0]),
                Some(f) => {
                    regs[6..10].copy_from_slice(&f.saved);
                    let depth = frames.len();
                    mem.set_depth(depth);
                    regs[10] = mem.frame_pointer(depth);
                    next = f.return_pc;
                }
            },
            Insn::Lddw { dst, src, imm } => {
                if src != LddwSrc::Imm {
                    return Err(RunError::UnresolvedLddw { pc, src });
                }
                regs[dst.index()] = imm;
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
                let v = mem.load(pc, address(regs[src.index()], off), size)?;
                regs[dst.index()] = if sx {
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
            } => mem.store(pc, address(regs[dst.index()], off), size, imm as i64 as u64)?,
            Insn::Stx {
                size,
                dst,
                src,
                off,
            } => mem.store(pc, address(regs[dst.index()], off), size, regs[src.index()])?,
            Insn::Atomic {
                size,
                op,
                fetch,
                dst,
                src,
                off,
            } => atomic(pc, mem, &mut regs, size, op, fetch, dst, src, off)?,
            Insn::LdAbs { .. } | Insn::LdInd { .. } => return Err(RunError::PacketLoad { pc }),
        }
        pc = next;
    }
}

/// Call helper `id` with r1-r5; returns its r0.
fn call_helper(
    pc: usize,
    id: i128,
    regs: &[u64; Reg::COUNT],
    helpers: &HelperTable,
    ctx: &mut ExecContext,
) -> Result<u64, RunError> {
    let helper = u32::try_from(id)
        .ok()
        .and_then(|id| helpers.get(id))
        .ok_or(RunError::UnknownHelper { pc, id })?;
    // SAFETY: `helper.func` follows the shared helper ABI
    // (`bpfc_runtime::HelperFn`): it takes five integers and a pointer to the
    // live `ExecContext` of this run, which `ctx` is (exclusively borrowed,
    // valid for the call). Helpers that dereference pointer arguments must
    // validate them themselves; the conformance table's helpers do not
    // dereference any.
    let r0 = unsafe {
        (helper.func)(
            regs[1],
            regs[2],
            regs[3],
            regs[4],
            regs[5],
            ctx as *mut ExecContext,
        )
    };
    if let Some(message) = ctx.fault.take() {
        return Err(RunError::HelperFault {
            pc,
            id: helper.id,
            name: helper.name,
            message,
        });
    }
    Ok(r0)
}

/// One atomic read-modify-write. 32-bit forms operate on the low halves and
/// zero-extend the fetched value.
#[allow(clippy::too_many_arguments)]
fn atomic(
    pc: usize,
    mem: &mut Memory<'_, '_>,
    regs: &mut [u64; Reg::COUNT],
    size: Size,
    op: AtomicOp,
    fetch: bool,
    dst: Reg,
    src: Reg,
    off: i16,
) -> Result<(), RunError> {
    let addr = address(regs[dst.index()], off);
    let mask = if size == Size::W {
        u32::MAX as u64
    } else {
        u64::MAX
    };
    let s = regs[src.index()] & mask;
    let r0 = regs[0] & mask;
    let old = mem.update(pc, addr, size, |old| match op {
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
        AtomicOp::CmpXchg => regs[0] = old,
        _ if fetch => regs[src.index()] = old,
        _ => {}
    }
    Ok(())
}
