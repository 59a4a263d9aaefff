//! Line-by-line parsing: labels, operands (registers, numbers, memory
//! references, jump targets) and the label fixups done after the last line.
//! Mnemonic dispatch lives in [`super::insn`].

use super::lexer::{lex_line, Spanned, Tok};
use super::{AsmError, AsmErrorKind, Assembly, SourcePos};
use crate::isa::{CallTarget, Insn, LddwSrc, Reg};
use std::collections::BTreeMap;

/// A label used by an instruction (name, column), resolved after the last line.
pub(crate) type LabelRef<'a> = Option<(&'a str, usize)>;

/// A jump or call target as written.
pub(crate) enum Target<'a> {
    /// `+N` / `-N`: relative to the next slot.
    Rel(i128),
    /// A label name and its column.
    Label(&'a str, usize),
}

/// The tokens of one line and a read position.
pub(crate) struct Cursor<'a> {
    toks: Vec<Spanned<'a>>,
    pos: usize,
    pub line: usize,
    eol: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn err(&self, col: usize, kind: AsmErrorKind) -> AsmError {
        AsmError::new(self.line, col, kind)
    }

    /// Column of the next token (or of the end of the line).
    pub(crate) fn col(&self) -> usize {
        self.toks.get(self.pos).map_or(self.eol, |t| t.col)
    }

    pub(crate) fn peek(&self) -> Option<&Tok<'a>> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    fn peek2(&self) -> Option<&Tok<'a>> {
        self.toks.get(self.pos + 1).map(|t| &t.tok)
    }

    fn bump(&mut self) {
        self.pos += 1;
    }

    /// An "expected X, found Y" error at the next token.
    pub(crate) fn expected(&self, expected: &'static str) -> AsmError {
        let found = self
            .peek()
            .map_or_else(|| "end of line".to_string(), Tok::describe);
        self.err(self.col(), AsmErrorKind::Expected { expected, found })
    }

    fn punct(&mut self, tok: Tok<'static>, what: &'static str) -> Result<(), AsmError> {
        if self.peek() == Some(&tok) {
            self.bump();
            Ok(())
        } else {
            Err(self.expected(what))
        }
    }

    pub(crate) fn comma(&mut self) -> Result<(), AsmError> {
        self.punct(Tok::Comma, "','")
    }

    /// Consume the next token if it is the word `w`.
    pub(crate) fn eat_word(&mut self, w: &str) -> bool {
        if self.peek() == Some(&Tok::Word(w)) {
            self.bump();
            true
        } else {
            false
        }
    }

    /// The next token as a bare word, consumed.
    pub(crate) fn word(&mut self, what: &'static str) -> Result<(&'a str, usize), AsmError> {
        match self.peek() {
            Some(&Tok::Word(w)) => {
                let col = self.col();
                self.bump();
                Ok((w, col))
            }
            _ => Err(self.expected(what)),
        }
    }

    pub(crate) fn end(&self) -> Result<(), AsmError> {
        if self.peek().is_none() {
            Ok(())
        } else {
            Err(self.expected("end of line"))
        }
    }

    pub(crate) fn at_reg(&self) -> bool {
        matches!(self.peek(), Some(Tok::Reg(_)))
    }

    pub(crate) fn reg(&mut self) -> Result<Reg, AsmError> {
        let Some(&Tok::Reg(name)) = self.peek() else {
            return Err(self.expected("a register"));
        };
        let num = name
            .strip_prefix('r')
            .and_then(|d| d.parse::<u8>().ok().filter(|n| format!("r{n}") == name))
            .and_then(Reg::new);
        match num {
            Some(r) => {
                self.bump();
                Ok(r)
            }
            None => Err(self.err(
                self.col(),
                AsmErrorKind::BadRegister {
                    name: format!("%{name}"),
                },
            )),
        }
    }

    /// An optionally signed number; returns its value and column.
    pub(crate) fn number(&mut self) -> Result<(i128, usize), AsmError> {
        let col = self.col();
        let neg = match self.peek() {
            Some(Tok::Minus) => {
                self.bump();
                true
            }
            Some(Tok::Plus) => {
                self.bump();
                false
            }
            _ => false,
        };
        let Some(&Tok::Word(w)) = self.peek() else {
            return Err(self.expected("a number"));
        };
        let v = parse_uint(w)
            .ok_or_else(|| self.err(self.col(), AsmErrorKind::BadNumber { text: w.into() }))?;
        self.bump();
        Ok((if neg { -v } else { v }, col))
    }

    fn ranged(&mut self, what: &'static str, min: i128, max: i128) -> Result<i128, AsmError> {
        let (value, col) = self.number()?;
        if value < min || value > max {
            return Err(self.err(
                col,
                AsmErrorKind::OutOfRange {
                    what,
                    value,
                    min,
                    max,
                },
            ));
        }
        Ok(value)
    }

    /// A 32-bit immediate: `-2^31..=2^32-1`, stored as its low 32 bits.
    pub(crate) fn imm32(&mut self) -> Result<i32, AsmError> {
        let v = self.ranged("immediate", i32::MIN as i128, u32::MAX as i128)?;
        Ok(v as u32 as i32)
    }

    /// A 64-bit immediate: `-2^63..=2^64-1`, stored as its 64 bits.
    pub(crate) fn imm64(&mut self) -> Result<u64, AsmError> {
        let v = self.ranged("immediate", i64::MIN as i128, u64::MAX as i128)?;
        Ok(v as u64)
    }

    /// A signed 16-bit value (kfunc offset).
    pub(crate) fn off16(&mut self) -> Result<i16, AsmError> {
        Ok(self.ranged("offset", i16::MIN as i128, i16::MAX as i128)? as i16)
    }

    /// `[%rN]`, `[%rN+off]` or `[%rN-off]`.
    pub(crate) fn mem(&mut self) -> Result<(Reg, i16), AsmError> {
        self.punct(Tok::LBracket, "'['")?;
        let reg = self.reg()?;
        let off = match self.peek() {
            Some(Tok::Plus | Tok::Minus) => self.off16()?,
            _ => 0,
        };
        self.punct(Tok::RBracket, "']'")?;
        Ok((reg, off))
    }

    /// A label or a signed relative offset.
    pub(crate) fn target(&mut self) -> Result<Target<'a>, AsmError> {
        match self.peek() {
            Some(Tok::Plus | Tok::Minus) => Ok(Target::Rel(self.number()?.0)),
            Some(&Tok::Word(w)) if is_label_name(w) => {
                let col = self.col();
                self.bump();
                Ok(Target::Label(w, col))
            }
            _ => Err(self.expected("a label or a +N/-N offset")),
        }
    }

    /// A target as a relative offset in `min..=max`, or a label to fix up later.
    pub(crate) fn rel_target(&mut self, bits: u32) -> Result<(i32, LabelRef<'a>), AsmError> {
        let col = self.col();
        match self.target()? {
            Target::Label(name, col) => Ok((0, Some((name, col)))),
            Target::Rel(value) => {
                let (min, max) = if bits == 16 {
                    (i16::MIN as i128, i16::MAX as i128)
                } else {
                    (i32::MIN as i128, i32::MAX as i128)
                };
                if value < min || value > max {
                    return Err(self.err(
                        col,
                        AsmErrorKind::OutOfRange {
                            what: "jump offset",
                            value,
                            min,
                            max,
                        },
                    ));
                }
                Ok((value as i32, None))
            }
        }
    }
}

