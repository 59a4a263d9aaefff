//! Lowering of eBPF to Cranelift IR, and the one code generator that both the
//! JIT ([`jit`]) and object output ([`aot`]) use up to `define_function`.
//!
//! A program becomes one Cranelift function per eBPF function (the entry and
//! every local-call target) plus an exported entry wrapper that sets up the
//! run state and the frame stacks (see `docs/abi.md`). The instruction
//! translator ([`translate`]) knows ISA semantics only; everything that
//! depends on the runtime (helpers, memory checks, faults, pseudo lddw
//! sources) goes through the environment ([`env`]).

pub mod aot;
mod env;
pub mod fault;
pub mod jit;
pub mod target;
mod translate;

pub use target::{build_isa, parse_triple, IsaUse, SUPPORTED_TARGETS};

use crate::isa::{self, DecodeError, Endian, Insn};
use cranelift_codegen::ir::{self, types, AbiParam, InstBuilder, MemFlagsData, Signature};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{FuncId, Linkage, Module, ModuleError};
use std::collections::BTreeSet;
use std::ops::Range;
use thiserror::Error;

/// Optimisation level: how much compile time buys run time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OptLevel {
    /// Compile fast: no Cranelift mid-end optimisation, single-pass
    /// register allocation.
    None,
    /// Cranelift's e-graph optimisations and backtracking register allocation.
    #[default]
    Speed,
}

/// Options of one compilation.
#[derive(Clone, Debug, Default)]
pub struct CodegenOptions {
    pub opt_level: OptLevel,
    /// Check every load, store and atomic against the regions the program may
    /// touch (its frames and the input) and fault instead of accessing
    /// anything else. Off by default: unchecked code assumes a verified program.
    pub checked: bool,
    /// Stop a run with [`FaultCode::InsnLimit`](bpfc_runtime::abi::FaultCode)
    /// once it has executed this many eBPF instructions (`None`: no budget).
    /// The budget is charged a whole basic block at a time, on entry to the
    /// block, so a run that would exhaust it stops at the first instruction of
    /// that block.
    pub insn_limit: Option<u64>,
}

/// Which helpers compiled code may call.
#[derive(Clone, Debug, Default)]
pub struct HelperSet {
    /// Helper ids that are known to exist; `callx` dispatches over these.
    pub ids: BTreeSet<u32>,
    /// Import a symbol for every directly called id, known or not (object
    /// files: the linker decides). Otherwise calling an unknown id faults.
    pub import_any: bool,
}

