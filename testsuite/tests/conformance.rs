//! Every bpf_conformance case (programs.json) run in-process through the
//! reference interpreter; all failures are reported by name.

use bpfc_compiler::interp;
use bpfc_compiler::isa::{decode_program, Endian};
use bpfc_runtime::{ExecContext, HelperTable};
use bpfc_testsuite::{conformance_programs_or_skip, ConformanceCase};

/// One case: decode, run, compare r0 with the expected result.
fn check(case: &ConformanceCase) -> Result<(), String> {
    let insns =
        decode_program(&case.program, Endian::Little).map_err(|e| format!("decode: {e}"))?;
    let mut mem = case.mem.clone();
    let opts = interp::Options {
        max_insns: Some(10_000_000),
        ..Default::default()
    };
    let got = interp::run(
        &insns,
        &mut mem,
        &HelperTable::conformance(),
        &mut ExecContext::new(),
        &opts,
    )
    .map_err(|e| format!("run: {e}"))?;
    if got == case.result {
        Ok(())
    } else {
        Err(format!("expected {:#x}, got {got:#x}", case.result))
    }
}

#[test]
fn conformance_cases_pass_in_the_interpreter() {
    let Some(cases) = conformance_programs_or_skip("conformance") else {
        return;
    };
    assert_eq!(cases.len(), 313, "programs.json case count");
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| check(c).err().map(|e| format!("{}: {e}", c.name)))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
