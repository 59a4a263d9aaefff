//! CO-RE (compile once, run everywhere) relocations, resolved as libbpf
//! resolves them: every record of `.BTF.ext` in file order, its access
//! string parsed against the object's BTF ([`spec`]), matched in every
//! target type of the same essential name and kind ([`types`]) with
//! candidates that do not match dropped for later records of the same local
//! type, all matching candidates required to agree, and the values computed
//! ([`calc`]). An instruction that cannot be relocated (no candidate has the
//! field or enumerator, or a load would change size unsafely) is poisoned
//! with libbpf's invalid helper call, so it fails only if the program
//! reaches it. Without a target BTF each record resolves against its own
//! local type: programs keep their compiled values.

mod calc;
mod spec;
mod types;

pub(crate) use calc::RelRes;

use super::btf::Btf;
use super::btf_ext::{BtfExt, CoreReloKind, CoreReloRec};
use super::elf::ElfFile;
use super::error::LoadError;
use crate::isa::{decode_one, CallTarget, Endian, Insn, LddwSrc, Size, Src, INSN_SIZE};
use bpfc_runtime::abi::CORE_POISON_HELPER;
use std::collections::BTreeMap;

/// The outcome of one record: the relocation to apply, or why it fails.
pub(crate) type Outcome = Result<RelRes, String>;

/// Outcomes by (section name, instruction byte offset).
pub(crate) type Outcomes = BTreeMap<(String, u32), Outcome>;

/// The poison call libbpf writes over an instruction it cannot relocate.
pub const POISON: Insn = Insn::Call(CallTarget::Helper(CORE_POISON_HELPER));

/// Resolve every CO-RE record of `ext` against `target` (or the local BTF).
/// `gcc` says GCC wrote the object (its access strings are read as
/// [`gcc_access`] explains).
pub(crate) fn resolve_all(
    elf: &ElfFile,
    local: &Btf,
    ext: &BtfExt,
    target: Option<&Btf>,
    gcc: bool,
) -> Outcomes {
    let mut out = Outcomes::new();
    let mut cache: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for section in &ext.core_order {
        for rec in ext.core_relos.get(section).into_iter().flatten() {
            let mut access = rec.access.clone();
            if gcc && spec::is_field(rec.kind) {
                let held = insn_at(elf, section, rec.insn_off).and_then(|i| held(&i));
                access = gcc_access(local, rec, held, elf.endian);
            }
            let outcome = resolve(local, rec, &access, target, elf.endian, &mut cache);
            out.insert((section.clone(), rec.insn_off), outcome);
        }
    }
    out
}

fn insn_at(elf: &ElfFile, section: &str, off: u32) -> Option<Insn> {
    let (_, s) = elf.section_by_name(section)?;
    let at = off as usize;
    let slot = |o: usize| -> Option<[u8; 8]> { s.data.get(o..o + INSN_SIZE)?.try_into().ok() };
    decode_one(at / INSN_SIZE, slot(at)?, slot(at + INSN_SIZE), elf.endian).ok()
}

/// The value a relocatable instruction holds: an ALU immediate, a memory
/// offset or a 64-bit immediate.
fn held(insn: &Insn) -> Option<u64> {
    match *insn {
        Insn::Alu {
            src: Src::Imm(imm), ..
        } => Some(imm as i64 as u64),
        Insn::Ldx { off, .. }
        | Insn::St { off, .. }
        | Insn::Stx { off, .. }
        | Insn::Atomic { off, .. } => Some(off as i64 as u64),
        Insn::Lddw {
            src: LddwSrc::Imm,
            imm,
            ..
        } => Some(imm),
        _ => None,
    }
}

