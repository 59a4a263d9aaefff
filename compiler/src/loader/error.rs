//! Typed errors of the ELF loader: every variant names where in the input the
//! problem is (section name and byte offset, or the BTF offset).

use thiserror::Error;

/// Why an object file could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum LoadError {
    #[error("not an ELF file: {reason}")]
    NotElf { reason: String },
    #[error("truncated or malformed ELF: {reason}")]
    Malformed { reason: String },
    #[error("ELF class {class} is not ELF64")]
    WrongClass { class: u8 },
    #[error("ELF machine {machine} is not EM_BPF (247)")]
    WrongMachine { machine: u16 },
    #[error("section {section}: {reason}")]
    BadSection { section: String, reason: String },
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
    #[error("section {section} offset {offset:#x}: {source}")]
    Decode {
        section: String,
        offset: u64,
        source: crate::isa::DecodeError,
    },
    #[error(
        "section {section} offset {offset:#x}: call target {target:#x} is not inside a function"
    )]
    BadCallTarget {
        section: String,
        offset: u64,
        target: u64,
    },
    #[error("map {map}: {reason}")]
    BadMap { map: String, reason: String },
    #[error("extern {name}: {reason}")]
    UnresolvedExtern { name: String, reason: String },
    #[error("{section} offset {offset:#x}: {reason}")]
    BadBtf {
        section: &'static str,
        offset: usize,
        reason: String,
    },
    #[error("CO-RE relocation in {section} at offset {offset:#x} ({kind}, access \"{access}\" on {type_name}): {reason}")]
    Core {
        section: String,
        offset: u64,
        kind: String,
        access: String,
        type_name: String,
        reason: String,
    },
    #[error("program {name} not found (available: {available})")]
    NoSuchProgram { name: String, available: String },
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