/// Why a program could not be compiled.
#[derive(Debug, Error)]
pub enum CodegenError {
    #[error("unsupported target '{triple}' (supported: {supported})")]
    UnsupportedTarget { triple: String, supported: String },
    #[error("target ISA: {0}")]
    Isa(String),
    #[error(transparent)]
    Invalid(#[from] DecodeError),
    #[error("instruction {pc}: jump to {target} leaves the function starting at {func}")]
    JumpOutsideFunction {
        pc: usize,
        target: usize,
        func: usize,
    },
    #[error("instruction {pc}: falls through into the function starting at {next}")]
    FallsIntoFunction { pc: usize, next: usize },
    #[error("instruction {pc}: local call to {target}, where no function starts")]
    NoFunctionAt { pc: usize, target: usize },
    #[error("code generation: {0}")]
    Module(String),
}

impl From<ModuleError> for CodegenError {
    fn from(e: ModuleError) -> CodegenError {
        CodegenError::Module(format!("{e:?}"))
    }
}

/// Listings requested from a compilation.
#[derive(Clone, Debug, Default)]
pub struct Dumps {
    /// Cranelift IR of each function.
    pub clif: Option<String>,
    /// Native code of each function, for a disassembler.
    pub native: Option<Vec<NativeCode>>,
}

/// The machine code of one compiled function and where each part came from.
#[derive(Clone, Debug)]
pub struct NativeCode {
    /// "function at instruction N" or "entry SYMBOL".
    pub what: String,
    /// The code bytes (relocations not applied: calls show offset 0).
    pub bytes: Vec<u8>,
    /// Byte ranges of `bytes` and the eBPF pc each was lowered from, in
    /// address order. Bytes outside every range (prologue, epilogue, entry
    /// wrapper) belong to no instruction.
    pub pcs: Vec<(Range<u32>, usize)>,
}

/// The eBPF functions of a program: ranges of slots, the entry first, as
/// [`crate::analysis`] partitions them. Every jump must stay inside its
/// function and no function may fall into the next.
pub(crate) fn functions(insns: &[Insn]) -> Result<Vec<Range<usize>>, CodegenError> {
    use crate::analysis::CfgError;
    match crate::analysis::analyze(insns) {
        Ok(cfg) => Ok(cfg.functions.iter().map(|f| f.range()).collect()),
        Err(CfgError::JumpOutOfFunction { pc, target, func }) => {
            Err(CodegenError::JumpOutsideFunction { pc, target, func })
        }
        Err(CfgError::FallsThrough {
            pc,
            next: Some(next),
        }) => Err(CodegenError::FallsIntoFunction { pc, next }),
        // `isa::validate` has ruled out the others.
        Err(e) => Err(CodegenError::Module(format!("instruction {}: {e}", e.pc()))),
    }
}

/// Signature of the exported entry: `(r1, r2, exec_ctx, fault) -> r0`.
pub(crate) fn entry_signature<M: Module>(module: &M) -> Signature {
    let ptr = module.target_config().pointer_type();
    let mut sig = module.make_signature();
    sig.params
        .extend([AbiParam::new(types::I64), AbiParam::new(types::I64)]);
    sig.params.extend([AbiParam::new(ptr), AbiParam::new(ptr)]);
    sig.returns.push(AbiParam::new(types::I64));
    sig
}

/// Signature of an eBPF function: `(r1..r5, fp, state) -> r0`.
pub(crate) fn internal_signature<M: Module>(module: &M) -> Signature {
    let ptr = module.target_config().pointer_type();
    let mut sig = module.make_signature();
    sig.params.extend((0..6).map(|_| AbiParam::new(types::I64)));
    sig.params.push(AbiParam::new(ptr));
    sig.returns.push(AbiParam::new(types::I64));
    sig
}

/// Signature of a helper: `(r1..r5, exec_ctx) -> r0`.
pub(crate) fn helper_signature<M: Module>(module: &M) -> Signature {
    let ptr = module.target_config().pointer_type();
    let mut sig = module.make_signature();
    sig.params.extend((0..5).map(|_| AbiParam::new(types::I64)));
    sig.params.push(AbiParam::new(ptr));
    sig.returns.push(AbiParam::new(types::I64));
    sig
}

/// Compile `insns` into `module`: one function per eBPF function and the
/// exported entry `symbol`. Returns the entry's id. Shared by JIT and AOT.
pub fn compile_program<M: Module>(
    module: &mut M,
    insns: &[Insn],
    endian: Endian,
    helpers: &HelperSet,
    opts: &CodegenOptions,
    symbol: &str,
    dumps: Option<&mut Dumps>,
) -> Result<FuncId, CodegenError> {
    isa::validate(insns)?;
    let funcs = functions(insns)?;
    let internal_sig = internal_signature(module);
    let mut func_ids = Vec::with_capacity(funcs.len());
    for range in &funcs {
        let name = format!("{symbol}__f{}", range.start);
        func_ids.push((
            range.start,
            module.declare_function(&name, Linkage::Local, &internal_sig)?,
        ));
    }
    let entry = module.declare_function(symbol, Linkage::Export, &entry_signature(module))?;
    let program = ProgramParts {
        insns,
        endian,
        helpers,
        opts,
        symbol,
        funcs: &funcs,
        func_ids: &func_ids,
        internal_sig,
        entry,
    };
    let (mut ctx, mut fb_ctx) = contexts::take();
    module.clear_context(&mut ctx);
    let result = program.define_all(module, &mut ctx, &mut fb_ctx, dumps);
    contexts::give_back(ctx, fb_ctx);
    result.map(|()| entry)
}

/// What `compile_program` has declared, ready to be defined.
struct ProgramParts<'a> {
    insns: &'a [Insn],
    endian: Endian,
    helpers: &'a HelperSet,
    opts: &'a CodegenOptions,
    symbol: &'a str,
    funcs: &'a [Range<usize>],
    func_ids: &'a [(usize, FuncId)],
    internal_sig: Signature,
    entry: FuncId,
}

