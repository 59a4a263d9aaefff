//! `bpfc asm` and `bpfc disasm` end to end: bad input gives exit status 1 and
//! a one-line message naming the location, a usage error status 2; good
//! input round-trips; helper calls are named in every syntax.

use std::path::PathBuf;
use std::process::{Command, Output};

fn bpfc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bpfc"))
        .args(args)
        .output()
        .expect("run bpfc")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bpfc-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

fn one_line_error(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    err.trim_end().to_string()
}

#[test]
fn asm_garbage_reports_file_line_column() {
    let src = tmp("garbage.s");
    std::fs::write(&src, "mov %r0, 1\n\n  fooo %r1, 2\nexit\n").unwrap();
    let out_path = tmp("garbage.bin");
    let s = src.to_str().unwrap();
    let out = bpfc(&["asm", s, "-o", out_path.to_str().unwrap()]);
    let err = one_line_error(&out);
    assert_eq!(
        err,
        format!("bpfc: error: {s}:3:3: unknown mnemonic 'fooo'")
    );
    assert!(!out_path.exists(), "no output on error");

    std::fs::write(&src, "mov %r12, 1\n").unwrap();
    let err = one_line_error(&bpfc(&["asm", s, "-o", out_path.to_str().unwrap()]));
    assert!(
        err.contains(&format!("{s}:1:5: invalid register '%r12'")),
        "{err}"
    );

    std::fs::write(&src, b"\xff\xfe\x00garbage").unwrap();
    let err = one_line_error(&bpfc(&["asm", s, "-o", out_path.to_str().unwrap()]));
    assert_eq!(
        err,
        format!("bpfc: error: {s}:1:1: invalid UTF-8 (byte 0xff)")
    );

    std::fs::write(&src, b"mov %r0, 1\n# caf\xc3\xa9 \xe9\nexit\n").unwrap();
    let err = one_line_error(&bpfc(&["asm", s, "-o", out_path.to_str().unwrap()]));
    assert_eq!(
        err,
        format!("bpfc: error: {s}:2:8: invalid UTF-8 (byte 0xe9)")
    );
    assert!(!out_path.exists(), "no output on error");
}

#[test]
fn asm_validates_unless_told_not_to() {
    let src = tmp("invalid.s");
    let s = src.to_str().unwrap();
    let out_path = tmp("invalid.bin");
    let o = out_path.to_str().unwrap();
    let cases: [(&str, &str); 6] = [
        (
            "mov %r0, 0\n  ja +5\nexit\n",
            "2:3: instruction 1: jump to 7 is out of range (program has 3 slots)",
        ),
        (
            "mov %r0, 0\nlddw %r1, 1\n mov %r10, 1\nexit\n",
            "3:2: instruction 3: writes r10, the read-only frame pointer",
        ),
        (
            "mov %r0, 0\nlddw %r1, 7\n",
            "2:1: instruction 1: last instruction can fall off the end of the program",
        ),
        (
            "jeq %r1, 0, +1\nlddw %r0, 1\nexit\n",
            "1:1: instruction 0: jump into the middle of the lddw at 1",
        ),
        (
            "call local -3\nexit\n",
            "1:1: instruction 0: local call to -2 is out of range (program has 2 slots)",
        ),
        ("# nothing here\nlabel:\n", "program is empty"),
    ];
    for (text, want) in cases {
        std::fs::write(&src, text).unwrap();
        let _ = std::fs::remove_file(&out_path);
        let err = one_line_error(&bpfc(&["asm", s, "-o", o]));
        let sep = if want.starts_with(char::is_numeric) {
            ":"
        } else {
            ": "
        };
        assert_eq!(err, format!("bpfc: error: {s}{sep}{want}"), "{text:?}");
        assert!(!out_path.exists(), "no output for an invalid program");

        // --no-validate writes the bytes as written, and they decode to what
        // was assembled.
        let out = bpfc(&["asm", s, "-o", o, "--no-validate"]);
        assert!(out.status.success(), "{text:?}: {out:?}");
        let written = std::fs::read(&out_path).unwrap();
        let insns = bpfc_compiler::asm::assemble(text).unwrap();
        assert_eq!(
            written,
            bpfc_compiler::isa::encode_program(&insns, bpfc_compiler::isa::Endian::Little)
        );
        // ... and every other command rejects them with the same message.
        if !written.is_empty() {
            let err = one_line_error(&bpfc(&["run", o, "--engine", "interp"]));
            let message = want.split_once(": ").map_or(want, |(_, m)| m);
            assert!(err.ends_with(message), "{err} vs {message}");
        }
    }
}

