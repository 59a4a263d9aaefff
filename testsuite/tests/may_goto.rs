//! `may_goto` (`BPF_JMP | BPF_JCOND`) in the verifier and the engines: a
//! loop bounded only by `may_goto` is accepted, and runs until the
//! budget of the current function call (the kernel's `BPF_MAX_LOOPS`,
//! 8M) is spent, in the interpreter and in checked and unchecked JIT code;
//! every call starts with a full budget. The kernel's own may_goto tests
//! (verifier_iterating_callbacks, verifier_bpf_fastcall) are in the
//! verifier corpus test, with their `__retval`s run in both engines.

use bpfc_compiler::asm::assemble;
use bpfc_compiler::codegen::jit::JitProgram;
use bpfc_compiler::codegen::CodegenOptions;
use bpfc_compiler::interp;
use bpfc_compiler::isa::{Endian, Insn, MAY_GOTO_BUDGET};
use bpfc_compiler::loader::ProgType;
use bpfc_compiler::verifier::{self, Input, Options};
use bpfc_runtime::{ExecContext, HelperTable};

fn verify(insns: &[Insn]) -> Result<(), String> {
    let input = Input {
        insns,
        maps: &[],
        btf: None,
        func_info: &[],
        endian: Endian::Little,
    };
    verifier::verify(&input, &Options::new(ProgType::SocketFilter))
        .map(|_| ())
        .map_err(|r| r.message)
}

/// r0 in the interpreter and in checked and unchecked JIT code (all equal).
fn run(insns: &[Insn]) -> u64 {
    let helpers = HelperTable::new();
    let i = interp::run(
        insns,
        &mut [],
        &helpers,
        &mut ExecContext::new(),
        &Default::default(),
    )
    .unwrap();
    for checked in [true, false] {
        let opts = CodegenOptions {
            checked,
            ..Default::default()
        };
        let j = JitProgram::new(insns, &helpers, &opts)
            .unwrap()
            .run(&mut [], &mut ExecContext::new())
            .unwrap();
        assert_eq!(j, i, "JIT (checked={checked}) and interpreter differ");
    }
    i
}

const COUNT: &str = "
    mov %r0, 0
loop:
    may_goto done
    add %r0, 1
    ja loop
done:
    exit
";

#[test]
fn a_loop_bounded_by_may_goto_runs_out_its_budget() {
    let insns = assemble(COUNT).unwrap();
    verify(&insns).unwrap();
    assert_eq!(run(&insns), MAY_GOTO_BUDGET);
}

#[test]
fn every_call_starts_with_a_full_budget() {
    // The caller counts its own rounds around two calls of the counter:
    // each call spends a budget of its own, the caller's is untouched.
    let src = "
    mov %r6, 0
    mov %r7, 0
again:
    may_goto out
    call local count
    add %r6, %r0
    add %r7, 1
    jlt %r7, 2, again
out:
    mov %r0, %r6
    exit
count:
    mov %r0, 0
loop:
    may_goto done
    add %r0, 1
    ja loop
done:
    exit
";
    let insns = assemble(src).unwrap();
    verify(&insns).unwrap();
    assert_eq!(run(&insns), 2 * MAY_GOTO_BUDGET);
}

#[test]
fn may_goto_with_offset_zero_is_rejected() {
    let insns = vec![Insn::MayGoto { off: 0 }, Insn::Exit];
    let e = verify(&[vec![assemble("mov %r0, 0").unwrap()[0]], insns].concat()).unwrap_err();
    assert_eq!(e, "invalid may_goto off 0 imm 0");
}

#[test]
fn what_the_loop_does_after_may_goto_is_still_checked() {
    // Each round moves a stack pointer down by 8 with no other bound: the
    // verifier follows it past the 512-byte frame and rejects the program.
    let src = "
    mov %r0, 0
    mov %r1, %r10
loop:
    may_goto done
    add %r1, -8
    stxdw [%r1], %r0
    ja loop
done:
    exit
";
    let e = verify(&assemble(src).unwrap()).unwrap_err();
    assert!(e.contains("invalid") && e.contains("stack"), "{e}");
}
