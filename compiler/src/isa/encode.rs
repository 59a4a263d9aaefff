//! [`Insn`] to bytecode, the exact inverse of decoding.

use super::decode::Raw;
use super::opcode::*;
use super::{AluOp, AtomicOp, ByteOrder, CallTarget, Endian, Insn, JmpCond, Size, Src, Width};

fn size_bits(size: Size) -> u8 {
    match size {
        Size::W => SIZE_W,
        Size::H => SIZE_H,
        Size::B => SIZE_B,
        Size::DW => SIZE_DW,
    }
}

fn cond_bits(cond: JmpCond) -> u8 {
    match cond {
        JmpCond::Eq => JMP_JEQ,
        JmpCond::Gt => JMP_JGT,
        JmpCond::Ge => JMP_JGE,
        JmpCond::Set => JMP_JSET,
        JmpCond::Ne => JMP_JNE,
        JmpCond::Sgt => JMP_JSGT,
        JmpCond::Sge => JMP_JSGE,
        JmpCond::Lt => JMP_JLT,
        JmpCond::Le => JMP_JLE,
        JmpCond::Slt => JMP_JSLT,
        JmpCond::Sle => JMP_JSLE,
    }
}

/// Source bit, source register and immediate of an ALU/JMP operand.
fn operand(src: Src) -> (u8, u8, i32) {
    match src {
        Src::Imm(imm) => (SRC_K, 0, imm),
        Src::Reg(r) => (SRC_X, r.num(), 0),
    }
}

