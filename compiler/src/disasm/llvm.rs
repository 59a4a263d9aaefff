//! The `llvm-objdump -d` spelling of instructions (see the module doc of
//! [`super`] for the few places it follows `--mcpu=v4`).

use crate::isa::{
    AluOp, AtomicOp, ByteOrder, CallTarget, Insn, JmpCond, LddwSrc, Reg, Size, Src, Width,
};

/// Signed hexadecimal as LLVM prints immediates: `0x5`, `-0x5`.
fn shex(v: i64) -> String {
    if v < 0 {
        format!("-{:#x}", v.unsigned_abs())
    } else {
        format!("{v:#x}")
    }
}

/// A register in the given width: `r1` or `w1`.
pub(super) fn reg(r: Reg, width: Width) -> String {
    match width {
        Width::W64 => format!("r{}", r.num()),
        Width::W32 => format!("w{}", r.num()),
    }
}

fn operand(src: Src, width: Width) -> String {
    match src {
        Src::Imm(imm) => shex(imm as i64),
        Src::Reg(r) => reg(r, width),
    }
}

/// `r1 + 0x4` / `r10 - 0x8`.
fn addr(base: Reg, off: i16) -> String {
    if off < 0 {
        format!("r{} - {:#x}", base.num(), off.unsigned_abs())
    } else {
        format!("r{} + {:#x}", base.num(), off)
    }
}

pub(super) fn utype(size: Size) -> &'static str {
    match size {
        Size::B => "u8",
        Size::H => "u16",
        Size::W => "u32",
        Size::DW => "u64",
    }
}

pub(super) fn stype(size: Size) -> &'static str {
    match size {
        Size::B => "s8",
        Size::H => "s16",
        Size::W => "s32",
        Size::DW => "s64",
    }
}

fn rel(off: i64) -> String {
    if off < 0 {
        format!("-{:#x}", off.unsigned_abs())
    } else {
        format!("+{off:#x}")
    }
}

pub(super) fn alu_symbol(op: AluOp) -> &'static str {
    match op {
        AluOp::Add => "+=",
        AluOp::Sub => "-=",
        AluOp::Mul => "*=",
        AluOp::Div => "/=",
        AluOp::SDiv => "s/=",
        AluOp::Mod => "%=",
        AluOp::SMod => "s%=",
        AluOp::Or => "|=",
        AluOp::And => "&=",
        AluOp::Xor => "^=",
        AluOp::Lsh => "<<=",
        AluOp::Rsh => ">>=",
        AluOp::Arsh => "s>>=",
        AluOp::Mov | AluOp::MovSx(_) => "=",
    }
}

pub(super) fn cond_symbol(cond: JmpCond) -> &'static str {
    match cond {
        JmpCond::Eq => "==",
        JmpCond::Gt => ">",
        JmpCond::Ge => ">=",
        JmpCond::Set => "&",
        JmpCond::Ne => "!=",
        JmpCond::Sgt => "s>",
        JmpCond::Sge => "s>=",
        JmpCond::Lt => "<",
        JmpCond::Le => "<=",
        JmpCond::Slt => "s<",
        JmpCond::Sle => "s<=",
    }
}

fn atomic_symbol(op: AtomicOp) -> &'static str {
    match op {
        AtomicOp::Add => "+=",
        AtomicOp::And => "&=",
        AtomicOp::Or => "|=",
        AtomicOp::Xor => "^=",
        AtomicOp::Xchg | AtomicOp::CmpXchg => "=",
    }
}

