//! The conformance suite's 313 pre-assembled programs compiled ahead of time
//! with `codegen::aot::compile_object` for each Linux target and Windows x64
//! (a mingw-w64 build run under wine), linked with the
//! C driver and run natively or under qemu-user. Failures are reported by
//! case name; the pass count per target is printed.

use bpfc_compiler::codegen::aot::compile_object;
use bpfc_compiler::codegen::{Binding, CodegenOptions, Request};
use bpfc_compiler::isa::{decode_program, Endian};
use bpfc_testsuite::aot::{link_and_run, link_and_run_batch, tool_available, AotTarget};
use bpfc_testsuite::{conformance_programs_or_skip, skip};
use std::str::FromStr;

fn run_target(target: &AotTarget) {
    if let Err(why) = tool_available(target) {
        return skip(target.triple, &why);
    }
    let triple = target_lexicon::Triple::from_str(target.triple).expect("known triple");
    let Some(cases) = conformance_programs_or_skip("aot_conformance") else {
        return;
    };
    assert_eq!(cases.len(), 313);
    let opts = CodegenOptions::default();
    let mut failures = Vec::new();
    for case in &cases {
        let outcome = decode_program(&case.program, Endian::Little)
            .map_err(|e| format!("decode: {e}"))
            .and_then(|insns| {
                compile_object(
                    &Request {
                        insns: &insns,
                        endian: Endian::Little,
                        binding: &Binding::object(&[5]),
                        opts: &opts,
                        symbol: "bpfc_prog",
                        facts: None,
                    },
                    &triple,
                    None,
                )
                .map_err(|e| format!("compile: {e}"))
            })
            .and_then(|obj| {
                link_and_run(target, &obj, "bpfc_prog", &case.mem).map_err(|e| e.to_string())
            });
        match outcome {
            Ok(r0) if r0 == case.result => {}
            Ok(r0) => failures.push(format!(
                "{}: got {r0:#x}, want {:#x}",
                case.name, case.result
            )),
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    println!(
        "{}: {}/{} conformance programs pass (AOT)",
        target.triple,
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{}: {} failures:\n{}",
        target.triple,
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn x86_64() {
    run_target(&AotTarget::X86_64);
}

#[test]
fn aarch64() {
    run_target(&AotTarget::AARCH64);
}

#[test]
fn riscv64() {
    run_target(&AotTarget::RISCV64);
}

#[test]
fn s390x() {
    run_target(&AotTarget::S390X);
}

/// COFF objects for Windows x64, linked by mingw-w64 into one executable
/// (wine is slow to start: one process runs every program) and run under
/// wine.
#[test]
fn x86_64_windows() {
    let target = AotTarget::WINDOWS;
    if let Err(why) = tool_available(&target) {
        return skip(target.triple, &why);
    }
    let triple = target_lexicon::Triple::from_str(target.triple).expect("known triple");
    let Some(cases) = conformance_programs_or_skip("aot_conformance") else {
        return;
    };
    let opts = CodegenOptions::default();
    let mut objects = Vec::new();
    let mut runs = Vec::new();
    let mut failures = Vec::new();
    let mut ran = Vec::new();
    for case in &cases {
        let symbol = format!("bpfc_prog{}", objects.len());
        let obj = decode_program(&case.program, Endian::Little)
            .map_err(|e| format!("decode: {e}"))
            .and_then(|insns| {
                compile_object(
                    &Request {
                        insns: &insns,
                        endian: Endian::Little,
                        binding: &Binding::object(&[5]),
                        opts: &opts,
                        symbol: &symbol,
                        facts: None,
                    },
                    &triple,
                    None,
                )
                .map_err(|e| format!("compile: {e}"))
            });
        match obj {
            Ok(o) => {
                runs.push((objects.len(), case.mem.clone()));
                objects.push((o, symbol));
                ran.push(case);
            }
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    let results = link_and_run_batch(&target, &objects, &runs).unwrap_or_else(|e| panic!("{e}"));
    for (case, r) in ran.iter().zip(&results) {
        match r {
            Ok(r0) if *r0 == case.result => {}
            Ok(r0) => failures.push(format!(
                "{}: got {r0:#x}, want {:#x}",
                case.name, case.result
            )),
            Err(e) => failures.push(format!("{}: {e}", case.name)),
        }
    }
    println!(
        "{}: {}/{} conformance programs pass (AOT)",
        target.triple,
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
