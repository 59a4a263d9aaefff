//! The values a relocation puts in its instruction, from a local and a
//! target spec, by libbpf's rules: field offsets, sizes, signedness and
//! bitfield shifts, type ids, sizes and existence, enumerator values; and
//! when the instruction must be poisoned instead.

use super::spec::{is_field, is_type, Spec};
use crate::isa::Endian;
use crate::loader::btf::{Btf, TypeKind};
use crate::loader::btf_ext::CoreReloKind;

/// What relocating one instruction means (libbpf's `bpf_core_relo_res`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RelRes {
    /// The value the instruction should hold as compiled.
    pub orig_val: u64,
    /// The value it gets.
    pub new_val: u64,
    /// Replace the instruction with the poison call.
    pub poison: bool,
    /// Check that the instruction holds `orig_val`.
    pub validate: bool,
    /// A load/store of this field cannot change size (poisoned if one does).
    pub fail_memsz_adjust: bool,
    /// Byte sizes of the local and target field (0 when not a plain field).
    pub orig_sz: u64,
    pub new_sz: u64,
    /// Why the instruction is poisoned, for messages.
    pub reason: String,
    /// Change the instruction (false without a target BTF: the compiled
    /// value stays, which for bitfields may differ from libbpf's equally
    /// valid choice, and is only checked where that is meaningful).
    pub patch: bool,
}

/// A field relocation's value against `spec` (`None`: no such field).
/// `Ok(None)` asks for poisoning. Returns (value, field size, field type, validate).
fn field(
    btf: &Btf,
    kind: CoreReloKind,
    spec: Option<&Spec>,
    endian: Endian,
) -> Result<Option<(u64, u64, u32, bool)>, String> {
    if kind == CoreReloKind::FieldExists {
        return Ok(Some((spec.is_some() as u64, 0, 0, true)));
    }
    let Some(spec) = spec else { return Ok(None) };
    let acc = spec.accessors.last().ok_or("empty access")?;
    let size = |id: u32| {
        btf.size_of(id)
            .ok_or_else(|| format!("type {id} has no size"))
    };
    let Some(_) = &acc.name else {
        // An array element: only its offset and size.
        return match kind {
            CoreReloKind::FieldByteOffset => Ok(Some((
                spec.bit_offset / 8,
                size(acc.type_id)?,
                acc.type_id,
                true,
            ))),
            CoreReloKind::FieldByteSize => Ok(Some((size(acc.type_id)?, 0, 0, true))),
            _ => Err(format!("{} relocation on an array element", kind.name())),
        };
    };
    let member = btf
        .get(acc.type_id)
        .and_then(|t| t.kind.members())
        .and_then(|m| m.get(acc.idx as usize))
        .ok_or("bad member accessor")?;
    let ftype = btf.skip_mods_and_typedefs(member.type_id);
    let fkind = &btf.get(ftype).ok_or("bad type id")?.kind;
    let bit_off = spec.bit_offset;
    let bit_sz = member.bitfield_size as u64;
    let bitfield = bit_sz > 0;
    let (byte_off, byte_sz, bit_sz) = if bitfield {
        let mut byte_sz = size(ftype)?;
        if byte_sz == 0 {
            return Err("bitfield of a zero-sized type".into());
        }
        let mut byte_off = bit_off / 8 / byte_sz * byte_sz;
        while bit_off + bit_sz - byte_off * 8 > byte_sz * 8 {
            if byte_sz >= 8 {
                return Err("bitfield cannot be read with one 8-byte load".into());
            }
            byte_sz *= 2;
            byte_off = bit_off / 8 / byte_sz * byte_sz;
        }
        (byte_off, byte_sz, bit_sz)
    } else {
        let byte_sz = size(ftype)?;
        (bit_off / 8, byte_sz, byte_sz * 8)
    };
    // Bitfield values are ambiguous between compilers: not checked, except
    // signedness and the right shift, which are never ambiguous.
    let mut validate = !bitfield;
    let v = match kind {
        CoreReloKind::FieldByteOffset => {
            return Ok(Some(if bitfield {
                (byte_off, 0, 0, validate)
            } else {
                (byte_off, byte_sz, ftype, validate)
            }))
        }
        CoreReloKind::FieldByteSize => byte_sz,
        CoreReloKind::FieldSigned => {
            validate = true;
            match fkind {
                TypeKind::Enum { signed, .. } | TypeKind::Enum64 { signed, .. } => *signed as u64,
                TypeKind::Int { encoding, .. } => (encoding & 1) as u64,
                _ => 0,
            }
        }
        // As libbpf, in 32-bit arithmetic; the byte order is the object's.
        CoreReloKind::FieldLshiftU64 => match endian {
            Endian::Little => 64u32.wrapping_sub((bit_off + bit_sz - byte_off * 8) as u32) as u64,
            Endian::Big => (8u32.wrapping_sub(byte_sz as u32))
                .wrapping_mul(8)
                .wrapping_add((bit_off - byte_off * 8) as u32) as u64,
        },
        CoreReloKind::FieldRshiftU64 => {
            validate = true;
            64u32.wrapping_sub(bit_sz as u32) as u64
        }
        _ => return Err("not a field relocation".into()),
    };
    Ok(Some((v, 0, 0, validate)))
}

