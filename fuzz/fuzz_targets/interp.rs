//! Fuzz the decoder and the interpreter behind it. The input's whole 8-byte
//! slots are a program, the bytes after them choose the byte order and seed
//! a small input buffer. Whatever decodes must encode back to the same
//! bytes and disassemble to text that assembles back to the same program;
//! then the interpreter validates and runs it, at most 10,000 instructions,
//! to a value or a typed error. Never a panic.
#![no_main]

use bpfc_compiler::disasm::{disassemble, Syntax};
use bpfc_compiler::{asm, interp, isa};
use bpfc_runtime::{ExecContext, HelperTable};
use libfuzzer_sys::fuzz_target;

/// Instruction budget of one run: loops end quickly, programs still get far.
const MAX_INSNS: u64 = 10_000;
/// Size of the input buffer r1 points at.
const INPUT_LEN: usize = 32;

fuzz_target!(|data: &[u8]| {
    let (code, tail) = data.split_at(data.len() - data.len() % isa::INSN_SIZE);
    let endian = match tail.first() {
        Some(b) if b & 1 == 1 => isa::Endian::Big,
        _ => isa::Endian::Little,
    };
    let Ok(insns) = isa::decode_unvalidated(code, endian) else {
        return;
    };
    assert_eq!(isa::encode_program(&insns, endian), code, "decode/encode");
    let listing = disassemble(&insns, Syntax::Conformance);
    let again = asm::assemble(&listing).expect("the disassembler's output assembles");
    assert_eq!(again, insns, "disassemble/assemble");
    let _ = disassemble(&insns, Syntax::Llvm);

    let mut input: Vec<u8> = (0..INPUT_LEN)
        .map(|i| tail.get(i % tail.len().max(1)).copied().unwrap_or(0) ^ i as u8)
        .collect();
    let opts = interp::Options {
        max_insns: Some(MAX_INSNS),
        endian,
    };
    // `run` validates first: invalid programs exercise that path.
    let _ = interp::run(
        &insns,
        &mut input,
        &HelperTable::conformance(),
        &mut ExecContext::new(),
        &opts,
    );
});
