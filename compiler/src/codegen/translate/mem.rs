//! Loads and stores (`ldx`, `ldxs`, `st`, `stx`) and the legacy packet loads.

use super::Translator;
use crate::isa::{Reg, Size};
use bpfc_runtime::abi::FaultCode;
use cranelift_codegen::ir::{types, InstBuilder};
use cranelift_module::Module;

impl<M: Module> Translator<'_, '_, '_, M> {
    pub(super) fn ldx(&mut self, pc: usize, size: Size, sx: bool, dst: Reg, src: Reg, off: i16) {
        let base = self.get(src);
        let v = self.env.load(self.b, pc, size, sx, base, off);
        self.set(dst, v);
    }

    pub(super) fn st(&mut self, pc: usize, size: Size, dst: Reg, off: i16, imm: i32) {
        let base = self.get(dst);
        // The immediate is sign-extended to 64 bits; the store keeps its low bytes.
        let v = self.b.ins().iconst(types::I64, imm as i64);
        self.env.store(self.b, pc, size, base, off, v);
    }

    pub(super) fn stx(&mut self, pc: usize, size: Size, dst: Reg, src: Reg, off: i16) {
        let base = self.get(dst);
        let v = self.get(src);
        self.env.store(self.b, pc, size, base, off, v);
    }

    /// `ldabs`/`ldind` need a packet program type, which no environment
    /// provides yet: they fault when reached.
    pub(super) fn packet_load(&mut self, pc: usize) {
        self.env.fault(self.b, FaultCode::PacketLoad, pc, 0);
    }
}
