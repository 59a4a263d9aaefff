//! `bpfc verify` end to end: exit status, the rejection report (program,
//! instruction, source line, the kernel's words, branches), the log, JSON,
//! and usage and load errors.

mod common;

use common::{bpfc, raw, scratch_file as tmp, verifier_corpus as corpus};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn accepted_exits_zero() {
    let p = raw("ok", "mov %r0, 0\nexit\n");
    let out = bpfc(&["verify", &p]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    assert!(
        s.contains("program verify-ok (socket_filter): accepted"),
        "{s}"
    );
}

#[test]
fn rejection_names_instruction_reason_and_branches() {
    let p = raw(
        "bad",
        "ldxw %r2, [%r1]\njgt %r2, 5, big\nmov %r0, 0\nexit\nbig:\nldxdw %r0, [%r2]\nexit\n",
    );
    let out = bpfc(&["verify", &p]);
    assert_eq!(out.status.code(), Some(1));
    let s = text(&out.stdout);
    assert!(
        s.contains("rejected at instruction 4: (79) r0 = *(u64 *)(r2 +0)"),
        "{s}"
    );
    assert!(s.contains("R2 invalid mem access 'scalar'"), "{s}");
    assert!(s.contains("branches taken: 1->4"), "{s}");
    let log = bpfc(&["verify", &p, "--log-level", "1"]);
    let l = text(&log.stdout);
    assert!(l.contains("0: (61) r2 = *(u32 *)(r1 +0)"), "{l}");
    assert!(l.contains("4: (79) r0 = *(u64 *)(r2 +0)"), "{l}");
}

#[test]
fn source_line_and_json_from_an_object() {
    let obj = corpus("verifier_and.o");
    let out = bpfc(&["verify", &obj, "--program", "invalid_range_check"]);
    assert_eq!(out.status.code(), Some(1));
    let s = text(&out.stdout);
    assert!(s.contains("verifier_and.c:58"), "{s}");
    assert!(
        s.contains("invalid access to map value, value_size=48 off=268435456 size=4"),
        "{s}"
    );
    let j = bpfc(&["verify", &obj, "--program", "invalid_range_check", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&j.stdout).unwrap();
    assert_eq!(v["verdict"], "rejected");
    assert_eq!(v["pc"], 19);
    assert_eq!(v["source"]["line"], 58);
    let ok = bpfc(&["verify", &obj, "--program", "known_subreg_with_unknown_reg"]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stdout));
}

#[test]
fn program_type_from_flag() {
    // Reading __sk_buff->data (offset 76) is a socket filter error but fine for tc.
    let p = raw("ctx", "ldxw %r2, [%r1+76]\nmov %r0, 0\nexit\n");
    let sf = bpfc(&["verify", &p]);
    assert_eq!(sf.status.code(), Some(1));
    assert!(text(&sf.stdout).contains("invalid bpf_context access off=76 size=4"));
    let tc = bpfc(&["verify", &p, "--type", "sched_cls"]);
    assert_eq!(tc.status.code(), Some(0), "{}", text(&tc.stdout));
}

#[test]
fn usage_and_load_errors_exit_two() {
    let p = raw("u", "mov %r0, 0\nexit\n");
    let bad_type = bpfc(&["verify", &p, "--type", "nonsense"]);
    assert_eq!(bad_type.status.code(), Some(2));
    assert!(text(&bad_type.stderr).contains("--type nonsense"));
    let lsm = bpfc(&["verify", &p, "--type", "lsm"]);
    assert_eq!(lsm.status.code(), Some(2));
    assert!(text(&lsm.stderr).contains("does not model program type lsm"));
    let missing = bpfc(&["verify", "/nonexistent/prog.o"]);
    assert_eq!(missing.status.code(), Some(2));
    let junk = tmp("junk", &[1, 2, 3]);
    let j = bpfc(&["verify", &junk]);
    assert_eq!(j.status.code(), Some(2));
    assert_eq!(text(&j.stderr).lines().count(), 1);
    let level = bpfc(&["verify", &p, "--log-level", "7"]);
    assert_eq!(level.status.code(), Some(2));
}
