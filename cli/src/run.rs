//! `bpfc run`: execute a program once and print its return value the way
//! `bpftool prog run` does.

use crate::compile::Opt;
use crate::{input, output};
use bpfc_compiler::codegen::{
    jit::{JitError, JitProgram},
    CodegenOptions,
};
use bpfc_compiler::interp;
use bpfc_runtime::abi::FaultCode;
use bpfc_runtime::{ExecContext, HelperTable};
use std::path::PathBuf;
use std::time::Instant;

/// Execution engine of `bpfc run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// Cranelift JIT code.
    Jit,
    /// The reference interpreter (checks every memory access).
    Interp,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Jit => "jit",
            Engine::Interp => "interp",
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// Program file: an ELF object (clang -target bpf) or raw 8-byte instructions.
    file: PathBuf,
    #[command(flatten)]
    select: input::Select,
    /// Input memory: r1 points at a copy of this file's bytes, r2 holds its length.
    #[arg(long, value_name = "FILE")]
    mem: Option<PathBuf>,
    /// Execution engine.
    #[arg(long, value_enum, default_value = "jit")]
    engine: Engine,
    /// JIT: skip the bounds checks. Only for verified programs: unchecked code
    /// trusts the program to touch nothing but its stack and input. By default
    /// every access is checked and a bad one stops the run with an error.
    #[arg(long)]
    unchecked: bool,
    /// JIT: how much compile time to spend on faster code (default: speed).
    #[arg(long, value_enum)]
    opt_level: Option<Opt>,
    /// Print a JSON object (`retval`, `duration` as bpftool does, plus `r0` and `engine`).
    #[arg(long)]
    json: bool,
    /// Stop with an error after this many executed instructions (default:
    /// 2^32; 0: no limit). JIT code counts a basic block at a time.
    #[arg(long, value_name = "N")]
    max_insns: Option<u64>,
}

/// The instruction budget when `--max-insns` is not given, for both
/// engines. A runaway loop stops with an error instead of hanging the
/// terminal: the interpreter runs a tight loop at about 10^8 instructions a
/// second even in a debug build, so 2^32 of them take well under a minute
/// (JIT code, a few seconds). Real programs stay far below it (the kernel
/// verifies at most a million instructions; only bounded loops of billions
/// of iterations come near), and those can ask for more, or for `0`.
pub const DEFAULT_MAX_INSNS: u64 = 1 << 32;

/// Appended to an instruction-limit error.
const LIMIT_HINT: &str = " (--max-insns N sets the limit, 0 removes it)";

/// What one run produced.
struct Outcome {
    r0: u64,
    duration_ns: u64,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let file = args.file.display().to_string();
    if args.opt_level.is_some() && args.engine != Engine::Jit {
        anyhow::bail!("--opt-level chooses how the JIT compiles: use it with --engine jit");
    }
    let prog = input::load(&args.file, &args.select)?;
    if let Some((pc, map)) = prog.first_map_use() {
        anyhow::bail!(
            "{file}: program {} instruction {pc}{}: uses map {map}; maps and global data are not supported by the runtime yet",
            prog.name,
            prog.source_at(pc)
        );
    }
    let mut mem = input::read_mem(args.mem.as_deref())?;
    // Until the runtime's helper set lands, programs see the conformance
    // suite's helpers (helper 5 returns its first argument).
    let helpers = HelperTable::conformance();
    let max_insns = match args.max_insns.unwrap_or(DEFAULT_MAX_INSNS) {
        0 => None,
        n => Some(n),
    };
    let out = match args.engine {
        Engine::Interp => run_interp(&prog, &mut mem, &helpers, max_insns),
        Engine::Jit => {
            let opts = CodegenOptions {
                opt_level: args.opt_level.unwrap_or(Opt::Speed).into(),
                checked: !args.unchecked,
                insn_limit: max_insns,
            };
            run_jit(&prog, &mut mem, &helpers, &opts)
        }
    }
    .map_err(|e| {
        let at = e.pc.map(|pc| prog.source_at(pc)).unwrap_or_default();
        anyhow::anyhow!("{file}: {}{at}", e.error)
    })?;
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
        output::print(format!("{v}\n"))
    } else {
        output::print(format!(
            "Return value: {retval}, duration: {}ns\n",
            out.duration_ns
        ))
    }
}

fn elapsed_ns(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A failed run: the message and, when it concerns one, the instruction.
struct Failure {
    error: String,
    pc: Option<usize>,
}

impl Failure {
    fn new(error: impl std::fmt::Display, pc: Option<usize>) -> Failure {
        Failure {
            error: error.to_string(),
            pc,
        }
    }
}

fn run_interp(
    prog: &input::Program,
    mem: &mut [u8],
    helpers: &HelperTable,
    max_insns: Option<u64>,
) -> Result<Outcome, Failure> {
    let mut ctx = ExecContext::new();
    let opts = interp::Options {
        max_insns,
        endian: prog.endian,
    };
    let start = Instant::now();
    let r0 = interp::run(&prog.insns, mem, helpers, &mut ctx, &opts).map_err(|e| match e {
        interp::RunError::InsnLimit { pc, .. } => {
            Failure::new(format_args!("{e}{LIMIT_HINT}"), Some(pc))
        }
        _ => Failure::new(&e, Some(e.pc())),
    })?;
    Ok(Outcome {
        r0,
        duration_ns: elapsed_ns(start),
    })
}

/// Compile, then time only the run (as bpftool times only the kernel's run).
fn run_jit(
    prog: &input::Program,
    mem: &mut [u8],
    helpers: &HelperTable,
    opts: &CodegenOptions,
) -> Result<Outcome, Failure> {
    let prog = JitProgram::compile(&prog.insns, prog.endian, helpers, opts, None)
        .map_err(|e| Failure::new(&e, None))?;
    let mut ctx = ExecContext::new();
    let start = Instant::now();
    let r0 = prog.run(mem, &mut ctx).map_err(|e| match e {
        JitError::Fault {
            pc,
            code: FaultCode::InsnLimit,
            ..
        } => Failure::new(format_args!("{e}{LIMIT_HINT}"), Some(pc)),
        JitError::Fault { pc, .. } | JitError::UnknownFault { pc, .. } => {
            Failure::new(&e, Some(pc))
        }
    })?;
    Ok(Outcome {
        r0,
        duration_ns: elapsed_ns(start),
    })
}
