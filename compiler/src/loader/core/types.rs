//! Which target types can stand for a local type, by libbpf's rules:
//! candidates by essential name and kind, the loose compatibility of type
//! relocations and field types, and the structural match of
//! `bpf_core_type_matches`.

use crate::loader::btf::{Btf, TypeKind};

/// How many levels the compatibility and match walks may go down.
const MAX_DEPTH: usize = 32;

/// How many type pairs one compatibility or match question may compare
/// (bounds the work on adversarial BTF, where names repeat).
const BUDGET: usize = 1 << 14;

fn spend(budget: &mut usize) -> Result<(), String> {
    if *budget == 0 {
        return Err("type comparison too costly".into());
    }
    *budget -= 1;
    Ok(())
}

/// The essential name: `name` without a `___flavour` suffix. As in libbpf,
/// the suffix starts at the last `X___Y` where neither X nor Y is an
/// underscore, and needs at least one character after it.
pub(crate) fn essential(name: &str) -> &str {
    let b = name.as_bytes();
    let n = b.len();
    if n < 5 {
        return name;
    }
    for i in (0..=n - 5).rev() {
        if b[i] != b'_' && &b[i + 1..i + 4] == b"___" && b[i + 4] != b'_' {
            return &name[..i + 1];
        }
    }
    name
}

fn any_enum(k: &TypeKind) -> bool {
    matches!(k, TypeKind::Enum { .. } | TypeKind::Enum64 { .. })
}

/// libbpf's `btf_kind_core_compat`: the same kind, or enum and enum64.
pub(super) fn kind_compat(a: &TypeKind, b: &TypeKind) -> bool {
    a.kind_number() == b.kind_number() || (any_enum(a) && any_enum(b))
}

fn composite(k: &TypeKind) -> bool {
    matches!(k, TypeKind::Struct { .. } | TypeKind::Union { .. })
}

/// Candidates for local type `local_id` in `btf`: every type of a
/// compatible kind with a non-empty name whose essential name is the local
/// one's, in id order.
pub(super) fn candidates(local: &Btf, local_id: u32, btf: &Btf) -> Vec<u32> {
    let Some(t) = local.get(local_id) else {
        return Vec::new();
    };
    let name = essential(&t.name);
    btf.types
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, c)| {
            kind_compat(&c.kind, &t.kind) && !c.name.is_empty() && essential(&c.name) == name
        })
        .map(|(i, _)| i as u32)
        .collect()
}

/// libbpf's `bpf_core_types_are_compat`: after modifiers and typedefs the
/// kinds agree; structs, unions, enums and forward declarations need no
/// more; integers must not be bit-offset; pointers and arrays compare what
/// they refer to, prototypes their parameters and return type. `Err` when
/// the walk is too deep or meets a bad id.
pub(super) fn compatible(
    local: &Btf,
    lid: u32,
    target: &Btf,
    tid: u32,
    level: usize,
) -> Result<bool, String> {
    compatible_in(local, lid, target, tid, level, &mut BUDGET.clone())
}

