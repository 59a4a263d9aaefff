//! Loads and stores (`ldx`, `ldxs`, `st`, `stx`) and the legacy packet loads.

use super::Translator;
use crate::codegen::env::mem_type;
use crate::isa::{Reg, Size};
use bpfc_runtime::abi::FaultCode;
use cranelift_codegen::ir::{types, InstBuilder, Value};
use cranelift_module::Module;

impl<M: Module> Translator<'_, '_, '_, M> {
    fn address(&mut self, base: Reg, off: i16) -> Value {
        let base = self.get(base);
        self.b.ins().iadd_imm_s(base, off as i64)
    }

    pub(super) fn ldx(&mut self, pc: usize, size: Size, sx: bool, dst: Reg, src: Reg, off: i16) {
        let addr = self.address(src, off);
        let v = self.env.load(self.b, pc, size, addr);
        let v = match (size, sx) {
            (Size::DW, _) => v,
            (_, true) => self.b.ins().sextend(types::I64, v),
            (_, false) => self.b.ins().uextend(types::I64, v),
        };
        self.set(dst, v);
    }

    pub(super) fn st(&mut self, pc: usize, size: Size, dst: Reg, off: i16, imm: i32) {
        let addr = self.address(dst, off);
        // The immediate is sign-extended to 64 bits, then truncated to the access size.
        let v = self.b.ins().iconst(
            mem_type(size),
            match size {
                Size::B => imm as u8 as i64,
                Size::H => imm as u16 as i64,
                Size::W => imm as u32 as i64,
                Size::DW => imm as i64,
            },
        );
        self.env.store(self.b, pc, addr, v);
    }

    pub(super) fn stx(&mut self, pc: usize, size: Size, dst: Reg, src: Reg, off: i16) {
        let addr = self.address(dst, off);
        let v = self.get(src);
        let v = if size == Size::DW {
            v
        } else {
            self.b.ins().ireduce(mem_type(size), v)
        };
        self.env.store(self.b, pc, addr, v);
    }

    /// `ldabs`/`ldind` need a packet program type, which no environment
    /// provides yet: they fault when reached.
    pub(super) fn packet_load(&mut self, pc: usize) {
        self.env.fault(self.b, FaultCode::PacketLoad, pc);
    }
}
