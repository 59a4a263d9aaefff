//! Loads, stores and atomics: every size, sign extension, each region and
//! both sides of its bounds.

use super::*;

#[test]
fn stack_loads_and_stores() {
    let p = [
        mov64(R1, 0x1234),
        stx(Size::DW, FP, R1, -8),
        ldx(Size::DW, R0, FP, -8),
        EXIT,
    ];
    assert_eq!(ok(&p), 0x1234);
    // st with a negative immediate sign-extends to the access size.
    let p = [st(Size::DW, FP, -8, -2), ldx(Size::DW, R0, FP, -8), EXIT];
    assert_eq!(ok(&p), -2i64 as u64);
    let p = [st(Size::W, FP, -8, -2), ldx(Size::DW, R0, FP, -8), EXIT];
    assert_eq!(ok(&p), 0xffff_fffe);
    // Unaligned access within the stack.
    let p = [
        st(Size::DW, FP, -16, 0x0403_0201),
        ldx(Size::H, R0, FP, -15),
        EXIT,
    ];
    assert_eq!(ok(&p), 0x0302);
    // Whole stack reachable: lowest and highest byte.
    let lo = -(STACK_SIZE as i16);
    let p = [st(Size::B, FP, lo, 7), ldx(Size::B, R0, FP, lo), EXIT];
    assert_eq!(ok(&p), 7);
}

#[test]
fn sign_extending_loads() {
    let mut mem = [0x80u8, 0xff, 0xff, 0x80, 0x7f, 0, 0, 0];
    let o = Options::default();
    assert_eq!(
        exec(&[ldxs(Size::B, R0, R1, 0), EXIT], &mut mem, &o),
        Ok(-128i64 as u64)
    );
    assert_eq!(
        exec(&[ldx(Size::B, R0, R1, 0), EXIT], &mut mem, &o),
        Ok(0x80)
    );
    assert_eq!(
        exec(&[ldxs(Size::H, R0, R1, 0), EXIT], &mut mem, &o),
        Ok(0xffff_ffff_ffff_ff80)
    );
    assert_eq!(
        exec(&[ldxs(Size::W, R0, R1, 0), EXIT], &mut mem, &o),
        Ok(0xffff_ffff_80ff_ff80)
    );
    assert_eq!(
        exec(&[ldx(Size::W, R0, R1, 0), EXIT], &mut mem, &o),
        Ok(0x80ff_ff80)
    );
    assert_eq!(
        exec(&[ldxs(Size::B, R0, R1, 4), EXIT], &mut mem, &o),
        Ok(0x7f)
    );
    assert_eq!(
        exec(&[ldx(Size::DW, R0, R1, 0), EXIT], &mut mem, &o),
        Ok(0x7f_80ff_ff80)
    );
}

#[test]
fn stores_into_input_are_visible() {
    let mut mem = [0u8; 4];
    let p = [
        mov64(R2, 0x0a0b),
        stx(Size::H, R1, R2, 1),
        mov64(R0, 0),
        EXIT,
    ];
    assert_eq!(exec(&p, &mut mem, &Options::default()), Ok(0));
    assert_eq!(mem, [0, 0x0b, 0x0a, 0]);
}

#[test]
fn out_of_bounds_stack() {
    // Just above the top of the stack.
    let e = err(&[ldx(Size::B, R0, FP, 0), EXIT], &mut []);
    is_oob(&e, 0, 1);
    let msg = e.to_string();
    assert!(
        msg.starts_with("instruction 0: out-of-bounds memory access: 1-byte load at 0x"),
        "{msg}"
    );
    assert!(msg.contains("(stack is 0x"), "{msg}");
    assert!(msg.contains("input is empty"), "{msg}");
    // Straddling the top.
    is_oob(&err(&[ldx(Size::DW, R0, FP, -4), EXIT], &mut []), 0, 8);
    // Just below the bottom.
    let below = -(STACK_SIZE as i16) - 1;
    is_oob(
        &err(&[st(Size::B, FP, below, 1), mov64(R0, 0), EXIT], &mut []),
        0,
        1,
    );
    // Straddling the bottom.
    let p = [
        mov64(R0, 0),
        stx(Size::W, FP, R0, -(STACK_SIZE as i16) - 2),
        EXIT,
    ];
    let e = err(&p, &mut []);
    is_oob(&e, 1, 4);
    assert!(e.to_string().contains("4-byte store"), "{e}");
    // Null pointer.
    is_oob(
        &err(&[mov64(R1, 0), ldx(Size::W, R0, R1, 0), EXIT], &mut []),
        1,
        4,
    );
}

