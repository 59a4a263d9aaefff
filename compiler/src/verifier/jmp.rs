//! Conditional jumps (`check_cond_jmp_op`): decide the branch when the
//! operands settle it, otherwise fork and narrow each side: scalar ranges,
//! copies sharing an id, null checks of maybe-null pointers, packet ranges
//! proven by comparing with the packet's end.

use super::bounds::{self, Cond};
use super::state::{flag, Reg, RegType, State, ADD_CONST, AT_PKT_END, BEYOND_PKT_END};
use super::{bail, Env, VResult};
use crate::isa::{Insn, Src, Width};

pub(crate) fn check_cond_jmp(env: &mut Env, insn: &Insn) -> VResult<()> {
    let Insn::Jmp {
        width,
        cond,
        dst,
        src,
        off,
    } = *insn
    else {
        unreachable!()
    };
    let pc = env.insn_idx;
    let target = (pc as i64 + 1 + off as i64) as usize;
    env.check_src(dst)?;
    let dreg = dst.num();
    let sreg = match src {
        Src::Reg(s) => {
            env.check_src(s)?;
            Some(s.num())
        }
        Src::Imm(_) => None,
    };
    let dst_reg = env.cur.reg(dreg).clone();
    let src_reg = match src {
        Src::Reg(s) => env.cur.reg(s.num()).clone(),
        Src::Imm(imm) => Reg::konst(imm as i64 as u64),
    };
    let jmp32 = width == Width::W32;
    let c = Cond::from_jmp(cond);
    if src_reg.ty == RegType::Stack {
        if let Some(h) = env.cur_hist() {
            h.src_stack = sreg.is_some();
        }
    }
    if dst_reg.ty == RegType::Stack {
        if let Some(h) = env.cur_hist() {
            h.dst_stack = true;
        }
    }
    let pred = is_branch_taken(&dst_reg, &src_reg, c, jmp32);
    if pred.is_some() {
        // The decision rests on the operands' values.
        if dst_reg.ty == RegType::Scalar {
            env.mark_chain_precision(dreg);
        }
        if let Some(s) = sreg {
            if src_reg.ty == RegType::Scalar {
                env.mark_chain_precision(s);
            }
        }
    }
    match pred {
        Some(true) => {
            if env.logging() {
                env.log_state();
            }
            env.insn_idx = target - 1;
            return Ok(());
        }
        Some(false) => {
            if env.logging() {
                env.log_state();
            }
            return Ok(());
        }
        None => {}
    }
    // Scalars sharing an id with an operand learn with it: remember them
    // for precision tracking.
    let mut linked = Vec::new();
    for r in [sreg.map(|_| &src_reg), Some(&dst_reg)]
        .into_iter()
        .flatten()
    {
        if r.ty == RegType::Scalar && r.id != 0 {
            collect_linked(&env.cur, r.id & !ADD_CONST, &mut linked);
        }
    }
    linked.sort_unstable();
    linked.dedup();
    if linked.len() > 1 {
        if let Some(h) = env.cur_hist() {
            h.linked = Some(linked.into_boxed_slice());
        }
    }
    // Fork: the pushed state takes the jump, the current one falls through.
    env.push_branch(target, pc)?;
    env.cur_path = env.push_path(pc, pc + 1, env.cur_path);
    let mut other = env.pending.pop().expect("just pushed");
    {
        let this = &mut env.cur;
        let that = &mut other.state;
        if dst_reg.ty == RegType::Scalar && src_reg.ty == RegType::Scalar {
            // jump taken: cond holds in `that`; fall-through: negation in `this`.
            let mut t1 = that.reg(dreg).clone();
            let mut t2 = match sreg {
                Some(s) => that.reg(s).clone(),
                None => src_reg.clone(),
            };
            bounds::refine(&mut t1.b, &mut t2.b, c, jmp32);
            let mut f1 = this.reg(dreg).clone();
            let mut f2 = match sreg {
                Some(s) => this.reg(s).clone(),
                None => src_reg.clone(),
            };
            bounds::refine(&mut f1.b, &mut f2.b, c.negate(), jmp32);
            for r in [&mut t1, &mut t2, &mut f1, &mut f2] {
                r.b.sanitize();
            }
            *that.reg_mut(dreg) = t1.clone();
            *this.reg_mut(dreg) = f1.clone();
            if let Some(s) = sreg {
                *that.reg_mut(s) = t2.clone();
                *this.reg_mut(s) = f2.clone();
                if t2.id != 0 {
                    sync_linked_regs(that, &t2);
                    sync_linked_regs(this, &f2);
                }
            }
            if t1.id != 0 {
                sync_linked_regs(that, &t1);
                sync_linked_regs(this, &f1);
            }
        }
        // Comparing two pointers for equality: one known non-null makes the
        // other non-null on the equal side.
        if !jmp32
            && sreg.is_some()
            && dst_reg.is_pointer()
            && src_reg.is_pointer()
            && dst_reg.ty != RegType::BtfId
            && src_reg.ty != RegType::BtfId
        {
            let eq_side: Option<&mut State> = match c {
                Cond::Eq => Some(that),
                Cond::Ne => Some(this),
                _ => None,
            };
            if let (Some(st), Some(s)) = (eq_side, sreg) {
                if reg_not_null(&dst_reg) && src_reg.maybe_null() {
                    mark_ptr_not_null(&env.maps, st.reg_mut(s));
                }
                if reg_not_null(&src_reg) && dst_reg.maybe_null() {
                    mark_ptr_not_null(&env.maps, st.reg_mut(dreg));
                }
            }
        }
    }
    if !jmp32
        && sreg.is_none()
        && src_reg.b.var_off.equals_const(0)
        && matches!(c, Cond::Eq | Cond::Ne)
        && dst_reg.maybe_null()
    {
        // `if r == 0`: on one side the pointer (and its copies) is NULL,
        // on the other it is valid.
        mark_ptr_or_null_regs(&env.maps, &mut env.cur, dreg, c == Cond::Ne);
        mark_ptr_or_null_regs(&env.maps, &mut other.state, dreg, c == Cond::Eq);
    } else {
        // Packet pointers against the end learn ranges; other pointer
        // comparisons are allowed for a privileged loader.
        try_match_pkt_pointers(
            width,
            c,
            sreg.is_some(),
            dreg,
            sreg.unwrap_or(0),
            &dst_reg,
            &src_reg,
            &mut env.cur,
            &mut other.state,
        );
    }
    env.pending.push(other);
    if env.logging() {
        env.log_state();
    }
    Ok(())
}

