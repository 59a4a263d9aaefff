//! Instruction text out: the LLVM dialect printed by `llvm-objdump -d`, the
//! kernel's (its verifier log and `bpftool prog dump xlated`, [`Syntax::Kernel`])
//! and the conformance-suite dialect read back by [`crate::asm::assemble`].
//!
//! [`Syntax::Llvm`] reproduces the instruction text of `llvm-objdump-19 -d`
//! (without its byte column and `<label>` annotations). Where that tool has
//! no spelling of its own without `--mcpu=v3`/`v4` (it prints `<unknown>` for
//! 32-bit `and`/`or`/`xor` atomics, `xchg32`, `cmpxchg32`, and drops the fetch
//! flag of 32-bit `atomic_fetch_*`), the `--mcpu=v4` spelling is used
//! (`w0 = atomic_fetch_add((u32 *)(r1 + 0x0), w0)`). Like LLVM, it shows
//! neither the immediate of `ld_ind` nor the module offset of kfunc calls, so
//! only [`Syntax::Conformance`] is lossless.
//!
//! Helper calls are named in every syntax: the kernel's spells them as it
//! does (`call bpf_loop#181`); the LLVM and conformance syntaxes, whose call
//! has only the number, add a comment after llvm-objdump's text
//! (`call 0xb5 # bpf_loop`, `call 181 # bpf_loop`) that both assemblers
//! skip. Ids the kernel does not define get no comment.
//!
//! Two more departures from LLVM, which prints pseudo `lddw` (map
//! references) without its second immediate and local calls like helper
//! calls: [`disassemble`] and [`format_named`] (which takes [`Names`] from a
//! loaded object) print them as below; [`format_insn`] keeps LLVM's `call -0x1`.
//!
//! | instruction | numeric | with names |
//! |---|---|---|
//! | helper call | `call 0x1 # bpf_map_lookup_elem` | |
//! | `lddw` src 1 (map fd) | `r1 = map_fd[3] ll` | |
//! | `lddw` src 2 (map value by fd) | `r1 = map_value_fd[3]+8 ll` | |
//! | `lddw` src 3 (kernel variable) | `r1 = btf_id[77] ll` | `r1 = ksym[bpf_prog_active] ll` |
//! | `lddw` src 4 (function address) | `r1 = func pc+5 ll` | `r1 = func pc+5 <cb> ll` |
//! | `lddw` src 5 (map by index) | `r1 = map[#0] ll` | `r1 = map[counts] ll` |
//! | `lddw` src 6 (map value by index) | `r1 = map_value[#2]+8 ll` | `r1 = map_value[.data]+8 ll` |
//! | local call | `call pc+5` | `call pc+5 <sum_to>` |
//! | kfunc call | `call kfunc[1234]` | `call kfunc[bpf_task_acquire]` |
//!
//! Offsets after `pc` count slots from the next instruction, as jumps do;
//! the `+8` of a map value is the byte offset into the value (the second
//! slot's immediate).

mod conformance;
mod kernel;
mod llvm;
mod names;

pub use names::{format_named, Names, NoNames};

use crate::isa::Insn;

/// The kernel's name of helper `id` (`bpf_map_lookup_elem` for 1), for the
/// ids the kernel defines.
pub fn helper_name(id: i32) -> Option<String> {
    bpfc_runtime::helpers::kernel_name(id.into()).map(|n| format!("bpf_{n}"))
}

/// ` # bpf_loop`: the comment the LLVM and conformance syntaxes put after a
/// helper call the kernel knows, empty for other ids. `#` starts a comment
/// in both LLVM's BPF assembler and [`crate::asm`], so the line still
/// assembles to the same instruction.
fn helper_comment(id: i32) -> String {
    helper_name(id).map_or_else(String::new, |n| format!(" # {n}"))
}

/// Which assembly dialect to print.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Syntax {
    /// `llvm-objdump -d` text: `r0 = *(u32 *)(r1 + 0x4)`.
    #[default]
    Llvm,
    /// The conformance-suite syntax: `ldxw %r0, [%r1+4]`.
    Conformance,
    /// The kernel's, as its verifier log and `bpftool prog dump xlated`
    /// print it: `(61) r0 = *(u32 *)(r1 +4)`.
    Kernel,
}

/// The text of one instruction at slot `pc` (the [`Insn::LddwHigh`]
/// placeholder prints as a comment, `# lddw second slot`). Offsets are printed
/// relative, as both tools do, so the text does not depend on `pc`.
pub fn format_insn(_pc: usize, insn: &Insn, syntax: Syntax) -> String {
    match (insn, syntax) {
        (Insn::LddwHigh, _) => "# lddw second slot".to_string(),
        (_, Syntax::Llvm) => llvm::format(insn),
        (_, Syntax::Conformance) => conformance::format(insn),
        (_, Syntax::Kernel) => kernel::format(insn),
    }
}

/// One line per instruction (placeholders skipped). LLVM lines are prefixed
/// with the slot index as `pc: ` and use the numeric forms of the table
/// above; conformance lines are bare so the output assembles back to the
/// same bytes.
pub fn disassemble(insns: &[Insn], syntax: Syntax) -> String {
    let mut out = String::new();
    for (pc, insn) in insns.iter().enumerate() {
        if *insn == Insn::LddwHigh {
            continue;
        }
        match syntax {
            Syntax::Llvm => {
                out.push_str(&format!("{pc:>5}: "));
                out.push_str(&format_named(pc, insn, &NoNames));
            }
            // bpftool's line: the slot right-aligned in four columns.
            Syntax::Kernel => out.push_str(&format!("{pc:>4}: {}", kernel::format(insn))),
            Syntax::Conformance => out.push_str(&format_insn(pc, insn, syntax)),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asm::assemble;
    use crate::isa::{encode_insn, CallTarget, Endian};

    fn bytes(insns: &[Insn]) -> Vec<u8> {
        let mut out = Vec::new();
        for insn in insns {
            encode_insn(insn, Endian::Little, &mut out);
        }
        out
    }

    #[test]
    fn helper_calls_are_named_in_every_syntax() {
        let insns = assemble("call 1\ncall 181\ncall 999\ncall -1\nexit").expect("assembles");
        assert_eq!(insns[1], Insn::Call(CallTarget::Helper(181)));
        let lines =
            |syntax| -> Vec<String> { insns.iter().map(|i| format_insn(0, i, syntax)).collect() };
        assert_eq!(
            lines(Syntax::Llvm),
            [
                "call 0x1 # bpf_map_lookup_elem",
                "call 0xb5 # bpf_loop",
                "call 0x3e7",
                "call -0x1",
                "exit"
            ]
        );
        assert_eq!(
            lines(Syntax::Conformance),
            [
                "call 1 # bpf_map_lookup_elem",
                "call 181 # bpf_loop",
                "call 999",
                "call -1",
                "exit"
            ]
        );
        assert_eq!(
            lines(Syntax::Kernel),
            [
                "(85) call bpf_map_lookup_elem#1",
                "(85) call bpf_loop#181",
                "(85) call unknown#999",
                "(85) call unknown#-1",
                "(95) exit"
            ]
        );
        // The comment does not change what the listing assembles to.
        let listing = disassemble(&insns, Syntax::Conformance);
        let again = assemble(&listing).expect("the listing assembles");
        assert_eq!(bytes(&again), bytes(&insns));
    }
}
