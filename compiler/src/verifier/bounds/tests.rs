//! Soundness of the range rules: every concrete value that a [`Bounds`]
//! admits stays admitted by the result of each operation.

use super::*;
use proptest::prelude::*;

fn contains(b: &Bounds, x: u64) -> bool {
    b.var_off.contains(Tnum::konst(x))
        && b.umin <= x
        && x <= b.umax
        && b.smin <= x as i64
        && x as i64 <= b.smax
        && b.u32_min <= x as u32
        && x as u32 <= b.u32_max
        && b.s32_min <= x as i32
        && x as i32 <= b.s32_max
}

/// A value and random bounds around it: a tnum containing it and ranges
/// containing it, synced.
fn around() -> impl Strategy<Value = (Bounds, u64)> {
    let value = prop_oneof![
        any::<u64>(),
        (0u64..300),
        (-300i64..300).prop_map(|v| v as u64),
        (0u64..64).prop_map(|s| 1u64 << s),
        any::<u32>().prop_map(|v| v as u64),
        any::<i32>().prop_map(|v| v as i64 as u64),
    ];
    (
        value,
        any::<u64>(),
        prop::collection::vec(any::<u64>(), 8),
        any::<u8>(),
    )
        .prop_map(|(x, mask, slack, pick)| {
            let mut b = Bounds::unknown();
            let mask = mask & mask.rotate_left(13) & mask.rotate_left(29);
            if pick & 1 != 0 {
                b.var_off = Tnum::new(x & !mask, mask);
            }
            let narrow = |s: u64| s >> (s % 64);
            if pick & 2 != 0 {
                b.umin = x.saturating_sub(narrow(slack[0]));
                b.umax = x.saturating_add(narrow(slack[1]));
            }
            if pick & 4 != 0 {
                b.smin = (x as i64).saturating_sub((narrow(slack[2]) >> 1) as i64);
                b.smax = (x as i64).saturating_add((narrow(slack[3]) >> 1) as i64);
            }
            if pick & 8 != 0 {
                b.u32_min = (x as u32).saturating_sub(narrow(slack[4]) as u32);
                b.u32_max = (x as u32).saturating_add(narrow(slack[5]) as u32);
            }
            if pick & 16 != 0 {
                b.s32_min = (x as i32).saturating_sub((narrow(slack[6]) as u32 >> 1) as i32);
                b.s32_max = (x as i32).saturating_add((narrow(slack[7]) as u32 >> 1) as i32);
            }
            if pick & 32 != 0 {
                b = Bounds::konst(x);
            }
            b.sync();
            (b, x)
        })
}

fn concrete(op: ScalarOp, x: u64, y: u64, alu32: bool) -> u64 {
    if alu32 {
        let (a, b) = (x as u32, y as u32);
        (match op {
            ScalarOp::Add => a.wrapping_add(b),
            ScalarOp::Sub => a.wrapping_sub(b),
            ScalarOp::Mul => a.wrapping_mul(b),
            ScalarOp::And => a & b,
            ScalarOp::Or => a | b,
            ScalarOp::Xor => a ^ b,
            ScalarOp::Lsh => a << (b & 31),
            ScalarOp::Rsh => a >> (b & 31),
            ScalarOp::Arsh => ((a as i32) >> (b & 31)) as u32,
        }) as u64
    } else {
        match op {
            ScalarOp::Add => x.wrapping_add(y),
            ScalarOp::Sub => x.wrapping_sub(y),
            ScalarOp::Mul => x.wrapping_mul(y),
            ScalarOp::And => x & y,
            ScalarOp::Or => x | y,
            ScalarOp::Xor => x ^ y,
            ScalarOp::Lsh => x << (y & 63),
            ScalarOp::Rsh => x >> (y & 63),
            ScalarOp::Arsh => ((x as i64) >> (y & 63)) as u64,
        }
    }
}

fn holds(cond: Cond, x: u64, y: u64, jmp32: bool) -> bool {
    let (ux, uy, sx, sy) = if jmp32 {
        (
            x as u32 as u64,
            y as u32 as u64,
            x as i32 as i64,
            y as i32 as i64,
        )
    } else {
        (x, y, x as i64, y as i64)
    };
    match cond {
        Cond::Eq => ux == uy,
        Cond::Ne => ux != uy,
        Cond::Gt => ux > uy,
        Cond::Ge => ux >= uy,
        Cond::Lt => ux < uy,
        Cond::Le => ux <= uy,
        Cond::Sgt => sx > sy,
        Cond::Sge => sx >= sy,
        Cond::Slt => sx < sy,
        Cond::Sle => sx <= sy,
        Cond::Set => ux & uy != 0,
        Cond::NotSet => ux & uy == 0,
    }
}

const OPS: [ScalarOp; 9] = [
    ScalarOp::Add,
    ScalarOp::Sub,
    ScalarOp::Mul,
    ScalarOp::And,
    ScalarOp::Or,
    ScalarOp::Xor,
    ScalarOp::Lsh,
    ScalarOp::Rsh,
    ScalarOp::Arsh,
];

