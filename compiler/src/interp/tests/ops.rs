//! Register-only behaviour through the execution loop: entry state, ALU
//! width rules, division edges, negation, byte order, jumps and conditions.

use super::*;

#[test]
fn entry_registers() {
    let mut mem = [1u8, 2, 3];
    let addr = mem.as_ptr() as u64;
    assert_eq!(
        exec(&[movr(R0, R1), EXIT], &mut mem, &Options::default()),
        Ok(addr)
    );
    assert_eq!(
        exec(&[movr(R0, R2), EXIT], &mut mem, &Options::default()),
        Ok(3)
    );
    assert_eq!(ok(&[movr(R0, R1), EXIT]), 0);
    assert_eq!(ok(&[movr(R0, R2), EXIT]), 0);
}

#[test]
fn alu32_zero_extends_and_imm_sign_extends() {
    let [a, b] = lddw(R0, u64::MAX);
    // add32 r0, 1 on all-ones: wraps to 0 in 32 bits, upper half cleared.
    let p = [
        a,
        b,
        Insn::Alu {
            width: Width::W32,
            op: AluOp::Add,
            dst: R0,
            src: Src::Imm(1),
        },
        EXIT,
    ];
    assert_eq!(ok(&p), 0);
    assert_eq!(ok(&[mov64(R0, -1), EXIT]), u64::MAX);
    let p = [
        Insn::Alu {
            width: Width::W32,
            op: AluOp::Mov,
            dst: R0,
            src: Src::Imm(-1),
        },
        EXIT,
    ];
    assert_eq!(ok(&p), 0xffff_ffff);
    assert_eq!(
        ok(&[
            mov64(R0, 0),
            alu64(AluOp::Sub, R0, Src::Imm(i32::MIN)),
            EXIT
        ]),
        0x8000_0000
    );
}

#[test]
fn division_through_the_loop() {
    // div by zero register → 0; mod by zero → unchanged.
    let p = [
        mov64(R0, 7),
        mov64(R1, 0),
        alu64(AluOp::Div, R0, Src::Reg(R1)),
        EXIT,
    ];
    assert_eq!(ok(&p), 0);
    let p = [
        mov64(R0, 7),
        mov64(R1, 0),
        alu64(AluOp::Mod, R0, Src::Reg(R1)),
        EXIT,
    ];
    assert_eq!(ok(&p), 7);
    let [a, b] = lddw(R0, i64::MIN as u64);
    let p = [a, b, alu64(AluOp::SDiv, R0, Src::Imm(-1)), EXIT];
    assert_eq!(ok(&p), i64::MIN as u64);
}

#[test]
fn neg_and_end_through_the_loop() {
    assert_eq!(
        ok(&[
            mov64(R0, 1),
            Insn::Neg {
                width: Width::W32,
                dst: R0
            },
            EXIT
        ]),
        0xffff_ffff
    );
    let [a, b] = lddw(R0, 0x0123_4567_89ab_cdef);
    let p = [
        a,
        b,
        Insn::End {
            order: crate::isa::ByteOrder::Swap,
            bits: 16,
            dst: R0,
        },
        EXIT,
    ];
    assert_eq!(ok(&p), 0xefcd);
}

