//! Tests only: the kernel oracle ([`bpfc_oracle`]) in the shapes the event
//! map tests (perf, ring buffer, user ring buffer) use: maps by
//! [`KernelMap`], errors as plain errno numbers, programs loaded with the
//! verifier's log in the error, and the BTF of a program with a callback.

pub use bpfc_oracle::asm::{Asm, Insn};
pub use bpfc_oracle::perf::pin_to_cpu;
use bpfc_oracle::{asm, btf::BtfBuilder, perf, MapCreate, ProgLoad, TestRun};
pub use bpfc_oracle::{skip, KernelMap, Prog, Rng};
use std::os::fd::{AsFd, OwnedFd};

pub const PROG_TYPE_SCHED_CLS: u32 = 3;

/// Whether the kernel can be asked; a skip line (or a failure under
/// `BPFC_TEST_REQUIRE=all`) otherwise.
pub fn kernel_or_skip(test: &str) -> bool {
    bpfc_oracle::available(test)
}

pub fn map_create(t: u32, key: u32, value: u32, max: u32, flags: u32) -> Result<KernelMap, i32> {
    KernelMap::create(&MapCreate::new(t, key, value, max).flags(flags)).map_err(i32::from)
}

pub fn lookup(m: &KernelMap, key: &[u8], value: &mut [u8]) -> Result<(), i32> {
    m.lookup(key, value, 0).map_err(i32::from)
}

pub fn update(m: &KernelMap, key: &[u8], value: &[u8], flags: u64) -> Result<(), i32> {
    m.update(key, value, flags).map_err(i32::from)
}

pub fn delete(m: &KernelMap, key: &[u8]) -> Result<(), i32> {
    m.delete(key).map_err(i32::from)
}

pub fn get_next_key(m: &KernelMap, key: Option<&[u8]>, next: &mut [u8]) -> Result<(), i32> {
    m.get_next_key(key, next).map_err(i32::from)
}

/// A shared mapping of `fd`'s pages (a ring buffer, a perf event).
pub fn mapping(fd: &impl AsFd, len: usize, offset: usize, writable: bool) -> perf::Mapping {
    perf::Mapping::new(fd.as_fd(), len, offset, writable).expect("mmap of a kernel object")
}

pub fn perf_event_open_bpf_output(cpu: i32) -> Result<OwnedFd, i32> {
    perf::bpf_output_event(cpu)
}

pub fn btf_load(blob: &[u8]) -> Result<OwnedFd, String> {
    bpfc_oracle::btf_load(blob).map_err(|(e, log)| format!("BTF_LOAD: {e}: {log}"))
}

/// `BPF_PROG_LOAD` of a GPL program; `funcs` are (instruction, BTF FUNC
/// id) pairs for `btf`. The error carries the verifier log.
pub fn prog_load(
    prog_type: u32,
    insns: &[Insn],
    btf: Option<(&OwnedFd, &[(u32, u32)])>,
) -> Result<Prog, String> {
    let code = asm::encode(insns);
    let mut p = ProgLoad::new(prog_type, &code);
    if let Some((fd, funcs)) = btf {
        p.btf_fd = Some(fd.as_fd());
        p.func_info = funcs;
    }
    Prog::load(&p).map_err(|e| e.to_string())
}

/// `BPF_PROG_TEST_RUN` once on a 64-byte packet; the program's r0 (32 bits).
pub fn test_run(prog: &Prog) -> u32 {
    let packet = [0u8; 64];
    let run = TestRun {
        data_in: &packet,
        repeat: 1,
        ..TestRun::default()
    };
    prog.test_run(&run).expect("BPF_PROG_TEST_RUN").retval
}

/// BTF for a program `int prog(void *ctx)` with one static callback
/// `int cb(void *a, void *b)`: FUNC ids 4 (prog) and 6 (cb).
pub fn btf_prog_and_callback() -> Vec<u8> {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4, bpfc_oracle::btf::INT_SIGNED);
    let ptr = b.ptr(0);
    let main = b.func_proto(int, &[("ctx", ptr)]);
    let prog = b.func("prog", main, true);
    let cb_type = b.func_proto(int, &[("a", ptr), ("b", ptr)]);
    let cb = b.func("cb", cb_type, false);
    assert_eq!((prog, cb), (4, 6));
    b.build()
}
