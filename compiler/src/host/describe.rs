//! An ELF object made ready for a host: every program verified (the
//! verifier is the gate), its context accesses converted, its helpers and
//! maps checked, and the descriptor ([`Desc`]) with the code generator's
//! [`Binding`] through the object's map and helper tables. `bpfc compile`
//! writes the result as a native object; [`super::open_bytes`] compiles
//! the same description in memory, so both paths load through one
//! [`HostObject`](bpfc_runtime::host::object::HostObject).

use crate::bind::{self, map_spec, BindError};
use crate::codegen::aot::{self, Described, DescribedProgram};
use crate::codegen::{Binding, CodegenOptions, MapSlot, OptLevel};
use crate::isa::{CallTarget, Endian, Insn, LddwSrc};
use crate::loader::{
    Btf, GlobalKind, LineInfo, MapDef, MapInit, MapOrigin, Object, PoisonedInsn, ProgType, Program,
};
use crate::progtype::convert::{self, CtxKind};
use crate::verifier::Facts;
use bpfc_runtime::abi::CORE_POISON_HELPER;
use bpfc_runtime::helpers::{ids, kernel_name};
use bpfc_runtime::host::desc::{
    Desc, MapDesc, MapKind, ProgDesc, SlotInit, CTX_BYTES, CTX_SKB, CTX_XDP,
};
use bpfc_runtime::HelperTable;
use std::collections::BTreeSet;
use std::path::Path;
use thiserror::Error;

/// How an object is described.
#[derive(Clone, Debug)]
pub struct DescribeOptions {
    /// The object's name, the prefix of every symbol (a C identifier).
    pub name: String,
    /// Only this program (its name or section); `None`: all of them.
    pub program: Option<String>,
    /// Verify every program as this type instead of its section's.
    pub prog_type: Option<ProgType>,
    /// Skip the verifier (code is then compiled checked unless `unchecked`).
    pub no_verify: bool,
    pub opt_level: OptLevel,
    /// Check every memory access at run time.
    pub checked: bool,
    /// Compile unverified code without bounds checks.
    pub unchecked: bool,
    pub insn_limit: Option<u64>,
    /// Helper ids `callx` may dispatch to (each one the runtime provides).
    pub callx_helpers: Vec<u32>,
    /// Appended to the errors about a program that cannot be compiled
    /// (the CLI says how to choose programs).
    pub hint: String,
    /// Size of a kprobe's registers on the target
    /// ([`crate::progtype::ctx::pt_regs_size`]).
    pub pt_regs: u32,
}

impl DescribeOptions {
    /// Defaults: every program, verified, optimised, named `name`.
    pub fn new(name: &str) -> DescribeOptions {
        DescribeOptions {
            name: name.to_string(),
            program: None,
            prog_type: None,
            no_verify: false,
            opt_level: OptLevel::Speed,
            checked: false,
            unchecked: false,
            insn_limit: None,
            callx_helpers: Vec::new(),
            hint: String::new(),
            pt_regs: crate::progtype::ctx::HOST_PT_REGS,
        }
    }
}

/// Why an object cannot be described; the message names the program,
/// instruction and source line, not the file (callers prefix it).
#[derive(Debug, Error)]
pub enum DescribeError {
    /// Binding or verification failed (a verifier rejection is
    /// [`BindError::Rejected`]).
    #[error("{0}")]
    Bind(BindError),
    #[error("{0}")]
    Other(String),
}

/// One program of a [`Description`].
#[derive(Debug)]
pub struct DescribedCode {
    /// The instructions to compile (context accesses converted).
    pub insns: Vec<Insn>,
    pub facts: Option<Facts>,
}

/// An object ready for the code generator.
#[derive(Debug)]
pub struct Description {
    pub desc: Desc,
    pub binding: Binding,
    pub opts: CodegenOptions,
    pub endian: Endian,
    /// The programs, in `desc.progs` order.
    pub code: Vec<DescribedCode>,
    /// `desc.encode()`.
    pub image: Vec<u8>,
}

