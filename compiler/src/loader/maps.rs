//! Map definitions: BTF-defined maps in `.maps` (including inner maps and the
//! initial `values` of prog arrays and maps of maps), legacy `struct
//! bpf_map_def` entries in `maps`, one single-entry array per global data
//! section, and the `.kconfig` map of extern values. Also records where each
//! relocatable symbol lands, for [`super::reloc`].

use super::btf::{Btf, TypeKind};
use super::elf::ElfFile;
use super::error::LoadError;
use super::{DataSection, GlobalKind, MapDef, MapInit, MapOrigin};
use crate::isa::Endian;
use object::elf as E;
use std::collections::BTreeMap;

pub(crate) const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_MAP_TYPE_PROG_ARRAY: u32 = 3;
const BPF_MAP_TYPE_ARRAY_OF_MAPS: u32 = 12;
const BPF_MAP_TYPE_HASH_OF_MAPS: u32 = 13;
/// `BPF_F_RDONLY_PROG`.
const F_RDONLY_PROG: u32 = 1 << 7;
/// `BPF_F_MMAPABLE`.
const F_MMAPABLE: u32 = 1 << 10;

const MAP_TYPE_NAMES: &[&str] = &[
    "unspec",
    "hash",
    "array",
    "prog_array",
    "perf_event_array",
    "percpu_hash",
    "percpu_array",
    "stack_trace",
    "cgroup_array",
    "lru_hash",
    "lru_percpu_hash",
    "lpm_trie",
    "array_of_maps",
    "hash_of_maps",
    "devmap",
    "sockmap",
    "cpumap",
    "xskmap",
    "sockhash",
    "cgroup_storage",
    "reuseport_sockarray",
    "percpu_cgroup_storage",
    "queue",
    "stack",
    "sk_storage",
    "devmap_hash",
    "struct_ops",
    "ringbuf",
    "inode_storage",
    "task_storage",
    "bloom_filter",
    "user_ringbuf",
    "cgrp_storage",
    "arena",
];

pub(crate) fn map_type_name(t: u32) -> &'static str {
    MAP_TYPE_NAMES.get(t as usize).copied().unwrap_or("unknown")
}

/// What a relocation against a symbol of some section refers to.
#[derive(Clone, Debug)]
pub(crate) enum SectionTarget {
    /// A map section: symbol offset → map index.
    Maps(BTreeMap<u64, usize>),
    /// A global data section held by one map.
    Data(usize),
}

/// The maps of an object and how symbols map onto them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Layout {
    pub maps: Vec<MapDef>,
    pub data: Vec<DataSection>,
    /// ELF section index → target.
    pub sections: BTreeMap<usize, SectionTarget>,
    /// `.kconfig` extern name → (map index, offset).
    pub kconfig: BTreeMap<String, (usize, u64)>,
}

fn blank(name: &str, origin: MapOrigin) -> MapDef {
    MapDef {
        name: name.to_string(),
        origin,
        map_type: 0,
        key_size: 0,
        value_size: 0,
        max_entries: 0,
        map_flags: 0,
        numa_node: 0,
        map_extra: 0,
        pinning: 0,
        key_type_id: None,
        value_type_id: None,
        inner: None,
        initial: Vec::new(),
        data: Vec::new(),
    }
}

pub(crate) fn collect(
    elf: &ElfFile,
    btf: Option<&Btf>,
    kconfig: &BTreeMap<String, u64>,
) -> Result<Layout, LoadError> {
    let mut layout = Layout::default();
    for (idx, sec) in elf.sections.iter().enumerate() {
        let is_data = sec.sh_type == E::SHT_PROGBITS || sec.sh_type == E::SHT_NOBITS;
        let alloc = sec.flags & E::SHF_ALLOC as u64 != 0;
        if sec.name == ".maps" {
            btf_maps(elf, idx, btf, &mut layout)?;
        } else if sec.name == "maps" {
            legacy_maps(elf, idx, &mut layout)?;
        } else if is_data && alloc && !sec.is_exec() {
            let kind = if sec.name.starts_with(".rodata") {
                GlobalKind::Rodata
            } else if sec.name.starts_with(".data") {
                GlobalKind::Data
            } else if sec.name.starts_with(".bss") {
                GlobalKind::Bss
            } else {
                continue;
            };
            if sec.size == 0 {
                continue;
            }
            let size = u32::try_from(sec.size).map_err(|_| LoadError::BadSection {
                section: sec.name.clone(),
                reason: format!("size {:#x} does not fit a map value", sec.size),
            })?;
            let mut m = blank(&sec.name, MapOrigin::Global(kind));
            m.map_type = BPF_MAP_TYPE_ARRAY;
            m.key_size = 4;
            m.value_size = size;
            m.max_entries = 1;
            m.map_flags = F_MMAPABLE
                | if kind == GlobalKind::Rodata {
                    F_RDONLY_PROG
                } else {
                    0
                };
            m.data = sec.data.clone();
            let map_index = layout.maps.len();
            layout.maps.push(m);
            layout.data.push(DataSection {
                name: sec.name.clone(),
                kind,
                size: sec.size,
                map_index,
            });
            layout.sections.insert(idx, SectionTarget::Data(map_index));
        }
    }
    kconfig_map(elf, btf, kconfig, &mut layout)?;
    Ok(layout)
}

