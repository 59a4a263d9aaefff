//! Semantic edges of the JIT (division by zero, INT_MIN / -1, masked shifts,
//! 32-bit zero extension) and bounds-checked mode faults, each compared
//! with a value worked out by hand.

use bpfc_compiler::asm::assemble;
use bpfc_compiler::codegen::{jit::JitError, jit::JitProgram, CodegenOptions, Dumps};
use bpfc_compiler::isa::Endian;
use bpfc_runtime::abi::FaultCode;
use bpfc_runtime::{ExecContext, HelperTable};

fn run(src: &str, mem: &mut [u8], checked: bool) -> Result<u64, JitError> {
    let opts = CodegenOptions {
        checked,
        ..Default::default()
    };
    run_with(src, mem, &opts)
}

fn run_with(src: &str, mem: &mut [u8], opts: &CodegenOptions) -> Result<u64, JitError> {
    let insns = assemble(src).unwrap_or_else(|e| panic!("assemble: {e}\n{src}"));
    let prog = JitProgram::new(&insns, &HelperTable::conformance(), opts)
        .unwrap_or_else(|e| panic!("compile: {e}"));
    prog.run(mem, &mut ExecContext::new())
}

fn value(src: &str) -> u64 {
    let r = run(src, &mut [], false).unwrap_or_else(|e| panic!("{e}\n{src}"));
    let c = run(src, &mut [], true).unwrap_or_else(|e| panic!("checked: {e}\n{src}"));
    assert_eq!(r, c, "checked and unchecked differ\n{src}");
    r
}

#[test]
fn division_edges_never_trap() {
    assert_eq!(value("mov %r0, 7\nmov %r1, 0\ndiv %r0, %r1\nexit"), 0);
    assert_eq!(value("mov %r0, 7\nmov %r1, 0\nmod %r0, %r1\nexit"), 7);
    assert_eq!(
        value("mov %r0, -1\nmov %r1, 0\nmod32 %r0, %r1\nexit"),
        0xffff_ffff
    );
    assert_eq!(value("mov %r0, 7\nmov %r1, 0\nsdiv %r0, %r1\nexit"), 0);
    assert_eq!(
        value("lddw %r0, 0x8000000000000000\nmov %r1, -1\nsdiv %r0, %r1\nexit"),
        0x8000_0000_0000_0000
    );
    assert_eq!(
        value("lddw %r0, 0x8000000000000000\nmov %r1, -1\nsmod %r0, %r1\nexit"),
        0
    );
    assert_eq!(
        value("mov32 %r0, 0x80000000\nmov32 %r1, -1\nsdiv32 %r0, %r1\nexit"),
        0x8000_0000
    );
}

#[test]
fn shifts_are_masked_and_alu32_zero_extends() {
    assert_eq!(value("mov %r0, 1\nmov %r1, 65\nlsh %r0, %r1\nexit"), 2);
    assert_eq!(value("mov %r0, 1\nmov %r1, 33\nlsh32 %r0, %r1\nexit"), 2);
    assert_eq!(value("mov %r0, -1\nadd32 %r0, 1\nexit"), 0);
    assert_eq!(value("mov %r0, -2\nadd32 %r0, 0\nexit"), 0xffff_fffe);
    assert_eq!(value("mov32 %r0, 0x1234\nbe16 %r0\nexit"), 0x3412);
}

#[test]
fn checked_mode_out_of_bounds_load_faults_at_its_pc() {
    let src = "mov %r0, 0\nldxdw %r0, [%r1+16]\nexit";
    let mut mem = [0u8; 16];
    let err = run(src, &mut mem, true).expect_err("load past the input faults");
    let addr = mem.as_ptr() as u64 + 16;
    assert_eq!(
        err,
        JitError::Fault {
            pc: 1,
            code: FaultCode::OutOfBounds,
            detail: addr,
            message: format!("out-of-bounds memory access: 8-byte load at {addr:#x}"),
        }
    );
    let mut mem = [1u8; 24];
    assert_eq!(run(src, &mut mem, true), Ok(0x0101_0101_0101_0101));
}

/// A chain of `frames` nested local calls (entry + `frames - 1` callees);
/// each callee adds one to r1 (an argument), the innermost returns it.
fn nested(frames: usize) -> String {
    let mut s = String::from("mov %r1, 0\ncall local f1\nexit\n");
    for i in 1..frames {
        s.push_str(&format!("f{i}:\nadd %r1, 1\n"));
        if i + 1 < frames {
            s.push_str(&format!("call local f{}\n", i + 1));
        } else {
            s.push_str("mov %r0, %r1\n");
        }
        s.push_str("exit\n");
    }
    s
}

