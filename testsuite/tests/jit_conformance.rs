//! Every bpf_conformance case (programs.json) compiled by the Cranelift JIT
//! and run in-process (unchecked and bounds-checked); all failures are
//! reported by name.

use bpfc_compiler::codegen::{jit::JitProgram, CodegenOptions};
use bpfc_compiler::isa::{decode_program, Endian};
use bpfc_runtime::{ExecContext, HelperTable};
use bpfc_testsuite::{conformance_dir, hex_decode};

/// One case: decode, run, compare r0 with the expected result.
fn check(case: &serde_json::Value, checked: bool) -> Result<(), String> {
    let field = |k: &str| {
        case[k]
            .as_str()
            .ok_or_else(|| format!("field `{k}` missing or not a string"))
    };
    let bytes = hex_decode(field("program")?)?;
    let mut mem = hex_decode(field("mem")?)?;
    let want = field("result")?;
    let want = u64::from_str_radix(want.trim_start_matches("0x"), 16)
        .map_err(|e| format!("bad expected result {want:?}: {e}"))?;
    let insns = decode_program(&bytes, Endian::Little).map_err(|e| format!("decode: {e}"))?;
    let opts = CodegenOptions {
        checked,
        ..Default::default()
    };
    let prog = JitProgram::new(&insns, &HelperTable::conformance(), &opts)
        .map_err(|e| format!("compile: {e}"))?;
    let got = prog
        .run(&mut mem, &mut ExecContext::new())
        .map_err(|e| format!("run: {e}"))?;
    if got == want {
        Ok(())
    } else {
        Err(format!("expected {want:#x}, got {got:#x}"))
    }
}

fn run_all(checked: bool) {
    let path = conformance_dir().join("programs.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let cases: serde_json::Value = serde_json::from_str(&text).expect("programs.json parses");
    let cases = cases.as_array().expect("programs.json is an array");
    assert_eq!(cases.len(), 313, "programs.json case count");
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let name = case["name"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("#{i}"));
        if let Err(e) = check(case, checked) {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed (checked={checked}):\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn conformance_cases_pass_in_the_jit() {
    run_all(false);
}

#[test]
fn conformance_cases_pass_in_the_checked_jit() {
    run_all(true);
}
