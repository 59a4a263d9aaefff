//! Mnemonic dispatch: one mnemonic and its operands to an [`Insn`] (plus the
//! label it refers to, if any, for the parser to resolve).

use super::lexer::Tok;
use super::parser::{Cursor, LabelRef};
use super::{AsmError, AsmErrorKind};
use crate::isa::{
    AluOp, AtomicOp, ByteOrder, CallTarget, Insn, JmpCond, LddwSrc, Size, Src, Width,
};

/// A parsed instruction and its unresolved label reference.
pub(crate) type Parsed<'a> = (Insn, LabelRef<'a>);

fn size_suffix(s: &str) -> Option<Size> {
    Some(match s {
        "b" => Size::B,
        "h" => Size::H,
        "w" => Size::W,
        "dw" => Size::DW,
        _ => return None,
    })
}

/// Split a trailing `32` off a mnemonic: (stem, width).
fn split_width(m: &str) -> (&str, Width) {
    match m.strip_suffix("32") {
        Some(stem) if !stem.is_empty() => (stem, Width::W32),
        _ => (m, Width::W64),
    }
}

fn alu_op(stem: &str) -> Option<AluOp> {
    Some(match stem {
        "add" => AluOp::Add,
        "sub" => AluOp::Sub,
        "mul" => AluOp::Mul,
        "div" => AluOp::Div,
        "sdiv" => AluOp::SDiv,
        "mod" => AluOp::Mod,
        "smod" => AluOp::SMod,
        "or" => AluOp::Or,
        "and" => AluOp::And,
        "xor" => AluOp::Xor,
        "lsh" => AluOp::Lsh,
        "rsh" => AluOp::Rsh,
        "arsh" => AluOp::Arsh,
        "mov" => AluOp::Mov,
        _ => return None,
    })
}

fn atomic_op(stem: &str) -> Option<AtomicOp> {
    Some(match stem {
        "add" => AtomicOp::Add,
        "and" => AtomicOp::And,
        "or" => AtomicOp::Or,
        "xor" => AtomicOp::Xor,
        "xchg" => AtomicOp::Xchg,
        "cmpxchg" => AtomicOp::CmpXchg,
        _ => return None,
    })
}

/// The `lddw` pseudo-source keywords.
pub(crate) fn lddw_kind(w: &str) -> Option<LddwSrc> {
    Some(match w {
        "map_fd" => LddwSrc::MapFd,
        "map_value" => LddwSrc::MapValue,
        "btf_id" => LddwSrc::BtfId,
        "func" => LddwSrc::Func,
        "map_idx" => LddwSrc::MapIdx,
        "map_idx_value" => LddwSrc::MapIdxValue,
        _ => return None,
    })
}

/// Parse the operands of `mnemonic` (at column `col`) from `cur`.
pub(crate) fn parse<'a>(
    cur: &mut Cursor<'a>,
    mnemonic: &'a str,
    col: usize,
) -> Result<Parsed<'a>, AsmError> {
    let plain = |insn| Ok((insn, None));
    match mnemonic {
        "exit" => return plain(Insn::Exit),
        "ja" | "ja32" => {
            let long = mnemonic == "ja32";
            let (off, label) = cur.rel_target(if long { 32 } else { 16 })?;
            return Ok((Insn::Ja { off, long }, label));
        }
        "may_goto" => {
            let (off, label) = cur.rel_target(16)?;
            return Ok((Insn::MayGoto { off: off as i16 }, label));
        }
        "call" => return call(cur),
        "lddw" => return lddw(cur),
        "lock" => return lock(cur).map(|i| (i, None)),
        "neg" | "neg32" => {
            let width = split_width(mnemonic).1;
            return plain(Insn::Neg {
                width,
                dst: cur.reg()?,
            });
        }
        _ => {}
    }
    if let Some(insn) = mem_insn(cur, mnemonic)? {
        return plain(insn);
    }
    if let Some(insn) = end_insn(cur, mnemonic)? {
        return plain(insn);
    }
    if let Some((width, bits)) = movsx(mnemonic) {
        let dst = cur.reg()?;
        cur.comma()?;
        let src = cur.reg()?;
        return plain(Insn::Alu {
            width,
            op: AluOp::MovSx(bits),
            dst,
            src: Src::Reg(src),
        });
    }
    let (stem, width) = split_width(mnemonic);
    if let Some(op) = alu_op(stem) {
        let dst = cur.reg()?;
        cur.comma()?;
        let src = operand(cur)?;
        return plain(Insn::Alu {
            width,
            op,
            dst,
            src,
        });
    }
    if let Some(cond) = JmpCond::ALL.into_iter().find(|c| c.name() == stem) {
        let dst = cur.reg()?;
        cur.comma()?;
        let src = operand(cur)?;
        cur.comma()?;
        let (off, label) = cur.rel_target(16)?;
        return Ok((
            Insn::Jmp {
                width,
                cond,
                dst,
                src,
                off: off as i16,
            },
            label,
        ));
    }
    Err(cur.err(
        col,
        AsmErrorKind::UnknownMnemonic {
            name: mnemonic.into(),
        },
    ))
}

/// A register or a 32-bit immediate.
fn operand(cur: &mut Cursor<'_>) -> Result<Src, AsmError> {
    if cur.at_reg() {
        Ok(Src::Reg(cur.reg()?))
    } else {
        Ok(Src::Imm(cur.imm32()?))
    }
}

fn movsx(m: &str) -> Option<(Width, u8)> {
    Some(match m {
        "movsx832" => (Width::W32, 8),
        "movsx1632" => (Width::W32, 16),
        "movsx864" => (Width::W64, 8),
        "movsx1664" => (Width::W64, 16),
        "movsx3264" => (Width::W64, 32),
        _ => return None,
    })
}

