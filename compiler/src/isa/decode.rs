//! Bytecode to [`Insn`]: field extraction, per-instruction checks (opcode,
//! registers, reserved fields) and whole-program checks (jump and call
//! targets, lddw pairs, the frame pointer being read-only).

use super::opcode::*;
use super::{
    AluOp, AtomicOp, ByteOrder, CallTarget, Endian, Insn, JmpCond, LddwSrc, Reg, Size, Src, Width,
    INSN_SIZE,
};
use thiserror::Error;

/// Why bytecode could not be decoded. Every variant that concerns one
/// instruction carries its slot index `pc`.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("program is empty")]
    Empty,
    #[error("program length {len} is not a multiple of 8 bytes (last instruction {pc} truncated)")]
    Truncated { len: usize, pc: usize },
    #[error("instruction {pc}: unknown opcode {opcode:#04x}")]
    UnknownOpcode { pc: usize, opcode: u8 },
    #[error("instruction {pc}: invalid {field} register r{reg}")]
    BadRegister {
        pc: usize,
        field: &'static str,
        reg: u8,
    },
    #[error("instruction {pc}: invalid {field} {value} for opcode {opcode:#04x}")]
    BadField {
        pc: usize,
        opcode: u8,
        field: &'static str,
        value: i64,
    },
    #[error("instruction {pc}: lddw without its second slot")]
    IncompleteLddw { pc: usize },
    /// The slot after an lddw exists, but a field other than the immediate
    /// (`field`: opcode, destination or source register, offset) is not zero.
    #[error("instruction {pc}: the second slot of this lddw (instruction {}) has {field} {value:#x}; it must be 0", pc + 1)]
    LddwSecondSlot {
        pc: usize,
        field: &'static str,
        value: u32,
    },
    /// An [`Insn::LddwHigh`] placeholder that does not follow an lddw
    /// (only hand-built instruction vectors have one).
    #[error("instruction {pc}: second lddw slot without an lddw before it")]
    StrayLddwSlot { pc: usize },
    #[error("instruction {pc}: jump to {target} is out of range (program has {len} slots)")]
    JumpOutOfRange { pc: usize, target: i64, len: usize },
    #[error("instruction {pc}: jump into the middle of the lddw at {}", target - 1)]
    JumpIntoLddw { pc: usize, target: usize },
    #[error("instruction {pc}: local call to {target} is out of range (program has {len} slots)")]
    CallOutOfRange { pc: usize, target: i64, len: usize },
    #[error("instruction {pc}: writes r10, the read-only frame pointer")]
    WritesFramePointer { pc: usize },
    #[error("instruction {pc}: last instruction can fall off the end of the program")]
    FallsOffEnd { pc: usize },
}

impl DecodeError {
    /// The slot index the error concerns, when it concerns one.
    pub fn pc(&self) -> Option<usize> {
        match *self {
            DecodeError::Empty => None,
            DecodeError::Truncated { pc, .. }
            | DecodeError::UnknownOpcode { pc, .. }
            | DecodeError::BadRegister { pc, .. }
            | DecodeError::BadField { pc, .. }
            | DecodeError::IncompleteLddw { pc }
            | DecodeError::LddwSecondSlot { pc, .. }
            | DecodeError::StrayLddwSlot { pc }
            | DecodeError::JumpOutOfRange { pc, .. }
            | DecodeError::JumpIntoLddw { pc, .. }
            | DecodeError::CallOutOfRange { pc, .. }
            | DecodeError::WritesFramePointer { pc }
            | DecodeError::FallsOffEnd { pc } => Some(pc),
        }
    }
}

/// The raw fields of one 8-byte slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Raw {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Raw {
    pub(crate) fn parse(b: [u8; 8], endian: Endian) -> Raw {
        match endian {
            Endian::Little => Raw {
                code: b[0],
                dst: b[1] & 0x0f,
                src: b[1] >> 4,
                off: i16::from_le_bytes([b[2], b[3]]),
                imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            },
            Endian::Big => Raw {
                code: b[0],
                dst: b[1] >> 4,
                src: b[1] & 0x0f,
                off: i16::from_be_bytes([b[2], b[3]]),
                imm: i32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            },
        }
    }
}

