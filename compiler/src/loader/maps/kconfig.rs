//! The `.kconfig` map: one array entry holding the value of every
//! `.kconfig` extern, from [`crate::loader::LoadOptions::kconfig`].

use super::{blank, Layout, BPF_MAP_TYPE_ARRAY, F_MMAPABLE, F_RDONLY_PROG};
use crate::isa::Endian;
use crate::loader::btf::Btf;
use crate::loader::elf::ElfFile;
use crate::loader::error::LoadError;
use crate::loader::MapOrigin;
use object::elf as E;
use std::collections::BTreeMap;

/// Bytes of one ELF64 symbol table entry.
const SYM_SIZE: usize = 24;

pub(super) fn kconfig_map(
    elf: &ElfFile,
    btf: Option<&Btf>,
    values: &BTreeMap<String, u64>,
    layout: &mut Layout,
) -> Result<(), LoadError> {
    let kvars = btf.map(|b| b.datasec_vars(".kconfig")).unwrap_or_default();
    let mut externs: Vec<(&str, u64, bool, usize)> = Vec::new();
    for (i, s) in elf.symbols.iter().enumerate() {
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
        externs.push((&s.name, size.unwrap_or(8), s.bind == E::STB_WEAK, i));
    }
    if externs.is_empty() {
        return Ok(());
    }
    externs.sort();
    let map_index = layout.maps.len();
    let mut image = Vec::new();
    for (name, size, weak, sym) in externs {
        // Where the extern is declared: its symbol table entry.
        let (section, offset) = (".symtab".to_string(), (sym * SYM_SIZE) as u64);
        let value = match values.get(name) {
            Some(&v) => v,
            None if weak => 0,
            None => {
                return Err(LoadError::UnresolvedExtern {
                    name: name.to_string(),
                    section,
                    offset,
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
                    section,
                    offset,
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
