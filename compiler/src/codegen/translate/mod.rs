//! The instruction translator: eBPF semantics as Cranelift IR, one eBPF
//! function at a time. Registers are frontend variables, every jump target
//! (and every instruction after a branch) starts a block, and each
//! instruction carries its pc as source location. Runtime matters go through
//! the [`Env`]; files below split the work by instruction class.

mod alu;
mod atomic;
mod call;
mod jmp;
mod mem;
mod select;
mod switch;

use super::env::Env;
use super::CodegenError;
use crate::isa::{Insn, Reg, Src, Width};
use cranelift_codegen::ir::{types, Block, InstBuilder, SourceLoc, Value};
use cranelift_frontend::{FunctionBuilder, Variable};
use cranelift_module::Module;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

/// Per-function translation state.
pub(crate) struct Translator<'a, 'b, 'm, M: Module> {
    b: &'a mut FunctionBuilder<'b>,
    env: &'a mut Env<'m, M>,
    regs: [Variable; Reg::COUNT],
    /// For each register last written by a 32-bit operation in the current
    /// block, that operation's 32-bit result (the register holds its zero
    /// extension), so the next 32-bit use needs no `ireduce`.
    narrow: [Option<Value>; Reg::COUNT],
    /// For each register known (in the current block) to hold a map loaded
    /// by `lddw`, the map's index: map helpers can then be specialised.
    maps: [Option<usize>; Reg::COUNT],
    blocks: BTreeMap<usize, Block>,
    /// Conditional jumps turned into selects, with the last slot each skips.
    hammocks: BTreeMap<usize, usize>,
    /// The converted jump whose skipped instructions are being translated.
    hammock: Option<select::Hammock>,
    /// Recovered switches by the slot of their root jump.
    switches: BTreeMap<usize, switch::SwitchTree>,
    insns: &'a [Insn],
    /// This call's remaining `may_goto` budget.
    may_goto: Variable,
}

/// Translate the eBPF function occupying `range` of `insns` into `b`.
pub(crate) fn translate_function<M: Module>(
    b: &mut FunctionBuilder,
    env: &mut Env<'_, M>,
    insns: &[Insn],
    range: Range<usize>,
) -> Result<(), CodegenError> {
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let params = b.block_params(entry).to_vec();
    let regs = std::array::from_fn(|_| b.declare_var(types::I64));
    let zero = b.ins().iconst(types::I64, 0);
    for (i, var) in regs.iter().enumerate() {
        let v = match i {
            1..=5 => params[i - 1],
            10 => params[5],
            _ => zero,
        };
        b.def_var(*var, v);
    }
    let may_goto = b.declare_var(types::I64);
    let budget = b
        .ins()
        .iconst(types::I64, crate::isa::MAY_GOTO_BUDGET as i64);
    b.def_var(may_goto, budget);
    env.enter_function(b, params[6], params[5]);

    b.seal_block(entry);

    // Each block is sealed as soon as the last instruction that can branch
    // or fall into it has been translated, so the SSA builder resolves
    // variables directly instead of through placeholder parameters.
    let switches = switch::find(insns, &range);
    // Every slot of a recovered switch, with the root whose table replaces it.
    let switch_root: BTreeMap<usize, usize> = switches
        .iter()
        .flat_map(|(&root, tree)| {
            std::iter::once(root)
                .chain(tree.nodes.iter().copied())
                .map(move |pc| (pc, root))
        })
        .collect();
    let in_switch: BTreeSet<usize> = switch_root.keys().copied().collect();
    let hammocks = select::find(insns, &range, &in_switch);
    let starts = block_starts(insns, &range, &hammocks, &switch_root);
    let mut blocks = BTreeMap::new();
    for &(pc, _) in &starts {
        blocks.insert(pc, b.create_block());
    }
    let mut unsealed: Vec<(usize, Block)> = starts
        .iter()
        .map(|&(pc, last_pred)| (last_pred, blocks[&pc]))
        .collect();
    // Latest first, so the earliest is popped first.
    unsealed.sort_unstable_by_key(|&(last_pred, _)| std::cmp::Reverse(last_pred));
    let mut t = Translator {
        b,
        env,
        regs,
        narrow: [None; Reg::COUNT],
        maps: [None; Reg::COUNT],
        blocks,
        hammocks,
        hammock: None,
        switches,
        insns,
        may_goto,
    };
    let mut open = true;
    for pc in range.clone() {
        let insn = insns[pc];
        if insn == Insn::LddwHigh {
            continue;
        }
        // The inner nodes of a recovered switch: its table replaces them.
        if in_switch.contains(&pc) && !t.switches.contains_key(&pc) {
            open = false;
            continue;
        }
        let block_start = t.blocks.get(&pc).copied();
        if let Some(block) = block_start {
            if open {
                t.b.ins().jump(block, &[]);
            }
            t.b.switch_to_block(block);
            t.narrow = [None; Reg::COUNT];
            t.maps = [None; Reg::COUNT];
        }
        while let Some(&(last_pred, block)) = unsealed.last() {
            if last_pred >= pc {
                break;
            }
            t.b.seal_block(block);
            unsealed.pop();
        }
        t.b.set_srcloc(SourceLoc::new(pc as u32));
        if t.env.counts_insns() && (block_start.is_some() || pc == range.start) {
            let end = t
                .blocks
                .range(pc + 1..)
                .next()
                .map_or(range.end, |(&s, _)| s);
            let count = insns[pc..end]
                .iter()
                .filter(|i| **i != Insn::LddwHigh)
                .count();
            t.env.charge(t.b, pc, count);
        }
        t.insn(pc, insn)?;
        t.end_hammock_at(pc);
        open = t.hammock.is_some() || !insn.is_jump_or_exit();
    }
    if open {
        // Unreachable: `functions` and `validate` ensure every function ends in exit or ja.
        let zero = t.b.ins().iconst(types::I64, 0);
        t.b.ins().return_(&[zero]);
    }
    Ok(())
}

