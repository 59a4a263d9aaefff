//! CO-RE (compile once, run everywhere) relocation resolution: the access
//! string of each `.BTF.ext` record is walked through the object's own BTF
//! (giving the value the compiler emitted, which is checked) and through the
//! target BTF (matching types by name without `___flavour` suffixes and
//! fields by name), and the instruction is patched with the target value.

mod types;

use super::btf::{Btf, TypeKind};
use super::btf_ext::{CoreReloKind, CoreReloRec};
use super::error::LoadError;
use crate::isa::{Endian, Insn, Size, Src};

/// One step of a field access.
#[derive(Clone, Debug)]
enum Step {
    /// Member `index` of a struct/union, with its name.
    Member(usize, String),
    /// Element of an array.
    Index(u64),
}

/// A resolved field.
#[derive(Clone, Copy, Debug)]
struct Field {
    bit_off: u64,
    bitfield_size: u32,
    type_id: u32,
}

fn parse_access(access: &str) -> Option<Vec<u64>> {
    access.split(':').map(|s| s.parse().ok()).collect()
}

/// Walk the access indices through `btf` from `root`, recording names.
fn walk_local(btf: &Btf, root: u32, acc: &[u64]) -> Result<(Field, Vec<Step>), String> {
    let (&first, rest) = acc.split_first().ok_or("empty access string")?;
    let root_sz = btf.size_of(root).ok_or("root type has no size")?;
    let mut bit_off = first.saturating_mul(root_sz).saturating_mul(8);
    let mut id = root;
    let mut bitfield_size = 0;
    let mut steps = Vec::new();
    for &a in rest {
        let cur = btf.skip_mods_and_typedefs(id);
        match &btf.get(cur).ok_or("bad type id")?.kind {
            TypeKind::Struct { members, .. } | TypeKind::Union { members, .. } => {
                let m = members
                    .get(a as usize)
                    .ok_or_else(|| format!("member index {a} out of range"))?;
                bit_off = bit_off.saturating_add(m.bit_offset as u64);
                bitfield_size = m.bitfield_size;
                id = m.type_id;
                steps.push(Step::Member(a as usize, m.name.clone()));
            }
            TypeKind::Array { elem, .. } => {
                let esz = btf.size_of(*elem).ok_or("array element has no size")?;
                bit_off = bit_off.saturating_add(a.saturating_mul(esz).saturating_mul(8));
                bitfield_size = 0;
                id = *elem;
                steps.push(Step::Index(a));
            }
            other => return Err(format!("cannot index into a {}", other.kind_name())),
        }
    }
    Ok((
        Field {
            bit_off,
            bitfield_size,
            type_id: id,
        },
        steps,
    ))
}

/// Find member `name` of struct/union `id`, looking through anonymous members.
/// `budget` bounds the total work on adversarial BTF.
fn find_member(btf: &Btf, id: u32, name: &str, budget: &mut usize) -> Option<(u64, u32, u32)> {
    if *budget == 0 {
        return None;
    }
    *budget -= 1;
    let members = btf.get(btf.skip_mods_and_typedefs(id))?.kind.members()?;
    for m in members {
        if m.name == name {
            return Some((m.bit_offset as u64, m.bitfield_size, m.type_id));
        }
        if m.name.is_empty() {
            if let Some((off, bs, t)) = find_member(btf, m.type_id, name, budget) {
                return Some((m.bit_offset as u64 + off, bs, t));
            }
        }
    }
    None
}

/// Follow the local steps through the target type `root`.
fn walk_target(btf: &Btf, root: u32, first: u64, steps: &[Step]) -> Option<Field> {
    let mut bit_off = first.checked_mul(btf.size_of(root)?)?.checked_mul(8)?;
    let mut id = root;
    let mut bitfield_size = 0;
    for step in steps {
        let cur = btf.skip_mods_and_typedefs(id);
        match step {
            Step::Member(index, name) => {
                let (off, bs, t) = if name.is_empty() {
                    let m = btf.get(cur)?.kind.members()?.get(*index)?;
                    (m.bit_offset as u64, m.bitfield_size, m.type_id)
                } else {
                    find_member(btf, cur, name, &mut 4096)?
                };
                bit_off = bit_off.checked_add(off)?;
                bitfield_size = bs;
                id = t;
            }
            Step::Index(i) => match btf.get(cur)?.kind {
                TypeKind::Array { elem, nelems, .. } => {
                    if nelems != 0 && *i >= nelems as u64 {
                        return None;
                    }
                    bit_off =
                        bit_off.checked_add(i.checked_mul(btf.size_of(elem)?)?.checked_mul(8)?)?;
                    bitfield_size = 0;
                    id = elem;
                }
                _ => return None,
            },
        }
    }
    Some(Field {
        bit_off,
        bitfield_size,
        type_id: id,
    })
}