/// `123` or `0x7b` (also `0X`), no sign.
fn parse_uint(w: &str) -> Option<i128> {
    let (digits, radix) = match w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) {
        Some(h) => (h, 16),
        None => (w, 10),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    // At most 2^64-ish values are meaningful; longer digit strings overflow i128
    // only beyond 38 decimal digits, which `from_str_radix` reports as an error.
    i128::from_str_radix(digits, radix).ok()
}

fn is_label_name(w: &str) -> bool {
    w.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '.')
}

/// A label use awaiting resolution.
struct Fixup {
    pc: usize,
    name: String,
    line: usize,
    col: usize,
}

/// Assembler state across lines.
#[derive(Default)]
pub(crate) struct Assembler {
    insns: Vec<Insn>,
    /// Position of each slot's mnemonic.
    locations: Vec<SourcePos>,
    /// name -> (pc, line of definition)
    labels: BTreeMap<String, (usize, usize)>,
    fixups: Vec<Fixup>,
    first_exit: Option<usize>,
}

impl Assembler {
    pub(crate) fn run(mut self, src: &str) -> Result<Assembly, AsmError> {
        for (i, text) in src.lines().enumerate() {
            self.line(i + 1, text)?;
        }
        self.resolve()?;
        Ok(Assembly {
            insns: self.insns,
            locations: self.locations,
        })
    }

