//! Jumps and exit.

use super::Translator;
use crate::isa::{Insn, JmpCond};
use cranelift_codegen::ir::{condcodes::IntCC, InstBuilder};
use cranelift_module::Module;

fn int_cc(cond: JmpCond) -> IntCC {
    match cond {
        JmpCond::Eq => IntCC::Equal,
        JmpCond::Ne => IntCC::NotEqual,
        JmpCond::Gt => IntCC::UnsignedGreaterThan,
        JmpCond::Ge => IntCC::UnsignedGreaterThanOrEqual,
        JmpCond::Lt => IntCC::UnsignedLessThan,
        JmpCond::Le => IntCC::UnsignedLessThanOrEqual,
        JmpCond::Sgt => IntCC::SignedGreaterThan,
        JmpCond::Sge => IntCC::SignedGreaterThanOrEqual,
        JmpCond::Slt => IntCC::SignedLessThan,
        JmpCond::Sle => IntCC::SignedLessThanOrEqual,
        // Handled separately (a bit test, not a comparison).
        JmpCond::Set => IntCC::NotEqual,
    }
}

impl<M: Module> Translator<'_, '_, '_, M> {
    pub(super) fn jmp(&mut self, pc: usize, insn: Insn) {
        match insn {
            Insn::Exit => {
                let r0 = self.get(crate::isa::Reg::R0);
                self.b.ins().return_(&[r0]);
            }
            Insn::Ja { .. } => {
                let target = self.block(insn.branch_target(pc).unwrap_or_default() as usize);
                self.b.ins().jump(target, &[]);
            }
            Insn::Jmp {
                width,
                cond,
                dst,
                src,
                ..
            } => {
                if let Some(tree) = self.switches.get(&pc).cloned() {
                    return self.emit_switch(&tree);
                }
                let a = self.dst_value(width, dst);
                let b = self.operand(width, src);
                let taken = match cond {
                    JmpCond::Set => {
                        let bits = self.b.ins().band(a, b);
                        self.b.ins().icmp_imm_s(IntCC::NotEqual, bits, 0)
                    }
                    _ => self.b.ins().icmp(int_cc(cond), a, b),
                };
                if let Some(&last) = self.hammocks.get(&pc) {
                    return self.begin_hammock(self.insns, pc, last, taken);
                }
                let target = self.block(insn.branch_target(pc).unwrap_or_default() as usize);
                let next = self.block(pc + 1);
                self.b.ins().brif(taken, target, &[], next, &[]);
            }
            Insn::MayGoto { .. } => {
                // Jump once the budget is spent; otherwise spend one unit.
                let left = self.b.use_var(self.may_goto);
                let spent = self.b.ins().icmp_imm_s(IntCC::Equal, left, 0);
                let less = self.b.ins().iadd_imm_s(left, -1);
                let after = self.b.ins().select(spent, left, less);
                self.b.def_var(self.may_goto, after);
                let target = self.block(insn.branch_target(pc).unwrap_or_default() as usize);
                let next = self.block(pc + 1);
                self.b.ins().brif(spent, target, &[], next, &[]);
            }
            _ => unreachable!("jmp() is only called for jumps and exit"),
        }
    }
}
