//! Interpreter tests on hand-built programs: control flow, calls and frames,
//! memory regions and their bounds, atomics, loads and stores, the budget.

use super::*;
use crate::isa::{
    AluOp, AtomicOp, CallTarget, Insn, JmpCond, LddwSrc, Reg, Size, Src, Width, MAX_CALL_FRAMES,
    STACK_SIZE,
};
use bpfc_runtime::{ExecContext, Helper, HelperTable};

const R0: Reg = Reg::R0;
const R1: Reg = Reg::R1;
const R2: Reg = Reg::R2;
const R3: Reg = Reg::R3;
const R6: Reg = Reg::R6;
const FP: Reg = Reg::FP;

// A tiny builder: each helper returns one instruction.
fn mov64(dst: Reg, imm: i32) -> Insn {
    alu64(AluOp::Mov, dst, Src::Imm(imm))
}
fn movr(dst: Reg, src: Reg) -> Insn {
    alu64(AluOp::Mov, dst, Src::Reg(src))
}
fn alu64(op: AluOp, dst: Reg, src: Src) -> Insn {
    Insn::Alu {
        width: Width::W64,
        op,
        dst,
        src,
    }
}
fn jmp(width: Width, cond: JmpCond, dst: Reg, src: Src, off: i16) -> Insn {
    Insn::Jmp {
        width,
        cond,
        dst,
        src,
        off,
    }
}
fn ldx(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
    Insn::Ldx {
        size,
        sx: false,
        dst,
        src,
        off,
    }
}
fn ldxs(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
    Insn::Ldx {
        size,
        sx: true,
        dst,
        src,
        off,
    }
}
fn stx(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
    Insn::Stx {
        size,
        dst,
        src,
        off,
    }
}
fn st(size: Size, dst: Reg, off: i16, imm: i32) -> Insn {
    Insn::St {
        size,
        dst,
        off,
        imm,
    }
}
fn lddw(dst: Reg, imm: u64) -> [Insn; 2] {
    [
        Insn::Lddw {
            dst,
            src: LddwSrc::Imm,
            imm,
        },
        Insn::LddwHigh,
    ]
}
fn atomic(size: Size, op: AtomicOp, fetch: bool, dst: Reg, src: Reg, off: i16) -> Insn {
    Insn::Atomic {
        size,
        op,
        fetch,
        dst,
        src,
        off,
    }
}
fn call_local(rel: i32) -> Insn {
    Insn::Call(CallTarget::Local(rel))
}
const EXIT: Insn = Insn::Exit;

fn exec(prog: &[Insn], mem: &mut [u8], opts: &Options) -> Result<u64, RunError> {
    let mut ctx = ExecContext::new();
    run(prog, mem, &HelperTable::conformance(), &mut ctx, opts)
}

