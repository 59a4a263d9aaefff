//! `bpfc disasm`: print a program as text. Raw little-endian instructions
//! are decoded as they are, without whole-program validation; an ELF object
//! is loaded and linked as for `bpfc dump`, and each of its programs (or the
//! one `--program` names) is printed under a header line, with a label line
//! where each function starts.

use crate::{input, output};
use anyhow::{bail, Context};
use bpfc_compiler::disasm::{disassemble, format_insn, Syntax};
use bpfc_compiler::isa::{decode_unvalidated, Endian, Insn};
use bpfc_compiler::loader::Program;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum SyntaxArg {
    /// `llvm-objdump -d` style: `r0 = *(u32 *)(r1 + 0x4)`, `call 0x1 # bpf_map_lookup_elem`.
    Llvm,
    /// The conformance-suite syntax `bpfc asm` reads: `ldxw %r0, [%r1+4]`, `call 1 # bpf_map_lookup_elem`.
    Conformance,
    /// The kernel's (verifier log, `bpftool prog dump xlated`): `(61) r0 = *(u32 *)(r1 +4)`, `(85) call bpf_map_lookup_elem#1`.
    Kernel,
}

#[derive(clap::Args)]
pub struct Args {
    /// Raw instructions (8 bytes each, little-endian), or an ELF object:
    /// each of its programs (or the one `--program` names) is linked and
    /// listed under a header line.
    pub file: PathBuf,
    #[command(flatten)]
    pub select: input::Select,
    /// Output syntax.
    #[arg(long, value_enum, default_value = "llvm")]
    pub syntax: SyntaxArg,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let name = args.file.display().to_string();
    let bytes = std::fs::read(&args.file).with_context(|| name.clone())?;
    let syntax = match args.syntax {
        SyntaxArg::Llvm => Syntax::Llvm,
        SyntaxArg::Conformance => Syntax::Conformance,
        SyntaxArg::Kernel => Syntax::Kernel,
    };
    if input::is_elf(&bytes) {
        let (listing, broken) = object_listing(&args, &bytes, syntax)?;
        output::print(listing)?;
        return match broken.as_slice() {
            [] => Ok(()),
            [one] => bail!("{name}: {one}"),
            many => bail!(
                "{name}: {} programs could not be loaded: {}",
                many.len(),
                many.join("; ")
            ),
        };
    }
    if args.select.program.is_some() || args.select.btf.is_some() {
        bail!("{name}: --program and --btf apply to ELF objects; this is a raw instruction file");
    }
    // No whole-program validation: a disassembler shows what is there.
    let insns =
        decode_unvalidated(&bytes, Endian::Little).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    output::print(disassemble(&insns, syntax))
}

/// The listing of an object's programs. Header and label lines are comments
/// in the conformance syntax, so one program's listing assembles back to its
/// linked instructions.
/// Also returns a message for each program that could not be loaded.
fn object_listing(
    args: &Args,
    bytes: &[u8],
    syntax: Syntax,
) -> anyhow::Result<(String, Vec<String>)> {
    let name = args.file.display().to_string();
    let obj = input::load_object(&args.file, bytes, &args.select)?;
    let programs: Vec<&Program> = match &args.select.program {
        Some(p) => vec![obj.program(p).with_context(|| name.clone())?],
        None => obj.programs.iter().collect(),
    };
    if programs.is_empty() {
        bail!("{name}: the object holds no programs");
    }
    let comment = match syntax {
        Syntax::Llvm | Syntax::Kernel => "",
        Syntax::Conformance => "# ",
    };
    let mut out = String::new();
    let mut broken = Vec::new();
    for (i, p) in programs.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "{comment}{} (section {}):", p.name, p.section);
        if let Some(e) = &p.error {
            // Listed, and reported once the good ones are printed.
            let _ = writeln!(out, "{comment}not loaded: {e}");
            broken.push(format!("program {}: {e}", p.name));
            continue;
        }
        for (pc, insn) in p.insns.iter().enumerate() {
            if let Some(f) = p.functions.iter().find(|f| f.start == pc) {
                let _ = writeln!(out, "{comment}<{}>:", f.name);
            }
            if *insn == Insn::LddwHigh {
                continue;
            }
            let text = format_insn(pc, insn, syntax);
            let _ = match syntax {
                Syntax::Llvm => writeln!(out, "{pc:>5}: {text}"),
                Syntax::Kernel => writeln!(out, "{pc:>4}: {text}"),
                Syntax::Conformance => writeln!(out, "{text}"),
            };
        }
    }
    Ok((out, broken))
}
