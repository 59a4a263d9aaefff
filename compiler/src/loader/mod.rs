//! The ELF object loader: turns what `clang -O2 -g -target bpf` writes for
//! libbpf into a linked, relocated, typed [`Object`]: programs with their
//! subprograms appended, map definitions (BTF-defined, legacy, global data and
//! `.kconfig`), BTF, line and function info, with CO-RE relocations applied.
//!
//! Submodules: [`elf`] reads the container, [`sections`] classifies program
//! section names, [`maps`] builds map definitions (BTF, legacy, global data,
//! struct_ops, `.kconfig`), [`reloc`] links programs, [`btf`]/[`btf_ext`]
//! parse type and debug info, [`core`] resolves CO-RE. docs/design.md ("The
//! ELF loader") lists the rules and the `.kconfig` defaults.

// Errors carry section names and offsets by value; loading is not a hot path.
#![allow(clippy::result_large_err)]

pub mod btf;
pub mod btf_ext;
pub mod core;
mod dwarf;
mod elf;
pub mod error;
mod externs;
mod funcs;
pub mod host;
mod maps;
mod reloc;
pub mod sections;

pub use btf::Btf;
pub use btf_ext::{BtfExt, CoreReloKind};
pub use error::LoadError;
pub use host::host_kconfig;
pub use sections::{classify, ProgType, ProgramKind};

use crate::isa::{Endian, Insn};
use std::collections::BTreeMap;

/// How to load an object.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// BTF to resolve CO-RE relocations against (for example
    /// [`Btf::parse_target`] of `/sys/kernel/btf/vmlinux`); `None` resolves
    /// against the object's own BTF, so programs run as compiled.
    pub target_btf: Option<Btf>,
    /// Values of `.kconfig` externs; [`LoadOptions::default`] fills in
    /// [`default_kconfig`].
    pub kconfig: BTreeMap<String, u64>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            target_btf: None,
            kconfig: default_kconfig(),
        }
    }
}

