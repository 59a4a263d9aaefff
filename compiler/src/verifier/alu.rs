//! ALU instructions (`check_alu_op`): moves with copies sharing ids,
//! scalar arithmetic through the range rules of [`super::bounds`], and
//! pointer arithmetic with the kernel's restrictions
//! (`adjust_ptr_min_max_vals`).

use super::bounds::{Bounds, ScalarOp};
use super::state::{flag, Reg, RegType, ADD_CONST};
use super::{bail, fmt, Env, VResult};
use crate::isa::{AluOp, ByteOrder, Endian, Insn, Src, Width};

/// Offsets of pointers stay within this (`BPF_MAX_VAR_OFF`).
pub(crate) const MAX_VAR_OFF: i64 = 1 << 29;

/// The operator as the kernel's messages spell it.
fn op_str(op: AluOp) -> &'static str {
    match op {
        AluOp::Add => "+=",
        AluOp::Sub => "-=",
        AluOp::Mul => "*=",
        AluOp::Div | AluOp::SDiv => "/=",
        AluOp::Or => "|=",
        AluOp::And => "&=",
        AluOp::Lsh => "<<=",
        AluOp::Rsh => ">>=",
        AluOp::Mod | AluOp::SMod => "%=",
        AluOp::Xor => "^=",
        AluOp::Mov | AluOp::MovSx(_) => "=",
        AluOp::Arsh => "s>>=",
    }
}

pub(crate) fn check_alu(env: &mut Env, insn: &Insn) -> VResult<()> {
    match *insn {
        Insn::Neg { dst, width } => {
            env.check_src(dst)?;
            env.check_dst(dst)?;
            let r = env.cur.reg_mut(dst.num());
            // A scalar is negated as `0 - x` with the subtraction's range
            // rules and `tnum_neg` (as the kernel does since 6.16); a
            // pointer becomes unknown.
            *r = if r.ty == RegType::Scalar {
                let mut b = Bounds::konst(0);
                b.alu(ScalarOp::Sub, &r.b, width == Width::W32);
                Reg::scalar(b)
            } else {
                Reg::unknown()
            };
            Ok(())
        }
        Insn::End { dst, order, bits } => {
            env.check_src(dst)?;
            env.check_dst(dst)?;
            let swap = match order {
                ByteOrder::Swap => true,
                ByteOrder::ToLe => env.endian == Endian::Big,
                ByteOrder::ToBe => env.endian == Endian::Little,
            };
            let r = env.cur.reg_mut(dst.num());
            *r = if r.ty == RegType::Scalar {
                Reg::scalar(r.b.byte_order(swap, bits))
            } else {
                Reg::unknown()
            };
            Ok(())
        }
        Insn::Alu {
            width,
            op: AluOp::Mov,
            dst,
            src,
        } => check_mov(env, width, dst.num(), src, 0),
        Insn::Alu {
            width,
            op: AluOp::MovSx(bits),
            dst,
            src,
        } => check_mov(env, width, dst.num(), src, bits),
        Insn::Alu {
            width,
            op,
            dst,
            src,
        } => {
            if let Src::Reg(s) = src {
                env.check_src(s)?;
            }
            env.check_src(dst)?;
            if let Src::Imm(imm) = src {
                if matches!(op, AluOp::Div | AluOp::SDiv | AluOp::Mod | AluOp::SMod) && imm == 0 {
                    bail!("div by zero");
                }
                if matches!(op, AluOp::Lsh | AluOp::Rsh | AluOp::Arsh)
                    && (imm < 0 || imm as u32 >= width.bits())
                {
                    bail!("invalid shift {imm}");
                }
            }
            env.check_dst(dst)?;
            adjust_reg_min_max_vals(env, width, op, dst.num(), src)?;
            sanitize_dst(env, dst.num());
            Ok(())
        }
        _ => unreachable!("not an ALU instruction"),
    }
}

/// The kernel's invariant check after an ALU result (ranges forgotten
/// when they contradict each other).
fn sanitize_dst(env: &mut Env, dst: u8) {
    let r = env.cur.reg_mut(dst);
    if r.ty == RegType::Scalar {
        r.b.sanitize();
    }
}

