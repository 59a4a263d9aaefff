//! Atomic read-modify-write instructions, as real atomic instructions.

use super::Translator;
use crate::isa::{AtomicOp, Reg, Size};
use cranelift_codegen::ir::AtomicRmwOp;
use cranelift_module::Module;

impl<M: Module> Translator<'_, '_, '_, M> {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn atomic(
        &mut self,
        pc: usize,
        size: Size,
        op: AtomicOp,
        fetch: bool,
        dst: Reg,
        src: Reg,
        off: i16,
    ) {
        let base = self.get(dst);
        let value = self.get(src);
        if op == AtomicOp::CmpXchg {
            let expected = self.get(Reg::R0);
            let old = self
                .env
                .atomic_cas(self.b, pc, size, base, off, expected, value);
            return self.set(Reg::R0, old);
        }
        let rmw = match op {
            AtomicOp::Add => AtomicRmwOp::Add,
            AtomicOp::Or => AtomicRmwOp::Or,
            AtomicOp::And => AtomicRmwOp::And,
            AtomicOp::Xor => AtomicRmwOp::Xor,
            AtomicOp::Xchg | AtomicOp::CmpXchg => AtomicRmwOp::Xchg,
        };
        let old = self.env.atomic_rmw(self.b, pc, size, rmw, base, off, value);
        if fetch {
            self.set(src, old);
        }
    }
}
