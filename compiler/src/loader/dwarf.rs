//! The one thing the loader reads from DWARF: the enumerator value behind a
//! map definition's `__ulong` member when the BTF lost it. GCC 12 writes an
//! enum whose value does not fit 32 bits as an 8-byte BTF enum with no
//! enumerators (an arena's `map_extra`), but keeps the value in DWARF.

use super::elf::ElfFile;
use crate::isa::Endian;
use gimli::{constants as dw, AttributeValue, EndianSlice, RunTimeEndian, Unit, UnitOffset};

type R<'a> = EndianSlice<'a, RunTimeEndian>;

/// Follow typedefs and qualifiers from `off`.
fn strip(unit: &Unit<R<'_>>, mut off: UnitOffset) -> Option<UnitOffset> {
    for _ in 0..32 {
        let e = unit.entry(off).ok()?;
        match e.tag() {
            dw::DW_TAG_typedef | dw::DW_TAG_const_type | dw::DW_TAG_volatile_type => {
                off = type_of(&e)?;
            }
            _ => return Some(off),
        }
    }
    None
}

fn type_of(e: &gimli::DebuggingInformationEntry<R<'_>>) -> Option<UnitOffset> {
    match e.attr_value(dw::DW_AT_type)? {
        AttributeValue::UnitRef(o) => Some(o),
        _ => None,
    }
}

fn name_of(
    dwarf: &gimli::Dwarf<R<'_>>,
    unit: &Unit<R<'_>>,
    e: &gimli::DebuggingInformationEntry<R<'_>>,
) -> Option<String> {
    let v = e.attr_value(dw::DW_AT_name)?;
    let s = dwarf.attr_string(unit, v).ok()?;
    Some(String::from_utf8_lossy(s.slice()).into_owned())
}

/// The children of the entry at `off` (offsets).
fn children(unit: &Unit<R<'_>>, off: UnitOffset) -> Vec<UnitOffset> {
    let mut out = Vec::new();
    let Ok(mut tree) = unit.entries_tree(Some(off)) else {
        return out;
    };
    let Ok(root) = tree.root() else { return out };
    let mut it = root.children();
    while let Ok(Some(child)) = it.next() {
        out.push(child.entry().offset());
    }
    out
}

/// The value of the first enumerator of the enum type of member `member`
/// of global variable `var`'s struct type, if DWARF has it.
pub(crate) fn member_enum_value(elf: &ElfFile, var: &str, member: &str) -> Option<u64> {
    let endian = match elf.endian {
        Endian::Little => RunTimeEndian::Little,
        Endian::Big => RunTimeEndian::Big,
    };
    let load = |id: gimli::SectionId| -> Result<R<'_>, gimli::Error> {
        let data = elf
            .section_by_name(id.name())
            .map(|(_, s)| s.data.as_slice())
            .unwrap_or(&[]);
        Ok(EndianSlice::new(data, endian))
    };
    let dwarf = gimli::Dwarf::load(load).ok()?;
    let mut units = dwarf.units();
    while let Ok(Some(header)) = units.next() {
        let Ok(unit) = dwarf.unit(header) else {
            continue;
        };
        let Ok(mut tree) = unit.entries_tree(None) else {
            continue;
        };
        let Ok(root) = tree.root() else { continue };
        let top: Vec<UnitOffset> = {
            let mut v = Vec::new();
            let mut it = root.children();
            while let Ok(Some(c)) = it.next() {
                if c.entry().tag() == dw::DW_TAG_variable {
                    v.push(c.entry().offset());
                }
            }
            v
        };
        for off in top {
            let Ok(e) = unit.entry(off) else { continue };
            if name_of(&dwarf, &unit, &e).as_deref() != Some(var) {
                continue;
            }
            let st = strip(&unit, type_of(&e)?)?;
            for m in children(&unit, st) {
                let Ok(me) = unit.entry(m) else { continue };
                if me.tag() != dw::DW_TAG_member
                    || name_of(&dwarf, &unit, &me).as_deref() != Some(member)
                {
                    continue;
                }
                let en = strip(&unit, type_of(&me)?)?;
                if unit.entry(en).ok()?.tag() != dw::DW_TAG_enumeration_type {
                    return None;
                }
                for v in children(&unit, en) {
                    let ve = unit.entry(v).ok()?;
                    if ve.tag() == dw::DW_TAG_enumerator {
                        let c = ve.attr_value(dw::DW_AT_const_value)?;
                        return c.udata_value().or(c.sdata_value().map(|v| v as u64));
                    }
                }
                return None;
            }
        }
    }
    None
}
