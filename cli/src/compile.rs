//! `bpfc compile`: a native relocatable object for a target triple. Raw
//! bytecode becomes one entry symbol; an ELF object becomes a
//! self-describing object ([`described`]): every program, the maps' table
//! and the descriptor a host's runtime loads it from.

mod described;

pub use described::{map_kind, object_name};

use crate::input;
use anyhow::Context as _;
use bpfc_compiler::codegen::{aot, parse_triple, Binding, CodegenOptions, OptLevel, Request};
use bpfc_compiler::progtype::{self, convert};
use std::path::PathBuf;
use target_lexicon::Triple;

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
    /// Raw bytecode: the name of the exported entry symbol (default: from the file name).
    #[arg(long)]
    symbol: Option<String>,
    /// ELF objects: the object's name, which prefixes every symbol
    /// (default: the file name without `.o` and `.bpf`).
    #[arg(long)]
    name: Option<String>,
    /// Helper ids `callx` may dispatch to, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    callx_helpers: Vec<u32>,
}

/// Refuse raw bytecode whose compiled code could only fault
/// ([`bpfc_compiler::host::check_bindable`]); the message names the file.
fn check_bindable(
    file: &std::path::Path,
    prog: &input::Program,
    maps_bound: bool,
    packet: bool,
) -> anyhow::Result<()> {
    let view = bpfc_compiler::host::BindableView {
        name: &prog.name,
        insns: &prog.insns,
        maps: &prog.maps,
        line_info: &prog.line_info,
        poisoned: &prog.poisoned,
    };
    bpfc_compiler::host::check_bindable(&view, maps_bound, packet)
        .map_err(|m| anyhow::anyhow!("{}: {m}", file.display()))
}

/// Refuse a legacy packet load in raw bytecode, saying which programs and
/// which path can make one: compiled raw code is called with r1 and r2
/// only, so it never has a packet, whatever `--type` says; an object's
/// socket filter and tc programs run on packets through the host library.
fn refuse_packet_loads(file: &str, prog: &input::Program) -> anyhow::Result<()> {
    use bpfc_compiler::isa::Insn;
    let Some(pc) = prog
        .insns
        .iter()
        .position(|i| matches!(i, Insn::LdAbs { .. } | Insn::LdInd { .. }))
    else {
        return Ok(());
    };
    anyhow::bail!(
        "{file}: program {} instruction {pc}{}: makes a legacy packet load (ldabs/ldind), \
         which needs a packet, and compiled raw code only gets r1 and r2 from its caller; \
         socket filter and tc (sched_cls, sched_act) programs can make one when compiled \
         from an ELF object (SEC(\"socket\"), SEC(\"tc\")), whose programs run on packets \
         through bpfc_prog_test_run; `bpfc run --type socket_filter` runs this file on packets",
        prog.name,
        prog.source_at(pc)
    )
}

/// The code generator's options: code the verifier did not check
/// (`verified` false) is checked unless asked otherwise.
fn options(args: &Args, verified: bool) -> CodegenOptions {
    CodegenOptions {
        opt_level: args.opt_level.into(),
        checked: args.checked || (!verified && !args.unchecked),
        insn_limit: args.max_insns,
    }
}

/// The size of a kprobe's `pt_regs` on the target (the host's for a target
/// without a known one).
pub fn pt_regs(triple: &Triple) -> u32 {
    progtype::ctx::pt_regs_size(triple.architecture).unwrap_or(progtype::ctx::HOST_PT_REGS)
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let triple = parse_triple(&args.target)?;
    let file = args.file.display().to_string();
    let ty = input::prog_type_arg(args.prog_type.as_deref())?;
    let bytes = std::fs::read(&args.file).with_context(|| file.clone())?;
    if input::is_elf(&bytes) {
        if args.symbol.is_some() {
            anyhow::bail!(
                "{file}: --symbol names a raw program's entry; an object's symbols are prefixed with --name"
            );
        }
        return described::compile(&args, &bytes, &triple, ty);
    }
    if args.name.is_some() {
        anyhow::bail!(
            "{file}: --name applies to ELF objects; this is a raw instruction file (use --symbol)"
        );
    }
    let prog = input::load(&args.file, &args.select)?;
    refuse_packet_loads(&file, &prog)?;
    check_bindable(&args.file, &prog, false, false)?;
    let facts = input::verify_for(&prog, ty, args.no_verify, pt_regs(&triple))
        .map_err(|e| input::rejected(&file, e))?;
    // A network program's context accesses become accesses of the
    // runtime's native context, as for the engines.
    let mut insns = prog.insns.clone();
    if let (Some(f), Some(t)) = (&facts, ty) {
        insns = convert::convert(&insns, f, t, None, prog.endian).map_err(|e| {
            anyhow::anyhow!("{file}: program {}: {e}{}", prog.name, prog.source_at(e.pc))
        })?;
    }
    let opts = options(&args, facts.is_some());
    let symbol = args.symbol.unwrap_or_else(|| input::symbol_for(&prog.name));
    let object = aot::compile_object(
        &Request {
            insns: &insns,
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
