//! `bpfc compile`: a native relocatable object for a target triple.

use crate::input;
use anyhow::Context as _;
use bpfc_compiler::codegen::{aot, parse_triple, Binding, CodegenOptions, OptLevel, Request};
use std::path::PathBuf;

/// `--opt-level` of `compile` and `run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Opt {
    /// Compile fast: no mid-end optimisation, single-pass register allocation.
    None,
    /// Optimise (Cranelift's e-graph, backtracking register allocation).
    Speed,
}

impl From<Opt> for OptLevel {
    fn from(o: Opt) -> OptLevel {
        match o {
            Opt::None => OptLevel::None,
            Opt::Speed => OptLevel::Speed,
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// Program file: an ELF object (clang -target bpf) or raw 8-byte instructions.
    file: PathBuf,
    #[command(flatten)]
    select: input::Select,
    /// Target triple (see `bpfc targets`).
    #[arg(long, default_value = "x86_64-unknown-linux-gnu")]
    target: String,
    /// Output object file.
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
    /// How much compile time to spend on faster code.
    #[arg(long, value_enum, default_value = "speed")]
    opt_level: Opt,
    /// Check every memory access at run time (fault code 2 instead of an access outside the program's regions).
    #[arg(long)]
    checked: bool,
    /// Stop a run with fault code 8 after this many eBPF instructions (counted a basic block at a time).
    #[arg(long, value_name = "N")]
    max_insns: Option<u64>,
    /// Name of the exported entry symbol (default: from the file name).
    #[arg(long)]
    symbol: Option<String>,
    /// Helper ids `callx` may dispatch to, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    callx_helpers: Vec<u32>,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let triple = parse_triple(&args.target)?;
    let prog = input::load(&args.file, &args.select)?;
    let opts = CodegenOptions {
        opt_level: args.opt_level.into(),
        checked: args.checked,
        insn_limit: args.max_insns,
    };
    let symbol = args.symbol.unwrap_or_else(|| input::symbol_for(&prog.name));
    let object = aot::compile_object(
        &Request {
            insns: &prog.insns,
            endian: prog.endian,
            binding: &Binding::object(&args.callx_helpers),
            opts: &opts,
            symbol: &symbol,
        },
        &triple,
        None,
    )
    .with_context(|| args.file.display().to_string())?;
    std::fs::write(&args.output, object).with_context(|| args.output.display().to_string())?;
    Ok(())
}
