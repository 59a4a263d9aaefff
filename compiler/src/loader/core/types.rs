//! Which target types can stand for a local type: candidates by essential
//! name, libbpf's loose compatibility rule (type exists/size/id relocations)
//! and its stricter structural match (`bpf_core_type_matches`).

use crate::loader::btf::{Btf, TypeKind};

/// How deep the compatibility and match walks may recurse.
const MAX_DEPTH: usize = 32;

/// Essential name: without a `___flavour` suffix.
pub(super) fn essential(name: &str) -> &str {
    name.find("___").map_or(name, |i| &name[..i])
}

fn enumish(k: u32) -> bool {
    k == 6 || k == 19
}

/// Types of `btf` whose essential name and kind match local type `local_id`,
/// in id order.
pub(super) fn by_name(local: &Btf, local_id: u32, btf: &Btf) -> Vec<u32> {
    let Some(t) = local.get(local_id) else {
        return Vec::new();
    };
    let name = essential(&t.name);
    if name.is_empty() {
        return Vec::new();
    }
    let kind = t.kind.kind_number();
    btf.types
        .iter()
        .enumerate()
        .filter(|(_, c)| {
            let ck = c.kind.kind_number();
            essential(&c.name) == name && (ck == kind || (enumish(ck) && enumish(kind)))
        })
        .map(|(i, _)| i as u32)
        .collect()
}

/// libbpf's `bpf_core_types_are_compat`: same kind after modifiers, integers
/// without bit offsets, pointers, arrays and prototypes compared through.
pub(super) fn compatible(local: &Btf, lid: u32, target: &Btf, tid: u32) -> bool {
    let (mut lid, mut tid) = (lid, tid);
    for _ in 0..MAX_DEPTH {
        let l = local.skip_mods_and_typedefs(lid);
        let t = target.skip_mods_and_typedefs(tid);
        let (Some(lt), Some(tt)) = (local.get(l), target.get(t)) else {
            return false;
        };
        let (lk, tk) = (lt.kind.kind_number(), tt.kind.kind_number());
        if lk != tk && !(enumish(lk) && enumish(tk)) {
            return false;
        }
        match (&lt.kind, &tt.kind) {
            (TypeKind::Int { offset: lo, .. }, TypeKind::Int { offset: to, .. }) => {
                return *lo == 0 && *to == 0
            }
            (TypeKind::Ptr { type_id: a }, TypeKind::Ptr { type_id: b }) => (lid, tid) = (*a, *b),
            (TypeKind::Array { elem: a, .. }, TypeKind::Array { elem: b, .. }) => {
                (lid, tid) = (*a, *b)
            }
            (
                TypeKind::FuncProto {
                    ret: lr,
                    params: lp,
                },
                TypeKind::FuncProto {
                    ret: tr,
                    params: tp,
                },
            ) => {
                if lp.len() != tp.len()
                    || !lp
                        .iter()
                        .zip(tp)
                        .all(|(a, b)| compatible_shallow(local, a.type_id, target, b.type_id))
                {
                    return false;
                }
                (lid, tid) = (*lr, *tr);
            }
            (
                TypeKind::Void
                | TypeKind::Struct { .. }
                | TypeKind::Union { .. }
                | TypeKind::Enum { .. }
                | TypeKind::Enum64 { .. }
                | TypeKind::Fwd { .. },
                _,
            ) => return true,
            _ => return false,
        }
    }
    false
}

/// Parameter check of [`compatible`] without following prototypes again
/// (bounds the work on adversarial BTF).
fn compatible_shallow(local: &Btf, lid: u32, target: &Btf, tid: u32) -> bool {
    let l = local.skip_mods_and_typedefs(lid);
    let t = target.skip_mods_and_typedefs(tid);
    match (local.get(l), target.get(t)) {
        (Some(a), Some(b)) => {
            let (ak, bk) = (a.kind.kind_number(), b.kind.kind_number());
            ak == bk || (enumish(ak) && enumish(bk))
        }
        _ => false,
    }
}