struct Ctx {
    pc: usize,
    raw: Raw,
}

impl Ctx {
    fn reg(&self, field: &'static str, n: u8) -> Result<Reg, DecodeError> {
        Reg::new(n).ok_or(DecodeError::BadRegister {
            pc: self.pc,
            field,
            reg: n,
        })
    }
    fn dst(&self) -> Result<Reg, DecodeError> {
        self.reg("destination", self.raw.dst)
    }
    fn src(&self) -> Result<Reg, DecodeError> {
        self.reg("source", self.raw.src)
    }
    fn bad(&self, field: &'static str, value: i64) -> DecodeError {
        DecodeError::BadField {
            pc: self.pc,
            opcode: self.raw.code,
            field,
            value,
        }
    }
    fn unknown(&self) -> DecodeError {
        DecodeError::UnknownOpcode {
            pc: self.pc,
            opcode: self.raw.code,
        }
    }
    /// Require a field the instruction does not use to be zero.
    fn zero(&self, field: &'static str, value: i64) -> Result<(), DecodeError> {
        if value == 0 {
            Ok(())
        } else {
            Err(self.bad(field, value))
        }
    }
    fn zero_src(&self) -> Result<(), DecodeError> {
        self.zero("source register", self.raw.src as i64)
    }
    fn zero_dst(&self) -> Result<(), DecodeError> {
        self.zero("destination register", self.raw.dst as i64)
    }
    fn zero_off(&self) -> Result<(), DecodeError> {
        self.zero("offset", self.raw.off as i64)
    }
    fn zero_imm(&self) -> Result<(), DecodeError> {
        self.zero("immediate", self.raw.imm as i64)
    }
    /// The second operand of an ALU or conditional jump instruction.
    fn operand(&self) -> Result<Src, DecodeError> {
        if source(self.raw.code) == SRC_X {
            self.zero_imm()?;
            Ok(Src::Reg(self.src()?))
        } else {
            self.zero_src()?;
            Ok(Src::Imm(self.raw.imm))
        }
    }
}

fn size_of(code: u8) -> Size {
    match size(code) {
        SIZE_W => Size::W,
        SIZE_H => Size::H,
        SIZE_B => Size::B,
        _ => Size::DW,
    }
}

/// Decode the instruction whose first slot is `first`. `second` is the next
/// slot, if there is one; it is only read by `lddw`.
pub fn decode_one(
    pc: usize,
    first: [u8; 8],
    second: Option<[u8; 8]>,
    endian: Endian,
) -> Result<Insn, DecodeError> {
    let c = Ctx {
        pc,
        raw: Raw::parse(first, endian),
    };
    let code = c.raw.code;
    match class(code) {
        CLASS_ALU | CLASS_ALU64 => decode_alu(&c),
        CLASS_JMP | CLASS_JMP32 => decode_jmp(&c),
        CLASS_LD => decode_ld(&c, second.map(|b| Raw::parse(b, endian))),
        CLASS_LDX => {
            let sx = match mode(code) {
                MODE_MEM => false,
                MODE_MEMSX if size(code) != SIZE_DW => true,
                _ => return Err(c.unknown()),
            };
            c.zero_imm()?;
            Ok(Insn::Ldx {
                size: size_of(code),
                sx,
                dst: c.dst()?,
                src: c.src()?,
                off: c.raw.off,
            })
        }
        CLASS_ST => {
            if mode(code) != MODE_MEM {
                return Err(c.unknown());
            }
            c.zero_src()?;
            Ok(Insn::St {
                size: size_of(code),
                dst: c.dst()?,
                off: c.raw.off,
                imm: c.raw.imm,
            })
        }
        _ => match mode(code) {
            MODE_MEM => {
                c.zero_imm()?;
                Ok(Insn::Stx {
                    size: size_of(code),
                    dst: c.dst()?,
                    src: c.src()?,
                    off: c.raw.off,
                })
            }
            MODE_ATOMIC if matches!(size(code), SIZE_W | SIZE_DW) => {
                let imm = c.raw.imm;
                let (op, fetch) = match imm & !ATOMIC_FETCH {
                    _ if imm == ATOMIC_XCHG => (AtomicOp::Xchg, true),
                    _ if imm == ATOMIC_CMPXCHG => (AtomicOp::CmpXchg, true),
                    ATOMIC_ADD => (AtomicOp::Add, imm & ATOMIC_FETCH != 0),
                    ATOMIC_OR => (AtomicOp::Or, imm & ATOMIC_FETCH != 0),
                    ATOMIC_AND => (AtomicOp::And, imm & ATOMIC_FETCH != 0),
                    ATOMIC_XOR => (AtomicOp::Xor, imm & ATOMIC_FETCH != 0),
                    _ => return Err(c.bad("atomic operation", imm as i64)),
                };
                Ok(Insn::Atomic {
                    size: size_of(code),
                    op,
                    fetch,
                    dst: c.dst()?,
                    src: c.src()?,
                    off: c.raw.off,
                })
            }
            _ => Err(c.unknown()),
        },
    }
}