impl Description {
    /// The code generator's view.
    pub fn described(&self) -> Described<'_> {
        Described {
            name: &self.desc.name,
            endian: self.endian,
            binding: &self.binding,
            opts: &self.opts,
            programs: self
                .desc
                .progs
                .iter()
                .zip(&self.code)
                .map(|(d, c)| DescribedProgram {
                    insns: &c.insns,
                    symbol: d.entry_symbol.clone(),
                    facts: c.facts.as_ref(),
                })
                .collect(),
            image: &self.image,
        }
    }
}

/// The object's name from its file: `X` for `X.bpf.o`, `X.o` or `X`.
pub fn object_name(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = file.strip_suffix(".o").unwrap_or(&file);
    let stem = stem.strip_suffix(".bpf").unwrap_or(stem);
    symbol_for(stem)
}

/// A C identifier made from `name`.
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

/// ` (file.c:12: source text)` for messages about `pc`, or nothing; at a
/// poisoned instruction, also the CO-RE relocation that failed there.
pub fn source_at(line_info: &[LineInfo], poisoned: &[PoisonedInsn], pc: usize) -> String {
    let i = line_info.partition_point(|l| l.pc <= pc);
    let line = i
        .checked_sub(1)
        .and_then(|i| line_info.get(i))
        .map(|l| format!("{}:{}: {}", l.file, l.line, l.text.trim()));
    let poison = poisoned.iter().find(|p| p.pc == pc).map(|p| p.to_string());
    match (line, poison) {
        (Some(l), Some(p)) => format!(" ({p}; {l})"),
        (Some(x), None) | (None, Some(x)) => format!(" ({x})"),
        (None, None) => String::new(),
    }
}

/// What [`check_bindable`] looks at.
pub struct BindableView<'a> {
    pub name: &'a str,
    pub insns: &'a [Insn],
    pub maps: &'a [MapDef],
    pub line_info: &'a [LineInfo],
    pub poisoned: &'a [PoisonedInsn],
}

/// Refuse a program whose compiled code could only fault: one that loads a
/// map by file descriptor or a `.kconfig`-less kernel variable, calls a
/// kfunc, or makes a legacy packet load (which needs a packet context).
/// Without `maps_bound` (raw bytecode) any map reference is refused too.
/// The message names the program, the first such instruction and its
/// source line.
pub fn check_bindable(p: &BindableView, maps_bound: bool, packet: bool) -> Result<(), String> {
    for (pc, insn) in p.insns.iter().enumerate() {
        let what = match *insn {
            Insn::Lddw {
                src: src @ (LddwSrc::MapIdx | LddwSrc::MapIdxValue),
                imm,
                ..
            } if !maps_bound => {
                let idx = imm as u32 as usize;
                let name = p
                    .maps
                    .get(idx)
                    .map_or_else(|| format!("#{idx}"), |m| m.name.clone());
                let whose = if src == LddwSrc::MapIdxValue {
                    "the value of map"
                } else {
                    "map"
                };
                format!("loads {whose} {name}; raw bytecode has no maps to bind")
            }
            Insn::Lddw {
                src: LddwSrc::MapFd | LddwSrc::MapValue,
                ..
            } => "loads a map by file descriptor, which only the kernel can resolve".to_string(),
            Insn::Lddw { src: LddwSrc::BtfId, .. } => {
                "loads a kernel variable (__ksym), which compiled code cannot bind".to_string()
            }
            Insn::Call(CallTarget::Kfunc { btf_id, .. }) => {
                format!("calls kfunc (btf id {btf_id}), which compiled code cannot bind")
            }
            Insn::LdAbs { .. } | Insn::LdInd { .. } if !packet => {
                "makes a legacy packet load (ldabs/ldind), which needs a packet context compiled code cannot bind yet".to_string()
            }
            _ => continue,
        };
        return Err(format!(
            "program {} instruction {pc}{}: {what}",
            p.name,
            source_at(p.line_info, p.poisoned, pc)
        ));
    }
    Ok(())
}

