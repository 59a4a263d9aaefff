//! bpfc's Cranelift JIT (`bpfc_compiler::codegen::jit`) as an engine.
//! Compile time covers decoding the bytecode and `JitProgram::new`
//! (lowering, Cranelift compilation and finalizing the code in memory).

use super::{Compiled, Engine, Source};
use bpfc_compiler::codegen::jit::JitProgram;
use bpfc_compiler::codegen::{CodegenOptions, OptLevel};
use bpfc_compiler::isa::{decode_program, Endian};
use bpfc_runtime::{ExecContext, HelperTable};

pub struct BpfcJit {
    helpers: HelperTable,
    opts: CodegenOptions,
}

impl BpfcJit {
    /// The JIT at `opt_level` (`Speed` is `bpfc run`'s default).
    pub fn new(opt_level: OptLevel) -> BpfcJit {
        BpfcJit {
            helpers: HelperTable::new(),
            opts: CodegenOptions {
                opt_level,
                ..Default::default()
            },
        }
    }
}

struct Prepared {
    prog: JitProgram,
    ctx: ExecContext,
}

impl Engine for BpfcJit {
    fn compile(&self, source: &Source) -> Result<Box<dyn Compiled>, String> {
        let insns = decode_program(source.bytecode, Endian::Little).map_err(|e| e.to_string())?;
        let prog = JitProgram::new(&insns, &self.helpers, &self.opts).map_err(|e| e.to_string())?;
        Ok(Box::new(Prepared {
            prog,
            ctx: ExecContext::new(),
        }))
    }

    fn is_jit(&self) -> bool {
        true
    }

    fn may_refuse(&self) -> bool {
        false
    }
}

impl Compiled for Prepared {
    fn run(&mut self, mem: &mut [u8]) -> Result<u64, String> {
        self.prog.run(mem, &mut self.ctx).map_err(|e| e.to_string())
    }
}