/// `is_branch_taken` with the pointer special cases.
/// `may_goto` (`BPF_JCOND`): the current path takes the jump (the budget
/// spent); the fall-through path is queued one `may_goto` deeper, with the
/// scalars that changed since the previous visit of this instruction on
/// the path and are not precise forgotten, so a loop bounded only by
/// `may_goto` converges.
pub(crate) fn check_may_goto(env: &mut Env, off: i16) -> VResult<()> {
    if off == 0 {
        bail!("invalid may_goto off {off} imm 0");
    }
    let pc = env.insn_idx;
    let prev = env.prev_entry(pc);
    let queued = env.push_branch(pc + 1, pc)?;
    queued.may_goto_depth += 1;
    if let Some(old) = prev {
        super::prune::widen_imprecise_scalars(&old, queued);
    }
    Ok(())
}

fn is_branch_taken(a: &Reg, b: &Reg, c: Cond, jmp32: bool) -> Option<bool> {
    if a.is_pkt_any() && b.is_pkt_any() && !jmp32 {
        return is_pkt_ptr_branch_taken(a, b, c);
    }
    if a.is_pointer() || b.is_pointer() {
        if jmp32 {
            return None;
        }
        let (ptr, scalar, c) = if b.is_const(false) {
            (a, b, c)
        } else {
            (b, a, c.flip())
        };
        if !scalar.is_const(false) || !reg_not_null(ptr) {
            return None;
        }
        if scalar.const_value(false) != 0 {
            return None;
        }
        return match c {
            Cond::Eq => Some(false),
            Cond::Ne => Some(true),
            _ => None,
        };
    }
    bounds::branch_taken(&a.b, &b.b, c, jmp32)
}

fn is_pkt_ptr_branch_taken(a: &Reg, b: &Reg, c: Cond) -> Option<bool> {
    let (pkt, c) = if b.ty == RegType::PacketEnd {
        (a, c)
    } else if a.ty == RegType::PacketEnd {
        (b, c.flip())
    } else {
        return None;
    };
    if pkt.range >= 0 {
        return None;
    }
    match c {
        Cond::Le | Cond::Gt if pkt.range == BEYOND_PKT_END => Some(c == Cond::Gt),
        Cond::Lt | Cond::Ge if pkt.range == BEYOND_PKT_END || pkt.range == AT_PKT_END => {
            Some(c == Cond::Ge)
        }
        _ => None,
    }
}

