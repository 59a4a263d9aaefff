//! The eBPF instruction set (RFC 9669, ISA v4): the decoded [`Insn`] type,
//! decoding from and encoding to bytecode in either byte order, and the
//! structural checks every later stage relies on (jump targets, lddw pairs,
//! register numbers).
//!
//! A program is a slot-indexed `Vec<Insn>`: index `pc` holds the instruction
//! whose encoding starts at byte `8 * pc`, exactly the numbering jump offsets,
//! `llvm-objdump` and the kernel verifier use. The wide `lddw` occupies two
//! slots; its second slot holds [`Insn::LddwHigh`], a placeholder that is never
//! executed (the validator rejects jumps into it).

mod decode;
mod encode;
pub mod opcode;
#[cfg(test)]
mod tests;

pub use decode::{decode_one, decode_program, decode_unvalidated, validate, DecodeError};
pub use encode::{encode_insn, encode_program};

use std::fmt;

/// Byte order of bytecode: `bpfel` (the usual) or `bpfeb` objects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Endian {
    #[default]
    Little,
    Big,
}

impl Endian {
    /// `b` as a u16 stored in this byte order.
    pub fn u16(self, b: [u8; 2]) -> u16 {
        match self {
            Endian::Little => u16::from_le_bytes(b),
            Endian::Big => u16::from_be_bytes(b),
        }
    }

    /// `b` as a u32 stored in this byte order.
    pub fn u32(self, b: [u8; 4]) -> u32 {
        match self {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        }
    }
}

/// Size of one instruction slot in bytes.
pub const INSN_SIZE: usize = 8;
/// Size of a function's stack frame in bytes.
pub const STACK_SIZE: usize = 512;
/// The number of times `may_goto` falls through in one function call
/// before it jumps (the kernel's `BPF_MAX_LOOPS`).
pub const MAY_GOTO_BUDGET: u64 = 8 * 1024 * 1024;
/// Deepest nesting of local calls (frames, including the entry function).
pub const MAX_CALL_FRAMES: usize = 8;

/// A register, `r0`..=`r10`. `r10` is the read-only frame pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reg(u8);

impl Reg {
    pub const R0: Reg = Reg(0);
    pub const R1: Reg = Reg(1);
    pub const R2: Reg = Reg(2);
    pub const R3: Reg = Reg(3);
    pub const R4: Reg = Reg(4);
    pub const R5: Reg = Reg(5);
    pub const R6: Reg = Reg(6);
    pub const R7: Reg = Reg(7);
    pub const R8: Reg = Reg(8);
    pub const R9: Reg = Reg(9);
    /// The frame pointer.
    pub const FP: Reg = Reg(10);
    /// Number of registers.
    pub const COUNT: usize = 11;

    /// The register numbered `n`, if there is one.
    pub const fn new(n: u8) -> Option<Reg> {
        if n <= 10 {
            Some(Reg(n))
        } else {
            None
        }
    }

    pub const fn num(self) -> u8 {
        self.0
    }

    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for Reg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// Operation width of ALU and jump instructions: class ALU/JMP32 operate on the
/// low 32 bits (ALU results are zero-extended), ALU64/JMP on all 64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Width {
    W32,
    W64,
}

impl Width {
    pub const fn bits(self) -> u32 {
        match self {
            Width::W32 => 32,
            Width::W64 => 64,
        }
    }
}

/// Access size of loads, stores and atomics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Size {
    B,
    H,
    W,
    DW,
}

impl Size {
    pub const fn bytes(self) -> usize {
        match self {
            Size::B => 1,
            Size::H => 2,
            Size::W => 4,
            Size::DW => 8,
        }
    }

    /// The suffix used in mnemonics (`ldxb`, `stxdw`).
    pub const fn suffix(self) -> &'static str {
        match self {
            Size::B => "b",
            Size::H => "h",
            Size::W => "w",
            Size::DW => "dw",
        }
    }
}

/// Second operand of ALU and conditional jump instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Src {
    /// The 32-bit immediate, sign-extended to 64 bits for 64-bit operations.
    Imm(i32),
    Reg(Reg),
}