fn compatible_in(
    local: &Btf,
    lid: u32,
    target: &Btf,
    tid: u32,
    level: usize,
    budget: &mut usize,
) -> Result<bool, String> {
    spend(budget)?;
    let (Some(l0), Some(t0)) = (local.get(lid), target.get(tid)) else {
        return Err("bad type id".into());
    };
    if !kind_compat(&l0.kind, &t0.kind) {
        return Ok(false);
    }
    let (mut lid, mut tid) = (lid, tid);
    for _ in 0..MAX_DEPTH {
        lid = local.skip_mods_and_typedefs(lid);
        tid = target.skip_mods_and_typedefs(tid);
        let (Some(lt), Some(tt)) = (local.get(lid), target.get(tid)) else {
            return Err("bad type id".into());
        };
        if !kind_compat(&lt.kind, &tt.kind) {
            return Ok(false);
        }
        match (&lt.kind, &tt.kind) {
            (
                TypeKind::Void
                | TypeKind::Struct { .. }
                | TypeKind::Union { .. }
                | TypeKind::Enum { .. }
                | TypeKind::Enum64 { .. }
                | TypeKind::Fwd { .. },
                _,
            ) => return Ok(true),
            (TypeKind::Int { offset: a, .. }, TypeKind::Int { offset: b, .. }) => {
                return Ok(*a == 0 && *b == 0)
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
                if lp.len() != tp.len() {
                    return Ok(false);
                }
                for (a, b) in lp.iter().zip(tp) {
                    if level == 0 {
                        return Err("type nesting too deep".into());
                    }
                    let a = local.skip_mods_and_typedefs(a.type_id);
                    let b = target.skip_mods_and_typedefs(b.type_id);
                    if !compatible_in(local, a, target, b, level - 1, budget)? {
                        return Ok(false);
                    }
                }
                (lid, tid) = (*lr, *tr);
            }
            _ => return Ok(false),
        }
    }
    Err("type nesting too deep".into())
}

/// libbpf's `bpf_core_fields_are_compat`: whether a target member can stand
/// for a local one. Any two structs/unions; pointers; floats; enums and
/// forward declarations of the same essential name (or an anonymous one);
/// integers without bit offset; arrays by element.
pub(super) fn fields_compatible(local: &Btf, lid: u32, target: &Btf, tid: u32) -> bool {
    let (mut lid, mut tid) = (lid, tid);
    for _ in 0..MAX_DEPTH {
        lid = local.skip_mods_and_typedefs(lid);
        tid = target.skip_mods_and_typedefs(tid);
        let (Some(lt), Some(tt)) = (local.get(lid), target.get(tid)) else {
            return false;
        };
        if composite(&lt.kind) && composite(&tt.kind) {
            return true;
        }
        if !kind_compat(&lt.kind, &tt.kind) {
            return false;
        }
        match (&lt.kind, &tt.kind) {
            (TypeKind::Ptr { .. } | TypeKind::Float { .. }, _) => return true,
            (TypeKind::Fwd { .. } | TypeKind::Enum { .. } | TypeKind::Enum64 { .. }, _) => {
                let (a, b) = (essential(&lt.name), essential(&tt.name));
                return a.is_empty() || b.is_empty() || a == b;
            }
            (TypeKind::Int { offset: a, .. }, TypeKind::Int { offset: b, .. }) => {
                return *a == 0 && *b == 0
            }
            (TypeKind::Array { elem: a, .. }, TypeKind::Array { elem: b, .. }) => {
                (lid, tid) = (*a, *b)
            }
            _ => return false,
        }
    }
    false
}

/// Names match as in libbpf's type match: an anonymous target matches only
/// an anonymous local; otherwise the essential names agree.
fn names_match(local: &str, target: &str) -> bool {
    if target.is_empty() {
        return local.is_empty();
    }
    essential(local) == essential(target)
}

/// libbpf's `bpf_core_types_match` (`bpf_core_type_matches`): names match
/// after modifiers; integers agree in size and signedness, arrays in
/// length; every local member or enumerator has a namesake in the target
/// (members recursively); behind a pointer a struct may match a forward
/// declaration and members are not compared. `Err` when too deep.
pub(super) fn matches(local: &Btf, lid: u32, target: &Btf, tid: u32) -> Result<bool, String> {
    types_match(
        local,
        lid,
        target,
        tid,
        false,
        MAX_DEPTH,
        &mut BUDGET.clone(),
    )
}