#[test]
fn out_of_bounds_input() {
    let mut mem = [0u8; 8];
    // Last byte fine, one past is not, straddling the end is not, one before is not.
    assert_eq!(
        exec(
            &[ldx(Size::B, R0, R1, 7), EXIT],
            &mut mem,
            &Options::default()
        ),
        Ok(0)
    );
    is_oob(&err(&[ldx(Size::B, R0, R1, 8), EXIT], &mut mem), 0, 1);
    is_oob(&err(&[ldx(Size::DW, R0, R1, 1), EXIT], &mut mem), 0, 8);
    is_oob(&err(&[ldx(Size::B, R0, R1, -1), EXIT], &mut mem), 0, 1);
    let e = err(&[ldx(Size::B, R0, R1, -1), EXIT], &mut mem);
    assert!(e.to_string().contains(", input is 0x"), "{e}");
    // Atomics are checked too.
    let p = [
        mov64(R2, 1),
        atomic(Size::DW, AtomicOp::Add, false, R1, R2, 4),
        EXIT,
    ];
    is_oob(&err(&p, &mut mem), 1, 8);
    assert!(err(&p, &mut mem).to_string().contains("atomic"));
    // Address arithmetic wrapping around zero never matches a region.
    let [a, b] = lddw(R1, u64::MAX);
    is_oob(
        &err(&[a, b, ldx(Size::DW, R0, R1, 2), EXIT], &mut mem),
        2,
        8,
    );
}

#[test]
fn extra_regions() {
    let mut input = [0u8; 2];
    // One buffer with gaps around both regions, so "one past the end" is
    // guaranteed to be outside every region.
    let mut backing = [0u8, 0, 5, 6, 7, 8, 0, 0, 9, 9, 9, 9, 0, 0];
    let (_, rest) = backing.split_at_mut(2);
    let (extra_buf, rest) = rest.split_at_mut(4);
    let (_, rest) = rest.split_at_mut(2);
    let (ro_buf, _) = rest.split_at_mut(4);
    let extra_addr = extra_buf.as_ptr() as u64;
    let ro_addr = ro_buf.as_ptr() as u64;
    let helpers = HelperTable::conformance();
    let o = Options::default();
    let mut ctx = ExecContext::new();
    ctx.regions
        .add("scratch", extra_addr as usize, extra_buf.len(), true);
    ctx.regions
        .add("rodata", ro_addr as usize, ro_buf.len(), false);
    let [a, b] = lddw(R3, extra_addr);
    // Load the last byte, then store one.
    let p = [a, b, ldx(Size::B, R0, R3, 3), st(Size::B, R3, 0, 1), EXIT];
    let r = run(&p, &mut input, &helpers, &mut ctx, &o);
    assert_eq!(r, Ok(8));
    // One past the end.
    let p = [a, b, ldx(Size::B, R0, R3, 4), EXIT];
    let e = run(&p, &mut input, &helpers, &mut ctx, &o).unwrap_err();
    is_oob(&e, 2, 1);
    assert!(e.to_string().contains("scratch is 0x"), "{e}");
    // One before the start.
    let p = [a, b, ldx(Size::B, R0, R3, -1), EXIT];
    let e = run(&p, &mut input, &helpers, &mut ctx, &o).unwrap_err();
    is_oob(&e, 2, 1);
    // Read-only region: loads work, stores fail.
    let [c, d] = lddw(R3, ro_addr);
    let p = [c, d, ldx(Size::W, R0, R3, 0), EXIT];
    let r = run(&p, &mut input, &helpers, &mut ctx, &o);
    assert_eq!(r, Ok(0x0909_0909));
    let p = [c, d, st(Size::W, R3, 0, 0), EXIT];
    let e = run(&p, &mut input, &helpers, &mut ctx, &o).unwrap_err();
    assert!(matches!(e, RunError::ReadOnly { pc: 2, .. }), "{e}");
    drop(ctx);
    assert_eq!(backing[2], 1);
}

