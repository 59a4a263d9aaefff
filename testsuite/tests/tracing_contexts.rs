//! Tracing contexts as the host supplies them (testsuite/fixtures/tracing/
//! contexts.c): a raw tracepoint's u64 arguments, a tracepoint record, a
//! `bpf_perf_event_data` and a syscall program's arguments (written back),
//! in the interpreter and the JIT; the raw tracepoint and syscall programs
//! also in the running kernel (`BPF_PROG_TEST_RUN` with ctx_in), which
//! must agree.

use bpfc_compiler::bind::{Instance, InstanceOptions};
use bpfc_compiler::codegen::{jit::JitProgram, CodegenOptions};
use bpfc_compiler::interp;
use bpfc_compiler::loader::{self, LoadOptions};
use bpfc_runtime::{ExecContext, HelperTable};
use bpfc_testsuite::kernel_run::{self, KernelRun};
use std::path::PathBuf;

fn object() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/tracing/contexts.o")
}

/// (r0, context after the run) in the interpreter and the JIT, which must agree.
fn run(prog: &str, ctx: &[u8]) -> (u64, Vec<u8>) {
    let bytes = std::fs::read(object()).unwrap();
    let obj = loader::load(&bytes, &LoadOptions::default()).unwrap();
    let p = obj.program(prog).unwrap();
    let inst = Instance::new(&obj, &InstanceOptions::default()).unwrap();
    let b = inst.bind(&obj, p, &HelperTable::kernel()).unwrap();
    assert!(b.facts.is_some(), "{prog}: verified");
    let mut m1 = ctx.to_vec();
    let r1 = interp::run_bound(&b, &mut m1, &mut ExecContext::new(), &Default::default()).unwrap();
    let j = JitProgram::from_bound(b, &CodegenOptions::default(), None).unwrap();
    let mut m2 = ctx.to_vec();
    let r2 = j.run(&mut m2, &mut ExecContext::new()).unwrap();
    assert_eq!((r1, &m1), (r2, &m2), "{prog}: interpreter and JIT differ");
    (r1, m1)
}

fn u64s(v: &[u64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn tracepoint_record_and_perf_event_data() {
    // sched_switch: prev_comm at 8, prev_pid 24, next_pid 56, next_prio 60.
    let mut r = vec![0u8; 64];
    r[8..12].copy_from_slice(b"bash");
    r[24..28].copy_from_slice(&42i32.to_le_bytes());
    r[56..60].copy_from_slice(&7i32.to_le_bytes());
    r[60..64].copy_from_slice(&120i32.to_le_bytes());
    assert_eq!(run("tp_switch", &r).0, 42_000 + 7 + b'b' as u64 + 120);
    // bpf_perf_event_data: x86_64 pt_regs (rdi at 112), sample_period, addr.
    let mut p = vec![0u8; 184];
    p[112..120].copy_from_slice(&5u64.to_le_bytes());
    p[168..176].copy_from_slice(&1000u64.to_le_bytes());
    p[176..184].copy_from_slice(&3u64.to_le_bytes());
    assert_eq!(run("perf_sample", &p).0, 2008);
}

#[test]
fn raw_tracepoint_and_syscall_agree_with_the_kernel() {
    let raw = u64s(&[1, 10, 100]);
    let (r0, _) = run("raw_args", &raw);
    assert_eq!(r0, 753);
    let sc = [4u32.to_le_bytes(), 0u32.to_le_bytes()].concat();
    let (s0, sc_out) = run("syscall_args", &sc);
    assert_eq!((s0, &sc_out[4..8]), (5, &36u32.to_le_bytes()[..]));
    let Some(driver) = kernel_run::driver("raw_tracepoint_and_syscall_agree_with_the_kernel")
    else {
        return;
    };
    let k = driver
        .run(
            &object(),
            "raw_args",
            &KernelRun {
                ctx_in: raw,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(k.retval as u64, r0);
    let k = driver
        .run(
            &object(),
            "syscall_args",
            &KernelRun {
                ctx_in: sc,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((k.retval as u64, k.ctx_out), (s0, sc_out));
}
