//! `bpfc compile FILE.bpf.o`: every program of an object (or the one named
//! with `--program`) in one native object, with the map table, the helper
//! table and the descriptor (`docs/abi.md`, "Self-describing objects").

use super::{check_bindable, Args};
use crate::input;
use anyhow::{bail, Context as _};
use bpfc_compiler::bind::{self, map_spec};
use bpfc_compiler::codegen::{aot, Binding, MapSlot};
use bpfc_compiler::isa::{CallTarget, Insn};
use bpfc_compiler::loader::{
    Btf, GlobalKind, MapDef, MapInit, MapOrigin, Object, ProgType, Program,
};
use bpfc_compiler::progtype::convert::{self, CtxKind};
use bpfc_runtime::abi::CORE_POISON_HELPER;
use bpfc_runtime::helpers::{ids, kernel_name};
use bpfc_runtime::host::desc::{
    Desc, MapDesc, MapKind, ProgDesc, SlotInit, CTX_BYTES, CTX_SKB, CTX_XDP,
};
use bpfc_runtime::HelperTable;
use std::collections::BTreeSet;
use std::path::Path;
use target_lexicon::Triple;

/// The object's name from its file: `X` for `X.bpf.o`, `X.o` or `X`.
pub fn object_name(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = file.strip_suffix(".o").unwrap_or(&file);
    let stem = stem.strip_suffix(".bpf").unwrap_or(stem);
    input::symbol_for(stem)
}

pub fn compile(
    args: &Args,
    bytes: &[u8],
    triple: &Triple,
    ty: Option<ProgType>,
) -> anyhow::Result<()> {
    let file = &args.file;
    let shown = file.display().to_string();
    let obj = input::load_object(file, bytes, &args.select)?;
    let name = match &args.name {
        Some(n) => {
            let s = input::symbol_for(n);
            if &s != n {
                bail!("--name {n:?}: a name must be a C identifier (letters, digits, _)");
            }
            s
        }
        None => object_name(file),
    };
    let progs: Vec<&Program> = match &args.select.program {
        Some(p) => vec![obj.program(p).with_context(|| shown.clone())?],
        None => obj.programs.iter().collect(),
    };
    if progs.is_empty() {
        bail!("{shown}: the object holds no programs");
    }
    // Verify each program (as `bpfc compile` does one): code the verifier
    // did not check is compiled checked unless --unchecked.
    let mut facts = Vec::with_capacity(progs.len());
    for p in &progs {
        let f = if args.no_verify || p.check_loaded().is_err() {
            None
        } else {
            bind::verify_program(&obj, p, ty).map_err(|e| input::rejected(&shown, e))?
        };
        facts.push(f);
    }
    let opts = &super::options(args, facts.iter().all(Option::is_some));
    // Network programs the verifier accepted run on the native contexts:
    // their context accesses are converted as the JIT's are.
    let mut code = Vec::with_capacity(progs.len());
    for (p, f) in progs.iter().zip(&facts) {
        let ty = ty.unwrap_or(p.kind.prog_type);
        let kind = f.as_ref().and_then(|_| convert::ctx_kind(ty));
        let (insns, ctx) = match (f, kind) {
            (Some(f), Some(k @ (CtxKind::Xdp | CtxKind::Skb))) => {
                let insns = convert::convert(&p.insns, f, ty, p.kind.attach_type, obj.endian)
                    .map_err(|e| anyhow::anyhow!("{shown}: program {}: {e}", p.name))?;
                (insns, if k == CtxKind::Xdp { CTX_XDP } else { CTX_SKB })
            }
            _ => (p.insns.clone(), CTX_BYTES),
        };
        code.push((insns, ctx, ty.number()));
    }
    let kernel = HelperTable::kernel();
    let mut helpers: BTreeSet<u32> = args.callx_helpers.iter().copied().collect();
    for p in &progs {
        let hint = if args.select.program.is_none() && obj.programs.len() > 1 {
            "; choose the programs to compile with --program"
        } else {
            ""
        };
        if let Err(e) = p.check_loaded() {
            bail!("{shown}: program {}: {e}{hint}", p.name);
        }
        if let Err(e) = p.check_externs() {
            bail!("{shown}: {e}{hint}");
        }
        let view = input::Program {
            insns: p.insns.clone(),
            endian: obj.endian,
            name: p.name.clone(),
            line_info: p.line_info.clone(),
            maps: obj.maps.clone(),
            poisoned: p.poisoned.clone(),
            object: None,
        };
        let packet = code[progs.iter().position(|q| q.name == p.name).unwrap_or(0)].1 == CTX_SKB;
        check_bindable(file, &view, true, packet)?;
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
                _ => bail!(
                    "{shown}: program {} instruction {pc}{}: calls helper {id}{}, which bpfc's runtime does not provide",
                    p.name,
                    view.source_at(pc),
                    kernel_name(id.into()).map(|n| format!(" (bpf_{n})")).unwrap_or_default()
                ),
            }
        }
    }
    for &id in &args.callx_helpers {
        if !kernel.contains(id) {
            bail!("--callx-helpers: helper {id} is not one bpfc's runtime provides");
        }
    }
    let btf = obj.btf.as_ref();
    let mut maps = Vec::with_capacity(obj.maps.len());
    let mut slots = Vec::with_capacity(obj.maps.len());
    for def in &obj.maps {
        let d = map_desc(&obj, def, btf).with_context(|| shown.clone())?;
        slots.push(
            (d.kind != MapKind::Absent).then(|| -> anyhow::Result<MapSlot> {
                Ok(MapSlot {
                    spec: map_spec(def, btf)?,
                    addr: None,
                    values: None,
                    ncpus: None,
                })
            }),
        );
        maps.push(d);
    }
    let slots = slots
        .into_iter()
        .map(Option::transpose)
        .collect::<anyhow::Result<Vec<_>>>()
        .with_context(|| shown.clone())?;
    let (map_table, helper_table) = aot::table_symbols(&name);
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
            .map(|(p, (_, ctx, prog_type))| ProgDesc {
                name: p.name.clone(),
                section: p.section.clone(),
                prog_type: *prog_type,
                ctx: *ctx,
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
    let object = aot::compile_described(
        &aot::Described {
            name: &name,
            endian: obj.endian,
            binding: &binding,
            opts,
            programs: progs
                .iter()
                .zip(&desc.progs)
                .zip(&facts)
                .zip(&code)
                .map(|(((_, d), f), (insns, _, _))| aot::DescribedProgram {
                    insns,
                    symbol: d.entry_symbol.clone(),
                    facts: f.as_ref(),
                })
                .collect(),
            image: &image,
        },
        triple,
    )
    .with_context(|| shown.clone())?;
    std::fs::write(&args.output, object).with_context(|| args.output.display().to_string())?;
    Ok(())
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
fn map_desc(obj: &Object, def: &MapDef, btf: Option<&Btf>) -> anyhow::Result<MapDesc> {
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
fn raw_btf(bytes: &[u8]) -> Vec<u8> {
    use object::{Object as _, ObjectSection as _};
    object::File::parse(bytes)
        .ok()
        .and_then(|f| {
            f.section_by_name(".BTF")
                .and_then(|s| s.data().ok().map(<[u8]>::to_vec))
        })
        .unwrap_or_default()
}
