//! Whole-program control-flow facts computed once from a slot-indexed
//! instruction vector: where functions start and end, which slots are jump
//! targets, each instruction's successors and the basic blocks. The verifier
//! and the code generator both read them, so both agree on what a function
//! is.
//!
//! Function starts are the entry (slot 0), every local-call target and every
//! `BPF_PSEUDO_FUNC` lddw target (a callback), as in the kernel's
//! `add_subprog`. A function spans the slots up to the next start. Checked
//! here, with the kernel's words: every jump stays inside its function
//! (`jump out of range from insn 3 to 9`) and the last instruction of every
//! function is `exit` or `ja` (`last insn is not an exit or jmp`).

mod cfg;
#[cfg(test)]
mod tests;

pub use cfg::{analyze, succs, Block, Cfg, CfgError, FuncKind, Function, Succs};
