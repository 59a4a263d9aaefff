//! Pure ALU semantics of ISA v4: binary operations, negation and byte-order
//! conversion at both widths, plus the value of an immediate operand.
//!
//! 32-bit operations read the low halves of their operands and zero-extend
//! their result; 64-bit operations see immediates sign-extended to 64 bits.

use crate::isa::{AluOp, ByteOrder, Endian, Width};

/// The value of an immediate operand at `width`: sign-extended to 64 bits for
/// 64-bit operations, the raw 32 bits (zero-extended) for 32-bit ones.
pub fn imm(width: Width, imm: i32) -> u64 {
    match width {
        Width::W64 => imm as i64 as u64,
        Width::W32 => imm as u32 as u64,
    }
}

/// `dst op src` at `width`.
pub fn alu(width: Width, op: AluOp, dst: u64, src: u64) -> u64 {
    match width {
        Width::W64 => alu64(op, dst, src),
        Width::W32 => alu32(op, dst as u32, src as u32) as u64,
    }
}

fn alu64(op: AluOp, dst: u64, src: u64) -> u64 {
    match op {
        AluOp::Add => dst.wrapping_add(src),
        AluOp::Sub => dst.wrapping_sub(src),
        AluOp::Mul => dst.wrapping_mul(src),
        AluOp::Div => dst.checked_div(src).unwrap_or(0),
        AluOp::SDiv => {
            if src == 0 {
                0
            } else {
                (dst as i64).wrapping_div(src as i64) as u64
            }
        }
        AluOp::Mod => dst.checked_rem(src).unwrap_or(dst),
        AluOp::SMod => {
            if src == 0 {
                dst
            } else {
                (dst as i64).wrapping_rem(src as i64) as u64
            }
        }
        AluOp::Or => dst | src,
        AluOp::And => dst & src,
        AluOp::Xor => dst ^ src,
        AluOp::Lsh => dst << (src & 63),
        AluOp::Rsh => dst >> (src & 63),
        AluOp::Arsh => ((dst as i64) >> (src & 63)) as u64,
        AluOp::Mov => src,
        AluOp::MovSx(bits) => sign_extend(src, bits),
    }
}

fn alu32(op: AluOp, dst: u32, src: u32) -> u32 {
    match op {
        AluOp::Add => dst.wrapping_add(src),
        AluOp::Sub => dst.wrapping_sub(src),
        AluOp::Mul => dst.wrapping_mul(src),
        AluOp::Div => dst.checked_div(src).unwrap_or(0),
        AluOp::SDiv => {
            if src == 0 {
                0
            } else {
                (dst as i32).wrapping_div(src as i32) as u32
            }
        }
        AluOp::Mod => dst.checked_rem(src).unwrap_or(dst),
        AluOp::SMod => {
            if src == 0 {
                dst
            } else {
                (dst as i32).wrapping_rem(src as i32) as u32
            }
        }
        AluOp::Or => dst | src,
        AluOp::And => dst & src,
        AluOp::Xor => dst ^ src,
        AluOp::Lsh => dst << (src & 31),
        AluOp::Rsh => dst >> (src & 31),
        AluOp::Arsh => ((dst as i32) >> (src & 31)) as u32,
        AluOp::Mov => src,
        AluOp::MovSx(bits) => sign_extend(src as u64, bits) as u32,
    }
}

/// Sign-extend the low `bits` (8, 16 or 32; anything else: 64) of `v`.
pub fn sign_extend(v: u64, bits: u8) -> u64 {
    match bits {
        8 => v as i8 as i64 as u64,
        16 => v as i16 as i64 as u64,
        32 => v as i32 as i64 as u64,
        _ => v,
    }
}

/// `-dst` at `width`.
pub fn neg(width: Width, dst: u64) -> u64 {
    match width {
        Width::W64 => dst.wrapping_neg(),
        Width::W32 => (dst as u32).wrapping_neg() as u64,
    }
}

