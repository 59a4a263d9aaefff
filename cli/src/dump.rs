//! `bpfc dump`: what bpfc makes of a program: its disassembly, the Cranelift
//! IR it lowers to, and the native code for a target.

use crate::input;
use anyhow::Context as _;
use bpfc_compiler::codegen::{aot, parse_triple, CodegenOptions, Dumps};
use bpfc_compiler::disasm::{disassemble, Syntax};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Program file: raw little-endian 8-byte instructions.
    file: PathBuf,
    /// Print the Cranelift IR of each function (source locations are eBPF pcs).
    #[arg(long)]
    clif: bool,
    /// Print the native code of each function.
    #[arg(long)]
    asm: bool,
    /// Target of `--clif`/`--asm` (see `bpfc targets`).
    #[arg(long, default_value = "x86_64-unknown-linux-gnu")]
    target: String,
    /// Lower in bounds-checked mode.
    #[arg(long)]
    checked: bool,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let prog = input::load(&args.file)?;
    if !args.clif && !args.asm {
        print!("{}", disassemble(&prog.insns, Syntax::Llvm));
        return Ok(());
    }
    let triple = parse_triple(&args.target)?;
    let opts = CodegenOptions {
        checked: args.checked,
        ..Default::default()
    };
    let mut dumps = Dumps {
        clif: args.clif.then(String::new),
        asm: args.asm.then(String::new),
    };
    let symbol = input::symbol_for(&prog.name);
    aot::compile_object(
        &prog.insns,
        prog.endian,
        &triple,
        &opts,
        &symbol,
        &[],
        Some(&mut dumps),
    )
    .with_context(|| args.file.display().to_string())?;
    for text in [dumps.clif, dumps.asm].into_iter().flatten() {
        print!("{text}");
    }
    Ok(())
}
