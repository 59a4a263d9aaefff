//! ALU and ALU64: arithmetic, logic, shifts, moves, negation, byte order.
//! Division and modulo never trap: a zero divisor gives 0 (div) or leaves the
//! dividend (mod), and signed MIN / -1 gives MIN (sdiv) or 0 (smod), so the
//! trapping Cranelift instructions only ever see safe operands.

use super::Translator;
use crate::isa::{AluOp, ByteOrder, Endian, Reg, Src, Width};
use cranelift_codegen::ir::{condcodes::IntCC, types, InstBuilder, Type, Value};
use cranelift_module::Module;

impl<M: Module> Translator<'_, '_, '_, M> {
    pub(super) fn alu(&mut self, width: Width, op: AluOp, dst: Reg, src: Src) {
        let ty = if width == Width::W64 {
            types::I64
        } else {
            types::I32
        };
        if let (AluOp::Mov, Src::Imm(imm)) = (op, src) {
            let v = match width {
                Width::W64 => imm as i64,
                Width::W32 => imm as u32 as i64,
            };
            let v = self.b.ins().iconst(types::I64, v);
            return self.set(dst, v);
        }
        let b = self.operand(width, src);
        if let AluOp::Mov = op {
            self.set_result(width, dst, b);
            // A 64-bit copy of a register holding a map still holds it.
            if let (Width::W64, Src::Reg(s)) = (width, src) {
                self.maps[dst.index()] = self.maps[s.index()];
            }
            return;
        }
        if let AluOp::MovSx(bits) = op {
            let narrow = Type::int(bits as u16).unwrap_or(types::I32);
            let v = if narrow == ty {
                b
            } else {
                self.b.ins().ireduce(narrow, b)
            };
            let v = if narrow == ty {
                v
            } else {
                self.b.ins().sextend(ty, v)
            };
            return self.set_result(width, dst, v);
        }
        let a = self.dst_value(width, dst);
        let imm = match src {
            Src::Imm(i) => Some(i),
            Src::Reg(_) => None,
        };
        if matches!(op, AluOp::Div | AluOp::SDiv | AluOp::Mod | AluOp::SMod) {
            let r = self.divmod(op, ty, a, b, imm);
            return self.set_result(width, dst, r);
        }
        let ins = self.b.ins();
        let r = match op {
            AluOp::Add => ins.iadd(a, b),
            AluOp::Sub => ins.isub(a, b),
            AluOp::Mul => ins.imul(a, b),
            AluOp::Or => ins.bor(a, b),
            AluOp::And => ins.band(a, b),
            AluOp::Xor => ins.bxor(a, b),
            // Cranelift masks shift counts to the type width, as eBPF does.
            AluOp::Lsh => ins.ishl(a, b),
            AluOp::Rsh => ins.ushr(a, b),
            AluOp::Arsh => ins.sshr(a, b),
            AluOp::Div | AluOp::SDiv | AluOp::Mod | AluOp::SMod | AluOp::Mov | AluOp::MovSx(_) => {
                unreachable!("handled above")
            }
        };
        self.set_result(width, dst, r);
    }

    /// Division and modulo with eBPF's total semantics. A constant divisor
    /// other than 0 and -1 needs no guard.
    fn divmod(&mut self, op: AluOp, ty: Type, a: Value, d: Value, imm: Option<i32>) -> Value {
        let signed = matches!(op, AluOp::SDiv | AluOp::SMod);
        let is_div = matches!(op, AluOp::Div | AluOp::SDiv);
        // The immediate as the operation sees it (32-bit: its low bits).
        let k = imm.map(|i| {
            if ty == types::I32 {
                i as u32 as i64
            } else {
                i as i64
            }
        });
        match k {
            Some(0) => {
                return if is_div {
                    self.b.ins().iconst(ty, 0)
                } else {
                    a
                }
            }
            Some(k) if !(signed && (k == -1 || (ty == types::I32 && k == u32::MAX as i64))) => {
                return match op {
                    AluOp::Div => self.b.ins().udiv(a, d),
                    AluOp::SDiv => self.b.ins().sdiv(a, d),
                    AluOp::Mod => self.b.ins().urem(a, d),
                    _ => self.b.ins().srem(a, d),
                };
            }
            _ => {}
        }
        let zero = self.b.ins().iconst(ty, 0);
        let one = self.b.ins().iconst(ty, 1);
        let d_zero = self.b.ins().icmp_imm_s(IntCC::Equal, d, 0);
        if !signed {
            let safe = self.b.ins().select(d_zero, one, d);
            return if is_div {
                let q = self.b.ins().udiv(a, safe);
                self.b.ins().select(d_zero, zero, q)
            } else {
                let r = self.b.ins().urem(a, safe);
                self.b.ins().select(d_zero, a, r)
            };
        }
        let d_neg1 = self.b.ins().icmp_imm_s(IntCC::Equal, d, -1);
        let special = self.b.ins().bor(d_zero, d_neg1);
        let safe = self.b.ins().select(special, one, d);
        if is_div {
            let q = self.b.ins().sdiv(a, safe);
            let neg = self.b.ins().ineg(a);
            let q = self.b.ins().select(d_neg1, neg, q);
            self.b.ins().select(d_zero, zero, q)
        } else {
            let r = self.b.ins().srem(a, safe);
            let r = self.b.ins().select(d_neg1, zero, r);
            self.b.ins().select(d_zero, a, r)
        }
    }

    pub(super) fn neg(&mut self, width: Width, dst: Reg) {
        let a = self.dst_value(width, dst);
        let r = self.b.ins().ineg(a);
        self.set_result(width, dst, r);
    }

    /// Byte-order operations: `le`/`be` are relative to the bytecode's byte
    /// order (the eBPF machine's), not the target's; `bswap` always swaps.
    pub(super) fn end(&mut self, order: ByteOrder, bits: u8, dst: Reg) {
        let swap = match order {
            ByteOrder::Swap => true,
            ByteOrder::ToLe => self.env.endian() == Endian::Big,
            ByteOrder::ToBe => self.env.endian() == Endian::Little,
        };
        let v = self.get(dst);
        let r = if bits == 64 {
            if swap {
                self.b.ins().bswap(v)
            } else {
                v
            }
        } else {
            let narrow = if bits == 16 { types::I16 } else { types::I32 };
            let n = self.b.ins().ireduce(narrow, v);
            let n = if swap { self.b.ins().bswap(n) } else { n };
            self.b.ins().uextend(types::I64, n)
        };
        self.set(dst, r);
    }
}
