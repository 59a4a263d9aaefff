//! Local calls and frames, the call depth limit, helpers, the budget, and
//! what cannot run yet.

use super::*;

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
        ..Default::default()
    };
    let e = exec(&looping, &mut [], &o).unwrap_err();
    assert_eq!(e, RunError::InsnLimit { pc: 1, limit: 100 });
    assert_eq!(
        e.to_string(),
        "instruction 1: instruction limit of 100 reached"
    );
    // Exactly enough budget succeeds, one less fails.
    let p = [mov64(R0, 1), mov64(R0, 2), EXIT];
    assert_eq!(
        exec(
            &p,
            &mut [],
            &Options {
                max_insns: Some(3),
                ..Default::default()
            }
        ),
        Ok(2)
    );
    assert_eq!(
        exec(
            &p,
            &mut [],
            &Options {
                max_insns: Some(2),
                ..Default::default()
            }
        ),
        Err(RunError::InsnLimit { pc: 2, limit: 2 })
    );
}

unsafe extern "C" fn add_all(
    a: u64,
    b: u64,
    c: u64,
    d: u64,
    e: u64,
    _: *mut bpfc_runtime::abi::RunState,
) -> u64 {
    a + b + c + d + e
}

unsafe extern "C" fn faulting(
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    st: *mut bpfc_runtime::abi::RunState,
) -> u64 {
    // SAFETY: the interpreter passes the live run state.
    bpfc_runtime::helpers::fail(unsafe { &mut *st }, "bad argument");
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
        "instruction 1: helper failed: bad argument (helper 2, faulting)"
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
    assert!(
        e.to_string()
            .contains("lddw of a map, global data or function the program was not bound to"),
        "{e}"
    );
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

#[test]
fn callee_stack_bounds() {
    // A callee reaches its whole frame and its caller's, nothing below its own.
    let bottom = -(STACK_SIZE as i16);
    let p = [
        st(Size::DW, FP, -8, 5),
        call_local(1),
        EXIT,
        // callee: its lowest byte is fine ...
        st(Size::B, FP, bottom, 1),
        // ... and so is the caller's fp-8 (callee fp + 512 - 8).
        ldx(Size::DW, R0, FP, STACK_SIZE as i16 - 8),
        // one byte below its frame is not.
        ldx(Size::B, R3, FP, bottom - 1),
        EXIT,
    ];
    is_oob(&err(&p, &mut []), 5, 1);
    let mut ok_prog = p;
    ok_prog[5] = mov64(R3, 0);
    assert_eq!(ok(&ok_prog), 5);
}