/// Binary ALU operations (`dst = dst op src`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AluOp {
    Add,
    Sub,
    Mul,
    /// Unsigned division; division by zero yields 0.
    Div,
    /// Signed division (offset 1); division by zero yields 0, MIN / -1 yields MIN.
    SDiv,
    /// Unsigned modulo; modulo by zero leaves dst unchanged.
    Mod,
    /// Signed modulo (offset 1); modulo by zero leaves dst unchanged, MIN % -1 is 0.
    SMod,
    Or,
    And,
    Xor,
    /// Shift counts are masked to the operation width.
    Lsh,
    Rsh,
    Arsh,
    Mov,
    /// Sign-extending move from the low 8, 16 or 32 bits (register source only).
    MovSx(u8),
}

impl AluOp {
    /// Conformance-syntax mnemonic stem (`add`, `movsx8` ...; the width suffix is added by the printer).
    pub const fn name(self) -> &'static str {
        match self {
            AluOp::Add => "add",
            AluOp::Sub => "sub",
            AluOp::Mul => "mul",
            AluOp::Div => "div",
            AluOp::SDiv => "sdiv",
            AluOp::Mod => "mod",
            AluOp::SMod => "smod",
            AluOp::Or => "or",
            AluOp::And => "and",
            AluOp::Xor => "xor",
            AluOp::Lsh => "lsh",
            AluOp::Rsh => "rsh",
            AluOp::Arsh => "arsh",
            AluOp::Mov => "mov",
            AluOp::MovSx(_) => "movsx",
        }
    }
}

/// Byte-order operations (`BPF_END`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// Convert to little-endian (class ALU, source bit 0): a truncation on a little-endian host.
    ToLe,
    /// Convert to big-endian (class ALU, source bit 1).
    ToBe,
    /// Unconditional byte swap (class ALU64, `bswap`).
    Swap,
}

/// Conditions of conditional jumps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JmpCond {
    Eq,
    Gt,
    Ge,
    Set,
    Ne,
    Sgt,
    Sge,
    Lt,
    Le,
    Slt,
    Sle,
}

impl JmpCond {
    pub const ALL: [JmpCond; 11] = [
        JmpCond::Eq,
        JmpCond::Gt,
        JmpCond::Ge,
        JmpCond::Set,
        JmpCond::Ne,
        JmpCond::Sgt,
        JmpCond::Sge,
        JmpCond::Lt,
        JmpCond::Le,
        JmpCond::Slt,
        JmpCond::Sle,
    ];

    /// Conformance-syntax mnemonic stem (`jeq`, `jsgt` ...).
    pub const fn name(self) -> &'static str {
        match self {
            JmpCond::Eq => "jeq",
            JmpCond::Gt => "jgt",
            JmpCond::Ge => "jge",
            JmpCond::Set => "jset",
            JmpCond::Ne => "jne",
            JmpCond::Sgt => "jsgt",
            JmpCond::Sge => "jsge",
            JmpCond::Lt => "jlt",
            JmpCond::Le => "jle",
            JmpCond::Slt => "jslt",
            JmpCond::Sle => "jsle",
        }
    }

    /// Evaluate the condition on two values already truncated to the operation width.
    pub fn eval(self, width: Width, a: u64, b: u64) -> bool {
        let (sa, sb) = match width {
            Width::W32 => (a as u32 as i32 as i64, b as u32 as i32 as i64),
            Width::W64 => (a as i64, b as i64),
        };
        let (a, b) = match width {
            Width::W32 => (a as u32 as u64, b as u32 as u64),
            Width::W64 => (a, b),
        };
        match self {
            JmpCond::Eq => a == b,
            JmpCond::Gt => a > b,
            JmpCond::Ge => a >= b,
            JmpCond::Set => a & b != 0,
            JmpCond::Ne => a != b,
            JmpCond::Sgt => sa > sb,
            JmpCond::Sge => sa >= sb,
            JmpCond::Lt => a < b,
            JmpCond::Le => a <= b,
            JmpCond::Slt => sa < sb,
            JmpCond::Sle => sa <= sb,
        }
    }
}