/// The documented defaults for `.kconfig` externs (docs/design.md, "`.kconfig`
/// values"), a 6.8 x86_64 kernel: `LINUX_KERNEL_VERSION` is
/// `KERNEL_VERSION(6, 8, 0)` = 0x060800, libbpf's other virtual externs
/// `LINUX_HAS_BPF_COOKIE` and `LINUX_HAS_SYSCALL_WRAPPER` are 1, `CONFIG_HZ`
/// is 250, and the BPF options `CONFIG_BPF`, `CONFIG_BPF_SYSCALL`,
/// `CONFIG_BPF_JIT` and `CONFIG_DEBUG_INFO_BTF` are `y` (1). [`host_kconfig`]
/// reads the running kernel's instead. Other externs follow libbpf (see
/// [`Program::error`]): a `__weak` `CONFIG_*` or `LINUX_*` one reads 0, a
/// strong one fails the programs that use it.
pub fn default_kconfig() -> BTreeMap<String, u64> {
    [
        ("LINUX_KERNEL_VERSION", 0x060800),
        ("LINUX_HAS_BPF_COOKIE", 1),
        ("LINUX_HAS_SYSCALL_WRAPPER", 1),
        ("CONFIG_HZ", 250),
        ("CONFIG_BPF", 1),
        ("CONFIG_BPF_SYSCALL", 1),
        ("CONFIG_BPF_JIT", 1),
        ("CONFIG_DEBUG_INFO_BTF", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// A loaded object file.
#[derive(Clone, Debug)]
pub struct Object {
    pub endian: Endian,
    /// Contents of the `license` section.
    pub license: Option<String>,
    /// Contents of the `version` section.
    pub kernel_version: Option<u32>,
    /// Programs in section order, then symbol order.
    pub programs: Vec<Program>,
    /// Maps; instructions refer to them by index.
    pub maps: Vec<MapDef>,
    /// Global data sections (each backed by a map in [`Object::maps`]).
    pub data: Vec<DataSection>,
    pub btf: Option<Btf>,
    pub btf_ext: Option<BtfExt>,
}

impl Object {
    /// Load an object with default options.
    pub fn parse(bytes: &[u8]) -> Result<Object, LoadError> {
        load(bytes, &LoadOptions::default())
    }

    /// The program named `name`, or the only program of section `name`
    /// (a section with several is [`LoadError::AmbiguousProgram`], listing them).
    pub fn program(&self, name: &str) -> Result<&Program, LoadError> {
        if let Some(p) = self.programs.iter().find(|p| p.name == name) {
            return Ok(p);
        }
        let in_section: Vec<&Program> =
            self.programs.iter().filter(|p| p.section == name).collect();
        match in_section.as_slice() {
            [p] => Ok(p),
            [] => Err(LoadError::NoSuchProgram {
                name: name.to_string(),
                available: self
                    .programs
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
            many => Err(LoadError::AmbiguousProgram {
                name: name.to_string(),
                candidates: many.iter().map(|p| p.name.clone()).collect(),
            }),
        }
    }

    pub fn map_index(&self, name: &str) -> Option<usize> {
        self.maps.iter().position(|m| m.name == name)
    }
}

/// A linked program: its entry function at pc 0, called functions appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    pub name: String,
    /// The ELF section the entry function is in.
    pub section: String,
    pub kind: ProgramKind,
    /// Relocated instructions. Local calls and `BPF_PSEUDO_FUNC` loads are
    /// pc-relative within this vector; map loads use `LddwSrc::MapIdx` and
    /// `LddwSrc::MapIdxValue` with indices into [`Object::maps`].
    pub insns: Vec<Insn>,
    /// The functions placed in `insns`, entry first.
    pub functions: Vec<Function>,
    /// Source positions, sorted by pc.
    pub line_info: Vec<LineInfo>,
    /// `.BTF.ext` function info (pc, BTF type id of the `FUNC`), sorted by pc.
    pub func_info: Vec<FuncInfo>,
    /// Number of CO-RE relocations applied (poisoned ones included).
    pub core_relos: usize,
    /// Instructions whose CO-RE relocation could not be applied, replaced
    /// with libbpf's poison call ([`core::POISON`]), by pc.
    pub poisoned: Vec<PoisonedInsn>,
    /// Kernel symbols the program uses that bpfc cannot resolve (kfuncs,
    /// `__ksym` variables), by pc. They fail only this program, and only
    /// when it is to be executed or compiled ([`Program::check_externs`]).
    pub externs: Vec<ExternRef>,
    /// Why the program cannot be loaded (its instructions are then empty);
    /// the other programs of the object are unaffected.
    pub error: Option<LoadError>,
}

/// An instruction replaced by the poison call: which CO-RE relocation and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoisonedInsn {
    /// The instruction in [`Program::insns`] (an `lddw` is poisoned in both slots).
    pub pc: usize,
    /// Where the instruction is in the object.
    pub section: String,
    pub offset: u64,
    /// The relocation: kind (`byte_off` ...), access string and local type.
    pub kind: String,
    pub access: String,
    pub type_name: String,
    pub reason: String,
}

impl std::fmt::Display for PoisonedInsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CO-RE {} relocation, access \"{}\" on {} (section {} instruction {}): {}",
            self.kind,
            self.access,
            self.type_name,
            self.section,
            self.offset / 8,
            self.reason
        )
    }
}

/// What kind of kernel symbol an [`ExternRef`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExternKind {
    /// A kernel function called with `BPF_PSEUDO_KFUNC_CALL`.
    Kfunc,
    /// A kernel variable loaded with `BPF_PSEUDO_BTF_ID`.
    Ksym,
}

/// One use of an unresolved kernel symbol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExternRef {
    pub name: String,
    pub kind: ExternKind,
    /// The instruction in [`Program::insns`].
    pub pc: usize,
    /// Where the instruction is in the object.
    pub section: String,
    pub offset: u64,
}

impl Program {
    /// The program's load error, if it has one (see [`Program::error`]).
    pub fn check_loaded(&self) -> Result<(), LoadError> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// The poisoned instruction at `pc`, if it is one.
    pub fn poisoned_at(&self, pc: usize) -> Option<&PoisonedInsn> {
        self.poisoned.iter().find(|p| p.pc == pc)
    }

