//! Map references in generated code: a map's address, addresses in its
//! value memory (global data), array lookups done inline (the kernel's
//! `map_gen_lookup`), and tail calls through prog arrays. The JIT embeds
//! the live objects' addresses; objects read them from the map table the
//! host fills in (`Binding::map_table`), then the map's `struct bpfc_map`.

use super::{state, Abi, Env};
use crate::isa::Size;
use bpfc_runtime::abi::{FaultCode, MapNative};
use bpfc_runtime::maps::round8;
use bpfc_runtime::programs::TAIL_CALL_SYMBOL;
use cranelift_codegen::ir::{condcodes::IntCC, types, InstBuilder, MemFlagsData, Value};
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

    /// `bpf_tail_call(ctx, prog_array, index)`: ask the runtime for the
    /// target (it checks the map, the index, the slot and the 33-call
    /// limit), then replace the current function by the target's entry
    /// function with r1 = ctx in the same frame. When there is no target the
    /// program goes on after the call with r0 unchanged (`None`).
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
        let call = b.ins().call(callee, &[st, args[1], args[2]]);
        let target = b.inst_results(call)[0];
        self.check_fault_after_call(b, pc, true);
        let go = b.create_block();
        let stay = b.create_block();
        b.ins().brif(target, go, &[], stay, &[]);
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
}