const CONDS: [Cond; 12] = [
    Cond::Eq,
    Cond::Ne,
    Cond::Gt,
    Cond::Ge,
    Cond::Lt,
    Cond::Le,
    Cond::Sgt,
    Cond::Sge,
    Cond::Slt,
    Cond::Sle,
    Cond::Set,
    Cond::NotSet,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn sync_keeps_members((b, x) in around()) {
        prop_assert!(contains(&b, x), "{b:?} lost {x:#x}");
        prop_assert_eq!(b.invariant_violation(), None);
    }

    #[test]
    fn alu_is_sound((a, x) in around(), (b, y) in around(), op in 0usize..9, alu32: bool) {
        let op = OPS[op];
        let (b, y) = if matches!(op, ScalarOp::Lsh | ScalarOp::Rsh | ScalarOp::Arsh) {
            let s = y % if alu32 { 32 } else { 64 };
            (Bounds::konst(s), s)
        } else {
            (b, y)
        };
        prop_assume!(Bounds::op_is_tracked(op, &b, alu32));
        let mut r = a;
        r.alu(op, &b, alu32);
        let z = concrete(op, x, y, alu32);
        prop_assert!(contains(&r, z), "{a:?} {op:?} {b:?} ({x:#x}, {y:#x}, alu32 {alu32}) = {r:?} misses {z:#x}");
    }

    #[test]
    fn branches_are_sound((a, x) in around(), (b, y) in around(), c in 0usize..12, jmp32: bool) {
        let cond = CONDS[c];
        let truth = holds(cond, x, y, jmp32);
        if let Some(t) = branch_taken(&a, &b, cond, jmp32) {
            prop_assert_eq!(t, truth, "{:?} {:?} {:?}", a, cond, b);
        }
        let (mut ra, mut rb) = (a, b);
        refine(&mut ra, &mut rb, if truth { cond } else { cond.negate() }, jmp32);
        prop_assert!(contains(&ra, x) && contains(&rb, y),
            "{a:?} {cond:?}={truth} {b:?} ({x:#x}, {y:#x}) refined to {ra:?} / {rb:?}");
    }

    #[test]
    fn neg_and_byte_order_are_sound((a, x) in around(), bits in 0usize..3, swap: bool, alu32: bool) {
        let mut n = Bounds::konst(0);
        n.alu(ScalarOp::Sub, &a, alu32);
        let want = if alu32 { (x as u32).wrapping_neg() as u64 } else { x.wrapping_neg() };
        prop_assert!(contains(&n, want), "-{x:#x}: {n:?}");
        let bits = [16u8, 32, 64][bits];
        let low = if bits == 64 { x } else { x & ((1 << bits) - 1) };
        let want = match (swap, bits) {
            (false, _) => low,
            (true, 16) => (low as u16).swap_bytes() as u64,
            (true, 32) => (low as u32).swap_bytes() as u64,
            (true, _) => low.swap_bytes(),
        };
        let e = a.byte_order(swap, bits);
        prop_assert!(contains(&e, want), "end{bits} swap {swap} of {x:#x}: {e:?}");
    }

    #[test]
    fn extensions_are_sound((a, x) in around(), size in 0usize..3) {
        let size = [1u32, 2, 4][size];
        let mut t = a;
        t.truncate(size);
        prop_assert!(contains(&t, x & ((1u64 << (size * 8)) - 1)));
        let mut s = a;
        s.sign_extend(size);
        let sx = match size { 1 => x as i8 as i64, 2 => x as i16 as i64, _ => x as i32 as i64 } as u64;
        prop_assert!(contains(&s, sx), "{a:?} sx{size} = {s:?} misses {sx:#x}");
        if size < 4 {
            let mut s = a;
            s.sign_extend32(size);
            s.zext_32_to_64();
            s.sync();
            let sx = match size { 1 => x as i8 as i32, _ => x as i16 as i32 } as u32 as u64;
            prop_assert!(contains(&s, sx), "{a:?} sx32 {size} = {s:?} misses {sx:#x}");
        }
        let mut z = a;
        z.zext_32_to_64();
        z.sync();
        prop_assert!(contains(&z, x as u32 as u64));
    }
}

#[test]
fn kernel_examples() {
    // [0x1'00000000, 0x3'80000000] with s32 in [1, 0x7fffffff] tightens the
    // 64-bit range at both ends.
    let mut b = Bounds::urange(0x1_0000_0000, 0x3_8000_0000);
    b.s32_min = 1;
    b.s32_max = i32::MAX;
    b.sync();
    assert_eq!((b.umin, b.umax), (0x1_0000_0001, 0x3_7fff_ffff));
    // x & 0xff is in [0, 255].
    let mut a = Bounds::unknown();
    a.alu(ScalarOp::And, &Bounds::konst(0xff), false);
    assert_eq!((a.umin, a.umax, a.smin, a.smax), (0, 255, 0, 255));
    assert_eq!(a.var_off, Tnum::new(0, 0xff));
    // A 32-bit add wraps into [0, u32::MAX].
    let mut a = Bounds::urange(0, 0xffff_ffff);
    a.alu(ScalarOp::Add, &Bounds::konst(1), true);
    assert_eq!((a.umin, a.umax), (0, u32::MAX as u64));
    assert_eq!(
        branch_taken(&Bounds::urange(0, 9), &Bounds::konst(10), Cond::Lt, false),
        Some(true)
    );
    let (mut x, mut k) = (Bounds::unknown(), Bounds::konst(16));
    refine(&mut x, &mut k, Cond::Lt, false);
    assert_eq!((x.umin, x.umax), (0, 15));
}
