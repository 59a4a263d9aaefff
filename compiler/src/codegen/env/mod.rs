//! The environment of the translator: everything the generated code needs
//! from the runtime rather than from the ISA. Helper and local calls, `callx`
//! dispatch, tail calls, lddw pseudo sources (maps, global data,
//! callbacks), program memory accesses (byte order and the bounds checks of
//! checked mode) and fault exits live here, so the translator never sees a
//! helper id's meaning, a map or the run state. `maps` has what depends on
//! map types (references, inlined array lookups, tail calls through prog
//! arrays).

mod maps;
mod memory;

use super::{helper_signature, state, Binding, CodegenError, CodegenOptions, Request};
use crate::isa::{self, Endian, LddwSrc};
use bpfc_runtime::abi::{helper_symbol, FaultCode};
use bpfc_runtime::helpers::{calls_back, ids};
use cranelift_codegen::ir::{
    self, condcodes::IntCC, types, Block, FuncRef, GlobalValue, InstBuilder, MemFlagsData, SigRef,
    Type, Value,
};
use cranelift_frontend::{FunctionBuilder, Switch};
use cranelift_module::{DataId, FuncId, Linkage, Module};
use std::collections::BTreeMap;

pub(crate) struct Env<'m, M: Module> {
    module: &'m mut M,
    binding: &'m Binding,
    /// Start pc and id of every eBPF function of the program.
    funcs: &'m [(usize, FuncId)],
    /// Callback data objects by function pc.
    callbacks: &'m [(usize, DataId)],
    opts: &'m CodegenOptions,
    /// The verifier's facts: accesses proven in bounds go unchecked.
    facts: Option<&'m crate::verifier::Facts>,
    endian: Endian,
    /// Data objects already imported into the current function.
    globals: BTreeMap<DataId, GlobalValue>,
    /// Function references already imported into the current function.
    refs: BTreeMap<FuncId, FuncRef>,
    /// How program memory's byte order is reached on this target.
    order: memory::Order,
    /// The run state pointer and the frame pointer of the current function.
    st: Option<Value>,
    fp: Option<Value>,
    /// Checked mode: the bounds of the current function's accessible memory,
    /// loaded once in its entry block.
    bounds: Option<memory::Bounds>,
    /// The helper signature imported into the current function (helper
    /// tables).
    helper_sig: Option<SigRef>,
}

/// The kind of a parameter or result of a runtime function the code
/// imports (`Env::import_runtime`).
#[derive(Clone, Copy)]
enum Abi {
    /// A native pointer (the run state, a returned address).
    Ptr,
    I64,
    I32,
}

/// A helper to call: an imported symbol, or a function loaded from the
/// helper table.
#[derive(Clone, Copy)]
enum Callee {
    Direct(FuncRef),
    Table(Value, SigRef),
}

impl<'m, M: Module> Env<'m, M> {
    pub(crate) fn new(
        module: &'m mut M,
        req: &'m Request<'m>,
        funcs: &'m [(usize, FuncId)],
        callbacks: &'m [(usize, DataId)],
    ) -> Self {
        let order = memory::Order::new(req.endian, module.isa().endianness());
        Env {
            module,
            binding: req.binding,
            funcs,
            callbacks,
            opts: req.opts,
            facts: req.facts,
            endian: req.endian,
            globals: BTreeMap::new(),
            refs: BTreeMap::new(),
            order,
            st: None,
            fp: None,
            bounds: None,
            helper_sig: None,
        }
    }

    /// Bytecode byte order: ToLe/ToBe are relative to it.
    pub(crate) fn endian(&self) -> Endian {
        self.endian
    }

    /// Record the incoming state and frame pointer of the function being
    /// built; called in its entry block.
    pub(crate) fn enter_function(&mut self, b: &mut FunctionBuilder, st: Value, fp: Value) {
        self.st = Some(st);
        self.fp = Some(fp);
        self.bounds = self.opts.checked.then(|| memory::Bounds::load(b, st, fp));
    }

    fn st(&self) -> Value {
        self.st.expect("enter_function runs before any instruction")
    }

    fn fp(&self) -> Value {
        self.fp.expect("enter_function runs before any instruction")
    }

    fn ptr(&self) -> Type {
        self.module.target_config().pointer_type()
    }

    fn func_ref(&mut self, b: &mut FunctionBuilder, id: FuncId) -> FuncRef {
        *self
            .refs
            .entry(id)
            .or_insert_with(|| self.module.declare_func_in_func(id, b.func))
    }