/// `dst = src`, `dst = (sN) src`, `dst = imm`.
fn check_mov(env: &mut Env, width: Width, dst: u8, src: Src, sx_bits: u8) -> VResult<()> {
    if let Src::Reg(s) = src {
        env.check_src(s)?;
    }
    env.check_dst(crate::isa::Reg::new(dst).expect("valid"))?;
    match src {
        Src::Imm(imm) => {
            let v = match width {
                Width::W64 => imm as i64 as u64,
                Width::W32 => imm as u32 as u64,
            };
            *env.cur.reg_mut(dst) = Reg::konst(v);
        }
        Src::Reg(s) => {
            let s = s.num();
            match width {
                Width::W64 if sx_bits == 0 => {
                    assign_scalar_id_before_mov(env, s);
                    let copy = env.cur.reg(s).clone();
                    *env.cur.reg_mut(dst) = copy;
                }
                Width::W64 => {
                    let src_reg = env.cur.reg(s).clone();
                    if src_reg.ty == RegType::Scalar {
                        let no_sext = src_reg.b.umax < (1u64 << (sx_bits - 1));
                        if no_sext {
                            assign_scalar_id_before_mov(env, s);
                        }
                        let mut r = env.cur.reg(s).clone();
                        if !no_sext {
                            clear_scalar_id(&mut r);
                        }
                        r.b.sign_extend(sx_bits as u32 / 8);
                        *env.cur.reg_mut(dst) = r;
                    } else {
                        *env.cur.reg_mut(dst) = Reg::unknown();
                    }
                }
                Width::W32 => {
                    let src_reg = env.cur.reg(s).clone();
                    let mut r = if src_reg.ty == RegType::Scalar {
                        if sx_bits == 0 {
                            let fits = src_reg.b.width() <= 32;
                            if fits {
                                assign_scalar_id_before_mov(env, s);
                            }
                            let mut r = env.cur.reg(s).clone();
                            if !fits {
                                clear_scalar_id(&mut r);
                            }
                            r
                        } else {
                            let no_sext = src_reg.b.umax < (1u64 << (sx_bits - 1));
                            if no_sext {
                                assign_scalar_id_before_mov(env, s);
                            }
                            let mut r = env.cur.reg(s).clone();
                            if !no_sext {
                                clear_scalar_id(&mut r);
                            }
                            r.b.sign_extend32(sx_bits as u32 / 8);
                            r
                        }
                    } else {
                        Reg::unknown()
                    };
                    r.b.zext_32_to_64();
                    r.b.sync();
                    *env.cur.reg_mut(dst) = r;
                }
            }
        }
    }
    sanitize_dst(env, dst);
    Ok(())
}

/// Give a scalar an id before copying it, so the copies learn together.
pub(crate) fn assign_scalar_id_before_mov(env: &mut Env, r: u8) {
    let reg = env.cur.reg(r);
    if reg.ty != RegType::Scalar {
        return;
    }
    if reg.id & ADD_CONST != 0 {
        clear_scalar_id(env.cur.reg_mut(r));
    }
    let reg = env.cur.reg(r);
    if reg.id == 0 && !reg.b.var_off.is_const() {
        let id = env.new_id();
        env.cur.reg_mut(r).id = id;
    }
}

pub(crate) fn clear_scalar_id(r: &mut Reg) {
    r.id = 0;
    r.off = 0;
}

fn scalar_op(op: AluOp) -> Option<ScalarOp> {
    Some(match op {
        AluOp::Add => ScalarOp::Add,
        AluOp::Sub => ScalarOp::Sub,
        AluOp::Mul => ScalarOp::Mul,
        AluOp::And => ScalarOp::And,
        AluOp::Or => ScalarOp::Or,
        AluOp::Xor => ScalarOp::Xor,
        AluOp::Lsh => ScalarOp::Lsh,
        AluOp::Rsh => ScalarOp::Rsh,
        AluOp::Arsh => ScalarOp::Arsh,
        _ => return None,
    })
}

