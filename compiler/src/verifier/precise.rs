//! Precision tracking (`mark_chain_precision`): scalars start imprecise,
//! so state comparison ignores their values; when a scalar's value comes to
//! matter (a pointer offset, a size, a decided branch, a return value),
//! the instructions that produced it are walked backwards through the
//! path's history into the saved states before it, and every register and
//! spilled slot it was computed from is marked precise there. Pruning then
//! compares those.
//!
//! Each state records the instructions of its path since its last
//! checkpoint ([`Hist`]); checkpoints keep the segment that led to them.
//! Where the walk meets something it does not follow, it falls back to
//! marking every scalar precise along the path, as the kernel does.

use super::state::{Reg, RegType, State};
use super::Env;
use crate::isa::{AluOp, AtomicOp, CallTarget, Insn, Src};

/// One executed instruction of a path (`bpf_insn_hist_entry`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Hist {
    pub idx: u32,
    /// The instruction before it on the path.
    pub prev: u32,
    /// A register spill to or fill from this stack slot: (frame, slot).
    pub stack: Option<(u8, u16)>,
    /// A conditional jump whose source / destination was a stack pointer.
    pub src_stack: bool,
    pub dst_stack: bool,
    /// Scalars sharing an id at a conditional jump: (frame, register or
    /// slot, is register).
    pub linked: Option<Box<[(u8, u16, bool)]>>,
}

impl Hist {
    pub fn new(idx: usize, prev: usize) -> Hist {
        Hist {
            idx: idx as u32,
            prev: prev as u32,
            stack: None,
            src_stack: false,
            dst_stack: false,
            linked: None,
        }
    }
}

/// Registers and stack slots being traced, per frame (`backtrack_state`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Bt {
    pub frame: usize,
    pub regs: [u16; 8],
    pub stack: [u64; 8],
}

/// The walk cannot follow: mark everything precise instead.
struct Fallback;

impl Bt {
    fn empty(&self) -> bool {
        self.regs.iter().all(|&r| r == 0) && self.stack.iter().all(|&s| s == 0)
    }
    fn reg(&self, r: u8) -> bool {
        self.regs[self.frame] & (1 << r) != 0
    }
    fn set(&mut self, r: u8) {
        self.regs[self.frame] |= 1 << r;
    }
    fn clear(&mut self, r: u8) {
        self.regs[self.frame] &= !(1 << r);
    }
    fn slot(&self, fr: usize, spi: usize) -> bool {
        spi < 64 && self.stack[fr] & (1 << spi) != 0
    }
    fn set_slot(&mut self, fr: usize, spi: usize) {
        if spi < 64 {
            self.stack[fr] |= 1 << spi;
        }
    }
    fn clear_slot(&mut self, fr: usize, spi: usize) {
        if spi < 64 {
            self.stack[fr] &= !(1 << spi);
        }
    }
    fn enter(&mut self) -> Result<(), Fallback> {
        if self.frame + 1 >= 8 {
            return Err(Fallback);
        }
        self.frame += 1;
        Ok(())
    }
    fn exit(&mut self) -> Result<(), Fallback> {
        if self.frame == 0 {
            return Err(Fallback);
        }
        self.frame -= 1;
        Ok(())
    }
    fn sync_linked(&mut self, h: &Hist) {
        let Some(linked) = &h.linked else { return };
        let any = linked.iter().any(|&(fr, n, is_reg)| {
            let fr = fr as usize;
            if is_reg {
                self.regs[fr] & (1 << n) != 0
            } else {
                self.slot(fr, n as usize)
            }
        });
        if any {
            for &(fr, n, is_reg) in linked.iter() {
                let fr = fr as usize;
                if is_reg {
                    self.regs[fr] |= 1 << n;
                } else {
                    self.set_slot(fr, n as usize);
                }
            }
        }
    }
}

const ARGS: u16 = 0b11_1110;