/// Byte-order conversion of the low `bits` (16, 32 or 64) of `dst` on an
/// eBPF machine of byte order `machine`; the result is zero-extended.
/// `le`/`be` swap when the machine's order differs, `bswap` always does.
pub fn end(order: ByteOrder, bits: u8, dst: u64, machine: Endian) -> u64 {
    let swap = match order {
        ByteOrder::Swap => true,
        ByteOrder::ToLe => machine == Endian::Big,
        ByteOrder::ToBe => machine == Endian::Little,
    };
    match (swap, bits) {
        (false, 16) => dst as u16 as u64,
        (false, 32) => dst as u32 as u64,
        (false, _) => dst,
        (true, 16) => (dst as u16).swap_bytes() as u64,
        (true, 32) => (dst as u32).swap_bytes() as u64,
        (true, _) => dst.swap_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isa::AluOp::*;
    use crate::isa::Width::{W32, W64};

    const MIN64: u64 = i64::MIN as u64;
    const MIN32: u64 = i32::MIN as u32 as u64;
    const NEG1: u64 = u64::MAX;

    #[test]
    fn immediates() {
        assert_eq!(imm(W64, -1), u64::MAX);
        assert_eq!(imm(W32, -1), 0xffff_ffff);
        assert_eq!(imm(W64, i32::MIN), 0xffff_ffff_8000_0000);
        assert_eq!(imm(W64, 7), 7);
    }

    #[test]
    fn add_sub_mul_wrap() {
        assert_eq!(alu(W64, Add, u64::MAX, 1), 0);
        assert_eq!(alu(W32, Add, 0xffff_ffff, 1), 0);
        assert_eq!(alu(W32, Add, 0x1_0000_0001, 0x1_0000_0001), 2);
        assert_eq!(alu(W64, Sub, 0, 1), u64::MAX);
        assert_eq!(alu(W32, Sub, 0, 1), 0xffff_ffff);
        assert_eq!(alu(W64, Mul, MIN64, NEG1), MIN64);
        assert_eq!(alu(W32, Mul, MIN32, NEG1), MIN32);
        assert_eq!(alu(W32, Mul, 0x1_0000_0002, 3), 6);
    }

    #[test]
    fn division_by_zero() {
        assert_eq!(alu(W64, Div, 5, 0), 0);
        assert_eq!(alu(W32, Div, 5, 0), 0);
        assert_eq!(alu(W64, SDiv, 5, 0), 0);
        assert_eq!(alu(W32, SDiv, 5, 0), 0);
        // 32-bit: the divisor is the low half only.
        assert_eq!(alu(W32, Div, 5, 0x1_0000_0000), 0);
        assert_eq!(
            alu(W64, Mod, 0xdead_beef_1234_5678, 0),
            0xdead_beef_1234_5678
        );
        assert_eq!(alu(W64, SMod, NEG1, 0), NEG1);
        // 32-bit modulo by zero leaves the low half, zero-extended.
        assert_eq!(alu(W32, Mod, 0xdead_beef_1234_5678, 0), 0x1234_5678);
        assert_eq!(alu(W32, SMod, NEG1, 0), 0xffff_ffff);
        assert_eq!(alu(W32, Mod, 7, 0x1_0000_0000), 7);
    }

    #[test]
    fn signed_division_overflow() {
        assert_eq!(alu(W64, SDiv, MIN64, NEG1), MIN64);
        assert_eq!(alu(W64, SMod, MIN64, NEG1), 0);
        assert_eq!(alu(W32, SDiv, MIN32, NEG1), MIN32);
        assert_eq!(alu(W32, SMod, MIN32, NEG1), 0);
        // A 64-bit -1 whose low half is -1 still counts for 32 bits.
        assert_eq!(alu(W32, SDiv, 0xffff_ffff_8000_0000, 0xffff_ffff), MIN32);
    }

    #[test]
    fn signed_division_rounds_toward_zero() {
        assert_eq!(alu(W64, SDiv, -7i64 as u64, 2), -3i64 as u64);
        assert_eq!(alu(W64, SMod, -7i64 as u64, 2), -1i64 as u64);
        assert_eq!(alu(W64, SMod, 7, -2i64 as u64), 1);
        assert_eq!(alu(W32, SDiv, -7i32 as u32 as u64, 2), -3i32 as u32 as u64);
        assert_eq!(
            alu(W32, SMod, -7i32 as u32 as u64, -2i32 as u32 as u64),
            -1i32 as u32 as u64
        );
        assert_eq!(alu(W64, Div, NEG1, 2), u64::MAX / 2);
        assert_eq!(alu(W64, Mod, NEG1, 10), u64::MAX % 10);
    }

    #[test]
    fn shifts_mask_their_count() {
        assert_eq!(alu(W64, Lsh, 1, 64), 1);
        assert_eq!(alu(W64, Lsh, 1, 65), 2);
        assert_eq!(alu(W64, Lsh, 1, 63), MIN64);
        assert_eq!(alu(W32, Lsh, 1, 32), 1);
        assert_eq!(alu(W32, Lsh, 1, 31), MIN32);
        assert_eq!(alu(W32, Lsh, 0x1_0000_0001, 1), 2);
        assert_eq!(alu(W64, Rsh, MIN64, 127), 1);
        assert_eq!(alu(W32, Rsh, 0xffff_ffff_8000_0000, 31), 1);
        assert_eq!(alu(W64, Arsh, MIN64, 63), NEG1);
        assert_eq!(alu(W64, Arsh, MIN64, 64), MIN64);
        assert_eq!(alu(W32, Arsh, MIN32, 31), 0xffff_ffff);
        assert_eq!(alu(W32, Arsh, MIN32, 32 + 4), 0xf800_0000);
        assert_eq!(alu(W64, Arsh, MIN32, 4), MIN32 >> 4);
        assert_eq!(alu(W64, Lsh, 1, -1i64 as u64), MIN64);
    }

    #[test]
    fn bitwise_32_zero_extends() {
        assert_eq!(alu(W32, Or, 0xffff_0000_0000_0000, 1), 1);
        assert_eq!(alu(W32, And, NEG1, NEG1), 0xffff_ffff);
        assert_eq!(alu(W32, Xor, NEG1, 0), 0xffff_ffff);
        assert_eq!(alu(W64, Xor, NEG1, 0), NEG1);
    }

    #[test]
    fn moves() {
        assert_eq!(alu(W32, Mov, 0, NEG1), 0xffff_ffff);
        assert_eq!(alu(W64, Mov, 0, imm(W64, -1)), NEG1);
        assert_eq!(alu(W32, Mov, 0, imm(W32, -1)), 0xffff_ffff);
        assert_eq!(alu(W64, MovSx(8), 0, 0x80), 0xffff_ffff_ffff_ff80);
        assert_eq!(alu(W64, MovSx(8), 0, 0x17f), 0x7f);
        assert_eq!(alu(W64, MovSx(16), 0, 0x8000), 0xffff_ffff_ffff_8000);
        assert_eq!(alu(W64, MovSx(32), 0, 0x8000_0000), 0xffff_ffff_8000_0000);
        assert_eq!(alu(W64, MovSx(32), 0, 0x1_7fff_ffff), 0x7fff_ffff);
        assert_eq!(alu(W32, MovSx(8), 0, 0x80), 0xffff_ff80);
        assert_eq!(alu(W32, MovSx(16), 0, 0xffff_8000), 0xffff_8000);
        assert_eq!(alu(W32, MovSx(16), 0, 0x7fff), 0x7fff);
    }

    #[test]
    fn negation() {
        assert_eq!(neg(W64, 1), NEG1);
        assert_eq!(neg(W64, MIN64), MIN64);
        assert_eq!(neg(W64, 0), 0);
        assert_eq!(neg(W32, 1), 0xffff_ffff);
        assert_eq!(neg(W32, MIN32), MIN32);
        assert_eq!(neg(W32, 0xffff_ffff_0000_0000), 0);
    }

    #[test]
    fn byte_order_is_the_machines_not_the_hosts() {
        let v = 0x0123_4567_89ab_cdef;
        let (le, be) = (Endian::Little, Endian::Big);
        assert_eq!(end(ByteOrder::ToBe, 16, v, le), 0xefcd);
        assert_eq!(end(ByteOrder::ToBe, 32, v, le), 0xefcd_ab89);
        assert_eq!(end(ByteOrder::ToBe, 64, v, le), 0xefcd_ab89_6745_2301);
        assert_eq!(end(ByteOrder::ToLe, 16, v, le), 0xcdef);
        assert_eq!(end(ByteOrder::ToLe, 32, v, le), 0x89ab_cdef);
        assert_eq!(end(ByteOrder::ToLe, 64, v, le), v);
        assert_eq!(end(ByteOrder::ToLe, 32, v, be), 0xefcd_ab89);
        assert_eq!(end(ByteOrder::ToBe, 32, v, be), 0x89ab_cdef);
        for machine in [le, be] {
            assert_eq!(end(ByteOrder::Swap, 16, v, machine), 0xefcd);
            assert_eq!(end(ByteOrder::Swap, 64, v, machine), 0xefcd_ab89_6745_2301);
        }
    }
}