/// Slots that start a block (jump targets and the instruction after every
/// jump or exit, but for jumps converted to selects), each with the last
/// slot that can reach it: the latest jump to it, or the slot before it for
/// the fall-through. The edges of a recovered switch's inner nodes leave
/// from its root's table, so they count from the root when it comes later.
fn block_starts(
    insns: &[Insn],
    range: &Range<usize>,
    hammocks: &BTreeMap<usize, usize>,
    switch_root: &BTreeMap<usize, usize>,
) -> Vec<(usize, usize)> {
    let mut starts: BTreeMap<usize, usize> = BTreeMap::new();
    let mut reach = |start: usize, from: usize| {
        let last = starts.entry(start).or_insert(from);
        *last = (*last).max(from);
    };
    for pc in range.clone() {
        let insn = &insns[pc];
        if hammocks.contains_key(&pc) {
            continue;
        }
        if insn.is_jump_or_exit() {
            let from = switch_root.get(&pc).map_or(pc, |&root| root.max(pc));
            if let Some(t) = insn.branch_target(pc) {
                let t = t as usize;
                reach(t, from);
                if t > range.start {
                    reach(t, t - 1);
                }
            }
            if pc + 1 < range.end {
                reach(pc + 1, from);
            }
        }
    }
    starts.into_iter().collect()
}

impl<M: Module> Translator<'_, '_, '_, M> {
    fn get(&mut self, r: Reg) -> Value {
        self.b.use_var(self.regs[r.index()])
    }

    fn set(&mut self, r: Reg, v: Value) {
        self.b.def_var(self.regs[r.index()], v);
        self.narrow[r.index()] = None;
        self.maps[r.index()] = None;
    }

    /// The low 32 bits of `r`.
    fn get32(&mut self, r: Reg) -> Value {
        match self.narrow[r.index()] {
            Some(v) => v,
            None => {
                let v = self.get(r);
                self.b.ins().ireduce(types::I32, v)
            }
        }
    }

    /// The second operand at the operation width (immediates sign-extended).
    fn operand(&mut self, width: Width, src: Src) -> Value {
        match (src, width) {
            (Src::Imm(imm), Width::W64) => self.b.ins().iconst(types::I64, imm as i64),
            (Src::Imm(imm), Width::W32) => self.b.ins().iconst(types::I32, imm as u32 as i64),
            (Src::Reg(r), Width::W64) => self.get(r),
            (Src::Reg(r), Width::W32) => self.get32(r),
        }
    }

    /// `dst` at the operation width.
    fn dst_value(&mut self, width: Width, dst: Reg) -> Value {
        match width {
            Width::W64 => self.get(dst),
            Width::W32 => self.get32(dst),
        }
    }

    /// Write an operation-width result, zero-extending 32-bit ones.
    fn set_result(&mut self, width: Width, dst: Reg, v: Value) {
        match width {
            Width::W64 => self.set(dst, v),
            Width::W32 => {
                let wide = self.b.ins().uextend(types::I64, v);
                self.set(dst, wide);
                self.narrow[dst.index()] = Some(v);
            }
        }
    }

    fn block(&self, pc: usize) -> Block {
        self.blocks[&pc]
    }

    fn insn(&mut self, pc: usize, insn: Insn) -> Result<(), CodegenError> {
        match insn {
            Insn::Alu {
                width,
                op,
                dst,
                src,
            } => self.alu(width, op, dst, src),
            Insn::Neg { width, dst } => self.neg(width, dst),
            Insn::End { order, bits, dst } => self.end(order, bits, dst),
            Insn::Lddw { dst, src, imm } => {
                let v = self.env.lddw(self.b, pc, src, imm);
                self.set(dst, v);
                if src == crate::isa::LddwSrc::MapIdx {
                    self.maps[dst.index()] = Some(imm as u32 as usize);
                }
            }
            Insn::LddwHigh => {}
            Insn::Ja { .. } | Insn::Jmp { .. } | Insn::MayGoto { .. } | Insn::Exit => {
                self.jmp(pc, insn)
            }
            Insn::Call(target) => return self.call(pc, target),
            Insn::Callx { reg } => self.callx(pc, reg),
            Insn::Ldx {
                size,
                sx,
                dst,
                src,
                off,
            } => self.ldx(pc, size, sx, dst, src, off),
            Insn::St {
                size,
                dst,
                off,
                imm,
            } => self.st(pc, size, dst, off, imm),
            Insn::Stx {
                size,
                dst,
                src,
                off,
            } => self.stx(pc, size, dst, src, off),
            Insn::Atomic {
                size,
                op,
                fetch,
                dst,
                src,
                off,
            } => self.atomic(pc, size, op, fetch, dst, src, off),
            Insn::LdAbs { size, imm } => self.packet_load(pc, size, None, imm),
            Insn::LdInd { size, src, imm } => self.packet_load(pc, size, Some(src), imm),
        }
        Ok(())
    }
}