/// The value of a field relocation for a resolved field.
fn field_value(btf: &Btf, f: Field, kind: CoreReloKind, endian: Endian) -> Result<u64, String> {
    let ty = btf.skip_mods_and_typedefs(f.type_id);
    let mut byte_sz = btf.size_of(ty).ok_or("field type has no size")?;
    if f.bit_off > u32::MAX as u64 || byte_sz > u32::MAX as u64 {
        return Err("field offset or size out of range".into());
    }
    let (byte_off, bit_sz) = if f.bitfield_size == 0 {
        (f.bit_off / 8, byte_sz * 8)
    } else {
        let bit_sz = f.bitfield_size as u64;
        if byte_sz == 0 {
            return Err("bitfield of a zero-sized type".into());
        }
        let mut byte_off = f.bit_off / 8 / byte_sz * byte_sz;
        while f.bit_off + bit_sz - byte_off * 8 > byte_sz * 8 {
            if byte_sz >= 8 {
                return Err("bitfield does not fit in 8 bytes".into());
            }
            byte_sz *= 2;
            byte_off = f.bit_off / 8 / byte_sz * byte_sz;
        }
        (byte_off, bit_sz)
    };
    Ok(match kind {
        CoreReloKind::FieldByteOffset => byte_off,
        CoreReloKind::FieldByteSize => byte_sz,
        CoreReloKind::FieldExists => 1,
        CoreReloKind::FieldSigned => match &btf.get(ty).ok_or("bad type")?.kind {
            TypeKind::Int { encoding, .. } => (encoding & 1) as u64,
            TypeKind::Enum { signed, .. } | TypeKind::Enum64 { signed, .. } => *signed as u64,
            _ => 0,
        },
        CoreReloKind::FieldLshiftU64 => match endian {
            // As libbpf (u32 arithmetic): meaningful for fields of at most 8 bytes.
            Endian::Little => 64u32.wrapping_sub((f.bit_off + bit_sz - byte_off * 8) as u32) as u64,
            Endian::Big => (8u32.wrapping_sub(byte_sz as u32))
                .wrapping_mul(8)
                .wrapping_add((f.bit_off - byte_off * 8) as u32) as u64,
        },
        CoreReloKind::FieldRshiftU64 => 64u32.wrapping_sub(bit_sz as u32) as u64,
        _ => return Err("not a field relocation".into()),
    })
}

/// What a field access of a memory instruction reads: its size and whether
/// it may change size across BTFs (libbpf allows pointers and unsigned ints).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Mem {
    size: u64,
    class: MemClass,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MemClass {
    Ptr,
    Unsigned,
    Other,
}

fn mem_of(btf: &Btf, f: Field) -> Option<Mem> {
    if f.bitfield_size != 0 {
        return None;
    }
    let ty = btf.skip_mods_and_typedefs(f.type_id);
    let class = match &btf.get(ty)?.kind {
        TypeKind::Ptr { .. } => MemClass::Ptr,
        TypeKind::Int { encoding, .. } if encoding & 1 == 0 => MemClass::Unsigned,
        _ => MemClass::Other,
    };
    Some(Mem {
        size: btf.size_of(ty)?,
        class,
    })
}

/// A resolved relocation: the value and, for field byte offsets, the field.
#[derive(Clone, Copy, Debug)]
struct Resolved {
    value: u64,
    mem: Option<Mem>,
}

fn field(btf: &Btf, f: Field, kind: CoreReloKind, endian: Endian) -> Result<Resolved, String> {
    Ok(Resolved {
        value: field_value(btf, f, kind, endian)?,
        mem: if kind == CoreReloKind::FieldByteOffset {
            mem_of(btf, f)
        } else {
            None
        },
    })
}

