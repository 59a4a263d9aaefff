//! `bpfc asm`: assemble conformance-syntax text into raw little-endian
//! instructions. The program is validated as every other command would
//! validate it (jump targets, lddw pairs, r10, falling off the end) unless
//! `--no-validate` asks for the bytes as written, for instance to make the
//! input of an error case.

use anyhow::{bail, Context};
use bpfc_compiler::asm::{assemble_with_locations, source_text};
use bpfc_compiler::isa::{encode_program, validate, Endian};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Assembly source (conformance syntax).
    pub file: PathBuf,
    /// Where to write the raw instructions (8 bytes each, little-endian).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Write the program even if it is not valid (an empty program, jumps
    /// out of range, writes to r10 ...): for deliberately invalid test input.
    #[arg(long)]
    pub no_validate: bool,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let name = args.file.display();
    let bytes = std::fs::read(&args.file).with_context(|| format!("{name}"))?;
    let asm_err = |e: bpfc_compiler::asm::AsmError| {
        anyhow::anyhow!("{name}:{}:{}: {}", e.line, e.column, e.kind)
    };
    let src = source_text(&bytes).map_err(asm_err)?;
    let assembly = assemble_with_locations(src).map_err(asm_err)?;
    if !args.no_validate {
        if let Err(e) = validate(&assembly.insns) {
            match e.pc().and_then(|pc| assembly.location(pc)) {
                Some(at) => bail!("{name}:{}:{}: {e}", at.line, at.column),
                None => bail!("{name}: {e}"),
            }
        }
    }
    let bytes = encode_program(&assembly.insns, Endian::Little);
    std::fs::write(&args.output, bytes).with_context(|| format!("{}", args.output.display()))?;
    Ok(())
}
