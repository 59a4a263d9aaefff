//! Tracing contexts on every Linux target: a uprobe reading PT_REGS_PARM1..5
//! (testsuite/fixtures/tracing, built per architecture with bpf_tracing.h)
//! is verified and bound as bpfc binds any program, compiled ahead of time
//! for its architecture and run (natively or under qemu-user) on the
//! `struct pt_regs` the AOT driver fills from that architecture's own
//! headers; the x86_64 object also runs in the interpreter and the JIT on
//! the same register values laid out as x86_64's pt_regs.

use bpfc_compiler::bind::{Instance, InstanceOptions};
use bpfc_compiler::codegen::aot::compile_object;
use bpfc_compiler::codegen::{jit::JitProgram, Binding, CodegenOptions, Request};
use bpfc_compiler::interp;
use bpfc_compiler::loader::{self, LoadOptions, ProgType};
use bpfc_runtime::{ExecContext, HelperTable};
use bpfc_testsuite::aot::{link_and_run_pt_regs, tool_available, AotTarget, PT_REGS_ARGS};
use bpfc_testsuite::skip;
use std::path::PathBuf;
use std::str::FromStr;

fn expected() -> u64 {
    let [a, b, c, d, e] = PT_REGS_ARGS;
    a + 3 * b + 5 * c + 7 * d + 11 * e
}

fn fixture(arch: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/tracing/pt_regs_{arch}.o"))
}

fn bound(arch: &str) -> bpfc_compiler::bind::BoundProgram {
    let bytes = std::fs::read(fixture(arch)).unwrap();
    let obj = loader::load(&bytes, &LoadOptions::default()).unwrap();
    let p = obj.program("pt_regs_args").unwrap();
    assert_eq!(p.kind.prog_type, ProgType::Kprobe);
    let inst = Instance::new(&obj, &InstanceOptions::default()).unwrap();
    let b = inst.bind(&obj, p, &HelperTable::kernel()).unwrap();
    assert!(
        b.facts.is_some(),
        "{arch}: the verifier checked it as a kprobe"
    );
    b
}

#[test]
fn pt_regs_arguments_on_every_linux_target() {
    let mut ran = 0;
    for target in AotTarget::LINUX {
        if let Err(why) = tool_available(&target) {
            skip(target.triple, &why);
            continue;
        }
        let arch = target
            .triple
            .split('-')
            .next()
            .unwrap()
            .replace("riscv64gc", "riscv64");
        let b = bound(&arch);
        let object = compile_object(
            &Request {
                insns: &b.insns,
                endian: b.endian,
                binding: &Binding::object(&[]),
                opts: &CodegenOptions::default(),
                symbol: "bpfc_prog",
                facts: b.facts.as_ref(),
            },
            &target_lexicon::Triple::from_str(target.triple).unwrap(),
            None,
        )
        .unwrap_or_else(|e| panic!("{arch}: {e}"));
        let r0 = link_and_run_pt_regs(&target, &object, "bpfc_prog")
            .unwrap_or_else(|e| panic!("{arch}: {e}"));
        assert_eq!(r0, expected(), "{arch}: {r0:#x}");
        ran += 1;
    }
    assert!(ran >= 1, "not even the host target ran");
}

#[test]
fn pt_regs_arguments_in_the_engines() {
    // x86_64's struct pt_regs: rdi, rsi, rdx, rcx and r8 at 112, 104, 96, 88, 72.
    let mut regs = vec![0xabu8; 168];
    for (v, off) in PT_REGS_ARGS.iter().zip([112, 104, 96, 88, 72]) {
        regs[off..off + 8].copy_from_slice(&v.to_le_bytes());
    }
    let b = bound("x86_64");
    let mut mem = regs.clone();
    let r = interp::run_bound(&b, &mut mem, &mut ExecContext::new(), &Default::default()).unwrap();
    assert_eq!(r, expected());
    let j = JitProgram::from_bound(b, &CodegenOptions::default(), None).unwrap();
    let mut mem = regs;
    assert_eq!(
        j.run(&mut mem, &mut ExecContext::new()).unwrap(),
        expected()
    );
}
