//! The assembler for the conformance-suite assembly syntax (the `-- asm`
//! sections of bpf_conformance's `tests/*.data`), producing slot-indexed
//! [`Insn`]s. The lexer splits lines into tokens, the parser turns each line
//! into an instruction and resolves labels once the whole text is read.
//!
//! # Syntax
//!
//! One instruction per line; `#` starts a comment; blank lines are ignored.
//! A line may start with a label `name:` (alone or before an instruction).
//!
//! * Registers are `%r0`..`%r10`. Memory operands are `[%rN]`, `[%rN+off]`,
//!   `[%rN-off]` with a 16-bit signed offset.
//! * Numbers are decimal or `0x` hexadecimal, optionally signed. A 32-bit
//!   immediate accepts `-2^31..=2^32-1` and stores the low 32 bits (so
//!   `mov %r0, 0xffffffff` is `mov %r0, -1`); `lddw` accepts `-2^63..=2^64-1`.
//! * Jump targets are a label or a signed relative offset `+N`/`-N` (counted
//!   in slots from the next instruction). As in the reference assembler,
//!   the label `exit` names the first `exit` instruction unless the program
//!   defines `exit:` itself.
//! * ALU: `add sub mul div sdiv mod smod or and xor lsh rsh arsh mov`, with a
//!   `32` suffix for class ALU (`add32 %r1, 5`, `mov %r0, %r1`), `neg`/`neg32`,
//!   `movsx832 movsx1632 movsx864 movsx1664 movsx3264 %rD, %rS`
//!   (sign-extend from 8/16/32 bits, 32- or 64-bit result).
//! * Byte order: `le16/32/64`, `be16/32/64` and `bswap16/32/64` (alias
//!   `swap16/32/64`, class ALU64 `BPF_END`).
//! * Jumps: `ja TARGET`, `ja32 TARGET` (`gotol`, offset in imm),
//!   `jeq jgt jge jset jne jsgt jsge jlt jle jslt jsle` (and `...32`)
//!   `%rD, %rS|IMM, TARGET`.
//! * Calls: `call N` or `call helper N` (helper), `call local TARGET`
//!   (bpf-to-bpf, pc-relative imm), `call %rN` (callx, opcode 0x8d),
//!   `call kfunc ID` or `call kfunc ID, OFF` (kfunc with module BTF offset).
//! * `exit`.
//! * `lddw %rN, IMM64`; pseudo sources: `lddw %rN, KIND LO` or
//!   `lddw %rN, KIND LO, HI` where KIND is `map_fd` (src 1), `map_value` (2),
//!   `btf_id` (3), `func` (4), `map_idx` (5), `map_idx_value` (6), and LO/HI
//!   are the two 32-bit immediate halves (HI defaults to 0, e.g. the value
//!   offset of `map_value`). For `func`, LO may also be a label or `+N`/`-N`.
//! * Loads and stores: `ldx{b,h,w,dw} %rD, [MEM]`, `ldxs{b,h,w}` (sign
//!   extending, MEMSX), `st{b,h,w,dw} [MEM], IMM`, `stx{b,h,w,dw} [MEM], %rS`.
//! * Atomics: `lock [fetch] OP [MEM], %rS` with OP one of `add and or xor
//!   xchg cmpxchg` and a `32` suffix for 32-bit (`lock fetch add32 [%r10-8],
//!   %r1`); `fetch_add`-style single words are accepted too. `xchg` and
//!   `cmpxchg` always fetch.
//! * Legacy packet loads: `ldabs{b,h,w} IMM`, `ldind{b,h,w} %rS, IMM`.
//!
//! Out-of-range numbers, unknown mnemonics or labels, duplicate labels,
//! registers beyond `%r10` and label distances that do not fit the offset
//! field are errors carrying the 1-based line and column, and so is a byte
//! that is not UTF-8 when the text comes as bytes ([`source_text`]). The
//! output is not validated: callers run [`crate::isa::validate`] if they need
//! to, and [`assemble_with_locations`] gives the source position of each slot
//! so that its errors can point at a line too.

mod insn;
mod lexer;
mod parser;

use crate::isa::Insn;
use thiserror::Error;

/// An assembly error at a 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct AsmError {
    pub line: usize,
    pub column: usize,
    pub kind: AsmErrorKind,
}

impl AsmError {
    pub(crate) fn new(line: usize, column: usize, kind: AsmErrorKind) -> AsmError {
        AsmError { line, column, kind }
    }
}

/// What went wrong.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum AsmErrorKind {
    #[error("invalid UTF-8 (byte {byte:#04x})")]
    InvalidUtf8 { byte: u8 },
    #[error("unexpected character {ch:?}")]
    UnexpectedChar { ch: char },
    #[error("unknown mnemonic '{name}'")]
    UnknownMnemonic { name: String },
    #[error("invalid register '{name}' (expected %r0..%r10)")]
    BadRegister { name: String },
    #[error("expected {expected}, found {found}")]
    Expected {
        expected: &'static str,
        found: String,
    },
    #[error("invalid number '{text}'")]
    BadNumber { text: String },
    #[error("{what} {value} out of range {min}..={max}")]
    OutOfRange {
        what: &'static str,
        value: i128,
        min: i128,
        max: i128,
    },
    #[error("unknown label '{name}'")]
    UnknownLabel { name: String },
    #[error("duplicate label '{name}' (first defined on line {first_line})")]
    DuplicateLabel { name: String, first_line: usize },
    #[error("label '{name}' is {offset} slots away, beyond the {bits}-bit offset field")]
    LabelTooFar {
        name: String,
        offset: i64,
        bits: u32,
    },
}

/// A 1-based line and column in the assembly text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourcePos {
    pub line: usize,
    pub column: usize,
}

/// Assembled instructions and where each came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assembly {
    /// Slot-indexed instructions, as [`assemble`] returns them.
    pub insns: Vec<Insn>,
    /// For each slot, the position of its instruction's mnemonic (an
    /// `lddw`'s second slot has the position of the `lddw`).
    pub locations: Vec<SourcePos>,
}

impl Assembly {
    /// The source position of the instruction in slot `pc`.
    pub fn location(&self, pc: usize) -> Option<SourcePos> {
        self.locations.get(pc).copied()
    }
}

/// Assemble conformance-syntax text into slot-indexed instructions (an `lddw`
/// is followed by its [`Insn::LddwHigh`] placeholder).
pub fn assemble(src: &str) -> Result<Vec<Insn>, AsmError> {
    assemble_with_locations(src).map(|a| a.insns)
}

/// [`assemble`], also recording the source position of every slot.
pub fn assemble_with_locations(src: &str) -> Result<Assembly, AsmError> {
    parser::Assembler::default().run(src)
}

/// `bytes` as assembly text, or an [`AsmErrorKind::InvalidUtf8`] error at
/// the line and column (counted in characters, as elsewhere) of the first
/// byte that is not part of valid UTF-8.
pub fn source_text(bytes: &[u8]) -> Result<&str, AsmError> {
    std::str::from_utf8(bytes).map_err(|e| {
        let good = &bytes[..e.valid_up_to()];
        // The prefix is valid UTF-8, so this never falls back to "".
        let good = std::str::from_utf8(good).unwrap_or("");
        let line_start = good.rfind('\n').map_or(0, |i| i + 1);
        AsmError::new(
            good.matches('\n').count() + 1,
            good[line_start..].chars().count() + 1,
            AsmErrorKind::InvalidUtf8 {
                byte: bytes[e.valid_up_to()],
            },
        )
    })
}

#[cfg(test)]
mod tests;
