//! What is known of a 64-bit value: a tnum plus signed and unsigned ranges
//! of the whole value and of its low 32 bits, with the kernel's rules for
//! keeping the five views consistent (`reg_bounds_sync`), its ALU transfer
//! functions (`adjust_scalar_min_max_vals`), its extensions and truncations,
//! and its branch rules (`is_scalar_branch_taken`, `regs_refine_cond_op`).
//! Scalars carry these for their value, pointers for their variable offset.

use super::tnum::Tnum;

/// Ranges and tnum of one value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bounds {
    pub var_off: Tnum,
    pub smin: i64,
    pub smax: i64,
    pub umin: u64,
    pub umax: u64,
    pub s32_min: i32,
    pub s32_max: i32,
    pub u32_min: u32,
    pub u32_max: u32,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds::unknown()
    }
}

/// Conditions of branches, plus the negation of `jset` (which has no
/// opcode of its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cond {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Sgt,
    Sge,
    Slt,
    Sle,
    Set,
    NotSet,
}

impl Cond {
    pub fn from_jmp(c: crate::isa::JmpCond) -> Cond {
        use crate::isa::JmpCond as J;
        match c {
            J::Eq => Cond::Eq,
            J::Ne => Cond::Ne,
            J::Gt => Cond::Gt,
            J::Ge => Cond::Ge,
            J::Lt => Cond::Lt,
            J::Le => Cond::Le,
            J::Sgt => Cond::Sgt,
            J::Sge => Cond::Sge,
            J::Slt => Cond::Slt,
            J::Sle => Cond::Sle,
            J::Set => Cond::Set,
        }
    }

    /// The condition with its operands swapped: `a op b` iff `b flip(op) a`.
    pub fn flip(self) -> Cond {
        match self {
            Cond::Gt => Cond::Lt,
            Cond::Ge => Cond::Le,
            Cond::Lt => Cond::Gt,
            Cond::Le => Cond::Ge,
            Cond::Sgt => Cond::Slt,
            Cond::Sge => Cond::Sle,
            Cond::Slt => Cond::Sgt,
            Cond::Sle => Cond::Sge,
            c => c,
        }
    }

    /// The condition that holds when this one does not.
    pub fn negate(self) -> Cond {
        match self {
            Cond::Eq => Cond::Ne,
            Cond::Ne => Cond::Eq,
            Cond::Set => Cond::NotSet,
            Cond::NotSet => Cond::Set,
            Cond::Ge => Cond::Lt,
            Cond::Gt => Cond::Le,
            Cond::Le => Cond::Gt,
            Cond::Lt => Cond::Ge,
            Cond::Sge => Cond::Slt,
            Cond::Sgt => Cond::Sle,
            Cond::Sle => Cond::Sgt,
            Cond::Slt => Cond::Sge,
        }
    }
}

/// ALU operations whose results are tracked precisely.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalarOp {
    Add,
    Sub,
    Mul,
    And,
    Or,
    Xor,
    Lsh,
    Rsh,
    Arsh,
}

impl Bounds {
    /// Nothing known.
    pub const fn unknown() -> Bounds {
        Bounds {
            var_off: Tnum::UNKNOWN,
            smin: i64::MIN,
            smax: i64::MAX,
            umin: 0,
            umax: u64::MAX,
            s32_min: i32::MIN,
            s32_max: i32::MAX,
            u32_min: 0,
            u32_max: u32::MAX,
        }
    }

    /// Exactly `v`.
    pub const fn konst(v: u64) -> Bounds {
        Bounds {
            var_off: Tnum::konst(v),
            smin: v as i64,
            smax: v as i64,
            umin: v,
            umax: v,
            s32_min: v as i32,
            s32_max: v as i32,
            u32_min: v as u32,
            u32_max: v as u32,
        }
    }

    /// Values in `min..=max` (unsigned), all views synced.
    pub fn urange(min: u64, max: u64) -> Bounds {
        let mut b = Bounds::unknown();
        b.umin = min;
        b.umax = max;
        b.sync();
        b
    }

    /// Values in `min..=max` (signed), all views synced.
    pub fn srange(min: i64, max: i64) -> Bounds {
        let mut b = Bounds::unknown();
        b.smin = min;
        b.smax = max;
        b.sync();
        b
    }

    /// Set the low 32 bits to the known value `v`.
    pub fn mark32_known(&mut self, v: u32) {
        self.var_off = self.var_off.const_subreg(v);
        self.s32_min = v as i32;
        self.s32_max = v as i32;
        self.u32_min = v;
        self.u32_max = v;
    }

    pub fn unbound64(&mut self) {
        self.smin = i64::MIN;
        self.smax = i64::MAX;
        self.umin = 0;
        self.umax = u64::MAX;
    }

    pub fn unbound32(&mut self) {
        self.s32_min = i32::MIN;
        self.s32_max = i32::MAX;
        self.u32_min = 0;
        self.u32_max = u32::MAX;
    }

