//! Unit tests of the verifier on small assembled programs.

use super::*;
use crate::asm::assemble;
use crate::loader::ProgType;

fn run(src: &str, ty: ProgType) -> Result<Verified, Rejection> {
    let insns = assemble(src).expect("test program assembles");
    let input = Input {
        insns: &insns,
        maps: &[],
        btf: None,
        func_info: &[],
        endian: crate::isa::Endian::Little,
    };
    verify(&input, &Options::new(ty))
}

fn rejects(src: &str, msg: &str) {
    match run(src, ProgType::SocketFilter) {
        Ok(_) => panic!("accepted:\n{src}"),
        Err(r) => assert!(r.message.contains(msg), "{:?} lacks {msg:?}", r.message),
    }
}

fn accepts(src: &str) {
    if let Err(r) = run(src, ProgType::SocketFilter) {
        panic!("rejected: {r}\n{src}");
    }
}

#[test]
fn basics() {
    accepts("mov %r0, 0\nexit\n");
    rejects("exit\n", "R0 !read_ok");
    rejects("mov %r0, %r2\nexit\n", "R2 !read_ok");
    rejects("ldxw %r0, [%r2]\nexit\n", "R2 !read_ok");
    rejects(
        "mov %r0, 0\nldxdw %r0, [%r0]\nexit\n",
        "R0 invalid mem access 'scalar'",
    );
    rejects("mov %r0, 0\nexit\nmov %r0, 1\nexit\n", "unreachable insn 2");
}

#[test]
fn stack() {
    accepts("mov %r1, 5\nstxdw [%r10-8], %r1\nldxdw %r0, [%r10-8]\nexit\n");
    rejects(
        "mov %r0, 0\nstxdw [%r10+8], %r0\nexit\n",
        "invalid write to stack R10 off=8 size=8",
    );
    rejects(
        "mov %r0, 0\nstxdw [%r10-520], %r0\nexit\n",
        "invalid write to stack R10 off=-520 size=8",
    );
    rejects(
        "mov %r0, 0\nstxdw [%r10-4], %r0\nexit\n",
        "misaligned stack access off 0+0+-4 size 8",
    );
    // A spilled pointer comes back as the pointer.
    accepts("stxdw [%r10-8], %r1\nldxdw %r2, [%r10-8]\nldxw %r0, [%r2]\nexit\n");
}

#[test]
fn ctx_access() {
    accepts("ldxw %r0, [%r1]\nexit\n");
    rejects(
        "ldxw %r0, [%r1+76]\nexit\n",
        "invalid bpf_context access off=76 size=4",
    );
    rejects(
        "mov %r0, 0\nstxw [%r1], %r0\nexit\n",
        "invalid bpf_context access off=0 size=4",
    );
}

/// `max_ctx_offset`: the end of the furthest context access, as the kernel
/// keeps it.
#[test]
fn max_ctx_offset() {
    let facts = |src: &str, ty| run(src, ty).unwrap().facts.max_ctx_offset;
    assert_eq!(facts("mov %r0, 0\nexit\n", ProgType::Syscall), 0);
    assert_eq!(
        facts(
            "ldxw %r0, [%r1+8]\nldxb %r2, [%r1+2]\nexit\n",
            ProgType::Syscall
        ),
        12
    );
    assert_eq!(
        facts("ldxw %r0, [%r1+16]\nexit\n", ProgType::SocketFilter),
        20
    );
}

#[test]
fn loops_and_branches() {
    accepts("mov %r0, 0\nmov %r1, 10\nloop:\nadd %r0, 1\nsub %r1, 1\njne %r1, 0, loop\nexit\n");
    rejects(
        "mov %r0, 0\nloop:\njeq %r0, 0, loop\nexit\n",
        "infinite loop detected at insn 1",
    );
    // Range from a branch bounds a stack offset.
    accepts(
        "ldxw %r2, [%r1]\nmov %r0, 0\nstxdw [%r10-8], %r0\n\
         jgt %r2, 7, out\nmov %r3, %r10\nadd %r3, -8\nadd %r3, %r2\nldxb %r0, [%r3]\nout:\nexit\n",
    );
}

