//! Which registers the code from each instruction on may read before
//! writing them: a backward data-flow fixpoint over each function's
//! control-flow graph. State comparison ignores registers that are dead at
//! the instruction, as the kernel's read marks let it do.
//!
//! Stack slots likewise ([`StackLive`]), as the kernel does since 6.18:
//! the reads come from the verification itself (every stack read a path
//! makes is recorded at its instruction, a read of a caller's frame at
//! that frame's call instruction), the kills are the whole-slot stores
//! through r10; liveness grows as reads are recorded. A saved state is
//! only compared once every path from it was verified, so by then every
//! read its continuation makes is in.

use crate::analysis::{succs, Cfg};
use crate::isa::{AtomicOp, CallTarget, Insn, Size, Src};
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
        Insn::Ja { .. } | Insn::MayGoto { .. } => (0, 0),
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

/// Stack slot liveness per instruction: bit `spi` stands for the 8 bytes
/// at `fp - 8 * (spi + 1)` of the instruction's own frame.
#[derive(Clone, Debug, Default)]
pub(crate) struct StackLive {
    /// Slots written whole through r10 (`*(u64 *)(r10 - 8k) = ...`).
    kill: Vec<u64>,
    /// Slots recorded as read at each instruction.
    reads: Vec<u64>,
    /// Slots that may be read at or after each instruction before being
    /// written, by what was recorded so far.
    live: Vec<u64>,
    /// Predecessors within the function, as ranges into `pred_list`.
    pred_start: Vec<u32>,
    pred_list: Vec<u32>,
}

/// The slot mask of the bytes `lo..hi` of a frame (offsets from its frame
/// pointer, negative); bytes outside the 512-byte frame are ignored.
pub(crate) fn slot_mask(lo: i64, hi: i64) -> u64 {
    let (lo, hi) = (lo.max(-512), hi.min(0));
    if lo >= hi {
        return 0;
    }
    let first = ((-hi) / 8) as u32; // the slot of byte hi - 1
    let last = ((-lo - 1) / 8) as u32; // the slot of byte lo
    let n = last - first + 1;
    let bits = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
    bits << first
}

impl StackLive {
    pub fn new(insns: &[Insn], cfg: &Cfg) -> StackLive {
        let n = insns.len();
        let kill = insns
            .iter()
            .map(|i| match *i {
                Insn::Stx {
                    size: Size::DW,
                    dst,
                    off,
                    ..
                }
                | Insn::St {
                    size: Size::DW,
                    dst,
                    off,
                    ..
                } if dst.num() == 10 && off % 8 == 0 && (-512..0).contains(&off) => {
                    slot_mask(off as i64, off as i64 + 8)
                }
                _ => 0,
            })
            .collect();
        let mut count = vec![0u32; n + 1];
        let mut edges = Vec::new();
        for f in &cfg.functions {
            for pc in f.range() {
                if insns[pc] == Insn::LddwHigh || !cfg.reachable[pc] {
                    continue;
                }
                for s in succs(insns, pc).iter() {
                    if s < n {
                        edges.push((s as u32, pc as u32));
                        count[s] += 1;
                    }
                }
            }
        }
        let mut pred_start = vec![0u32; n + 1];
        for i in 0..n {
            pred_start[i + 1] = pred_start[i] + count[i];
        }
        let mut fill = pred_start.clone();
        let mut pred_list = vec![0u32; edges.len()];
        for (s, p) in edges {
            pred_list[fill[s as usize] as usize] = p;
            fill[s as usize] += 1;
        }
        StackLive {
            kill,
            reads: vec![0; n],
            live: vec![0; n],
            pred_start,
            pred_list,
        }
    }

    /// Slots that may be read at or after `pc` before being overwritten.
    pub fn live_in(&self, pc: usize) -> u64 {
        self.live.get(pc).copied().unwrap_or(u64::MAX)
    }

    /// Record that the instruction at `pc` reads `slots` (of its frame),
    /// and spread the new liveness backwards.
    pub fn add_read(&mut self, pc: usize, slots: u64) {
        let Some(r) = self.reads.get_mut(pc) else {
            return;
        };
        let new = slots & !*r;
        if new == 0 {
            return;
        }
        *r |= new;
        let mut work = vec![(pc as u32, new)];
        while let Some((pc, bits)) = work.pop() {
            let pc = pc as usize;
            let add = bits & !self.live[pc];
            if add == 0 {
                continue;
            }
            self.live[pc] |= add;
            let (a, b) = (
                self.pred_start[pc] as usize,
                self.pred_start[pc + 1] as usize,
            );
            for &p in &self.pred_list[a..b] {
                let through = add & !self.kill[p as usize];
                if through != 0 {
                    work.push((p, through));
                }
            }
        }
    }
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

    #[test]
    fn slot_masks() {
        assert_eq!(slot_mask(-8, 0), 1);
        assert_eq!(slot_mask(-9, -8), 2);
        assert_eq!(slot_mask(-16, -4), 3);
        assert_eq!(slot_mask(-512, 0), u64::MAX);
        assert_eq!(slot_mask(-600, -504), 1 << 63);
        assert_eq!(slot_mask(-4, -4), 0);
    }

    #[test]
    fn stack_reads_spread_back_to_the_last_whole_write() {
        // 0: *(u64 *)(r10 - 8) = r1   kills slot 0
        // 1: *(u32 *)(r10 - 16) = r1  partial: kills nothing
        // 2: r0 = *(u64 *)(r10 - 8)
        // 3: r0 = *(u64 *)(r10 - 16)
        // 4: exit
        let insns = assemble(
            "stxdw [%r10-8], %r1\n\
             stxw [%r10-16], %r1\n\
             ldxdw %r0, [%r10-8]\n\
             ldxdw %r0, [%r10-16]\n\
             exit\n",
        )
        .unwrap();
        let mut sl = StackLive::new(&insns, &analyze(&insns).unwrap());
        assert_eq!(sl.live_in(0), 0);
        sl.add_read(2, 1);
        sl.add_read(3, 2);
        assert_eq!(sl.live_in(3), 2);
        assert_eq!(sl.live_in(2), 3);
        assert_eq!(sl.live_in(1), 3);
        assert_eq!(sl.live_in(0), 2, "the whole write at 0 kills slot 0");
        assert_eq!(sl.live_in(4), 0);
    }
}