    /// An error for the first kernel symbol the program needs and bpfc
    /// cannot provide, naming the symbol and the instruction.
    pub fn check_externs(&self) -> Result<(), LoadError> {
        match self.externs.first() {
            None => Ok(()),
            Some(e) => Err(LoadError::UnresolvedExtern {
                name: e.name.clone(),
                section: e.section.clone(),
                offset: e.offset,
                reason: format!(
                    "{} used by program {} at instruction {} needs the kernel's BTF id, which bpfc cannot resolve",
                    match e.kind {
                        ExternKind::Kfunc => "kfunc",
                        ExternKind::Ksym => "__ksym variable",
                    },
                    self.name,
                    e.pc
                ),
            }),
        }
    }

    /// The line info that applies at `pc` (the last one at or before it).
    pub fn line_at(&self, pc: usize) -> Option<&LineInfo> {
        let i = self.line_info.partition_point(|l| l.pc <= pc);
        i.checked_sub(1).and_then(|i| self.line_info.get(i))
    }
}

/// One function placed in a program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    pub name: String,
    pub section: String,
    /// First pc in [`Program::insns`].
    pub start: usize,
    /// Length in slots.
    pub len: usize,
    /// Byte offset of the function in its ELF section.
    pub section_offset: u64,
}

/// A source position of an instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineInfo {
    pub pc: usize,
    pub file: String,
    pub line: u32,
    pub col: u32,
    /// The text of the source line.
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FuncInfo {
    pub pc: usize,
    pub type_id: u32,
    /// Name of the BTF `FUNC` type.
    pub name: String,
}

/// Where a map definition came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapOrigin {
    /// A BTF-defined map in `.maps`.
    Btf,
    /// A `struct bpf_map_def` in the legacy `maps` section.
    Legacy,
    /// A global data section.
    Global(GlobalKind),
    /// The map holding `.kconfig` extern values.
    Kconfig,
    /// An inner map template (`values` of a map-in-map).
    Inner,
    /// A variable of `.struct_ops` or `.struct_ops.link`.
    StructOps,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlobalKind {
    Data,
    Rodata,
    Bss,
}

/// An initial value of a prog array or map-in-map slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapInit {
    /// Index into [`Object::maps`].
    Map(usize),
    /// Name of a program of the object.
    Program(String),
}

/// A map definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapDef {
    pub name: String,
    pub origin: MapOrigin,
    /// `enum bpf_map_type` number.
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub numa_node: u32,
    pub map_extra: u64,
    /// libbpf's `pinning` (0 none, 1 by name).
    pub pinning: u32,
    /// BTF type ids of key and value, when given by type.
    pub key_type_id: Option<u32>,
    pub value_type_id: Option<u32>,
    /// The inner map definition of a map-in-map.
    pub inner: Option<Box<MapDef>>,
    /// Initial slots `(index, value)` of prog arrays and maps of maps.
    pub initial: Vec<(u32, MapInit)>,
    /// Initial image of the single value (global data, `.kconfig` and
    /// struct_ops maps). Shorter than `value_size` (empty for `.bss`) means
    /// the rest is zeroes.
    pub data: Vec<u8>,
    /// The fields after the first five of a longer legacy definition.
    pub legacy: Option<LegacyDef>,
    /// What a struct_ops map implements.
    pub struct_ops: Option<StructOps>,
}

/// A legacy `maps` definition longer than `struct bpf_map_def`, read as
/// iproute2's `struct bpf_elf_map` (its `pinning` is [`MapDef::pinning`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegacyDef {
    /// Bytes per definition in the section.
    pub def_size: u32,
    pub id: u32,
    pub inner_id: u32,
    pub inner_idx: u32,
}

/// A map of `.struct_ops` or `.struct_ops.link`: a kernel struct of function
/// pointers (`tcp_congestion_ops`, `sched_ext_ops` ...) filled with programs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StructOps {
    /// Name of the struct type ([`MapDef::value_type_id`] is its BTF id).
    pub type_name: String,
    /// Declared in `.struct_ops.link` (attached through a BPF link; the map
    /// also has `BPF_F_LINK`).
    pub link: bool,
    /// Function-pointer members set to programs, by member offset.
    pub funcs: Vec<StructOpsFunc>,
}