#[test]
fn disasm_truncated_file_names_file_and_instruction() {
    let bin = tmp("truncated.bin");
    // One whole `mov r0, 1` and 4 bytes of the next instruction.
    std::fs::write(&bin, [0xb7, 0, 0, 0, 1, 0, 0, 0, 0x95, 0, 0, 0]).unwrap();
    let b = bin.to_str().unwrap();
    let err = one_line_error(&bpfc(&["disasm", b]));
    assert!(err.starts_with(&format!("bpfc: error: {b}: ")), "{err}");
    assert!(err.contains("instruction 1"), "{err}");

    std::fs::write(&bin, [0xb7, 0, 0, 0, 1, 0, 0, 0, 0xff, 0, 0, 0, 0, 0, 0, 0]).unwrap();
    let err = one_line_error(&bpfc(&["disasm", b, "--syntax", "conformance"]));
    assert!(err.contains("instruction 1: unknown opcode 0xff"), "{err}");

    let err = one_line_error(&bpfc(&["disasm", "/nonexistent/bpfc-test-file"]));
    assert!(err.contains("/nonexistent/bpfc-test-file"), "{err}");
}

#[test]
fn asm_then_disasm_roundtrips() {
    let src = tmp("good.s");
    let text =
        "mov %r0, 1\nlddw %r1, 0x1122334455667788\njeq %r1, 5, +1\nldxw %r0, [%r1-4]\nexit\n";
    std::fs::write(&src, text).unwrap();
    let bin = tmp("good.bin");
    let out = bpfc(&["asm", src.to_str().unwrap(), "-o", bin.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::metadata(&bin).unwrap().len(), 6 * 8);

    let out = bpfc(&["disasm", bin.to_str().unwrap(), "--syntax", "conformance"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), text);

    let out = bpfc(&["disasm", bin.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "    0: r0 = 0x1\n    1: r1 = 0x1122334455667788 ll\n    3: if r1 == 0x5 goto +0x1\n    \
         4: r0 = *(u32 *)(r1 - 0x4)\n    5: exit\n"
    );

    // As bpftool prints a loaded program.
    let out = bpfc(&["disasm", bin.to_str().unwrap(), "--syntax", "kernel"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "   0: (b7) r0 = 1\n   1: (18) r1 = 0x1122334455667788\n   3: (15) if r1 == 0x5 goto pc+1\n   \
         4: (61) r0 = *(u32 *)(r1 -4)\n   5: (95) exit\n"
    );
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testsuite/fixtures/elf")
        .join(name)
}

#[test]
fn disasm_of_an_object_lists_its_linked_programs() {
    use bpfc_compiler::loader::{load, LoadOptions};
    for name in ["calls.o", "maps.o", "bigendian.o"] {
        let path = fixture(name);
        let p = path.to_str().unwrap();
        let obj = load(&std::fs::read(&path).unwrap(), &LoadOptions::default()).unwrap();
        assert!(!obj.programs.is_empty(), "{name}");
        for prog in &obj.programs {
            // One program's conformance listing assembles back to exactly
            // the instructions the loader linked.
            let out = bpfc(&[
                "disasm",
                p,
                "--program",
                &prog.name,
                "--syntax",
                "conformance",
            ]);
            assert!(out.status.success(), "{name} {}: {out:?}", prog.name);
            let text = String::from_utf8(out.stdout).unwrap();
            assert!(
                text.starts_with(&format!("# {} (section {}):\n", prog.name, prog.section)),
                "{text}"
            );
            let again = bpfc_compiler::asm::assemble(&text)
                .unwrap_or_else(|e| panic!("{name} {}: {e}\n{text}", prog.name));
            assert_eq!(again, prog.insns, "{name} {}", prog.name);
        }
        // Without --program: every program, each under its header, and a
        // label where each function starts.
        let out = bpfc(&["disasm", p]);
        assert!(out.status.success(), "{name}: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        for prog in &obj.programs {
            assert!(
                text.contains(&format!("{} (section {}):\n", prog.name, prog.section)),
                "{name}: {text}"
            );
            for f in &prog.functions {
                assert!(text.contains(&format!("<{}>:\n", f.name)), "{name}: {text}");
            }
        }
        let listed = text
            .lines()
            .filter(|l| l.contains(": ") && !l.ends_with(':'))
            .count();
        let slots: usize = obj
            .programs
            .iter()
            .map(|p| p.insns.iter().filter(|i| i.slots() > 0).count())
            .sum();
        assert_eq!(listed, slots, "{name}: one line per instruction\n{text}");
    }
}

#[test]
fn disasm_of_an_object_names_a_missing_program() {
    let path = fixture("calls.o");
    let p = path.to_str().unwrap();
    let err = one_line_error(&bpfc(&["disasm", p, "--program", "no_such_prog"]));
    assert!(err.starts_with(&format!("bpfc: error: {p}: ")), "{err}");
    assert!(err.contains("no_such_prog"), "{err}");
    let bin = tmp("raw-with-program.bin");
    std::fs::write(&bin, [0x95, 0, 0, 0, 0, 0, 0, 0]).unwrap();
    let err = one_line_error(&bpfc(&["disasm", bin.to_str().unwrap(), "--program", "x"]));
    assert!(err.contains("apply to ELF objects"), "{err}");
}

#[test]
fn usage_errors_exit_2_and_failures_exit_1() {
    let src = tmp("status.s");
    std::fs::write(&src, "mov %r0, 0\nexit\n").unwrap();
    let s = src.to_str().unwrap();
    let bin = tmp("status.bin");
    let o = bin.to_str().unwrap();
    // Usage errors, as clap reports them: status 2, nothing on stdout, a
    // message naming what is wrong on stderr.
    for (args, what) in [
        (vec!["asm", s], "--output"),
        (vec!["disasm", "--no-such-flag", s], "--no-such-flag"),
        (vec!["disasm", s, "--syntax", "intel"], "intel"),
        (vec!["frobnicate"], "frobnicate"),
    ] {
        let out = bpfc(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(what), "{args:?}: {err}");
    }
    // Failures of the command itself: status 1 and one `bpfc: error:` line.
    let err = one_line_error(&bpfc(&["asm", "/nonexistent/status.s", "-o", o]));
    assert!(
        err.starts_with("bpfc: error: /nonexistent/status.s"),
        "{err}"
    );
    let err = one_line_error(&bpfc(&["asm", s, "-o", "/nonexistent/dir/status.bin"]));
    assert!(err.contains("/nonexistent/dir/status.bin"), "{err}");
    // Success.
    let out = bpfc(&["asm", s, "-o", o]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // Every `--help` says so.
    for args in [
        vec!["--help"],
        vec!["asm", "--help"],
        vec!["disasm", "--help"],
        vec!["dump", "--help"],
        vec!["run", "--help"],
        vec!["compile", "--help"],
        vec!["targets", "--help"],
    ] {
        let out = bpfc(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("Exit status: 0 on success; 1 when the command fails")
                && help.contains("2 for a usage error"),
            "{args:?}: {help}"
        );
    }
}

#[test]
fn disasm_help_says_it_reads_elf_objects() {
    let out = bpfc(&["disasm", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.starts_with("Disassemble raw instructions, or the programs of an ELF object\n"),
        "{help}"
    );
    let out = bpfc(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("or the programs of an ELF object"), "{help}");
}

#[test]
fn disasm_names_helper_calls_in_every_syntax() {
    use bpfc_compiler::isa::{encode_program, CallTarget, Endian, Insn};
    let insns = [
        Insn::Call(CallTarget::Helper(1)),
        Insn::Call(CallTarget::Helper(181)),
        Insn::Call(CallTarget::Helper(999)),
        Insn::Exit,
    ];
    let bin = tmp("helpers.bin");
    std::fs::write(&bin, encode_program(&insns, Endian::Little)).unwrap();
    let b = bin.to_str().unwrap();
    for (syntax, want) in [
        (
            "llvm",
            "    0: call 0x1 # bpf_map_lookup_elem\n    1: call 0xb5 # bpf_loop\n    \
             2: call 0x3e7\n    3: exit\n",
        ),
        (
            "conformance",
            "call 1 # bpf_map_lookup_elem\ncall 181 # bpf_loop\ncall 999\nexit\n",
        ),
        (
            "kernel",
            "   0: (85) call bpf_map_lookup_elem#1\n   1: (85) call bpf_loop#181\n   \
             2: (85) call unknown#999\n   3: (95) exit\n",
        ),
    ] {
        let out = bpfc(&["disasm", b, "--syntax", syntax]);
        assert!(out.status.success(), "{syntax}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), want, "{syntax}");
    }

    // An object's listing: one named line per helper call the loader kept.
    use bpfc_compiler::loader::{load, LoadOptions};
    let path = fixture("maps.o");
    let p = path.to_str().unwrap();
    let obj = load(&std::fs::read(&path).unwrap(), &LoadOptions::default()).unwrap();
    let calls: Vec<i32> = obj
        .programs
        .iter()
        .flat_map(|prog| &prog.insns)
        .filter_map(|i| match i {
            Insn::Call(CallTarget::Helper(id)) => Some(*id),
            _ => None,
        })
        .collect();
    assert!(calls.len() > 3, "maps.o calls {} helpers", calls.len());
    let named = |args: &[&str], pattern: &dyn Fn(i32, &str) -> String| {
        let out = bpfc(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| l.contains("call")).collect();
        assert_eq!(lines.len(), calls.len(), "{args:?}\n{text}");
        for (line, &id) in lines.iter().zip(&calls) {
            let name = bpfc_runtime::helpers::kernel_name(id.into()).expect("a kernel helper");
            let want = pattern(id, &format!("bpf_{name}"));
            assert!(line.ends_with(&want), "{args:?}: {line:?}, want {want:?}");
        }
    };
    named(&["disasm", p], &|id, n| format!("call {id:#x} # {n}"));
    named(&["disasm", p, "--syntax", "conformance"], &|id, n| {
        format!("call {id} # {n}")
    });
    named(&["disasm", p, "--syntax", "kernel"], &|id, n| {
        format!("call {n}#{id}")
    });
    named(&["dump", p], &|id, n| format!("call {id:#x} # {n}"));
}
