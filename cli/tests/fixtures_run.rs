//! `bpfc run` on every ELF fixture program that needs no maps and no
//! helpers, once per engine: both print the same return value, or both stop
//! with the same message (but for the regions the interpreter allowed,
//! which only it knows).

use bpfc_compiler::isa::{CallTarget, Insn, LddwSrc};
use bpfc_compiler::loader::Object;
use bpfc_compiler::progtype::convert;
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

/// A frame for network programs, which run on a packet as the kernel's
/// test run does: Ethernet, IPv4, UDP and a few bytes.
fn frame_file() -> std::path::PathBuf {
    let mut f = vec![0xff; 6];
    f.extend([0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    f.extend([
        0x45, 0, 0, 32, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ]);
    f.extend([0x30, 0x39, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4]);
    let p = std::env::temp_dir().join(format!("bpfc-fixtures-run-{}.bin", std::process::id()));
    std::fs::write(&p, f).expect("temp file writable");
    p
}

fn run(file: &str, program: &str, engine: &str, packet: bool) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bpfc"));
    cmd.args(["run", file, "--program", program, "--engine", engine]);
    if packet {
        cmd.arg("--data-in").arg(frame_file());
    }
    cmd.output().expect("bpfc runs")
}

#[test]
fn both_engines_agree_on_every_self_contained_fixture_program() {
    let (mut agreed, mut faulted) = (0, 0);
    for path in elf_fixtures() {
        let file = path.to_str().expect("utf-8 path").to_string();
        let obj = Object::parse(&std::fs::read(&path).expect("fixture readable"))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        for prog in obj.programs.iter().filter(|p| self_contained(&p.insns)) {
            let packet = convert::net_setup(prog.kind.prog_type, &[], None).is_some();
            let jit = run(&file, &prog.name, "jit", packet);
            let interp = run(&file, &prog.name, "interp", packet);
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