/// Describe `obj` (whose file's bytes are `bytes`, for its raw BTF).
pub fn describe(
    obj: &Object,
    bytes: &[u8],
    o: &DescribeOptions,
) -> Result<Description, DescribeError> {
    let other = DescribeError::Other;
    let progs: Vec<&Program> = match &o.program {
        Some(p) => vec![obj.program(p).map_err(|e| other(e.to_string()))?],
        None => obj.programs.iter().collect(),
    };
    if progs.is_empty() {
        return Err(other("the object holds no programs".into()));
    }
    let ty = o.prog_type;
    // Verify each program: code the verifier did not check is compiled
    // checked unless `unchecked`.
    let mut facts = Vec::with_capacity(progs.len());
    for p in &progs {
        let f = if o.no_verify || p.check_loaded().is_err() {
            None
        } else {
            // A host may set `.rodata` between open and load: the code
            // must be right for any value, not only the object's.
            bind::verify_program_with(obj, p, ty, false, o.pt_regs).map_err(DescribeError::Bind)?
        };
        facts.push(f);
    }
    let verified = facts.iter().all(Option::is_some);
    let opts = CodegenOptions {
        opt_level: o.opt_level,
        checked: o.checked || (!verified && !o.unchecked),
        insn_limit: o.insn_limit,
    };
    // Network programs the verifier accepted run on the native contexts:
    // their context accesses are converted as the JIT's are.
    let mut code = Vec::with_capacity(progs.len());
    for (p, f) in progs.iter().zip(&facts) {
        let ty = ty.unwrap_or(p.kind.prog_type);
        let kind = f.as_ref().and_then(|_| convert::ctx_kind(ty));
        let (insns, ctx) = match (f, kind) {
            (Some(f), Some(k @ (CtxKind::Xdp | CtxKind::Skb))) => {
                let insns = convert::convert(&p.insns, f, ty, p.kind.attach_type, obj.endian)
                    .map_err(|e| other(format!("program {}: {e}", p.name)))?;
                (insns, if k == CtxKind::Xdp { CTX_XDP } else { CTX_SKB })
            }
            _ => (p.insns.clone(), CTX_BYTES),
        };
        // Context bytes a run must give (the kernel's max_ctx_offset).
        let ctx_min = match (f, ctx) {
            (Some(f), CTX_BYTES) => f.max_ctx_offset,
            _ => 0,
        };
        code.push((insns, ctx, ty.number(), ctx_min));
    }
    let kernel = HelperTable::kernel();
    let mut helpers: BTreeSet<u32> = o.callx_helpers.iter().copied().collect();
    for (p, (_, ctx, _, _)) in progs.iter().zip(&code) {
        let hint = &o.hint;
        if let Err(e) = p.check_loaded() {
            return Err(other(format!("program {}: {e}{hint}", p.name)));
        }
        if let Err(e) = p.check_externs() {
            return Err(other(format!("{e}{hint}")));
        }
        let view = BindableView {
            name: &p.name,
            insns: &p.insns,
            maps: &obj.maps,
            line_info: &p.line_info,
            poisoned: &p.poisoned,
        };
        check_bindable(&view, true, *ctx == CTX_SKB).map_err(other)?;
        for (pc, insn) in p.insns.iter().enumerate() {
            let Insn::Call(CallTarget::Helper(id)) = *insn else {
                continue;
            };
            if id == CORE_POISON_HELPER || id == ids::TAIL_CALL as i32 {
                continue;
            }
            match u32::try_from(id) {
                Ok(id) if kernel.contains(id) => {
                    helpers.insert(id);
                }
                _ => {
                    return Err(other(format!(
                        "program {} instruction {pc}{}: calls helper {id}{}, which bpfc's runtime does not provide",
                        p.name,
                        source_at(&p.line_info, &p.poisoned, pc),
                        kernel_name(id.into()).map(|n| format!(" (bpf_{n})")).unwrap_or_default()
                    )))
                }
            }
        }
    }
    let btf = obj.btf.as_ref();
    let mut maps = Vec::with_capacity(obj.maps.len());
    let mut slots = Vec::with_capacity(obj.maps.len());
    for def in &obj.maps {
        let d = map_desc(obj, def, btf).map_err(DescribeError::Bind)?;
        let slot = if d.kind == MapKind::Absent {
            None
        } else {
            Some(MapSlot {
                spec: map_spec(def, btf).map_err(DescribeError::Bind)?,
                addr: None,
                values: None,
                ncpus: None,
            })
        };
        slots.push(slot);
        maps.push(d);
    }
    let name = &o.name;
    let (map_table, helper_table) = aot::table_symbols(name);
    let binding = Binding {
        helpers: helpers.clone(),
        import_any_helper: false,
        maps: slots,
        map_table: Some(map_table),
        helper_table: Some(helper_table),
    };
    let desc = Desc {
        name: name.clone(),
        bpfc_version: env!("CARGO_PKG_VERSION").to_string(),
        license: obj.license.clone().unwrap_or_default(),
        checked: opts.checked,
        insn_limit: opts.insn_limit.unwrap_or(0),
        helpers: helpers.into_iter().collect(),
        progs: progs
            .iter()
            .zip(&code)
            .map(|(p, (_, ctx, prog_type, ctx_min))| ProgDesc {
                name: p.name.clone(),
                section: p.section.clone(),
                prog_type: *prog_type,
                ctx: *ctx,
                ctx_min: *ctx_min,
                attach_type: p.kind.attach_type.unwrap_or_default().to_string(),
                entry_symbol: format!("{name}__{}", p.name),
                reads_stack: p.insns.iter().any(|i| {
                    matches!(i, Insn::Call(CallTarget::Helper(id))
                        if u32::try_from(*id).is_ok_and(bpfc_runtime::helpers::reads_stack))
                }),
            })
            .collect(),
        maps,
        btf: raw_btf(bytes),
    };
    let image = desc.encode();
    Ok(Description {
        desc,
        binding,
        opts,
        endian: obj.endian,
        code: code
            .into_iter()
            .zip(facts)
            .map(|((insns, _, _, _), facts)| DescribedCode { insns, facts })
            .collect(),
        image,
    })
}