/// GCC 12 writes field access strings its own way: an access that starts at
/// an object rather than through a pointer has no leading `0:` (`2:1` for
/// `glob.in.y`, `0` for `glob.pid`), and through a pointer the first index
/// counts bytes, not elements (`112:2:1` for `p[2].in.y` of a 56-byte
/// struct). GCC 12 relocates member accesses only, so a one-index string is
/// an object's member; otherwise the first reading whose local value the
/// instruction holds is taken: as written, with the first index in
/// elements, with `0:` prepended. If none fits, the string as written (whose
/// mismatch is then reported).
fn gcc_access(local: &Btf, rec: &CoreReloRec, held: Option<u64>, endian: Endian) -> String {
    let object = format!("0:{}", rec.access);
    let Some((first, rest)) = rec.access.split_once(':') else {
        return object;
    };
    let Some(held) = held else {
        return rec.access.clone();
    };
    let mut readings = vec![rec.access.clone()];
    let size = local.size_of(rec.type_id).filter(|&s| s > 0);
    if let (Ok(bytes), Some(size)) = (first.parse::<u64>(), size) {
        if bytes % size == 0 && bytes != 0 {
            readings.push(format!("{}:{rest}", bytes / size));
        }
    }
    readings.push(object);
    for r in readings {
        let Ok(s) = spec::parse(local, rec.type_id, &r, rec.kind) else {
            continue;
        };
        if let Ok(res) = calc::relo(rec.kind, local, &s, local, Some(&s), endian) {
            if res.orig_val == held {
                return r;
            }
        }
    }
    rec.access.clone()
}

fn type_label(btf: &Btf, id: u32) -> String {
    match btf.get(id) {
        Some(t) if t.name.is_empty() => format!("[{id}] anonymous {}", t.kind.kind_name()),
        Some(t) => format!("[{id}] {} {}", t.kind.kind_name(), t.name),
        None => format!("[{id}]"),
    }
}

fn resolve(
    local: &Btf,
    rec: &CoreReloRec,
    access: &str,
    target: Option<&Btf>,
    endian: Endian,
    cache: &mut BTreeMap<u32, Vec<u32>>,
) -> Outcome {
    let lt = local
        .get(rec.type_id)
        .ok_or_else(|| format!("local type {} does not exist", rec.type_id))?;
    let lspec = spec::parse(local, rec.type_id, access, rec.kind)?;
    if rec.kind == CoreReloKind::TypeIdLocal {
        let id = rec.type_id as u64;
        return Ok(RelRes {
            orig_val: id,
            new_val: id,
            poison: false,
            validate: false,
            fail_memsz_adjust: false,
            orig_sz: 0,
            new_sz: 0,
            reason: String::new(),
            patch: target.is_some(),
        });
    }
    let Some(target) = target else {
        let mut res = calc::relo(rec.kind, local, &lspec, local, Some(&lspec), endian)?;
        res.patch = false;
        return Ok(res);
    };
    if lt.name.is_empty() {
        return Err(
            "CO-RE relocations of anonymous types cannot find candidates (as in libbpf)".into(),
        );
    }
    let cands = cache
        .entry(rec.type_id)
        .or_insert_with(|| types::candidates(local, rec.type_id, target));
    let mut kept = Vec::new();
    let mut chosen: Option<(RelRes, spec::Spec, u32)> = None;
    for &c in cands.iter() {
        let Some(cspec) = spec::matched(local, &lspec, rec.kind, target, c)
            .map_err(|e| format!("matching candidate {}: {e}", type_label(target, c)))?
        else {
            continue;
        };
        let cres = calc::relo(rec.kind, local, &lspec, target, Some(&cspec), endian)?;
        match &chosen {
            None => chosen = Some((cres, cspec, c)),
            Some((_, tspec, t)) if tspec.bit_offset != cspec.bit_offset => {
                return Err(format!(
                    "field offset ambiguity: candidates {} and {} put the field at bits {} and {}",
                    type_label(target, *t),
                    type_label(target, c),
                    tspec.bit_offset,
                    cspec.bit_offset
                ))
            }
            Some((tres, _, t)) if tres.poison != cres.poison || tres.new_val != cres.new_val => {
                return Err(format!(
                    "relocation decision ambiguity: candidates {} and {} give {} and {}",
                    type_label(target, *t),
                    type_label(target, c),
                    if tres.poison {
                        "failure".to_string()
                    } else {
                        tres.new_val.to_string()
                    },
                    if cres.poison {
                        "failure".to_string()
                    } else {
                        cres.new_val.to_string()
                    },
                ))
            }
            Some(_) => {}
        }
        kept.push(c);
    }
    if !kept.is_empty() {
        *cands = kept;
    }
    match chosen {
        Some((res, _, _)) => Ok(res),
        None => calc::relo(rec.kind, local, &lspec, target, None, endian),
    }
}