/// One function-pointer member of a struct_ops map and its program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StructOpsFunc {
    pub member: String,
    /// Byte offset of the member in the struct.
    pub offset: u32,
    /// Name of the program (a `SEC("struct_ops/...")` function).
    pub program: String,
}

impl MapDef {
    /// libbpf's name of the map type.
    pub fn type_name(&self) -> &'static str {
        maps::map_type_name(self.map_type)
    }
}

/// A global data section and the map that holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataSection {
    pub name: String,
    pub kind: GlobalKind,
    pub size: u64,
    pub map_index: usize,
}

/// Load an object file.
pub fn load(bytes: &[u8], opts: &LoadOptions) -> Result<Object, LoadError> {
    let elf = elf::ElfFile::parse(bytes)?;
    let endian = elf.endian;
    let license = elf.section_by_name("license").map(|(_, s)| {
        let end = s.data.iter().position(|&b| b == 0).unwrap_or(s.data.len());
        String::from_utf8_lossy(&s.data[..end]).into_owned()
    });
    let kernel_version = match elf.section_by_name("version") {
        Some((_, s)) => {
            let b: [u8; 4] = s
                .data
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| LoadError::BadSection {
                    section: "version".into(),
                    offset: 0,
                    reason: format!("{} bytes, expected 4", s.data.len()),
                })?;
            Some(endian.u32(b))
        }
        None => None,
    };
    let btf = match elf.section_by_name(".BTF") {
        Some((_, s)) => Some(Btf::parse(&s.data, endian)?),
        None => None,
    };
    // The object keeps its BTF as written; maps read the fixed-up copy.
    let fixed = btf.clone().map(|mut b| {
        fixup_datasecs(&elf, &mut b);
        b
    });
    let btf_ext = match (elf.section_by_name(".BTF.ext"), &btf) {
        (Some((_, s)), Some(b)) => Some(BtfExt::parse(&s.data, endian, b)?),
        _ => None,
    };
    let gcc = elf.written_by_gcc();
    let externs = externs::classify(&elf, btf.as_ref(), gcc);
    let layout = maps::collect(&elf, fixed.as_ref(), &externs, &opts.kconfig)?;
    let core = match (&btf, &btf_ext) {
        (Some(b), Some(e)) => core::resolve_all(&elf, b, e, opts.target_btf.as_ref(), gcc),
        _ => core::Outcomes::new(),
    };
    let programs = reloc::link_all(&reloc::Context {
        elf: &elf,
        layout: &layout,
        btf: btf.as_ref(),
        ext: btf_ext.as_ref(),
        core: &core,
        externs: &externs,
        gcc,
    })?;
    Ok(Object {
        endian,
        license,
        kernel_version,
        programs,
        maps: layout.maps,
        data: layout.data,
        btf,
        btf_ext,
    })
}

/// As libbpf does before using them: a datasec of size 0 gets its ELF
/// section's size and its variables the offsets of their ELF symbols
/// (GCC, and older clang, leave both zero).
fn fixup_datasecs(elf: &elf::ElfFile, btf: &mut Btf) {
    let var_names: Vec<Option<(String, u32)>> = btf
        .types
        .iter()
        .map(|t| match t.kind {
            btf::TypeKind::Var { linkage, .. } => Some((t.name.clone(), linkage)),
            _ => None,
        })
        .collect();
    for t in &mut btf.types {
        let btf::TypeKind::Datasec { size, vars } = &mut t.kind else {
            continue;
        };
        if *size != 0 || t.name == ".kconfig" || t.name == ".ksyms" {
            continue;
        }
        let Some((idx, sec)) = elf.section_by_name(&t.name) else {
            continue;
        };
        let Ok(sec_size) = u32::try_from(sec.size) else {
            continue;
        };
        *size = sec_size;
        for v in vars.iter_mut() {
            // Static (0) and extern (2) variables keep what they have.
            let Some(Some((name, 1))) = var_names.get(v.type_id as usize) else {
                continue;
            };
            if let Some(sym) = elf.symbols.iter().find(|s| {
                s.section == Some(idx) && &s.name == name && s.kind == object::elf::STT_OBJECT
            }) {
                if let Ok(off) = u32::try_from(sym.value) {
                    v.offset = off;
                }
            }
        }
    }
}
