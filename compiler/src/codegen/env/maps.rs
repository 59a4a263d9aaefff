//! Map references in generated code: a map's address, addresses in its
//! value memory (global data), array lookups done inline (the kernel's
//! `map_gen_lookup`), and tail calls through prog arrays. The JIT embeds
//! the live objects' addresses; objects read them from the map table the
//! host fills in (`Binding::map_table`), then the map's `struct bpfc_map`.

use super::{state, Abi, Env};
use crate::isa::Size;
use bpfc_runtime::abi::{FaultCode, MapNative, ProgNative};
use bpfc_runtime::maps::{round8, MapType};
use bpfc_runtime::programs::{MAX_TAIL_CALLS, TAIL_CALL_SYMBOL};
use cranelift_codegen::ir::{self, condcodes::IntCC, types, InstBuilder, MemFlagsData, Value};
use cranelift_frontend::FunctionBuilder;
use cranelift_module::{Linkage, Module};
use std::mem::offset_of;

const fn field(off: usize) -> i32 {
    off as i32
}

impl<M: Module> Env<'_, M> {
    /// The address of map `idx` (what `lddw rX, map` loads).
    pub(super) fn map_addr(&mut self, b: &mut FunctionBuilder, idx: usize) -> Option<Value> {
        let slot = self.binding.map(idx)?;
        if let Some(addr) = slot.addr {
            return Some(b.ins().iconst(types::I64, addr as i64));
        }
        let table = self.binding.map_table.clone()?;
        let data = self
            .module
            .declare_data(&table, Linkage::Import, true, false)
            .ok()?;
        let base = self.data_addr(b, data);
        let flags = MemFlagsData::trusted();
        Some(b.ins().load(types::I64, flags, base, (idx * 8) as i32))
    }

    /// `lddw rX, map_value[idx] + off`: an address in the value memory of
    /// map `idx` (a single-value array: global data).
    pub(super) fn map_value_addr(
        &mut self,
        b: &mut FunctionBuilder,
        idx: usize,
        off: u32,
    ) -> Option<Value> {
        let slot = self.binding.map(idx)?;
        if let Some(values) = slot.values {
            return Some(
                b.ins()
                    .iconst(types::I64, values.wrapping_add(off as u64) as i64),
            );
        }
        if slot.addr.is_some() {
            // A live map without array value memory cannot be addressed.
            return None;
        }
        let map = self.map_addr(b, idx)?;
        let flags = MemFlagsData::trusted().with_readonly();
        let values = b
            .ins()
            .load(types::I64, flags, map, field(offset_of!(MapNative, values)));
        Some(b.ins().iadd_imm_s(values, off as i64))
    }

    /// `bpf_map_lookup_elem` on array map `idx` with the key at `key`, done
    /// in place: NULL for an index out of range, else the value's address
    /// (per-CPU arrays: the run's CPU slot's). `None` when map `idx` is not
    /// an array.
    pub(super) fn inline_array_lookup(
        &mut self,
        b: &mut FunctionBuilder,
        pc: usize,
        idx: usize,
        key: Value,
    ) -> Option<Value> {
        let slot = self.binding.map(idx)?.clone();
        if !slot.inlinable_array() {
            return None;
        }
        let percpu = slot.spec.map_type.is_percpu();
        let index = self.load(b, pc, Size::W, false, key, 0);
        let elem = round8(slot.spec.value_size) as i64;
        let (values, max_entries, cpu_stride, ncpus) = match (slot.values, slot.ncpus) {
            (Some(values), Some(ncpus)) => {
                let stride = elem * slot.spec.max_entries as i64;
                (
                    b.ins().iconst(types::I64, values as i64),
                    b.ins().iconst(types::I64, slot.spec.max_entries as i64),
                    b.ins().iconst(types::I64, stride),
                    b.ins().iconst(types::I32, ncpus as i64),
                )
            }
            _ => {
                let map = self.map_addr(b, idx)?;
                let flags = MemFlagsData::trusted().with_readonly();
                let values =
                    b.ins()
                        .load(types::I64, flags, map, field(offset_of!(MapNative, values)));
                let max = b
                    .ins()
                    .uload32(flags, map, field(offset_of!(MapNative, max_entries)));
                let stride = b.ins().load(
                    types::I64,
                    flags,
                    map,
                    field(offset_of!(MapNative, cpu_stride)),
                );
                let ncpus =
                    b.ins()
                        .load(types::I32, flags, map, field(offset_of!(MapNative, ncpus)));
                (values, max, stride, ncpus)
            }
        };
        let in_range = b.ins().icmp(IntCC::UnsignedLessThan, index, max_entries);
        let off = b.ins().imul_imm_s(index, elem);
        let mut addr = b.ins().iadd(values, off);
        if percpu {
            let flags = MemFlagsData::trusted();
            let cpu = b.ins().load(types::I32, flags, self.st(), state::CPU);
            let valid = b.ins().icmp(IntCC::UnsignedLessThan, cpu, ncpus);
            let zero32 = b.ins().iconst(types::I32, 0);
            let cpu = b.ins().select(valid, cpu, zero32);
            let cpu = b.ins().uextend(types::I64, cpu);
            let cpu_off = b.ins().imul(cpu, cpu_stride);
            addr = b.ins().iadd(addr, cpu_off);
        }
        let null = b.ins().iconst(types::I64, 0);
        Some(b.ins().select(in_range, addr, null))
    }

    /// `bpf_tail_call(ctx, prog_array, index)`: find the target, then
    /// replace the current function by the target's entry function with
    /// r1 = ctx in the same frame. When there is no target the program goes
    /// on after the call with r0 unchanged (`None`).
    ///
    /// Unchecked code does the kernel JIT's work inline: the map's type, the
    /// index against `max_entries`, the 33-call count in the run state and
    /// the slot read (the slots are the prog array's `values`, pointers to
    /// each program's `struct bpfc_prog_native`). Anything unusual (not a
    /// prog array, a slot holding another engine's program) and checked code
    /// ask the runtime (`bpfc_tail_call_target`), which checks the map
    /// pointer too and reports the failure.
    pub(super) fn tail_call(
        &mut self,
        b: &mut FunctionBuilder,
        pc: usize,
        args: [Value; 5],
    ) -> Option<Value> {
        let st = self.st();
        let fp = self.fp();
        let Some(callee) = self.import_runtime(
            b,
            TAIL_CALL_SYMBOL,
            &[Abi::Ptr, Abi::I64, Abi::I64],
            Abi::Ptr,
        ) else {
            self.fault(b, FaultCode::UnknownHelper, pc, 12);
            return None;
        };
        let go = b.create_block();
        let target = b.append_block_param(go, types::I64);
        let stay = b.create_block();
        let slow = b.create_block();
        if self.opts.checked {
            b.ins().jump(slow, &[]);
        } else {
            self.inline_tail_call(b, args[1], args[2], go, stay, slow);
        }
        b.seal_block(slow);
        b.switch_to_block(slow);
        let call = b.ins().call(callee, &[st, args[1], args[2]]);
        let found = b.inst_results(call)[0];
        self.check_fault_after_call(b, pc, true);
        b.ins().brif(found, go, &[found.into()], stay, &[]);
        b.seal_block(go);
        b.seal_block(stay);
        b.switch_to_block(go);
        let sig = super::super::internal_signature(self.module);
        let sig = b.import_signature(sig);
        let zero = b.ins().iconst(types::I64, 0);
        b.ins()
            .return_call_indirect(sig, target, &[args[0], zero, zero, zero, zero, fp, st]);
        b.switch_to_block(stay);
        None
    }

    /// The inline part of a tail call through `map` at `index`: jumps to
    /// `go` with the target's function (the count taken), to `stay` to fall
    /// through (index out of range, 33 calls taken, empty slot: the order
    /// and counting of `programs::target`), or to `slow`.
    fn inline_tail_call(
        &mut self,
        b: &mut FunctionBuilder,
        map: Value,
        index: Value,
        go: ir::Block,
        stay: ir::Block,
        slow: ir::Block,
    ) {
        let st = self.st();
        let ro = MemFlagsData::trusted().with_readonly();
        let map_type = b
            .ins()
            .uload32(ro, map, field(offset_of!(MapNative, map_type)));
        let is_prog_array = b
            .ins()
            .icmp_imm_s(IntCC::Equal, map_type, MapType::ProgArray as i64);
        let checks = b.create_block();
        b.ins().brif(is_prog_array, checks, &[], slow, &[]);
        b.seal_block(checks);
        b.switch_to_block(checks);
        let index = b.ins().band_imm_u(index, 0xffff_ffff);
        let max = b
            .ins()
            .uload32(ro, map, field(offset_of!(MapNative, max_entries)));
        let in_range = b.ins().icmp(IntCC::UnsignedLessThan, index, max);
        let flags = MemFlagsData::trusted();
        let count = b.ins().load(types::I32, flags, st, state::TAIL_CALLS);
        let below = b
            .ins()
            .icmp_imm_s(IntCC::UnsignedLessThan, count, MAX_TAIL_CALLS as i64);
        let ok = b.ins().band(in_range, below);
        let read = b.create_block();
        b.ins().brif(ok, read, &[], stay, &[]);
        b.seal_block(read);
        b.switch_to_block(read);
        let slots = b
            .ins()
            .load(types::I64, ro, map, field(offset_of!(MapNative, values)));
        let off = b.ins().ishl_imm_u(index, 3);
        let slot = b.ins().iadd(slots, off);
        // Slots change at run time (the map API stores with release).
        let prog = b.ins().atomic_load(types::I64, flags, slot);
        let found = b.create_block();
        b.ins().brif(prog, found, &[], stay, &[]);
        b.seal_block(found);
        b.switch_to_block(found);
        let func = b
            .ins()
            .load(types::I64, ro, prog, field(offset_of!(ProgNative, func)));
        let native = b.create_block();
        b.ins().brif(func, native, &[], slow, &[]);
        b.seal_block(native);
        b.switch_to_block(native);
        let count = b.ins().iadd_imm_s(count, 1);
        b.ins().store(flags, count, st, state::TAIL_CALLS);
        b.ins().jump(go, &[func.into()]);
    }
}