/// The error of a failed relocation, naming section, instruction and access.
pub(crate) fn error(local: &Btf, rec: &CoreReloRec, section: &str, reason: String) -> LoadError {
    LoadError::Core {
        section: section.to_string(),
        offset: rec.insn_off as u64,
        insn: rec.insn_off as u64 / INSN_SIZE as u64,
        kind: rec.kind.name().to_string(),
        access: rec.access.clone(),
        type_name: local
            .get(rec.type_id)
            .map(|t| format!("{} {}", t.kind.kind_name(), t.name))
            .unwrap_or_else(|| format!("type {}", rec.type_id)),
        reason,
    }
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

/// Apply `res` to the instruction at `pc`, as libbpf patches it. Returns the
/// reason when the instruction is poisoned instead (both slots of an
/// `lddw`), an error when the instruction cannot take the relocation.
pub(crate) fn patch(insns: &mut [Insn], pc: usize, res: &RelRes) -> Result<Option<String>, String> {
    let poison = |insns: &mut [Insn], slots: usize, reason: &str| {
        for i in insns.iter_mut().skip(pc).take(slots) {
            *i = POISON;
        }
        Ok(Some(reason.to_string()))
    };
    let insn = *insns
        .get(pc)
        .ok_or_else(|| format!("instruction {pc} is outside the program"))?;
    if !res.patch {
        // Check only: the instruction keeps its compiled value.
        return match held(&insn) {
            Some(v) if res.validate && v != res.orig_val => Err(format!(
                "the instruction holds {}, the local BTF gives {}",
                v as i64, res.orig_val
            )),
            Some(_) => Ok(None),
            None => Err(format!("cannot relocate {insn:?}")),
        };
    }
    match insn {
        Insn::Alu {
            width,
            op,
            dst,
            src: Src::Imm(imm),
        } => {
            if res.poison {
                return poison(insns, 1, &res.reason);
            }
            if res.validate && imm as i64 as u64 != res.orig_val {
                return Err(format!(
                    "the instruction holds {imm}, the local BTF gives {}",
                    res.orig_val
                ));
            }
            insns[pc] = Insn::Alu {
                width,
                op,
                dst,
                src: Src::Imm(res.new_val as i32),
            };
        }
        Insn::Ldx { off, size, .. }
        | Insn::St { off, size, .. }
        | Insn::Stx { off, size, .. }
        | Insn::Atomic { off, size, .. } => {
            if res.poison {
                return poison(insns, 1, &res.reason);
            }
            if res.validate && off as i64 as u64 != res.orig_val {
                return Err(format!(
                    "the instruction's offset is {off}, the local BTF gives {}",
                    res.orig_val
                ));
            }
            if res.new_val > i16::MAX as u64 {
                return Err(format!("offset {} does not fit 16 bits", res.new_val));
            }
            if res.fail_memsz_adjust {
                return poison(insns, 1, &res.reason);
            }
            let mut new_size = size;
            if res.new_sz != res.orig_sz {
                if size.bytes() as u64 != res.orig_sz {
                    return Err(format!(
                        "the instruction accesses {} bytes of a {}-byte field",
                        size.bytes(),
                        res.orig_sz
                    ));
                }
                new_size = size_of_bytes(res.new_sz).ok_or_else(|| {
                    format!(
                        "the field is {} bytes in the target, not a load size",
                        res.new_sz
                    )
                })?;
                if matches!(insn, Insn::Atomic { .. }) && !matches!(new_size, Size::W | Size::DW) {
                    return Err(format!("an atomic cannot access {} bytes", res.new_sz));
                }
            }
            let new_off = res.new_val as i16;
            insns[pc] = insn
                .with_access(new_size, new_off)
                .expect("a field access is a load, a store or an atomic");
        }
        Insn::Lddw {
            dst,
            src: LddwSrc::Imm,
            imm,
        } => {
            if res.poison {
                return poison(insns, 2, &res.reason);
            }
            if res.validate && imm != res.orig_val {
                return Err(format!(
                    "the instruction holds {imm}, the local BTF gives {}",
                    res.orig_val
                ));
            }
            insns[pc] = Insn::Lddw {
                dst,
                src: LddwSrc::Imm,
                imm: res.new_val,
            };
        }
        Insn::Lddw { .. } => {
            return Err("a 64-bit load of a map or symbol cannot take a CO-RE value".into())
        }
        other => return Err(format!("cannot relocate {other:?}")),
    }
    Ok(None)
}