#[test]
fn jumps_sign_extend_immediates_and_jmp32_uses_low_halves() {
    // r0 = -1 (64-bit); jeq r0, -1 must be taken with a 64-bit compare.
    let p = [
        mov64(R1, -1),
        mov64(R0, 0),
        jmp(Width::W64, JmpCond::Eq, R1, Src::Imm(-1), 1),
        EXIT,
        mov64(R0, 1),
        EXIT,
    ];
    assert_eq!(ok(&p), 1);
    // r1 = 0xffffffff (32-bit mov): a 64-bit jeq against -1 is not taken.
    let p = [
        Insn::Alu {
            width: Width::W32,
            op: AluOp::Mov,
            dst: R1,
            src: Src::Imm(-1),
        },
        mov64(R0, 0),
        jmp(Width::W64, JmpCond::Eq, R1, Src::Imm(-1), 1),
        EXIT,
        mov64(R0, 1),
        EXIT,
    ];
    assert_eq!(ok(&p), 0);
    // ... but a jmp32 jeq is.
    let mut q = p;
    q[2] = jmp(Width::W32, JmpCond::Eq, R1, Src::Imm(-1), 1);
    assert_eq!(ok(&q), 1);
    // jmp32 ignores the upper half: 0x1_0000_0000 s< 1 in 32 bits (0 < 1), not in 64.
    let [a, b] = lddw(R1, 0x1_0000_0000);
    let p = [
        a,
        b,
        mov64(R0, 0),
        jmp(Width::W32, JmpCond::Slt, R1, Src::Imm(1), 1),
        EXIT,
        mov64(R0, 1),
        EXIT,
    ];
    assert_eq!(ok(&p), 1);
    let mut q = p;
    q[3] = jmp(Width::W64, JmpCond::Slt, R1, Src::Imm(1), 1);
    assert_eq!(ok(&q), 0);
    // Backward jump loop: count to 10.
    let p = [
        mov64(R0, 0),
        alu64(AluOp::Add, R0, Src::Imm(1)),
        jmp(Width::W64, JmpCond::Lt, R0, Src::Imm(10), -2),
        EXIT,
    ];
    assert_eq!(ok(&p), 10);
    // gotol (long ja).
    let p = [
        mov64(R0, 3),
        Insn::Ja { off: 1, long: true },
        mov64(R0, 4),
        EXIT,
    ];
    assert_eq!(ok(&p), 3);
}

#[test]
fn every_condition_at_edge_values() {
    use JmpCond::*;
    const MIN: u64 = i64::MIN as u64;
    const M1: u64 = u64::MAX;
    // (cond, a, b, taken at 64 bits, taken at 32 bits)
    let cases: &[(JmpCond, u64, u64, bool, bool)] = &[
        (Eq, 0x1_0000_0000, 0, false, true),
        (Ne, 0x1_0000_0000, 0, true, false),
        (Gt, M1, 0, true, true),
        (Gt, 0x1_0000_0000, 1, true, false),
        (Ge, 5, 5, true, true),
        (Ge, 4, 5, false, false),
        (Lt, 0, M1, true, true),
        (Lt, 1, 0x1_0000_0000, true, false),
        (Le, 5, 5, true, true),
        (Le, 6, 5, false, false),
        (Set, 0x1_0000_0000, 0x1_0000_0000, true, false),
        (Set, 3, 4, false, false),
        (Sgt, 0, M1, true, true),
        (Sgt, MIN | 1, 0, false, true),
        (Sge, M1, M1, true, true),
        (Sge, 0x8000_0000, 0, true, false),
        (Slt, M1, 0, true, true),
        (Slt, 0x8000_0000, 0, false, true),
        (Sle, MIN, MIN, true, true),
        (Sle, 1, 0, false, false),
    ];
    for &(cond, a, b, want64, want32) in cases {
        for (width, want) in [(Width::W64, want64), (Width::W32, want32)] {
            let [x, y] = lddw(R1, a);
            let [z, w] = lddw(R2, b);
            let p = [
                x,
                y,
                z,
                w,
                mov64(R0, 0),
                jmp(width, cond, R1, Src::Reg(R2), 1),
                EXIT,
                mov64(R0, 1),
                EXIT,
            ];
            assert_eq!(ok(&p) == 1, want, "{cond:?} {width:?} {a:#x} {b:#x}");
        }
    }
    // Immediates are sign-extended for 64-bit compares: 0xffffffff vs imm -1.
    for (a, cond, imm, want) in [
        (0xffff_ffffu64, Eq, -1, false),
        (M1, Eq, -1, true),
        (0, Sgt, -1, true),
        (0x8000_0000, Gt, i32::MIN, false),
        (0xffff_ffff_8000_0000, Eq, i32::MIN, true),
    ] {
        let [x, y] = lddw(R1, a);
        let p = [
            x,
            y,
            mov64(R0, 0),
            jmp(Width::W64, cond, R1, Src::Imm(imm), 1),
            EXIT,
            mov64(R0, 1),
            EXIT,
        ];
        assert_eq!(ok(&p) == 1, want, "{cond:?} {a:#x} imm {imm}");
    }
}
