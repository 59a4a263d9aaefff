//! Native disassembly for `bpfc dump --asm`: each function's machine code
//! decoded with capstone for the target's architecture and grouped under
//! the eBPF instruction it was lowered from (Cranelift's source locations).

use bpfc_compiler::codegen::NativeCode;
use bpfc_compiler::disasm::{format_insn, Syntax};
use bpfc_compiler::isa::Insn;
use capstone::prelude::*;
use std::fmt::Write as _;
use target_lexicon::{Architecture, Triple};

fn disassembler(triple: &Triple) -> anyhow::Result<Capstone> {
    use capstone::arch::{arm64, riscv, sysz, x86};
    let cs = match triple.architecture {
        Architecture::X86_64 => Capstone::new()
            .x86()
            .mode(x86::ArchMode::Mode64)
            .syntax(x86::ArchSyntax::Att)
            .build(),
        Architecture::Aarch64(_) => Capstone::new().arm64().mode(arm64::ArchMode::Arm).build(),
        Architecture::Riscv64(_) => Capstone::new()
            .riscv()
            .mode(riscv::ArchMode::RiscV64)
            .extra_mode(std::iter::once(riscv::ArchExtraMode::RiscVC))
            .build(),
        Architecture::S390x => Capstone::new().sysz().mode(sysz::ArchMode::Default).build(),
        other => anyhow::bail!("no disassembler for {other}"),
    };
    cs.map_err(|e| anyhow::anyhow!("capstone: {e}"))
}

/// Mnemonics that end a block: Cranelift puts a function's constants after
/// its last block, so decoding stops after the last of these.
fn is_terminator(arch: Architecture, mnemonic: &str) -> bool {
    let ends: &[&str] = match arch {
        Architecture::X86_64 => &["ret", "retq", "jmp", "jmpq", "ud2"],
        Architecture::Aarch64(_) => &["ret", "b", "br", "udf", "brk"],
        Architecture::Riscv64(_) => &["ret", "j", "jr", "c.j", "c.jr", "unimp", "c.unimp"],
        Architecture::S390x => &["br", "j", "jg", "bcr"],
        _ => &[],
    };
    ends.contains(&mnemonic)
}

/// The listing of every function: eBPF instructions as comments, each
/// followed by the native instructions lowered from it.
pub fn listing(
    triple: &Triple,
    functions: &[NativeCode],
    insns: &[Insn],
    source_at: impl Fn(usize) -> String,
) -> anyhow::Result<String> {
    let cs = disassembler(triple)?;
    let mut out = String::new();
    for f in functions {
        let _ = writeln!(out, "; {} ({} bytes)", f.what, f.bytes.len());
        let decoded = cs
            .disasm_all(&f.bytes, 0)
            .map_err(|e| anyhow::anyhow!("{}: capstone: {e}", f.what))?;
        let code_end = decoded
            .iter()
            .rposition(|i| is_terminator(triple.architecture, i.mnemonic().unwrap_or("")))
            .map_or(decoded.len(), |last| last + 1);
        // The group printed last: `Some(None)` for code of no instruction.
        let mut current: Option<Option<usize>> = None;
        for i in decoded.iter().take(code_end) {
            let addr = i.address() as u32;
            // `pcs` is in address order and its ranges do not overlap.
            let at = f.pcs.partition_point(|(range, _)| range.end <= addr);
            let pc = f
                .pcs
                .get(at)
                .filter(|(range, _)| range.contains(&addr))
                .map(|&(_, pc)| pc);
            if current != Some(pc) {
                current = Some(pc);
                match pc {
                    Some(pc) => {
                        let text = insns
                            .get(pc)
                            .map(|insn| format_insn(pc, insn, Syntax::Llvm))
                            .unwrap_or_default();
                        let _ = writeln!(out, "  ; {pc:>4}: {text}{}", source_at(pc));
                    }
                    None => {
                        let _ = writeln!(
                            out,
                            "  ; (no single instruction: frame, moves, shared constants)"
                        );
                    }
                }
            }
            let _ = writeln!(
                out,
                "    {addr:6x}:  {:<8} {}",
                i.mnemonic().unwrap_or("?"),
                i.op_str().unwrap_or("")
            );
        }
        let data_start = decoded
            .get(code_end)
            .map_or(f.bytes.len(), |i| i.address() as usize);
        if data_start < f.bytes.len() {
            let _ = writeln!(out, "  ; {} bytes of constants", f.bytes.len() - data_start);
        }
        out.push('\n');
    }
    Ok(out)
}