/// `le16`, `be32`, `bswap64`, `swap16` ...
fn end_insn(cur: &mut Cursor<'_>, m: &str) -> Result<Option<Insn>, AsmError> {
    let (order, bits) = if let Some(b) = m.strip_prefix("le") {
        (ByteOrder::ToLe, b)
    } else if let Some(b) = m.strip_prefix("be") {
        (ByteOrder::ToBe, b)
    } else if let Some(b) = m.strip_prefix("bswap").or_else(|| m.strip_prefix("swap")) {
        (ByteOrder::Swap, b)
    } else {
        return Ok(None);
    };
    let bits = match bits {
        "16" => 16,
        "32" => 32,
        "64" => 64,
        _ => return Ok(None),
    };
    Ok(Some(Insn::End {
        order,
        bits,
        dst: cur.reg()?,
    }))
}

/// Loads, stores and legacy packet loads.
fn mem_insn(cur: &mut Cursor<'_>, m: &str) -> Result<Option<Insn>, AsmError> {
    let sized = |prefix: &str, allow_dw: bool| {
        m.strip_prefix(prefix)
            .and_then(size_suffix)
            .filter(|&s| allow_dw || s != Size::DW)
    };
    if let Some(size) = sized("ldxs", false) {
        let dst = cur.reg()?;
        cur.comma()?;
        let (src, off) = cur.mem()?;
        return Ok(Some(Insn::Ldx {
            size,
            sx: true,
            dst,
            src,
            off,
        }));
    }
    if let Some(size) = sized("ldx", true) {
        let dst = cur.reg()?;
        cur.comma()?;
        let (src, off) = cur.mem()?;
        return Ok(Some(Insn::Ldx {
            size,
            sx: false,
            dst,
            src,
            off,
        }));
    }
    if let Some(size) = sized("stx", true) {
        let (dst, off) = cur.mem()?;
        cur.comma()?;
        let src = cur.reg()?;
        return Ok(Some(Insn::Stx {
            size,
            dst,
            src,
            off,
        }));
    }
    if let Some(size) = sized("st", true) {
        let (dst, off) = cur.mem()?;
        cur.comma()?;
        let imm = cur.imm32()?;
        return Ok(Some(Insn::St {
            size,
            dst,
            off,
            imm,
        }));
    }
    if let Some(size) = sized("ldabs", false) {
        return Ok(Some(Insn::LdAbs {
            size,
            imm: cur.imm32()?,
        }));
    }
    if let Some(size) = sized("ldind", false) {
        let src = cur.reg()?;
        cur.comma()?;
        let imm = cur.imm32()?;
        return Ok(Some(Insn::LdInd { size, src, imm }));
    }
    Ok(None)
}

fn call<'a>(cur: &mut Cursor<'a>) -> Result<Parsed<'a>, AsmError> {
    if cur.at_reg() {
        return Ok((Insn::Callx { reg: cur.reg()? }, None));
    }
    if cur.eat_word("local") {
        let (imm, label) = cur.rel_target(32)?;
        return Ok((Insn::Call(CallTarget::Local(imm)), label));
    }
    if cur.eat_word("kfunc") {
        let btf_id = cur.imm32()?;
        let off = if cur.peek().is_some() {
            cur.comma()?;
            cur.off16()?
        } else {
            0
        };
        return Ok((Insn::Call(CallTarget::Kfunc { btf_id, off }), None));
    }
    cur.eat_word("helper");
    Ok((Insn::Call(CallTarget::Helper(cur.imm32()?)), None))
}

fn lddw<'a>(cur: &mut Cursor<'a>) -> Result<Parsed<'a>, AsmError> {
    let dst = cur.reg()?;
    cur.comma()?;
    let kind = match cur.peek() {
        Some(&Tok::Word(w)) => lddw_kind(w),
        _ => None,
    };
    let Some(src) = kind else {
        let imm = cur.imm64()?;
        return Ok((
            Insn::Lddw {
                dst,
                src: LddwSrc::Imm,
                imm,
            },
            None,
        ));
    };
    cur.word("a lddw source kind")?;
    let label_next =
        matches!(cur.peek(), Some(&Tok::Word(w)) if w.starts_with(|c: char| !c.is_ascii_digit()));
    let (lo, label) = if src == LddwSrc::Func && label_next {
        cur.rel_target(32)?
    } else {
        (cur.imm32()?, None)
    };
    let hi = if cur.peek().is_some() {
        cur.comma()?;
        cur.imm32()?
    } else {
        0
    };
    let imm = (lo as u32 as u64) | ((hi as u32 as u64) << 32);
    Ok((Insn::Lddw { dst, src, imm }, label))
}

/// `lock [fetch] OP[32] [MEM], %rS`.
fn lock(cur: &mut Cursor<'_>) -> Result<Insn, AsmError> {
    let mut fetch = cur.eat_word("fetch");
    let (word, col) = cur.word("an atomic operation")?;
    let word = match word.strip_prefix("fetch_") {
        Some(rest) if !fetch => {
            fetch = true;
            rest
        }
        _ => word,
    };
    let (stem, width) = split_width(word);
    let op = atomic_op(stem).ok_or_else(|| {
        cur.err(
            col,
            AsmErrorKind::UnknownMnemonic {
                name: format!("lock {word}"),
            },
        )
    })?;
    let (dst, off) = cur.mem()?;
    cur.comma()?;
    let src = cur.reg()?;
    Ok(Insn::Atomic {
        size: if width == Width::W32 {
            Size::W
        } else {
            Size::DW
        },
        op,
        fetch: fetch || matches!(op, AtomicOp::Xchg | AtomicOp::CmpXchg),
        dst,
        src,
        off,
    })
}