    /// Forget the ranges (not the tnum).
    pub fn unbound(&mut self) {
        self.unbound64();
        self.unbound32();
    }

    pub fn is_const(&self) -> bool {
        self.var_off.is_const()
    }

    /// Whether the value (or its low 32 bits) is known.
    pub fn is_const_w(&self, sub32: bool) -> bool {
        if sub32 {
            self.var_off.subreg_is_const()
        } else {
            self.var_off.is_const()
        }
    }

    /// The known value (or low 32 bits) when [`Bounds::is_const_w`].
    pub fn const_w(&self, sub32: bool) -> u64 {
        if sub32 {
            self.var_off.subreg().value
        } else {
            self.var_off.value
        }
    }

    /// The number of significant bits of the unsigned maximum.
    pub fn width(&self) -> u32 {
        64 - self.umax.leading_zeros()
    }

    fn update32(&mut self) {
        let v = self.var_off.subreg();
        let (val, mask) = (v.value as u32, v.mask as u32);
        self.s32_min = self.s32_min.max((val | (mask & 0x8000_0000)) as i32);
        self.s32_max = self.s32_max.min((val | (mask & 0x7fff_ffff)) as i32);
        self.u32_min = self.u32_min.max(val);
        self.u32_max = self.u32_max.min(val | mask);
    }

    fn update64(&mut self) {
        let (val, mask) = (self.var_off.value, self.var_off.mask);
        self.smin = self.smin.max((val | (mask & (1 << 63))) as i64);
        self.smax = self.smax.min((val | (mask & (i64::MAX as u64))) as i64);
        self.umin = self.umin.max(val);
        self.umax = self.umax.min(val | mask);
    }

    /// Tighten the ranges from the tnum.
    pub fn update(&mut self) {
        self.update32();
        self.update64();
    }

    fn deduce32(&mut self) {
        if (self.umin >> 32) == (self.umax >> 32) {
            self.u32_min = self.u32_min.max(self.umin as u32);
            self.u32_max = self.u32_max.min(self.umax as u32);
            if (self.umin as i32) <= (self.umax as i32) {
                self.s32_min = self.s32_min.max(self.umin as i32);
                self.s32_max = self.s32_max.min(self.umax as i32);
            }
        }
        if (self.smin >> 32) == (self.smax >> 32) {
            if (self.smin as u32) <= (self.smax as u32) {
                self.u32_min = self.u32_min.max(self.smin as u32);
                self.u32_max = self.u32_max.min(self.smax as u32);
            }
            if (self.smin as i32) <= (self.smax as i32) {
                self.s32_min = self.s32_min.max(self.smin as i32);
                self.s32_max = self.s32_max.min(self.smax as i32);
            }
        }
        // The upper halves are two consecutive numbers while the low halves
        // run from negative to non-negative: still one s32 range.
        if ((self.umin >> 32) as u32).wrapping_add(1) == (self.umax >> 32) as u32
            && (self.umin as i32) < 0
            && (self.umax as i32) >= 0
        {
            self.s32_min = self.s32_min.max(self.umin as i32);
            self.s32_max = self.s32_max.min(self.umax as i32);
        }
        if ((self.smin >> 32) as u32).wrapping_add(1) == (self.smax >> 32) as u32
            && (self.smin as i32) < 0
            && (self.smax as i32) >= 0
        {
            self.s32_min = self.s32_min.max(self.smin as i32);
            self.s32_max = self.s32_max.min(self.smax as i32);
        }
        if (self.u32_min as i32) <= (self.u32_max as i32) {
            self.s32_min = self.s32_min.max(self.u32_min as i32);
            self.s32_max = self.s32_max.min(self.u32_max as i32);
        }
        if (self.s32_min as u32) <= (self.s32_max as u32) {
            self.u32_min = self.u32_min.max(self.s32_min as u32);
            self.u32_max = self.u32_max.min(self.s32_max as u32);
        } else if self.u32_max < self.s32_min as u32 {
            // The u32 range meets only the non-negative part of the s32 one.
            self.s32_min = self.u32_min as i32;
            self.u32_max = self.u32_max.min(self.s32_max as u32);
        } else if (self.s32_max as u32) < self.u32_min {
            // ... or only the negative part.
            self.s32_max = self.u32_max as i32;
            self.u32_min = self.u32_min.max(self.s32_min as u32);
        }
    }

    fn deduce64(&mut self) {
        if (self.umin as i64) <= (self.umax as i64) {
            self.smin = self.smin.max(self.umin as i64);
            self.smax = self.smax.min(self.umax as i64);
        }
        if (self.smin as u64) <= (self.smax as u64) {
            self.umin = self.umin.max(self.smin as u64);
            self.umax = self.umax.min(self.smax as u64);
        } else if self.umax < self.smin as u64 {
            self.smin = self.umin as i64;
            self.umax = self.umax.min(self.smax as u64);
        } else if (self.smax as u64) < self.umin {
            self.smax = self.umax as i64;
            self.umin = self.umin.max(self.smin as u64);
        }
    }

