//! Every bpf_conformance case (programs.json) compiled by the Cranelift JIT
//! and run in-process (unchecked and bounds-checked, at both optimisation
//! levels); all failures are reported by name.

use bpfc_compiler::codegen::{jit::JitProgram, CodegenOptions, OptLevel};
use bpfc_compiler::isa::{decode_program, Endian};
use bpfc_runtime::{ExecContext, HelperTable};
use bpfc_testsuite::{conformance_programs_or_skip, ConformanceCase};

/// One case: decode, compile, run, compare r0 with the expected result.
fn check(case: &ConformanceCase, opts: &CodegenOptions) -> Result<(), String> {
    let insns =
        decode_program(&case.program, Endian::Little).map_err(|e| format!("decode: {e}"))?;
    let prog = JitProgram::new(&insns, &HelperTable::conformance(), opts)
        .map_err(|e| format!("compile: {e}"))?;
    let mut mem = case.mem.clone();
    let got = prog
        .run(&mut mem, &mut ExecContext::new())
        .map_err(|e| format!("run: {e}"))?;
    if got == case.result {
        Ok(())
    } else {
        Err(format!("expected {:#x}, got {got:#x}", case.result))
    }
}

fn run_all(opts: CodegenOptions) {
    let Some(cases) = conformance_programs_or_skip("jit_conformance") else {
        return;
    };
    assert_eq!(cases.len(), 313, "programs.json case count");
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| check(c, &opts).err().map(|e| format!("{}: {e}", c.name)))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed ({opts:?}):\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn conformance_cases_pass_in_the_jit() {
    for opt_level in [OptLevel::Speed, OptLevel::None] {
        run_all(CodegenOptions {
            opt_level,
            checked: false,
            insn_limit: None,
        });
    }
}

#[test]
fn conformance_cases_pass_in_the_checked_jit() {
    for opt_level in [OptLevel::Speed, OptLevel::None] {
        run_all(CodegenOptions {
            opt_level,
            checked: true,
            insn_limit: None,
        });
    }
}
