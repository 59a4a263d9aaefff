//! The `.BTF.ext` parser: per-section function info, line info and CO-RE
//! relocation records. Instruction offsets are kept in bytes from the start of
//! their ELF section, as the object file stores them.

use super::btf::{cstr, Btf, Reader};
use super::error::LoadError;
use crate::isa::Endian;
use std::collections::BTreeMap;

const SECTION: &str = ".BTF.ext";

/// A `bpf_func_info` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FuncInfoRec {
    pub insn_off: u32,
    pub type_id: u32,
    /// Offset of the record in `.BTF.ext`.
    pub at: usize,
}

/// A `bpf_line_info` record with its strings resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineInfoRec {
    /// Offset of the record in `.BTF.ext`.
    pub at: usize,
    pub insn_off: u32,
    pub file: String,
    /// The source line's text.
    pub text: String,
    pub line: u32,
    pub col: u32,
}

/// CO-RE relocation kinds (`enum bpf_core_relo_kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CoreReloKind {
    FieldByteOffset,
    FieldByteSize,
    FieldExists,
    FieldSigned,
    FieldLshiftU64,
    FieldRshiftU64,
    TypeIdLocal,
    TypeIdTarget,
    TypeExists,
    TypeSize,
    EnumvalExists,
    EnumvalValue,
    TypeMatches,
}

impl CoreReloKind {
    pub fn from_raw(v: u32) -> Option<Self> {
        use CoreReloKind::*;
        Some(match v {
            0 => FieldByteOffset,
            1 => FieldByteSize,
            2 => FieldExists,
            3 => FieldSigned,
            4 => FieldLshiftU64,
            5 => FieldRshiftU64,
            6 => TypeIdLocal,
            7 => TypeIdTarget,
            8 => TypeExists,
            9 => TypeSize,
            10 => EnumvalExists,
            11 => EnumvalValue,
            12 => TypeMatches,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        use CoreReloKind::*;
        match self {
            FieldByteOffset => "byte_off",
            FieldByteSize => "byte_sz",
            FieldExists => "field_exists",
            FieldSigned => "signed",
            FieldLshiftU64 => "lshift_u64",
            FieldRshiftU64 => "rshift_u64",
            TypeIdLocal => "local_type_id",
            TypeIdTarget => "target_type_id",
            TypeExists => "type_exists",
            TypeSize => "type_size",
            EnumvalExists => "enumval_exists",
            EnumvalValue => "enumval_value",
            TypeMatches => "type_matches",
        }
    }
}

/// A `bpf_core_relo` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoreReloRec {
    /// Offset of the record in `.BTF.ext`.
    pub at: usize,
    pub insn_off: u32,
    pub type_id: u32,
    pub access: String,
    pub kind: CoreReloKind,
}

/// Parsed `.BTF.ext`, keyed by ELF section name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BtfExt {
    pub func_info: BTreeMap<String, Vec<FuncInfoRec>>,
    pub line_info: BTreeMap<String, Vec<LineInfoRec>>,
    pub core_relos: BTreeMap<String, Vec<CoreReloRec>>,
    /// The sections of [`BtfExt::core_relos`] in file order (libbpf
    /// resolves records in this order, which can matter: see `core`).
    pub core_order: Vec<String>,
}

impl BtfExt {
    pub fn parse(data: &[u8], endian: Endian, btf: &Btf) -> Result<BtfExt, LoadError> {
        let mut r = Reader {
            data,
            endian,
            section: SECTION,
            base: 0,
        };
        if r.u16(0)? != 0xeb9f {
            r.endian = match endian {
                Endian::Little => Endian::Big,
                Endian::Big => Endian::Little,
            };
            if r.u16(0)? != 0xeb9f {
                return Err(LoadError::btf(SECTION, 0, "bad magic"));
            }
        }
        let hdr_len = r.u32(4)? as usize;
        if hdr_len < 24 {
            return Err(LoadError::btf(
                SECTION,
                4,
                format!("header length {hdr_len} < 24"),
            ));
        }
        let sub = |off_at: usize| -> Result<Option<Reader<'_>>, LoadError> {
            let off = r.u32(off_at)? as usize;
            let len = r.u32(off_at + 4)? as usize;
            if len == 0 {
                return Ok(None);
            }
            let start = hdr_len.saturating_add(off);
            let d = start
                .checked_add(len)
                .and_then(|end| data.get(start..end))
                .ok_or_else(|| {
                    LoadError::btf(
                        SECTION,
                        start,
                        format!("subsection of {len} bytes is truncated"),
                    )
                })?;
            Ok(Some(Reader {
                data: d,
                endian: r.endian,
                section: SECTION,
                base: start,
            }))
        };
        let mut ext = BtfExt::default();
        let strings = &btf.strings;
        if let Some(fr) = sub(8)? {
            for (sec, recs) in records(&fr, strings, 8)? {
                let mut v = Vec::new();
                for at in recs {
                    v.push(FuncInfoRec {
                        insn_off: fr.u32(at)?,
                        type_id: fr.u32(at + 4)?,
                        at: fr.base + at,
                    });
                }
                ext.func_info.entry(sec).or_default().extend(v);
            }
        }
        if let Some(lr) = sub(16)? {
            for (sec, recs) in records(&lr, strings, 16)? {
                let mut v = Vec::new();
                for at in recs {
                    let pos = lr.base + at;
                    let line_col = lr.u32(at + 12)?;
                    v.push(LineInfoRec {
                        at: pos,
                        insn_off: lr.u32(at)?,
                        file: cstr(strings, lr.u32(at + 4)?, SECTION, pos)?,
                        text: cstr(strings, lr.u32(at + 8)?, SECTION, pos)?,
                        line: line_col >> 10,
                        col: line_col & 0x3ff,
                    });
                }
                ext.line_info.entry(sec).or_default().extend(v);
            }
        }
        if hdr_len >= 32 {
            if let Some(cr) = sub(24)? {
                for (sec, recs) in records(&cr, strings, 16)? {
                    let mut v = Vec::new();
                    for at in recs {
                        let pos = cr.base + at;
                        let raw = cr.u32(at + 12)?;
                        let kind = CoreReloKind::from_raw(raw).ok_or_else(|| {
                            LoadError::btf(
                                SECTION,
                                pos,
                                format!("unknown CO-RE relocation kind {raw}"),
                            )
                        })?;
                        v.push(CoreReloRec {
                            at: pos,
                            insn_off: cr.u32(at)?,
                            type_id: cr.u32(at + 4)?,
                            access: cstr(strings, cr.u32(at + 8)?, SECTION, pos)?,
                            kind,
                        });
                    }
                    if !ext.core_order.contains(&sec) {
                        ext.core_order.push(sec.clone());
                    }
                    ext.core_relos.entry(sec).or_default().extend(v);
                }
            }
        }
        Ok(ext)
    }
}

