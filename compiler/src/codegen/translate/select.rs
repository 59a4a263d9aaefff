//! If-conversion: a conditional jump over a few cheap register-only
//! instructions (a "hammock", what clang writes for `x = c ? a : b` since
//! eBPF has no conditional move) becomes straight-line code ending in
//! `select`s, which the backends lower to conditional moves. The skipped
//! instructions run speculatively; each register they write then takes its
//! old value where the jump is taken and the new one where it is not. They
//! can neither fault nor touch memory, so running them either way is
//! invisible, and a data-dependent branch the CPU mispredicts half the time
//! costs no more than a few moves.

use super::Translator;
use crate::isa::{AluOp, Insn, LddwSrc, Reg};
use cranelift_codegen::ir::{InstBuilder, Value};
use cranelift_module::Module;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

/// The most instructions a converted jump may skip: beyond a few, the
/// speculative work outweighs a well-predicted branch.
const MAX_SKIPPED: usize = 3;

/// A conditional jump being converted: where its skipped instructions end,
/// whether it is taken, and the values of the registers they write as they
/// were before them.
pub(super) struct Hammock {
    last: usize,
    taken: Value,
    before: Vec<(Reg, Value)>,
}

/// The register a speculatable instruction writes: cheap, register-only,
/// and unable to fault (no memory, calls or division).
fn speculatable(insn: &Insn) -> Option<Reg> {
    match *insn {
        Insn::Alu { op, dst, .. } => {
            let costly = matches!(op, AluOp::Div | AluOp::SDiv | AluOp::Mod | AluOp::SMod);
            (!costly).then_some(dst)
        }
        Insn::Neg { dst, .. } | Insn::End { dst, .. } => Some(dst),
        Insn::Lddw {
            dst,
            src: LddwSrc::Imm,
            ..
        } => Some(dst),
        Insn::LddwHigh => None,
        _ => None,
    }
}

/// The conditional jumps of the function in `range` to convert, each with
/// the last slot it skips. A jump qualifies when it goes forward over at
/// most [`MAX_SKIPPED`] speculatable instructions, none of which is the
/// target of another jump, and is not one of the `taken` jumps (a recovered
/// switch's).
pub(super) fn find(
    insns: &[Insn],
    range: &Range<usize>,
    taken: &BTreeSet<usize>,
) -> BTreeMap<usize, usize> {
    let targets: BTreeSet<usize> = range
        .clone()
        .filter(|&pc| {
            matches!(
                insns[pc],
                Insn::Ja { .. } | Insn::Jmp { .. } | Insn::MayGoto { .. }
            )
        })
        .filter_map(|pc| insns[pc].branch_target(pc))
        .map(|t| t as usize)
        .collect();
    let mut found = BTreeMap::new();
    for pc in range.clone() {
        let Insn::Jmp { off, .. } = insns[pc] else {
            continue;
        };
        if taken.contains(&pc) {
            continue;
        }
        let Ok(skip) = usize::try_from(off) else {
            continue;
        };
        let body = pc + 1..pc + 1 + skip;
        if skip == 0 || body.end > range.end || targets.range(body.clone()).next().is_some() {
            continue;
        }
        // An lddw counts once; its second slot is skipped with it.
        let counted = insns[body.clone()]
            .iter()
            .filter(|i| **i != Insn::LddwHigh)
            .count();
        let pure = insns[body.clone()]
            .iter()
            .all(|i| *i == Insn::LddwHigh || speculatable(i).is_some());
        if counted <= MAX_SKIPPED && pure && insns[body.start] != Insn::LddwHigh {
            // The last instruction translated, not an lddw's second slot.
            let last = body.end - 1 - usize::from(insns[body.end - 1] == Insn::LddwHigh);
            found.insert(pc, last);
        }
    }
    found
}

impl<M: Module> Translator<'_, '_, '_, M> {
    /// Start converting the jump at `pc`, taken when `taken` is set, over
    /// the slots up to `last`.
    pub(super) fn begin_hammock(&mut self, insns: &[Insn], pc: usize, last: usize, taken: Value) {
        let mut written: Vec<Reg> = insns[pc + 1..=last]
            .iter()
            .filter_map(speculatable)
            .collect();
        written.sort_by_key(|r| r.index());
        written.dedup();
        let before = written.into_iter().map(|r| (r, self.get(r))).collect();
        self.hammock = Some(Hammock {
            last,
            taken,
            before,
        });
    }

    /// After the instruction at `pc`: when it was the last one a converted
    /// jump skips, merge each register it wrote with a `select`.
    pub(super) fn end_hammock_at(&mut self, pc: usize) {
        let Some(h) = self.hammock.take_if(|h| h.last == pc) else {
            return;
        };
        for (reg, old) in h.before {
            let new = self.get(reg);
            let merged = self.b.ins().select(h.taken, old, new);
            self.set(reg, merged);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asm::assemble;

    fn hammocks(src: &str) -> Vec<(usize, usize)> {
        let insns = assemble(src).expect("test program assembles");
        find(&insns, &(0..insns.len()), &BTreeSet::new())
            .into_iter()
            .collect()
    }

    #[test]
    fn converts_short_forward_jumps_over_register_ops() {
        // r0 = r1 > 5 ? r0 : r0 | 0x10 (one instruction), then over an lddw
        // and a 32-bit op (three instructions in four slots).
        let src = "jgt %r1, 5, +1\nor %r0, 0x10\n\
                   jeq %r2, 0, +4\nlddw %r3, 0x100000000\nadd32 %r4, 1\nneg %r5\nexit";
        assert_eq!(hammocks(src), [(0, 1), (2, 6)]);
    }

    #[test]
    fn leaves_jumps_that_cannot_be_converted() {
        // Too long, backward, over memory, over division, over a call, over
        // another jump's target, and a zero-length jump.
        assert!(
            hammocks("jeq %r1, 0, +4\nmov %r0, 1\nmov %r0, 2\nmov %r0, 3\nmov %r0, 4\nexit")
                .is_empty()
        );
        assert!(hammocks("l:\nadd %r0, 1\njne %r0, 5, l\nexit").is_empty());
        assert!(hammocks("jeq %r1, 0, +1\nldxw %r0, [%r1+0]\nexit").is_empty());
        assert!(hammocks("jeq %r1, 0, +1\ndiv %r0, %r1\nexit").is_empty());
        assert!(hammocks("jeq %r1, 0, +1\ncall 5\nexit").is_empty());
        assert!(hammocks("jeq %r1, 0, +2\nmov %r0, 1\nja +0\nexit").is_empty());
        assert!(hammocks("jeq %r1, 0, +2\nmov %r0, 1\nm:\nmov %r0, 2\nja m\nexit").is_empty());
        assert!(hammocks("jeq %r1, 0, +0\nexit").is_empty());
    }
}
