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
    /// Check every memory access at run time (fault code 2 instead of an
    /// access outside the program's regions); accesses the verifier proved
    /// safe stay unchecked.
    #[arg(long)]
    checked: bool,
    /// Skip the verifier: the code checks every memory access (as with
    /// --checked) unless --unchecked is given too.
    #[arg(long)]
    no_verify: bool,
    /// Compile a program the verifier did not check (--no-verify, a raw
    /// file it rejects, a type it does not model) without bounds checks.
    #[arg(long, conflicts_with = "checked")]
    unchecked: bool,
    /// The program type to verify as: for raw instruction files (without
    /// it they are verified as socket_filter and compiled checked if
    /// rejected); for objects it overrides the section name's.
    #[arg(long = "type", value_name = "TYPE")]
    prog_type: Option<String>,
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

/// Refuse a program whose compiled code could only fault: one that loads a
/// map, global data, a `.kconfig` value or a function address (fault code
/// 7: nothing binds them to the host yet), calls a kfunc, or makes a legacy
/// packet load (which needs a packet context). Names the first such
/// instruction, its map or helper, and its source line.
fn check_bindable(file: &std::path::Path, prog: &input::Program) -> anyhow::Result<()> {
    use bpfc_compiler::isa::{CallTarget, Insn, LddwSrc};
    for (pc, insn) in prog.insns.iter().enumerate() {
        let what = match *insn {
            Insn::Lddw {
                src: src @ (LddwSrc::MapFd | LddwSrc::MapValue | LddwSrc::MapIdx | LddwSrc::MapIdxValue),
                imm,
                ..
            } => {
                let idx = imm as u32 as usize;
                let name = prog
                    .maps
                    .get(idx)
                    .map_or_else(|| format!("#{idx}"), |m| m.name.clone());
                let whose = if matches!(src, LddwSrc::MapValue | LddwSrc::MapIdxValue) {
                    "the value of map"
                } else {
                    "map"
                };
                format!("loads {whose} {name}; compiled code cannot bind maps or global data yet")
            }
            Insn::Lddw { src: LddwSrc::Func, .. } => {
                "loads a function's address (a callback, e.g. for bpf_loop); compiled code cannot bind callbacks yet".to_string()
            }
            Insn::Lddw { src: LddwSrc::BtfId, .. } => {
                "loads a kernel variable (__ksym), which compiled code cannot bind".to_string()
            }
            Insn::Call(CallTarget::Kfunc { btf_id, .. }) => {
                format!("calls kfunc (btf id {btf_id}), which compiled code cannot bind")
            }
            Insn::LdAbs { .. } | Insn::LdInd { .. } => {
                "makes a legacy packet load (ldabs/ldind), which needs a packet context compiled code cannot bind yet".to_string()
            }
            _ => continue,
        };
        anyhow::bail!(
            "{}: program {} instruction {pc}{}: {what}",
            file.display(),
            prog.name,
            prog.source_at(pc)
        );
    }
    Ok(())
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let triple = parse_triple(&args.target)?;
    let prog = input::load(&args.file, &args.select)?;
    check_bindable(&args.file, &prog)?;
    let file = args.file.display().to_string();
    let ty = input::prog_type_arg(args.prog_type.as_deref())?;
    let facts = input::verify(&prog, ty, args.no_verify).map_err(|e| input::rejected(&file, e))?;
    let opts = CodegenOptions {
        opt_level: args.opt_level.into(),
        // Code the verifier did not check is checked unless asked otherwise.
        checked: args.checked || (facts.is_none() && !args.unchecked),
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
            facts: facts.as_ref(),
        },
        &triple,
        None,
    )
    .with_context(|| args.file.display().to_string())?;
    std::fs::write(&args.output, object).with_context(|| args.output.display().to_string())?;
    Ok(())
}
