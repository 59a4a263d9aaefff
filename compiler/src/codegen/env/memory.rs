//! Program memory: loads, stores and atomics at `base + off`, in the
//! bytecode's byte order whatever the target's, and the bounds checks of
//! checked mode. Values cross this interface as 64-bit register values:
//! narrow loads come back zero- or sign-extended, narrow stores take the low
//! bits. Checked code leaves out the check of an access the verifier
//! proved in bounds of memory the engines provide as the verifier assumes
//! ([`trusted`]).

use super::{Abi, Env};
use crate::codegen::state;
use crate::isa::{self, Endian, Size};
use crate::verifier::Region;
use bpfc_runtime::abi::FaultCode;
use bpfc_runtime::regions::CHECK_ACCESS_SYMBOL;
use cranelift_codegen::ir::{
    self, condcodes::IntCC, types, AtomicRmwOp, InstBuilder, MemFlagsData, Type, Value,
};
use cranelift_frontend::FunctionBuilder;
use cranelift_module::Module;

/// The Cranelift type of an access of `size`.
pub(crate) fn mem_type(size: Size) -> Type {
    match size {
        Size::B => types::I8,
        Size::H => types::I16,
        Size::W => types::I32,
        Size::DW => types::I64,
    }
}

/// How the bytecode's byte order is reached on the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Order {
    /// Bytecode and target agree.
    Native,
    /// The backend accesses the other byte order itself (s390x has
    /// byte-reversing loads and stores for little-endian bytecode).
    Flagged(ir::Endianness),
    /// Native accesses with explicit byte swaps (big-endian bytecode on a
    /// little-endian target, whose backends only access native order).
    Swapped,
}

impl Order {
    pub(super) fn new(bytecode: Endian, target: ir::Endianness) -> Order {
        match (bytecode, target) {
            (Endian::Little, ir::Endianness::Little) | (Endian::Big, ir::Endianness::Big) => {
                Order::Native
            }
            (Endian::Little, ir::Endianness::Big) => Order::Flagged(ir::Endianness::Little),
            (Endian::Big, ir::Endianness::Little) => Order::Swapped,
        }
    }

    fn flags(self) -> MemFlagsData {
        match self {
            Order::Native | Order::Swapped => MemFlagsData::new(),
            Order::Flagged(e) => MemFlagsData::new().with_endianness(e),
        }
    }
}

/// Whether the verifier's proof that an access stays inside `r` holds for
/// the memory the engines give a program: its 512-byte frames, map values
/// of the defined size, and helper memory (ring buffer records) of the
/// size the verifier knows. Not the context and the packet: a raw or
/// syscall program's context is caller-given bytes of any length
/// (`--ctx-in`), not the size the verifier assumed, and packet bounds come
/// from context fields.
pub(crate) fn trusted(r: &Region) -> bool {
    matches!(r, Region::Stack | Region::MapValue { .. } | Region::Mem)
}

/// Checked mode: what the current function may touch, loaded once in its
/// entry block from the run state (the frames from its own up to the entry's,
/// and the input).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    frame_lo: Value,
    stack_top: Value,
    input_lo: Value,
    input_hi: Value,
}

impl Bounds {
    pub(super) fn load(b: &mut FunctionBuilder, st: Value, fp: Value) -> Bounds {
        let flags = MemFlagsData::trusted().with_readonly();
        let mut field = |offset| b.ins().load(types::I64, flags, st, offset);
        let stack_top = field(state::STACK_TOP);
        let input_lo = field(state::INPUT_LO);
        let input_hi = field(state::INPUT_HI);
        Bounds {
            frame_lo: b.ins().iadd_imm_s(fp, -(isa::STACK_SIZE as i64)),
            stack_top,
            input_lo,
            input_hi,
        }
    }
}