fn types_match(
    local: &Btf,
    lid: u32,
    target: &Btf,
    tid: u32,
    behind_ptr: bool,
    level: usize,
    budget: &mut usize,
) -> Result<bool, String> {
    if level == 0 {
        return Err("type nesting too deep".into());
    }
    spend(budget)?;
    let (mut lid, mut tid, mut behind_ptr) = (lid, tid, behind_ptr);
    for _ in 0..MAX_DEPTH {
        lid = local.skip_mods_and_typedefs(lid);
        tid = target.skip_mods_and_typedefs(tid);
        let (Some(lt), Some(tt)) = (local.get(lid), target.get(tid)) else {
            return Err("bad type id".into());
        };
        if !names_match(&lt.name, &tt.name) {
            return Ok(false);
        }
        let same_kind = lt.kind.kind_number() == tt.kind.kind_number();
        match (&lt.kind, &tt.kind) {
            (TypeKind::Void, _) => return Ok(same_kind),
            (TypeKind::Fwd { is_union: lu }, k) => {
                return Ok(match k {
                    TypeKind::Fwd { is_union: tu } => lu == tu,
                    TypeKind::Struct { .. } => behind_ptr && !lu,
                    TypeKind::Union { .. } => behind_ptr && *lu,
                    _ => false,
                })
            }
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
                k,
            ) => {
                let (TypeKind::Enum {
                    size: ts,
                    values: tv,
                    ..
                }
                | TypeKind::Enum64 {
                    size: ts,
                    values: tv,
                    ..
                }) = k
                else {
                    return Ok(false);
                };
                return Ok(ls == ts
                    && lv.len() <= tv.len()
                    && lv
                        .iter()
                        .all(|v| tv.iter().any(|w| names_match(&v.name, &w.name))));
            }
            (TypeKind::Struct { members: lm, .. } | TypeKind::Union { members: lm, .. }, k) => {
                if behind_ptr {
                    return Ok(match k {
                        _ if same_kind => true,
                        TypeKind::Fwd { is_union } => {
                            matches!(lt.kind, TypeKind::Union { .. }) == *is_union
                        }
                        _ => false,
                    });
                }
                if !same_kind {
                    return Ok(false);
                }
                let tm = k.members().unwrap_or(&[]);
                if lm.len() > tm.len() {
                    return Ok(false);
                }
                for m in lm {
                    let mut found = false;
                    for n in tm {
                        if names_match(&m.name, &n.name)
                            && types_match(
                                local,
                                m.type_id,
                                target,
                                n.type_id,
                                false,
                                level - 1,
                                budget,
                            )?
                        {
                            found = true;
                            break;
                        }
                    }
                    if !found {
                        return Ok(false);
                    }
                }
                return Ok(true);
            }
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
            ) => return Ok(ls == ts && (le & 1) == (te & 1)),
            (TypeKind::Ptr { type_id: a }, TypeKind::Ptr { type_id: b }) => {
                behind_ptr = true;
                (lid, tid) = (*a, *b);
            }
            (
                TypeKind::Array {
                    elem: a, nelems: n, ..
                },
                TypeKind::Array {
                    elem: b, nelems: m, ..
                },
            ) => {
                if n != m {
                    return Ok(false);
                }
                (lid, tid) = (*a, *b);
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
                if lp.len() != tp.len() {
                    return Ok(false);
                }
                for (a, b) in lp.iter().zip(tp) {
                    if !types_match(
                        local,
                        a.type_id,
                        target,
                        b.type_id,
                        behind_ptr,
                        level - 1,
                        budget,
                    )? {
                        return Ok(false);
                    }
                }
                (lid, tid) = (*lr, *tr);
            }
            _ => return Ok(false),
        }
    }
    Err("type nesting too deep".into())
}

#[cfg(test)]
mod tests {
    use super::essential;

    #[test]
    fn essential_names_drop_the_last_flavour() {
        assert_eq!(essential("task_struct___o"), "task_struct");
        assert_eq!(essential("a___b___c"), "a___b");
        assert_eq!(essential("request___x"), "request");
        // Not flavour separators: underscores around the triple, nothing after.
        assert_eq!(essential("a____b"), "a____b");
        assert_eq!(essential("a___"), "a___");
        assert_eq!(essential("___a"), "___a");
        assert_eq!(essential("plain"), "plain");
    }
}
