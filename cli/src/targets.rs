//! `bpfc targets`: the triples `bpfc compile --target` accepts.

use bpfc_compiler::codegen::{parse_triple, SUPPORTED_TARGETS};
use std::fmt::Write as _;

#[derive(clap::Args)]
pub struct Args {}

pub fn main(_args: Args) -> anyhow::Result<()> {
    let mut text = String::new();
    for name in SUPPORTED_TARGETS {
        let t = parse_triple(name)?;
        let format = match t.binary_format {
            target_lexicon::BinaryFormat::Elf => "ELF",
            target_lexicon::BinaryFormat::Macho => "Mach-O",
            target_lexicon::BinaryFormat::Coff => "COFF",
            _ => "other",
        };
        let _ = writeln!(
            text,
            "{name:<30} {format:<7} {}",
            t.endianness()
                .map(|e| format!("{e:?}").to_lowercase())
                .unwrap_or_default()
        );
    }
    crate::output::print(text)
}