fn raw(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Raw {
    Raw {
        code,
        dst,
        src,
        off,
        imm,
    }
}

/// The raw slots of one instruction (none for the lddw placeholder).
pub(crate) fn to_raw(insn: &Insn) -> ([Raw; 2], usize) {
    let one = |r: Raw| ([r, raw(0, 0, 0, 0, 0)], 1);
    match *insn {
        Insn::Alu {
            width,
            op,
            dst,
            src,
        } => {
            let class = if width == Width::W64 {
                CLASS_ALU64
            } else {
                CLASS_ALU
            };
            let (opc, off) = match op {
                AluOp::Add => (ALU_ADD, 0),
                AluOp::Sub => (ALU_SUB, 0),
                AluOp::Mul => (ALU_MUL, 0),
                AluOp::Div => (ALU_DIV, 0),
                AluOp::SDiv => (ALU_DIV, 1),
                AluOp::Mod => (ALU_MOD, 0),
                AluOp::SMod => (ALU_MOD, 1),
                AluOp::Or => (ALU_OR, 0),
                AluOp::And => (ALU_AND, 0),
                AluOp::Xor => (ALU_XOR, 0),
                AluOp::Lsh => (ALU_LSH, 0),
                AluOp::Rsh => (ALU_RSH, 0),
                AluOp::Arsh => (ALU_ARSH, 0),
                AluOp::Mov => (ALU_MOV, 0),
                AluOp::MovSx(bits) => (ALU_MOV, bits as i16),
            };
            let (s, sreg, imm) = operand(src);
            one(raw(class | opc | s, dst.num(), sreg, off, imm))
        }
        Insn::Neg { width, dst } => {
            let class = if width == Width::W64 {
                CLASS_ALU64
            } else {
                CLASS_ALU
            };
            one(raw(class | ALU_NEG, dst.num(), 0, 0, 0))
        }
        Insn::End { order, bits, dst } => {
            let code = match order {
                ByteOrder::ToLe => CLASS_ALU | ALU_END | SRC_K,
                ByteOrder::ToBe => CLASS_ALU | ALU_END | SRC_X,
                ByteOrder::Swap => CLASS_ALU64 | ALU_END | SRC_K,
            };
            one(raw(code, dst.num(), 0, 0, bits as i32))
        }
        Insn::Ja { off, long: false } => one(raw(CLASS_JMP | JMP_JA, 0, 0, off as i16, 0)),
        Insn::Ja { off, long: true } => one(raw(CLASS_JMP32 | JMP_JA, 0, 0, 0, off)),
        Insn::MayGoto { off } => one(raw(CLASS_JMP | JMP_JCOND, 0, 0, off, 0)),
        Insn::Jmp {
            width,
            cond,
            dst,
            src,
            off,
        } => {
            let class = if width == Width::W64 {
                CLASS_JMP
            } else {
                CLASS_JMP32
            };
            let (s, sreg, imm) = operand(src);
            one(raw(class | cond_bits(cond) | s, dst.num(), sreg, off, imm))
        }
        Insn::Call(target) => {
            let (src, off, imm) = match target {
                CallTarget::Helper(imm) => (0, 0, imm),
                CallTarget::Local(imm) => (PSEUDO_CALL, 0, imm),
                CallTarget::Kfunc { btf_id, off } => (PSEUDO_KFUNC_CALL, off, btf_id),
            };
            one(raw(CLASS_JMP | JMP_CALL, 0, src, off, imm))
        }
        Insn::Callx { reg } => one(raw(CLASS_JMP | JMP_CALL | SRC_X, reg.num(), 0, 0, 0)),
        Insn::Exit => one(raw(CLASS_JMP | JMP_EXIT, 0, 0, 0, 0)),
        Insn::Lddw { dst, src, imm } => {
            let (lo, hi) = Insn::lddw_halves(imm);
            (
                [
                    raw(CLASS_LD | MODE_IMM | SIZE_DW, dst.num(), src.raw(), 0, lo),
                    raw(0, 0, 0, 0, hi),
                ],
                2,
            )
        }
        Insn::LddwHigh => ([raw(0, 0, 0, 0, 0), raw(0, 0, 0, 0, 0)], 0),
        Insn::Ldx {
            size,
            sx,
            dst,
            src,
            off,
        } => {
            let mode = if sx { MODE_MEMSX } else { MODE_MEM };
            one(raw(
                CLASS_LDX | mode | size_bits(size),
                dst.num(),
                src.num(),
                off,
                0,
            ))
        }
        Insn::St {
            size,
            dst,
            off,
            imm,
        } => one(raw(
            CLASS_ST | MODE_MEM | size_bits(size),
            dst.num(),
            0,
            off,
            imm,
        )),
        Insn::Stx {
            size,
            dst,
            src,
            off,
        } => one(raw(
            CLASS_STX | MODE_MEM | size_bits(size),
            dst.num(),
            src.num(),
            off,
            0,
        )),
        Insn::Atomic {
            size,
            op,
            fetch,
            dst,
            src,
            off,
        } => {
            let imm = match op {
                AtomicOp::Add => ATOMIC_ADD,
                AtomicOp::Or => ATOMIC_OR,
                AtomicOp::And => ATOMIC_AND,
                AtomicOp::Xor => ATOMIC_XOR,
                AtomicOp::Xchg => ATOMIC_XCHG,
                AtomicOp::CmpXchg => ATOMIC_CMPXCHG,
            } | if fetch { ATOMIC_FETCH } else { 0 };
            one(raw(
                CLASS_STX | MODE_ATOMIC | size_bits(size),
                dst.num(),
                src.num(),
                off,
                imm,
            ))
        }
        Insn::LdAbs { size, imm } => one(raw(CLASS_LD | MODE_ABS | size_bits(size), 0, 0, 0, imm)),
        Insn::LdInd { size, src, imm } => one(raw(
            CLASS_LD | MODE_IND | size_bits(size),
            0,
            src.num(),
            0,
            imm,
        )),
    }
}

fn raw_bytes(r: &Raw, endian: Endian) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = r.code;
    match endian {
        Endian::Little => {
            b[1] = (r.src << 4) | (r.dst & 0x0f);
            b[2..4].copy_from_slice(&r.off.to_le_bytes());
            b[4..8].copy_from_slice(&r.imm.to_le_bytes());
        }
        Endian::Big => {
            b[1] = (r.dst << 4) | (r.src & 0x0f);
            b[2..4].copy_from_slice(&r.off.to_be_bytes());
            b[4..8].copy_from_slice(&r.imm.to_be_bytes());
        }
    }
    b
}

/// Append the encoding of one instruction to `out`.
pub fn encode_insn(insn: &Insn, endian: Endian, out: &mut Vec<u8>) {
    let (slots, n) = to_raw(insn);
    for r in &slots[..n] {
        out.extend_from_slice(&raw_bytes(r, endian));
    }
}

/// Encode a slot-indexed program (the lddw placeholders produce no bytes).
pub fn encode_program(insns: &[Insn], endian: Endian) -> Vec<u8> {
    let mut out = Vec::with_capacity(insns.len() * 8);
    for insn in insns {
        encode_insn(insn, endian, &mut out);
    }
    out
}
