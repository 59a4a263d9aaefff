//! Tristate numbers: 64 bits each known 0, known 1 or unknown, with the
//! kernel's operations on them (kernel/bpf/tnum.c). A bit set in `mask` is
//! unknown; `value` holds the known bits and is 0 wherever `mask` is 1.

use std::fmt;

/// A tristate number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Tnum {
    pub value: u64,
    pub mask: u64,
}

// `add`, `sub` and `mul` are the kernel's tnum_add, tnum_sub and tnum_mul:
// the names say what they compute on tristate numbers, not arithmetic.
#[allow(clippy::should_implement_trait)]
impl Tnum {
    /// Every bit unknown.
    pub const UNKNOWN: Tnum = Tnum {
        value: 0,
        mask: u64::MAX,
    };

    pub const fn new(value: u64, mask: u64) -> Tnum {
        Tnum { value, mask }
    }

    pub const fn konst(value: u64) -> Tnum {
        Tnum { value, mask: 0 }
    }

    /// The smallest tnum containing every value of `min..=max`.
    pub fn range(min: u64, max: u64) -> Tnum {
        let chi = min ^ max;
        let bits = 64 - chi.leading_zeros();
        if bits > 63 {
            return Tnum::UNKNOWN;
        }
        let delta = (1u64 << bits) - 1;
        Tnum::new(min & !delta, delta)
    }

    pub fn is_const(self) -> bool {
        self.mask == 0
    }

    pub fn is_unknown(self) -> bool {
        self.mask == u64::MAX
    }

    pub fn equals_const(self, v: u64) -> bool {
        self.is_const() && self.value == v
    }

    pub fn lshift(self, shift: u32) -> Tnum {
        Tnum::new(shl(self.value, shift), shl(self.mask, shift))
    }

    pub fn rshift(self, shift: u32) -> Tnum {
        Tnum::new(shr(self.value, shift), shr(self.mask, shift))
    }

    /// Arithmetic shift right by `min_shift` at width `bits` (32 or 64).
    pub fn arshift(self, min_shift: u32, bits: u32) -> Tnum {
        if bits == 32 {
            let v = ((self.value as u32 as i32) >> min_shift.min(31)) as u32;
            let m = ((self.mask as u32 as i32) >> min_shift.min(31)) as u32;
            Tnum::new(v as u64, m as u64)
        } else {
            let v = (self.value as i64) >> min_shift.min(63);
            let m = (self.mask as i64) >> min_shift.min(63);
            Tnum::new(v as u64, m as u64)
        }
    }

    pub fn add(self, b: Tnum) -> Tnum {
        let sm = self.mask.wrapping_add(b.mask);
        let sv = self.value.wrapping_add(b.value);
        let sigma = sm.wrapping_add(sv);
        let chi = sigma ^ sv;
        let mu = chi | self.mask | b.mask;
        Tnum::new(sv & !mu, mu)
    }

    pub fn sub(self, b: Tnum) -> Tnum {
        let dv = self.value.wrapping_sub(b.value);
        let alpha = dv.wrapping_add(self.mask);
        let beta = dv.wrapping_sub(b.mask);
        let chi = alpha ^ beta;
        let mu = chi | self.mask | b.mask;
        Tnum::new(dv & !mu, mu)
    }

    pub fn and(self, b: Tnum) -> Tnum {
        let alpha = self.value | self.mask;
        let beta = b.value | b.mask;
        let v = self.value & b.value;
        Tnum::new(v, alpha & beta & !v)
    }

    pub fn or(self, b: Tnum) -> Tnum {
        let v = self.value | b.value;
        let mu = self.mask | b.mask;
        Tnum::new(v, mu & !v)
    }

    pub fn xor(self, b: Tnum) -> Tnum {
        let v = self.value ^ b.value;
        let mu = self.mask | b.mask;
        Tnum::new(v & !mu, mu)
    }

    /// Multiplication by shifting and adding partial products.
    pub fn mul(self, b: Tnum) -> Tnum {
        let acc_v = self.value.wrapping_mul(b.value);
        let mut acc_m = Tnum::konst(0);
        let (mut a, mut b) = (self, b);
        while a.value != 0 || a.mask != 0 {
            if a.value & 1 != 0 {
                acc_m = acc_m.add(Tnum::new(0, b.mask));
            } else if a.mask & 1 != 0 {
                acc_m = acc_m.add(Tnum::new(0, b.value | b.mask));
            }
            a = a.rshift(1);
            b = b.lshift(1);
        }
        Tnum::konst(acc_v).add(acc_m)
    }

    /// Whether some value is in both.
    pub fn overlap(self, b: Tnum) -> bool {
        let mu = !self.mask & !b.mask;
        (self.value & mu) == (b.value & mu)
    }