/// An executable section as [`BtfExt::check`] needs it.
pub(crate) struct ExecSection<'a> {
    pub name: &'a str,
    pub size: u64,
    /// Byte offsets of the functions that start in it, sorted.
    pub func_starts: Vec<u64>,
}

impl BtfExt {
    /// Check the records against the object's code as the kernel and libbpf
    /// would: every record names an executable section and an instruction
    /// inside it, and each section has exactly one func_info per function,
    /// at the function's start.
    pub(crate) fn check(&self, sections: &[ExecSection<'_>]) -> Result<(), LoadError> {
        let find = |name: &str, at: usize| {
            sections.iter().find(|s| s.name == name).ok_or_else(|| {
                LoadError::btf(
                    SECTION,
                    at,
                    format!("records for {name}, which is not an executable section"),
                )
            })
        };
        let inside = |s: &ExecSection<'_>, off: u32, at: usize, what: &str| {
            if off as u64 >= s.size || !off.is_multiple_of(8) {
                return Err(LoadError::btf(
                    SECTION,
                    at,
                    format!(
                        "{what} at instruction offset {off:#x} is not an instruction of {} (size {:#x})",
                        s.name, s.size
                    ),
                ));
            }
            Ok(())
        };
        for (name, recs) in &self.line_info {
            let Some(first) = recs.first() else { continue };
            let s = find(name, first.at)?;
            for r in recs {
                inside(s, r.insn_off, r.at, "line_info")?;
            }
        }
        for (name, recs) in &self.core_relos {
            let Some(first) = recs.first() else { continue };
            let s = find(name, first.at)?;
            for r in recs {
                inside(s, r.insn_off, r.at, "CO-RE relocation")?;
            }
        }
        for (name, recs) in &self.func_info {
            let Some(first) = recs.first() else { continue };
            let s = find(name, first.at)?;
            for r in recs {
                inside(s, r.insn_off, r.at, "func_info")?;
            }
            let mut offs: Vec<u64> = recs.iter().map(|r| r.insn_off as u64).collect();
            offs.sort();
            if offs != s.func_starts {
                return Err(LoadError::btf(
                    SECTION,
                    first.at,
                    format!(
                        "{} func_info records for {name}, which has {} functions (func_info at {:x?}, functions at {:x?})",
                        recs.len(),
                        s.func_starts.len(),
                        offs,
                        s.func_starts
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Walk one info subsection: returns (section name, record offsets).
fn records(
    r: &Reader<'_>,
    strings: &[u8],
    min_rec: usize,
) -> Result<Vec<(String, Vec<usize>)>, LoadError> {
    let rec_size = r.u32(0)? as usize;
    if rec_size < min_rec {
        return Err(LoadError::btf(
            SECTION,
            r.base,
            format!("record size {rec_size} < {min_rec}"),
        ));
    }
    let mut out = Vec::new();
    let mut p = 4;
    while p < r.data.len() {
        let sec = cstr(strings, r.u32(p)?, SECTION, r.base + p)?;
        let n = r.u32(p + 4)? as usize;
        p += 8;
        let total = n.saturating_mul(rec_size);
        if p.saturating_add(total) > r.data.len() {
            return Err(LoadError::btf(
                SECTION,
                r.base + p,
                format!("{n} records of {rec_size} bytes for {sec} are truncated"),
            ));
        }
        out.push((sec, (0..n).map(|i| p + i * rec_size).collect()));
        p += total;
    }
    Ok(out)
}
