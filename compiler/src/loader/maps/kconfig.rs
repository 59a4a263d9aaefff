//! The `.kconfig` map: one array entry holding the value of every
//! `.kconfig` extern (values by [`crate::loader::externs::kconfig_value`]).
//! An extern without a value still gets its slot (zeroes); the programs that
//! load it fail with the reason.

use super::{blank, Layout, BPF_MAP_TYPE_ARRAY, F_MMAPABLE, F_RDONLY_PROG};
use crate::isa::Endian;
use crate::loader::externs::{kconfig_value, Extern, Externs};
use crate::loader::MapOrigin;
use std::collections::BTreeMap;

pub(super) fn kconfig_map(
    endian: Endian,
    externs: &Externs,
    values: &BTreeMap<String, u64>,
    layout: &mut Layout,
) {
    let kconfig: Vec<(&String, u64, bool)> = externs
        .iter()
        .filter_map(|(name, e)| match *e {
            Extern::Kconfig { size, weak } => Some((name, size, weak)),
            _ => None,
        })
        .collect();
    if kconfig.is_empty() {
        return;
    }
    let map_index = layout.maps.len();
    let mut image = Vec::new();
    for (name, size, weak) in kconfig {
        while image.len() % 8 != 0 {
            image.push(0);
        }
        let off = image.len();
        let value = kconfig_value(name, weak, values).and_then(|v| match size {
            1 | 2 | 4 | 8 => Ok(v),
            other => Err(format!(
                "a {other}-byte .kconfig extern (bpfc stores 1, 2, 4 or 8 bytes)"
            )),
        });
        let bytes = size.clamp(1, 8) as usize;
        let v = *value.as_ref().unwrap_or(&0);
        image.extend(match endian {
            Endian::Little => v.to_le_bytes()[..bytes].to_vec(),
            Endian::Big => v.to_be_bytes()[8 - bytes..].to_vec(),
        });
        layout
            .kconfig
            .insert(name.clone(), value.map(|_| (map_index, off as u64)));
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
}
