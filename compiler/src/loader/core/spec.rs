//! Access specifications, as libbpf builds them: the access string of a
//! relocation parsed against the local BTF (every raw index, the named
//! members and array indices that matter, the bit offset they reach), and
//! the same walk matched in a candidate target type.

use super::types;
use crate::loader::btf::{Btf, TypeKind};
use crate::loader::btf_ext::CoreReloKind;

/// libbpf's limit on access string components (`BPF_CORE_SPEC_MAX_LEN`).
const MAX_LEN: usize = 64;

/// One high-level step: a named member (`name` set) or an array index.
#[derive(Clone, Debug)]
pub(super) struct Accessor {
    /// The struct/union (for a member) or element type (for an index).
    pub type_id: u32,
    pub idx: u32,
    pub name: Option<String>,
}

/// A parsed (local) or matched (target) access.
#[derive(Clone, Debug)]
pub(super) struct Spec {
    pub root_type_id: u32,
    pub accessors: Vec<Accessor>,
    pub raw: Vec<u32>,
    pub bit_offset: u64,
}

pub(super) fn is_field(kind: CoreReloKind) -> bool {
    use CoreReloKind::*;
    matches!(
        kind,
        FieldByteOffset
            | FieldByteSize
            | FieldExists
            | FieldSigned
            | FieldLshiftU64
            | FieldRshiftU64
    )
}

pub(super) fn is_type(kind: CoreReloKind) -> bool {
    use CoreReloKind::*;
    matches!(
        kind,
        TypeIdLocal | TypeIdTarget | TypeExists | TypeMatches | TypeSize
    )
}

fn size(btf: &Btf, id: u32) -> Result<u64, String> {
    btf.size_of(id)
        .ok_or_else(|| format!("type {id} has no size"))
}

/// Whether the array reached through `parent` (the accessor before it) is a
/// flexible array member: no elements and the last member of its struct.
fn is_flex(btf: &Btf, parent: Option<&Accessor>, nelems: u32) -> bool {
    let Some(p) = parent.filter(|p| p.name.is_some()) else {
        return false;
    };
    nelems == 0
        && btf
            .get(p.type_id)
            .and_then(|t| t.kind.members())
            .is_some_and(|m| p.idx as usize + 1 == m.len())
}

/// Parse `access` for a relocation of `kind` on local type `type_id`.
pub(super) fn parse(
    btf: &Btf,
    type_id: u32,
    access: &str,
    kind: CoreReloKind,
) -> Result<Spec, String> {
    let mut spec = Spec {
        root_type_id: type_id,
        accessors: Vec::new(),
        raw: Vec::new(),
        bit_offset: 0,
    };
    if access.is_empty() || access.starts_with(':') {
        return Err("malformed access string".into());
    }
    if is_type(kind) {
        if access != "0" {
            return Err("a type relocation's access string must be \"0\"".into());
        }
        return Ok(spec);
    }
    for part in access.split(':') {
        let v: u32 = part
            .parse()
            .map_err(|_| format!("malformed access string component {part:?}"))?;
        if spec.raw.len() == MAX_LEN {
            return Err(format!("access string longer than {MAX_LEN} components"));
        }
        spec.raw.push(v);
    }
    let mut id = btf.skip_mods_and_typedefs(type_id);
    let first = spec.raw[0];
    spec.accessors.push(Accessor {
        type_id: id,
        idx: first,
        name: None,
    });
    let root = &btf.get(id).ok_or("bad type id")?.kind;
    if !is_field(kind) {
        // Enumerator relocations: one index into an enum.
        let (TypeKind::Enum { values, .. } | TypeKind::Enum64 { values, .. }) = root else {
            return Err(format!("enum relocation on a {}", root.kind_name()));
        };
        if spec.raw.len() > 1 {
            return Err("enum relocation with more than one index".into());
        }
        let v = values
            .get(first as usize)
            .ok_or_else(|| format!("enumerator {first} out of range"))?;
        spec.accessors[0].name = Some(v.name.clone());
        return Ok(spec);
    }
    spec.bit_offset = (first as u64)
        .checked_mul(size(btf, id)?)
        .and_then(|v| v.checked_mul(8))
        .ok_or("offset overflows")?;
    for i in 1..spec.raw.len() {
        id = btf.skip_mods_and_typedefs(id);
        let a = spec.raw[i];
        match &btf.get(id).ok_or("bad type id")?.kind {
            TypeKind::Struct { members, .. } | TypeKind::Union { members, .. } => {
                let m = members
                    .get(a as usize)
                    .ok_or_else(|| format!("member {a} out of range"))?;
                spec.bit_offset += m.bit_offset as u64;
                if !m.name.is_empty() {
                    spec.accessors.push(Accessor {
                        type_id: id,
                        idx: a,
                        name: Some(m.name.clone()),
                    });
                }
                id = m.type_id;
            }
            TypeKind::Array { elem, nelems, .. } => {
                let flex = is_flex(btf, spec.accessors.last(), *nelems);
                id = btf.skip_mods_and_typedefs(*elem);
                if !flex && a >= *nelems {
                    return Err(format!("index {a} past the array's {nelems} elements"));
                }
                spec.accessors.push(Accessor {
                    type_id: id,
                    idx: a,
                    name: None,
                });
                spec.bit_offset = (a as u64)
                    .checked_mul(size(btf, id)?)
                    .and_then(|v| v.checked_mul(8))
                    .and_then(|v| v.checked_add(spec.bit_offset))
                    .ok_or("offset overflows")?;
            }
            other => {
                return Err(format!(
                    "access index {i} reaches a {}, not a struct, union or array",
                    other.kind_name()
                ))
            }
        }
    }
    Ok(spec)
}

