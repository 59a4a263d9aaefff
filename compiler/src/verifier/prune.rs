//! State pruning (`is_state_visited`): at prune points the current state
//! is compared with the states saved there before. If a saved state whose
//! paths were all verified is at least as permissive (`states_equal`:
//! every live register and stack slot it relied on admits the current
//! one), the current path is safe and stops. A state equal to one still
//! being explored at the same place is a loop that does not progress
//! (`infinite loop detected`). Otherwise the current state is saved.
//!
//! Which registers are live comes from a static analysis, which stack
//! slots from the reads the verification recorded (the
//! [`super::liveness`] module), as in the kernel since 6.18.

use super::state::{Frame, Reg, RegType, Slot, StackSlot, State, ADD_CONST};
use super::{bail, fmt, Checkpoint, Env, VResult};
use crate::isa::Insn;

/// How strictly to compare (`enum exact_level`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum ExactLevel {
    NotExact,
    Exact,
    RangeWithin,
}

/// Old-to-current id correspondence for one comparison (`bpf_idmap`).
struct IdMap {
    map: Vec<(u32, u32)>,
    tmp_id_gen: u32,
}

impl IdMap {
    fn new(id_gen: u32) -> IdMap {
        IdMap {
            map: Vec::new(),
            tmp_id_gen: id_gen,
        }
    }

    fn check(&mut self, old: u32, cur: u32) -> bool {
        if (old == 0) != (cur == 0) {
            return false;
        }
        if old == 0 {
            return true;
        }
        for &(o, c) in &self.map {
            if o == old {
                return c == cur;
            }
            if c == cur {
                return false;
            }
        }
        self.map.push((old, cur));
        true
    }

    fn check_scalar(&mut self, old: u32, cur: u32) -> bool {
        if old == 0 {
            return true;
        }
        let cur = if cur != 0 {
            cur
        } else {
            self.tmp_id_gen += 1;
            self.tmp_id_gen
        };
        if !self.check(old, cur) {
            return false;
        }
        if old & ADD_CONST != 0 && !self.check(old & !ADD_CONST, cur & !ADD_CONST) {
            return false;
        }
        true
    }
}

fn range_within(old: &Reg, cur: &Reg) -> bool {
    let (o, c) = (&old.b, &cur.b);
    o.umin <= c.umin
        && o.umax >= c.umax
        && o.smin <= c.smin
        && o.smax >= c.smax
        && o.u32_min <= c.u32_min
        && o.u32_max >= c.u32_max
        && o.s32_min <= c.s32_min
        && o.s32_max >= c.s32_max
}

/// Everything before `id` in the kernel's register struct is equal.
fn same_shape(old: &Reg, cur: &Reg) -> bool {
    old.ty == cur.ty
        && old.flags == cur.flags
        && old.off == cur.off
        && old.map == cur.map
        && old.map_uid == cur.map_uid
        && old.range == cur.range
        && old.mem_size == cur.mem_size
        && old.subprog == cur.subprog
        && old.b == cur.b
}

/// Forget the scalars of `cur` that are imprecise in both states and not
/// exactly as in `old` (`widen_imprecise_scalars`): registers and spilled
/// scalars of every frame `old` has.
pub(crate) fn widen_imprecise_scalars(old: &State, cur: &mut State) {
    let mut idmap = IdMap::new(0);
    let widen = |o: &Reg, c: &mut Reg, idmap: &mut IdMap| {
        if o.ty != RegType::Scalar || c.ty != o.ty {
            return;
        }
        if o.precise || c.precise || regs_exact(o, c, idmap) {
            return;
        }
        c.mark_unknown();
    };
    for (fo, fc) in old.frames.iter().zip(cur.frames.iter_mut()).rev() {
        for (o, c) in fo.regs.iter().zip(fc.regs.iter_mut()) {
            widen(o, c, &mut idmap);
        }
        for (so, sc) in fo.stack.iter().zip(fc.stack.iter_mut()) {
            if so.is_spill() && sc.is_spill() {
                widen(&so.spilled, &mut sc.spilled, &mut idmap);
            }
        }
    }
}

fn regs_exact(old: &Reg, cur: &Reg, idmap: &mut IdMap) -> bool {
    same_shape(old, cur)
        && idmap.check(old.id, cur.id)
        && idmap.check(old.ref_obj_id, cur.ref_obj_id)
}

