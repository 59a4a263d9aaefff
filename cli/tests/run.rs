//! `bpfc run` end to end: output format, JSON, input memory and the one-line
//! errors for faulting and malformed programs.

use bpfc_compiler::isa::{encode_program, AluOp, Endian, Insn, Reg, Size, Src, Width};
use std::path::PathBuf;
use std::process::{Command, Output};

fn tmp(name: &str, bytes: &[u8]) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("run-{name}"));
    std::fs::write(&path, bytes).unwrap();
    path
}

fn bpfc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bpfc"))
        .args(args)
        .output()
        .expect("bpfc runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn mov(dst: Reg, imm: i32) -> Insn {
    Insn::Alu {
        width: Width::W64,
        op: AluOp::Mov,
        dst,
        src: Src::Imm(imm),
    }
}

fn program(name: &str, insns: &[Insn]) -> PathBuf {
    tmp(name, &encode_program(insns, Endian::Little))
}

/// Assert a failed run: exit 1, empty stdout, one stderr line starting `prefix`.
fn assert_error(out: &Output, prefix: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
    assert!(
        err.starts_with(prefix),
        "expected {prefix:?}..., got {err:?}"
    );
}

#[test]
fn prints_the_return_value_like_bpftool() {
    let p = program("ok", &[mov(Reg::R0, 42), Insn::Exit]);
    let out = bpfc(&["run", p.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let rest = stdout
        .strip_prefix("Return value: 42, duration: ")
        .unwrap_or_else(|| panic!("unexpected output {stdout:?}"));
    let ns = rest.strip_suffix("ns\n").expect("ends with ns");
    ns.parse::<u64>().expect("duration is a number");
}

#[test]
fn json_output() {
    let p = program("json", &[mov(Reg::R0, -1), Insn::Exit]);
    let out = bpfc(&["run", "--json", "--engine", "interp", p.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    // retval is the low 32 bits as with BPF_PROG_TEST_RUN; r0 is the whole register.
    assert_eq!(v["retval"], 4294967295u64);
    assert_eq!(v["r0"], u64::MAX);
    assert_eq!(v["engine"], "interp");
    assert!(v["duration"].is_u64());
}

#[test]
fn input_memory() {
    // r0 = r2 (length) + *(u8 *)(r1 + 2)
    let insns = [
        Insn::Ldx {
            size: Size::B,
            sx: false,
            dst: Reg::R0,
            src: Reg::R1,
            off: 2,
        },
        Insn::Alu {
            width: Width::W64,
            op: AluOp::Add,
            dst: Reg::R0,
            src: Src::Reg(Reg::R2),
        },
        Insn::Exit,
    ];
    let p = program("mem-prog", &insns);
    let m = tmp("mem-data", &[1, 2, 30, 4]);
    let out = bpfc(&[
        "run",
        "--json",
        p.to_str().unwrap(),
        "--mem",
        m.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["retval"], 34);
    // Without --mem the same load faults, in either engine.
    let out = bpfc(&["run", "--engine", "interp", p.to_str().unwrap()]);
    let file = p.display().to_string();
    assert_error(
        &out,
        &format!(
            "bpfc: error: {file}: instruction 0: out-of-bounds memory access: 1-byte load at 0x2"
        ),
    );
    let out = bpfc(&["run", p.to_str().unwrap()]);
    assert_error(
        &out,
        &format!(
            "bpfc: error: {file}: instruction 0: out-of-bounds memory access: 1-byte load at 0x2\n"
        ),
    );
}

#[test]
fn out_of_bounds_program() {
    let insns = [
        mov(Reg::R0, 0),
        Insn::Stx {
            size: Size::DW,
            dst: Reg::FP,
            src: Reg::R0,
            off: 0,
        },
        Insn::Exit,
    ];
    let p = program("oob", &insns);
    let out = bpfc(&["run", "--engine", "interp", p.to_str().unwrap()]);
    let file = p.display().to_string();
    assert_error(
        &out,
        &format!(
            "bpfc: error: {file}: instruction 1: out-of-bounds memory access: 8-byte store at 0x"
        ),
    );
    assert!(text(&out.stderr).contains("(stack is 0x"));
    // The JIT checks by default: the same store stops the run, the host
    // survives, and the message reads as the interpreter's.
    let out = bpfc(&["run", p.to_str().unwrap()]);
    assert_error(
        &out,
        &format!(
            "bpfc: error: {file}: instruction 1: out-of-bounds memory access: 8-byte store at 0x"
        ),
    );
}

#[test]
fn truncated_file() {
    let mut bytes = encode_program(&[mov(Reg::R0, 1), Insn::Exit], Endian::Little);
    bytes.truncate(12);
    let p = tmp("truncated", &bytes);
    let out = bpfc(&["run", p.to_str().unwrap()]);
    let file = p.display().to_string();
    assert_error(
        &out,
        &format!("bpfc: error: {file}: program length 12 is not a multiple of 8 bytes"),
    );
}

#[test]
fn unknown_opcode() {
    let mut bytes = encode_program(&[mov(Reg::R0, 1), Insn::Exit], Endian::Little);
    bytes[8] = 0xff;
    let p = tmp("badop", &bytes);
    let out = bpfc(&["run", p.to_str().unwrap()]);
    let file = p.display().to_string();
    assert_error(
        &out,
        &format!("bpfc: error: {file}: instruction 1: unknown opcode 0xff"),
    );
}

#[test]
fn instruction_budget() {
    let p = program(
        "loop",
        &[
            mov(Reg::R0, 0),
            Insn::Ja {
                off: -1,
                long: false,
            },
            Insn::Exit,
        ],
    );
    let file = p.display().to_string();
    let ok = program("counted", &[mov(Reg::R0, 3), Insn::Exit]);
    let ok_file = ok.display().to_string();
    for engine in ["interp", "jit"] {
        let run = |n: &str, path: &std::path::Path| {
            bpfc(&[
                "run",
                "--engine",
                engine,
                "--max-insns",
                n,
                path.to_str().unwrap(),
            ])
        };
        assert_error(
            &run("1000", &p),
            &format!(
                "bpfc: error: {file}: instruction 1: instruction limit of 1000 reached \
                 (--max-insns N sets the limit, 0 removes it)"
            ),
        );
        // 0 is no limit; a terminating program needs no more than it executes.
        for n in ["0", "2"] {
            let out = run(n, &ok);
            assert!(
                out.status.success(),
                "{engine} --max-insns {n}: {}",
                text(&out.stderr)
            );
            assert!(text(&out.stdout).starts_with("Return value: 3,"));
        }
        // Interpreted code stops at the second instruction, JIT code at the
        // start of the block that no longer fits.
        let pc = if engine == "interp" { 1 } else { 0 };
        assert_error(
            &run("1", &ok),
            &format!("bpfc: error: {ok_file}: instruction {pc}: instruction limit of 1 reached"),
        );
    }
}

#[test]
fn both_jit_tiers_run_and_opt_level_is_for_the_jit() {
    let p = program("tiers.bin", &[mov(Reg::R0, 7), Insn::Exit]);
    for level in ["none", "speed"] {
        let out = bpfc(&["run", p.to_str().unwrap(), "--opt-level", level]);
        assert!(out.status.success(), "{level}: {out:?}");
        assert!(text(&out.stdout).starts_with("Return value: 7,"), "{level}");
    }
    let out = bpfc(&[
        "run",
        p.to_str().unwrap(),
        "--engine",
        "interp",
        "--opt-level",
        "none",
    ]);
    assert_error(
        &out,
        "bpfc: error: --opt-level chooses how the JIT compiles",
    );
}

/// Without `--max-insns` both engines stop a runaway loop at 2^32
/// instructions (JIT code in a few seconds).
#[test]
fn default_budget_stops_a_jit_loop() {
    let p = program(
        "forever",
        &[
            Insn::Ja {
                off: -1,
                long: false,
            },
            Insn::Exit,
        ],
    );
    let out = bpfc(&["run", p.to_str().unwrap()]);
    assert_error(
        &out,
        &format!(
            "bpfc: error: {}: instruction 0: instruction limit of 4294967296 reached",
            p.display()
        ),
    );
}

#[test]
fn missing_file_and_bad_engine() {
    let out = bpfc(&["run", "/nonexistent/prog.bin"]);
    assert_error(&out, "bpfc: error: /nonexistent/prog.bin: ");
    let p = program("engine", &[mov(Reg::R0, 1), Insn::Exit]);
    let out = bpfc(&["run", "--engine", "warp", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "clap usage error");
}

/// As the kernel's test run, a context smaller than the verified program
/// accesses is refused before the run (examples/c-host/counter.bpf.o reads
/// 8 bytes), with either engine and checked or not; 8 bytes run.
#[test]
fn context_smaller_than_the_program_accesses_is_refused() {
    let obj = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/c-host/counter.bpf.o");
    let obj = obj.to_str().unwrap();
    let small = tmp("ctx-small", &[1, 0, 0, 0]);
    let small = small.to_str().unwrap();
    for extra in [&[][..], &["--unchecked"], &["--engine", "interp"]] {
        let mut args = vec!["run", obj, "--ctx-in", small];
        args.extend_from_slice(extra);
        let out = bpfc(&args);
        assert_error(
            &out,
            &format!(
                "bpfc: error: {obj}: program count accesses 8 bytes of its context; --ctx-in gives 4"
            ),
        );
    }
    let full = tmp("ctx-full", &[1, 0, 0, 0, 1, 0, 0, 0]);
    let out = bpfc(&["run", obj, "--ctx-in", full.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("Return value: 1,"));
}
