//! BTF-defined maps in `.maps`: the `__uint`/`__type`/`__array` members of
//! each variable's struct, inner map templates, and the initial `values` of
//! prog arrays and maps of maps.

use super::{
    blank, section_objects, Layout, SectionTarget, BPF_MAP_TYPE_ARRAY_OF_MAPS,
    BPF_MAP_TYPE_HASH_OF_MAPS, BPF_MAP_TYPE_PROG_ARRAY,
};
use crate::loader::btf::{Btf, TypeKind};
use crate::loader::elf::ElfFile;
use crate::loader::error::LoadError;
use crate::loader::{MapDef, MapInit, MapOrigin};
use std::collections::BTreeMap;

const MAPS: &str = ".maps";

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

/// Whether `type_id` is what GCC 12 makes of a `__ulong` whose value does
/// not fit 32 bits: an 8-byte enum without enumerators.
fn lost_enum(btf: &Btf, type_id: u32) -> bool {
    matches!(
        btf.get(btf.skip_mods_and_typedefs(type_id)).map(|t| &t.kind),
        Some(TypeKind::Enum { size: 8, values, .. }) if values.is_empty()
    )
}

/// Parse a map definition struct (`type_id`) of BTF.
fn parse_btf_def(
    elf: &ElfFile,
    btf: &Btf,
    name: &str,
    type_id: u32,
    origin: MapOrigin,
    depth: usize,
    offset: u64,
) -> Result<(MapDef, Option<u32>), LoadError> {
    let bad = |reason: String| LoadError::BadMap {
        map: name.to_string(),
        section: MAPS.into(),
        offset,
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
                .or_else(|| {
                    // GCC 12 kept the value in DWARF only.
                    (depth == 0 && lost_enum(btf, mem.type_id))
                        .then(|| super::super::dwarf::member_enum_value(elf, name, &mem.name))
                        .flatten()
                })
                .ok_or_else(|| {
                    if lost_enum(btf, mem.type_id) {
                        bad(format!(
                            "member {}: the BTF enum has no enumerator (GCC 12 drops those that do not fit 32 bits) and DWARF (-g) has no value either",
                            mem.name
                        ))
                    } else {
                        bad(format!("member {} is not __uint/__ulong", mem.name))
                    }
                })
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
                        elf,
                        btf,
                        &format!("{name}.inner"),
                        pointee,
                        MapOrigin::Inner,
                        depth + 1,
                        offset,
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

pub(super) fn btf_maps(
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
        offset: 0,
        reason: "BTF-defined maps need a .BTF section: build with BTF (clang -g, GCC -gbtf)".into(),
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
                section: MAPS.into(),
                offset: s.value,
                reason: "no variable of that name in BTF datasec .maps".into(),
            })?;
        let (m, values_off) =
            parse_btf_def(elf, btf, &s.name, type_id, MapOrigin::Btf, 0, s.value)?;
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
                section: MAPS.into(),
                offset: r.offset,
                reason: format!("relocation at {:#x} outside a values array", r.offset),
            });
        };
        let rel = r.offset - start;
        if rel < voff as u64 || !(rel - voff as u64).is_multiple_of(8) {
            return Err(LoadError::BadMap {
                map: map.name.clone(),
                section: MAPS.into(),
                offset: r.offset,
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
                section: MAPS.into(),
                offset: r.offset,
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
