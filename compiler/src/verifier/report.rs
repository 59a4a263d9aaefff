//! How a rejection reads, for `bpfc verify` and for the binding step that
//! refuses a program (`bpfc run`, `bpfc compile`): the program and its
//! type, the instruction (pc and disassembly), its source line when line
//! info has one, the kernel's words and the branches taken to get there.

use super::Rejection;
use crate::disasm::{format_insn, Syntax};
use crate::isa::Insn;
use crate::loader::{LineInfo, ProgType};

/// Branch decisions a rejection shows at most (the last ones).
pub const MAX_PATH_SHOWN: usize = 24;

/// The kernel-syntax disassembly of instruction `pc` (empty past the end).
pub fn insn_text(insns: &[Insn], pc: usize) -> String {
    insns
        .get(pc)
        .map(|i| format_insn(pc, i, Syntax::Kernel))
        .unwrap_or_default()
}

/// The line info record covering `pc` (`line_info` sorted by pc).
pub fn line_of(line_info: &[LineInfo], pc: usize) -> Option<&LineInfo> {
    let i = line_info.partition_point(|l| l.pc <= pc);
    i.checked_sub(1).and_then(|i| line_info.get(i))
}

/// `program NAME (TYPE): rejected at instruction PC: DISASM`, then, two
/// spaces in, the source line, the message's lines and the branches
/// taken; every line ends with a newline.
pub fn rejection_text(
    program: &str,
    ty: ProgType,
    insns: &[Insn],
    line_info: &[LineInfo],
    r: &Rejection,
) -> String {
    let head = format!("program {program} ({})", ty.name());
    let mut s = match r.pc {
        Some(pc) => {
            let mut s = format!(
                "{head}: rejected at instruction {pc}: {}\n",
                insn_text(insns, pc)
            );
            if let Some(l) = line_of(line_info, pc) {
                s.push_str(&format!("  {}:{}: {}\n", l.file, l.line, l.text.trim()));
            }
            s
        }
        None => format!("{head}: rejected\n"),
    };
    for line in r.message.lines() {
        s.push_str(&format!("  {line}\n"));
    }
    if !r.path.is_empty() {
        // A path that ran into the instruction budget can hold a million
        // branches: the last ones say where it went round.
        let skip = r.path.len().saturating_sub(MAX_PATH_SHOWN);
        let mut steps: Vec<String> = r.path[skip..]
            .iter()
            .map(|(a, b)| format!("{a}->{b}"))
            .collect();
        if skip > 0 {
            steps.insert(0, format!("({skip} earlier)"));
        }
        s.push_str(&format!("  branches taken: {}\n", steps.join(", ")));
    }
    s
}
