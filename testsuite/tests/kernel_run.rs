//! The kernel oracle runner itself (`harness/kernel_run.c` through
//! `bpfc_testsuite::kernel_run`): a syscall program's context comes back,
//! maps are filled before the run and dumped after it in `bpfc run`'s
//! shape, errors are reported. Needs root (a SKIP line otherwise).

use bpfc_testsuite::kernel_run::{self, KernelRun};
use serde_json::json;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/helpers")
        .join(name)
}

/// A context whose words are given operations of `hash_ops.c`: word = op
/// | key << 8 | val << 16 | flags << 32 (op 0 lookup, 1 update, 3 delete).
fn word(op: u64, key: u64, val: u64, flags: u64) -> u64 {
    op | key << 8 | (val & 0xffff) << 16 | flags << 32
}

#[test]
fn syscall_context_and_maps() {
    let Some(driver) = kernel_run::driver("kernel_run::syscall_context_and_maps") else {
        return;
    };
    let words = [
        word(0, 5, 0, 0),  // lookup 5: prefilled 41 -> 41 (and 42 stored)
        word(1, 6, 9, 0),  // update 6 = 9 (BPF_ANY) -> 0
        word(1, 6, 10, 1), // BPF_NOEXIST on an existing key -> -EEXIST
        word(3, 7, 0, 0),  // delete a missing key -> -ENOENT
        word(1, 8, 3, 4),  // bad flags -> -EINVAL
        word(0, 9, 0, 0),  // lookup a missing key -> -1
        word(3, 6, 0, 0),  // delete 6 -> 0
        word(1, 1, 2, 2),  // BPF_EXIST on a missing key -> -ENOENT
    ];
    let ctx_in: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let run = KernelRun {
        ctx_in,
        maps_in: Some(json!({"h": [{"key": [5, 0, 0, 0], "value": [41, 0, 0, 0, 0, 0, 0, 0]}]})),
        ..Default::default()
    };
    let out = driver
        .run(&fixture("hash_ops.o"), "run", &run)
        .unwrap_or_else(|e| panic!("{e}"));
    let got: Vec<i64> = out
        .ctx_out
        .chunks(8)
        .map(|c| i64::from_ne_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(got, [41, 0, -17, -2, -22, -1, 0, -2]);
    assert_eq!(out.retval, got.iter().sum::<i64>() as u32);
    assert_eq!(
        out.maps,
        json!({"h": [{"key": ["0x05", "0x00", "0x00", "0x00"],
                      "value": ["0x2a", "0x00", "0x00", "0x00", "0x00", "0x00", "0x00", "0x00"]}]})
    );
    assert!(out.map_errors.is_empty() && out.records == json!({}));

    // Errors come back as messages.
    let e = driver
        .run(&fixture("hash_ops.o"), "nosuch", &run)
        .unwrap_err();
    assert!(e.contains("no program nosuch"), "{e}");
    let bad = KernelRun {
        maps_in: Some(json!({"nosuch": [{"key": [0], "value": [0]}]})),
        ..Default::default()
    };
    let e = driver.run(&fixture("hash_ops.o"), "run", &bad).unwrap_err();
    assert!(e.contains("no map named nosuch"), "{e}");
}
