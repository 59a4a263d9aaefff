//! `bpfc compile`, `bpfc targets` and `bpfc dump --asm` end to end: objects
//! written for each target, native listings grouped by eBPF instruction,
//! one-line errors for bad targets and malformed input.

use std::path::PathBuf;
use std::process::{Command, Output};

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli has a parent")
        .to_path_buf()
}

fn tmp(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("compile-{name}"))
}

fn bpfc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bpfc"))
        .args(args)
        .output()
        .expect("bpfc runs")
}

/// `mov r0, 42; exit`
const PROG: [u8; 16] = [0xb7, 0, 0, 0, 42, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];

#[test]
fn targets_lists_seven_triples() {
    let out = bpfc(&["targets"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 7, "{text}");
    assert!(text
        .lines()
        .any(|l| l.split_whitespace().next() == Some("s390x-unknown-linux-gnu")));
}

#[test]
fn compile_writes_an_object_per_target() {
    let input = tmp("prog.bin");
    std::fs::write(&input, PROG).unwrap();
    for (target, magic) in [
        ("x86_64-unknown-linux-gnu", &[0x7f, b'E', b'L', b'F'][..]),
        ("s390x-unknown-linux-gnu", &[0x7f, b'E', b'L', b'F'][..]),
        ("aarch64-apple-darwin", &[0xcf, 0xfa, 0xed, 0xfe][..]),
        ("x86_64-pc-windows-msvc", &[0x64, 0x86][..]),
    ] {
        let out_path = tmp(&format!("{target}.o"));
        let out = bpfc(&[
            "compile",
            input.to_str().unwrap(),
            "--target",
            target,
            "-o",
            out_path.to_str().unwrap(),
            "--opt-level",
            "none",
            "--checked",
            "--symbol",
            "prog",
        ]);
        assert!(
            out.status.success(),
            "{target}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes = std::fs::read(&out_path).unwrap();
        assert!(bytes.starts_with(magic), "{target}: bad magic");
    }
}

#[test]
fn bad_target_and_bad_input_are_one_line_errors() {
    let input = tmp("odd.bin");
    std::fs::write(&input, [0xb7, 0, 0]).unwrap();
    let good = tmp("good.bin");
    std::fs::write(&good, PROG).unwrap();
    let o = tmp("never.o");
    for args in [
        vec![
            "compile",
            good.to_str().unwrap(),
            "--target",
            "mips-unknown-linux-gnu",
            "-o",
            o.to_str().unwrap(),
        ],
        vec![
            "compile",
            input.to_str().unwrap(),
            "--target",
            "x86_64-unknown-linux-gnu",
            "-o",
            o.to_str().unwrap(),
        ],
    ] {
        let out = bpfc(&args);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with("bpfc: error: "), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}

#[test]
fn dump_asm_groups_native_code_by_ebpf_instruction() {
    let prog = workspace_root().join("testsuite/examples/primes.bin");
    let prog = prog.to_str().unwrap();
    // A mnemonic each target's code must contain for primes' loop.
    for (target, mnemonic) in [
        ("x86_64-unknown-linux-gnu", "retq"),
        ("aarch64-unknown-linux-gnu", "ret"),
        ("riscv64gc-unknown-linux-gnu", "ret"),
        ("s390x-unknown-linux-gnu", "br"),
    ] {
        let out = bpfc(&["dump", prog, "--asm", "--target", target]);
        assert!(out.status.success(), "{target}: {out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        // primes' first instruction heads its own group, with the native
        // code lowered from it below.
        let head = text
            .lines()
            .position(|l| l.trim_start().starts_with("; ") && l.contains(": r"))
            .unwrap_or_else(|| panic!("{target}: no eBPF instruction header in\n{text}"));
        let next = text.lines().nth(head + 1).unwrap_or_default();
        assert!(
            next.trim_start()
                .split(':')
                .next()
                .unwrap_or("")
                .chars()
                .all(|c| c.is_ascii_hexdigit()),
            "{target}: header not followed by native code: {next:?}"
        );
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().nth(1) == Some(mnemonic)),
            "{target}: no `{mnemonic}` in\n{text}"
        );
    }
}

/// A program safe only for its object's `.rodata` value
/// (`testsuite/fixtures/host/rodata_bound.bpf.c`): verified and run as the
/// kernel loads it (the value known), refused by `bpfc compile`, whose
/// code a host may run with any value, and by `bpfc run` with a value
/// that makes it unsafe.
#[test]
fn compile_verifies_for_any_rodata_a_host_may_set() {
    let obj = workspace_root().join("testsuite/fixtures/host/rodata_bound.bpf.o");
    let obj = obj.to_str().unwrap();
    let verify = bpfc(&["verify", obj]);
    assert!(verify.status.success(), "{verify:?}");
    let out = tmp("rodata-bound.o");
    let out = out.to_str().unwrap();
    let compiled = bpfc(&["compile", obj, "-o", out]);
    let err = String::from_utf8_lossy(&compiled.stderr);
    assert_eq!(compiled.status.code(), Some(1), "{err}");
    assert!(
        err.contains("program peek (syscall): rejected") && err.contains(".rodata"),
        "{err}"
    );
    // Unverified, it compiles (every access checked at run time).
    let unverified = bpfc(&["compile", obj, "--no-verify", "-o", out]);
    assert!(unverified.status.success(), "{unverified:?}");
    // bpfc run verifies with the .rodata it runs with.
    let ctx = tmp("rodata-bound.ctx");
    std::fs::write(&ctx, [2, 0, 0, 0, 0, 0, 0, 0]).unwrap();
    let ctx = ctx.to_str().unwrap();
    let run = bpfc(&["run", obj, "--ctx-in", ctx]);
    assert!(
        String::from_utf8_lossy(&run.stdout).starts_with("Return value: 3,"),
        "{run:?}"
    );
    let maps = tmp("rodata-bound.json");
    std::fs::write(
        &maps,
        r#"{".rodata":[{"key":[0,0,0,0],"value":[160,134,1,0]}]}"#,
    )
    .unwrap();
    let tuned = bpfc(&[
        "run",
        obj,
        "--ctx-in",
        ctx,
        "--maps-in",
        maps.to_str().unwrap(),
    ]);
    assert_eq!(tuned.status.code(), Some(1), "{tuned:?}");
    assert!(
        String::from_utf8_lossy(&tuned.stderr).contains("rejected"),
        "{tuned:?}"
    );
}

/// `r0 = *(u64 *)(r1 + off); exit`
fn ctx_load(off: u16) -> Vec<u8> {
    let [lo, hi] = off.to_le_bytes();
    vec![0x79, 0x10, lo, hi, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]
}

#[test]
fn kprobe_registers_are_the_targets_pt_regs() {
    // Each target's bpf_user_pt_regs_t: its last u64 is readable, the
    // u64 after it is not.
    for (target, size) in [
        ("x86_64-unknown-linux-gnu", 168u16),
        ("aarch64-unknown-linux-gnu", 272),
        ("riscv64gc-unknown-linux-gnu", 256),
        ("s390x-unknown-linux-gnu", 152),
    ] {
        for (off, ok) in [(size - 8, true), (size, false), (168, size > 168)] {
            let input = tmp(&format!("kprobe-{off}.bin"));
            std::fs::write(&input, ctx_load(off)).unwrap();
            let o = tmp(&format!("kprobe-{target}-{off}.o"));
            let out = bpfc(&[
                "compile",
                input.to_str().unwrap(),
                "--type",
                "kprobe",
                "--target",
                target,
                "-o",
                o.to_str().unwrap(),
            ]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.success(), ok, "{target} off {off}: {err}");
            if !ok {
                assert!(
                    err.contains(&format!("invalid bpf_context access off={off} size=8")),
                    "{target} off {off}: {err}"
                );
            }
        }
    }
}

#[test]
fn raw_packet_loads_name_the_programs_and_path_that_can_make_them() {
    // r6 = r1; r0 = ldabsb [12]; exit
    let prog = [
        0xbf, 0x16, 0, 0, 0, 0, 0, 0, 0x30, 0, 0, 0, 12, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0,
    ];
    let input = tmp("ldabs.bin");
    std::fs::write(&input, prog).unwrap();
    let o = tmp("ldabs.o");
    for ty in [None, Some("socket_filter"), Some("sched_cls")] {
        let mut args = vec![
            "compile",
            input.to_str().unwrap(),
            "--target",
            "x86_64-unknown-linux-gnu",
            "-o",
            o.to_str().unwrap(),
        ];
        if let Some(t) = ty {
            args.extend(["--type", t]);
        }
        let out = bpfc(&args);
        assert_eq!(out.status.code(), Some(1), "{ty:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        for words in [
            "compile-ldabs.bin: program compile-ldabs instruction 1:",
            "socket filter and tc (sched_cls, sched_act)",
            "ELF object",
        ] {
            assert!(err.contains(words), "{ty:?}: {err}");
        }
    }
    // The path it names runs the file on packets.
    let pcap = workspace_root().join("testsuite/fixtures/net/sample.pcap");
    let out = bpfc(&[
        "run",
        input.to_str().unwrap(),
        "--type",
        "socket_filter",
        "--pcap",
        pcap.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("packets"), "{text}");
}