fn decode_alu(c: &Ctx) -> Result<Insn, DecodeError> {
    let code = c.raw.code;
    let width = if class(code) == CLASS_ALU64 {
        Width::W64
    } else {
        Width::W32
    };
    let dst = c.dst()?;
    let op = match op(code) {
        ALU_NEG => {
            if source(code) != SRC_K {
                return Err(c.unknown());
            }
            c.zero_src()?;
            c.zero_off()?;
            c.zero_imm()?;
            return Ok(Insn::Neg { width, dst });
        }
        ALU_END => {
            let order = match (width, source(code)) {
                (Width::W32, SRC_K) => ByteOrder::ToLe,
                (Width::W32, _) => ByteOrder::ToBe,
                (Width::W64, SRC_K) => ByteOrder::Swap,
                (Width::W64, _) => return Err(c.unknown()),
            };
            c.zero_src()?;
            c.zero_off()?;
            if !matches!(c.raw.imm, 16 | 32 | 64) {
                return Err(c.bad("byte-swap width", c.raw.imm as i64));
            }
            return Ok(Insn::End {
                order,
                bits: c.raw.imm as u8,
                dst,
            });
        }
        ALU_ADD => AluOp::Add,
        ALU_SUB => AluOp::Sub,
        ALU_MUL => AluOp::Mul,
        ALU_OR => AluOp::Or,
        ALU_AND => AluOp::And,
        ALU_LSH => AluOp::Lsh,
        ALU_RSH => AluOp::Rsh,
        ALU_XOR => AluOp::Xor,
        ALU_ARSH => AluOp::Arsh,
        ALU_DIV | ALU_MOD => {
            let signed = match c.raw.off {
                0 => false,
                1 => true,
                off => return Err(c.bad("offset", off as i64)),
            };
            let src = c.operand()?;
            let op = match (op(code) == ALU_DIV, signed) {
                (true, false) => AluOp::Div,
                (true, true) => AluOp::SDiv,
                (false, false) => AluOp::Mod,
                (false, true) => AluOp::SMod,
            };
            return Ok(Insn::Alu {
                width,
                op,
                dst,
                src,
            });
        }
        ALU_MOV => {
            let op = match (c.raw.off, source(code), width) {
                (0, _, _) => AluOp::Mov,
                (8 | 16, SRC_X, _) | (32, SRC_X, Width::W64) => AluOp::MovSx(c.raw.off as u8),
                (off, _, _) => return Err(c.bad("offset", off as i64)),
            };
            return Ok(Insn::Alu {
                width,
                op,
                dst,
                src: c.operand()?,
            });
        }
        _ => return Err(c.unknown()),
    };
    c.zero_off()?;
    Ok(Insn::Alu {
        width,
        op,
        dst,
        src: c.operand()?,
    })
}

