//! Fuzz the static verifier. The input's whole 8-byte slots are a program
//! (decoded without validation, so malformed shapes reach the verifier
//! too); the first byte after them picks the program type. The verifier
//! must come back with a verdict, never panic, within a bounded number of
//! processed instructions. A program it accepts as a socket filter is then
//! run in the interpreter on a zeroed 192-byte context: it must not touch
//! memory out of bounds or nest calls too deep (what the verifier proved).
#![no_main]

use bpfc_compiler::loader::ProgType;
use bpfc_compiler::verifier::{self, Input, Options};
use bpfc_compiler::{interp, isa};
use bpfc_runtime::{ExecContext, HelperTable};
use libfuzzer_sys::fuzz_target;

/// Processed-instruction budget of one verification (the kernel's is 1M).
const MAX_PROCESSED: u64 = 50_000;

const TYPES: [ProgType; 8] = [
    ProgType::SocketFilter,
    ProgType::Xdp,
    ProgType::SchedCls,
    ProgType::Kprobe,
    ProgType::Tracepoint,
    ProgType::RawTracepoint,
    ProgType::CgroupSkb,
    ProgType::Syscall,
];

fuzz_target!(|data: &[u8]| {
    let (code, tail) = data.split_at(data.len() - data.len() % isa::INSN_SIZE);
    let Ok(insns) = isa::decode_unvalidated(code, isa::Endian::Little) else {
        return;
    };
    if insns.is_empty() {
        return;
    }
    let ty = TYPES[tail.first().copied().unwrap_or(0) as usize % TYPES.len()];
    let mut opts = Options::new(ty);
    opts.max_insns = MAX_PROCESSED;
    opts.log_level = tail.get(1).map_or(0, |b| (b % 3) as u32);
    opts.sleepable = ty == ProgType::Syscall;
    let input = Input {
        insns: &insns,
        maps: &[],
        btf: None,
        func_info: &[],
        endian: isa::Endian::Little,
    };
    let Ok(_) = verifier::verify(&input, &opts) else {
        return;
    };
    if ty != ProgType::SocketFilter || isa::validate(&insns).is_err() {
        return;
    }
    let mut ctx = vec![0u8; 192];
    let run = interp::run(
        &insns,
        &mut ctx,
        &HelperTable::conformance(),
        &mut ExecContext::new(),
        &interp::Options {
            max_insns: Some(100_000),
            endian: isa::Endian::Little,
        },
    );
    if let Err(
        e @ (interp::RunError::OutOfBounds { .. }
        | interp::RunError::ReadOnly { .. }
        | interp::RunError::CallDepth { .. }),
    ) = run
    {
        panic!("verified program faulted: {e}");
    }
});