fn adjust_reg_min_max_vals(
    env: &mut Env,
    width: Width,
    op: AluOp,
    dst: u8,
    src: Src,
) -> VResult<()> {
    let dst_reg = env.cur.reg(dst).clone();
    let alu32 = width == Width::W32;
    let (src_reg, src_is_reg) = match src {
        Src::Reg(s) => (env.cur.reg(s.num()).clone(), Some(s.num())),
        Src::Imm(imm) => (Reg::konst(imm as i64 as u64), None),
    };
    if src_reg.ty != RegType::Scalar {
        if dst_reg.ty != RegType::Scalar {
            if op == AluOp::Sub {
                // Pointer minus pointer is an unknown number.
                *env.cur.reg_mut(dst) = Reg::unknown();
                return Ok(());
            }
            bail!("R{dst} pointer {} pointer prohibited", op_str(op));
        }
        // scalar += pointer: the result is the pointer moved by the scalar.
        env.mark_chain_precision(dst);
        return adjust_ptr_min_max_vals(env, width, op, dst, &src_reg, &dst_reg, true);
    }
    if dst_reg.ty != RegType::Scalar {
        if let Some(s) = src_is_reg {
            env.mark_chain_precision(s);
        }
        return adjust_ptr_min_max_vals(env, width, op, dst, &dst_reg, &src_reg, false);
    }
    // Two scalars: a precise destination makes the source precise too.
    if dst_reg.precise {
        if let Some(s) = src_is_reg {
            env.mark_chain_precision(s);
        }
    }
    let mut r = dst_reg;
    match scalar_op(op) {
        Some(sop) if Bounds::op_is_tracked(sop, &src_reg.b, alu32) => {
            if sop == ScalarOp::And || sop == ScalarOp::Or {
                maybe_fork_scalars(env, dst, &mut r, &src_reg)?;
            }
            r.b.alu(sop, &src_reg.b, alu32);
        }
        _ => {
            r = Reg::unknown();
        }
    }
    // Linked scalars: rX = rY + const keeps the relation to rY.
    let add_const = op == AluOp::Add
        && !alu32
        && r.id != 0
        && src_reg.is_const(false)
        && src_is_reg != Some(dst);
    if add_const {
        let val = src_reg.const_value(false);
        if r.id & ADD_CONST != 0 || val > i32::MAX as u64 {
            clear_scalar_id(&mut r);
        } else {
            r.id |= ADD_CONST;
            r.off = val as i32;
        }
    } else {
        clear_scalar_id(&mut r);
    }
    *env.cur.reg_mut(dst) = r;
    Ok(())
}

/// `x & K` or `x | K` when x is known to be -1 or 0: explore both values
/// separately (`maybe_fork_scalars`).
fn maybe_fork_scalars(env: &mut Env, dst: u8, r: &mut Reg, src: &Reg) -> VResult<()> {
    if !src.b.var_off.is_const() {
        return Ok(());
    }
    let alu32 = if r.b.smin == -1 && r.b.smax == 0 {
        false
    } else if r.b.s32_min == -1 && r.b.s32_max == 0 {
        true
    } else {
        return Ok(());
    };
    let pc = env.insn_idx;
    let branch = env.push_branch(pc, pc)?;
    let reg = &mut branch.cur_mut().regs[dst as usize];
    if alu32 {
        reg.b.mark32_known(0);
        r.b.mark32_known(u32::MAX);
    } else {
        *reg = Reg::konst(0);
        *r = Reg::konst(u64::MAX);
    }
    // The pushed branch re-executes this instruction with the value 0.
    Ok(())
}

