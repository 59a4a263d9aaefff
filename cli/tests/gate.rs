//! The verifier in front of `bpfc run` and `bpfc compile`: a rejected
//! program is refused with the verifier's report (exit 1), `--no-verify`
//! runs it with every access checked, raw instructions are verified as
//! `--type` or, without it, as socket_filter with checked mode as the
//! fallback, and `--unchecked` needs a verified program or `--no-verify`.

mod common;

use common::{
    bpfc, raw, scratch_file as tmp, stderr as err, stdout as out, verifier_corpus as corpus,
};
use std::path::PathBuf;

#[test]
fn run_refuses_a_rejected_object_program_with_the_report() {
    let obj = corpus("verifier_and.o");
    for engine in ["jit", "interp"] {
        let o = bpfc(&[
            "run",
            &obj,
            "--program",
            "invalid_range_check",
            "--engine",
            engine,
        ]);
        assert_eq!(o.status.code(), Some(1), "{engine}: {}", out(&o));
        let e = err(&o);
        for part in [
            "program invalid_range_check (",
            "rejected at instruction 19: ",
            "verifier_and.c:58",
            "invalid access to map value, value_size=48 off=268435456 size=4",
            "--no-verify",
        ] {
            assert!(e.contains(part), "{engine}: {e:?} lacks {part:?}");
        }
    }
    // The same report `bpfc verify` prints.
    let v = out(&bpfc(&["verify", &obj, "--program", "invalid_range_check"]));
    let e = err(&bpfc(&["run", &obj, "--program", "invalid_range_check"]));
    let report = v.split_once(": program ").unwrap().1;
    assert!(e.contains(report.trim_end()), "{e:?} lacks {report:?}");
}

#[test]
fn raw_programs_verify_as_their_type_or_fall_back_to_checked_mode() {
    // A context read past every context: socket_filter and xdp reject it.
    let oob = raw("oob", "ldxdw %r0, [%r1+4096]\nexit\n");
    let mem = tmp("mem8", &[0; 8]);
    let typed = bpfc(&["run", &oob, "--mem", &mem, "--type", "xdp"]);
    assert_eq!(typed.status.code(), Some(1));
    assert!(
        err(&typed).contains("program gate-oob (xdp): rejected at instruction 0"),
        "{}",
        err(&typed)
    );
    assert!(err(&typed).contains("invalid bpf_context access off=4096 size=8"));
    // Without a type: rejected as socket_filter, so it runs checked and
    // the access faults instead of reading the host's memory.
    for extra in [&[][..], &["--no-verify"][..]] {
        for engine in ["jit", "interp"] {
            let o = bpfc(&[&["run", &oob, "--mem", &mem, "--engine", engine], extra].concat());
            assert_eq!(o.status.code(), Some(1), "{engine} {extra:?}");
            assert!(
                err(&o).contains("instruction 0: out-of-bounds memory access"),
                "{engine} {extra:?}: {}",
                err(&o)
            );
        }
    }
    // Unchecked code of an unverified program only when asked for twice.
    let u = bpfc(&["run", &oob, "--mem", &mem, "--unchecked"]);
    assert_eq!(u.status.code(), Some(1));
    assert!(err(&u).contains("--unchecked: program gate-oob is not verified"));
    // A program the default type accepts runs verified, --unchecked too.
    let ok = raw("ok", "mov %r0, 7\nexit\n");
    let o = bpfc(&["run", &ok, "--unchecked"]);
    assert!(out(&o).starts_with("Return value: 7,"), "{}", err(&o));
}

#[test]
fn compile_refuses_rejected_programs_and_checks_unverified_ones() {
    let oob = raw("coob", "ldxdw %r0, [%r1+4096]\nexit\n");
    let o = tmp("c.o", b"");
    let typed = bpfc(&["compile", &oob, "--type", "socket_filter", "-o", &o]);
    assert_eq!(typed.status.code(), Some(1));
    assert!(err(&typed).contains("invalid bpf_context access off=4096 size=8"));
    // Without a type it compiles, checked: the code calls the runtime's
    // access check, which the unchecked code of a verified program does not.
    let _ = std::fs::remove_file(&o);
    let c = bpfc(&["compile", &oob, "-o", &o]);
    assert!(c.status.success(), "{}", err(&c));
    let checked = std::fs::read(&o).unwrap();
    let u = bpfc(&["compile", &oob, "--no-verify", "--unchecked", "-o", &o]);
    assert!(u.status.success(), "{}", err(&u));
    let unchecked = std::fs::read(&o).unwrap();
    let sym = b"bpfc_check_access";
    let has = |b: &[u8]| b.windows(sym.len()).any(|w| w == sym);
    assert!(has(&checked), "checked code does not import {sym:?}");
    assert!(!has(&unchecked), "unchecked code imports {sym:?}");
}

fn helpers_fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testsuite/fixtures/helpers")
        .join(name)
        .display()
        .to_string()
}

/// Cold blocks in checked code's IR: each unproven memory access has one
/// (its slow path), as has each helper call's fault exit.
fn cold_blocks(file: &str, extra: &[&str]) -> usize {
    let o = bpfc(&[&["dump", file, "--clif", "--checked"], extra].concat());
    assert!(o.status.success(), "{}", err(&o));
    out(&o).matches(" cold:").count()
}

#[test]
fn checked_code_drops_the_checks_the_verifier_proved() {
    // Stack only: every check goes.
    let st = raw(
        "stack",
        "mov %r0, 5\nstxdw [%r10-8], %r0\nldxdw %r0, [%r10-8]\nstw [%r10-16], 3\nexit\n",
    );
    assert_eq!(cold_blocks(&st, &[]), 0);
    assert_eq!(cold_blocks(&st, &["--no-verify"]), 3);
    // Atomics on map values after lookups, and the stack: fewer slow
    // paths (the context's reads stay checked), and the run (checked JIT
    // code both ways, unchecked code, the interpreter) leaves the same
    // result, context and maps.
    let obj = helpers_fixture("atomics.o");
    let proven = cold_blocks(&obj, &[]);
    let all = cold_blocks(&obj, &["--no-verify"]);
    assert!(
        proven < all,
        "verified {proven} slow paths, unverified {all}"
    );
    let ctx: Vec<u8> = (0..64u32).map(|i| (i * 37 + 11) as u8).collect();
    let ctx_in = tmp("atomics-ctx", &ctx);
    let mut results = Vec::new();
    for extra in [
        &[][..],
        &["--no-verify"][..],
        &["--unchecked"][..],
        &["--engine", "interp"][..],
    ] {
        let n = results.len();
        let maps_out = tmp(&format!("maps-out{n}"), b"");
        let ctx_out = tmp(&format!("ctx-out{n}"), b"");
        let o = bpfc(
            &[
                &[
                    "run",
                    &obj,
                    "--json",
                    "--ctx-in",
                    &ctx_in,
                    "--ctx-out",
                    &ctx_out,
                    "--maps-out",
                    &maps_out,
                ],
                extra,
            ]
            .concat(),
        );
        assert!(o.status.success(), "{extra:?}: {}", err(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        results.push((
            extra,
            v["r0"].clone(),
            std::fs::read(&ctx_out).unwrap(),
            std::fs::read_to_string(&maps_out).unwrap(),
        ));
    }
    assert_ne!(results[0].2, ctx, "the program wrote no result");
    for r in &results[1..] {
        assert_eq!(
            (&r.1, &r.2, &r.3),
            (&results[0].1, &results[0].2, &results[0].3),
            "{:?}",
            r.0
        );
    }
}