fn decode_jmp(c: &Ctx) -> Result<Insn, DecodeError> {
    let code = c.raw.code;
    let jmp32 = class(code) == CLASS_JMP32;
    let width = if jmp32 { Width::W32 } else { Width::W64 };
    let cond = match op(code) {
        JMP_JA => {
            if source(code) != SRC_K {
                return Err(c.unknown());
            }
            c.zero_src()?;
            c.zero_dst()?;
            return Ok(if jmp32 {
                c.zero_off()?;
                Insn::Ja {
                    off: c.raw.imm,
                    long: true,
                }
            } else {
                c.zero_imm()?;
                Insn::Ja {
                    off: c.raw.off as i32,
                    long: false,
                }
            });
        }
        JMP_CALL if !jmp32 => {
            if source(code) == SRC_X {
                c.zero_src()?;
                c.zero_off()?;
                c.zero_imm()?;
                return Ok(Insn::Callx { reg: c.dst()? });
            }
            c.zero_dst()?;
            let target = match c.raw.src {
                0 => CallTarget::Helper(c.raw.imm),
                PSEUDO_CALL => CallTarget::Local(c.raw.imm),
                PSEUDO_KFUNC_CALL => {
                    return Ok(Insn::Call(CallTarget::Kfunc {
                        btf_id: c.raw.imm,
                        off: c.raw.off,
                    }))
                }
                s => return Err(c.bad("call kind (source register)", s as i64)),
            };
            c.zero_off()?;
            return Ok(Insn::Call(target));
        }
        JMP_JCOND if !jmp32 && source(code) == SRC_K => {
            // `BPF_MAY_GOTO` is source register 0, the only kind there is.
            c.zero_src()?;
            c.zero_dst()?;
            c.zero_imm()?;
            return Ok(Insn::MayGoto { off: c.raw.off });
        }
        JMP_EXIT if !jmp32 && source(code) == SRC_K => {
            c.zero_src()?;
            c.zero_dst()?;
            c.zero_off()?;
            c.zero_imm()?;
            return Ok(Insn::Exit);
        }
        JMP_JEQ => JmpCond::Eq,
        JMP_JGT => JmpCond::Gt,
        JMP_JGE => JmpCond::Ge,
        JMP_JSET => JmpCond::Set,
        JMP_JNE => JmpCond::Ne,
        JMP_JSGT => JmpCond::Sgt,
        JMP_JSGE => JmpCond::Sge,
        JMP_JLT => JmpCond::Lt,
        JMP_JLE => JmpCond::Le,
        JMP_JSLT => JmpCond::Slt,
        JMP_JSLE => JmpCond::Sle,
        _ => return Err(c.unknown()),
    };
    Ok(Insn::Jmp {
        width,
        cond,
        dst: c.dst()?,
        src: c.operand()?,
        off: c.raw.off,
    })
}

fn decode_ld(c: &Ctx, second: Option<Raw>) -> Result<Insn, DecodeError> {
    let code = c.raw.code;
    match mode(code) {
        MODE_IMM if size(code) == SIZE_DW => {
            let src = LddwSrc::from_raw(c.raw.src)
                .ok_or_else(|| c.bad("lddw source", c.raw.src as i64))?;
            c.zero_off()?;
            let dst = c.dst()?;
            let hi = second.ok_or(DecodeError::IncompleteLddw { pc: c.pc })?;
            let reserved = [
                ("opcode", hi.code as u32),
                ("destination register", hi.dst as u32),
                ("source register", hi.src as u32),
                ("offset", hi.off as u16 as u32),
            ];
            if let Some(&(field, value)) = reserved.iter().find(|(_, v)| *v != 0) {
                return Err(DecodeError::LddwSecondSlot {
                    pc: c.pc,
                    field,
                    value,
                });
            }
            let imm = (c.raw.imm as u32 as u64) | ((hi.imm as u32 as u64) << 32);
            Ok(Insn::Lddw { dst, src, imm })
        }
        MODE_ABS | MODE_IND if size(code) != SIZE_DW => {
            c.zero_dst()?;
            c.zero_off()?;
            let size = size_of(code);
            if mode(code) == MODE_ABS {
                c.zero_src()?;
                Ok(Insn::LdAbs {
                    size,
                    imm: c.raw.imm,
                })
            } else {
                Ok(Insn::LdInd {
                    size,
                    src: c.src()?,
                    imm: c.raw.imm,
                })
            }
        }
        _ => Err(c.unknown()),
    }
}