/// Value of a relocation against `btf`: `None` when the field/type/enumerator
/// does not exist there. `same` means `btf` is the local BTF itself.
fn resolve(
    local: &Btf,
    rec: &CoreReloRec,
    btf: &Btf,
    same: bool,
    endian: Endian,
) -> Result<Option<Resolved>, String> {
    let acc = parse_access(&rec.access).ok_or("malformed access string")?;
    let root = local.skip_mods_and_typedefs(rec.type_id);
    let plain = |v: u64| {
        Some(Resolved {
            value: v,
            mem: None,
        })
    };
    use CoreReloKind::*;
    match rec.kind {
        FieldByteOffset | FieldByteSize | FieldExists | FieldSigned | FieldLshiftU64
        | FieldRshiftU64 => {
            let (lf, steps) = walk_local(local, root, &acc)?;
            if same {
                return field(local, lf, rec.kind, endian).map(Some);
            }
            for c in types::by_name(local, root, btf) {
                if let Some(f) = walk_target(btf, c, acc[0], &steps) {
                    return field(btf, f, rec.kind, endian).map(Some);
                }
            }
            Ok(None)
        }
        TypeIdLocal => Ok(plain(rec.type_id as u64)),
        TypeIdTarget | TypeExists | TypeMatches | TypeSize => {
            if acc.as_slice() != [0] {
                return Err("type relocation access string must be \"0\"".into());
            }
            let c = if same {
                Some(rec.type_id)
            } else if rec.kind == TypeMatches {
                types::by_name(local, root, btf)
                    .into_iter()
                    .find(|&c| types::matches(local, rec.type_id, btf, c))
            } else {
                types::by_name(local, root, btf)
                    .into_iter()
                    .find(|&c| types::compatible(local, rec.type_id, btf, c))
            };
            Ok(match (rec.kind, c) {
                (_, None) => None,
                (TypeIdTarget, Some(id)) => plain(id as u64),
                (TypeSize, Some(id)) => plain(btf.size_of(id).ok_or("type has no size")?),
                (_, Some(_)) => plain(1),
            })
        }
        EnumvalExists | EnumvalValue => {
            let idx = *acc.first().ok_or("empty access string")? as usize;
            let values = match &local.get(root).ok_or("bad type id")?.kind {
                TypeKind::Enum { values, .. } | TypeKind::Enum64 { values, .. } => values,
                other => return Err(format!("enum relocation on a {}", other.kind_name())),
            };
            let name = &values.get(idx).ok_or("enumerator index out of range")?.name;
            let cands = if same {
                vec![root]
            } else {
                types::by_name(local, root, btf)
            };
            for c in cands {
                if let Some(TypeKind::Enum { values, .. } | TypeKind::Enum64 { values, .. }) =
                    btf.get(c).map(|t| &t.kind)
                {
                    if let Some(v) = values.iter().find(|v| &v.name == name) {
                        return Ok(plain(if rec.kind == EnumvalExists {
                            1
                        } else {
                            v.value as u64
                        }));
                    }
                }
            }
            Ok(None)
        }
    }
}

fn is_bitfield(local: &Btf, rec: &CoreReloRec) -> bool {
    use CoreReloKind::*;
    if !matches!(
        rec.kind,
        FieldByteOffset
            | FieldByteSize
            | FieldExists
            | FieldSigned
            | FieldLshiftU64
            | FieldRshiftU64
    ) {
        return false;
    }
    parse_access(&rec.access)
        .and_then(|acc| walk_local(local, local.skip_mods_and_typedefs(rec.type_id), &acc).ok())
        .is_some_and(|(f, _)| f.bitfield_size != 0)
}

fn size_of_bytes(n: u64) -> Option<Size> {
    Some(match n {
        1 => Size::B,
        2 => Size::H,
        4 => Size::W,
        8 => Size::DW,
        _ => return None,
    })
}

