//! Map definitions: BTF-defined maps in `.maps` (including inner maps and the
//! initial `values` of prog arrays and maps of maps), legacy `struct
//! bpf_map_def` entries in `maps`, one single-entry array per global data
//! section, and the `.kconfig` map of extern values. Also records where each
//! relocatable symbol lands, for [`super::reloc`].

mod btf_defs;
mod kconfig;
mod legacy;
mod struct_ops;

use super::btf::Btf;
use super::elf::{ElfFile, ElfSymbol};
use super::error::LoadError;
use super::externs::Externs;
use super::{DataSection, GlobalKind, MapDef, MapOrigin};
use crate::isa::Endian;
use object::elf as E;
use std::collections::BTreeMap;

pub(crate) const BPF_MAP_TYPE_ARRAY: u32 = 2;
const BPF_MAP_TYPE_PROG_ARRAY: u32 = 3;
const BPF_MAP_TYPE_ARRAY_OF_MAPS: u32 = 12;
const BPF_MAP_TYPE_HASH_OF_MAPS: u32 = 13;
const BPF_MAP_TYPE_STRUCT_OPS: u32 = 26;
/// `BPF_F_RDONLY_PROG`.
const F_RDONLY_PROG: u32 = 1 << 7;
/// `BPF_F_MMAPABLE`.
const F_MMAPABLE: u32 = 1 << 10;
/// `BPF_F_LINK`: a `.struct_ops.link` map is attached through a BPF link.
const F_LINK: u32 = 1 << 13;

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
    /// `.kconfig` extern name → (map index, offset), or why it has no value.
    pub kconfig: BTreeMap<String, Result<(usize, u64), String>>,
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
        legacy: None,
        struct_ops: None,
    }
}

pub(crate) fn collect(
    elf: &ElfFile,
    btf: Option<&Btf>,
    externs: &Externs,
    kconfig: &BTreeMap<String, u64>,
) -> Result<Layout, LoadError> {
    let mut layout = Layout::default();
    for (idx, sec) in elf.sections.iter().enumerate() {
        let is_data = sec.sh_type == E::SHT_PROGBITS || sec.sh_type == E::SHT_NOBITS;
        let alloc = sec.flags & E::SHF_ALLOC as u64 != 0;
        if sec.name == ".maps" {
            btf_defs::btf_maps(elf, idx, btf, &mut layout)?;
        } else if sec.name == "maps" {
            legacy::legacy_maps(elf, idx, &mut layout)?;
        } else if sec.name == struct_ops::SECTION || sec.name == struct_ops::LINK_SECTION {
            struct_ops::struct_ops_maps(elf, idx, btf, &mut layout)?;
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
                offset: 0,
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
            // Empty for .bss: the value is `value_size` zeroes.
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
    kconfig::kconfig_map(elf.endian, externs, kconfig, &mut layout);
    Ok(layout)
}

fn read_u32(data: &[u8], off: u64, endian: Endian) -> Option<u32> {
    let off = usize::try_from(off).ok()?;
    let b: [u8; 4] = data.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(endian.u32(b))
}

/// Symbols defined in section `idx` that are not section/file symbols, by offset.
fn section_objects(elf: &ElfFile, idx: usize) -> Vec<(usize, &ElfSymbol)> {
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
