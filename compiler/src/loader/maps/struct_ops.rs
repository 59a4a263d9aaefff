//! struct_ops maps, as libbpf builds them: every variable of the
//! `.struct_ops` / `.struct_ops.link` datasec is one `BPF_MAP_TYPE_STRUCT_OPS`
//! map whose value is the variable's struct (key 4 bytes, one entry), with
//! the variable's bytes as its initial image. Each relocation in the section
//! sets a function-pointer member to a `SEC("struct_ops/...")` program.

use super::{blank, Layout, BPF_MAP_TYPE_STRUCT_OPS, F_LINK};
use crate::loader::btf::{Btf, TypeKind};
use crate::loader::elf::ElfFile;
use crate::loader::error::LoadError;
use crate::loader::sections::{classify, ProgType};
use crate::loader::{MapOrigin, StructOps, StructOpsFunc};

pub(crate) const SECTION: &str = ".struct_ops";
pub(crate) const LINK_SECTION: &str = ".struct_ops.link";
/// `R_BPF_64_ABS64`: a 64-bit absolute address (a function pointer here).
const R_BPF_64_ABS64: u32 = 2;
/// The same relocation as binutils 2.40's assembler (GCC) numbers it,
/// `R_BPF_DATA_64`.
const R_BPF_DATA_64: u32 = 12;

pub(super) fn struct_ops_maps(
    elf: &ElfFile,
    idx: usize,
    btf: Option<&Btf>,
    layout: &mut Layout,
) -> Result<(), LoadError> {
    let sec = &elf.sections[idx];
    let bad_sec = |offset: u64, reason: String| LoadError::BadSection {
        section: sec.name.clone(),
        offset,
        reason,
    };
    let btf = btf.ok_or_else(|| bad_sec(0, "struct_ops maps need a .BTF section".into()))?;
    let link = sec.name == LINK_SECTION;
    let first = layout.maps.len();
    // (start, size) of each map's variable in the section.
    let mut spans = Vec::new();
    for (name, type_id, var) in btf.datasec_vars(&sec.name) {
        let bad = |reason: String| LoadError::BadMap {
            map: name.clone(),
            section: sec.name.clone(),
            offset: var.offset as u64,
            reason,
        };
        let sid = btf.skip_mods_and_typedefs(type_id);
        let st = btf
            .get(sid)
            .filter(|t| matches!(t.kind, TypeKind::Struct { .. }))
            .ok_or_else(|| {
                bad(format!(
                    "BTF type {type_id} of the variable is not a struct"
                ))
            })?;
        let size = btf
            .size_of(sid)
            .and_then(|s| u32::try_from(s).ok())
            .ok_or_else(|| bad("the struct has no size".into()))?;
        let start = var.offset as usize;
        let image = start
            .checked_add(size as usize)
            .and_then(|end| sec.data.get(start..end))
            .ok_or_else(|| {
                bad(format!(
                    "{size} bytes at {start:#x} are outside the section ({:#x} bytes)",
                    sec.size
                ))
            })?;
        let mut m = blank(&name, MapOrigin::StructOps);
        m.map_type = BPF_MAP_TYPE_STRUCT_OPS;
        m.key_size = 4;
        m.value_size = size;
        m.max_entries = 1;
        m.map_flags = if link { F_LINK } else { 0 };
        m.value_type_id = Some(sid);
        m.data = image.to_vec();
        m.struct_ops = Some(StructOps {
            type_name: st.name.clone(),
            link,
            funcs: Vec::new(),
        });
        spans.push((var.offset as u64, size as u64, sid));
        layout.maps.push(m);
    }
    for r in &sec.relocs {
        let bad_target = |found: String, expected| LoadError::BadRelocationTarget {
            section: sec.name.clone(),
            offset: r.offset,
            symbol: elf.symbols[r.sym].name.clone(),
            found,
            expected,
        };
        let Some(pos) = spans
            .iter()
            .position(|&(start, size, _)| r.offset >= start && r.offset < start + size)
        else {
            return Err(bad_target(
                "an offset outside every struct_ops variable".into(),
                "a function-pointer member",
            ));
        };
        if r.r_type != R_BPF_64_ABS64 && r.r_type != R_BPF_DATA_64 {
            return Err(LoadError::BadRelocationType {
                section: sec.name.clone(),
                offset: r.offset,
                r_type: r.r_type,
            });
        }
        let (start, _, sid) = spans[pos];
        let rel = r.offset - start;
        let member = btf
            .get(sid)
            .and_then(|t| t.kind.members())
            .and_then(|ms| {
                ms.iter()
                    .find(|m| m.bitfield_size == 0 && m.bit_offset as u64 == rel * 8)
            })
            .filter(|m| {
                let t = btf.skip_mods_and_typedefs(m.type_id);
                matches!(btf.get(t).map(|t| &t.kind), Some(TypeKind::Ptr { type_id })
                    if matches!(btf.get(btf.skip_mods_and_typedefs(*type_id)).map(|t| &t.kind),
                                Some(TypeKind::FuncProto { .. })))
            })
            .ok_or_else(|| {
                bad_target(
                    format!("struct offset {rel:#x}, not a function-pointer member"),
                    "a function-pointer member",
                )
            })?;
        let sym = &elf.symbols[r.sym];
        let prog_section = sym
            .section
            .filter(|&i| elf.sections[i].is_exec() && sym.is_func())
            .map(|i| &elf.sections[i].name);
        match prog_section {
            // `?struct_ops/...`: a program libbpf does not load by default.
            Some(s) if classify(s.trim_start_matches('?')).prog_type == ProgType::StructOps => {}
            Some(s) => {
                return Err(bad_target(
                    format!("function in section {s}"),
                    "a SEC(\"struct_ops/...\") program",
                ))
            }
            None => {
                return Err(bad_target(
                    "symbol that is not a function".into(),
                    "a SEC(\"struct_ops/...\") program",
                ))
            }
        }
        let ops = layout.maps[first + pos]
            .struct_ops
            .as_mut()
            .expect("struct_ops maps have StructOps");
        ops.funcs.push(StructOpsFunc {
            member: member.name.clone(),
            offset: rel as u32,
            program: sym.name.clone(),
        });
    }
    for m in &mut layout.maps[first..] {
        if let Some(ops) = &mut m.struct_ops {
            ops.funcs.sort_by_key(|f| f.offset);
        }
    }
    Ok(())
}
