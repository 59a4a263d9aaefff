//! The `bpfc` command: one module per subcommand, each a thin layer that parses
//! its flags, calls the library and prints.

use clap::{Parser, Subcommand};
use std::io::Write as _;

mod asm;
mod btfdump;
mod compile;
mod disasm;
mod dump;
mod input;
mod map;
mod mapjson;
mod native;
mod output;
mod run;
mod targets;

#[derive(Parser)]
#[command(
    name = "bpfc",
    version,
    about = "Cranelift-backed eBPF compiler and ahead-of-time toolchain"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Assemble conformance-syntax assembly into raw instructions.
    Asm(asm::Args),
    /// Disassemble raw instructions.
    Disasm(disasm::Args),
    /// Show an object's programs, maps and globals with source-annotated
    /// disassembly, or a program's Cranelift IR and native code.
    Dump(dump::Args),
    /// Run a program and print its return value.
    Run(run::Args),
    /// Compile a program to a native object file for a target.
    Compile(compile::Args),
    /// List the targets `compile` supports.
    Targets(targets::Args),
    /// Inspect and change pinned maps with bpftool's map commands
    /// (`bpfc map help`).
    Map(map::Args),
}

/// bpftool takes its output options before the subcommand too (`bpftool
/// -j map dump ...`): move them after `map`, where `bpfc map` reads them.
fn args() -> Vec<String> {
    let mut args: Vec<String> = std::env::args().collect();
    let is_opt = |a: &str| matches!(a, "-j" | "--json" | "-p" | "--pretty" | "-jp" | "-pj");
    let lead = args.iter().skip(1).take_while(|a| is_opt(a)).count();
    if lead > 0 && args.get(1 + lead).is_some_and(|a| a == "map") {
        let opts: Vec<String> = args.drain(1..1 + lead).collect();
        args.splice(2..2, opts);
    }
    args
}

fn main() {
    let cli = Cli::parse_from(args());
    let result = match cli.command {
        Command::Asm(a) => asm::main(a),
        Command::Disasm(a) => disasm::main(a),
        Command::Dump(a) => dump::main(a),
        Command::Run(a) => run::main(a),
        Command::Compile(a) => compile::main(a),
        Command::Targets(a) => targets::main(a),
        Command::Map(a) => map::main(a),
    };
    match result {
        Ok(()) => {}
        // The reader of our output went away: not an error of ours.
        Err(e) if e.is::<output::Closed>() => {}
        Err(e) => {
            // Not `eprintln!`, which panics when standard error is closed too.
            let _ = writeln!(std::io::stderr(), "bpfc: error: {e:#}");
            std::process::exit(1);
        }
    }
}
