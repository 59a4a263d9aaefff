//! `bpfc disasm`: print a file of raw little-endian instructions as text.

use anyhow::Context;
use bpfc_compiler::disasm::{disassemble, Syntax};
use bpfc_compiler::isa::{decode_unvalidated, Endian};
use std::io::Write;
use std::path::PathBuf;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum SyntaxArg {
    /// `llvm-objdump -d` style: `r0 = *(u32 *)(r1 + 0x4)`.
    Llvm,
    /// The conformance-suite syntax `bpfc asm` reads: `ldxw %r0, [%r1+4]`.
    Conformance,
}

#[derive(clap::Args)]
pub struct Args {
    /// Raw instructions (8 bytes each, little-endian).
    pub file: PathBuf,
    /// Output syntax.
    #[arg(long, value_enum, default_value = "llvm")]
    pub syntax: SyntaxArg,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let name = args.file.display();
    let bytes = std::fs::read(&args.file).with_context(|| format!("{name}"))?;
    // No whole-program validation: a disassembler shows what is there.
    let insns =
        decode_unvalidated(&bytes, Endian::Little).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let syntax = match args.syntax {
        SyntaxArg::Llvm => Syntax::Llvm,
        SyntaxArg::Conformance => Syntax::Conformance,
    };
    let text = disassemble(&insns, syntax);
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .context("writing to stdout")?;
    Ok(())
}
