//! Data-driven tests: every `.data` case of this project (`testsuite/cases`)
//! and of the bpf_conformance suite, run on every engine, checked against its
//! `-- result` or `-- error` section. One libtest trial per case and engine, so
//! `cargo test --test cases -- NAME` selects cases.

use bpfc_compiler::codegen::{jit::JitProgram, CodegenOptions};
use bpfc_compiler::{asm, interp, isa};
use bpfc_runtime::{ExecContext, HelperTable};
use bpfc_testsuite::{conformance_dir_checked, data::read_data, skip, workspace_root};
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use std::path::{Path, PathBuf};

/// Instruction limit for every run, so a looping program fails instead of hanging.
const MAX_INSNS: u64 = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Engine {
    Interp,
    /// JIT code without bounds checks: only for cases that expect a result,
    /// since it trusts the program not to fault (as a verified one would not).
    Jit,
    /// JIT code in bounds-checked mode: every case.
    JitChecked,
}

impl Engine {
    const ALL: [Engine; 3] = [Engine::Interp, Engine::Jit, Engine::JitChecked];

    fn name(self) -> &'static str {
        match self {
            Engine::Interp => "interp",
            Engine::Jit => "jit",
            Engine::JitChecked => "jit-checked",
        }
    }

    /// Whether the engine can run a case expecting `error` (None: a result):
    /// unchecked code trusts the program, so it only runs cases that end
    /// with a result.
    fn runs(self, error: Option<&str>) -> bool {
        self != Engine::Jit || error.is_none()
    }

    fn run(self, insns: &[isa::Insn], mem: &mut [u8]) -> Result<u64, String> {
        let helpers = HelperTable::conformance();
        let mut ctx = ExecContext::new();
        match self {
            Engine::Interp => {
                let opts = interp::Options {
                    max_insns: Some(MAX_INSNS),
                    ..Default::default()
                };
                interp::run(insns, mem, &helpers, &mut ctx, &opts).map_err(|e| e.to_string())
            }
            Engine::Jit | Engine::JitChecked => {
                let opts = CodegenOptions {
                    checked: self == Engine::JitChecked,
                    insn_limit: Some(MAX_INSNS),
                    ..Default::default()
                };
                let prog = JitProgram::new(insns, &helpers, &opts).map_err(|e| e.to_string())?;
                prog.run(mem, &mut ctx).map_err(|e| e.to_string())
            }
        }
    }
}

/// The program of a case: assembled, or decoded from its raw words. Errors are
/// part of the outcome, since `-- error` cases may expect them.
fn program(path: &Path, case: &bpfc_testsuite::data::DataFile) -> Result<Vec<isa::Insn>, String> {
    if let Some(raw) = &case.raw {
        return isa::decode_program(raw, isa::Endian::Little).map_err(|e| e.to_string());
    }
    let src = case
        .asm
        .as_deref()
        .ok_or_else(|| format!("{}: no -- asm or -- raw section", path.display()))?;
    let insns = asm::assemble(src).map_err(|e| e.to_string())?;
    isa::validate(&insns).map_err(|e| e.to_string())?;
    Ok(insns)
}

fn check(path: &Path, engine: Engine) -> Result<(), Failed> {
    let case = read_data(path)?;
    let mut mem = case.mem.clone();
    let outcome = program(path, &case).and_then(|insns| engine.run(&insns, &mut mem));
    match (&case.error, case.result, outcome) {
        (Some(want), _, Err(got)) if got.contains(want.as_str()) => Ok(()),
        (Some(want), _, Err(got)) => {
            Err(format!("expected an error containing {want:?}, got error {got:?}").into())
        }
        (Some(want), _, Ok(r0)) => {
            Err(format!("expected an error containing {want:?}, got r0 = {r0:#x}").into())
        }
        (None, Some(want), Ok(r0)) if r0 == want => Ok(()),
        (None, Some(want), Ok(r0)) => Err(format!("expected r0 = {want:#x}, got {r0:#x}").into()),
        (None, Some(want), Err(got)) => {
            Err(format!("expected r0 = {want:#x}, got error {got}").into())
        }
        (None, None, _) => {
            Err(format!("{}: no -- result or -- error section", path.display()).into())
        }
    }
}

fn data_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "data"))
        .collect();
    files.sort();
    files
}

fn main() {
    let args = Arguments::from_args();
    let mut suites = vec![("bpfc", workspace_root().join("testsuite/cases"))];
    let mut trials = Vec::new();
    match conformance_dir_checked() {
        Ok(dir) => suites.push(("conformance", dir.join("tests"))),
        Err(why) => {
            // Shown as an ignored test with its reason in the summary.
            skip("cases::conformance", &why);
            trials.push(Trial::ignorable_test("conformance", move || {
                Ok(Completion::ignored_with(why))
            }));
        }
    }
    for (suite, dir) in suites {
        for path in data_files(&dir) {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            // A case that does not parse still gets its trials, which then fail.
            let error = read_data(&path).ok().and_then(|c| c.error);
            for engine in Engine::ALL {
                if !engine.runs(error.as_deref()) {
                    continue;
                }
                let path = path.clone();
                let name = format!("{suite}::{stem}::{}", engine.name());
                trials.push(Trial::test(name, move || check(&path, engine)));
            }
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