/// Known non-null (`reg_not_null`).
pub(crate) fn reg_not_null(r: &Reg) -> bool {
    if r.maybe_null() {
        return false;
    }
    if r.b.smin <= -(1 << 29) || r.b.smax >= 1 << 29 {
        return false;
    }
    matches!(
        r.ty,
        RegType::Socket
            | RegType::TcpSock
            | RegType::XdpSock
            | RegType::Buf
            | RegType::MapValue
            | RegType::MapKey
            | RegType::SockCommon
            | RegType::Mem
            | RegType::MapPtr
    ) || (r.ty == RegType::BtfId && r.flags & flag::TRUSTED != 0)
}

/// Drop the maybe-null modifier (`mark_ptr_not_null_reg`): a value from a
/// map of maps becomes the inner map, of a sock map a socket, of an xsk
/// map an xdp socket.
pub(crate) fn mark_ptr_not_null(maps: &super::Maps, r: &mut Reg) {
    r.flags &= !flag::MAYBE_NULL;
    if r.ty != RegType::MapValue {
        return;
    }
    let Some(m) = maps.defs.get(r.map as usize) else {
        return;
    };
    match m.map_type {
        12 | 13 => {
            r.ty = RegType::MapPtr;
            r.map = maps
                .inner
                .get(r.map as usize)
                .copied()
                .flatten()
                .unwrap_or(r.map);
            r.map_uid = r.id;
        }
        17 => r.ty = RegType::XdpSock,
        15 | 18 => r.ty = RegType::Socket,
        _ => {}
    }
}

/// Every copy (same id) of the pointer in `regno` becomes NULL (a zero
/// scalar) or not-null (`mark_ptr_or_null_regs`).
fn mark_ptr_or_null_regs(maps: &super::Maps, st: &mut State, regno: u8, is_null: bool) {
    let reg = st.reg(regno).clone();
    let (id, ref_obj_id) = (reg.id, reg.ref_obj_id);
    if id == 0 {
        return;
    }
    if ref_obj_id != 0 && ref_obj_id == id && is_null {
        st.refs.retain(|r| r.id != id);
    }
    st.for_each_reg(|r| {
        if !r.maybe_null() || r.id != id {
            return;
        }
        if !r.b.var_off.equals_const(0) || r.b.smin != 0 || r.b.smax != 0 || r.off != 0 {
            return;
        }
        if is_null {
            *r = Reg::konst(0);
            return;
        }
        mark_ptr_not_null(maps, r);
        if !super::helper::may_point_to_spin_lock(maps, r) {
            r.id = 0;
        }
    });
}

/// Every scalar register and spilled scalar with scalar id `id`:
/// (frame, register or slot, is register).
fn collect_linked(st: &State, id: u32, out: &mut Vec<(u8, u16, bool)>) {
    for (fr, f) in st.frames.iter().enumerate() {
        for (r, reg) in f.regs.iter().enumerate().take(10) {
            if reg.ty == RegType::Scalar && reg.id & !ADD_CONST == id {
                out.push((fr as u8, r as u16, true));
            }
        }
        for (spi, s) in f.stack.iter().enumerate() {
            if s.is_spill() && s.spilled.ty == RegType::Scalar && s.spilled.id & !ADD_CONST == id {
                out.push((fr as u8, spi as u16, false));
            }
        }
    }
}

