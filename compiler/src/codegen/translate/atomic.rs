//! Atomic read-modify-write instructions, as real atomic instructions.

use super::Translator;
use crate::isa::{AtomicOp, Reg, Size};
use cranelift_codegen::ir::{types, AtomicRmwOp, InstBuilder, Value};
use cranelift_module::Module;

impl<M: Module> Translator<'_, '_, '_, M> {
    fn narrow(&mut self, size: Size, v: Value) -> Value {
        if size == Size::W {
            self.b.ins().ireduce(types::I32, v)
        } else {
            v
        }
    }

    fn widen(&mut self, size: Size, v: Value) -> Value {
        if size == Size::W {
            self.b.ins().uextend(types::I64, v)
        } else {
            v
        }
    }

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
        let addr = self.b.ins().iadd_imm_s(base, off as i64);
        let value = self.get(src);
        let value = self.narrow(size, value);
        if op == AtomicOp::CmpXchg {
            let expected = self.get(Reg::R0);
            let expected = self.narrow(size, expected);
            let old = self.env.atomic_cas(self.b, pc, addr, expected, value);
            let old = self.widen(size, old);
            return self.set(Reg::R0, old);
        }
        let rmw = match op {
            AtomicOp::Add => AtomicRmwOp::Add,
            AtomicOp::Or => AtomicRmwOp::Or,
            AtomicOp::And => AtomicRmwOp::And,
            AtomicOp::Xor => AtomicRmwOp::Xor,
            AtomicOp::Xchg | AtomicOp::CmpXchg => AtomicRmwOp::Xchg,
        };
        let old = self.env.atomic_rmw(self.b, pc, rmw, addr, value);
        if fetch {
            let old = self.widen(size, old);
            self.set(src, old);
        }
    }
}
