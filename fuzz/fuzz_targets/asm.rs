//! Fuzz the assembler and what follows it: any text must assemble or give a
//! positioned error, and whatever assembles must validate or be rejected,
//! disassemble, and reassemble to the same bytes. Never a panic.
#![no_main]

use bpfc_compiler::disasm::{disassemble, Syntax};
use bpfc_compiler::{asm, isa};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(insns) = asm::assemble(text) else { return };
    let _ = isa::validate(&insns);
    let bytes = isa::encode_program(&insns, isa::Endian::Little);
    let listing = disassemble(&insns, Syntax::Conformance);
    let again = asm::assemble(&listing).expect("the disassembler's output assembles");
    assert_eq!(isa::encode_program(&again, isa::Endian::Little), bytes, "round trip");
    let _ = disassemble(&insns, Syntax::Llvm);
});
