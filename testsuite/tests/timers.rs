//! bpf_timer lifetimes in-process, over `fixtures/helpers/timer_cancel.o`
//! (return codes and firing are compared with the kernel by
//! `cli/tests/helpers_kernel.rs`): dropping a JIT program disarms the
//! timers that would call into its code; an interpreted callback keeps its
//! program and maps alive, and fires after both were dropped.

use bpfc_compiler::bind::{Instance, InstanceOptions};
use bpfc_compiler::codegen::jit::JitProgram;
use bpfc_compiler::codegen::CodegenOptions;
use bpfc_compiler::{interp, loader};
use bpfc_runtime::helpers::timers;
use bpfc_runtime::maps::Map;
use bpfc_runtime::{ExecContext, HelperTable};
use std::sync::Arc;
use std::time::Duration;

/// Element `k`'s (fired, code).
fn elem(m: &Map, k: u32) -> (u64, i64) {
    let mut v = vec![0u8; m.user_value_size()];
    m.lookup(&k.to_ne_bytes(), &mut v).unwrap();
    (
        u64::from_ne_bytes(v[..8].try_into().unwrap()),
        i64::from_ne_bytes(v[8..16].try_into().unwrap()),
    )
}

fn setup() -> (loader::Object, Instance, Arc<Map>) {
    let path = bpfc_testsuite::workspace_root().join("testsuite/fixtures/helpers/timer_cancel.o");
    let obj = loader::load(&std::fs::read(path).unwrap(), &Default::default()).unwrap();
    let inst = Instance::new(&obj, &InstanceOptions::default()).unwrap();
    let m = inst.map("m").unwrap().clone();
    (obj, inst, m)
}

#[test]
fn timer_callbacks_outlive_or_die_with_their_program() {
    // JIT: two timers are armed 10 s out when the run returns; dropping
    // the program disarms every timer whose callback is in its code.
    let (obj, inst, m) = setup();
    let bound = inst
        .bind(&obj, &obj.programs[0], &HelperTable::kernel())
        .unwrap();
    let opts = CodegenOptions {
        checked: true,
        ..Default::default()
    };
    let jit = JitProgram::from_bound(bound, &opts, None).unwrap();
    let mut ctx = [0u8; 64];
    assert_eq!(jit.run(&mut ctx, &mut ExecContext::new()), Ok(0));
    assert!(timers::armed() >= 1, "the 10 s timer is armed");
    drop(jit);
    assert_eq!(timers::armed(), 0);
    let before = elem(&m, 0);
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(elem(&m, 0), before, "a timer fired after its code went");
    drop(inst);
    drop(m);

    // Interpreter: drop the program and the instance right after the run;
    // the first timer still fires (once), cancels the second (armed: 1),
    // and the third stays armed.
    let (obj, inst, m) = setup();
    let bound = inst
        .bind(&obj, &obj.programs[0], &HelperTable::kernel())
        .unwrap();
    let r = interp::run_bound(
        &bound,
        &mut ctx,
        &mut ExecContext::new(),
        &Default::default(),
    );
    assert_eq!(r, Ok(0));
    drop(bound);
    drop(inst);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(elem(&m, 0), (1, 1));
    assert_eq!(elem(&m, 1), (0, 0));
    assert_eq!(elem(&m, 2), (0, 0));
    assert_eq!(timers::armed(), 1);
    assert_eq!(timers::take_faults(), Vec::<String>::new());
}