    fn deduce_mixed(&mut self) {
        const HI: u64 = !0xffff_ffffu64;
        let new_umin = (self.umin & HI) | self.u32_min as u64;
        let new_umax = (self.umax & HI) | self.u32_max as u64;
        self.umin = self.umin.max(new_umin);
        self.umax = self.umax.min(new_umax);
        let new_smin = ((self.smin as u64 & HI) | self.u32_min as u64) as i64;
        let new_smax = ((self.smax as u64 & HI) | self.u32_max as u64) as i64;
        self.smin = self.smin.max(new_smin);
        self.smax = self.smax.min(new_smax);
        if (self.s32_min as u32) <= (self.s32_max as u32) {
            let lo = self.s32_min as u32 as u64;
            let hi = self.s32_max as u32 as u64;
            self.umin = self.umin.max((self.umin & HI) | lo);
            self.umax = self.umax.min((self.umax & HI) | hi);
            self.smin = self.smin.max(((self.smin as u64 & HI) | lo) as i64);
            self.smax = self.smax.min(((self.smax as u64 & HI) | hi) as i64);
        }
        // After a sign-extending load: the upper half is all zeros or all
        // ones, and a non-negative low half rules out all ones.
        if self.s32_min >= 0 && self.smin >= i32::MIN as i64 && self.smax <= i32::MAX as i64 {
            self.smin = self.s32_min as i64;
            self.smax = self.s32_max as i64;
            self.umin = self.s32_min as u64;
            self.umax = self.s32_max as u64;
            self.var_off = self
                .var_off
                .intersect(Tnum::range(self.smin as u64, self.smax as u64));
        }
    }

    fn deduce(&mut self) {
        self.deduce32();
        self.deduce64();
        self.deduce_mixed();
    }

    fn bound_offset(&mut self) {
        let v64 = self.var_off.intersect(Tnum::range(self.umin, self.umax));
        let v32 = v64
            .subreg()
            .intersect(Tnum::range(self.u32_min as u64, self.u32_max as u64));
        self.var_off = v64.clear_subreg().or(v32);
    }

    /// Make the tnum and the four ranges agree (`reg_bounds_sync`).
    pub fn sync(&mut self) {
        self.update();
        self.deduce();
        self.deduce();
        self.deduce();
        self.bound_offset();
        self.update();
    }