/// Find local member accessor `acc` (named) in target struct/union `tid`,
/// through anonymous members, extending `spec`; the member's type on success.
fn match_member(
    local: &Btf,
    acc: &Accessor,
    target: &Btf,
    tid: u32,
    spec: &mut Spec,
    budget: &mut usize,
) -> Result<Option<u32>, String> {
    if *budget == 0 {
        return Err("type nesting too deep".into());
    }
    *budget -= 1;
    let tid = target.skip_mods_and_typedefs(tid);
    let Some(members) = target.get(tid).ok_or("bad type id")?.kind.members() else {
        return Ok(None);
    };
    let lmember = local
        .get(acc.type_id)
        .and_then(|t| t.kind.members())
        .and_then(|m| m.get(acc.idx as usize))
        .ok_or("bad local member")?;
    for (i, m) in members.iter().enumerate() {
        if spec.raw.len() == MAX_LEN {
            return Err(format!("access deeper than {MAX_LEN} components"));
        }
        spec.bit_offset += m.bit_offset as u64;
        spec.raw.push(i as u32);
        if m.name.is_empty() {
            if let Some(t) = match_member(local, acc, target, m.type_id, spec, budget)? {
                return Ok(Some(t));
            }
        } else if m.name == lmember.name {
            if types::fields_compatible(local, lmember.type_id, target, m.type_id) {
                spec.accessors.push(Accessor {
                    type_id: tid,
                    idx: i as u32,
                    name: Some(m.name.clone()),
                });
                return Ok(Some(m.type_id));
            }
            // libbpf stops at the first member of that name.
            spec.bit_offset -= m.bit_offset as u64;
            spec.raw.pop();
            return Ok(None);
        }
        spec.bit_offset -= m.bit_offset as u64;
        spec.raw.pop();
    }
    Ok(None)
}

/// Match local spec `local` in target type `tid`: `None` when it does not
/// match, an error when the walk itself fails.
pub(super) fn matched(
    local_btf: &Btf,
    local: &Spec,
    kind: CoreReloKind,
    target: &Btf,
    tid: u32,
) -> Result<Option<Spec>, String> {
    let mut spec = Spec {
        root_type_id: tid,
        accessors: Vec::new(),
        raw: Vec::new(),
        bit_offset: 0,
    };
    if is_type(kind) {
        let ok = if kind == CoreReloKind::TypeMatches {
            types::matches(local_btf, local.root_type_id, target, tid)?
        } else {
            types::compatible(local_btf, local.root_type_id, target, tid, MAX_LEN)?
        };
        return Ok(ok.then_some(spec));
    }
    if !is_field(kind) {
        let name = local.accessors[0].name.as_deref().unwrap_or_default();
        let want = types::essential(name);
        let id = target.skip_mods_and_typedefs(tid);
        let (TypeKind::Enum { values, .. } | TypeKind::Enum64 { values, .. }) =
            &target.get(id).ok_or("bad type id")?.kind
        else {
            return Ok(None);
        };
        let Some(i) = values
            .iter()
            .position(|v| types::essential(&v.name) == want)
        else {
            return Ok(None);
        };
        spec.accessors.push(Accessor {
            type_id: id,
            idx: i as u32,
            name: Some(values[i].name.clone()),
        });
        spec.raw.push(i as u32);
        return Ok(Some(spec));
    }
    let mut id = tid;
    let mut budget = 1 << 12;
    for (i, acc) in local.accessors.iter().enumerate() {
        id = target.skip_mods_and_typedefs(id);
        target.get(id).ok_or("bad type id")?;
        if acc.name.is_some() {
            match match_member(local_btf, acc, target, id, &mut spec, &mut budget)? {
                Some(next) => id = next,
                None => return Ok(None),
            }
        } else {
            if i > 0 {
                let TypeKind::Array { elem, nelems, .. } = target.get(id).unwrap().kind else {
                    return Ok(None);
                };
                if !is_flex(target, spec.accessors.last(), nelems) && acc.idx >= nelems {
                    return Ok(None);
                }
                id = target.skip_mods_and_typedefs(elem);
            }
            if spec.raw.len() == MAX_LEN {
                return Err(format!("access deeper than {MAX_LEN} components"));
            }
            spec.accessors.push(Accessor {
                type_id: id,
                idx: acc.idx,
                name: None,
            });
            spec.raw.push(acc.idx);
            spec.bit_offset = (acc.idx as u64)
                .checked_mul(size(target, id)?)
                .and_then(|v| v.checked_mul(8))
                .and_then(|v| v.checked_add(spec.bit_offset))
                .ok_or("offset overflows")?;
        }
    }
    Ok(Some(spec))
}