/// Read-modify-write operations of `BPF_ATOMIC` stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AtomicOp {
    Add,
    Or,
    And,
    Xor,
    /// Exchange: always fetches (the old value goes to `src`).
    Xchg,
    /// Compare with r0 and exchange: always fetches (the old value goes to r0).
    CmpXchg,
}

impl AtomicOp {
    pub const fn name(self) -> &'static str {
        match self {
            AtomicOp::Add => "add",
            AtomicOp::Or => "or",
            AtomicOp::And => "and",
            AtomicOp::Xor => "xor",
            AtomicOp::Xchg => "xchg",
            AtomicOp::CmpXchg => "cmpxchg",
        }
    }
}

/// The `src` field of `lddw`: what the 64-bit immediate means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LddwSrc {
    /// 0: the immediate itself.
    Imm,
    /// 1 (`BPF_PSEUDO_MAP_FD`): the address of map `imm_lo` (a file descriptor).
    MapFd,
    /// 2 (`BPF_PSEUDO_MAP_VALUE`): address of map `imm_lo` value plus `imm_hi`.
    MapValue,
    /// 3 (`BPF_PSEUDO_BTF_ID`): address of the kernel variable with BTF id `imm_lo`.
    BtfId,
    /// 4 (`BPF_PSEUDO_FUNC`): address of the function at pc-relative `imm_lo`.
    Func,
    /// 5 (`BPF_PSEUDO_MAP_IDX`): address of the map at index `imm_lo` of the object.
    MapIdx,
    /// 6 (`BPF_PSEUDO_MAP_IDX_VALUE`): address of map `imm_lo` value plus `imm_hi`.
    MapIdxValue,
}

impl LddwSrc {
    pub const fn from_raw(v: u8) -> Option<LddwSrc> {
        Some(match v {
            0 => LddwSrc::Imm,
            1 => LddwSrc::MapFd,
            2 => LddwSrc::MapValue,
            3 => LddwSrc::BtfId,
            4 => LddwSrc::Func,
            5 => LddwSrc::MapIdx,
            6 => LddwSrc::MapIdxValue,
            _ => return None,
        })
    }

    pub const fn raw(self) -> u8 {
        match self {
            LddwSrc::Imm => 0,
            LddwSrc::MapFd => 1,
            LddwSrc::MapValue => 2,
            LddwSrc::BtfId => 3,
            LddwSrc::Func => 4,
            LddwSrc::MapIdx => 5,
            LddwSrc::MapIdxValue => 6,
        }
    }
}

/// What a `call` instruction (opcode 0x85) calls, from its `src` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallTarget {
    /// src 0: helper function number `imm`.
    Helper(i32),
    /// src 1 (`BPF_PSEUDO_CALL`): the function starting at `pc + 1 + imm`.
    Local(i32),
    /// src 2 (`BPF_PSEUDO_KFUNC_CALL`): kernel function with BTF id `imm`
    /// (`off` selects a module BTF). Decoded, not executable.
    Kfunc { btf_id: i32, off: i16 },
}

