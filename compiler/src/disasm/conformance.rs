//! The conformance-suite spelling of instructions, exactly what
//! [`crate::asm::assemble`] reads back (relative `+N`/`-N` offsets, no labels).

use crate::isa::{AluOp, AtomicOp, ByteOrder, CallTarget, Insn, LddwSrc, Reg, Src, Width};

fn suffix(width: Width) -> &'static str {
    match width {
        Width::W32 => "32",
        Width::W64 => "",
    }
}

fn operand(src: Src) -> String {
    match src {
        Src::Imm(imm) => imm.to_string(),
        Src::Reg(r) => format!("%{r}"),
    }
}

/// `[%r1]`, `[%r1+4]`, `[%r10-8]`.
fn mem(base: Reg, off: i16) -> String {
    match off {
        0 => format!("[%{base}]"),
        _ => format!("[%{base}{off:+}]"),
    }
}

fn lddw_kind(src: LddwSrc) -> &'static str {
    match src {
        LddwSrc::Imm => "",
        LddwSrc::MapFd => "map_fd",
        LddwSrc::MapValue => "map_value",
        LddwSrc::BtfId => "btf_id",
        LddwSrc::Func => "func",
        LddwSrc::MapIdx => "map_idx",
        LddwSrc::MapIdxValue => "map_idx_value",
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
        } => format!("movsx{bits}{} %{dst}, {}", width.bits(), operand(src)),
        Insn::Alu {
            width,
            op,
            dst,
            src,
        } => format!("{}{} %{dst}, {}", op.name(), suffix(width), operand(src)),
        Insn::Neg { width, dst } => format!("neg{} %{dst}", suffix(width)),
        Insn::End { order, bits, dst } => {
            let name = match order {
                ByteOrder::ToLe => "le",
                ByteOrder::ToBe => "be",
                ByteOrder::Swap => "bswap",
            };
            format!("{name}{bits} %{dst}")
        }
        Insn::Ja { off, long } => format!("ja{} {off:+}", if long { "32" } else { "" }),
        Insn::MayGoto { off } => format!("may_goto {off:+}"),
        Insn::Jmp {
            width,
            cond,
            dst,
            src,
            off,
        } => format!(
            "{}{} %{dst}, {}, {off:+}",
            cond.name(),
            suffix(width),
            operand(src)
        ),
        Insn::Call(CallTarget::Helper(imm)) => format!("call {imm}{}", super::helper_comment(imm)),
        Insn::Call(CallTarget::Local(imm)) => format!("call local {imm:+}"),
        Insn::Call(CallTarget::Kfunc { btf_id, off: 0 }) => format!("call kfunc {btf_id}"),
        Insn::Call(CallTarget::Kfunc { btf_id, off }) => format!("call kfunc {btf_id}, {off}"),
        Insn::Callx { reg } => format!("call %{reg}"),
        Insn::Exit => "exit".to_string(),
        Insn::Lddw {
            dst,
            src: LddwSrc::Imm,
            imm,
        } => format!("lddw %{dst}, {imm:#x}"),
        Insn::Lddw { dst, src, imm } => {
            let (lo, hi) = Insn::lddw_halves(imm);
            let kind = lddw_kind(src);
            match hi {
                0 => format!("lddw %{dst}, {kind} {lo}"),
                _ => format!("lddw %{dst}, {kind} {lo}, {hi}"),
            }
        }
        Insn::LddwHigh => String::new(),
        Insn::Ldx {
            size,
            sx,
            dst,
            src,
            off,
        } => format!(
            "ldx{}{} %{dst}, {}",
            if sx { "s" } else { "" },
            size.suffix(),
            mem(src, off)
        ),
        Insn::St {
            size,
            dst,
            off,
            imm,
        } => format!("st{} {}, {imm}", size.suffix(), mem(dst, off)),
        Insn::Stx {
            size,
            dst,
            src,
            off,
        } => format!("stx{} {}, %{src}", size.suffix(), mem(dst, off)),
        Insn::Atomic {
            size,
            op,
            fetch,
            dst,
            src,
            off,
        } => {
            let fetch = fetch && !matches!(op, AtomicOp::Xchg | AtomicOp::CmpXchg);
            format!(
                "lock {}{}{} {}, %{src}",
                if fetch { "fetch " } else { "" },
                op.name(),
                if size == crate::isa::Size::W {
                    "32"
                } else {
                    ""
                },
                mem(dst, off)
            )
        }
        Insn::LdAbs { size, imm } => format!("ldabs{} {imm}", size.suffix()),
        Insn::LdInd { size, src, imm } => format!("ldind{} %{src}, {imm}", size.suffix()),
    }
}