fn read_u32(data: &[u8], off: u64, endian: Endian) -> Option<u32> {
    let off = usize::try_from(off).ok()?;
    let b: [u8; 4] = data.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(endian.u32(b))
}

/// Symbols defined in section `idx` that are not section/file symbols, by offset.
fn section_objects(elf: &ElfFile, idx: usize) -> Vec<(usize, &super::elf::ElfSymbol)> {
    let mut v: Vec<_> = elf
        .symbols
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            s.section == Some(idx)
                && !s.name.is_empty()
                && s.kind != E::STT_SECTION
                && s.kind != E::STT_FILE
        })
        .collect();
    v.sort_by(|a, b| (a.1.value, &a.1.name).cmp(&(b.1.value, &b.1.name)));
    v
}

fn legacy_maps(elf: &ElfFile, idx: usize, layout: &mut Layout) -> Result<(), LoadError> {
    let sec = &elf.sections[idx];
    let syms = section_objects(elf, idx);
    if syms.is_empty() {
        return Ok(());
    }
    let def_size = sec.size / syms.len() as u64;
    if def_size < 16 || !def_size.is_multiple_of(4) {
        return Err(LoadError::BadSection {
            section: sec.name.clone(),
            reason: format!(
                "{} bytes for {} maps is not a whole struct bpf_map_def",
                sec.size,
                syms.len()
            ),
        });
    }
    let mut targets = BTreeMap::new();
    for (_, s) in syms {
        let field = |i: u64| -> Result<u32, LoadError> {
            if i * 4 >= def_size {
                return Ok(0);
            }
            read_u32(&sec.data, s.value.saturating_add(i * 4), elf.endian).ok_or_else(|| {
                LoadError::BadMap {
                    map: s.name.clone(),
                    reason: format!("definition at {:#x} is outside section maps", s.value),
                }
            })
        };
        let mut m = blank(&s.name, MapOrigin::Legacy);
        m.map_type = field(0)?;
        m.key_size = field(1)?;
        m.value_size = field(2)?;
        m.max_entries = field(3)?;
        m.map_flags = field(4)?;
        // iproute2's struct bpf_elf_map continues with id and pinning.
        m.pinning = field(6)?;
        targets.insert(s.value, layout.maps.len());
        layout.maps.push(m);
    }
    layout.sections.insert(idx, SectionTarget::Maps(targets));
    Ok(())
}

/// The `N` of `int (*name)[N]` (`__uint`) or of `__ulong`'s enum.
fn uint_member(btf: &Btf, type_id: u32) -> Option<u64> {
    let id = btf.skip_mods_and_typedefs(type_id);
    match &btf.get(id)?.kind {
        TypeKind::Ptr { type_id } => {
            let arr = btf.skip_mods_and_typedefs(*type_id);
            match btf.get(arr)?.kind {
                TypeKind::Array { nelems, .. } => Some(nelems as u64),
                _ => None,
            }
        }
        TypeKind::Enum { values, .. } | TypeKind::Enum64 { values, .. } => {
            values.first().map(|v| v.value as u64)
        }
        _ => None,
    }
}

