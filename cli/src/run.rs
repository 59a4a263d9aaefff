//! `bpfc run`: execute a program once and print its return value the way
//! `bpftool prog run` does.

use anyhow::Context as _;
use bpfc_compiler::interp;
use bpfc_compiler::isa::{decode_program, Endian};
use bpfc_runtime::{ExecContext, HelperTable};
use std::path::PathBuf;
use std::time::Instant;

/// Execution engine of `bpfc run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// The reference interpreter.
    Interp,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Interp => "interp",
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// Program file: raw little-endian 8-byte instructions.
    file: PathBuf,
    /// Input memory: r1 points at a copy of this file's bytes, r2 holds its length.
    #[arg(long, value_name = "FILE")]
    mem: Option<PathBuf>,
    /// Execution engine.
    #[arg(long, value_enum, default_value = "interp")]
    engine: Engine,
    /// Print a JSON object (`retval`, `duration` as bpftool does, plus `r0` and `engine`).
    #[arg(long)]
    json: bool,
    /// Stop with an error after this many executed instructions (default: no limit).
    #[arg(long, value_name = "N")]
    max_insns: Option<u64>,
}

/// What one run produced.
struct Outcome {
    r0: u64,
    duration_ns: u64,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let file = args.file.display().to_string();
    let bytes = std::fs::read(&args.file).with_context(|| file.clone())?;
    let mut mem = match &args.mem {
        Some(p) => std::fs::read(p).with_context(|| p.display().to_string())?,
        None => Vec::new(),
    };
    let insns = decode_program(&bytes, Endian::Little).with_context(|| file.clone())?;
    let out = match args.engine {
        Engine::Interp => run_interp(&insns, &mut mem, args.max_insns),
    }
    .with_context(|| file.clone())?;
    // Like the kernel's BPF_PROG_TEST_RUN (and so bpftool), the return value
    // is the low 32 bits of r0; `r0` in the JSON output has all 64.
    let retval = out.r0 as u32;
    if args.json {
        let v = serde_json::json!({
            "retval": retval,
            "duration": out.duration_ns,
            "r0": out.r0,
            "engine": args.engine.name(),
        });
        println!("{v}");
    } else {
        println!("Return value: {retval}, duration: {}ns", out.duration_ns);
    }
    Ok(())
}

fn run_interp(
    insns: &[bpfc_compiler::isa::Insn],
    mem: &mut [u8],
    max_insns: Option<u64>,
) -> Result<Outcome, interp::RunError> {
    let mut ctx = ExecContext::new();
    let opts = interp::Options { max_insns };
    let start = Instant::now();
    let r0 = interp::run(insns, mem, &HelperTable::conformance(), &mut ctx, &opts)?;
    Ok(Outcome {
        r0,
        duration_ns: u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX),
    })
}