/// One decoded instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Insn {
    /// `dst = dst op src` (class ALU or ALU64).
    Alu {
        width: Width,
        op: AluOp,
        dst: Reg,
        src: Src,
    },
    /// `dst = -dst`.
    Neg {
        width: Width,
        dst: Reg,
    },
    /// Byte-order conversion of the low `bits` (16, 32, 64) of `dst`.
    End {
        order: ByteOrder,
        bits: u8,
        dst: Reg,
    },
    /// Unconditional jump to `pc + 1 + off`; `long` is `gotol` (class JMP32, offset in imm).
    Ja {
        off: i32,
        long: bool,
    },
    /// Conditional jump to `pc + 1 + off`.
    Jmp {
        width: Width,
        cond: JmpCond,
        dst: Reg,
        src: Src,
        off: i16,
    },
    /// `may_goto` (opcode 0xe5, `BPF_JMP | BPF_JCOND`): jump to
    /// `pc + 1 + off` once the current function's loop budget is spent,
    /// otherwise spend one unit and fall through. Each call of a function
    /// starts with a budget of [`MAY_GOTO_BUDGET`], as the kernel's.
    MayGoto {
        off: i16,
    },
    Call(CallTarget),
    /// Indirect call (opcode 0x8d) through the register in the `dst` field.
    Callx {
        reg: Reg,
    },
    Exit,
    /// The 64-bit immediate load, two slots. `imm` is `imm_hi << 32 | imm_lo`
    /// as encoded; `src` says how to interpret it.
    Lddw {
        dst: Reg,
        src: LddwSrc,
        imm: u64,
    },
    /// Second slot of an `lddw`; never executed.
    LddwHigh,
    /// `dst = *(size *)(src + off)`, zero- or (`sx`, MEMSX) sign-extended.
    Ldx {
        size: Size,
        sx: bool,
        dst: Reg,
        src: Reg,
        off: i16,
    },
    /// `*(size *)(dst + off) = imm`.
    St {
        size: Size,
        dst: Reg,
        off: i16,
        imm: i32,
    },
    /// `*(size *)(dst + off) = src`.
    Stx {
        size: Size,
        dst: Reg,
        src: Reg,
        off: i16,
    },
    /// Atomic read-modify-write of `*(size *)(dst + off)` with `src`; size is W or DW.
    Atomic {
        size: Size,
        op: AtomicOp,
        fetch: bool,
        dst: Reg,
        src: Reg,
        off: i16,
    },
    /// Legacy packet load `r0 = ntoh(*(size *)(skb->data + imm))`.
    LdAbs {
        size: Size,
        imm: i32,
    },
    /// Legacy packet load `r0 = ntoh(*(size *)(skb->data + src + imm))`.
    LdInd {
        size: Size,
        src: Reg,
        imm: i32,
    },
}

impl Insn {
    /// Number of 8-byte slots the instruction occupies (the placeholder counts 0).
    pub const fn slots(&self) -> usize {
        match self {
            Insn::Lddw { .. } => 2,
            Insn::LddwHigh => 0,
            _ => 1,
        }
    }

    /// The absolute target of a jump or local call at `pc`, if it is one.
    /// May be out of range for unvalidated input.
    pub fn branch_target(&self, pc: usize) -> Option<i64> {
        let rel = match *self {
            Insn::Ja { off, .. } => off as i64,
            Insn::Jmp { off, .. } | Insn::MayGoto { off } => off as i64,
            Insn::Call(CallTarget::Local(imm)) => imm as i64,
            _ => return None,
        };
        Some(pc as i64 + 1 + rel)
    }

    /// Whether the instruction ends a basic block: a jump (`ja`,
    /// conditional, `may_goto`) or `exit`.
    pub const fn is_jump_or_exit(&self) -> bool {
        matches!(
            self,
            Insn::Ja { .. } | Insn::Jmp { .. } | Insn::MayGoto { .. } | Insn::Exit
        )
    }

    /// Whether control never falls through to the next slot.
    pub const fn is_terminator(&self) -> bool {
        matches!(self, Insn::Ja { .. } | Insn::Exit)
    }

    /// The low and high 32-bit halves of an `lddw` immediate.
    pub const fn lddw_halves(imm: u64) -> (i32, i32) {
        (imm as u32 as i32, (imm >> 32) as u32 as i32)
    }

    /// The same memory access (load, store or atomic) with another size
    /// and offset, as CO-RE and context conversion rewrite them; `None`
    /// for an instruction that does not access memory.
    pub fn with_access(self, size: Size, off: i16) -> Option<Insn> {
        Some(match self {
            Insn::Ldx { sx, dst, src, .. } => Insn::Ldx {
                size,
                sx,
                dst,
                src,
                off,
            },
            Insn::St { dst, imm, .. } => Insn::St {
                size,
                dst,
                off,
                imm,
            },
            Insn::Stx { dst, src, .. } => Insn::Stx {
                size,
                dst,
                src,
                off,
            },
            Insn::Atomic {
                op,
                fetch,
                dst,
                src,
                ..
            } => Insn::Atomic {
                size,
                op,
                fetch,
                dst,
                src,
                off,
            },
            _ => return None,
        })
    }
}