/// Names match when the local one is anonymous or their essential names agree.
fn names_match(local: &str, target: &str) -> bool {
    local.is_empty() || essential(local) == essential(target)
}

/// libbpf's `bpf_core_types_match`: the target type has every member and
/// enumerator of the local one (by name, recursively), integers agree in size
/// and signedness, arrays in length; behind a pointer a struct may match a
/// forward declaration. `budget` bounds the total work.
pub(super) fn matches(local: &Btf, lid: u32, target: &Btf, tid: u32) -> bool {
    let mut budget = 1 << 14;
    types_match(local, lid, target, tid, false, MAX_DEPTH, &mut budget)
}

fn types_match(
    local: &Btf,
    lid: u32,
    target: &Btf,
    tid: u32,
    behind_ptr: bool,
    depth: usize,
    budget: &mut usize,
) -> bool {
    if depth == 0 || *budget == 0 {
        return false;
    }
    *budget -= 1;
    let l = local.skip_mods_and_typedefs(lid);
    let t = target.skip_mods_and_typedefs(tid);
    let (Some(lt), Some(tt)) = (local.get(l), target.get(t)) else {
        return false;
    };
    if !names_match(&lt.name, &tt.name) {
        return false;
    }
    let recur = |a: u32, b: u32, ptr: bool, budget: &mut usize| {
        types_match(local, a, target, b, ptr, depth - 1, budget)
    };
    match (&lt.kind, &tt.kind) {
        (TypeKind::Void, k) => matches!(k, TypeKind::Void),
        (TypeKind::Fwd { is_union: lu }, k) => match k {
            TypeKind::Fwd { is_union: tu } => lu == tu,
            TypeKind::Struct { .. } => behind_ptr && !lu,
            TypeKind::Union { .. } => behind_ptr && *lu,
            _ => false,
        },
        (
            TypeKind::Enum {
                size: ls,
                values: lv,
                ..
            }
            | TypeKind::Enum64 {
                size: ls,
                values: lv,
                ..
            },
            TypeKind::Enum {
                size: ts,
                values: tv,
                ..
            }
            | TypeKind::Enum64 {
                size: ts,
                values: tv,
                ..
            },
        ) => ls == ts && lv.iter().all(|v| tv.iter().any(|w| w.name == v.name)),
        (TypeKind::Struct { members: lm, .. }, TypeKind::Struct { members: tm, .. })
        | (TypeKind::Union { members: lm, .. }, TypeKind::Union { members: tm, .. }) => {
            if behind_ptr {
                return true;
            }
            lm.len() <= tm.len()
                && lm.iter().all(|m| {
                    tm.iter().any(|n| {
                        names_match(&m.name, &n.name) && recur(m.type_id, n.type_id, false, budget)
                    })
                })
        }
        (TypeKind::Struct { .. }, TypeKind::Fwd { is_union }) => behind_ptr && !is_union,
        (TypeKind::Union { .. }, TypeKind::Fwd { is_union }) => behind_ptr && *is_union,
        (
            TypeKind::Int {
                size: ls,
                encoding: le,
                ..
            },
            TypeKind::Int {
                size: ts,
                encoding: te,
                ..
            },
        ) => ls == ts && (le & 1) == (te & 1),
        (TypeKind::Ptr { type_id: a }, TypeKind::Ptr { type_id: b }) => recur(*a, *b, true, budget),
        (
            TypeKind::Array {
                elem: a, nelems: n, ..
            },
            TypeKind::Array {
                elem: b, nelems: m, ..
            },
        ) => n == m && recur(*a, *b, behind_ptr, budget),
        (
            TypeKind::FuncProto {
                ret: lr,
                params: lp,
            },
            TypeKind::FuncProto {
                ret: tr,
                params: tp,
            },
        ) => {
            lp.len() == tp.len()
                && lp
                    .iter()
                    .zip(tp)
                    .all(|(a, b)| recur(a.type_id, b.type_id, behind_ptr, budget))
                && recur(*lr, *tr, behind_ptr, budget)
        }
        _ => false,
    }
}