/// Give the registers of one scalar id the range just learned for one of
/// them, adjusted by their constant deltas (`sync_linked_regs`).
fn sync_linked_regs(st: &mut State, known: &Reg) {
    let id = known.id & !ADD_CONST;
    st.for_each_reg(|r| {
        if r.ty != RegType::Scalar || (r.id & !ADD_CONST) != id || r == known {
            return;
        }
        let both_plain = r.id & ADD_CONST == 0 && known.id & ADD_CONST == 0;
        if both_plain || r.off == known.off {
            *r = known.clone();
        } else {
            let (saved_off, saved_id) = (r.off, r.id);
            let delta = (saved_off as i64 - known.off as i64) as i32 as i64 as u64;
            *r = known.clone();
            r.off = saved_off;
            r.id = saved_id;
            let k = super::bounds::Bounds::konst(delta);
            // scalar(32)_min_max_add and the tnum add, without a sync.
            let mut b = r.b;
            match (
                b.s32_min.checked_add(k.s32_min),
                b.s32_max.checked_add(k.s32_max),
            ) {
                (Some(x), Some(y)) => (b.s32_min, b.s32_max) = (x, y),
                _ => (b.s32_min, b.s32_max) = (i32::MIN, i32::MAX),
            }
            match (
                b.u32_min.checked_add(k.u32_min),
                b.u32_max.checked_add(k.u32_max),
            ) {
                (Some(x), Some(y)) => (b.u32_min, b.u32_max) = (x, y),
                _ => (b.u32_min, b.u32_max) = (0, u32::MAX),
            }
            match (b.smin.checked_add(k.smin), b.smax.checked_add(k.smax)) {
                (Some(x), Some(y)) => (b.smin, b.smax) = (x, y),
                _ => (b.smin, b.smax) = (i64::MIN, i64::MAX),
            }
            match (b.umin.checked_add(k.umin), b.umax.checked_add(k.umax)) {
                (Some(x), Some(y)) => (b.umin, b.umax) = (x, y),
                _ => (b.umin, b.umax) = (0, u64::MAX),
            }
            b.var_off = b.var_off.add(k.var_off);
            r.b = b;
        }
    });
}

/// Packet pointer comparisons (`try_match_pkt_pointers`).
#[allow(clippy::too_many_arguments)]
fn try_match_pkt_pointers(
    width: Width,
    c: Cond,
    src_is_reg: bool,
    dreg: u8,
    sreg: u8,
    d: &Reg,
    s: &Reg,
    this: &mut State,
    other: &mut State,
) -> bool {
    if !src_is_reg || width == Width::W32 {
        return false;
    }
    let init_pkt = |r: &Reg| r.ty == RegType::Packet && r.id == 0 && r.is_unmodified();
    let dst_first = (d.ty == RegType::Packet && s.ty == RegType::PacketEnd)
        || (d.ty == RegType::PacketMeta && init_pkt(s));
    let src_first = (d.ty == RegType::PacketEnd && s.ty == RegType::Packet)
        || (init_pkt(d) && s.ty == RegType::PacketMeta);
    // (state that learns the range, register, open?, state marked at end, register, open?)
    match c {
        Cond::Gt if dst_first => {
            find_good_pkt_pointers(this, d, false);
            mark_pkt_end(other, dreg, true);
        }
        Cond::Gt if src_first => {
            find_good_pkt_pointers(other, s, true);
            mark_pkt_end(this, sreg, false);
        }
        Cond::Lt if dst_first => {
            find_good_pkt_pointers(other, d, true);
            mark_pkt_end(this, dreg, false);
        }
        Cond::Lt if src_first => {
            find_good_pkt_pointers(this, s, false);
            mark_pkt_end(other, sreg, true);
        }
        Cond::Ge if dst_first => {
            find_good_pkt_pointers(this, d, true);
            mark_pkt_end(other, dreg, false);
        }
        Cond::Ge if src_first => {
            find_good_pkt_pointers(other, s, false);
            mark_pkt_end(this, sreg, true);
        }
        Cond::Le if dst_first => {
            find_good_pkt_pointers(other, d, false);
            mark_pkt_end(this, dreg, true);
        }
        Cond::Le if src_first => {
            find_good_pkt_pointers(this, s, true);
            mark_pkt_end(other, sreg, false);
        }
        _ => return false,
    }
    true
}

fn find_good_pkt_pointers(st: &mut State, dst: &Reg, range_right_open: bool) {
    if dst.off < 0 || (dst.off == 0 && range_right_open) {
        return;
    }
    let max_off = super::mem::MAX_PACKET_OFF as u64;
    if dst.b.umax > max_off || dst.b.umax + dst.off as u64 > max_off {
        return;
    }
    let mut new_range = dst.off;
    if range_right_open {
        new_range += 1;
    }
    let (ty, id) = (dst.ty, dst.id);
    st.for_each_reg(|r| {
        if r.ty == ty && r.id == id {
            r.range = r.range.max(new_range);
        }
    });
}

fn mark_pkt_end(st: &mut State, regno: u8, range_open: bool) {
    let r = st.reg_mut(regno);
    if r.ty != RegType::Packet {
        return;
    }
    r.range = if range_open {
        BEYOND_PKT_END
    } else {
        AT_PKT_END
    };
}
