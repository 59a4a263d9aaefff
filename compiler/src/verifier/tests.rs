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