impl ProgramParts<'_> {
    /// Translate and define every eBPF function, then the entry wrapper.
    fn define_all<M: Module>(
        &self,
        module: &mut M,
        ctx: &mut Context,
        fb_ctx: &mut FunctionBuilderContext,
        mut dumps: Option<&mut Dumps>,
    ) -> Result<(), CodegenError> {
        let frontend_config = module.target_config();
        for (range, &(_, id)) in self.funcs.iter().zip(self.func_ids) {
            ctx.func.signature = self.internal_sig.clone();
            ctx.func.name = ir::UserFuncName::user(0, id.as_u32());
            {
                let mut b = FunctionBuilder::new(&mut ctx.func, fb_ctx);
                let mut env =
                    env::Env::new(module, self.helpers, self.func_ids, self.opts, self.endian);
                translate::translate_function(&mut b, &mut env, self.insns, range.clone())?;
                b.seal_all_blocks();
                b.finalize(frontend_config);
            }
            define(
                module,
                id,
                ctx,
                &format!("function at instruction {}", range.start),
                dumps.as_deref_mut(),
            )?;
        }

        ctx.func.signature = entry_signature(module);
        ctx.func.name = ir::UserFuncName::user(0, self.entry.as_u32());
        {
            let mut b = FunctionBuilder::new(&mut ctx.func, fb_ctx);
            build_entry_wrapper(module, &mut b, self.func_ids[0].1, self.opts);
            b.seal_all_blocks();
            b.finalize(frontend_config);
        }
        let what = format!("entry {}", self.symbol);
        define(module, self.entry, ctx, &what, dumps)
    }
}

fn define<M: Module>(
    module: &mut M,
    id: FuncId,
    ctx: &mut Context,
    what: &str,
    dumps: Option<&mut Dumps>,
) -> Result<(), CodegenError> {
    let clif_text = dumps
        .as_ref()
        .and_then(|d| d.clif.as_ref())
        .map(|_| ctx.func.display().to_string());
    module
        .define_function(id, ctx)
        .map_err(|e| CodegenError::Module(format!("{what}: {e:?}")))?;
    if let Some(d) = dumps {
        if let (Some(out), Some(text)) = (d.clif.as_mut(), clif_text) {
            out.push_str(&format!("; {what}\n{text}\n"));
        }
        if let (Some(out), Some(code)) = (d.native.as_mut(), ctx.compiled_code()) {
            let pcs = code
                .buffer
                .get_srclocs_sorted()
                .iter()
                .filter(|l| !l.loc.is_default())
                .map(|l| (l.start..l.end, l.loc.bits() as usize))
                .collect();
            out.push(NativeCode {
                what: what.to_string(),
                bytes: code.code_buffer().to_vec(),
                pcs,
            });
        }
    }
    module.clear_context(ctx);
    Ok(())
}

/// Cranelift contexts kept per thread between compilations: they hold the
/// IR arenas and register allocator state, and reusing them saves their
/// allocation on every function.
mod contexts {
    use cranelift_codegen::Context;
    use cranelift_frontend::FunctionBuilderContext;
    use std::cell::RefCell;

    thread_local! {
        static SPARE: RefCell<Option<(Context, FunctionBuilderContext)>> =
            const { RefCell::new(None) };
    }

    /// The thread's spare contexts, or fresh ones.
    pub(super) fn take() -> (Context, FunctionBuilderContext) {
        SPARE
            .with(|s| s.borrow_mut().take())
            .unwrap_or_else(|| (Context::new(), FunctionBuilderContext::new()))
    }

    pub(super) fn give_back(mut ctx: Context, fb_ctx: FunctionBuilderContext) {
        ctx.clear();
        SPARE.with(|s| *s.borrow_mut() = Some((ctx, fb_ctx)));
    }
}