    /// Import a runtime function the code calls directly (not a helper):
    /// its signature is written here once, from the kinds of its
    /// parameters and result. `None` when the module already declares the
    /// symbol with another signature.
    fn import_runtime(
        &mut self,
        b: &mut FunctionBuilder,
        symbol: &str,
        params: &[Abi],
        ret: Abi,
    ) -> Option<FuncRef> {
        let ptr = self.ptr();
        let ty = |a: Abi| match a {
            Abi::Ptr => ptr,
            Abi::I64 => types::I64,
            Abi::I32 => types::I32,
        };
        let mut sig = self.module.make_signature();
        sig.params
            .extend(params.iter().map(|&a| ir::AbiParam::new(ty(a))));
        sig.returns.push(ir::AbiParam::new(ty(ret)));
        let id = self
            .module
            .declare_function(symbol, Linkage::Import, &sig)
            .ok()?;
        Some(self.func_ref(b, id))
    }

    /// Record a fault at `pc` and return from the current function. The
    /// builder continues in a fresh block (unreachable), so translation of the
    /// following instructions goes on as usual.
    pub(crate) fn fault(
        &mut self,
        b: &mut FunctionBuilder,
        code: FaultCode,
        pc: usize,
        detail: u64,
    ) {
        let detail = (detail != 0).then(|| b.ins().iconst(types::I64, detail as i64));
        self.emit_fault_exit(b, code, pc, detail);
        let next = b.create_block();
        b.seal_block(next);
        b.switch_to_block(next);
    }

    /// Store the fault's code, pc and detail (see `bpfc_fault`) into the run
    /// state and return.
    fn emit_fault_exit(
        &mut self,
        b: &mut FunctionBuilder,
        code: FaultCode,
        pc: usize,
        detail: Option<Value>,
    ) {
        let st = self.st();
        let flags = MemFlagsData::trusted();
        let code = b.ins().iconst(types::I32, code as u32 as i64);
        let pc = b.ins().iconst(types::I32, pc as u32 as i64);
        b.ins().store(flags, code, st, state::FAULT_CODE);
        b.ins().store(flags, pc, st, state::FAULT_PC);
        if let Some(detail) = detail {
            b.ins().store(flags, detail, st, state::FAULT_DETAIL);
        }
        let zero = b.ins().iconst(types::I64, 0);
        b.ins().return_(&[zero]);
    }

    /// Branch to a fault exit unless `ok` holds; continue after the check.
    fn fault_unless(
        &mut self,
        b: &mut FunctionBuilder,
        ok: Value,
        code: FaultCode,
        pc: usize,
        detail: Option<Value>,
    ) {
        let cont = b.create_block();
        let bad = b.create_block();
        b.ins().brif(ok, cont, &[], bad, &[]);
        b.seal_block(cont);
        b.seal_block(bad);
        b.switch_to_block(bad);
        self.emit_fault_exit(b, code, pc, detail);
        b.switch_to_block(cont);
    }

    /// Whether the code keeps an instruction budget ([`Env::charge`]).
    pub(crate) fn counts_insns(&self) -> bool {
        self.opts.insn_limit.is_some()
    }

    /// Charge `count` instructions, starting with the one at `pc`, to the
    /// run's instruction budget, faulting at `pc` when fewer are left.
    pub(crate) fn charge(&mut self, b: &mut FunctionBuilder, pc: usize, count: usize) {
        let Some(limit) = self.opts.insn_limit else {
            return;
        };
        let st = self.st();
        let flags = MemFlagsData::trusted();
        let left = b.ins().load(types::I64, flags, st, state::BUDGET);
        let enough = b
            .ins()
            .icmp_imm_s(IntCC::UnsignedGreaterThanOrEqual, left, count as i64);
        let limit = b.ins().iconst(types::I64, limit as i64);
        self.fault_unless(b, enough, FaultCode::InsnLimit, pc, Some(limit));
        let rest = b.ins().iadd_imm_s(left, -(count as i64));
        b.ins().store(flags, rest, st, state::BUDGET);
    }

