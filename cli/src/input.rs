//! Reading the program a subcommand works on: raw instructions or an ELF
//! object (one program chosen with `--program`). Every subcommand goes
//! through [`load`], so each accepts the same inputs and names errors the
//! same way (file, program, instruction, source line).

use anyhow::{bail, Context as _};
use bpfc_compiler::isa::{decode_program, Endian, Insn};
use bpfc_compiler::loader::{self, LineInfo, LoadOptions, Object};
use std::path::{Path, PathBuf};

/// Flags that choose what to load from a file.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Select {
    /// ELF objects: the program to use (its name, or a section holding one program).
    #[arg(long, value_name = "NAME")]
    pub program: Option<String>,
    /// ELF objects: resolve CO-RE relocations against this BTF (e.g. /sys/kernel/btf/vmlinux).
    #[arg(long, value_name = "FILE")]
    pub btf: Option<PathBuf>,
}

/// A program ready for an engine or the code generator.
pub struct Program {
    pub insns: Vec<Insn>,
    pub endian: Endian,
    /// A name for symbols and messages (the program's, or the raw file's stem).
    pub name: String,
    /// Where each instruction comes from, when the object has line info.
    pub line_info: Vec<LineInfo>,
}

impl Program {
    /// ` (file.c:12: source text)` for messages about `pc`, or nothing.
    pub fn source_at(&self, pc: usize) -> String {
        let i = self.line_info.partition_point(|l| l.pc <= pc);
        match i.checked_sub(1).and_then(|i| self.line_info.get(i)) {
            Some(l) => format!(" ({}:{}: {})", l.file, l.line, l.text.trim()),
            None => String::new(),
        }
    }
}

/// Whether `bytes` are an ELF file.
pub fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}

/// Load and link an ELF object.
pub fn load_object(path: &Path, bytes: &[u8], sel: &Select) -> anyhow::Result<Object> {
    let mut opts = LoadOptions::default();
    if let Some(b) = &sel.btf {
        opts.target_btf = Some(std::fs::read(b).with_context(|| b.display().to_string())?);
    }
    loader::load(bytes, &opts).with_context(|| path.display().to_string())
}

/// Load a program: an ELF object's (see [`Select`]) or raw little-endian instructions.
pub fn load(path: &Path, sel: &Select) -> anyhow::Result<Program> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).with_context(|| file.clone())?;
    if !is_elf(&bytes) {
        if sel.program.is_some() || sel.btf.is_some() {
            bail!(
                "{file}: --program and --btf apply to ELF objects; this is a raw instruction file"
            );
        }
        let insns = decode_program(&bytes, Endian::Little).with_context(|| file.clone())?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "prog".into());
        return Ok(Program {
            insns,
            endian: Endian::Little,
            name,
            line_info: Vec::new(),
        });
    }
    let obj = load_object(path, &bytes, sel)?;
    let prog = match (&sel.program, obj.programs.as_slice()) {
        (Some(name), _) => obj.program(name).with_context(|| file.clone())?,
        (None, [only]) => only,
        (None, []) => bail!("{file}: the object holds no programs"),
        (None, many) => {
            let names: Vec<&str> = many.iter().map(|p| p.name.as_str()).collect();
            bail!(
                "{file}: the object holds {} programs ({}); choose one with --program",
                many.len(),
                names.join(", ")
            )
        }
    };
    Ok(Program {
        insns: prog.insns.clone(),
        endian: obj.endian,
        name: prog.name.clone(),
        line_info: prog.line_info.clone(),
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
