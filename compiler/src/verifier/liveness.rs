//! Which registers the code from each instruction on may read before
//! writing them: a backward data-flow fixpoint over each function's
//! control-flow graph. State comparison ignores registers that are dead at
//! the instruction, as the kernel's read marks let it do.

use crate::analysis::{succs, Cfg};
use crate::isa::{AtomicOp, CallTarget, Insn, Src};
use bpfc_runtime::helpers::proto;

/// Registers r1..r5.
const ARGS: u16 = 0b11_1110;
/// Registers r0..r5, clobbered by calls.
const CALLER_SAVED: u16 = 0b11_1111;

fn bit(r: crate::isa::Reg) -> u16 {
    1 << r.num()
}

/// (uses, defs) of one instruction.
fn use_def(insn: &Insn) -> (u16, u16) {
    match *insn {
        Insn::Alu { op, dst, src, .. } => {
            let s = match src {
                Src::Reg(r) => bit(r),
                Src::Imm(_) => 0,
            };
            let d = if matches!(op, crate::isa::AluOp::Mov | crate::isa::AluOp::MovSx(_)) {
                0
            } else {
                bit(dst)
            };
            (s | d, bit(dst))
        }
        Insn::Neg { dst, .. } | Insn::End { dst, .. } => (bit(dst), bit(dst)),
        Insn::Ja { .. } => (0, 0),
        Insn::Jmp { dst, src, .. } => (
            bit(dst)
                | match src {
                    Src::Reg(r) => bit(r),
                    Src::Imm(_) => 0,
                },
            0,
        ),
        Insn::Call(CallTarget::Helper(id)) => {
            let n = u32::try_from(id)
                .ok()
                .and_then(proto::proto)
                .map_or(5, |p| p.arg_count());
            (((1u16 << (n + 1)) - 1) & ARGS, CALLER_SAVED)
        }
        Insn::Call(_) => (ARGS, CALLER_SAVED),
        Insn::Callx { reg } => (ARGS | bit(reg), CALLER_SAVED),
        Insn::Exit => (1, 0),
        Insn::Lddw { dst, .. } => (0, bit(dst)),
        Insn::LddwHigh => (0, 0),
        Insn::Ldx { dst, src, .. } => (bit(src), bit(dst)),
        Insn::St { dst, .. } => (bit(dst), 0),
        Insn::Stx { dst, src, .. } => (bit(dst) | bit(src), 0),
        Insn::Atomic {
            op,
            fetch,
            dst,
            src,
            ..
        } => {
            if op == AtomicOp::CmpXchg {
                (bit(dst) | bit(src) | 1, 1)
            } else if fetch {
                (bit(dst) | bit(src), bit(src))
            } else {
                (bit(dst) | bit(src), 0)
            }
        }
        // Legacy packet loads read the context in r6 and clobber r0..r5.
        Insn::LdAbs { .. } => (1 << 6, CALLER_SAVED),
        Insn::LdInd { src, .. } => ((1 << 6) | bit(src), CALLER_SAVED),
    }
}

/// `live[pc]`: bit `r` set when register `r` may be read at or after `pc`
/// (in the same function) before being written.
pub fn compute(insns: &[Insn], cfg: &Cfg) -> Vec<u16> {
    let mut live = vec![0u16; insns.len()];
    let ud: Vec<(u16, u16)> = insns.iter().map(use_def).collect();
    let sc: Vec<_> = (0..insns.len()).map(|pc| succs(insns, pc)).collect();
    for f in &cfg.functions {
        let mut changed = true;
        while changed {
            changed = false;
            for pc in f.range().rev() {
                if insns[pc] == Insn::LddwHigh {
                    continue;
                }
                let mut out = 0u16;
                for s in sc[pc].iter() {
                    if s < insns.len() {
                        out |= live[s];
                    }
                }
                let (u, d) = ud[pc];
                let new = u | (out & !d);
                if new != live[pc] {
                    live[pc] = new;
                    changed = true;
                }
            }
        }
    }
    live
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyze;
    use crate::asm::assemble;

    #[test]
    fn straight_line_and_loop() {
        let insns = assemble(
            "mov %r6, 1\n\
             mov %r7, 2\n\
             loop:\n\
             add %r6, %r7\n\
             jlt %r6, 10, loop\n\
             mov %r0, %r6\n\
             exit\n",
        )
        .unwrap();
        let live = compute(&insns, &analyze(&insns).unwrap());
        assert_eq!(live[0], 0, "nothing is read before written");
        assert_eq!(live[2], (1 << 6) | (1 << 7));
        assert_eq!(live[4], 1 << 6);
        assert_eq!(live[5], 1);
    }

    #[test]
    fn calls_use_arguments_and_clobber() {
        // map_lookup_elem takes two arguments.
        let insns = assemble("mov %r6, %r1\ncall 1\nmov %r0, %r6\nexit\n").unwrap();
        let live = compute(&insns, &analyze(&insns).unwrap());
        assert_eq!(live[1], (1 << 1) | (1 << 2) | (1 << 6));
        assert_eq!(live[0], (1 << 1) | (1 << 2));
    }
}