impl<M: Module> Env<'_, M> {
    /// The address operands of an access of `size` bytes at `base + off`:
    /// in checked mode the address is computed and checked first (faulting
    /// out of bounds), otherwise the offset stays in the instruction. An
    /// address outside the frames and the input goes to the runtime's
    /// region list (map values, ring buffer records: `bpfc_check_access`),
    /// the same list the interpreter consults.
    fn access(
        &mut self,
        b: &mut FunctionBuilder,
        pc: usize,
        base: Value,
        off: i16,
        size: usize,
        write: bool,
    ) -> (Value, i32) {
        let Some(bounds) = self.bounds else {
            return (base, off as i32);
        };
        if self.proven(pc) {
            return (base, off as i32);
        }
        let addr = b.ins().iadd_imm_s(base, off as i64);
        let end = b.ins().iadd_imm_s(addr, size as i64);
        let no_wrap = b.ins().icmp(IntCC::UnsignedGreaterThanOrEqual, end, addr);
        let in_range = |b: &mut FunctionBuilder, lo: Value, hi: Value| {
            let above = b.ins().icmp(IntCC::UnsignedGreaterThanOrEqual, addr, lo);
            let below = b.ins().icmp(IntCC::UnsignedLessThanOrEqual, end, hi);
            b.ins().band(above, below)
        };
        let in_stack = in_range(b, bounds.frame_lo, bounds.stack_top);
        let in_input = in_range(b, bounds.input_lo, bounds.input_hi);
        let inside = b.ins().bor(in_stack, in_input);
        let ok = b.ins().band(inside, no_wrap);
        let cont = b.create_block();
        let slow = b.create_block();
        b.ins().brif(ok, cont, &[], slow, &[]);
        b.seal_block(slow);
        b.switch_to_block(slow);
        b.set_cold_block(slow);
        let allowed = self.ask_runtime(b, addr, size, write);
        let bad = b.create_block();
        b.ins().brif(allowed, cont, &[], bad, &[]);
        b.seal_block(cont);
        b.seal_block(bad);
        b.switch_to_block(bad);
        self.emit_fault_exit(b, FaultCode::OutOfBounds, pc, Some(addr));
        b.switch_to_block(cont);
        (addr, 0)
    }

    /// Whether the verifier proved the access at `pc` in bounds of trusted
    /// memory on every path that reaches it.
    fn proven(&self, pc: usize) -> bool {
        self.facts
            .and_then(|f| f.access.get(pc))
            .and_then(Option::as_ref)
            .is_some_and(|a| a.in_bounds && !a.regions.is_empty() && a.regions.iter().all(trusted))
    }

    /// `bpfc_check_access(st, addr, size, write)`: whether the run's regions
    /// allow the access (an i32, non-zero when they do).
    fn ask_runtime(
        &mut self,
        b: &mut FunctionBuilder,
        addr: Value,
        size: usize,
        write: bool,
    ) -> Value {
        let callee = self
            .import_runtime(
                b,
                CHECK_ACCESS_SYMBOL,
                &[Abi::Ptr, Abi::I64, Abi::I64, Abi::I32],
                Abi::I32,
            )
            .expect("bpfc_check_access is declared with one signature");
        let size = b.ins().iconst(types::I64, size as i64);
        let write = b.ins().iconst(types::I32, write as i64);
        let st = self.st();
        let call = b.ins().call(callee, &[st, addr, size, write]);
        b.inst_results(call)[0]
    }

    /// `bpfc_load_packet(st, offset, size)` for `ldabs`/`ldind`: r0, or a
    /// return of 0 from the function when the bytes are outside the packet
    /// (legacy loads never share a program with local calls), or a
    /// `PacketLoad` fault when the run has no packet.
    pub(crate) fn load_packet(
        &mut self,
        b: &mut FunctionBuilder,
        pc: usize,
        size: Size,
        offset: Value,
    ) -> Value {
        use bpfc_runtime::net::ldabs::{LOAD_PACKET_SYMBOL, NO_PACKET};
        let callee = self
            .import_runtime(
                b,
                LOAD_PACKET_SYMBOL,
                &[Abi::Ptr, Abi::I64, Abi::I64],
                Abi::I64,
            )
            .expect("bpfc_load_packet is declared with one signature");
        let st = self.st();
        let n = b.ins().iconst(types::I64, size.bytes() as i64);
        let call = b.ins().call(callee, &[st, offset, n]);
        let v = b.inst_results(call)[0];
        let has_packet = b.ins().icmp_imm_s(IntCC::NotEqual, v, NO_PACKET as i64);
        self.fault_unless(b, has_packet, FaultCode::PacketLoad, pc, None);
        let inside = b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, v, 0);
        let cont = b.create_block();
        let outside = b.create_block();
        b.ins().brif(inside, cont, &[], outside, &[]);
        b.seal_block(cont);
        b.seal_block(outside);
        b.switch_to_block(outside);
        let zero = b.ins().iconst(types::I64, 0);
        b.ins().return_(&[zero]);
        b.switch_to_block(cont);
        v
    }

    /// An address register for atomics, which take no offset.
    fn atomic_address(
        &mut self,
        b: &mut FunctionBuilder,
        pc: usize,
        base: Value,
        off: i16,
        size: usize,
    ) -> Value {
        let (addr, off) = self.access(b, pc, base, off, size, true);
        if off == 0 {
            addr
        } else {
            b.ins().iadd_imm_s(addr, off as i64)
        }
    }

    /// Load `size` bytes at `base + off`, zero-extended (sign-extended with
    /// `signed`) to 64 bits.
    pub(crate) fn load(
        &mut self,
        b: &mut FunctionBuilder,
        pc: usize,
        size: Size,
        signed: bool,
        base: Value,
        off: i16,
    ) -> Value {
        let (addr, off) = self.access(b, pc, base, off, size.bytes(), false);
        let flags = self.order.flags();
        if self.order == Order::Swapped && size != Size::B {
            let v = b.ins().load(mem_type(size), flags, addr, off);
            let v = b.ins().bswap(v);
            return extend(b, v, signed);
        }
        let ins = b.ins();
        match (size, signed) {
            (Size::DW, _) => ins.load(types::I64, flags, addr, off),
            (Size::W, false) => ins.uload32(flags, addr, off),
            (Size::W, true) => ins.sload32(flags, addr, off),
            (Size::H, false) => ins.uload16(types::I64, flags, addr, off),
            (Size::H, true) => ins.sload16(types::I64, flags, addr, off),
            (Size::B, false) => ins.uload8(types::I64, flags, addr, off),
            (Size::B, true) => ins.sload8(types::I64, flags, addr, off),
        }
    }

    /// Store the low `size` bytes of the 64-bit `value` at `base + off`.
    pub(crate) fn store(
        &mut self,
        b: &mut FunctionBuilder,
        pc: usize,
        size: Size,
        base: Value,
        off: i16,
        value: Value,
    ) {
        let (addr, off) = self.access(b, pc, base, off, size.bytes(), true);
        let flags = self.order.flags();
        if self.order == Order::Swapped && size != Size::B {
            let v = narrow(b, size, value);
            let v = b.ins().bswap(v);
            b.ins().store(flags, v, addr, off);
            return;
        }
        let ins = b.ins();
        match size {
            Size::DW => ins.store(flags, value, addr, off),
            Size::W => ins.istore32(flags, value, addr, off),
            Size::H => ins.istore16(flags, value, addr, off),
            Size::B => ins.istore8(flags, value, addr, off),
        };
    }

    /// Atomic read-modify-write of a 32- or 64-bit word at `base + off` with
    /// the 64-bit register `value`; returns the old word zero-extended.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn atomic_rmw(
        &mut self,
        b: &mut FunctionBuilder,
        pc: usize,
        size: Size,
        op: AtomicRmwOp,
        base: Value,
        off: i16,
        value: Value,
    ) -> Value {
        let addr = self.atomic_address(b, pc, base, off, size.bytes());
        let flags = self.order.flags();
        let ty = mem_type(size);
        let value = narrow(b, size, value);
        let old = match (self.order, op) {
            (Order::Swapped, AtomicRmwOp::Add) => swapped_atomic_add(b, addr, value),
            (Order::Swapped, _) => {
                // Bitwise operations and exchange commute with a byte swap.
                let v = b.ins().bswap(value);
                let old = b.ins().atomic_rmw(ty, flags, op, addr, v);
                b.ins().bswap(old)
            }
            _ => b.ins().atomic_rmw(ty, flags, op, addr, value),
        };
        extend(b, old, false)
    }

    /// Atomic compare-and-exchange at `base + off`; returns the old word
    /// zero-extended.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn atomic_cas(
        &mut self,
        b: &mut FunctionBuilder,
        pc: usize,
        size: Size,
        base: Value,
        off: i16,
        expected: Value,
        replacement: Value,
    ) -> Value {
        let addr = self.atomic_address(b, pc, base, off, size.bytes());
        let flags = self.order.flags();
        let mut expected = narrow(b, size, expected);
        let mut replacement = narrow(b, size, replacement);
        if self.order == Order::Swapped {
            expected = b.ins().bswap(expected);
            replacement = b.ins().bswap(replacement);
        }
        let mut old = b.ins().atomic_cas(flags, addr, expected, replacement);
        if self.order == Order::Swapped {
            old = b.ins().bswap(old);
        }
        extend(b, old, false)
    }
}