    /// The values in both (bits known in either).
    pub fn intersect(self, b: Tnum) -> Tnum {
        let v = self.value | b.value;
        let mu = self.mask & b.mask;
        Tnum::new(v & !mu, mu)
    }

    /// Truncate to the low `size` bytes.
    pub fn cast(self, size: u32) -> Tnum {
        if size >= 8 {
            return self;
        }
        let m = (1u64 << (size * 8)) - 1;
        Tnum::new(self.value & m, self.mask & m)
    }

    pub fn is_aligned(self, size: u64) -> bool {
        size == 0 || (self.value | self.mask) & (size - 1) == 0
    }

    /// Whether every value of `b` is a value of `self`.
    pub fn contains(self, b: Tnum) -> bool {
        if b.mask & !self.mask != 0 {
            return false;
        }
        self.value == b.value & !self.mask
    }

    /// The low 32 bits.
    pub fn subreg(self) -> Tnum {
        self.cast(4)
    }

    /// The high 32 bits, low ones known 0.
    pub fn clear_subreg(self) -> Tnum {
        self.rshift(32).lshift(32)
    }

    /// `self` with its low 32 bits replaced by those of `sub`.
    pub fn with_subreg(self, sub: Tnum) -> Tnum {
        self.clear_subreg().or(sub.subreg())
    }

    pub fn const_subreg(self, v: u32) -> Tnum {
        self.with_subreg(Tnum::konst(v as u64))
    }

    pub fn subreg_is_const(self) -> bool {
        self.subreg().is_const()
    }
}

fn shl(v: u64, s: u32) -> u64 {
    v.checked_shl(s).unwrap_or(0)
}

fn shr(v: u64, s: u32) -> u64 {
    v.checked_shr(s).unwrap_or(0)
}

impl fmt::Display for Tnum {
    /// The kernel's `tnum_strn`: a constant as a number (decimal up to
    /// 65535, else hex), otherwise `(0x0; 0xff)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mask == 0 {
            if self.value <= u16::MAX as u64 {
                write!(f, "{}", self.value)
            } else {
                write!(f, "{:#x}", self.value)
            }
        } else {
            write!(f, "({:#x}; {:#x})", self.value, self.mask)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A random tnum and a random member of it.
    fn member() -> impl Strategy<Value = (Tnum, u64)> {
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(v, m, pick)| {
            let m = m & m.rotate_left(7); // fewer unknown bits on average
            let t = Tnum::new(v & !m, m);
            (t, (v & !m) | (pick & m))
        })
    }

    #[test]
    fn range_and_const() {
        assert_eq!(Tnum::range(0, 255), Tnum::new(0, 0xff));
        assert_eq!(Tnum::range(4, 4), Tnum::konst(4));
        assert_eq!(Tnum::range(0, u64::MAX), Tnum::UNKNOWN);
        assert_eq!(Tnum::range(8, 12), Tnum::new(8, 7));
        assert_eq!(Tnum::new(0, 0xff).to_string(), "(0x0; 0xff)");
        assert_eq!(Tnum::konst(7).to_string(), "7");
        assert_eq!(Tnum::konst(0x10000).to_string(), "0x10000");
        assert!(Tnum::new(0, 0xf0).is_aligned(16));
        assert!(!Tnum::new(0, 0xf8).is_aligned(16));
    }

    proptest! {
        #[test]
        fn ops_contain_concrete_results((a, x) in member(), (b, y) in member(), s in 0u32..64) {
            prop_assert!(a.add(b).contains(Tnum::konst(x.wrapping_add(y))));
            prop_assert!(a.sub(b).contains(Tnum::konst(x.wrapping_sub(y))));
            prop_assert!(a.mul(b).contains(Tnum::konst(x.wrapping_mul(y))));
            prop_assert!(a.and(b).contains(Tnum::konst(x & y)));
            prop_assert!(a.or(b).contains(Tnum::konst(x | y)));
            prop_assert!(a.xor(b).contains(Tnum::konst(x ^ y)));
            prop_assert!(a.lshift(s).contains(Tnum::konst(x << s)));
            prop_assert!(a.rshift(s).contains(Tnum::konst(x >> s)));
            prop_assert!(a.arshift(s, 64).contains(Tnum::konst(((x as i64) >> s) as u64)));
            let s32 = s % 32;
            prop_assert!(a.arshift(s32, 32).contains(Tnum::konst(((x as u32 as i32) >> s32) as u32 as u64)));
            prop_assert!(a.cast(2).contains(Tnum::konst(x & 0xffff)));
            prop_assert!(a.overlap(Tnum::konst(x)));
            prop_assert!(a.contains(Tnum::konst(x)));
            if a.overlap(b) {
                let i = a.intersect(b);
                prop_assert!(a.contains(i) || i.mask & !a.mask == 0);
            }
            prop_assert!(Tnum::range(x.min(y), x.max(y)).contains(Tnum::konst(x)));
        }
    }
}
