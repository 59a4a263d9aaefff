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
pub mod binding;
mod env;
pub mod fault;
pub mod jit;
pub mod target;
mod translate;

pub use binding::{Binding, MapSlot};
pub use target::{build_isa, parse_triple, IsaUse, SUPPORTED_TARGETS};

use crate::isa::{self, DecodeError, Endian, Insn, LddwSrc};
use cranelift_codegen::ir::{self, types, AbiParam, InstBuilder, MemFlagsData, Signature};
use cranelift_codegen::isa::CallConv;
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

/// Whether the program calls `bpf_tail_call` (such code keeps frame
/// pointers: Cranelift emits tail calls only with them).
pub(crate) fn has_tail_calls(insns: &[Insn]) -> bool {
    insns.iter().any(|i| {
        matches!(i, Insn::Call(crate::isa::CallTarget::Helper(id))
            if *id == bpfc_runtime::helpers::ids::TAIL_CALL as i32)
    })
}

/// The function a `BPF_PSEUDO_FUNC` lddw at `pc` refers to, if it is one
/// that lands inside the program.
pub(crate) fn callback_target(insns: &[Insn], pc: usize) -> Option<usize> {
    match insns[pc] {
        Insn::Lddw {
            src: LddwSrc::Func,
            imm,
            ..
        } => {
            let t = pc as i64 + 1 + imm as u32 as i32 as i64;
            (0..insns.len() as i64).contains(&t).then_some(t as usize)
        }
        _ => None,
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

/// Signature of an eBPF function: `(r1..r5, fp, state) -> r0`, in the
/// tail calling convention so a tail call can replace any function by
/// another program's entry function.
pub(crate) fn internal_signature<M: Module>(module: &M) -> Signature {
    let mut sig = callback_signature(module);
    sig.call_conv = CallConv::Tail;
    sig
}

/// Signature of a callback wrapper: an eBPF function's `(r1..r5, fp,
/// state) -> r0` in the target's C convention, which the runtime calls.
pub(crate) fn callback_signature<M: Module>(module: &M) -> Signature {
    let ptr = module.target_config().pointer_type();
    let mut sig = module.make_signature();
    sig.params.extend((0..6).map(|_| AbiParam::new(types::I64)));
    sig.params.push(AbiParam::new(ptr));
    sig.returns.push(AbiParam::new(types::I64));
    sig
}

/// Signature of a helper: `(r1..r5, run_state) -> r0`.
pub(crate) fn helper_signature<M: Module>(module: &M) -> Signature {
    let ptr = module.target_config().pointer_type();
    let mut sig = module.make_signature();
    sig.params.extend((0..5).map(|_| AbiParam::new(types::I64)));
    sig.params.push(AbiParam::new(ptr));
    sig.returns.push(AbiParam::new(types::I64));
    sig
}

/// What one compilation turns into code.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub insns: &'a [Insn],
    /// The bytecode's byte order.
    pub endian: Endian,
    pub binding: &'a Binding,
    pub opts: &'a CodegenOptions,
    /// The exported entry's name; other symbols of the program start with it.
    pub symbol: &'a str,
    /// What the verifier proved (`None`: not verified). Checked code
    /// leaves out the check of an access proven in bounds of memory the
    /// engines lay out as the verifier assumes (stack, map values, helper
    /// memory).
    pub facts: Option<&'a crate::verifier::Facts>,
}

/// The functions a compilation defined.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The exported entry (`docs/abi.md`).
    pub entry: FuncId,
    /// The program's first eBPF function (internal signature): what a tail
    /// call into this program jumps to.
    pub main: FuncId,
    /// Each callback's data object (`struct bpfc_callback`), by the pc of
    /// its function.
    pub callbacks: Vec<(usize, cranelift_module::DataId)>,
}

/// Compile a program into `module`: one function per eBPF function, a C-ABI
/// wrapper and a `struct bpfc_callback` per callback function, and the
/// exported entry. Shared by JIT and AOT.
pub fn compile_program<M: Module>(
    module: &mut M,
    req: &Request,
    dumps: Option<&mut Dumps>,
) -> Result<Compiled, CodegenError> {
    let insns = req.insns;
    let symbol = req.symbol;
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
    // Callback functions: a wrapper the runtime can call, and the data a
    // `BPF_PSEUDO_FUNC` lddw loads the address of.
    let cb_pcs: BTreeSet<usize> = (0..insns.len())
        .filter_map(|pc| callback_target(insns, pc))
        .collect();
    let mut callbacks = Vec::new();
    for &pc in &cb_pcs {
        let data =
            module.declare_data(&format!("{symbol}__cb{pc}"), Linkage::Local, false, false)?;
        callbacks.push((pc, data));
    }
    let entry = module.declare_function(symbol, Linkage::Export, &entry_signature(module))?;
    let program = ProgramParts {
        req,
        funcs: &funcs,
        func_ids: &func_ids,
        callbacks: &callbacks,
        internal_sig,
        entry,
    };
    let (mut ctx, mut fb_ctx) = contexts::take();
    module.clear_context(&mut ctx);
    let result = program.define_all(module, &mut ctx, &mut fb_ctx, dumps);
    contexts::give_back(ctx, fb_ctx);
    result?;
    Ok(Compiled {
        entry,
        main: func_ids[0].1,
        callbacks,
    })
}

