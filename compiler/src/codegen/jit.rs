//! In-process execution: the program compiled into a `JITModule` for the
//! host, helpers bound to the runtime's functions, and the one place where
//! generated code is entered.

use super::{
    compile_program, fault, target, CodegenError, CodegenOptions, Dumps, HelperSet, IsaUse,
};
use crate::isa::{Endian, Insn};
use bpfc_runtime::abi::{helper_symbol, Fault, FaultCode};
use bpfc_runtime::{ExecContext, HelperTable};
use cranelift_jit::{JITBuilder, JITModule};
use thiserror::Error;

/// Why a JIT-compiled run stopped without a return value.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum JitError {
    /// The program faulted; `detail` is `bpfc_fault.detail` and `message`
    /// says what happened as the interpreter would.
    #[error("instruction {pc}: {message}")]
    Fault {
        pc: usize,
        code: FaultCode,
        detail: u64,
        message: String,
    },
    #[error("helper failed: {message}")]
    Helper { message: String },
    #[error("instruction {pc}: unknown fault code {code}")]
    UnknownFault { pc: usize, code: u32 },
}

type EntryFn = unsafe extern "C" fn(u64, u64, *mut ExecContext, *mut Fault) -> u64;

/// A program compiled for this host, ready to run any number of times.
pub struct JitProgram {
    /// Owns the code; freed on drop.
    module: Option<JITModule>,
    entry: EntryFn,
    /// The program, to word its faults.
    insns: Vec<Insn>,
}

impl JitProgram {
    /// Compile little-endian bytecode with the helpers of `helpers`.
    pub fn new(
        insns: &[Insn],
        helpers: &HelperTable,
        opts: &CodegenOptions,
    ) -> Result<JitProgram, CodegenError> {
        Self::compile(insns, Endian::Little, helpers, opts, None)
    }

    /// Compile, optionally capturing CLIF and native listings.
    pub fn compile(
        insns: &[Insn],
        endian: Endian,
        helpers: &HelperTable,
        opts: &CodegenOptions,
        dumps: Option<&mut Dumps>,
    ) -> Result<JitProgram, CodegenError> {
        let isa = target::build_isa(&target_lexicon::Triple::host(), opts, IsaUse::Jit)?;
        let mut builder = JITBuilder::with_isa(isa, cranelift_module::default_libcall_names());
        for h in helpers.iter() {
            builder.symbol(helper_symbol(h.id), h.func as *const u8);
        }
        let mut module = JITModule::new(builder);
        let set = HelperSet {
            ids: helpers.iter().map(|h| h.id).collect(),
            import_any: false,
        };
        let id = compile_program(&mut module, insns, endian, &set, opts, "bpfc_entry", dumps)?;
        module.finalize_definitions()?;
        let code = module.get_finalized_function(id);
        // SAFETY: `code` is the finalized entry compiled from `entry_signature`,
        // which is exactly `EntryFn` under the host's default C calling convention.
        let entry = unsafe { std::mem::transmute::<*const u8, EntryFn>(code) };
        Ok(JitProgram {
            module: Some(module),
            entry,
            insns: insns.to_vec(),
        })
    }

    /// Run on `mem` (r1 = its address or 0 when empty, r2 = its length).
    pub fn run(&self, mem: &mut [u8], ctx: &mut ExecContext) -> Result<u64, JitError> {
        let mut fault = Fault::default();
        let (r1, r2) = if mem.is_empty() {
            (0, 0)
        } else {
            (mem.as_mut_ptr() as u64, mem.len() as u64)
        };
        // SAFETY: the entry follows the documented ABI: it reads and writes only
        // its own frames, `mem` (live and exclusively borrowed for the call),
        // `ctx` through helpers, and `fault`. Unchecked code trusts the program
        // to stay inside those regions (a verified program); checked code
        // enforces it and reports a fault instead.
        let r0 = unsafe { (self.entry)(r1, r2, ctx, &mut fault) };
        if fault.code != 0 {
            let pc = fault.pc as usize;
            return Err(match FaultCode::from_raw(fault.code) {
                Some(code) => JitError::Fault {
                    pc,
                    code,
                    detail: fault.detail,
                    message: fault::describe(&fault, self.insns.get(pc)),
                },
                None => JitError::UnknownFault {
                    pc,
                    code: fault.code,
                },
            });
        }
        if let Some(message) = ctx.fault.take() {
            return Err(JitError::Helper { message });
        }
        Ok(r0)
    }
}

impl Drop for JitProgram {
    fn drop(&mut self) {
        if let Some(module) = self.module.take() {
            // SAFETY: `entry` points into this module and is dropped with it;
            // no other copy of the function pointer escapes `JitProgram`.
            unsafe { module.free_memory() };
        }
    }
}