/// `value` (64-bit) cut to an access of `size`.
fn narrow(b: &mut FunctionBuilder, size: Size, value: Value) -> Value {
    if size == Size::DW {
        value
    } else {
        b.ins().ireduce(mem_type(size), value)
    }
}

/// A loaded value widened to 64 bits.
fn extend(b: &mut FunctionBuilder, v: Value, signed: bool) -> Value {
    if b.func.dfg.value_type(v) == types::I64 {
        v
    } else if signed {
        b.ins().sextend(types::I64, v)
    } else {
        b.ins().uextend(types::I64, v)
    }
}

/// Atomic add on a word stored in the opposite byte order: a
/// compare-and-swap loop, since the carry runs the other way. Returns the old
/// word in native order.
fn swapped_atomic_add(b: &mut FunctionBuilder, addr: Value, value: Value) -> Value {
    let ty = b.func.dfg.value_type(value);
    let flags = MemFlagsData::new();
    let first = b.ins().atomic_load(ty, flags, addr);
    let retry = b.create_block();
    let cur = b.append_block_param(retry, ty);
    let done = b.create_block();
    b.ins().jump(retry, &[first.into()]);
    b.switch_to_block(retry);
    let old = b.ins().bswap(cur);
    let sum = b.ins().iadd(old, value);
    let new = b.ins().bswap(sum);
    let seen = b.ins().atomic_cas(flags, addr, cur, new);
    let stored = b.ins().icmp(IntCC::Equal, seen, cur);
    b.ins().brif(stored, done, &[], retry, &[seen.into()]);
    b.seal_block(retry);
    b.seal_block(done);
    b.switch_to_block(done);
    old
}