/// What `compile_program` has declared, ready to be defined.
struct ProgramParts<'a> {
    req: &'a Request<'a>,
    funcs: &'a [Range<usize>],
    func_ids: &'a [(usize, FuncId)],
    callbacks: &'a [(usize, cranelift_module::DataId)],
    internal_sig: Signature,
    entry: FuncId,
}

impl ProgramParts<'_> {
    /// Translate and define every eBPF function, the callback wrappers and
    /// data, then the entry wrapper.
    fn define_all<M: Module>(
        &self,
        module: &mut M,
        ctx: &mut Context,
        fb_ctx: &mut FunctionBuilderContext,
        mut dumps: Option<&mut Dumps>,
    ) -> Result<(), CodegenError> {
        let req = self.req;
        let frontend_config = module.target_config();
        for (range, &(_, id)) in self.funcs.iter().zip(self.func_ids) {
            ctx.func.signature = self.internal_sig.clone();
            ctx.func.name = ir::UserFuncName::user(0, id.as_u32());
            {
                let mut b = FunctionBuilder::new(&mut ctx.func, fb_ctx);
                let mut env = env::Env::new(module, req, self.func_ids, self.callbacks);
                translate::translate_function(&mut b, &mut env, req.insns, range.clone())?;
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
        for &(pc, data) in self.callbacks {
            let f = self
                .func_ids
                .iter()
                .find(|(start, _)| *start == pc)
                .map(|&(_, id)| id)
                .ok_or(CodegenError::NoFunctionAt { pc, target: pc })?;
            let wrapper = module.declare_function(
                &format!("{}__cbwrap{pc}", req.symbol),
                Linkage::Local,
                &callback_signature(module),
            )?;
            ctx.func.signature = callback_signature(module);
            ctx.func.name = ir::UserFuncName::user(0, wrapper.as_u32());
            {
                let mut b = FunctionBuilder::new(&mut ctx.func, fb_ctx);
                build_forwarder(module, &mut b, f);
                b.seal_all_blocks();
                b.finalize(frontend_config);
            }
            define(
                module,
                wrapper,
                ctx,
                &format!("callback wrapper at instruction {pc}"),
                dumps.as_deref_mut(),
            )?;
            define_callback_data(module, data, wrapper, pc)?;
        }

        ctx.func.signature = entry_signature(module);
        ctx.func.name = ir::UserFuncName::user(0, self.entry.as_u32());
        {
            let mut b = FunctionBuilder::new(&mut ctx.func, fb_ctx);
            build_entry_wrapper(module, &mut b, self.func_ids[0].1, req.opts);
            b.seal_all_blocks();
            b.finalize(frontend_config);
        }
        let what = format!("entry {}", req.symbol);
        define(module, self.entry, ctx, &what, dumps)
    }
}

/// A C-ABI function that calls the tail-convention function `f` with its
/// own arguments (callbacks the runtime calls).
fn build_forwarder<M: Module>(module: &mut M, b: &mut FunctionBuilder, f: FuncId) {
    let block = b.create_block();
    b.append_block_params_for_function_params(block);
    b.switch_to_block(block);
    let args = b.block_params(block).to_vec();
    let f = module.declare_func_in_func(f, b.func);
    let call = b.ins().call(f, &args);
    let r0 = b.inst_results(call)[0];
    b.ins().return_(&[r0]);
}

/// The `struct bpfc_callback` of the callback function at `pc`.
fn define_callback_data<M: Module>(
    module: &mut M,
    data: cranelift_module::DataId,
    wrapper: FuncId,
    pc: usize,
) -> Result<(), CodegenError> {
    use bpfc_runtime::abi::CallbackNative;
    use std::mem::{offset_of, size_of};
    let ptr_bytes = module.target_config().pointer_bytes() as usize;
    // The runtime's layout is the host's; objects for other targets use the
    // target's pointer size, which the C header describes for them.
    let size = if ptr_bytes == 8 {
        size_of::<CallbackNative>()
    } else {
        16 + 2 * ptr_bytes
    };
    let big = module.isa().endianness() == ir::Endianness::Big;
    let word = |v: u64| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut bytes = vec![0u8; size];
    bytes[offset_of!(CallbackNative, magic)..][..8].copy_from_slice(&word(CallbackNative::MAGIC));
    bytes[offset_of!(CallbackNative, pc)..][..8].copy_from_slice(&word(pc as u64));
    let mut desc = cranelift_module::DataDescription::new();
    desc.define(bytes.into_boxed_slice());
    desc.set_align(8);
    let fref = module.declare_func_in_data(wrapper, &mut desc);
    desc.write_function_addr(offset_of!(CallbackNative, func) as u32, fref);
    module.define_data(data, &desc)?;
    Ok(())
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

/// Byte offsets in the run state ([`bpfc_runtime::abi::RunState`]) the
/// entry wrapper keeps on its stack and passes to every eBPF function and
/// helper.
pub(crate) mod state {
    use bpfc_runtime::abi::{Fault, RunState};
    use std::mem::{offset_of, size_of};

    const fn at(off: usize) -> i32 {
        off as i32
    }
    pub const FAULT_CODE: i32 = at(offset_of!(RunState, fault) + offset_of!(Fault, code));
    pub const FAULT_PC: i32 = at(offset_of!(RunState, fault) + offset_of!(Fault, pc));
    pub const FAULT_DETAIL: i32 = at(offset_of!(RunState, fault) + offset_of!(Fault, detail));
    pub const EXEC_CTX: i32 = at(offset_of!(RunState, ctx));
    pub const STACK_BASE: i32 = at(offset_of!(RunState, stack_base));
    pub const STACK_TOP: i32 = at(offset_of!(RunState, stack_top));
    pub const INPUT_LO: i32 = at(offset_of!(RunState, input_lo));
    pub const INPUT_HI: i32 = at(offset_of!(RunState, input_hi));
    pub const BUDGET: i32 = at(offset_of!(RunState, budget));
    pub const CB_FP: i32 = at(offset_of!(RunState, cb_fp));
    pub const CPU: i32 = at(offset_of!(RunState, cpu));
    pub const TAIL_CALLS: i32 = at(offset_of!(RunState, tail_calls));
    pub const SIZE: u32 = size_of::<RunState>() as u32;
    /// Where the execution context keeps the CPU slot the entry copies.
    pub const CTX_CPU: i32 = at(offset_of!(bpfc_runtime::ExecContext, cpu));
    /// `struct bpfc_fault` as the host passes it.
    pub const OUT_CODE: i32 = at(offset_of!(Fault, code));
    pub const OUT_PC: i32 = at(offset_of!(Fault, pc));
    pub const OUT_DETAIL: i32 = at(offset_of!(Fault, detail));
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
    let zero32 = b.ins().iconst(types::I32, 0);
    b.ins().store(flags, zero32, st, state::FAULT_CODE);
    b.ins().store(flags, zero32, st, state::FAULT_PC);
    b.ins().store(flags, exec_ctx, st, state::EXEC_CTX);
    b.ins().store(flags, base, st, state::STACK_BASE);
    b.ins().store(flags, top, st, state::STACK_TOP);
    b.ins().store(flags, r1, st, state::INPUT_LO);
    b.ins().store(flags, hi, st, state::INPUT_HI);
    b.ins().store(flags, zero, st, state::FAULT_DETAIL);
    b.ins().store(flags, zero, st, state::CB_FP);
    b.ins().store(flags, zero32, st, state::TAIL_CALLS);
    // The CPU slot: from the execution context, 0 without one.
    let has_ctx = b.ins().icmp_imm_s(IntCC::NotEqual, exec_ctx, 0);
    let cpu_block = b.create_block();
    let cpu_done = b.create_block();
    let cpu = b.append_block_param(cpu_done, types::I32);
    b.ins()
        .brif(has_ctx, cpu_block, &[], cpu_done, &[zero32.into()]);
    b.switch_to_block(cpu_block);
    let ctx_cpu = b.ins().load(types::I32, flags, exec_ctx, state::CTX_CPU);
    b.ins().jump(cpu_done, &[ctx_cpu.into()]);
    b.switch_to_block(cpu_done);
    b.ins().store(flags, cpu, st, state::CPU);
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
    b.ins().store(flags, code, fault, state::OUT_CODE);
    b.ins().store(flags, pc, fault, state::OUT_PC);
    b.ins().store(flags, detail, fault, state::OUT_DETAIL);
    b.ins().return_(&[zero]);
}
