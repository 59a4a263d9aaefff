//! Typed errors of the ELF loader: every variant names where in the input the
//! problem is (section name and byte offset, or the BTF offset).

use thiserror::Error;

/// Why an object file could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum LoadError {
    #[error("not an ELF file ({file_size} bytes): {reason}")]
    NotElf { file_size: u64, reason: String },
    /// The ELF container itself (header, section header table, string and
    /// symbol tables) is broken; `offset` is a file offset.
    #[error("malformed ELF at file offset {offset:#x} (file size {file_size:#x}): {reason}")]
    Malformed {
        offset: u64,
        file_size: u64,
        reason: String,
    },
    #[error("ELF header offset 0x4: ELF class {class} is not ELF64")]
    WrongClass { class: u8 },
    #[error("ELF header offset 0x12: ELF machine {machine} is not EM_BPF (247)")]
    WrongMachine { machine: u16 },
    /// `offset` is within the section (0 for the section as a whole).
    #[error("section {section} offset {offset:#x}: {reason}")]
    BadSection {
        section: String,
        offset: u64,
        reason: String,
    },
    #[error("section {section} offset {offset:#x}: symbol {symbol} is missing or undefined")]
    MissingSymbol {
        section: String,
        offset: u64,
        symbol: String,
    },
    #[error("section {section} offset {offset:#x}: relocation type {r_type} is not supported")]
    BadRelocationType {
        section: String,
        offset: u64,
        r_type: u32,
    },
    #[error(
        "section {section} offset {offset:#x}: relocation is outside the section (size {size:#x})"
    )]
    RelocationOutOfRange {
        section: String,
        offset: u64,
        size: u64,
    },
    #[error("section {section} offset {offset:#x}: relocation against {symbol} targets a {found}, expected {expected}")]
    BadRelocationTarget {
        section: String,
        offset: u64,
        symbol: String,
        found: String,
        expected: &'static str,
    },
    /// `error` names the instruction by its index in the section.
    #[error("section {section} offset {offset:#x}: {error}")]
    Decode {
        section: String,
        offset: u64,
        error: crate::isa::DecodeError,
    },
    #[error(
        "section {section} offset {offset:#x}: call target {target:#x} is not inside a function"
    )]
    BadCallTarget {
        section: String,
        offset: u64,
        target: u64,
    },
    /// `offset` is where the map's definition starts in `section`.
    #[error("section {section} offset {offset:#x}: map {map}: {reason}")]
    BadMap {
        map: String,
        section: String,
        offset: u64,
        reason: String,
    },
    /// An extern (`.kconfig` variable, `__ksym`, kfunc) with no value;
    /// `section`/`offset` is the instruction using it, or the symbol table
    /// entry when no instruction is concerned.
    #[error("section {section} offset {offset:#x}: extern {name}: {reason}")]
    UnresolvedExtern {
        name: String,
        section: String,
        offset: u64,
        reason: String,
    },
    #[error("{section} offset {offset:#x}: {reason}")]
    BadBtf {
        section: &'static str,
        offset: usize,
        reason: String,
    },
    #[error("section {section} instruction {insn} (offset {offset:#x}): CO-RE {kind} relocation, access \"{access}\" on {type_name}: {reason}")]
    Core {
        section: String,
        offset: u64,
        /// Instruction index in the section (`offset / 8`).
        insn: u64,
        kind: String,
        access: String,
        type_name: String,
        reason: String,
    },
    #[error("program {name} not found (available: {available})")]
    NoSuchProgram { name: String, available: String },
    #[error("section {name} holds {} programs, so the name is ambiguous: choose one of {}", candidates.len(), candidates.join(", "))]
    AmbiguousProgram {
        name: String,
        candidates: Vec<String>,
    },
}

impl LoadError {
    pub(crate) fn btf(section: &'static str, offset: usize, reason: impl Into<String>) -> Self {
        LoadError::BadBtf {
            section,
            offset,
            reason: reason.into(),
        }
    }
}