/// Whether `cur` is safe wherever `old` was (`regsafe`).
fn regsafe(old: &Reg, cur: &Reg, idmap: &mut IdMap, exact: ExactLevel) -> bool {
    if exact == ExactLevel::Exact {
        return regs_exact(old, cur, idmap);
    }
    if old.ty == RegType::NotInit && (exact == ExactLevel::NotExact || cur.ty == RegType::NotInit) {
        return true;
    }
    if old.ty != cur.ty || old.flags != cur.flags {
        return false;
    }
    match old.ty {
        RegType::Scalar => {
            if !old.precise && exact == ExactLevel::NotExact {
                return true;
            }
            if old.id & ADD_CONST != 0 && cur.id & ADD_CONST == 0 {
                return false;
            }
            if old.id != 0 && old.id & ADD_CONST == 0 && cur.id & ADD_CONST != 0 {
                return false;
            }
            if old.id & ADD_CONST != 0 && old.off != cur.off {
                return false;
            }
            if !idmap.check_scalar(old.id, cur.id) {
                return false;
            }
            range_within(old, cur) && old.b.var_off.contains(cur.b.var_off)
        }
        RegType::MapKey | RegType::MapValue | RegType::Mem | RegType::Buf | RegType::TpBuffer => {
            old.off == cur.off
                && old.map == cur.map
                && old.map_uid == cur.map_uid
                && old.range == cur.range
                && old.mem_size == cur.mem_size
                && range_within(old, cur)
                && old.b.var_off.contains(cur.b.var_off)
                && idmap.check(old.id, cur.id)
                && idmap.check(old.ref_obj_id, cur.ref_obj_id)
        }
        RegType::Packet | RegType::PacketMeta => {
            if old.range < 0 || cur.range < 0 {
                if old.range != cur.range {
                    return false;
                }
            } else if old.range > cur.range {
                return false;
            }
            old.off == cur.off
                && idmap.check(old.id, cur.id)
                && range_within(old, cur)
                && old.b.var_off.contains(cur.b.var_off)
        }
        RegType::Stack => regs_exact(old, cur, idmap) && old.frameno == cur.frameno,
        _ => regs_exact(old, cur, idmap),
    }
}

/// A slot read as a 64-bit scalar (`scalar_reg_for_stack`).
fn scalar_reg_for_stack(s: &StackSlot) -> Option<Reg> {
    if s.is_spilled_scalar64() {
        return Some(s.spilled.clone());
    }
    if s.types
        .iter()
        .all(|&t| matches!(t, Slot::Misc | Slot::Invalid))
    {
        return Some(Reg::unknown());
    }
    None
}

/// `live`: the slots later code may read (bit per slot); the others admit
/// anything unless the comparison is exact.
fn stacksafe(old: &Frame, cur: &Frame, live: u64, idmap: &mut IdMap, exact: ExactLevel) -> bool {
    let old_alloc = old.allocated();
    let cur_alloc = cur.allocated();
    let mut i = 0;
    while i < old_alloc {
        let spi = i / 8;
        let b = i % 8;
        if exact == ExactLevel::NotExact && live & (1 << spi) == 0 {
            i = (spi + 1) * 8;
            continue;
        }
        let ot = old.stack[spi].types[b];
        if exact != ExactLevel::NotExact && (i >= cur_alloc || ot != cur.stack[spi].types[b]) {
            return false;
        }
        // Uninitialised or unknown bytes admit anything (a privileged
        // loader may read uninitialised stack).
        if matches!(ot, Slot::Invalid | Slot::Misc) {
            i += 1;
            continue;
        }
        if i >= cur_alloc {
            return false;
        }
        let (os, cs) = (&old.stack[spi], &cur.stack[spi]);
        if let (Some(or), Some(cr)) = (scalar_reg_for_stack(os), scalar_reg_for_stack(cs)) {
            if !regsafe(&or, &cr, idmap, exact) {
                return false;
            }
            i = (spi + 1) * 8;
            continue;
        }
        let ct = cs.types[b];
        if ot != ct {
            return false;
        }
        if b != 7 {
            i += 1;
            continue;
        }
        match os.types[7] {
            Slot::Spill if !regsafe(&os.spilled, &cs.spilled, idmap, exact) => return false,
            Slot::Dynptr | Slot::Iter if !regs_exact(&os.spilled, &cs.spilled, idmap) => {
                return false
            }
            _ => {}
        }
        i += 1;
    }
    true
}