    /// The value an `lddw` loads: an immediate, a map's address, an address
    /// in a map's values (global data), or a callback.
    pub(crate) fn lddw(
        &mut self,
        b: &mut FunctionBuilder,
        pc: usize,
        src: LddwSrc,
        imm: u64,
    ) -> Value {
        let resolved = match src {
            LddwSrc::Imm => return b.ins().iconst(types::I64, imm as i64),
            LddwSrc::MapIdx => self.map_addr(b, imm as u32 as usize),
            LddwSrc::MapIdxValue => self.map_value_addr(b, imm as u32 as usize, (imm >> 32) as u32),
            LddwSrc::Func => {
                let target = pc as i64 + 1 + imm as u32 as i32 as i64;
                self.callback_addr(b, target)
            }
            _ => None,
        };
        match resolved {
            Some(v) => v,
            None => {
                self.fault(b, FaultCode::UnresolvedLddw, pc, src.raw() as u64);
                b.ins().iconst(types::I64, 0)
            }
        }
    }

    /// A data object's address as a 64-bit value.
    fn data_addr(&mut self, b: &mut FunctionBuilder, data: DataId) -> Value {
        let gv = *self
            .globals
            .entry(data)
            .or_insert_with(|| self.module.declare_data_in_func(data, b.func));
        let ptr = self.ptr();
        let v = b.ins().symbol_value(ptr, gv);
        if ptr == types::I64 {
            v
        } else {
            b.ins().uextend(types::I64, v)
        }
    }

    /// The `struct bpfc_callback` of the function at `target`.
    fn callback_addr(&mut self, b: &mut FunctionBuilder, target: i64) -> Option<Value> {
        let data = self
            .callbacks
            .iter()
            .find(|(pc, _)| *pc as i64 == target)
            .map(|&(_, d)| d)?;
        Some(self.data_addr(b, data))
    }

    /// How to call helper `id`: its imported symbol, or its slot of the
    /// helper table (objects with a descriptor). `None`: not bound.
    fn helper_ref(&mut self, b: &mut FunctionBuilder, id: u32) -> Option<Callee> {
        if let Some(table) = self.binding.helper_table.clone() {
            let slot = self.binding.helpers.iter().position(|&h| h == id)?;
            let data = self
                .module
                .declare_data(&table, Linkage::Import, true, false)
                .ok()?;
            let base = self.data_addr(b, data);
            let ptr = self.ptr();
            let func = b
                .ins()
                .load(ptr, MemFlagsData::trusted(), base, (slot * 8) as i32);
            let sig = match self.helper_sig {
                Some(s) => s,
                None => {
                    let s = b.import_signature(helper_signature(self.module));
                    self.helper_sig = Some(s);
                    s
                }
            };
            return Some(Callee::Table(func, sig));
        }
        if !self.binding.import_any_helper && !self.binding.helpers.contains(&id) {
            return None;
        }
        let sig = helper_signature(self.module);
        let fid = self
            .module
            .declare_function(&helper_symbol(id), Linkage::Import, &sig)
            .ok()?;
        Some(Callee::Direct(self.func_ref(b, fid)))
    }

    /// Call a helper with r1-r5 and the run state; stop the run at `pc` if
    /// the helper reported a failure. Helpers that call back into the
    /// program find the caller's frame in the state.
    fn emit_helper_call(
        &mut self,
        b: &mut FunctionBuilder,
        pc: usize,
        id: Option<u32>,
        callee: Callee,
        args: [Value; 5],
    ) -> Value {
        let st = self.st();
        let flags = MemFlagsData::trusted();
        if id.is_none_or(calls_back) {
            let fp = self.fp();
            b.ins().store(flags, fp, st, state::CB_FP);
        }
        let argv = [args[0], args[1], args[2], args[3], args[4], st];
        let call = match callee {
            Callee::Direct(f) => b.ins().call(f, &argv),
            Callee::Table(f, sig) => b.ins().call_indirect(sig, f, &argv),
        };
        let r0 = b.inst_results(call)[0];
        self.check_fault_after_call(b, pc, true);
        r0
    }

    /// After a call that may have stopped the run: return at once if it did.
    /// A helper's failure gets the call's pc; a local callee's fault keeps
    /// its own.
    fn check_fault_after_call(&mut self, b: &mut FunctionBuilder, pc: usize, set_pc: bool) {
        let st = self.st();
        let flags = MemFlagsData::trusted();
        let code = b.ins().load(types::I32, flags, st, state::FAULT_CODE);
        let cont = b.create_block();
        let propagate = b.create_block();
        b.ins().brif(code, propagate, &[], cont, &[]);
        b.seal_block(cont);
        b.seal_block(propagate);
        b.switch_to_block(propagate);
        b.set_cold_block(propagate);
        if set_pc {
            let pc = b.ins().iconst(types::I32, pc as u32 as i64);
            b.ins().store(flags, pc, st, state::FAULT_PC);
        }
        let zero = b.ins().iconst(types::I64, 0);
        b.ins().return_(&[zero]);
        b.switch_to_block(cont);
    }

