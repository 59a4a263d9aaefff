//! In-process execution: a bound program compiled into a `JITModule` for
//! the host, helpers and runtime entry points bound to the runtime's
//! functions, and the one place where generated code is entered; and
//! whole objects compiled into memory in the self-describing layout
//! ([`JitObject`]), which the runtime's host layer loads and runs.

use super::{
    aot, compile_program, fault, target, CodegenError, CodegenOptions, Dumps, IsaUse, Request,
};
use crate::bind::BoundProgram;
use crate::isa::{Endian, Insn};
use bpfc_runtime::abi::{helper_symbol, Fault, FaultCode, ProgNative};
use bpfc_runtime::host::desc::ObjectNative;
use bpfc_runtime::programs::{self, TailTarget};
use bpfc_runtime::{regions, ExecContext, HelperTable};
use cranelift_jit::{JITBuilder, JITModule};
use std::sync::Arc;
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
    #[error("instruction {pc}: unknown fault code {code}")]
    UnknownFault { pc: usize, code: u32 },
}

type EntryFn = unsafe extern "C" fn(u64, u64, *mut ExecContext, *mut Fault) -> u64;

/// A program compiled for this host, ready to run any number of times,
/// from any number of threads at once.
pub struct JitProgram {
    /// Owns the code; freed on drop.
    module: Option<JITModule>,
    entry: EntryFn,
    /// What a prog array slot holding this program points at.
    native: ProgNative,
    /// The program and the runtime objects it refers to (kept alive).
    bound: BoundProgram,
    checked: bool,
    /// The program asks for host stacks: take the stack when a run starts.
    reads_stack: bool,
    /// Its callbacks' `struct bpfc_callback` addresses (timers hold them).
    callbacks: Vec<u64>,
}

// SAFETY: the compiled code is immutable once finalized and reentrant; the
// module is only touched again on drop.
unsafe impl Send for JitProgram {}
// SAFETY: as above.
unsafe impl Sync for JitProgram {}

impl JitProgram {
    /// Compile raw little-endian bytecode with the helpers of `helpers`.
    pub fn new(
        insns: &[Insn],
        helpers: &HelperTable,
        opts: &CodegenOptions,
    ) -> Result<JitProgram, CodegenError> {
        Self::compile(insns, Endian::Little, helpers, opts, None)
    }

    /// Compile raw bytecode (no maps), optionally capturing listings.
    pub fn compile(
        insns: &[Insn],
        endian: Endian,
        helpers: &HelperTable,
        opts: &CodegenOptions,
        dumps: Option<&mut Dumps>,
    ) -> Result<JitProgram, CodegenError> {
        Self::from_bound(BoundProgram::raw(insns, endian, helpers), opts, dumps)
    }

    /// Compile a bound program.
    pub fn from_bound(
        bound: BoundProgram,
        opts: &CodegenOptions,
        dumps: Option<&mut Dumps>,
    ) -> Result<JitProgram, CodegenError> {
        let isa = target::build_isa(
            &target_lexicon::Triple::host(),
            opts,
            IsaUse::Jit,
            super::has_tail_calls(&bound.insns),
        )?;
        let mut builder = JITBuilder::with_isa(isa, cranelift_module::default_libcall_names());
        for h in bound.helpers.iter() {
            builder.symbol(helper_symbol(h.id), h.func as *const u8);
        }
        runtime_symbols(&mut builder);
        let mut module = JITModule::new(builder);
        let binding = bound.binding();
        let req = Request {
            insns: &bound.insns,
            endian: bound.endian,
            binding: &binding,
            opts,
            symbol: "bpfc_entry",
            facts: bound.facts.as_ref(),
        };
        let compiled = compile_program(&mut module, &req, dumps)?;
        module.finalize_definitions()?;
        let code = module.get_finalized_function(compiled.entry);
        // SAFETY: `code` is the finalized entry compiled from `entry_signature`,
        // which is exactly `EntryFn` under the host's default C calling convention.
        let entry = unsafe { std::mem::transmute::<*const u8, EntryFn>(code) };
        let main = module.get_finalized_function(compiled.main);
        let callbacks = compiled
            .callbacks
            .iter()
            .map(|&(_, data)| module.get_finalized_data(data).0 as u64)
            .collect();
        Ok(JitProgram {
            module: Some(module),
            entry,
            native: ProgNative {
                func: main,
                prog: std::ptr::null(),
                id: programs::next_id(),
                prog_type: bound.prog_type,
            },
            reads_stack: bound.reads_stack(),
            callbacks,
            bound,
            checked: opts.checked,
        })
    }

    /// The program this was compiled from.
    pub fn bound(&self) -> &BoundProgram {
        &self.bound
    }

