//! Reading the program a subcommand works on. Every subcommand goes through
//! [`load`], so each accepts the same kinds of input.

use anyhow::Context as _;
use bpfc_compiler::isa::{decode_program, Endian, Insn};
use std::path::Path;

/// A program ready for an engine or the code generator.
pub struct Program {
    pub insns: Vec<Insn>,
    pub endian: Endian,
    /// A name for symbols and messages (the file stem for raw files).
    pub name: String,
}

/// Load a program file: raw little-endian 8-byte instructions.
pub fn load(path: &Path) -> anyhow::Result<Program> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).with_context(|| file.clone())?;
    let insns = decode_program(&bytes, Endian::Little).with_context(|| file.clone())?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "prog".into());
    Ok(Program {
        insns,
        endian: Endian::Little,
        name,
    })
}

/// Read an optional input-memory file.
pub fn read_mem(path: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    match path {
        Some(p) => std::fs::read(p).with_context(|| p.display().to_string()),
        None => Ok(Vec::new()),
    }
}

/// A C identifier made from `name`, for the exported symbol.
pub fn symbol_for(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert_str(0, "bpf_");
    }
    s
}
