//! Self-test of the AOT harness: a hand-written C object implementing the
//! entry ABI is compiled per Linux target, linked with the driver and run
//! (natively or under qemu-user) through `link_and_run`.

use bpfc_testsuite::aot::{link_and_run, tool_available, AotRunError, AotTarget};
use bpfc_testsuite::skip;
use std::process::Command;

/// Compile the stand-in entry for `target` to object bytes.
fn standin_object(target: &AotTarget) -> Vec<u8> {
    let src = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("harness/standin_entry.c");
    let out_path = std::env::temp_dir().join(format!(
        "bpfc-standin-{}-{}.o",
        std::process::id(),
        target.triple
    ));
    let out = Command::new(target.cc)
        .args(["-O1", "-std=c99", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&out_path)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", target.cc));
    assert!(
        out.status.success(),
        "{} failed: {}",
        target.cc,
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&out_path).expect("read the stand-in object");
    let _ = std::fs::remove_file(&out_path);
    bytes
}

fn check_target(target: &AotTarget) {
    if let Err(why) = tool_available(target) {
        return skip(target.triple, &why);
    }
    let obj = standin_object(target);
    let sym = "standin_entry";

    // Empty input: r1 is NULL, r2 is 0, helper_5 returns its r1 (0).
    assert_eq!(
        link_and_run(target, &obj, sym, &[]).unwrap(),
        0,
        "{}",
        target.triple
    );

    // Bytes 1..=10: sum 55, length 10, helper_5(0x1000) = 0x1000.
    let mem: Vec<u8> = (1..=10).collect();
    assert_eq!(
        link_and_run(target, &obj, sym, &mem).unwrap(),
        55 + 10 + 0x1000,
        "{}",
        target.triple
    );

    // A large buffer exercises the driver's growing read.
    let big = vec![2u8; 10_000];
    assert_eq!(
        link_and_run(target, &obj, sym, &big).unwrap(),
        20_000 + 10_000 + 0x1000,
        "{}",
        target.triple
    );

    // Faults come back typed with code, pc and detail.
    match link_and_run(target, &obj, sym, &[0xff, 1, 2]) {
        Err(AotRunError::Fault {
            code: 2,
            pc: 3,
            detail: 0xd00d_0003,
        }) => {}
        other => panic!("{}: expected fault 2 at 3, got {other:?}", target.triple),
    }

    // An undefined entry symbol is a link error carrying the linker's message.
    match link_and_run(target, &obj, "no_such_symbol", &[]) {
        Err(AotRunError::Link { stderr, .. }) => {
            assert!(
                stderr.contains("no_such_symbol"),
                "{}: {stderr}",
                target.triple
            )
        }
        other => panic!("{}: expected a link error, got {other:?}", target.triple),
    }
    println!("{}: harness self-test passed", target.triple);
}

#[test]
fn x86_64() {
    check_target(&AotTarget::X86_64);
}

#[test]
fn aarch64() {
    check_target(&AotTarget::AARCH64);
}

#[test]
fn riscv64() {
    check_target(&AotTarget::RISCV64);
}

#[test]
fn s390x() {
    check_target(&AotTarget::S390X);
}
