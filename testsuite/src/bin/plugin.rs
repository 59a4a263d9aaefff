//! `bpfc-conformance-plugin`: runs one bpf_conformance program with one of
//! bpfc's engines, speaking the suite's plugin protocol (see the docstring of
//! `run.py`):
//!
//! ```text
//! bpfc-conformance-plugin [MEM] --interp        < program-hex
//! bpfc-conformance-plugin [MEM] --jit [--checked] < program-hex
//! ```
//!
//! MEM and the program on stdin are hex bytes (whitespace between bytes is
//! ignored). Prints r0 in hex and exits 0, or prints one error line to stderr
//! and exits 1.
//!
//! Adding an engine: add an [`Engine`] variant, parse its flag in
//! [`parse_args`] and write its `run_*` function next to [`run_interp`].

use bpfc_compiler::codegen::{jit::JitProgram, CodegenOptions};
use bpfc_compiler::interp;
use bpfc_compiler::isa::{decode_program, Endian, Insn};
use bpfc_runtime::{ExecContext, HelperTable};
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
}

#[derive(Debug)]
struct Invocation {
    engine: Engine,
    /// Bounds-checked code (`--checked`, JIT only).
    checked: bool,
    /// Input memory (empty when the case has none).
    mem: Vec<u8>,
}

const USAGE: &str =
    "usage: bpfc-conformance-plugin [MEM-HEX] --interp|--jit [--checked]  (program hex on stdin)";

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Invocation, String> {
    let mut engine = None;
    let mut checked = false;
    let mut mem = None;
    for arg in args {
        match arg.as_str() {
            "--interp" => engine = Some(Engine::Interp),
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
    Ok(Invocation {
        engine: engine.ok_or_else(|| format!("no engine selected; {USAGE}"))?,
        checked,
        mem: mem.unwrap_or_default(),
    })
}

/// Run `insns` with the reference interpreter.
fn run_interp(insns: &[Insn], mem: &mut [u8]) -> Result<u64, String> {
    let mut ctx = ExecContext::new();
    interp::run(
        insns,
        mem,
        &HelperTable::conformance(),
        &mut ctx,
        &interp::Options::default(),
    )
    .map_err(|e| e.to_string())
}

/// Compile `insns` with the Cranelift JIT and run the native code.
fn run_jit(insns: &[Insn], mem: &mut [u8], checked: bool) -> Result<u64, String> {
    let opts = CodegenOptions {
        checked,
        ..Default::default()
    };
    let prog =
        JitProgram::new(insns, &HelperTable::conformance(), &opts).map_err(|e| e.to_string())?;
    prog.run(mem, &mut ExecContext::new())
        .map_err(|e| e.to_string())
}

fn run() -> Result<u64, String> {
    let mut inv = parse_args(std::env::args().skip(1))?;
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| format!("reading the program from stdin: {e}"))?;
    let bytes = hex_decode(&text).map_err(|e| format!("program: {e}"))?;
    let insns = decode_program(&bytes, Endian::Little).map_err(|e| e.to_string())?;
    match inv.engine {
        Engine::Interp => run_interp(&insns, &mut inv.mem),
        Engine::Jit => run_jit(&insns, &mut inv.mem, inv.checked),
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