/// Byte offsets in the run state the entry wrapper keeps on its stack and
/// passes to every eBPF function.
pub(crate) mod state {
    /// u32 fault code (0: none), then u32 fault pc.
    pub const FAULT_CODE: i32 = 0;
    pub const FAULT_PC: i32 = 4;
    /// The execution context pointer handed to helpers.
    pub const EXEC_CTX: i32 = 8;
    /// Lowest address of the frame stacks.
    pub const STACK_BASE: i32 = 16;
    /// One past the entry frame's top.
    pub const STACK_TOP: i32 = 24;
    /// The input region [lo, hi).
    pub const INPUT_LO: i32 = 32;
    pub const INPUT_HI: i32 = 40;
    /// u64 detail of a fault (`bpfc_fault.detail`).
    pub const FAULT_DETAIL: i32 = 48;
    /// u64 instructions left of the budget (with an instruction limit).
    pub const BUDGET: i32 = 56;
    pub const SIZE: u32 = 64;
}

/// The exported entry: zero the run state, carve the frame stacks, call the
/// entry function, copy a fault out.
fn build_entry_wrapper<M: Module>(
    module: &mut M,
    b: &mut FunctionBuilder,
    f0: FuncId,
    opts: &CodegenOptions,
) {
    use ir::{condcodes::IntCC, StackSlotData, StackSlotKind};
    let ptr = module.target_config().pointer_type();
    let block = b.create_block();
    b.append_block_params_for_function_params(block);
    b.switch_to_block(block);
    let p = b.block_params(block).to_vec();
    let (r1, r2, exec_ctx, fault) = (p[0], p[1], p[2], p[3]);
    let stacks_size = (isa::STACK_SIZE * isa::MAX_CALL_FRAMES) as u32;
    let stacks = b.create_sized_stack_slot(StackSlotData::new(
        StackSlotKind::ExplicitSlot,
        stacks_size,
        4,
    ));
    let st_slot = b.create_sized_stack_slot(StackSlotData::new(
        StackSlotKind::ExplicitSlot,
        state::SIZE,
        3,
    ));
    let base = b.ins().stack_addr(ptr, stacks, 0);
    let top = b.ins().iadd_imm_s(base, stacks_size as i64);
    let st = b.ins().stack_addr(ptr, st_slot, 0);
    let flags = MemFlagsData::trusted();
    let zero = b.ins().iconst(types::I64, 0);
    let null_input = b.ins().icmp_imm_s(IntCC::Equal, r1, 0);
    let end = b.ins().iadd(r1, r2);
    let hi = b.ins().select(null_input, zero, end);
    b.ins().store(flags, zero, st, state::FAULT_CODE);
    b.ins().store(flags, exec_ctx, st, state::EXEC_CTX);
    b.ins().store(flags, base, st, state::STACK_BASE);
    b.ins().store(flags, top, st, state::STACK_TOP);
    b.ins().store(flags, r1, st, state::INPUT_LO);
    b.ins().store(flags, hi, st, state::INPUT_HI);
    b.ins().store(flags, zero, st, state::FAULT_DETAIL);
    if let Some(limit) = opts.insn_limit {
        let budget = b.ins().iconst(types::I64, limit as i64);
        b.ins().store(flags, budget, st, state::BUDGET);
    }
    let f0 = module.declare_func_in_func(f0, b.func);
    let call = b.ins().call(f0, &[r1, r2, zero, zero, zero, top, st]);
    let r0 = b.inst_results(call)[0];
    let code = b.ins().load(types::I32, flags, st, state::FAULT_CODE);
    let faulted = b.create_block();
    let ok = b.create_block();
    b.ins().brif(code, faulted, &[], ok, &[]);
    b.switch_to_block(ok);
    b.ins().return_(&[r0]);
    b.switch_to_block(faulted);
    let pc = b.ins().load(types::I32, flags, st, state::FAULT_PC);
    let detail = b.ins().load(types::I64, flags, st, state::FAULT_DETAIL);
    b.ins().store(flags, code, fault, 0);
    b.ins().store(flags, pc, fault, 4);
    b.ins().store(flags, detail, fault, 8);
    b.ins().return_(&[zero]);
}