    /// Run with r1 = `r1` and r2 = `r2` (`mem`'s address and length for
    /// [`JitProgram::run`]); `input` is the region r1 points to, which
    /// checked code may access.
    pub fn run_raw(
        &self,
        input: &mut [u8],
        r1: u64,
        r2: u64,
        ctx: &mut ExecContext,
    ) -> Result<u64, JitError> {
        let _ = input;
        ctx.checked = self.checked;
        if self.checked {
            for m in self.bound.maps.iter().flatten() {
                ctx.regions.add_map(m);
            }
        }
        // SAFETY: the entry follows the documented ABI: it reads and writes only
        // its own frames, the input (live and exclusively borrowed for the
        // call), map memory the program was bound to (kept alive by `bound`),
        // `ctx` through helpers, and `fault`. Unchecked code trusts the program
        // to stay inside those regions (a verified program); checked code
        // enforces it and reports a fault instead.
        // The call's inputs and its fault record in one place both closures
        // refer to (one pointer each: nothing to copy on the way in or out).
        let call = (self.entry, r1, r2, std::cell::Cell::new(Fault::default()));
        let r0 = bpfc_runtime::context::run_section(
            self.reads_stack,
            ctx,
            |ctx| unsafe { (call.0)(call.1, call.2, ctx, call.3.as_ptr()) },
            |_| call.3.get().code != 0,
        );
        let fault = call.3.get();
        if fault.code != 0 {
            let pc = fault.pc as usize;
            return Err(match FaultCode::from_raw(fault.code) {
                Some(code) => {
                    let mut message = fault::describe(&fault, self.bound.insns.get(pc));
                    if code == FaultCode::HelperFault {
                        if let Some(m) = ctx.fault.take() {
                            message = format!("{message}: {}", m.escape_debug());
                        }
                    }
                    JitError::Fault {
                        pc,
                        code,
                        detail: fault.detail,
                        message,
                    }
                }
                None => JitError::UnknownFault {
                    pc,
                    code: fault.code,
                },
            });
        }
        Ok(r0)
    }

    /// Run on `mem` (r1 = its address or 0 when empty, r2 = its length).
    pub fn run(&self, mem: &mut [u8], ctx: &mut ExecContext) -> Result<u64, JitError> {
        let (r1, r2) = if mem.is_empty() {
            (0, 0)
        } else {
            (mem.as_mut_ptr() as u64, mem.len() as u64)
        };
        self.run_raw(mem, r1, r2, ctx)
    }
}

impl TailTarget for JitProgram {
    fn native(&self) -> &ProgNative {
        &self.native
    }

    fn name(&self) -> &str {
        &self.bound.name
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn into_any_arc(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

/// The runtime's entry points compiled code calls by symbol.
fn runtime_symbols(builder: &mut JITBuilder) {
    builder.symbol(
        regions::CHECK_ACCESS_SYMBOL,
        regions::check_access as *const u8,
    );
    builder.symbol(
        bpfc_runtime::net::ldabs::LOAD_PACKET_SYMBOL,
        bpfc_runtime::net::ldabs::load_packet as *const u8,
    );
    builder.symbol(
        programs::TAIL_CALL_SYMBOL,
        programs::tail_call_target as *const u8,
    );
}

/// A whole object compiled for this host in the layout `bpfc compile`
/// writes ([`aot::emit_described`]): the descriptor, the map and helper
/// tables and the code table live in memory this owns, so the runtime
/// opens it as it opens a linked object
/// (`bpfc_runtime::host::object::HostObject::open`) and binds the code
/// through the same tables.
pub struct JitObject {
    module: Option<JITModule>,
    header: *const ObjectNative,
    /// Its callbacks' `struct bpfc_callback` addresses (timers hold them).
    callbacks: Vec<u64>,
}

// SAFETY: the code and the read-only data are immutable once finalized;
// the tables are written only by the runtime's object while it loads and
// unloads (under its own exclusive access); the module is only touched
// again on drop.
unsafe impl Send for JitObject {}
// SAFETY: as above.
unsafe impl Sync for JitObject {}

impl JitObject {
    /// Compile every program of `obj` into memory.
    pub fn compile(obj: &aot::Described) -> Result<JitObject, CodegenError> {
        let tail_calls = obj.programs.iter().any(|p| super::has_tail_calls(p.insns));
        let isa = target::build_isa(
            &target_lexicon::Triple::host(),
            obj.opts,
            IsaUse::Jit,
            tail_calls,
        )?;
        let mut builder = JITBuilder::with_isa(isa, cranelift_module::default_libcall_names());
        runtime_symbols(&mut builder);
        let mut module = JITModule::new(builder);
        let emitted = aot::emit_described(&mut module, obj)?;
        module.finalize_definitions()?;
        let header = module
            .get_finalized_data(emitted.header)
            .0
            .cast::<ObjectNative>();
        let callbacks = emitted
            .compiled
            .iter()
            .flat_map(|c| &c.callbacks)
            .map(|&(_, data)| module.get_finalized_data(data).0 as u64)
            .collect();
        Ok(JitObject {
            module: Some(module),
            header,
            callbacks,
        })
    }

    /// The object's descriptor (valid while `self` lives).
    pub fn descriptor(&self) -> *const ObjectNative {
        self.header
    }
}

impl Drop for JitObject {
    fn drop(&mut self) {
        bpfc_runtime::helpers::timers::forget_callbacks(&self.callbacks);
        if let Some(module) = self.module.take() {
            // SAFETY: whoever ran the code (the runtime's object and its
            // programs) holds this object alive; it is dropped after them.
            unsafe { module.free_memory() };
        }
    }
}

/// Register a compiled program so prog arrays can hold it by id.
pub fn share(prog: JitProgram) -> Arc<JitProgram> {
    let p = Arc::new(prog);
    let t: Arc<dyn TailTarget> = p.clone();
    programs::register(&t);
    p
}

impl Drop for JitProgram {
    fn drop(&mut self) {
        // Timers must not call into code about to be freed.
        bpfc_runtime::helpers::timers::forget_callbacks(&self.callbacks);
        if let Some(module) = self.module.take() {
            // SAFETY: `entry` and `native.func` point into this module and are
            // dropped with it; prog arrays hold an `Arc` of the program, so no
            // slot refers to it any more.
            unsafe { module.free_memory() };
        }
    }
}