#[test]
fn return_values() {
    let src = "mov %r0, 2\nexit\n";
    let e = run(src, ProgType::CgroupSkb).unwrap_err();
    assert_eq!(
        e.message,
        "At program exit the register R0 has smin=2 smax=2 should have been in [0, 1]"
    );
    assert!(run(src, ProgType::Xdp).is_ok());
}

fn run_freq(src: &str) -> Result<Verified, Rejection> {
    let insns = assemble(src).expect("test program assembles");
    let input = Input {
        insns: &insns,
        maps: &[],
        btf: None,
        func_info: &[],
        endian: crate::isa::Endian::Little,
    };
    let mut opts = Options::new(ProgType::SocketFilter);
    opts.test_state_freq = true;
    verify(&input, &opts)
}

#[test]
fn precision_keeps_pruning_sound() {
    // The path through 4 reaches 5 with r6 = 0 first and is saved there;
    // the jump reaches 5 with r6 in [8, 15], which must not be pruned
    // against it: r6 becomes a stack offset, so it is precise.
    let unsafe_src = "call 7\nmov %r6, %r0\nand %r6, 15\njgt %r6, 7, join\nmov %r6, 0\n\
         join:\nmov %r1, %r10\nadd %r1, -8\nadd %r1, %r6\nldxb %r0, [%r1]\nexit\n";
    let e = run_freq(unsafe_src).unwrap_err();
    assert!(
        e.message
            .contains("invalid variable-offset read from stack R1"),
        "{}",
        e.message
    );
    assert_eq!(e.path, vec![(3, 5)]);
    // The same shape where the value does not matter is pruned.
    let prunable = "call 7\nmov %r6, %r0\nand %r6, 15\njgt %r6, 7, join\nmov %r6, 0\n\
         join:\nmov %r0, %r6\nexit\n";
    let v = run_freq(prunable).unwrap();
    assert!(v.stats.insns_processed < 14, "{:?}", v.stats);
}

#[test]
fn imprecise_scalars_prune_combinations() {
    // Twenty undecided branches each change an accumulator that only
    // reaches r0: without precision tracking that is 2^20 paths.
    let mut src = String::from("call 7\nmov %r6, %r0\nmov %r7, 0\nmov %r8, 0\n");
    for i in 0..20 {
        src.push_str(&format!(
            "jset %r6, {}, l{i}\nor %r7, {}\nl{i}:\n",
            1u32 << i,
            1u32 << i
        ));
    }
    src.push_str("mov %r0, %r7\nexit\n");
    let v = run(&src, ProgType::SocketFilter).unwrap();
    assert!(v.stats.insns_processed < 2000, "{:?}", v.stats);
}

#[test]
fn stack_liveness_keeps_pruning_sound() {
    // Both paths spill r6 to fp-16 before the join; the fall-through
    // first with 0, the jump with r6 in [8, 15]. The slot is read after
    // the join and becomes a stack offset, so the saved state's slot is
    // live and must be compared: the second path is not pruned.
    let unsafe_src = "call 7\nmov %r6, %r0\nand %r6, 15\njgt %r6, 7, big\nmov %r6, 0\n\
         stxdw [%r10-16], %r6\nja join\nbig:\nstxdw [%r10-16], %r6\n\
         join:\nmov %r6, 0\nldxdw %r2, [%r10-16]\n\
         mov %r1, %r10\nadd %r1, -8\nadd %r1, %r2\nldxb %r0, [%r1]\nexit\n";
    let e = run_freq(unsafe_src).unwrap_err();
    assert!(
        e.message
            .contains("invalid variable-offset read from stack R1"),
        "{}",
        e.message
    );
    // A slot written whole before any read is dead at the join: states
    // that differ only there are pruned.
    let prunable = "call 7\nmov %r6, %r0\nand %r6, 15\njgt %r6, 7, other\n\
         stxdw [%r10-8], %r6\nja join\nother:\nmov %r1, %r10\nstxdw [%r10-8], %r1\n\
         join:\nmov %r6, 1\nstxdw [%r10-8], %r6\nldxdw %r0, [%r10-8]\nexit\n";
    let v = run_freq(prunable).unwrap();
    assert!(v.stats.insns_processed <= 13, "{:?}", v.stats);
}
