//! `bpfc-conformance-plugin`: runs one bpf_conformance program with one of
//! bpfc's engines, speaking the suite's plugin protocol (see the docstring of
//! `run.py`):
//!
//! ```text
//! bpfc-conformance-plugin [MEM] --interp [--max-insns N] < program-hex
//! bpfc-conformance-plugin [MEM] --jit [--checked] [--max-insns N] < program-hex
//! bpfc-conformance-plugin [MEM] --aot [--target TRIPLE] [--checked] [--max-insns N] < program-hex
//!
//! `--aot` compiles a native object for the target (default x86_64 Linux),
//! links it with the C driver of `bpfc_testsuite::aot` and runs it natively
//! or under qemu-user.
//! ```
//!
//! MEM and the program on stdin are hex bytes (whitespace between bytes is
//! ignored). Prints r0 in hex and exits 0, or prints one error line to stderr
//! and exits 1.
//!
//! Every engine stops after [`DEFAULT_MAX_INSNS`] instructions unless
//! `--max-insns` says otherwise (0: no limit), so a looping program fails
//! with an error naming its pc instead of running into the runner's timeout
//! (compiled code counts a basic block at a time: `docs/abi.md`).
//!
//! Adding an engine: add an [`Engine`] variant, parse its flag in
//! [`parse_args`] and write its `run_*` function next to [`run_interp`].

use bpfc_compiler::codegen::{
    aot::compile_object, jit::JitProgram, parse_triple, Binding, CodegenOptions, Request,
};
use bpfc_compiler::interp;
use bpfc_compiler::isa::{decode_program, Endian, Insn};
use bpfc_runtime::{ExecContext, HelperTable};
use bpfc_testsuite::aot::{link_and_run, AotTarget};
use bpfc_testsuite::hex_decode;
use std::io::Read;
use std::process::ExitCode;

/// The engine a run uses.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Engine {
    /// The reference interpreter (`--interp`).
    Interp,
    /// Cranelift JIT code (`--jit`), bounds-checked with `--checked`.
    Jit,
    /// A native object for `--target`, linked and run (`--aot`).
    Aot,
}

#[derive(Debug)]
struct Invocation {
    engine: Engine,
    /// Bounds-checked code (`--checked`, JIT and AOT).
    checked: bool,
    /// Target triple of `--aot`.
    target: String,
    /// Input memory (empty when the case has none).
    mem: Vec<u8>,
    /// Instruction budget (`None`: no limit).
    max_insns: Option<u64>,
}

/// The instruction budget without `--max-insns`. The largest
/// bpf_conformance program runs fewer than a thousand instructions; ten
/// million is far beyond any of them and still stops a loop in a fraction
/// of a second (about 0.1 s in a debug build), well before `run.py`'s
/// per-test timeout.
const DEFAULT_MAX_INSNS: u64 = 10_000_000;

const USAGE: &str =
    "usage: bpfc-conformance-plugin [MEM-HEX] --interp | --jit [--checked] | --aot [--target TRIPLE] [--checked]  [--max-insns N]  (program hex on stdin)";

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Invocation, String> {
    let mut engine = None;
    let mut checked = false;
    let mut target = String::from("x86_64-unknown-linux-gnu");
    let mut mem = None;
    let mut max_insns = None;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--aot" => engine = Some(Engine::Aot),
            "--target" => {
                target = args
                    .next()
                    .ok_or_else(|| format!("--target needs a triple; {USAGE}"))?
            }
            "--interp" => engine = Some(Engine::Interp),
            "--max-insns" => {
                let n = args
                    .next()
                    .ok_or_else(|| format!("--max-insns needs a number; {USAGE}"))?;
                let n = n
                    .parse::<u64>()
                    .map_err(|e| format!("--max-insns {n}: {e}; {USAGE}"))?;
                max_insns = Some(n);
            }
            "--jit" => engine = Some(Engine::Jit),
            "--checked" => checked = true,
            a if a.starts_with('-') => return Err(format!("unknown option `{a}`; {USAGE}")),
            a => {
                if mem.is_some() {
                    return Err(format!("more than one memory argument; {USAGE}"));
                }
                mem = Some(hex_decode(a).map_err(|e| format!("memory argument: {e}"))?);
            }
        }
    }
    let engine = engine.ok_or_else(|| format!("no engine selected; {USAGE}"))?;
    Ok(Invocation {
        engine,
        checked,
        target,
        mem: mem.unwrap_or_default(),
        max_insns: match max_insns.unwrap_or(DEFAULT_MAX_INSNS) {
            0 => None,
            n => Some(n),
        },
    })
}