/// Parse a map definition struct (`type_id`) of BTF.
fn parse_btf_def(
    btf: &Btf,
    name: &str,
    type_id: u32,
    origin: MapOrigin,
    depth: usize,
) -> Result<(MapDef, Option<u32>), LoadError> {
    let bad = |reason: String| LoadError::BadMap {
        map: name.to_string(),
        reason,
    };
    let sid = btf.skip_mods_and_typedefs(type_id);
    let members = btf
        .get(sid)
        .and_then(|t| match &t.kind {
            TypeKind::Struct { members, .. } => Some(members.clone()),
            _ => None,
        })
        .ok_or_else(|| bad(format!("BTF type {type_id} is not a struct")))?;
    let mut m = blank(name, origin);
    let mut values_off = None;
    for mem in &members {
        let uint = || {
            uint_member(btf, mem.type_id)
                .ok_or_else(|| bad(format!("member {} is not __uint/__ulong", mem.name)))
        };
        let u32_of = |v: u64| {
            u32::try_from(v)
                .map_err(|_| bad(format!("member {} value {v} exceeds 32 bits", mem.name)))
        };
        match mem.name.as_str() {
            "type" => m.map_type = u32_of(uint()?)?,
            "max_entries" => m.max_entries = u32_of(uint()?)?,
            "map_flags" => m.map_flags = u32_of(uint()?)?,
            "numa_node" => m.numa_node = u32_of(uint()?)?,
            "key_size" => m.key_size = u32_of(uint()?)?,
            "value_size" => m.value_size = u32_of(uint()?)?,
            "pinning" => m.pinning = u32_of(uint()?)?,
            "map_extra" => m.map_extra = uint()?,
            "key" | "value" => {
                let target = match btf
                    .get(btf.skip_mods_and_typedefs(mem.type_id))
                    .map(|t| &t.kind)
                {
                    Some(TypeKind::Ptr { type_id }) => *type_id,
                    _ => {
                        return Err(bad(format!(
                            "member {} is not a pointer (__type)",
                            mem.name
                        )))
                    }
                };
                let size = btf
                    .size_of(target)
                    .and_then(|s| u32::try_from(s).ok())
                    .ok_or_else(|| bad(format!("{} type {target} has no size", mem.name)))?;
                if mem.name == "key" {
                    m.key_size = size;
                    m.key_type_id = Some(target);
                } else {
                    m.value_size = size;
                    m.value_type_id = Some(target);
                }
            }
            "values" => {
                values_off = Some(mem.bit_offset / 8);
                let elem = match btf
                    .get(btf.skip_mods_and_typedefs(mem.type_id))
                    .map(|t| &t.kind)
                {
                    Some(TypeKind::Array { elem, .. }) => *elem,
                    _ => return Err(bad("member values is not an array (__array)".into())),
                };
                let pointee = match btf.get(btf.skip_mods_and_typedefs(elem)).map(|t| &t.kind) {
                    Some(TypeKind::Ptr { type_id }) => btf.skip_mods_and_typedefs(*type_id),
                    _ => return Err(bad("values elements are not pointers".into())),
                };
                if let Some(TypeKind::Struct { .. }) = btf.get(pointee).map(|t| &t.kind) {
                    if depth > 0 {
                        return Err(bad("nested map-in-map definitions".into()));
                    }
                    let (inner, _) = parse_btf_def(
                        btf,
                        &format!("{name}.inner"),
                        pointee,
                        MapOrigin::Inner,
                        depth + 1,
                    )?;
                    m.inner = Some(Box::new(inner));
                }
            }
            _ => {}
        }
    }
    if matches!(
        m.map_type,
        BPF_MAP_TYPE_ARRAY_OF_MAPS | BPF_MAP_TYPE_HASH_OF_MAPS
    ) {
        if m.inner.is_none() {
            return Err(bad(
                "map-in-map without an inner map definition (values)".into()
            ));
        }
        if m.value_size == 0 {
            m.value_size = 4;
        }
    }
    if m.map_type == BPF_MAP_TYPE_PROG_ARRAY && values_off.is_some() && m.value_size == 0 {
        m.value_size = 4;
    }
    Ok((m, values_off))
}

