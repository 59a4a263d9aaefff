//! The `bpfc` command: one module per subcommand, each a thin layer that parses
//! its flags, calls the library and prints.

use clap::{Parser, Subcommand};
use std::io::Write as _;

mod asm;
mod btfdump;
mod compile;
mod disasm;
mod dump;
mod gen;
mod input;
mod map;
mod mapjson;
mod native;
mod output;
mod pcap;
mod run;
mod targets;
mod verify;

/// What every `--help` ends with: the exit statuses.
const EXIT_STATUS: &str = "\
Exit status: 0 on success; 1 when the command fails (unreadable or invalid \
input, a program that faults, a file that cannot be written), after a \
one-line `bpfc: error:` message; 2 for a usage error (an unknown or missing \
flag or argument, a malformed value), as clap reports them.";

#[derive(Parser)]
#[command(
    name = "bpfc",
    version,
    about = "Cranelift-backed eBPF compiler and ahead-of-time toolchain",
    after_help = EXIT_STATUS
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Assemble conformance-syntax assembly into raw instructions.
    #[command(after_help = EXIT_STATUS)]
    Asm(asm::Args),
    /// Disassemble raw instructions, or the programs of an ELF object.
    #[command(after_help = EXIT_STATUS)]
    Disasm(disasm::Args),
    /// Show an object's programs, maps and globals with source-annotated
    /// disassembly, or a program's Cranelift IR and native code.
    #[command(after_help = EXIT_STATUS)]
    Dump(dump::Args),
    /// Run a program and print its return value.
    #[command(after_help = EXIT_STATUS)]
    Run(run::Args),
    /// Compile a program to a native object file for a target.
    #[command(after_help = EXIT_STATUS)]
    Compile(compile::Args),
    /// Generate code for host applications from an object (`gen skeleton`).
    #[command(after_help = EXIT_STATUS)]
    Gen(gen::Args),
    /// List the targets `compile` supports.
    #[command(after_help = EXIT_STATUS)]
    Targets(targets::Args),
    /// Check programs with the kernel verifier's rules (exit 0 accepted,
    /// 1 rejected, 2 usage or load error).
    Verify(verify::Args),
    /// Inspect and change pinned maps with bpftool's map commands, output
    /// and exit statuses (`bpfc map help`).
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
        Command::Gen(a) => gen::main(a),
        Command::Map(a) => map::main(a),
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
