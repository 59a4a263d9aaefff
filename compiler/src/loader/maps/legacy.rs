//! Legacy map definitions in the `maps` section: libbpf's five-field
//! `struct bpf_map_def` (20 bytes) and the longer layouts that continue it,
//! read as iproute2's `struct bpf_elf_map` (`id`, `pinning`, `inner_id`,
//! `inner_idx` after the five; 36 bytes). Every map of the section has the
//! same size: the section size divided by the number of map symbols.

use super::{blank, read_u32, section_objects, Layout, SectionTarget};
use crate::loader::elf::ElfFile;
use crate::loader::error::LoadError;
use crate::loader::{LegacyDef, MapOrigin};
use std::collections::BTreeMap;

/// Bytes of the five `struct bpf_map_def` fields.
const BASE_SIZE: u64 = 20;

pub(super) fn legacy_maps(elf: &ElfFile, idx: usize, layout: &mut Layout) -> Result<(), LoadError> {
    let sec = &elf.sections[idx];
    let syms = section_objects(elf, idx);
    if syms.is_empty() {
        return Ok(());
    }
    let def_size = sec.size / syms.len() as u64;
    if def_size < 16 || !def_size.is_multiple_of(4) || def_size * syms.len() as u64 != sec.size {
        return Err(LoadError::BadSection {
            section: sec.name.clone(),
            offset: 0,
            reason: format!(
                "{} bytes for {} maps is not a whole number of equal struct bpf_map_def",
                sec.size,
                syms.len()
            ),
        });
    }
    // A static definition has no symbol (clang emits none): the division
    // above then spans two definitions, which the symbols' own sizes show.
    if let Some((_, s)) = syms.iter().find(|(_, s)| s.size != 0 && s.size != def_size) {
        return Err(LoadError::BadMap {
            map: s.name.clone(),
            section: sec.name.clone(),
            offset: s.value,
            reason: format!(
                "its symbol is {} bytes but {} bytes for {} symbols make {def_size}-byte definitions: a definition without a symbol (a static map?)",
                s.size,
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
                    section: sec.name.clone(),
                    offset: s.value,
                    reason: format!(
                        "a {def_size}-byte definition does not fit the section ({:#x} bytes)",
                        sec.size
                    ),
                }
            })
        };
        let mut m = blank(&s.name, MapOrigin::Legacy);
        m.map_type = field(0)?;
        m.key_size = field(1)?;
        m.value_size = field(2)?;
        m.max_entries = field(3)?;
        m.map_flags = field(4)?;
        if def_size > BASE_SIZE {
            m.pinning = field(6)?;
            m.legacy = Some(LegacyDef {
                def_size: def_size as u32,
                id: field(5)?,
                inner_id: field(7)?,
                inner_idx: field(8)?,
            });
        }
        targets.insert(s.value, layout.maps.len());
        layout.maps.push(m);
    }
    layout.sections.insert(idx, SectionTarget::Maps(targets));
    Ok(())
}