impl Env<'_> {
    /// Record the instruction about to execute in the path's history.
    pub(crate) fn push_hist(&mut self, pc: usize, prev: usize) {
        self.cur.hist.push(Hist::new(pc, prev));
    }

    /// Entries of the current segment where the path did not just fall
    /// through (the kernel's jump history length).
    pub(crate) fn hist_jumps(&self) -> usize {
        self.cur
            .hist
            .iter()
            .filter(|h| h.prev + 1 != h.idx || self.cfg.jump_target[h.idx as usize])
            .count()
    }

    /// The current instruction's history entry.
    pub(crate) fn cur_hist(&mut self) -> Option<&mut Hist> {
        self.cur.hist.last_mut()
    }

    /// Mark the scalar in `regno` of the current frame precise along the
    /// path (`mark_chain_precision`).
    pub(crate) fn mark_chain_precision(&mut self, regno: u8) {
        if self.cur.reg(regno).ty != RegType::Scalar {
            return;
        }
        let mut bt = Bt {
            frame: self.cur.curframe(),
            ..Bt::default()
        };
        bt.set(regno);
        self.backtrack(bt);
    }

    /// Mark a spilled scalar of the current frame's stack precise.
    pub(crate) fn mark_slot_precision(&mut self, frame: usize, spi: usize) {
        let mut bt = Bt {
            frame: self.cur.curframe(),
            ..Bt::default()
        };
        bt.set_slot(frame, spi);
        self.backtrack(bt);
    }

    /// Trace `bt` back from the current instruction (`__mark_chain_precision`).
    pub(crate) fn backtrack(&mut self, mut bt: Bt) {
        if bt.empty() {
            return;
        }
        if self.walk(&mut bt).is_err() || !bt.empty() {
            self.mark_all_scalars_precise();
        }
    }

    fn walk(&mut self, bt: &mut Bt) -> Result<(), Fallback> {
        // The current segment, without the current instruction.
        let hist = std::mem::take(&mut self.cur.hist);
        let mut subseq = hist.last().map(|h| h.idx as usize);
        let res = (|| {
            for h in hist.iter().rev().skip(1) {
                self.backtrack_insn(h, subseq, bt)?;
                if bt.empty() {
                    return Ok(true);
                }
                subseq = Some(h.idx as usize);
            }
            Ok(false)
        })();
        self.cur.hist = hist;
        if res? {
            return Ok(());
        }
        let mut p = self.cur.parent;
        while let Some(ci) = p {
            if let Some(st) = self.checkpoints[ci].state.as_mut() {
                mark_in_state(st, bt);
            }
            if bt.empty() {
                return Ok(());
            }
            let mut subseq = Some(self.checkpoints[ci].insn);
            let hist = std::mem::take(&mut self.checkpoints[ci].hist);
            let res = (|| {
                for h in hist.iter().rev() {
                    self.backtrack_insn(h, subseq, bt)?;
                    if bt.empty() {
                        return Ok(true);
                    }
                    subseq = Some(h.idx as usize);
                }
                Ok(false)
            })();
            self.checkpoints[ci].hist = hist;
            if res? {
                return Ok(());
            }
            p = self.checkpoints[ci].parent;
        }
        // At the root: only the arguments of the function verified on its
        // own may be left (a global function's scalars).
        if bt.frame == 0
            && bt.stack.iter().all(|&s| s == 0)
            && bt.regs[1..].iter().all(|&r| r == 0)
            && bt.regs[0] & !ARGS == 0
        {
            bt.regs[0] = 0;
        }
        Ok(())
    }

    /// One instruction backwards (`backtrack_insn`).
    fn backtrack_insn(&self, h: &Hist, subseq: Option<usize>, bt: &mut Bt) -> Result<(), Fallback> {
        let idx = h.idx as usize;
        let insn = self.insns[idx];
        bt.sync_linked(h);
        match insn {
            Insn::Alu { op, dst, src, .. } => {
                let d = dst.num();
                if !bt.reg(d) {
                    return Ok(());
                }
                match (op, src) {
                    (AluOp::Mov | AluOp::MovSx(_), Src::Reg(s)) => {
                        bt.clear(d);
                        if s.num() != 10 {
                            bt.set(s.num());
                        }
                    }
                    (AluOp::Mov | AluOp::MovSx(_), Src::Imm(_)) => bt.clear(d),
                    (_, Src::Reg(s)) => {
                        if s.num() != 10 {
                            bt.set(s.num());
                        }
                    }
                    (_, Src::Imm(_)) => {}
                }
            }
            Insn::Neg { .. } | Insn::End { .. } => {}
            Insn::Ldx { dst, .. } => {
                let d = dst.num();
                if !bt.reg(d) {
                    return Ok(());
                }
                bt.clear(d);
                if let Some((fr, spi)) = h.stack {
                    bt.set_slot(fr as usize, spi as usize);
                }
            }
            Insn::Atomic {
                op,
                fetch,
                src,
                dst,
                ..
            } => {
                let load = if op == AtomicOp::CmpXchg {
                    Some(0)
                } else if fetch || op == AtomicOp::Xchg {
                    Some(src.num())
                } else {
                    None
                };
                if bt.reg(dst.num()) {
                    return Err(Fallback);
                }
                if let Some(l) = load {
                    if bt.reg(l) {
                        bt.clear(l);
                        if h.stack.is_some() {
                            return Err(Fallback);
                        }
                    }
                }
            }
            Insn::Stx { dst, src, .. } => {
                if bt.reg(dst.num()) {
                    return Err(Fallback);
                }
                if let Some((fr, spi)) = h.stack {
                    if bt.slot(fr as usize, spi as usize) {
                        bt.clear_slot(fr as usize, spi as usize);
                        bt.set(src.num());
                    }
                }
            }
            Insn::St { dst, .. } => {
                if bt.reg(dst.num()) {
                    return Err(Fallback);
                }
                if let Some((fr, spi)) = h.stack {
                    bt.clear_slot(fr as usize, spi as usize);
                }
            }
            Insn::Call(CallTarget::Local(imm)) => {
                let target = (idx as i64 + 1 + imm as i64) as usize;
                let func = self.cfg.function_at(target).map(|(i, _)| i);
                if func.is_some_and(|f| self.global_funcs[f]) {
                    if bt.regs[bt.frame] & ARGS != 0 {
                        return Err(Fallback);
                    }
                    bt.clear(0);
                } else {
                    // Back out of the callee into the caller: r1-r5 were
                    // the arguments.
                    if bt.regs[bt.frame] & !ARGS != 0 || bt.stack[bt.frame] != 0 {
                        return Err(Fallback);
                    }
                    let args = bt.regs[bt.frame] & ARGS;
                    bt.regs[bt.frame] = 0;
                    bt.exit()?;
                    bt.regs[bt.frame] |= args;
                }
            }
            Insn::Call(CallTarget::Helper(id))
                if self.calls_callback[idx] && subseq.is_some_and(|s| s != idx + 1) =>
            {
                let _ = id;
                // Back out of a callback into its helper call.
                if bt.regs[bt.frame] & !ARGS != 0 || bt.stack[bt.frame] != 0 {
                    return Err(Fallback);
                }
                bt.regs[bt.frame] = 0;
                bt.exit()?;
            }
            Insn::Call(_) | Insn::Callx { .. } => {
                bt.clear(0);
                if bt.regs[bt.frame] & ARGS != 0 {
                    return Err(Fallback);
                }
            }
            Insn::Exit => {
                let from_call = subseq
                    .and_then(|s| s.checked_sub(1))
                    .is_some_and(|c| matches!(self.insns[c], Insn::Call(CallTarget::Local(_))));
                let r0 = from_call && bt.reg(0);
                if from_call && bt.regs[bt.frame] & ARGS != 0 {
                    return Err(Fallback);
                }
                bt.clear(0);
                bt.enter()?;
                if r0 {
                    bt.set(0);
                }
            }
            Insn::Jmp { dst, src, .. } => {
                if let Src::Reg(s) = src {
                    if !bt.reg(dst.num()) && !bt.reg(s.num()) {
                        bt.sync_linked(h);
                        return Ok(());
                    }
                    if !h.src_stack {
                        bt.set(s.num());
                    }
                    if !h.dst_stack {
                        bt.set(dst.num());
                    }
                }
            }
            Insn::Ja { .. } | Insn::MayGoto { .. } => {}
            Insn::Lddw { dst, .. } => {
                bt.clear(dst.num());
                return Ok(());
            }
            Insn::LdAbs { .. } | Insn::LdInd { .. } => {
                if bt.reg(0) {
                    return Err(Fallback);
                }
                if subseq.is_some_and(|s| s != idx + 1) {
                    bt.enter()?;
                }
                return Ok(());
            }
            Insn::LddwHigh => {}
        }
        bt.sync_linked(h);
        Ok(())
    }

    /// Every scalar along the path becomes precise (the fallback).
    pub(crate) fn mark_all_scalars_precise(&mut self) {
        let mut p = self.cur.parent;
        while let Some(ci) = p {
            if let Some(st) = self.checkpoints[ci].state.as_mut() {
                st.for_each_reg(|r| {
                    if r.ty == RegType::Scalar {
                        r.precise = true;
                    }
                });
            }
            p = self.checkpoints[ci].parent;
        }
    }

    /// After pruning against `old`: what `old` needed precise, the current
    /// path needs precise too (`propagate_precision`).
    /// `live[frame]`: the registers and stack slots later code may read.
    pub(crate) fn propagate_precision(&mut self, old: &State, live: &[(u16, u64)]) {
        let mut bt = Bt {
            frame: self.cur.curframe(),
            ..Bt::default()
        };
        for (fr, f) in old.frames.iter().enumerate() {
            for (r, reg) in f.regs.iter().enumerate().take(10) {
                if reg.ty == RegType::Scalar && reg.precise && live[fr].0 & (1 << r) != 0 {
                    bt.regs[fr] |= 1 << r;
                }
            }
            for (spi, s) in f.stack.iter().enumerate() {
                if s.is_spill()
                    && s.spilled.ty == RegType::Scalar
                    && s.spilled.precise
                    && spi < 64
                    && live[fr].1 & (1 << spi) != 0
                {
                    bt.set_slot(fr, spi);
                }
            }
        }
        self.backtrack(bt);
    }
}

/// Mark the traced registers and slots precise in a saved state; those
/// already precise (or not scalars) need no further tracing.
fn mark_in_state(st: &mut State, bt: &mut Bt) {
    for fr in 0..=bt.frame.min(st.frames.len().saturating_sub(1)) {
        let f = &mut st.frames[fr];
        for r in 0..10u8 {
            if bt.regs[fr] & (1 << r) == 0 {
                continue;
            }
            let reg: &mut Reg = &mut f.regs[r as usize];
            if reg.ty != RegType::Scalar || reg.precise {
                bt.regs[fr] &= !(1 << r);
            } else {
                reg.precise = true;
            }
        }
        for spi in 0..64usize {
            if !bt.slot(fr, spi) {
                continue;
            }
            match f.stack.get_mut(spi) {
                Some(s) if s.is_spilled_scalar() => {
                    if s.spilled.precise {
                        bt.clear_slot(fr, spi);
                    } else {
                        s.spilled.precise = true;
                    }
                }
                _ => bt.clear_slot(fr, spi),
            }
        }
    }
}
