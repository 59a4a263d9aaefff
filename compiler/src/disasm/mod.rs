//! Instruction text out: the LLVM dialect printed by `llvm-objdump -d` and
//! the conformance-suite dialect read back by [`crate::asm::assemble`].
//!
//! [`Syntax::Llvm`] reproduces the instruction text of `llvm-objdump-19 -d`
//! (without its byte column and `<label>` annotations). Where that tool has
//! no spelling of its own without `--mcpu=v3`/`v4` (it prints `<unknown>` for
//! 32-bit `and`/`or`/`xor` atomics, `xchg32`, `cmpxchg32`, and drops the fetch
//! flag of 32-bit `atomic_fetch_*`), the `--mcpu=v4` spelling is used
//! (`w0 = atomic_fetch_add((u32 *)(r1 + 0x0), w0)`). Like LLVM, it shows
//! neither the immediate of `ld_ind` nor the module offset of kfunc calls, so
//! only [`Syntax::Conformance`] is lossless.

mod conformance;
mod llvm;

use crate::isa::Insn;

/// Which assembly dialect to print.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Syntax {
    /// `llvm-objdump -d` text: `r0 = *(u32 *)(r1 + 0x4)`.
    #[default]
    Llvm,
    /// The conformance-suite syntax: `ldxw %r0, [%r1+4]`.
    Conformance,
}

/// The text of one instruction at slot `pc` (the [`Insn::LddwHigh`]
/// placeholder prints as a comment, `# lddw second slot`). Offsets are printed
/// relative, as both tools do, so the text does not depend on `pc`.
pub fn format_insn(_pc: usize, insn: &Insn, syntax: Syntax) -> String {
    match (insn, syntax) {
        (Insn::LddwHigh, _) => "# lddw second slot".to_string(),
        (_, Syntax::Llvm) => llvm::format(insn),
        (_, Syntax::Conformance) => conformance::format(insn),
    }
}

/// One line per instruction (placeholders skipped). LLVM lines are prefixed
/// with the slot index as `pc: `; conformance lines are bare so the output
/// assembles back to the same bytes.
pub fn disassemble(insns: &[Insn], syntax: Syntax) -> String {
    let mut out = String::new();
    for (pc, insn) in insns.iter().enumerate() {
        if *insn == Insn::LddwHigh {
            continue;
        }
        if syntax == Syntax::Llvm {
            out.push_str(&format!("{pc:>5}: "));
        }
        out.push_str(&format_insn(pc, insn, syntax));
        out.push('\n');
    }
    out
}