/// What the runtime makes of a map definition.
pub fn map_kind(def: &MapDef) -> MapKind {
    match def.origin {
        MapOrigin::Btf | MapOrigin::Legacy => MapKind::Plain,
        MapOrigin::Global(GlobalKind::Data) => MapKind::Data,
        MapOrigin::Global(GlobalKind::Rodata) => MapKind::Rodata,
        MapOrigin::Global(GlobalKind::Bss) => MapKind::Bss,
        MapOrigin::Kconfig => MapKind::Kconfig,
        MapOrigin::Inner | MapOrigin::StructOps => MapKind::Absent,
    }
}

/// The descriptor's view of a map definition.
pub fn map_desc(obj: &Object, def: &MapDef, btf: Option<&Btf>) -> Result<MapDesc, BindError> {
    let kind = map_kind(def);
    let (spin_lock_off, timer_off) = if kind == MapKind::Absent {
        (None, None)
    } else {
        let spec = map_spec(def, btf)?;
        (spec.spin_lock_off, spec.timer_off)
    };
    let section = obj
        .data
        .iter()
        .find(|d| {
            obj.maps
                .get(d.map_index)
                .is_some_and(|m| m.name == def.name)
        })
        .map(|d| d.name.clone())
        .unwrap_or_default();
    Ok(MapDesc {
        name: def.name.clone(),
        kind,
        section,
        map_type: def.map_type,
        key_size: def.key_size,
        value_size: def.value_size,
        max_entries: def.max_entries,
        flags: def.map_flags,
        map_extra: def.map_extra,
        pinning: def.pinning,
        spin_lock_off,
        timer_off,
        key_type_id: def.key_type_id.unwrap_or(0),
        value_type_id: def.value_type_id.unwrap_or(0),
        inner: match &def.inner {
            Some(i) => Some(Box::new(map_desc(obj, i, btf)?)),
            None => None,
        },
        initial: def
            .initial
            .iter()
            .map(|(slot, init)| {
                (
                    *slot,
                    match init {
                        MapInit::Map(i) => SlotInit::Map(*i as u32),
                        MapInit::Program(p) => SlotInit::Program(p.clone()),
                    },
                )
            })
            .collect(),
        data: def.data.clone(),
    })
}

/// The object's `.BTF` section as it is in the file.
pub fn raw_btf(bytes: &[u8]) -> Vec<u8> {
    use object::{Object as _, ObjectSection as _};
    object::File::parse(bytes)
        .ok()
        .and_then(|f| {
            f.section_by_name(".BTF")
                .and_then(|s| s.data().ok().map(<[u8]>::to_vec))
        })
        .unwrap_or_default()
}