/// Decode and validate a whole program.
pub fn decode_program(bytes: &[u8], endian: Endian) -> Result<Vec<Insn>, DecodeError> {
    let insns = decode_unvalidated(bytes, endian)?;
    validate(&insns)?;
    Ok(insns)
}

/// Decode every slot without the whole-program checks of [`validate`].
pub fn decode_unvalidated(bytes: &[u8], endian: Endian) -> Result<Vec<Insn>, DecodeError> {
    if !bytes.len().is_multiple_of(INSN_SIZE) {
        return Err(DecodeError::Truncated {
            len: bytes.len(),
            pc: bytes.len() / INSN_SIZE,
        });
    }
    let slot = |i: usize| -> Option<[u8; 8]> {
        bytes
            .get(i * INSN_SIZE..(i + 1) * INSN_SIZE)
            .map(|s| s.try_into().expect("8-byte slice"))
    };
    let n = bytes.len() / INSN_SIZE;
    let mut insns = Vec::with_capacity(n);
    let mut pc = 0;
    while let Some(first) = slot(pc) {
        let insn = decode_one(pc, first, slot(pc + 1), endian)?;
        insns.push(insn);
        if insn.slots() == 2 {
            insns.push(Insn::LddwHigh);
        }
        pc += insn.slots();
    }
    Ok(insns)
}

/// Whole-program structural checks: the program is not empty, every jump and
/// local call lands on an instruction (not past the end, not inside an lddw),
/// r10 is never written, and the last instruction does not fall through.
pub fn validate(insns: &[Insn]) -> Result<(), DecodeError> {
    let len = insns.len();
    if len == 0 {
        return Err(DecodeError::Empty);
    }
    for (pc, insn) in insns.iter().enumerate() {
        if let Some(target) = insn.branch_target(pc) {
            let call = matches!(insn, Insn::Call(_));
            if target < 0 || target >= len as i64 {
                return Err(if call {
                    DecodeError::CallOutOfRange { pc, target, len }
                } else {
                    DecodeError::JumpOutOfRange { pc, target, len }
                });
            }
            if insns[target as usize] == Insn::LddwHigh {
                return Err(DecodeError::JumpIntoLddw {
                    pc,
                    target: target as usize,
                });
            }
        }
        match insn {
            Insn::Lddw { .. } if insns.get(pc + 1) != Some(&Insn::LddwHigh) => {
                return Err(DecodeError::IncompleteLddw { pc });
            }
            Insn::LddwHigh if pc == 0 || !matches!(insns[pc - 1], Insn::Lddw { .. }) => {
                return Err(DecodeError::StrayLddwSlot { pc });
            }
            _ => {}
        }
        if writes_fp(insn) {
            return Err(DecodeError::WritesFramePointer { pc });
        }
    }
    let last = len - 1;
    let last_pc = if insns[last] == Insn::LddwHigh {
        last.saturating_sub(1)
    } else {
        last
    };
    if !insns[last_pc].is_terminator() {
        return Err(DecodeError::FallsOffEnd { pc: last_pc });
    }
    Ok(())
}

fn writes_fp(insn: &Insn) -> bool {
    match *insn {
        Insn::Alu { dst, .. }
        | Insn::Neg { dst, .. }
        | Insn::End { dst, .. }
        | Insn::Lddw { dst, .. }
        | Insn::Ldx { dst, .. } => dst == Reg::FP,
        Insn::Atomic { op, fetch, src, .. } => fetch && op != AtomicOp::CmpXchg && src == Reg::FP,
        _ => false,
    }
}