fn ok(prog: &[Insn]) -> u64 {
    exec(prog, &mut [], &Options::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn err(prog: &[Insn], mem: &mut [u8]) -> RunError {
    match exec(prog, mem, &Options::default()) {
        Ok(v) => panic!("expected an error, got {v:#x}"),
        Err(e) => e,
    }
}

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

fn is_oob(e: &RunError, want_pc: usize, want_size: usize) {
    match e {
        RunError::OutOfBounds { pc, size, .. } => {
            assert_eq!((*pc, *size), (want_pc, want_size), "{e}");
        }
        other => panic!("expected out-of-bounds, got {other}"),
    }
}

#[test]
fn out_of_bounds_stack() {
    // Just above the top of the stack.
    let e = err(&[ldx(Size::B, R0, FP, 0), EXIT], &mut []);
    is_oob(&e, 0, 1);
    let msg = e.to_string();
    assert!(
        msg.starts_with("instruction 0: out-of-bounds 1-byte load at 0x"),
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
    let mut regions = Regions::new();
    regions.add("scratch", extra_buf, true);
    regions.add("rodata", ro_buf, false);
    let helpers = HelperTable::conformance();
    let o = Options::default();
    let mut ctx = ExecContext::new();
    let [a, b] = lddw(R3, extra_addr);
    // Load the last byte, then store one.
    let p = [a, b, ldx(Size::B, R0, R3, 3), st(Size::B, R3, 0, 1), EXIT];
    let r = run_with_regions(&p, &mut input, &mut regions, &helpers, &mut ctx, &o);
    assert_eq!(r, Ok(8));
    // One past the end.
    let p = [a, b, ldx(Size::B, R0, R3, 4), EXIT];
    let e = run_with_regions(&p, &mut input, &mut regions, &helpers, &mut ctx, &o).unwrap_err();
    is_oob(&e, 2, 1);
    assert!(e.to_string().contains("scratch is 0x"), "{e}");
    // One before the start.
    let p = [a, b, ldx(Size::B, R0, R3, -1), EXIT];
    let e = run_with_regions(&p, &mut input, &mut regions, &helpers, &mut ctx, &o).unwrap_err();
    is_oob(&e, 2, 1);
    // Read-only region: loads work, stores fail.
    let [c, d] = lddw(R3, ro_addr);
    let p = [c, d, ldx(Size::W, R0, R3, 0), EXIT];
    let r = run_with_regions(&p, &mut input, &mut regions, &helpers, &mut ctx, &o);
    assert_eq!(r, Ok(0x0909_0909));
    let p = [c, d, st(Size::W, R3, 0, 0), EXIT];
    let e = run_with_regions(&p, &mut input, &mut regions, &helpers, &mut ctx, &o).unwrap_err();
    assert!(matches!(e, RunError::ReadOnly { pc: 2, .. }), "{e}");
    drop(regions);
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
fn local_call_saves_callee_saved_registers() {
    // main: r6 = 6; r1 = 1; call f; r0 += r6; exit.   f: r6 = 100; r0 = r1 + 10; exit.
    let p = [
        mov64(R6, 6),
        mov64(R1, 1),
        call_local(3),
        alu64(AluOp::Add, R0, Src::Reg(R6)),
        EXIT,
        EXIT, // padding, never reached
        mov64(R6, 100),
        movr(R0, R1),
        alu64(AluOp::Add, R0, Src::Imm(10)),
        EXIT,
    ];
    assert_eq!(ok(&p), 17);
}

#[test]
fn callee_gets_a_new_stack_and_caller_frame_pointer_is_restored() {
    // main writes 1 at fp-8, calls f which writes 2 at its own fp-8; main reads back 1.
    let p = [
        st(Size::DW, FP, -8, 1),
        call_local(2),
        ldx(Size::DW, R0, FP, -8),
        EXIT,
        st(Size::DW, FP, -8, 2),
        EXIT,
    ];
    assert_eq!(ok(&p), 1);
}

#[test]
fn stack_pointer_passed_to_a_callee() {
    // main: r1 = fp - 8; call f; r0 = *(fp - 8).   f: *(r1) = 42.
    let p = [
        movr(R1, FP),
        alu64(AluOp::Add, R1, Src::Imm(-8)),
        call_local(2),
        ldx(Size::DW, R0, FP, -8),
        EXIT,
        st(Size::DW, R1, 0, 42),
        EXIT,
    ];
    assert_eq!(ok(&p), 42);
}

#[test]
fn callee_frame_is_inaccessible_after_return() {
    // f returns its frame pointer; main then tries to read below its own stack.
    let p = [
        call_local(2),
        ldx(Size::DW, R0, R0, -8),
        EXIT,
        movr(R0, FP),
        EXIT,
    ];
    let e = err(&p, &mut []);
    is_oob(&e, 1, 8);
}

/// A chain of `frames` functions, each calling the next; the last returns 7.
fn call_chain(frames: usize) -> Vec<Insn> {
    let mut p = Vec::new();
    for _ in 0..frames - 1 {
        // call the next function (2 slots ahead), then exit with its r0.
        p.push(call_local(1));
        p.push(EXIT);
    }
    p.push(mov64(R0, 7));
    p.push(EXIT);
    p
}

#[test]
fn call_depth_limit() {
    // 8 frames (the entry function plus 7 nested calls) run ...
    assert_eq!(MAX_CALL_FRAMES, 8);
    assert_eq!(ok(&call_chain(MAX_CALL_FRAMES)), 7);
    // ... 9 do not; the error names the call that would open the 9th frame.
    let e = err(&call_chain(MAX_CALL_FRAMES + 1), &mut []);
    assert_eq!(
        e,
        RunError::CallDepth {
            pc: 2 * (MAX_CALL_FRAMES - 1),
            max: 8
        }
    );
    assert!(e.to_string().contains("call depth exceeds 8 frames"), "{e}");
    // Each of the 8 frames has its own full stack.
    let mut p = Vec::new();
    for _ in 0..MAX_CALL_FRAMES - 1 {
        p.push(st(Size::B, FP, -(STACK_SIZE as i16), 1));
        p.push(call_local(1));
        p.push(EXIT);
    }
    p.push(st(Size::B, FP, -(STACK_SIZE as i16), 1));
    p.push(mov64(R0, 3));
    p.push(EXIT);
    assert_eq!(ok(&p), 3);
}

#[test]
fn unbounded_recursion_hits_the_depth_limit() {
    let p = [call_local(-1), EXIT];
    assert!(matches!(
        err(&p, &mut []),
        RunError::CallDepth { pc: 0, .. }
    ));
}

#[test]
fn instruction_budget() {
    let looping = [
        mov64(R0, 0),
        Insn::Ja {
            off: -1,
            long: false,
        },
        EXIT,
    ];
    let o = Options {
        max_insns: Some(100),
    };
    let e = exec(&looping, &mut [], &o).unwrap_err();
    assert_eq!(e, RunError::InsnLimit { pc: 1, limit: 100 });
    assert_eq!(
        e.to_string(),
        "instruction 1: instruction limit of 100 reached"
    );
    // Exactly enough budget succeeds, one less fails.
    let p = [mov64(R0, 1), mov64(R0, 2), EXIT];
    assert_eq!(exec(&p, &mut [], &Options { max_insns: Some(3) }), Ok(2));
    assert_eq!(
        exec(&p, &mut [], &Options { max_insns: Some(2) }),
        Err(RunError::InsnLimit { pc: 2, limit: 2 })
    );
}

unsafe extern "C" fn add_all(a: u64, b: u64, c: u64, d: u64, e: u64, _: *mut ExecContext) -> u64 {
    a + b + c + d + e
}

unsafe extern "C" fn faulting(
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    ctx: *mut ExecContext,
) -> u64 {
    // SAFETY: the interpreter passes the live context of the run.
    unsafe { (*ctx).set_fault("bad argument") };
    0
}

#[test]
fn helpers() {
    let mut t = HelperTable::conformance();
    t.insert(Helper {
        id: 1,
        name: "add_all",
        func: add_all,
    });
    t.insert(Helper {
        id: 2,
        name: "faulting",
        func: faulting,
    });
    let o = Options::default();
    let mut ctx = ExecContext::new();
    let p = [
        mov64(R1, 1),
        mov64(R2, 2),
        mov64(R3, 3),
        mov64(Reg::R4, 4),
        mov64(Reg::R5, 5),
        Insn::Call(CallTarget::Helper(1)),
        EXIT,
    ];
    assert_eq!(run(&p, &mut [], &t, &mut ctx, &o), Ok(15));
    // callx: the register holds the helper id.
    let p = [mov64(R1, 33), mov64(R3, 5), Insn::Callx { reg: R3 }, EXIT];
    assert_eq!(run(&p, &mut [], &t, &mut ctx, &o), Ok(33));
    let p = [mov64(R3, 77), Insn::Callx { reg: R3 }, EXIT];
    let e = run(&p, &mut [], &t, &mut ctx, &o).unwrap_err();
    assert_eq!(e.to_string(), "instruction 1: unknown helper 77");
    let p = [Insn::Call(CallTarget::Helper(-1)), EXIT];
    assert_eq!(
        run(&p, &mut [], &t, &mut ctx, &o),
        Err(RunError::UnknownHelper { pc: 0, id: -1 })
    );
    let p = [mov64(R0, 0), Insn::Call(CallTarget::Helper(2)), EXIT];
    let e = run(&p, &mut [], &t, &mut ctx, &o).unwrap_err();
    assert_eq!(
        e.to_string(),
        "instruction 1: helper 2 (faulting) failed: bad argument"
    );
    assert!(ctx.fault.is_none());
}

#[test]
fn not_yet_executable() {
    let p = [Insn::Call(CallTarget::Kfunc { btf_id: 9, off: 0 }), EXIT];
    let e = err(&p, &mut []);
    assert!(e.to_string().contains("kfunc calls cannot run"), "{e}");
    let p = [
        Insn::LdAbs {
            size: Size::W,
            imm: 0,
        },
        EXIT,
    ];
    let e = err(&p, &mut []);
    assert!(e.to_string().contains("needs a packet program type"), "{e}");
    let p = [
        Insn::LdInd {
            size: Size::B,
            src: R1,
            imm: 0,
        },
        EXIT,
    ];
    assert_eq!(err(&p, &mut []), RunError::PacketLoad { pc: 0 });
    let p = [
        Insn::Lddw {
            dst: R0,
            src: LddwSrc::MapFd,
            imm: 3,
        },
        Insn::LddwHigh,
        EXIT,
    ];
    let e = err(&p, &mut []);
    assert_eq!(
        e,
        RunError::UnresolvedLddw {
            pc: 0,
            src: LddwSrc::MapFd
        }
    );
    assert!(e.to_string().contains("unresolved pseudo lddw"), "{e}");
}

#[test]
fn invalid_programs_are_rejected_before_running() {
    let e = err(&[], &mut []);
    assert!(matches!(e, RunError::Invalid { pc: 0, .. }), "{e}");
    let e = err(&[mov64(R0, 0)], &mut []);
    assert!(matches!(e, RunError::Invalid { pc: 0, .. }), "{e}");
    let e = err(
        &[
            mov64(R0, 0),
            Insn::Ja {
                off: 5,
                long: false,
            },
            EXIT,
        ],
        &mut [],
    );
    assert_eq!(e.pc(), 1);
    let e = err(&[mov64(FP, 0), EXIT], &mut []);
    assert!(e.to_string().contains("r10"), "{e}");
}
