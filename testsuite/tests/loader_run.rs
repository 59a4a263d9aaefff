//! Every fixture program that needs no maps and no helpers runs in the
//! interpreter and in JIT code (checked and unchecked) with one result, and
//! the ones whose value is known from their source return it.

use bpfc_compiler::codegen::{jit::JitProgram, CodegenOptions};
use bpfc_compiler::isa::{Insn, LddwSrc};
use bpfc_compiler::{interp, loader};
use bpfc_runtime::{ExecContext, HelperTable};
use bpfc_testsuite::workspace_root;

/// Values worked out from the fixtures' C sources.
const KNOWN: [(&str, &str, u64); 6] = [
    ("calls.o", "pure_sum", 385),
    // twice_plus(20, 3) + twice(21)
    ("static_calls.o", "static_caller", 85),
    // r = r * 3 + i for i in 1..=6
    ("ksym.o", "ksym_pure", 543),
    ("calls.o", "pure_fib", 6765),
    ("bigendian.o", "be_pure", 100),
    ("btf_kinds.o", "btf_kinds", 42),
];

fn self_contained(insns: &[Insn]) -> bool {
    insns.iter().all(|i| match i {
        Insn::Call(bpfc_compiler::isa::CallTarget::Local(_)) => true,
        Insn::Call(_) | Insn::Callx { .. } | Insn::LdAbs { .. } | Insn::LdInd { .. } => false,
        Insn::Lddw { src, .. } => *src == LddwSrc::Imm,
        _ => true,
    })
}

#[test]
fn pure_fixture_programs_agree_across_engines() {
    let dir = workspace_root().join("testsuite/fixtures/elf");
    let mut ran = Vec::new();
    let mut faulted = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "o"))
    {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let obj = loader::Object::parse(&std::fs::read(path).unwrap())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        for prog in obj
            .programs
            .iter()
            .filter(|p| p.error.is_none() && self_contained(&p.insns))
        {
            let helpers = HelperTable::new();
            let want = interp::run(
                &prog.insns,
                &mut [],
                &helpers,
                &mut ExecContext::new(),
                &interp::Options {
                    endian: obj.endian,
                    ..Default::default()
                },
            );
            let want = match want {
                Ok(v) => v,
                Err(e) => {
                    // Programs that read their context (none is given) fault:
                    // checked JIT code must fault too. Unchecked code is
                    // never run on a program known to fault.
                    let opts = CodegenOptions {
                        checked: true,
                        ..Default::default()
                    };
                    let jit = JitProgram::compile(&prog.insns, obj.endian, &helpers, &opts, None)
                        .unwrap_or_else(|e| panic!("{file} {}: {e}", prog.name));
                    assert!(
                        jit.run(&mut [], &mut ExecContext::new()).is_err(),
                        "{file} {}: interp faults ({e}), checked JIT does not",
                        prog.name
                    );
                    faulted.push(format!("{file}:{}", prog.name));
                    continue;
                }
            };
            for checked in [false, true] {
                let opts = CodegenOptions {
                    checked,
                    ..Default::default()
                };
                let jit = JitProgram::compile(&prog.insns, obj.endian, &helpers, &opts, None)
                    .unwrap_or_else(|e| panic!("{file} {}: {e}", prog.name));
                let got = jit
                    .run(&mut [], &mut ExecContext::new())
                    .unwrap_or_else(|e| panic!("{file} {}: {e}", prog.name));
                assert_eq!(got, want, "{file} {} (checked: {checked})", prog.name);
            }
            if let Some((_, _, v)) = KNOWN.iter().find(|(f, p, _)| *f == file && *p == prog.name) {
                assert_eq!(want, *v, "{file} {}", prog.name);
            }
            ran.push(format!("{file}:{}", prog.name));
        }
    }
    for (f, p, _) in KNOWN {
        assert!(
            ran.contains(&format!("{f}:{p}")),
            "{f}:{p} did not run; ran {ran:?}"
        );
    }
    println!("ran {} programs: {}", ran.len(), ran.join(", "));
    println!(
        "faulted in both engines without a context: {}",
        faulted.join(", ")
    );
}
