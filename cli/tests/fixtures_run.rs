//! `bpfc run` on every ELF fixture program that needs no maps and no
//! helpers, once per engine: both print the same return value, or both stop
//! with the same message (but for the regions the interpreter allowed,
//! which only it knows).

use bpfc_compiler::isa::{CallTarget, Insn, LddwSrc};
use bpfc_compiler::loader::Object;
use bpfc_testsuite::elf_fixtures;
use std::process::{Command, Output};

fn self_contained(insns: &[Insn]) -> bool {
    insns.iter().all(|i| match i {
        Insn::Call(CallTarget::Local(_)) => true,
        Insn::Call(_) | Insn::Callx { .. } | Insn::LdAbs { .. } | Insn::LdInd { .. } => false,
        Insn::Lddw { src, .. } => *src == LddwSrc::Imm,
        _ => true,
    })
}

/// The interpreter's message without its ` (stack is ..., input is ...)`.
fn without_regions(message: &str) -> String {
    match message.find(" (stack is ") {
        Some(at) => {
            let end = message[at..]
                .find(')')
                .map_or(message.len(), |e| at + e + 1);
            format!("{}{}", &message[..at], &message[end..])
        }
        None => message.to_string(),
    }
}

fn run(file: &str, program: &str, engine: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bpfc"))
        .args(["run", file, "--program", program, "--engine", engine])
        .output()
        .expect("bpfc runs")
}

#[test]
fn both_engines_agree_on_every_self_contained_fixture_program() {
    let (mut agreed, mut faulted) = (0, 0);
    for path in elf_fixtures() {
        let file = path.to_str().expect("utf-8 path").to_string();
        let obj = Object::parse(&std::fs::read(&path).expect("fixture readable"))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        for prog in obj.programs.iter().filter(|p| self_contained(&p.insns)) {
            let jit = run(&file, &prog.name, "jit");
            let interp = run(&file, &prog.name, "interp");
            let text = |o: &Output| {
                (
                    String::from_utf8_lossy(&o.stdout).into_owned(),
                    String::from_utf8_lossy(&o.stderr).trim_end().to_string(),
                )
            };
            let ((jit_out, jit_err), (int_out, int_err)) = (text(&jit), text(&interp));
            let what = format!("{file} --program {}", prog.name);
            match (jit.status.code(), interp.status.code()) {
                (Some(0), Some(0)) => {
                    // `Return value: N, duration: Dns`: equal up to the duration.
                    let value = |s: &str| s.split(", duration").next().unwrap_or("").to_string();
                    assert_eq!(value(&jit_out), value(&int_out), "{what}");
                    assert!(jit_out.starts_with("Return value: "), "{what}: {jit_out}");
                    agreed += 1;
                }
                (Some(1), Some(1)) => {
                    assert_eq!(
                        without_regions(&int_err),
                        jit_err,
                        "{what}: the engines stop differently"
                    );
                    faulted += 1;
                }
                other => panic!("{what}: exit codes {other:?}\n{jit_err}\n{int_err}"),
            }
        }
    }
    println!("{agreed} programs returned alike, {faulted} faulted alike");
    // 13 return and 3 fault today; losing them would make this vacuous.
    assert!(
        agreed >= 10 && faulted >= 1,
        "{agreed} ran, {faulted} faulted"
    );
}