    /// The kernel's invariant check: the ranges are non-empty and a known
    /// value agrees with every range. On a violation (which the kernel
    /// logs and then treats as "unbounded") returns the reason.
    pub fn invariant_violation(&self) -> Option<&'static str> {
        if self.umin > self.umax
            || self.smin > self.smax
            || self.u32_min > self.u32_max
            || self.s32_min > self.s32_max
        {
            return Some("range bounds violation");
        }
        if self.var_off.is_const() {
            let u = self.var_off.value;
            if self.umin != u || self.umax != u || self.smin != u as i64 || self.smax != u as i64 {
                return Some("const tnum out of sync with range bounds");
            }
        }
        if self.var_off.subreg_is_const() {
            let u = self.var_off.value as u32;
            if self.u32_min != u
                || self.u32_max != u
                || self.s32_min != u as i32
                || self.s32_max != u as i32
            {
                return Some("const subreg tnum out of sync with range bounds");
            }
        }
        None
    }

    /// Check the invariants; on a violation forget the ranges, as the
    /// kernel does without `BPF_F_TEST_REG_INVARIANTS`.
    pub fn sanitize(&mut self) -> Option<&'static str> {
        let v = self.invariant_violation();
        if v.is_some() {
            self.unbound();
        }
        v
    }

    /// Replace the 64-bit ranges by the 32-bit ones (after the upper half
    /// became zero).
    pub fn assign_32_into_64(&mut self) {
        self.umin = self.u32_min as u64;
        self.umax = self.u32_max as u64;
        if self.s32_min >= 0 && self.s32_max >= 0 {
            self.smin = self.s32_min as i64;
            self.smax = self.s32_max as i64;
        } else {
            self.smin = 0;
            self.smax = u32::MAX as i64;
        }
    }

    /// Zero the upper 32 bits (the result of every 32-bit operation).
    pub fn zext_32_to_64(&mut self) {
        self.var_off = self.var_off.subreg();
        self.assign_32_into_64();
    }

    /// Keep the low `size` bytes (`size` < 8), zero the rest.
    pub fn truncate(&mut self, size: u32) {
        self.var_off = self.var_off.cast(size);
        let mask = (1u64 << (size * 8)) - 1;
        if self.umin & !mask == self.umax & !mask {
            self.umin &= mask;
            self.umax &= mask;
        } else {
            self.umin = 0;
            self.umax = mask;
        }
        self.smin = self.umin as i64;
        self.smax = self.umax as i64;
        if size < 4 {
            self.unbound32();
        }
        self.sync();
    }

    /// Sign-extend the low `size` bytes (1, 2 or 4) to 64 bits.
    pub fn sign_extend(&mut self, size: u32) {
        let sx = |v: u64| -> i64 {
            match size {
                1 => v as i8 as i64,
                2 => v as i16 as i64,
                _ => v as i32 as i64,
            }
        };
        if self.var_off.is_const() {
            let v = sx(self.var_off.value) as u64;
            *self = Bounds::konst(v);
            return;
        }
        let bits = size * 8;
        let top_max = (self.smax as u64 >> bits) << bits;
        let top_min = (self.smin as u64 >> bits) << bits;
        if top_max == top_min {
            let a = sx(self.smax as u64);
            let b = sx(self.smin as u64);
            let (lo, hi) = (a.min(b), a.max(b));
            if (lo >= 0) == (hi >= 0) {
                self.smin = lo;
                self.smax = hi;
                self.s32_min = lo as i32;
                self.s32_max = hi as i32;
                self.umin = lo as u64;
                self.umax = hi as u64;
                self.u32_min = lo as u32;
                self.u32_max = hi as u32;
                self.var_off = Tnum::range(lo as u64, hi as u64);
                return;
            }
        }
        let (min, max) = match size {
            1 => (i8::MIN as i64, i8::MAX as i64),
            2 => (i16::MIN as i64, i16::MAX as i64),
            _ => (i32::MIN as i64, i32::MAX as i64),
        };
        self.smin = min;
        self.smax = max;
        self.s32_min = min as i32;
        self.s32_max = max as i32;
        self.umin = 0;
        self.u32_min = 0;
        self.umax = u64::MAX;
        self.u32_max = u32::MAX;
        self.var_off = Tnum::UNKNOWN;
    }

    /// Sign-extend the low `size` bytes (1 or 2) to 32 bits, within the
    /// subregister (the caller zero-extends afterwards).
    pub fn sign_extend32(&mut self, size: u32) {
        let sx = |v: u32| -> i32 {
            match size {
                1 => v as i8 as i32,
                _ => v as i16 as i32,
            }
        };
        if self.var_off.is_const() {
            let v = sx(self.var_off.value as u32);
            // The kernel keeps a 64-bit constant here (sign-extended to 64).
            self.var_off = Tnum::konst(v as i64 as u64);
            self.s32_min = v;
            self.s32_max = v;
            self.u32_min = v as u32;
            self.u32_max = v as u32;
            return;
        }
        let bits = size * 8;
        let top_max = (self.s32_max as u32 >> bits) << bits;
        let top_min = (self.s32_min as u32 >> bits) << bits;
        if top_max == top_min {
            let a = sx(self.s32_max as u32);
            let b = sx(self.s32_min as u32);
            let (lo, hi) = (a.min(b), a.max(b));
            if (lo >= 0) == (hi >= 0) {
                self.s32_min = lo;
                self.s32_max = hi;
                self.u32_min = lo as u32;
                self.u32_max = hi as u32;
                self.var_off = Tnum::range(lo as i64 as u64, hi as i64 as u64).subreg();
                return;
            }
        }
        let (min, max) = match size {
            1 => (i8::MIN as i32, i8::MAX as i32),
            _ => (i16::MIN as i32, i16::MAX as i32),
        };
        self.s32_min = min;
        self.s32_max = max;
        self.u32_min = 0;
        self.u32_max = u32::MAX;
        self.var_off = Tnum::UNKNOWN.subreg();
    }

    /// `BPF_END` of a scalar: the low `bits` kept, their bytes reversed
    /// when `swap`. Every bit of the tnum moves with its byte, so the
    /// result's tnum is exact; the ranges follow from it.
    pub fn byte_order(&self, swap: bool, bits: u8) -> Bounds {
        let bits = u32::from(bits);
        let sw = |v: u64| {
            let v = if bits == 64 {
                v
            } else {
                v & ((1u64 << bits) - 1)
            };
            match (swap, bits) {
                (false, _) => v,
                (true, 16) => u64::from((v as u16).swap_bytes()),
                (true, 32) => u64::from((v as u32).swap_bytes()),
                (true, _) => v.swap_bytes(),
            }
        };
        let mut out = Bounds::unknown();
        out.var_off = Tnum::new(sw(self.var_off.value), sw(self.var_off.mask));
        out.sync();
        out
    }

    /// Whether the kernel computes a range for `op` with this source
    /// (`is_safe_to_compute_dst_reg_range`); otherwise the result is unknown.
    pub fn op_is_tracked(op: ScalarOp, src: &Bounds, alu32: bool) -> bool {
        match op {
            ScalarOp::Lsh | ScalarOp::Rsh | ScalarOp::Arsh => {
                let konst = if alu32 {
                    src.var_off.subreg_is_const()
                        && src.s32_min == src.s32_max
                        && src.u32_min == src.u32_max
                } else {
                    src.var_off.is_const() && src.smin == src.smax && src.umin == src.umax
                };
                konst && src.umax < if alu32 { 32 } else { 64 }
            }
            _ => true,
        }
    }

    /// `self = self op src` for a tracked op ([`Bounds::op_is_tracked`]),
    /// 32-bit results zero-extended, then synced.
    pub fn alu(&mut self, op: ScalarOp, src: &Bounds, alu32: bool) {
        match op {
            ScalarOp::Add => {
                self.add32(src);
                self.add64(src);
                self.var_off = self.var_off.add(src.var_off);
            }
            ScalarOp::Sub => {
                self.sub32(src);
                self.sub64(src);
                self.var_off = self.var_off.sub(src.var_off);
            }
            ScalarOp::Mul => {
                self.var_off = self.var_off.mul(src.var_off);
                self.mul32(src);
                self.mul64(src);
            }
            ScalarOp::And => {
                self.var_off = self.var_off.and(src.var_off);
                self.and32(src);
                self.and64(src);
            }
            ScalarOp::Or => {
                self.var_off = self.var_off.or(src.var_off);
                self.or32(src);
                self.or64(src);
            }
            ScalarOp::Xor => {
                self.var_off = self.var_off.xor(src.var_off);
                self.xor32(src);
                self.xor64(src);
            }
            ScalarOp::Lsh => {
                if alu32 {
                    self.lsh32(src)
                } else {
                    self.lsh64(src)
                }
            }
            ScalarOp::Rsh => {
                if alu32 {
                    self.rsh32(src)
                } else {
                    self.rsh64(src)
                }
            }
            ScalarOp::Arsh => {
                if alu32 {
                    self.arsh32(src)
                } else {
                    self.arsh64(src)
                }
            }
        }
        if alu32 {
            self.zext_32_to_64();
        }
        self.sync();
    }

    fn add32(&mut self, s: &Bounds) {
        match (
            self.s32_min.checked_add(s.s32_min),
            self.s32_max.checked_add(s.s32_max),
        ) {
            (Some(a), Some(b)) => (self.s32_min, self.s32_max) = (a, b),
            _ => (self.s32_min, self.s32_max) = (i32::MIN, i32::MAX),
        }
        match (
            self.u32_min.checked_add(s.u32_min),
            self.u32_max.checked_add(s.u32_max),
        ) {
            (Some(a), Some(b)) => (self.u32_min, self.u32_max) = (a, b),
            _ => (self.u32_min, self.u32_max) = (0, u32::MAX),
        }
    }

    fn add64(&mut self, s: &Bounds) {
        match (self.smin.checked_add(s.smin), self.smax.checked_add(s.smax)) {
            (Some(a), Some(b)) => (self.smin, self.smax) = (a, b),
            _ => (self.smin, self.smax) = (i64::MIN, i64::MAX),
        }
        match (self.umin.checked_add(s.umin), self.umax.checked_add(s.umax)) {
            (Some(a), Some(b)) => (self.umin, self.umax) = (a, b),
            _ => (self.umin, self.umax) = (0, u64::MAX),
        }
    }

    fn sub32(&mut self, s: &Bounds) {
        match (
            self.s32_min.checked_sub(s.s32_max),
            self.s32_max.checked_sub(s.s32_min),
        ) {
            (Some(a), Some(b)) => (self.s32_min, self.s32_max) = (a, b),
            _ => (self.s32_min, self.s32_max) = (i32::MIN, i32::MAX),
        }
        if self.u32_min < s.u32_max {
            (self.u32_min, self.u32_max) = (0, u32::MAX);
        } else {
            self.u32_min -= s.u32_max;
            self.u32_max = self.u32_max.wrapping_sub(s.u32_min);
        }
    }

    fn sub64(&mut self, s: &Bounds) {
        match (self.smin.checked_sub(s.smax), self.smax.checked_sub(s.smin)) {
            (Some(a), Some(b)) => (self.smin, self.smax) = (a, b),
            _ => (self.smin, self.smax) = (i64::MIN, i64::MAX),
        }
        if self.umin < s.umax {
            (self.umin, self.umax) = (0, u64::MAX);
        } else {
            self.umin -= s.umax;
            self.umax = self.umax.wrapping_sub(s.umin);
        }
    }

    fn mul32(&mut self, s: &Bounds) {
        if s.s32_min < 0 || self.s32_min < 0 {
            self.unbound32();
            return;
        }
        if s.u32_max > u16::MAX as u32 || self.u32_max > u16::MAX as u32 {
            self.unbound32();
            return;
        }
        self.u32_min = self.u32_min.wrapping_mul(s.u32_min);
        self.u32_max = self.u32_max.wrapping_mul(s.u32_max);
        if self.u32_max > i32::MAX as u32 {
            (self.s32_min, self.s32_max) = (i32::MIN, i32::MAX);
        } else {
            (self.s32_min, self.s32_max) = (self.u32_min as i32, self.u32_max as i32);
        }
    }

    fn mul64(&mut self, s: &Bounds) {
        if s.smin < 0 || self.smin < 0 {
            self.unbound64();
            return;
        }
        if s.umax > u32::MAX as u64 || self.umax > u32::MAX as u64 {
            self.unbound64();
            return;
        }
        self.umin = self.umin.wrapping_mul(s.umin);
        self.umax = self.umax.wrapping_mul(s.umax);
        if self.umax > i64::MAX as u64 {
            (self.smin, self.smax) = (i64::MIN, i64::MAX);
        } else {
            (self.smin, self.smax) = (self.umin as i64, self.umax as i64);
        }
    }

    /// The signed 32-bit range from the unsigned one when it does not
    /// cross the sign boundary, else unbounded.
    fn s32_from_u32(&mut self) {
        if (self.u32_min as i32) <= (self.u32_max as i32) {
            (self.s32_min, self.s32_max) = (self.u32_min as i32, self.u32_max as i32);
        } else {
            (self.s32_min, self.s32_max) = (i32::MIN, i32::MAX);
        }
    }

    fn s64_from_u64(&mut self) {
        if (self.umin as i64) <= (self.umax as i64) {
            (self.smin, self.smax) = (self.umin as i64, self.umax as i64);
        } else {
            (self.smin, self.smax) = (i64::MIN, i64::MAX);
        }
    }

    fn and32(&mut self, s: &Bounds) {
        let v32 = self.var_off.subreg();
        if s.var_off.subreg_is_const() && self.var_off.subreg_is_const() {
            self.mark32_known(v32.value as u32);
            return;
        }
        self.u32_min = v32.value as u32;
        self.u32_max = self.u32_max.min(s.u32_max);
        self.s32_from_u32();
    }

    fn and64(&mut self, s: &Bounds) {
        if s.var_off.is_const() && self.var_off.is_const() {
            *self = Bounds::konst(self.var_off.value);
            return;
        }
        self.umin = self.var_off.value;
        self.umax = self.umax.min(s.umax);
        self.s64_from_u64();
        self.update();
    }

    fn or32(&mut self, s: &Bounds) {
        let v32 = self.var_off.subreg();
        if s.var_off.subreg_is_const() && self.var_off.subreg_is_const() {
            self.mark32_known(v32.value as u32);
            return;
        }
        self.u32_min = self.u32_min.max(s.u32_min);
        self.u32_max = (v32.value | v32.mask) as u32;
        self.s32_from_u32();
    }

    fn or64(&mut self, s: &Bounds) {
        if s.var_off.is_const() && self.var_off.is_const() {
            *self = Bounds::konst(self.var_off.value);
            return;
        }
        self.umin = self.umin.max(s.umin);
        self.umax = self.var_off.value | self.var_off.mask;
        self.s64_from_u64();
        self.update();
    }

    fn xor32(&mut self, s: &Bounds) {
        let v32 = self.var_off.subreg();
        if s.var_off.subreg_is_const() && self.var_off.subreg_is_const() {
            self.mark32_known(v32.value as u32);
            return;
        }
        self.u32_min = v32.value as u32;
        self.u32_max = (v32.value | v32.mask) as u32;
        self.s32_from_u32();
    }

    fn xor64(&mut self, s: &Bounds) {
        if s.var_off.is_const() && self.var_off.is_const() {
            *self = Bounds::konst(self.var_off.value);
            return;
        }
        self.umin = self.var_off.value;
        self.umax = self.var_off.value | self.var_off.mask;
        self.s64_from_u64();
        self.update();
    }

    fn lsh32_ranges(&mut self, umin: u64, umax: u64) {
        self.s32_min = i32::MIN;
        self.s32_max = i32::MAX;
        if umax > 31 || self.u32_max as u64 > 1u64 << (31 - umax) {
            self.u32_min = 0;
            self.u32_max = u32::MAX;
        } else {
            self.u32_min <<= umin;
            self.u32_max <<= umax;
        }
    }

    fn lsh32(&mut self, s: &Bounds) {
        let (umin, umax) = (s.u32_min as u64, s.u32_max as u64);
        let sub = self.var_off.subreg();
        self.lsh32_ranges(umin, umax);
        self.var_off = sub.lshift(umin as u32).subreg();
        self.unbound64();
        self.update32();
    }

    fn lsh64(&mut self, s: &Bounds) {
        let (umin, umax) = (s.umin, s.umax);
        if umin == 32 && umax == 32 {
            self.smax = (self.s32_max as i64) << 32;
            self.smin = (self.s32_min as i64) << 32;
        } else {
            self.smax = i64::MAX;
            self.smin = i64::MIN;
        }
        if self.umax > 1u64 << (63 - umax) {
            self.umin = 0;
            self.umax = u64::MAX;
        } else {
            self.umin <<= umin;
            self.umax <<= umax;
        }
        self.lsh32_ranges(umin, umax);
        self.var_off = self.var_off.lshift(umin as u32);
        self.update();
    }

    fn rsh32(&mut self, s: &Bounds) {
        let sub = self.var_off.subreg();
        let (umin, umax) = (s.u32_min, s.u32_max);
        self.s32_min = i32::MIN;
        self.s32_max = i32::MAX;
        self.var_off = sub.rshift(umin);
        self.u32_min = self.u32_min.checked_shr(umax).unwrap_or(0);
        self.u32_max = self.u32_max.checked_shr(umin).unwrap_or(0);
        self.unbound64();
        self.update32();
    }

    fn rsh64(&mut self, s: &Bounds) {
        let (umin, umax) = (s.umin as u32, s.umax as u32);
        self.smin = i64::MIN;
        self.smax = i64::MAX;
        self.var_off = self.var_off.rshift(umin);
        self.umin = self.umin.checked_shr(umax).unwrap_or(0);
        self.umax = self.umax.checked_shr(umin).unwrap_or(0);
        self.unbound32();
        self.update();
    }

    fn arsh32(&mut self, s: &Bounds) {
        let sh = s.u32_min;
        self.s32_min >>= sh;
        self.s32_max >>= sh;
        self.var_off = self.var_off.subreg().arshift(sh, 32);
        self.u32_min = 0;
        self.u32_max = u32::MAX;
        self.unbound64();
        self.update32();
    }

    fn arsh64(&mut self, s: &Bounds) {
        let sh = s.umin as u32;
        self.smin >>= sh;
        self.smax >>= sh;
        self.var_off = self.var_off.arshift(sh, 64);
        self.umin = 0;
        self.umax = u64::MAX;
        self.unbound32();
        self.update();
    }

    /// The 64- or 32-bit view used by branch logic: (tnum, umin, umax, smin, smax).
    fn view(&self, jmp32: bool) -> (Tnum, u64, u64, i64, i64) {
        if jmp32 {
            (
                self.var_off.subreg(),
                self.u32_min as u64,
                self.u32_max as u64,
                self.s32_min as i64,
                self.s32_max as i64,
            )
        } else {
            (self.var_off, self.umin, self.umax, self.smin, self.smax)
        }
    }
}