#[test]
fn call_depth_eight_runs_and_nine_faults() {
    assert_eq!(run(&nested(8), &mut [], false), Ok(7));
    match run(&nested(9), &mut [], false) {
        Err(JitError::Fault {
            code: FaultCode::CallDepth,
            ..
        }) => {}
        other => panic!("expected a call-depth fault, got {other:?}"),
    }
}

#[test]
fn unknown_helpers_name_their_ids() {
    let err = run("call 999\nexit", &mut [], false).expect_err("helper 999 is unknown");
    assert_eq!(err.to_string(), "instruction 0: unknown helper 999");
    let err = run("mov %r2, 77\ncall %r2\nexit", &mut [], false).expect_err("callx 77");
    assert_eq!(err.to_string(), "instruction 1: unknown helper 77");
}

fn limited(limit: u64) -> CodegenOptions {
    CodegenOptions {
        insn_limit: Some(limit),
        ..Default::default()
    }
}

#[test]
fn instruction_budget_stops_a_loop_and_spares_a_short_run() {
    // `mov; loop: add; jne loop` runs 1 + 2 * 10 + exit = 22 instructions.
    let src = "mov %r0, 0\nloop:\nadd %r0, 1\njne %r0, 10, loop\nexit";
    assert_eq!(run_with(src, &mut [], &limited(22)), Ok(10));
    match run_with(src, &mut [], &limited(21)) {
        Err(JitError::Fault {
            code: FaultCode::InsnLimit,
            detail: 21,
            pc,
            ..
        }) => assert!(pc == 1 || pc == 3, "stops at a block start, got pc {pc}"),
        other => panic!("expected an instruction-limit fault, got {other:?}"),
    }
    let forever = "loop:\nja loop\nexit";
    let err = run_with(forever, &mut [], &limited(1_000_000)).expect_err("never ends");
    assert_eq!(
        err.to_string(),
        "instruction 0: instruction limit of 1000000 reached"
    );
}

#[test]
fn instruction_budget_counts_callee_instructions() {
    // Entry: mov, call, exit (3); callee: mov, exit (2) per call.
    let src = "mov %r1, 0\ncall local f\nexit\nf:\nmov %r0, 5\nexit";
    assert_eq!(run_with(src, &mut [], &limited(5)), Ok(5));
    assert!(matches!(
        run_with(src, &mut [], &limited(4)),
        Err(JitError::Fault {
            code: FaultCode::InsnLimit,
            ..
        })
    ));
}

/// Jumps over a few register instructions become selects: both outcomes
/// must match the interpreter, with 32-bit ops, an lddw and a register
/// written twice in the skipped part.
#[test]
fn converted_jumps_keep_both_outcomes() {
    let src = "ldxdw %r1, [%r1+0]\nmov %r0, 7\nmov %r2, -1\n\
               jsgt %r1, 3, +4\nadd32 %r2, 2\nlddw %r3, 0x123456789\nxor %r2, %r3\n\
               neg32 %r0\nlsh %r0, 4\nadd %r0, %r2\nadd %r0, %r3\nexit";
    let insns = assemble(src).expect("assembles");
    // The jump really is converted: no branch is left, one select per
    // register the skipped part writes (r2, r3).
    let mut dumps = Dumps {
        clif: Some(String::new()),
        native: None,
    };
    JitProgram::compile(
        &insns,
        Endian::Little,
        &HelperTable::conformance(),
        &CodegenOptions::default(),
        Some(&mut dumps),
    )
    .expect("compiles");
    let clif = dumps.clif.unwrap_or_default();
    let entry_fn = clif.split("; entry").next().unwrap_or_default();
    assert_eq!(entry_fn.matches(" select ").count(), 2, "{entry_fn}");
    assert!(!entry_fn.contains("brif"), "{entry_fn}");
    for v in [-5i64, 3, 4, 1 << 40] {
        let mut mem = v.to_le_bytes();
        let want = bpfc_compiler::interp::run(
            &insns,
            &mut mem.clone(),
            &HelperTable::conformance(),
            &mut ExecContext::new(),
            &Default::default(),
        )
        .expect("interpreter runs");
        for checked in [false, true] {
            assert_eq!(
                run(src, &mut mem, checked),
                Ok(want),
                "r1 = {v}, checked {checked}"
            );
        }
    }
}