fn btf_maps(
    elf: &ElfFile,
    idx: usize,
    btf: Option<&Btf>,
    layout: &mut Layout,
) -> Result<(), LoadError> {
    let sec = &elf.sections[idx];
    let syms = section_objects(elf, idx);
    if syms.is_empty() {
        return Ok(());
    }
    let btf = btf.ok_or_else(|| LoadError::BadSection {
        section: sec.name.clone(),
        reason: "BTF-defined maps need a .BTF section".into(),
    })?;
    let vars = btf.datasec_vars(".maps");
    let first = layout.maps.len();
    let mut targets = BTreeMap::new();
    let mut values_at = Vec::new();
    for (_, s) in &syms {
        let type_id = vars
            .iter()
            .find(|(n, _, _)| n == &s.name)
            .map(|(_, t, _)| *t)
            .ok_or_else(|| LoadError::BadMap {
                map: s.name.clone(),
                reason: "no variable of that name in BTF datasec .maps".into(),
            })?;
        let (m, values_off) = parse_btf_def(btf, &s.name, type_id, MapOrigin::Btf, 0)?;
        targets.insert(s.value, layout.maps.len());
        values_at.push((s.value, s.size, values_off));
        layout.maps.push(m);
    }
    // Initial values: ABS64 relocations inside a map's `values` array.
    for r in &sec.relocs {
        let Some(pos) = values_at.iter().position(|&(start, size, _)| {
            r.offset >= start && r.offset < start.saturating_add(size)
        }) else {
            return Err(LoadError::RelocationOutOfRange {
                section: sec.name.clone(),
                offset: r.offset,
                size: sec.size,
            });
        };
        let (start, _, values_off) = values_at[pos];
        let map = &layout.maps[first + pos];
        let Some(voff) = values_off else {
            return Err(LoadError::BadMap {
                map: map.name.clone(),
                reason: format!("relocation at {:#x} outside a values array", r.offset),
            });
        };
        let rel = r.offset - start;
        if rel < voff as u64 || !(rel - voff as u64).is_multiple_of(8) {
            return Err(LoadError::BadMap {
                map: map.name.clone(),
                reason: format!("relocation at {:#x} is not a values slot", r.offset),
            });
        }
        let slot = ((rel - voff as u64) / 8) as u32;
        let sym = &elf.symbols[r.sym];
        let init = if sym.section == Some(idx) {
            match targets.get(&sym.value) {
                Some(&i) => MapInit::Map(i),
                None => {
                    return Err(LoadError::MissingSymbol {
                        section: sec.name.clone(),
                        offset: r.offset,
                        symbol: sym.name.clone(),
                    })
                }
            }
        } else if sym.is_func() {
            MapInit::Program(sym.name.clone())
        } else {
            return Err(LoadError::BadRelocationTarget {
                section: sec.name.clone(),
                offset: r.offset,
                symbol: sym.name.clone(),
                found: "non-map, non-function symbol".into(),
                expected: "a map or a program",
            });
        };
        if map.max_entries <= slot {
            return Err(LoadError::BadMap {
                map: map.name.clone(),
                reason: format!(
                    "initial value for slot {slot} but max_entries is {}",
                    map.max_entries
                ),
            });
        }
        layout.maps[first + pos].initial.push((slot, init));
    }
    for m in &mut layout.maps[first..] {
        m.initial.sort_by_key(|(slot, _)| *slot);
    }
    layout.sections.insert(idx, SectionTarget::Maps(targets));
    Ok(())
}

fn kconfig_map(
    elf: &ElfFile,
    btf: Option<&Btf>,
    values: &BTreeMap<String, u64>,
    layout: &mut Layout,
) -> Result<(), LoadError> {
    let kvars = btf.map(|b| b.datasec_vars(".kconfig")).unwrap_or_default();
    let mut externs: Vec<(&str, u64, bool)> = Vec::new();
    for s in &elf.symbols {
        if s.section.is_some() || s.name.is_empty() || s.is_func() || !s.is_global() {
            continue;
        }
        let size = kvars
            .iter()
            .find(|(n, _, _)| n == &s.name)
            .and_then(|(_, t, _)| btf.and_then(|b| b.size_of(*t)));
        let is_kconfig =
            size.is_some() || s.name.starts_with("CONFIG_") || s.name == "LINUX_KERNEL_VERSION";
        if !is_kconfig {
            // Not a .kconfig extern: a relocation against it fails later
            // with a missing-symbol error naming the instruction.
            continue;
        }
        externs.push((&s.name, size.unwrap_or(8), s.bind == E::STB_WEAK));
    }
    if externs.is_empty() {
        return Ok(());
    }
    externs.sort();
    let map_index = layout.maps.len();
    let mut image = Vec::new();
    for (name, size, weak) in externs {
        let value = match values.get(name) {
            Some(&v) => v,
            None if weak => 0,
            None => {
                return Err(LoadError::UnresolvedExtern {
                    name: name.to_string(),
                    reason: "no value for this .kconfig extern (not in the defaults and not weak)"
                        .into(),
                })
            }
        };
        let size = match size {
            1 | 2 | 4 | 8 => size as usize,
            other => {
                return Err(LoadError::UnresolvedExtern {
                    name: name.to_string(),
                    reason: format!("unsupported .kconfig extern size {other}"),
                })
            }
        };
        while image.len() % 8 != 0 {
            image.push(0);
        }
        let off = image.len();
        let bytes = match elf.endian {
            Endian::Little => value.to_le_bytes()[..size].to_vec(),
            Endian::Big => value.to_be_bytes()[8 - size..].to_vec(),
        };
        image.extend(bytes);
        layout
            .kconfig
            .insert(name.to_string(), (map_index, off as u64));
    }
    while image.len() % 8 != 0 {
        image.push(0);
    }
    let mut m = blank(".kconfig", MapOrigin::Kconfig);
    m.map_type = BPF_MAP_TYPE_ARRAY;
    m.key_size = 4;
    m.value_size = image.len() as u32;
    m.max_entries = 1;
    m.map_flags = F_MMAPABLE | F_RDONLY_PROG;
    m.data = image;
    layout.maps.push(m);
    Ok(())
}