    fn line(&mut self, line: usize, text: &str) -> Result<(), AsmError> {
        let (toks, eol) = lex_line(line, text)?;
        let mut cur = Cursor {
            toks,
            pos: 0,
            line,
            eol,
        };
        // Leading `label:`.
        if let (Some(&Tok::Word(name)), Some(Tok::Colon)) = (cur.peek(), cur.peek2()) {
            let col = cur.col();
            if !is_label_name(name) {
                return Err(cur.err(
                    col,
                    AsmErrorKind::Expected {
                        expected: "a label name",
                        found: format!("'{name}'"),
                    },
                ));
            }
            if let Some(&(_, first_line)) = self.labels.get(name) {
                return Err(cur.err(
                    col,
                    AsmErrorKind::DuplicateLabel {
                        name: name.into(),
                        first_line,
                    },
                ));
            }
            self.labels.insert(name.into(), (self.insns.len(), line));
            cur.bump();
            cur.bump();
        }
        if cur.peek().is_none() {
            return Ok(());
        }
        let (mnemonic, col) = cur.word("a mnemonic")?;
        let pc = self.insns.len();
        let (insn, label) = super::insn::parse(&mut cur, mnemonic, col)?;
        cur.end()?;
        if insn == Insn::Exit && self.first_exit.is_none() {
            self.first_exit = Some(pc);
        }
        if let Some((name, col)) = label {
            self.fixups.push(Fixup {
                pc,
                name: name.into(),
                line,
                col,
            });
        }
        let pos = SourcePos { line, column: col };
        self.insns.push(insn);
        self.locations.push(pos);
        if insn.slots() == 2 {
            self.insns.push(Insn::LddwHigh);
            self.locations.push(pos);
        }
        Ok(())
    }

    fn resolve(&mut self) -> Result<(), AsmError> {
        for f in &self.fixups {
            let err = |kind| AsmError::new(f.line, f.col, kind);
            let target = match self.labels.get(&f.name) {
                Some(&(pc, _)) => pc,
                None => match self.first_exit {
                    Some(pc) if f.name == "exit" => pc,
                    _ => {
                        return Err(err(AsmErrorKind::UnknownLabel {
                            name: f.name.clone(),
                        }))
                    }
                },
            };
            let rel = target as i64 - f.pc as i64 - 1;
            let too_far = |bits| {
                err(AsmErrorKind::LabelTooFar {
                    name: f.name.clone(),
                    offset: rel,
                    bits,
                })
            };
            let rel16 = || i16::try_from(rel).map_err(|_| too_far(16));
            let rel32 = || i32::try_from(rel).map_err(|_| too_far(32));
            let Some(insn) = self.insns.get_mut(f.pc) else {
                continue;
            };
            match insn {
                Insn::Ja { off, long: false } => *off = rel16()? as i32,
                Insn::Ja { off, long: true } => *off = rel32()?,
                Insn::Jmp { off, .. } | Insn::MayGoto { off } => *off = rel16()?,
                Insn::Call(CallTarget::Local(imm)) => *imm = rel32()?,
                Insn::Lddw {
                    src: LddwSrc::Func,
                    imm,
                    ..
                } => *imm = (*imm & !0xffff_ffff) | rel32()? as u32 as u64,
                _ => {}
            }
        }
        Ok(())
    }
}