/// Whether `a cond b` is always true (`Some(true)`), always false
/// (`Some(false)`) or depends on the values (`None`), for two scalars.
pub fn branch_taken(a: &Bounds, b: &Bounds, cond: Cond, jmp32: bool) -> Option<bool> {
    let (t1, umin1, umax1, smin1, smax1) = a.view(jmp32);
    let (t2, umin2, umax2, smin2, smax2) = b.view(jmp32);
    match cond {
        Cond::Eq | Cond::Ne => {
            let eq = cond == Cond::Eq;
            if t1.is_const() && t2.is_const() {
                return Some((t1.value == t2.value) == eq);
            }
            let disjoint = !t1.overlap(t2)
                || umin1 > umax2
                || umax1 < umin2
                || smin1 > smax2
                || smax1 < smin2
                || (!jmp32
                    && (a.u32_min > b.u32_max
                        || a.u32_max < b.u32_min
                        || a.s32_min > b.s32_max
                        || a.s32_max < b.s32_min));
            if disjoint {
                return Some(!eq);
            }
            None
        }
        Cond::Set | Cond::NotSet => {
            let (t1, t2) = if b.is_const_w(jmp32) {
                (t1, t2)
            } else if a.is_const_w(jmp32) {
                (t2, t1)
            } else {
                return None;
            };
            let set = if (!t1.mask & t1.value) & t2.value != 0 {
                Some(true)
            } else if (t1.mask | t1.value) & t2.value == 0 {
                Some(false)
            } else {
                None
            };
            if cond == Cond::Set {
                set
            } else {
                set.map(|s| !s)
            }
        }
        Cond::Gt => decide(umin1 > umax2, umax1 <= umin2),
        Cond::Sgt => decide(smin1 > smax2, smax1 <= smin2),
        Cond::Lt => decide(umax1 < umin2, umin1 >= umax2),
        Cond::Slt => decide(smax1 < smin2, smin1 >= smax2),
        Cond::Ge => decide(umin1 >= umax2, umax1 < umin2),
        Cond::Sge => decide(smin1 >= smax2, smax1 < smin2),
        Cond::Le => decide(umax1 <= umin2, umin1 > umax2),
        Cond::Sle => decide(smax1 <= smin2, smin1 > smax2),
    }
}

