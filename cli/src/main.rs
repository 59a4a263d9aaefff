//! The `bpfc` command: one module per subcommand, each a thin layer that parses
//! its flags, calls the library and prints.

use clap::{Parser, Subcommand};
use std::io::Write as _;

mod asm;
mod compile;
mod disasm;
mod dump;
mod input;
mod native;
mod output;
mod run;
mod targets;
mod verify;

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
    /// Check programs with the kernel verifier's rules (exit 0 accepted,
    /// 1 rejected, 2 usage or load error).
    Verify(verify::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Asm(a) => asm::main(a),
        Command::Disasm(a) => disasm::main(a),
        Command::Dump(a) => dump::main(a),
        Command::Run(a) => run::main(a),
        Command::Compile(a) => compile::main(a),
        Command::Targets(a) => targets::main(a),
        Command::Verify(a) => match verify::main(a) {
            Ok(status) => std::process::exit(status),
            Err(e) if e.is::<output::Closed>() => Ok(()),
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "bpfc: error: {e:#}");
                std::process::exit(2);
            }
        },
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