    /// `call imm`: a helper by id; r0 afterwards (`None`: unchanged, after a
    /// tail call that found no target). `r1_map` is the map r1 is known to
    /// hold (the translator tracks `lddw` of maps within a block), so array
    /// lookups can be done in place.
    pub(crate) fn call_helper(
        &mut self,
        b: &mut FunctionBuilder,
        pc: usize,
        id: i32,
        args: [Value; 5],
        r1_map: Option<usize>,
    ) -> Option<Value> {
        let uid = u32::try_from(id).ok();
        if uid == Some(ids::TAIL_CALL) {
            return self.tail_call(b, pc, args);
        }
        if uid == Some(ids::MAP_LOOKUP_ELEM) {
            if let Some(v) = r1_map.and_then(|m| self.inline_array_lookup(b, pc, m, args[1])) {
                return Some(v);
            }
        }
        Some(match uid.and_then(|id| self.helper_ref(b, id)) {
            Some(callee) => self.emit_helper_call(b, pc, uid, callee, args),
            None => {
                self.fault(b, FaultCode::UnknownHelper, pc, id as u32 as u64);
                b.ins().iconst(types::I64, 0)
            }
        })
    }

    /// `callx reg`: the register holds a helper id; dispatch over the known ids.
    pub(crate) fn callx(
        &mut self,
        b: &mut FunctionBuilder,
        pc: usize,
        target: Value,
        args: [Value; 5],
    ) -> Value {
        let ids: Vec<u32> = self.binding.helpers.iter().copied().collect();
        let merge = b.create_block();
        let r0 = b.append_block_param(merge, types::I64);
        let unknown = b.create_block();
        let mut switch = Switch::new();
        let mut cases: Vec<(u32, Block)> = Vec::with_capacity(ids.len());
        for id in ids {
            let block = b.create_block();
            switch.set_entry(id as u128, block);
            cases.push((id, block));
        }
        switch.emit(b, target, unknown);
        b.seal_block(unknown);
        for (id, block) in cases {
            b.seal_block(block);
            b.switch_to_block(block);
            let r = match self.helper_ref(b, id) {
                Some(callee) if id != ids::TAIL_CALL => {
                    self.emit_helper_call(b, pc, Some(id), callee, args)
                }
                _ => b.ins().iconst(types::I64, 0),
            };
            b.ins().jump(merge, &[r.into()]);
        }
        b.switch_to_block(unknown);
        self.emit_fault_exit(b, FaultCode::UnknownHelper, pc, Some(target));
        b.seal_block(merge);
        b.switch_to_block(merge);
        r0
    }

    /// `call local`: the eBPF function starting at `target`, with a fresh
    /// frame below the current one. Faults when the 8 frames are used up,
    /// and returns at once when the callee faulted.
    pub(crate) fn call_local(
        &mut self,
        b: &mut FunctionBuilder,
        pc: usize,
        target: usize,
        args: [Value; 5],
    ) -> Result<Value, CodegenError> {
        // `functions` makes every call target a function start; this only
        // fails if that invariant is broken.
        let &(_, fid) = self
            .funcs
            .iter()
            .find(|(start, _)| *start == target)
            .ok_or(CodegenError::NoFunctionAt { pc, target })?;
        let st = self.st();
        let flags = MemFlagsData::trusted();
        let frame = isa::STACK_SIZE as i64;
        let callee_fp = b.ins().iadd_imm_s(self.fp(), -frame);
        let callee_bottom = b.ins().iadd_imm_s(self.fp(), -2 * frame);
        let base = b.ins().load(types::I64, flags, st, state::STACK_BASE);
        let fits = b
            .ins()
            .icmp(IntCC::UnsignedGreaterThanOrEqual, callee_bottom, base);
        self.fault_unless(b, fits, FaultCode::CallDepth, pc, None);
        let callee = self.func_ref(b, fid);
        let call = b.ins().call(
            callee,
            &[args[0], args[1], args[2], args[3], args[4], callee_fp, st],
        );
        let r0 = b.inst_results(call)[0];
        self.check_fault_after_call(b, pc, false);
        Ok(r0)
    }
}