#[test]
fn atomics() {
    fn atomic_result(
        size: Size,
        op: AtomicOp,
        fetch: bool,
        init: u64,
        src: u64,
        r0: u64,
    ) -> (u64, u64, u64) {
        // mem[0..8] = init; r2 = src; r0 = r0; op; return (mem, r2, r0).
        let mut mem = init.to_ne_bytes();
        let [a, b] = lddw(R2, src);
        let [c, d] = lddw(R0, r0);
        let p = [
            a,
            b,
            c,
            d,
            atomic(size, op, fetch, R1, R2, 0),
            stx(Size::DW, R1, R2, 8),
            EXIT,
        ];
        let mut buf = [0u8; 16];
        buf[..8].copy_from_slice(&mem);
        let r = exec(&p, &mut buf, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
        mem.copy_from_slice(&buf[..8]);
        let r2 = u64::from_ne_bytes(buf[8..16].try_into().unwrap());
        (u64::from_ne_bytes(mem), r2, r)
    }
    use AtomicOp::*;
    let hi = 0xffff_ffff_0000_0000u64;
    // 64-bit add without fetch leaves src alone.
    assert_eq!(
        atomic_result(Size::DW, Add, false, u64::MAX, 2, 0),
        (1, 2, 0)
    );
    assert_eq!(
        atomic_result(Size::DW, Add, true, u64::MAX, 2, 0),
        (1, u64::MAX, 0)
    );
    // 32-bit add touches only the low word; fetch zero-extends.
    assert_eq!(
        atomic_result(Size::W, Add, false, hi | 0xffff_ffff, 2, 0),
        (hi | 1, 2, 0)
    );
    assert_eq!(
        atomic_result(Size::W, Add, true, hi | 0xffff_ffff, hi | 2, 0),
        (hi | 1, 0xffff_ffff, 0)
    );
    assert_eq!(
        atomic_result(Size::DW, Or, true, 0xf0, 0x0f, 0),
        (0xff, 0xf0, 0)
    );
    assert_eq!(atomic_result(Size::W, Or, false, hi, 1, 0), (hi | 1, 1, 0));
    assert_eq!(
        atomic_result(Size::DW, And, true, 0xff, 0x0f, 0),
        (0x0f, 0xff, 0)
    );
    assert_eq!(
        atomic_result(Size::W, And, true, hi | 0xff, 0x0f, 0),
        (hi | 0x0f, 0xff, 0)
    );
    assert_eq!(
        atomic_result(Size::DW, Xor, false, 0xff, 0x0f, 0),
        (0xf0, 0x0f, 0)
    );
    assert_eq!(
        atomic_result(Size::W, Xor, true, hi | 0xff, u64::MAX, 0),
        (hi | 0xffff_ff00, 0xff, 0)
    );
    assert_eq!(atomic_result(Size::DW, Xchg, true, 5, 9, 0), (9, 5, 0));
    assert_eq!(
        atomic_result(Size::W, Xchg, true, hi | 5, hi | 9, 0),
        (hi | 9, 5, 0)
    );
    // cmpxchg: equal → store src, r0 = old; unequal → memory unchanged, r0 = old.
    assert_eq!(atomic_result(Size::DW, CmpXchg, true, 5, 9, 5), (9, 9, 5));
    assert_eq!(atomic_result(Size::DW, CmpXchg, true, 5, 9, 6), (5, 9, 5));
    // 32-bit cmpxchg compares the low half of r0 and zero-extends the old value.
    assert_eq!(
        atomic_result(Size::W, CmpXchg, true, hi | 5, 9, hi | 5),
        (hi | 9, 9, 5)
    );
    assert_eq!(
        atomic_result(Size::W, CmpXchg, true, hi | 5, 9, 6),
        (hi | 5, 9, 5)
    );
}

#[test]
fn loads_and_stores_of_every_size() {
    for (size, want) in [
        (Size::B, 0x88u64),
        (Size::H, 0x7788),
        (Size::W, 0x5566_7788),
        (Size::DW, 0x1122_3344_5566_7788),
    ] {
        let [a, b] = lddw(R2, 0x1122_3344_5566_7788);
        // Pre-fill with ones, store, load back the whole doubleword.
        let p = [
            a,
            b,
            st(Size::DW, FP, -8, -1),
            stx(size, FP, R2, -8),
            ldx(size, R0, FP, -8),
            ldx(Size::DW, R3, FP, -8),
            EXIT,
        ];
        assert_eq!(ok(&p), want, "{size:?}");
        let mut q = p;
        q[4] = ldx(Size::DW, R0, FP, -8);
        let n = size.bytes() * 8;
        let untouched = if n == 64 { 0 } else { u64::MAX << n };
        assert_eq!(ok(&q), untouched | want, "{size:?} leaves the other bytes");
    }
}
