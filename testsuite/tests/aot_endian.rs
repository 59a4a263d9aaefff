//! Byte order and faults of AOT objects on every Linux target, checked
//! against the interpreter:
//!
//! - the conformance programs that touch memory or swap bytes, run as a
//!   big-endian (`bpfeb`) machine: natively on s390x, with explicit byte
//!   swaps on x86_64, aarch64 and riscv64;
//! - the big-endian ELF fixture's program;
//! - faults crossing the C ABI (`struct bpfc_fault`: code, pc and the 64-bit
//!   detail) for an instruction budget and an out-of-bounds access.

use bpfc_compiler::codegen::aot::compile_object;
use bpfc_compiler::codegen::{Binding, CodegenOptions, Request};
use bpfc_compiler::isa::{decode_program, Endian, Insn};
use bpfc_compiler::{asm, interp, loader};
use bpfc_runtime::abi::FaultCode;
use bpfc_runtime::{ExecContext, HelperTable};
use bpfc_testsuite::aot::{link_and_run, tool_available, AotRunError, AotTarget};
use bpfc_testsuite::{conformance_programs_or_skip, elf_fixture_dir, skip};
use std::str::FromStr;

const SYMBOL: &str = "bpfc_prog";

fn triple(target: &AotTarget) -> target_lexicon::Triple {
    target_lexicon::Triple::from_str(target.triple).expect("known triple")
}

/// Whether the target's tools are there (a skip line when not).
fn usable(target: &AotTarget) -> bool {
    tool_available(target)
        .map_err(|why| skip(target.triple, &why))
        .is_ok()
}

fn interp_big_endian(insns: &[Insn], mem: &[u8]) -> Result<u64, interp::RunError> {
    let opts = interp::Options {
        max_insns: Some(1_000_000),
        endian: Endian::Big,
    };
    let mut mem = mem.to_vec();
    interp::run(
        insns,
        &mut mem,
        &HelperTable::conformance(),
        &mut ExecContext::new(),
        &opts,
    )
}

/// Whether byte order can change what `insns` compute.
fn order_sensitive(insns: &[Insn]) -> bool {
    insns.iter().any(|i| {
        matches!(
            i,
            Insn::Ldx { .. }
                | Insn::St { .. }
                | Insn::Stx { .. }
                | Insn::Atomic { .. }
                | Insn::End { .. }
        )
    })
}