impl Env<'_> {
    /// Registers of frame `i` of `st` that later code may read at `pc`.
    fn live_mask(&self, st: &State, i: usize, pc: usize) -> u16 {
        if i + 1 == st.frames.len() {
            return self.live[pc] | (1 << 10);
        }
        let callee = &st.frames[i + 1];
        let site = callee.callsite.unwrap_or(0);
        if callee.in_callback {
            self.live[site] | self.live.get(site + 1).copied().unwrap_or(0) | (1 << 10)
        } else {
            (self.live.get(site + 1).copied().unwrap_or(0) & 0b11_1100_0000) | (1 << 10)
        }
    }

    /// Stack slots of frame `i` of `st` that later code may read at `pc`
    /// (a caller's frame: from its call instruction on, the callee's reads
    /// of it included).
    fn stack_live_mask(&self, st: &State, i: usize, pc: usize) -> u64 {
        match st.frames.get(i + 1) {
            None => self.stack_live.live_in(pc),
            Some(callee) => callee
                .callsite
                .map_or(u64::MAX, |site| self.stack_live.live_in(site)),
        }
    }

    fn states_equal(&self, old: &State, cur: &State, pc: usize, exact: ExactLevel) -> bool {
        if old.frames.len() != cur.frames.len() {
            return false;
        }
        let mut idmap = IdMap::new(self.id_gen);
        match (old.lock, cur.lock) {
            (None, None) => {}
            (Some(o), Some(c)) => {
                if o.map != c.map || !idmap.check(o.ptr_id, c.ptr_id) {
                    return false;
                }
            }
            _ => return false,
        }
        for (i, (of, cf)) in old.frames.iter().zip(&cur.frames).enumerate() {
            if of.callsite != cf.callsite {
                return false;
            }
            if of.callback_depth > cf.callback_depth {
                return false;
            }
            let live = self.live_mask(cur, i, pc);
            for r in 0..11 {
                if exact != ExactLevel::Exact && live & (1 << r) == 0 {
                    continue;
                }
                if !regsafe(&of.regs[r], &cf.regs[r], &mut idmap, exact) {
                    return false;
                }
            }
            let stack_live = self.stack_live_mask(cur, i, pc);
            if !stacksafe(of, cf, stack_live, &mut idmap, exact) {
                return false;
            }
        }
        if old.refs.len() != cur.refs.len() {
            return false;
        }
        for (o, c) in old.refs.iter().zip(&cur.refs) {
            if !idmap.check(o.id, c.id) {
                return false;
            }
        }
        true
    }

    /// The state this path saved at `pc` on an earlier visit, before the
    /// checkpoint just taken there (`find_prev_entry`): a loop's previous
    /// round.
    pub(crate) fn prev_entry(&self, pc: usize) -> Option<State> {
        let callsite = self.cur.cur().callsite;
        let mut p = self.cur.parent.and_then(|i| self.checkpoints[i].parent);
        while let Some(i) = p {
            let cp = &self.checkpoints[i];
            if cp.insn == pc && cp.branches > 0 {
                if let Some(s) = &cp.state {
                    if s.cur().callsite == callsite && s.frames.len() == self.cur.frames.len() {
                        return Some(s.clone());
                    }
                }
            }
            p = cp.parent;
        }
        None
    }

    /// `is_state_visited`: true when the current path can stop here.
    pub(crate) fn is_state_visited(&mut self, pc: usize) -> VResult<bool> {
        // A long history also forces a checkpoint (the kernel's limit of 40
        // jump-history entries per state).
        let force_new =
            self.opts.test_state_freq || self.force_checkpoint[pc] || self.hist_jumps() > 40;
        let mut add_new = force_new
            || (self.jmps_processed - self.prev_jmps_processed >= 2
                && self.stats.insns_processed - self.prev_insn_processed >= 8);
        let list = std::mem::take(&mut self.explored[pc]);
        let mut keep = Vec::with_capacity(list.len() + 1);
        let mut hit = false;
        let mut hit_cp = None;
        let mut states_cnt = 0u64;
        for ci in list {
            if hit {
                keep.push(ci);
                continue;
            }
            let cp = &self.checkpoints[ci as usize];
            let Some(old) = cp.state.as_ref() else {
                continue;
            };
            // The kernel keeps the states of an instruction in hash buckets
            // by (instruction, the current frame's call site): states
            // saved under another call site are not looked at (neither
            // compared nor counted as a loop, nor evicted).
            if old.cur().callsite != self.cur.cur().callsite {
                keep.push(ci);
                continue;
            }
            states_cnt += 1;
            let matched = if cp.branches > 0 {
                // The saved state's paths are still being explored: this is
                // a loop back to it.
                if matches!(self.insns[pc], Insn::MayGoto { .. })
                    && old.may_goto_depth != self.cur.may_goto_depth
                    && self.states_equal(old, &self.cur, pc, ExactLevel::RangeWithin)
                {
                    // Another round of a loop bounded by may_goto, no
                    // more permissive than the one still being explored.
                    true
                } else if self.calls_callback[pc]
                    && self.states_equal(old, &self.cur, pc, ExactLevel::RangeWithin)
                {
                    true
                } else {
                    if !self.calls_callback[pc]
                        && maybe_looping(old, &self.cur)
                        && self.states_equal(old, &self.cur, pc, ExactLevel::Exact)
                        && old.may_goto_depth == self.cur.may_goto_depth
                        && old.callback_unroll_depth == self.cur.callback_unroll_depth
                    {
                        let cur_s = fmt::frame_str(self.cur.cur(), &self.maps.defs);
                        let old_s = fmt::frame_str(old.cur(), &self.maps.defs);
                        bail!("infinite loop detected at insn {pc}\ncur state:{cur_s}\nold state:{old_s}");
                    }
                    if !force_new
                        && self.jmps_processed - self.prev_jmps_processed < 20
                        && self.stats.insns_processed - self.prev_insn_processed < 100
                    {
                        add_new = false;
                    }
                    false
                }
            } else {
                self.states_equal(old, &self.cur, pc, ExactLevel::NotExact)
            };
            let cp = &mut self.checkpoints[ci as usize];
            if matched {
                cp.hit += 1;
                hit = true;
                hit_cp = Some(ci);
                keep.push(ci);
                continue;
            }
            if add_new {
                cp.miss += 1;
            }
            let n = if force_new && cp.branches > 0 { 64 } else { 3 };
            if cp.miss > cp.hit * n + n {
                // Rarely useful: forget it (its parent link stays for the
                // branch counts).
                if cp.branches == 0 {
                    cp.state = None;
                }
                self.states_live -= 1;
                continue;
            }
            keep.push(ci);
        }
        self.explored[pc] = keep;
        self.stats.max_states_per_insn = self.stats.max_states_per_insn.max(states_cnt);
        if let Some(ci) = hit_cp {
            // What the saved state relied on, the current path relies on.
            let prev = self.prev_insn_idx;
            self.push_hist(pc, prev);
            if let Some(old) = self.checkpoints[ci as usize].state.clone() {
                let live: Vec<(u16, u64)> = (0..old.frames.len())
                    .map(|i| {
                        (
                            self.live_mask(&self.cur, i, pc),
                            self.stack_live_mask(&self.cur, i, pc),
                        )
                    })
                    .collect();
                self.propagate_precision(&old, &live);
            }
            return Ok(true);
        }
        if !add_new {
            return Ok(false);
        }
        let idx = self.checkpoints.len();
        // Precision marks come from later backtracking, not from before.
        self.cur.for_each_reg(|r| r.precise = false);
        let hist = std::mem::take(&mut self.cur.hist);
        let saved = self.cur.clone();
        self.checkpoints.push(Checkpoint {
            state: Some(saved),
            insn: pc,
            hist,
            parent: self.cur.parent,
            branches: 1,
            hit: 0,
            miss: 0,
        });
        self.cur.parent = Some(idx);
        self.explored[pc].insert(0, idx as u32);
        self.stats.total_states += 1;
        self.states_live += 1;
        self.stats.peak_states = self.stats.peak_states.max(self.states_live);
        self.prev_jmps_processed = self.jmps_processed;
        self.prev_insn_processed = self.stats.insns_processed;
        Ok(false)
    }
}

/// The current frame's registers are identical (`states_maybe_looping`).
fn maybe_looping(old: &State, cur: &State) -> bool {
    if old.frames.len() != cur.frames.len() {
        return false;
    }
    let (o, c) = (old.cur(), cur.cur());
    o.regs
        .iter()
        .zip(&c.regs)
        .all(|(a, b)| same_shape(a, b) && a.id == b.id && a.ref_obj_id == b.ref_obj_id)
}