/// Pointer arithmetic: `ptr op scalar` (or `scalar + ptr`, `ptr_is_src`).
fn adjust_ptr_min_max_vals(
    env: &mut Env,
    width: Width,
    op: AluOp,
    dst: u8,
    ptr: &Reg,
    off: &Reg,
    ptr_is_src: bool,
) -> VResult<()> {
    let known = off.b.var_off.is_const();
    let (smin_val, smax_val, umin_val, umax_val) = (off.b.smin, off.b.smax, off.b.umin, off.b.umax);
    if (known && (smin_val != smax_val || umin_val != umax_val))
        || smin_val > smax_val
        || umin_val > umax_val
    {
        // Offsets from dead branches taint the result.
        *env.cur.reg_mut(dst) = Reg::unknown();
        return Ok(());
    }
    if width == Width::W32 {
        if op == AluOp::Sub {
            *env.cur.reg_mut(dst) = Reg::unknown();
            return Ok(());
        }
        bail!("R{dst} 32-bit pointer arithmetic prohibited");
    }
    if ptr.flags & flag::MAYBE_NULL != 0 {
        bail!(
            "R{dst} pointer arithmetic on {} prohibited, null-check it first",
            fmt::type_str(ptr)
        );
    }
    match ptr.ty {
        RegType::Ctx
        | RegType::MapValue
        | RegType::MapKey
        | RegType::Stack
        | RegType::PacketMeta
        | RegType::Packet
        | RegType::TpBuffer
        | RegType::BtfId
        | RegType::Mem
        | RegType::Buf
        | RegType::Func
        | RegType::DynptrPtr => {}
        RegType::FlowKeys if known => {}
        RegType::FlowKeys | RegType::MapPtr if known && smin_val == 0 && op == AluOp::Add => {}
        _ => bail!(
            "R{dst} pointer arithmetic on {} prohibited",
            fmt::type_str(ptr)
        ),
    }
    let ty_name = fmt::type_str(ptr);
    check_reg_sane_offset(off, &ty_name)?;
    check_reg_sane_offset(ptr, &ty_name)?;
    let mut d = ptr.clone();
    d.b.unbound32();
    let (smin_ptr, smax_ptr, umin_ptr, umax_ptr) = (ptr.b.smin, ptr.b.smax, ptr.b.umin, ptr.b.umax);
    match op {
        AluOp::Add => {
            let sum = ptr.off as i64 + smin_val;
            if known && sum == sum as i32 as i64 {
                d.b.smin = smin_ptr;
                d.b.smax = smax_ptr;
                d.b.umin = umin_ptr;
                d.b.umax = umax_ptr;
                d.b.var_off = ptr.b.var_off;
                d.off = sum as i32;
            } else {
                match (
                    smin_ptr.checked_add(smin_val),
                    smax_ptr.checked_add(smax_val),
                ) {
                    (Some(a), Some(b)) => (d.b.smin, d.b.smax) = (a, b),
                    _ => (d.b.smin, d.b.smax) = (i64::MIN, i64::MAX),
                }
                match (
                    umin_ptr.checked_add(umin_val),
                    umax_ptr.checked_add(umax_val),
                ) {
                    (Some(a), Some(b)) => (d.b.umin, d.b.umax) = (a, b),
                    _ => (d.b.umin, d.b.umax) = (0, u64::MAX),
                }
                d.b.var_off = ptr.b.var_off.add(off.b.var_off);
                d.off = ptr.off;
                if ptr.is_pkt() {
                    d.id = env.new_id();
                    d.range = 0;
                }
            }
        }
        AluOp::Sub => {
            if ptr_is_src {
                bail!("R{dst} tried to subtract pointer from scalar");
            }
            if ptr.ty == RegType::Stack {
                bail!("R{dst} subtraction from stack pointer prohibited");
            }
            let diff = ptr.off as i64 - smin_val;
            if known && diff == diff as i32 as i64 {
                d.b.smin = smin_ptr;
                d.b.smax = smax_ptr;
                d.b.umin = umin_ptr;
                d.b.umax = umax_ptr;
                d.b.var_off = ptr.b.var_off;
                d.id = ptr.id;
                d.off = diff as i32;
            } else {
                match (
                    smin_ptr.checked_sub(smax_val),
                    smax_ptr.checked_sub(smin_val),
                ) {
                    (Some(a), Some(b)) => (d.b.smin, d.b.smax) = (a, b),
                    _ => (d.b.smin, d.b.smax) = (i64::MIN, i64::MAX),
                }
                if umin_ptr < umax_val {
                    (d.b.umin, d.b.umax) = (0, u64::MAX);
                } else {
                    d.b.umin = umin_ptr - umax_val;
                    d.b.umax = umax_ptr.wrapping_sub(umin_val);
                }
                d.b.var_off = ptr.b.var_off.sub(off.b.var_off);
                d.off = ptr.off;
                if ptr.is_pkt() {
                    d.id = env.new_id();
                    if smin_val < 0 {
                        d.range = 0;
                    }
                }
            }
        }
        AluOp::And | AluOp::Or | AluOp::Xor => {
            bail!(
                "R{dst} bitwise operator {} on pointer prohibited",
                op_str(op)
            )
        }
        _ => bail!(
            "R{dst} pointer arithmetic with {} operator prohibited",
            op_str(op)
        ),
    }
    check_reg_sane_offset(&d, &ty_name)?;
    d.b.sync();
    *env.cur.reg_mut(dst) = d;
    Ok(())
}

/// Offsets that could overflow the kernel's pointer arithmetic are refused.
fn check_reg_sane_offset(r: &Reg, ty: &str) -> VResult<()> {
    let known = r.b.var_off.is_const();
    let val = r.b.var_off.value as i64;
    if known && (val >= MAX_VAR_OFF || val <= -MAX_VAR_OFF) {
        bail!("math between {ty} pointer and {val} is not allowed");
    }
    if r.off as i64 >= MAX_VAR_OFF || r.off as i64 <= -MAX_VAR_OFF {
        bail!("{ty} pointer offset {} is not allowed", r.off);
    }
    if r.b.smin == i64::MIN {
        bail!("math between {ty} pointer and register with unbounded min value is not allowed");
    }
    if r.b.smin >= MAX_VAR_OFF || r.b.smin <= -MAX_VAR_OFF {
        bail!("value {} makes {ty} pointer be out of bounds", r.b.smin);
    }
    Ok(())
}
