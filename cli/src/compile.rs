//! `bpfc compile`: raw instructions to a native relocatable object for one of
//! the supported targets (helpers left as undefined `bpfc_helper_<id>`).

use anyhow::Context;
use bpfc_compiler::codegen::{aot::compile_object, parse_triple, CodegenOptions, OptLevel};
use bpfc_compiler::isa::{decode_program, Endian};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Opt {
    None,
    Speed,
}

#[derive(clap::Args)]
pub struct Args {
    /// Raw little-endian eBPF instructions.
    file: PathBuf,
    /// Target triple (see `bpfc targets`).
    #[arg(long)]
    target: String,
    /// Output object file.
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// Cranelift optimisation level.
    #[arg(long, value_enum, default_value = "speed")]
    opt_level: Opt,
    /// Bounds-check every memory access (fault instead of touching memory
    /// outside the program's frames and input).
    #[arg(long)]
    checked: bool,
    /// Name of the exported entry symbol.
    #[arg(long, default_value = "bpf_prog")]
    symbol: String,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let triple = parse_triple(&args.target)?;
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let insns = decode_program(&bytes, Endian::Little)
        .with_context(|| format!("decoding {}", args.file.display()))?;
    let opts = CodegenOptions {
        opt_level: match args.opt_level {
            Opt::None => OptLevel::None,
            Opt::Speed => OptLevel::Speed,
        },
        checked: args.checked,
    };
    let object = compile_object(
        &insns,
        Endian::Little,
        &triple,
        &opts,
        &args.symbol,
        &[],
        None,
    )
    .with_context(|| format!("compiling {}", args.file.display()))?;
    std::fs::write(&args.output, object)
        .with_context(|| format!("writing {}", args.output.display()))?;
    Ok(())
}