/// The instruction text (`insn` is never the lddw placeholder here).
pub(super) fn format(insn: &Insn) -> String {
    match *insn {
        Insn::Alu {
            width,
            op: AluOp::MovSx(bits),
            dst,
            src,
        } => {
            let (d, s) = (reg(dst, width), operand(src, width));
            format!("{d} = (s{bits}){s}")
        }
        Insn::Alu {
            width,
            op,
            dst,
            src,
        } => format!(
            "{} {} {}",
            reg(dst, width),
            alu_symbol(op),
            operand(src, width)
        ),
        Insn::Neg { width, dst } => {
            let d = reg(dst, width);
            format!("{d} = -{d}")
        }
        Insn::End { order, bits, dst } => {
            let name = match order {
                ByteOrder::ToLe => "le",
                ByteOrder::ToBe => "be",
                ByteOrder::Swap => "bswap",
            };
            format!("r{0} = {name}{bits} r{0}", dst.num())
        }
        Insn::Ja { off, long: false } => format!("goto {}", rel(off as i64)),
        Insn::Ja { off, long: true } => format!("gotol {}", rel(off as i64)),
        Insn::MayGoto { off } => format!("may_goto {}", rel(off as i64)),
        Insn::Jmp {
            width,
            cond,
            dst,
            src,
            off,
        } => format!(
            "if {} {} {} goto {}",
            reg(dst, width),
            cond_symbol(cond),
            operand(src, width),
            rel(off as i64)
        ),
        Insn::Call(CallTarget::Helper(imm)) => {
            format!("call {}{}", shex(imm as i64), super::helper_comment(imm))
        }
        Insn::Call(CallTarget::Local(imm)) => format!("call {}", shex(imm as i64)),
        Insn::Call(CallTarget::Kfunc { btf_id, .. }) => format!("call {}", shex(btf_id as i64)),
        Insn::Callx { reg } => format!("callx r{}", reg.num()),
        Insn::Exit => "exit".to_string(),
        Insn::Lddw {
            dst,
            src: LddwSrc::Imm,
            imm,
        } => format!("r{} = {} ll", dst.num(), shex(imm as i64)),
        // LLVM has no spelling that keeps both halves: the numeric form of
        // the named syntax (see the table in the module doc of `disasm`).
        Insn::Lddw { .. } => super::names::format_named(0, insn, &super::names::NoNames),
        Insn::LddwHigh => String::new(),
        Insn::Ldx {
            size,
            sx,
            dst,
            src,
            off,
        } => {
            let ty = if sx { stype(size) } else { utype(size) };
            format!("r{} = *({ty} *)({})", dst.num(), addr(src, off))
        }
        Insn::St {
            size,
            dst,
            off,
            imm,
        } => format!(
            "*({} *)({}) = {}",
            utype(size),
            addr(dst, off),
            shex(imm as i64)
        ),
        Insn::Stx {
            size,
            dst,
            src,
            off,
        } => format!("*({} *)({}) = r{}", utype(size), addr(dst, off), src.num()),
        Insn::Atomic {
            size,
            op,
            fetch,
            dst,
            src,
            off,
        } => atomic(size, op, fetch, dst, src, off),
        Insn::LdAbs { size, imm } => format!("r0 = *({} *)skb[{}]", utype(size), shex(imm as i64)),
        Insn::LdInd { size, src, .. } => format!("r0 = *({} *)skb[r{}]", utype(size), src.num()),
    }
}

fn atomic(size: Size, op: AtomicOp, fetch: bool, dst: Reg, src: Reg, off: i16) -> String {
    let w64 = size == Size::DW;
    let width = if w64 { Width::W64 } else { Width::W32 };
    let a = addr(dst, off);
    let s = reg(src, width);
    match op {
        AtomicOp::Xchg if w64 => format!("{s} = xchg_64({a}, {s})"),
        AtomicOp::Xchg => format!("{s} = xchg32_32({a}, {s})"),
        AtomicOp::CmpXchg => {
            let r0 = reg(Reg::R0, width);
            let name = if w64 { "cmpxchg_64" } else { "cmpxchg32_32" };
            format!("{r0} = {name}({a}, {r0}, {s})")
        }
        _ if fetch => format!(
            "{s} = atomic_fetch_{}(({} *)({a}), {s})",
            op.name(),
            utype(size)
        ),
        // llvm-objdump-19 without --mcpu prints 32-bit `lock ... += ` with an r register.
        AtomicOp::Add => format!("lock *({} *)({a}) += r{}", utype(size), src.num()),
        _ => format!("lock *({} *)({a}) {} {s}", utype(size), atomic_symbol(op)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn immediates_and_offsets() {
        assert_eq!(shex(-1), "-0x1");
        assert_eq!(shex(i64::MIN), "-0x8000000000000000");
        assert_eq!(addr(Reg::FP, i16::MIN), "r10 - 0x8000");
        assert_eq!(addr(Reg::R1, 0), "r1 + 0x0");
        assert_eq!(rel(0), "+0x0");
    }
}
