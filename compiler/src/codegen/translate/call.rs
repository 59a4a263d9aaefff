//! Calls: helpers, local functions and `callx`. The environment decides what
//! a call means; the translator passes r1-r5 and takes r0 back.

use super::Translator;
use crate::codegen::CodegenError;
use crate::isa::{CallTarget, Reg};
use bpfc_runtime::abi::{FaultCode, CORE_POISON_HELPER};
use cranelift_codegen::ir::{types, InstBuilder, Value};
use cranelift_module::Module;

impl<M: Module> Translator<'_, '_, '_, M> {
    fn args(&mut self) -> [Value; 5] {
        [Reg::R1, Reg::R2, Reg::R3, Reg::R4, Reg::R5].map(|r| self.get(r))
    }

    pub(super) fn call(&mut self, pc: usize, target: CallTarget) -> Result<(), CodegenError> {
        let args = self.args();
        let r0 = match target {
            CallTarget::Helper(CORE_POISON_HELPER) => {
                self.env.fault(self.b, FaultCode::CoreRelocation, pc, 0);
                self.b.ins().iconst(types::I64, 0)
            }
            CallTarget::Helper(id) => {
                let r1_map = self.maps[Reg::R1.index()];
                match self.env.call_helper(self.b, pc, id, args, r1_map) {
                    Some(r0) => r0,
                    // A tail call without a target leaves r0 as it was.
                    None => return Ok(()),
                }
            }
            CallTarget::Local(rel) => {
                let target = (pc as i64 + 1 + rel as i64) as usize;
                self.env.call_local(self.b, pc, target, args)?
            }
            CallTarget::Kfunc { btf_id, .. } => {
                self.env
                    .fault(self.b, FaultCode::KfuncCall, pc, btf_id as u32 as u64);
                self.b.ins().iconst(types::I64, 0)
            }
        };
        self.set(Reg::R0, r0);
        Ok(())
    }

    pub(super) fn callx(&mut self, pc: usize, reg: Reg) {
        let args = self.args();
        let target = self.get(reg);
        let r0 = self.env.callx(self.b, pc, target, args);
        self.set(Reg::R0, r0);
    }
}