/// Resolve `rec` and patch the instruction at `pc` (whose section slot is
/// `slot`). Without a target BTF the instruction is only checked (it already
/// holds the local value).
#[allow(clippy::too_many_arguments)]
pub(crate) fn apply(
    insns: &mut [Insn],
    pc: usize,
    rec: &CoreReloRec,
    local: &Btf,
    target: Option<&Btf>,
    section: &str,
    endian: Endian,
) -> Result<(), LoadError> {
    let err = |reason: String| LoadError::Core {
        section: section.to_string(),
        offset: rec.insn_off as u64,
        insn: rec.insn_off as u64 / 8,
        kind: rec.kind.name().to_string(),
        access: rec.access.clone(),
        type_name: local
            .get(rec.type_id)
            .map(|t| format!("{} {}", t.kind.kind_name(), t.name))
            .unwrap_or_else(|| format!("type {}", rec.type_id)),
        reason,
    };
    let orig = resolve(local, rec, local, true, endian)
        .map_err(&err)?
        .ok_or_else(|| err("does not resolve against the local BTF".into()))?;
    let new = match target {
        None => orig,
        Some(t) => match resolve(local, rec, t, false, endian).map_err(&err)? {
            Some(v) => v,
            None => match rec.kind {
                CoreReloKind::FieldExists
                | CoreReloKind::TypeExists
                | CoreReloKind::TypeMatches
                | CoreReloKind::EnumvalExists => Resolved {
                    value: 0,
                    mem: None,
                },
                _ => return Err(err("no matching field or type in the target BTF".into())),
            },
        },
    };
    let (orig_v, new_v) = (orig.value, new.value);
    // Like libbpf, do not check the compiler's value for bitfields: the
    // compiler and libbpf choose different (equally valid) load sizes.
    let validate = !is_bitfield(local, rec);
    // Against the object's own BTF the instruction keeps its compiled value.
    let patch = target.is_some();
    let insn = insns
        .get_mut(pc)
        .ok_or_else(|| err(format!("instruction {pc} is outside the program")))?;
    match insn {
        Insn::Alu {
            src: Src::Imm(imm), ..
        } => {
            if validate && *imm as u32 != orig_v as u32 {
                return Err(err(format!(
                    "instruction holds {imm}, local BTF gives {orig_v}"
                )));
            }
            let v = i32::try_from(new_v as i64)
                .or_else(|_| u32::try_from(new_v).map(|v| v as i32))
                .map_err(|_| err(format!("value {new_v} does not fit a 32-bit immediate")))?;
            if patch {
                *imm = v;
            }
        }
        Insn::Ldx { off, size, .. } | Insn::Stx { off, size, .. } | Insn::St { off, size, .. }
            if rec.kind == CoreReloKind::FieldByteOffset =>
        {
            if validate && *off as i64 != orig_v as i64 {
                return Err(err(format!(
                    "instruction offset {off}, local BTF gives {orig_v}"
                )));
            }
            let v = i16::try_from(new_v)
                .map_err(|_| err(format!("offset {new_v} does not fit 16 bits")))?;
            let new_size = mem_size(*size, orig.mem, new.mem).map_err(err)?;
            if patch {
                *off = v;
                *size = new_size;
            }
        }
        Insn::Lddw { imm, .. } => {
            if validate && *imm != orig_v {
                return Err(err(format!(
                    "instruction holds {imm}, local BTF gives {orig_v}"
                )));
            }
            if patch {
                *imm = new_v;
            }
        }
        other => return Err(err(format!("cannot patch {other:?}"))),
    }
    Ok(())
}

/// The access size of a relocated load or store, as libbpf adjusts it: a
/// field whose size differs in the target is read at its new size when both
/// are pointers or both unsigned integers, and only if the instruction
/// accessed exactly the local field.
fn mem_size(size: Size, orig: Option<Mem>, new: Option<Mem>) -> Result<Size, String> {
    let (Some(o), Some(n)) = (orig, new) else {
        return Ok(size);
    };
    if o.size == n.size {
        return Ok(size);
    }
    let ok = matches!(
        (o.class, n.class),
        (MemClass::Ptr, MemClass::Ptr) | (MemClass::Unsigned, MemClass::Unsigned)
    );
    if !ok {
        return Err(format!(
            "field is {} bytes locally and {} in the target; a load/store can change size only for pointers or unsigned integers",
            o.size, n.size
        ));
    }
    if size.bytes() as u64 != o.size {
        return Err(format!(
            "instruction accesses {} bytes of a {}-byte field whose size changes to {}",
            size.bytes(),
            o.size,
            n.size
        ));
    }
    size_of_bytes(n.size).ok_or_else(|| {
        format!(
            "field size changes from {} to {} bytes, not a load/store size",
            o.size, n.size
        )
    })
}