fn type_value(btf: &Btf, kind: CoreReloKind, spec: Option<&Spec>) -> Result<u64, String> {
    let Some(spec) = spec else { return Ok(0) };
    Ok(match kind {
        CoreReloKind::TypeIdTarget => spec.root_type_id as u64,
        CoreReloKind::TypeExists | CoreReloKind::TypeMatches => 1,
        CoreReloKind::TypeSize => btf
            .size_of(spec.root_type_id)
            .ok_or_else(|| format!("type {} has no size", spec.root_type_id))?,
        _ => return Err("not a type relocation".into()),
    })
}

/// `Ok(None)` asks for poisoning.
fn enum_value(btf: &Btf, kind: CoreReloKind, spec: Option<&Spec>) -> Result<Option<u64>, String> {
    match (kind, spec) {
        (CoreReloKind::EnumvalExists, s) => Ok(Some(s.is_some() as u64)),
        (CoreReloKind::EnumvalValue, None) => Ok(None),
        (CoreReloKind::EnumvalValue, Some(s)) => {
            let acc = &s.accessors[0];
            // As libbpf: a 32-bit enumerator is read as signed.
            match &btf.get(acc.type_id).ok_or("bad type id")?.kind {
                TypeKind::Enum { values, .. } => Ok(values
                    .get(acc.idx as usize)
                    .map(|v| v.value as i32 as i64 as u64)),
                TypeKind::Enum64 { values, .. } => {
                    Ok(values.get(acc.idx as usize).map(|v| v.value as u64))
                }
                _ => Err("enumerator of a non-enum".into()),
            }
        }
        _ => Err("not an enum relocation".into()),
    }
}

fn is_ptr(btf: &Btf, id: u32) -> bool {
    matches!(btf.get(id).map(|t| &t.kind), Some(TypeKind::Ptr { .. }))
}

/// libbpf's "not signed" test: an integer whose encoding is not exactly
/// `BTF_INT_SIGNED`.
fn unsigned_int(btf: &Btf, id: u32) -> bool {
    matches!(btf.get(id).map(|t| &t.kind), Some(TypeKind::Int { encoding, .. }) if *encoding != 1)
}

/// The relocation result for `local` against `target` (`None`: no candidate
/// matched).
pub(super) fn relo(
    kind: CoreReloKind,
    local_btf: &Btf,
    local: &Spec,
    target_btf: &Btf,
    target: Option<&Spec>,
    endian: Endian,
) -> Result<RelRes, String> {
    let mut res = RelRes {
        orig_val: 0,
        new_val: 0,
        poison: false,
        validate: true,
        fail_memsz_adjust: false,
        orig_sz: 0,
        new_sz: 0,
        reason: String::new(),
        patch: true,
    };
    let missing = || match kind {
        CoreReloKind::EnumvalValue => "no matching enumerator in the target BTF".to_string(),
        _ => "no matching field in the target BTF".to_string(),
    };
    if is_field(kind) {
        let (ov, osz, otype, validate) = field(local_btf, kind, Some(local), endian)?
            .ok_or("the local access does not resolve")?;
        res.orig_val = ov;
        res.orig_sz = osz;
        res.validate = validate;
        match field(target_btf, kind, target, endian)? {
            None => {
                res.poison = true;
                res.reason = missing();
            }
            Some((nv, nsz, ntype, _)) => {
                res.new_val = nv;
                res.new_sz = nsz;
                if osz != nsz {
                    let ok = (is_ptr(local_btf, otype) && is_ptr(target_btf, ntype))
                        || (unsigned_int(local_btf, otype) && unsigned_int(target_btf, ntype));
                    if !ok {
                        res.fail_memsz_adjust = true;
                        res.reason = format!(
                            "field is {osz} bytes locally and {nsz} in the target; a load or store can change size only for pointers and unsigned integers"
                        );
                    }
                }
            }
        }
    } else if is_type(kind) {
        res.orig_val = type_value(local_btf, kind, Some(local))?;
        res.new_val = type_value(target_btf, kind, target)?;
        // Type ids change with linking: not worth checking.
        res.validate = kind != CoreReloKind::TypeIdTarget;
    } else {
        res.orig_val = enum_value(local_btf, kind, Some(local))?
            .ok_or("the local enumerator does not resolve")?;
        match enum_value(target_btf, kind, target)? {
            Some(v) => res.new_val = v,
            None => {
                res.poison = true;
                res.reason = missing();
            }
        }
    }
    Ok(res)
}