fn big_endian_conformance(target: &AotTarget) {
    if !usable(target) {
        return;
    }
    let Some(cases) = conformance_programs_or_skip("aot_endian") else {
        return;
    };
    let triple = triple(target);
    let (mut ran, mut differ) = (0, 0);
    let mut failures = Vec::new();
    for case in &cases {
        let insns = decode_program(&case.program, Endian::Little).expect("suite programs decode");
        if !order_sensitive(&insns) {
            continue;
        }
        // Programs the interpreter stops (none of the suite's, today) have
        // no value to compare.
        let Ok(want) = interp_big_endian(&insns, &case.mem) else {
            continue;
        };
        ran += 1;
        differ += usize::from(want != case.result);
        let got = compile_object(
            &Request {
                insns: &insns,
                endian: Endian::Big,
                binding: &Binding::object(&[5]),
                opts: &CodegenOptions::default(),
                symbol: SYMBOL,
                facts: None,
            },
            &triple,
            None,
        )
        .map_err(|e| format!("compile: {e}"))
        .and_then(|obj| link_and_run(target, &obj, SYMBOL, &case.mem).map_err(|e| e.to_string()));
        match got {
            Ok(r0) if r0 == want => {}
            Ok(r0) => failures.push(format!("{}: got {r0:#x}, interpreter {want:#x}", case.name)),
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    println!(
        "{}: {ran} byte-order-sensitive conformance programs run big-endian \
         ({differ} give another r0 than little-endian), {} failures",
        target.triple,
        failures.len()
    );
    // The selection must mean something: a third of these programs give
    // another result as a big-endian machine (107 and 32 of the suite's 313).
    assert!(ran >= 100 && differ >= 30, "ran {ran}, differ {differ}");
    assert!(
        failures.is_empty(),
        "{}:\n{}",
        target.triple,
        failures.join("\n")
    );
}

fn big_endian_fixture(target: &AotTarget) {
    if !usable(target) {
        return;
    }
    let path = elf_fixture_dir().join("bigendian.o");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let obj = loader::Object::parse(&bytes).unwrap_or_else(|e| panic!("bigendian.o: {e}"));
    assert_eq!(obj.endian, Endian::Big);
    let prog = obj
        .programs
        .iter()
        .find(|p| p.name == "be_pure")
        .expect("bigendian.o has be_pure");
    let want = interp_big_endian(&prog.insns, &[]).expect("be_pure runs");
    let object = compile_object(
        &Request {
            insns: &prog.insns,
            endian: obj.endian,
            binding: &Binding::object(&[]),
            opts: &CodegenOptions::default(),
            symbol: SYMBOL,
            facts: None,
        },
        &triple(target),
        None,
    )
    .expect("be_pure compiles");
    assert_eq!(
        link_and_run(target, &object, SYMBOL, &[]).expect("be_pure runs"),
        want,
        "{}",
        target.triple
    );
}

fn aot_fault(target: &AotTarget, src: &str, opts: &CodegenOptions, mem: &[u8]) -> (u32, u32, u64) {
    let insns = asm::assemble(src).expect("test program assembles");
    let object = compile_object(
        &Request {
            insns: &insns,
            endian: Endian::Little,
            binding: &Binding::object(&[]),
            opts,
            symbol: SYMBOL,
            facts: None,
        },
        &triple(target),
        None,
    )
    .expect("compiles");
    match link_and_run(target, &object, SYMBOL, mem) {
        Err(AotRunError::Fault { code, pc, detail }) => (code, pc, detail),
        other => panic!("{}: expected a fault, got {other:?}", target.triple),
    }
}

fn faults_cross_the_abi(target: &AotTarget) {
    if !usable(target) {
        return;
    }
    let limit = 0x1_0000_0001u64; // above 32 bits: the detail word is 64-bit
    let budget = CodegenOptions {
        insn_limit: Some(limit),
        ..Default::default()
    };
    let (code, pc, detail) = aot_fault(target, "loop:\nja loop\nexit", &budget, &[]);
    assert_eq!(
        (code, pc, detail),
        (FaultCode::InsnLimit as u32, 0, limit),
        "{}",
        target.triple
    );
    let checked = CodegenOptions {
        checked: true,
        ..Default::default()
    };
    // A load from a fixed address outside every region: the detail is
    // that address, whatever the driver's buffers are.
    let (code, pc, detail) = aot_fault(
        target,
        "lddw %r1, 0x123456789a\nldxdw %r0, [%r1+8]\nexit",
        &checked,
        &[0; 8],
    );
    assert_eq!(
        (code, pc, detail),
        (FaultCode::OutOfBounds as u32, 2, 0x12_3456_78a2),
        "{}",
        target.triple
    );
}

macro_rules! per_target {
    ($($name:ident: $target:expr),*) => {
        mod big_endian_conformance {
            use super::*;
            $(#[test] fn $name() { big_endian_conformance(&$target) })*
        }
        mod big_endian_fixture {
            use super::*;
            $(#[test] fn $name() { big_endian_fixture(&$target) })*
        }
        mod faults {
            use super::*;
            $(#[test] fn $name() { faults_cross_the_abi(&$target) })*
        }
    };
}

per_target!(
    x86_64: AotTarget::X86_64,
    aarch64: AotTarget::AARCH64,
    riscv64: AotTarget::RISCV64,
    s390x: AotTarget::S390X
);
