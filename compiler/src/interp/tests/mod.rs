//! Interpreter tests on hand-built programs, with a tiny `Insn` builder
//! shared by the submodules.

mod calls;
mod memory;
mod messages;
mod ops;
mod random;

use super::*;
use crate::isa::{
    AluOp, AtomicOp, CallTarget, Insn, JmpCond, LddwSrc, Reg, Size, Src, Width, MAX_CALL_FRAMES,
    STACK_SIZE,
};
use bpfc_runtime::{ExecContext, Helper, HelperTable};

const R0: Reg = Reg::R0;
const R1: Reg = Reg::R1;
const R2: Reg = Reg::R2;
const R3: Reg = Reg::R3;
const R6: Reg = Reg::R6;
const FP: Reg = Reg::FP;

// A tiny builder: each helper returns one instruction.
fn mov64(dst: Reg, imm: i32) -> Insn {
    alu64(AluOp::Mov, dst, Src::Imm(imm))
}
fn movr(dst: Reg, src: Reg) -> Insn {
    alu64(AluOp::Mov, dst, Src::Reg(src))
}
fn alu64(op: AluOp, dst: Reg, src: Src) -> Insn {
    Insn::Alu {
        width: Width::W64,
        op,
        dst,
        src,
    }
}
fn jmp(width: Width, cond: JmpCond, dst: Reg, src: Src, off: i16) -> Insn {
    Insn::Jmp {
        width,
        cond,
        dst,
        src,
        off,
    }
}
fn ldx(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
    Insn::Ldx {
        size,
        sx: false,
        dst,
        src,
        off,
    }
}
fn ldxs(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
    Insn::Ldx {
        size,
        sx: true,
        dst,
        src,
        off,
    }
}
fn stx(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
    Insn::Stx {
        size,
        dst,
        src,
        off,
    }
}
fn st(size: Size, dst: Reg, off: i16, imm: i32) -> Insn {
    Insn::St {
        size,
        dst,
        off,
        imm,
    }
}
fn lddw(dst: Reg, imm: u64) -> [Insn; 2] {
    [
        Insn::Lddw {
            dst,
            src: LddwSrc::Imm,
            imm,
        },
        Insn::LddwHigh,
    ]
}
fn atomic(size: Size, op: AtomicOp, fetch: bool, dst: Reg, src: Reg, off: i16) -> Insn {
    Insn::Atomic {
        size,
        op,
        fetch,
        dst,
        src,
        off,
    }
}
fn call_local(rel: i32) -> Insn {
    Insn::Call(CallTarget::Local(rel))
}
const EXIT: Insn = Insn::Exit;

fn exec(prog: &[Insn], mem: &mut [u8], opts: &Options) -> Result<u64, RunError> {
    let mut ctx = ExecContext::new();
    run(prog, mem, &HelperTable::conformance(), &mut ctx, opts)
}

fn ok(prog: &[Insn]) -> u64 {
    exec(prog, &mut [], &Options::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn err(prog: &[Insn], mem: &mut [u8]) -> RunError {
    match exec(prog, mem, &Options::default()) {
        Ok(v) => panic!("expected an error, got {v:#x}"),
        Err(e) => e,
    }
}

fn is_oob(e: &RunError, want_pc: usize, want_size: usize) {
    match e {
        RunError::OutOfBounds { pc, size, .. } => {
            assert_eq!((*pc, *size), (want_pc, want_size), "{e}");
        }
        other => panic!("expected out-of-bounds, got {other}"),
    }
}