fn decide(always: bool, never: bool) -> Option<bool> {
    if always {
        Some(true)
    } else if never {
        Some(false)
    } else {
        None
    }
}

/// Narrow two scalars to the values for which `a cond b` holds
/// (`regs_refine_cond_op`, followed by a sync of both).
pub fn refine(a: &mut Bounds, b: &mut Bounds, cond: Cond, jmp32: bool) {
    refine_raw(a, b, cond, jmp32);
    a.sync();
    b.sync();
}

fn refine_raw(a: &mut Bounds, b: &mut Bounds, cond: Cond, jmp32: bool) {
    let (r1, r2, cond) = match cond {
        Cond::Ge | Cond::Gt | Cond::Sge | Cond::Sgt => (b, a, cond.flip()),
        _ => (a, b, cond),
    };
    match cond {
        Cond::Eq => {
            if jmp32 {
                r1.u32_min = r1.u32_min.max(r2.u32_min);
                r1.u32_max = r1.u32_max.min(r2.u32_max);
                r1.s32_min = r1.s32_min.max(r2.s32_min);
                r1.s32_max = r1.s32_max.min(r2.s32_max);
                r2.u32_min = r1.u32_min;
                r2.u32_max = r1.u32_max;
                r2.s32_min = r1.s32_min;
                r2.s32_max = r1.s32_max;
                let t = r1.var_off.subreg().intersect(r2.var_off.subreg());
                r1.var_off = r1.var_off.with_subreg(t);
                r2.var_off = r2.var_off.with_subreg(t);
            } else {
                r1.umin = r1.umin.max(r2.umin);
                r1.umax = r1.umax.min(r2.umax);
                r1.smin = r1.smin.max(r2.smin);
                r1.smax = r1.smax.min(r2.smax);
                r2.umin = r1.umin;
                r2.umax = r1.umax;
                r2.smin = r1.smin;
                r2.smax = r1.smax;
                r1.var_off = r1.var_off.intersect(r2.var_off);
                r2.var_off = r1.var_off;
            }
        }
        Cond::Ne => {
            let (r1, r2) = if r2.is_const_w(jmp32) {
                (r1, r2)
            } else {
                (r2, r1)
            };
            if !r2.is_const_w(jmp32) {
                return;
            }
            let val = r2.const_w(jmp32);
            if jmp32 {
                if r1.u32_min == val as u32 {
                    r1.u32_min = r1.u32_min.wrapping_add(1);
                }
                if r1.u32_max == val as u32 {
                    r1.u32_max = r1.u32_max.wrapping_sub(1);
                }
                if r1.s32_min == val as i32 {
                    r1.s32_min = r1.s32_min.wrapping_add(1);
                }
                if r1.s32_max == val as i32 {
                    r1.s32_max = r1.s32_max.wrapping_sub(1);
                }
            } else {
                if r1.umin == val {
                    r1.umin = r1.umin.wrapping_add(1);
                }
                if r1.umax == val {
                    r1.umax = r1.umax.wrapping_sub(1);
                }
                if r1.smin == val as i64 {
                    r1.smin = r1.smin.wrapping_add(1);
                }
                if r1.smax == val as i64 {
                    r1.smax = r1.smax.wrapping_sub(1);
                }
            }
        }
        Cond::Set => {
            let (r1, r2) = if r2.is_const_w(jmp32) {
                (r1, r2)
            } else {
                (r2, r1)
            };
            if !r2.is_const_w(jmp32) {
                return;
            }
            let val = r2.const_w(jmp32);
            if !val.is_power_of_two() {
                return;
            }
            if jmp32 {
                let t = r1.var_off.subreg().or(Tnum::konst(val));
                r1.var_off = r1.var_off.with_subreg(t);
            } else {
                r1.var_off = r1.var_off.or(Tnum::konst(val));
            }
        }
        Cond::NotSet => {
            let (r1, r2) = if r2.is_const_w(jmp32) {
                (r1, r2)
            } else {
                (r2, r1)
            };
            if !r2.is_const_w(jmp32) {
                return;
            }
            let val = r2.const_w(jmp32);
            r1.unbound();
            if jmp32 {
                let t = r1.var_off.subreg().and(Tnum::konst(!val));
                r1.var_off = r1.var_off.with_subreg(t);
            } else {
                r1.var_off = r1.var_off.and(Tnum::konst(!val));
            }
        }
        Cond::Le => {
            if jmp32 {
                r1.u32_max = r1.u32_max.min(r2.u32_max);
                r2.u32_min = r1.u32_min.max(r2.u32_min);
            } else {
                r1.umax = r1.umax.min(r2.umax);
                r2.umin = r1.umin.max(r2.umin);
            }
        }
        Cond::Lt => {
            if jmp32 {
                r1.u32_max = r1.u32_max.min(r2.u32_max.wrapping_sub(1));
                r2.u32_min = r1.u32_min.wrapping_add(1).max(r2.u32_min);
            } else {
                r1.umax = r1.umax.min(r2.umax.wrapping_sub(1));
                r2.umin = r1.umin.wrapping_add(1).max(r2.umin);
            }
        }
        Cond::Sle => {
            if jmp32 {
                r1.s32_max = r1.s32_max.min(r2.s32_max);
                r2.s32_min = r1.s32_min.max(r2.s32_min);
            } else {
                r1.smax = r1.smax.min(r2.smax);
                r2.smin = r1.smin.max(r2.smin);
            }
        }
        Cond::Slt => {
            if jmp32 {
                r1.s32_max = r1.s32_max.min(r2.s32_max.wrapping_sub(1));
                r2.s32_min = r1.s32_min.wrapping_add(1).max(r2.s32_min);
            } else {
                r1.smax = r1.smax.min(r2.smax.wrapping_sub(1));
                r2.smin = r1.smin.wrapping_add(1).max(r2.smin);
            }
        }
        Cond::Ge | Cond::Gt | Cond::Sge | Cond::Sgt => unreachable!("flipped above"),
    }
}

#[cfg(test)]
mod tests;
