//! bpfc's reference interpreter (`bpfc_compiler::interp`) as an engine.
//! "Compiling" is decoding the bytecode once; each run validates the program
//! and executes it with every memory access checked.

use super::{Compiled, Engine, Source};
use bpfc_compiler::interp;
use bpfc_compiler::isa::{decode_program, Endian, Insn};
use bpfc_runtime::{ExecContext, HelperTable};

pub struct BpfcInterp;

struct Prepared {
    insns: Vec<Insn>,
    helpers: HelperTable,
    opts: interp::Options,
}

impl Engine for BpfcInterp {
    fn compile(&self, source: &Source) -> Result<Box<dyn Compiled>, String> {
        let insns = decode_program(source.bytecode, Endian::Little).map_err(|e| e.to_string())?;
        Ok(Box::new(Prepared {
            insns,
            helpers: HelperTable::new(),
            opts: interp::Options::default(),
        }))
    }

    fn is_jit(&self) -> bool {
        false
    }

    fn may_refuse(&self) -> bool {
        false
    }
}

impl Compiled for Prepared {
    fn run(&mut self, mem: &mut [u8]) -> Result<u64, String> {
        let mut ctx = ExecContext::new();
        interp::run(&self.insns, mem, &self.helpers, &mut ctx, &self.opts)
            .map_err(|e| e.to_string())
    }
}