/// Run `insns` with the reference interpreter, at most `max_insns` instructions.
fn run_interp(insns: &[Insn], mem: &mut [u8], max_insns: Option<u64>) -> Result<u64, String> {
    let mut ctx = ExecContext::new();
    let opts = interp::Options {
        max_insns,
        ..Default::default()
    };
    interp::run(insns, mem, &HelperTable::conformance(), &mut ctx, &opts).map_err(|e| e.to_string())
}

/// The code generation options of `inv`.
fn codegen_options(inv: &Invocation) -> CodegenOptions {
    CodegenOptions {
        checked: inv.checked,
        insn_limit: inv.max_insns,
        ..Default::default()
    }
}

/// Compile `insns` with the Cranelift JIT and run the native code.
fn run_jit(insns: &[Insn], mem: &mut [u8], opts: &CodegenOptions) -> Result<u64, String> {
    let prog =
        JitProgram::new(insns, &HelperTable::conformance(), opts).map_err(|e| e.to_string())?;
    prog.run(mem, &mut ExecContext::new())
        .map_err(|e| e.to_string())
}

/// Compile `insns` to an object for `target`, link it with the C driver and run it.
fn run_aot(insns: &[Insn], mem: &[u8], target: &str, opts: &CodegenOptions) -> Result<u64, String> {
    let aot_target = AotTarget::for_triple(target).ok_or_else(|| {
        format!("--aot runs the Linux targets and x86_64-pc-windows-msvc, not {target}")
    })?;
    let triple = parse_triple(target).map_err(|e| e.to_string())?;
    let object = compile_object(
        &Request {
            insns,
            endian: Endian::Little,
            binding: &Binding::object(&[5]),
            opts,
            symbol: "bpfc_prog",
            facts: None,
        },
        &triple,
        None,
    )
    .map_err(|e| e.to_string())?;
    link_and_run(&aot_target, &object, "bpfc_prog", mem).map_err(|e| e.to_string())
}

fn run() -> Result<u64, String> {
    let mut inv = parse_args(std::env::args().skip(1))?;
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| format!("reading the program from stdin: {e}"))?;
    let bytes = hex_decode(&text).map_err(|e| format!("program: {e}"))?;
    let insns = decode_program(&bytes, Endian::Little).map_err(|e| e.to_string())?;
    let opts = codegen_options(&inv);
    match inv.engine {
        Engine::Interp => run_interp(&insns, &mut inv.mem, inv.max_insns),
        Engine::Jit => run_jit(&insns, &mut inv.mem, &opts),
        Engine::Aot => run_aot(&insns, &inv.mem, &inv.target, &opts),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(r0) => {
            println!("{r0:#x}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bpfc-conformance-plugin: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_memory_and_engine() {
        let inv = parse_args(args(&["00  01  ff", "--interp"])).unwrap();
        assert_eq!(inv.engine, Engine::Interp);
        assert_eq!(inv.mem, vec![0, 1, 0xff]);
        let inv = parse_args(args(&["--interp"])).unwrap();
        assert!(inv.mem.is_empty());
        assert_eq!(inv.max_insns, Some(DEFAULT_MAX_INSNS));
    }

    #[test]
    fn parses_the_instruction_budget() {
        let inv = parse_args(args(&["--interp", "--max-insns", "77"])).unwrap();
        assert_eq!(inv.max_insns, Some(77));
        let inv = parse_args(args(&["--max-insns", "0", "--interp"])).unwrap();
        assert_eq!(inv.max_insns, None, "0 is no limit");
        assert!(parse_args(args(&["--interp", "--max-insns"]))
            .unwrap_err()
            .contains("needs a number"));
        assert!(parse_args(args(&["--interp", "--max-insns", "x"]))
            .unwrap_err()
            .contains("--max-insns x"));
        let inv = parse_args(args(&["--jit", "--max-insns", "5"])).unwrap();
        assert_eq!(codegen_options(&inv).insn_limit, Some(5));
        let inv = parse_args(args(&["--aot", "--checked"])).unwrap();
        assert_eq!(codegen_options(&inv).insn_limit, Some(DEFAULT_MAX_INSNS));
        assert!(codegen_options(&inv).checked);
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(parse_args(args(&[])).unwrap_err().contains("no engine"));
        assert!(parse_args(args(&["--bogus"]))
            .unwrap_err()
            .contains("unknown option"));
        assert!(parse_args(args(&["0g", "--interp"]))
            .unwrap_err()
            .contains("memory"));
        assert!(parse_args(args(&["00", "01", "--interp"])).is_err());
    }
}
