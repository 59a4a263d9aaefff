//! Loads and stores (`ldx`, `ldxs`, `st`, `stx`) and the legacy packet loads.

use super::Translator;
use crate::isa::{Reg, Size};
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

    /// `ldabs`/`ldind`: the runtime reads the run's packet; a read outside
    /// it ends the program with 0, a run without a packet faults.
    pub(super) fn packet_load(&mut self, pc: usize, size: Size, src: Option<Reg>, imm: i32) {
        let offset = match src {
            Some(r) => {
                let v = self.get(r);
                self.b.ins().iadd_imm_s(v, imm as i64)
            }
            None => self.b.ins().iconst(types::I64, imm as i64),
        };
        let r0 = self.env.load_packet(self.b, pc, size, offset);
        self.set(Reg::R0, r0);
    }
}
