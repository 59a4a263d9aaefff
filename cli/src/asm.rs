//! `bpfc asm`: assemble conformance-syntax text into raw little-endian
//! instructions.

use anyhow::Context;
use bpfc_compiler::asm::assemble;
use bpfc_compiler::isa::{encode_program, Endian};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Assembly source (conformance syntax).
    pub file: PathBuf,
    /// Where to write the raw instructions (8 bytes each, little-endian).
    #[arg(short, long)]
    pub output: PathBuf,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let name = args.file.display();
    let src = std::fs::read_to_string(&args.file).with_context(|| format!("{name}"))?;
    let insns = assemble(&src)
        .map_err(|e| anyhow::anyhow!("{name}:{}:{}: {}", e.line, e.column, e.kind))?;
    let bytes = encode_program(&insns, Endian::Little);
    std::fs::write(&args.output, bytes).with_context(|| format!("{}", args.output.display()))?;
    Ok(())
}
