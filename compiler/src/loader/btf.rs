//! The `.BTF` type-information parser: header, string table and every type
//! kind the kernel defines, plus the size and name queries the map and CO-RE
//! code need. Type ids index [`Btf::types`] directly (id 0 is `void`).

use super::error::LoadError;
use crate::isa::Endian;

const SECTION: &str = ".BTF";
const MAGIC: u16 = 0xeb9f;
/// Deepest chain of modifiers/typedefs/arrays followed before giving up.
const MAX_RESOLVE_DEPTH: usize = 32;

/// Bounds-checked reader of fixed-size integers in the object's byte order.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a> {
    pub data: &'a [u8],
    pub endian: Endian,
    pub section: &'static str,
    /// Offset of `data[0]` in the section, for error messages.
    pub base: usize,
}

impl<'a> Reader<'a> {
    /// The `N` bytes at `off`, or a "truncated" error at that offset.
    fn bytes<const N: usize>(&self, off: usize) -> Result<[u8; N], LoadError> {
        off.checked_add(N)
            .and_then(|end| self.data.get(off..end))
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| LoadError::btf(self.section, self.base.saturating_add(off), "truncated"))
    }

    pub fn u32(&self, off: usize) -> Result<u32, LoadError> {
        Ok(self.endian.u32(self.bytes(off)?))
    }

    pub fn u16(&self, off: usize) -> Result<u16, LoadError> {
        Ok(self.endian.u16(self.bytes(off)?))
    }
}

/// Read a NUL-terminated string at `off` of a string table.
pub(crate) fn cstr(
    strings: &[u8],
    off: u32,
    section: &'static str,
    at: usize,
) -> Result<String, LoadError> {
    let rest = strings
        .get(off as usize..)
        .ok_or_else(|| LoadError::btf(section, at, format!("string offset {off} out of range")))?;
    let end = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| LoadError::btf(section, at, format!("string at {off} is not terminated")))?;
    Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// A struct/union member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub type_id: u32,
    /// Offset in bits from the start of the struct.
    pub bit_offset: u32,
    /// Bitfield size in bits (0 when not a bitfield).
    pub bitfield_size: u32,
}

/// An enumerator (enum or enum64).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enumerator {
    pub name: String,
    /// The value, sign-extended from 32 bits for signed 32-bit enums.
    pub value: i64,
}

/// A function parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub type_id: u32,
}

/// A variable of a data section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VarSecInfo {
    pub type_id: u32,
    pub offset: u32,
    pub size: u32,
}

/// One BTF type, by kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeKind {
    Void,
    Int {
        size: u32,
        /// `BTF_INT_SIGNED` (1), `BTF_INT_CHAR` (2), `BTF_INT_BOOL` (4).
        encoding: u8,
        offset: u8,
        bits: u8,
    },
    Ptr {
        type_id: u32,
    },
    Array {
        elem: u32,
        index: u32,
        nelems: u32,
    },
    Struct {
        size: u32,
        members: Vec<Member>,
    },
    Union {
        size: u32,
        members: Vec<Member>,
    },
    Enum {
        size: u32,
        signed: bool,
        values: Vec<Enumerator>,
    },
    Enum64 {
        size: u32,
        signed: bool,
        values: Vec<Enumerator>,
    },
    Fwd {
        is_union: bool,
    },
    Typedef {
        type_id: u32,
    },
    Volatile {
        type_id: u32,
    },
    Const {
        type_id: u32,
    },
    Restrict {
        type_id: u32,
    },
    Func {
        proto: u32,
        linkage: u16,
    },
    FuncProto {
        ret: u32,
        params: Vec<Param>,
    },
    Var {
        type_id: u32,
        linkage: u32,
    },
    Datasec {
        size: u32,
        vars: Vec<VarSecInfo>,
    },
    Float {
        size: u32,
    },
    DeclTag {
        type_id: u32,
        component_idx: i32,
    },
    TypeTag {
        type_id: u32,
    },
}

impl TypeKind {
    /// The kernel's `BTF_KIND_*` number.
    pub fn kind_number(&self) -> u32 {
        match self {
            TypeKind::Void => 0,
            TypeKind::Int { .. } => 1,
            TypeKind::Ptr { .. } => 2,
            TypeKind::Array { .. } => 3,
            TypeKind::Struct { .. } => 4,
            TypeKind::Union { .. } => 5,
            TypeKind::Enum { .. } => 6,
            TypeKind::Fwd { .. } => 7,
            TypeKind::Typedef { .. } => 8,
            TypeKind::Volatile { .. } => 9,
            TypeKind::Const { .. } => 10,
            TypeKind::Restrict { .. } => 11,
            TypeKind::Func { .. } => 12,
            TypeKind::FuncProto { .. } => 13,
            TypeKind::Var { .. } => 14,
            TypeKind::Datasec { .. } => 15,
            TypeKind::Float { .. } => 16,
            TypeKind::DeclTag { .. } => 17,
            TypeKind::TypeTag { .. } => 18,
            TypeKind::Enum64 { .. } => 19,
        }
    }

    /// Lower-case kind name as bpftool prints it.
    pub fn kind_name(&self) -> &'static str {
        match self {
            TypeKind::Void => "void",
            TypeKind::Int { .. } => "int",
            TypeKind::Ptr { .. } => "ptr",
            TypeKind::Array { .. } => "array",
            TypeKind::Struct { .. } => "struct",
            TypeKind::Union { .. } => "union",
            TypeKind::Enum { .. } => "enum",
            TypeKind::Fwd { .. } => "fwd",
            TypeKind::Typedef { .. } => "typedef",
            TypeKind::Volatile { .. } => "volatile",
            TypeKind::Const { .. } => "const",
            TypeKind::Restrict { .. } => "restrict",
            TypeKind::Func { .. } => "func",
            TypeKind::FuncProto { .. } => "func_proto",
            TypeKind::Var { .. } => "var",
            TypeKind::Datasec { .. } => "datasec",
            TypeKind::Float { .. } => "float",
            TypeKind::DeclTag { .. } => "decl_tag",
            TypeKind::TypeTag { .. } => "type_tag",
            TypeKind::Enum64 { .. } => "enum64",
        }
    }

    /// The single type this one refers to (modifiers, typedef, ptr, var, tags).
    pub fn referenced(&self) -> Option<u32> {
        match *self {
            TypeKind::Ptr { type_id }
            | TypeKind::Typedef { type_id }
            | TypeKind::Volatile { type_id }
            | TypeKind::Const { type_id }
            | TypeKind::Restrict { type_id }
            | TypeKind::Var { type_id, .. }
            | TypeKind::DeclTag { type_id, .. }
            | TypeKind::TypeTag { type_id } => Some(type_id),
            TypeKind::Func { proto, .. } => Some(proto),
            _ => None,
        }
    }

    pub fn members(&self) -> Option<&[Member]> {
        match self {
            TypeKind::Struct { members, .. } | TypeKind::Union { members, .. } => Some(members),
            _ => None,
        }
    }
}

/// One type with its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Type {
    pub name: String,
    pub kind: TypeKind,
}

/// A parsed `.BTF` section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Btf {
    /// `types[id]`; `types[0]` is void.
    pub types: Vec<Type>,
    /// The raw string table (`.BTF.ext` names index into it).
    pub strings: Vec<u8>,
}

impl Btf {
    /// Parse raw BTF bytes (the `.BTF` section or a vmlinux BTF file). The byte
    /// order is detected from the magic; `endian` is only a hint for errors.
    pub fn parse(data: &[u8], endian: Endian) -> Result<Btf, LoadError> {
        Btf::parse_as(data, endian, SECTION)
    }

    /// CO-RE target BTF from the bytes of a file: raw BTF (as
    /// `/sys/kernel/btf/vmlinux`) or, as libbpf accepts, an ELF file of any
    /// machine with a `.BTF` section. Errors name `raw BTF` or `.BTF`; the
    /// caller adds the file name.
    pub fn parse_target(bytes: &[u8]) -> Result<Btf, LoadError> {
        use object::{Object as _, ObjectSection as _};
        if !bytes.starts_with(b"\x7fELF") {
            return Btf::parse_as(bytes, Endian::Little, "raw BTF");
        }
        let file = object::File::parse(bytes).map_err(|e| LoadError::Malformed {
            offset: 0,
            file_size: bytes.len() as u64,
            reason: e.to_string(),
        })?;
        let endian = if file.is_little_endian() {
            Endian::Little
        } else {
            Endian::Big
        };
        let section = file
            .section_by_name(SECTION)
            .ok_or_else(|| LoadError::BadSection {
                section: SECTION.into(),
                offset: 0,
                reason: "the ELF file has no .BTF section".into(),
            })?;
        let offset = section.file_range().map_or(0, |(o, _)| o);
        let data = section.data().map_err(|e| LoadError::BadSection {
            section: SECTION.into(),
            offset,
            reason: e.to_string(),
        })?;
        Btf::parse_as(data, endian, SECTION)
    }

    fn parse_as(data: &[u8], endian: Endian, section: &'static str) -> Result<Btf, LoadError> {
        let mut r = Reader {
            data,
            endian,
            section,
            base: 0,
        };
        let magic = r.u16(0)?;
        if magic != MAGIC {
            let other = match endian {
                Endian::Little => Endian::Big,
                Endian::Big => Endian::Little,
            };
            r.endian = other;
            if r.u16(0)? != MAGIC {
                return Err(LoadError::btf(
                    section,
                    0,
                    format!("bad magic {magic:#06x}"),
                ));
            }
        }
        let version = *data.get(2).unwrap_or(&0);
        if version != 1 {
            return Err(LoadError::btf(
                section,
                2,
                format!("unsupported version {version}"),
            ));
        }
        let hdr_len = r.u32(4)? as usize;
        if hdr_len < 24 {
            return Err(LoadError::btf(
                section,
                4,
                format!("header length {hdr_len} < 24"),
            ));
        }
        let type_off = r.u32(8)? as usize;
        let type_len = r.u32(12)? as usize;
        let str_off = r.u32(16)? as usize;
        let str_len = r.u32(20)? as usize;
        let slice = |off: usize, len: usize, what: &str| -> Result<&[u8], LoadError> {
            hdr_len
                .checked_add(off)
                .and_then(|s| s.checked_add(len).map(|e| (s, e)))
                .and_then(|(s, e)| data.get(s..e))
                .ok_or_else(|| {
                    LoadError::btf(
                        section,
                        hdr_len.saturating_add(off),
                        format!(
                            "{what} ({len} bytes) extends past the end ({} bytes)",
                            data.len()
                        ),
                    )
                })
        };
        let type_data = slice(type_off, type_len, "type section")?;
        let strings = slice(str_off, str_len, "string section")?.to_vec();
        if strings.first().is_some_and(|&b| b != 0) {
            return Err(LoadError::btf(
                section,
                hdr_len + str_off,
                "string table does not start with NUL",
            ));
        }
        let tr = Reader {
            data: type_data,
            endian: r.endian,
            section,
            base: hdr_len + type_off,
        };
        let mut types = vec![Type {
            name: String::new(),
            kind: TypeKind::Void,
        }];
        let mut off = 0;
        while off < type_data.len() {
            let (ty, next) = parse_type(&tr, &strings, off)?;
            types.push(ty);
            off = next;
        }
        let btf = Btf { types, strings };
        btf.check_references()?;
        Ok(btf)
    }

    fn check_references(&self) -> Result<(), LoadError> {
        let n = self.types.len() as u32;
        for (id, t) in self.types.iter().enumerate() {
            let mut refs: Vec<u32> = t.kind.referenced().into_iter().collect();
            match &t.kind {
                TypeKind::Array { elem, index, .. } => refs.extend([*elem, *index]),
                TypeKind::Struct { members, .. } | TypeKind::Union { members, .. } => {
                    refs.extend(members.iter().map(|m| m.type_id))
                }
                TypeKind::FuncProto { ret, params } => {
                    refs.push(*ret);
                    refs.extend(params.iter().map(|p| p.type_id));
                }
                TypeKind::Datasec { vars, .. } => refs.extend(vars.iter().map(|v| v.type_id)),
                _ => {}
            }
            if let Some(bad) = refs.into_iter().find(|&r| r >= n) {
                return Err(LoadError::btf(
                    SECTION,
                    0,
                    format!("type {id} refers to type {bad}, but there are only {n} types"),
                ));
            }
        }
        Ok(())
    }

    pub fn get(&self, id: u32) -> Option<&Type> {
        self.types.get(id as usize)
    }

    /// A string of the string table.
    pub fn string(&self, off: u32) -> Result<String, LoadError> {
        cstr(&self.strings, off, SECTION, 0)
    }

    /// Skip modifiers, typedefs and type tags.
    pub fn skip_mods_and_typedefs(&self, mut id: u32) -> u32 {
        for _ in 0..MAX_RESOLVE_DEPTH {
            match self.get(id).map(|t| &t.kind) {
                Some(
                    TypeKind::Typedef { type_id }
                    | TypeKind::Volatile { type_id }
                    | TypeKind::Const { type_id }
                    | TypeKind::Restrict { type_id }
                    | TypeKind::TypeTag { type_id },
                ) => id = *type_id,
                _ => return id,
            }
        }
        id
    }

    /// Size in bytes of a type, if it has one.
    pub fn size_of(&self, id: u32) -> Option<u64> {
        self.size_of_depth(id, 0)
    }

    fn size_of_depth(&self, id: u32, depth: usize) -> Option<u64> {
        if depth > MAX_RESOLVE_DEPTH {
            return None;
        }
        let id = self.skip_mods_and_typedefs(id);
        match &self.get(id)?.kind {
            TypeKind::Int { size, .. }
            | TypeKind::Struct { size, .. }
            | TypeKind::Union { size, .. }
            | TypeKind::Enum { size, .. }
            | TypeKind::Enum64 { size, .. }
            | TypeKind::Float { size }
            | TypeKind::Datasec { size, .. } => Some(*size as u64),
            TypeKind::Ptr { .. } => Some(8),
            TypeKind::Array { elem, nelems, .. } => self
                .size_of_depth(*elem, depth + 1)?
                .checked_mul(*nelems as u64),
            TypeKind::Var { type_id, .. } => self.size_of_depth(*type_id, depth + 1),
            _ => None,
        }
    }

    /// Id of the first type with this name and kind number.
    pub fn find(&self, name: &str, kind: u32) -> Option<u32> {
        self.types
            .iter()
            .position(|t| t.name == name && t.kind.kind_number() == kind)
            .map(|i| i as u32)
    }

    /// The datasec with this name and the variables it holds, by name.
    pub fn datasec_vars(&self, name: &str) -> Vec<(String, u32, VarSecInfo)> {
        let mut out = Vec::new();
        for t in &self.types {
            if let TypeKind::Datasec { vars, .. } = &t.kind {
                if t.name == name {
                    for v in vars {
                        if let Some(var) = self.get(v.type_id) {
                            let ty = var.kind.referenced().unwrap_or(0);
                            out.push((var.name.clone(), ty, v.clone()));
                        }
                    }
                }
            }
        }
        out
    }
}

fn parse_type(r: &Reader<'_>, strings: &[u8], off: usize) -> Result<(Type, usize), LoadError> {
    let at = r.base + off;
    let name_off = r.u32(off)?;
    let info = r.u32(off + 4)?;
    let size_or_type = r.u32(off + 8)?;
    let vlen = (info & 0xffff) as usize;
    let kind = (info >> 24) & 0x1f;
    let kflag = info >> 31 != 0;
    let name = cstr(strings, name_off, r.section, at)?;
    let mut p = off + 12;
    // Reject vlen values whose records cannot fit before reading them.
    let need = |rec: usize| -> Result<(), LoadError> {
        let bytes = vlen.saturating_mul(rec);
        if p.saturating_add(bytes) > r.data.len() {
            return Err(LoadError::btf(
                r.section,
                at,
                format!("type with {vlen} records of {rec} bytes is truncated"),
            ));
        }
        Ok(())
    };
    let kind = match kind {
        1 => {
            let v = r.u32(p)?;
            p += 4;
            TypeKind::Int {
                size: size_or_type,
                encoding: ((v >> 24) & 0x0f) as u8,
                offset: ((v >> 16) & 0xff) as u8,
                bits: (v & 0xff) as u8,
            }
        }
        2 => TypeKind::Ptr {
            type_id: size_or_type,
        },
        3 => {
            let k = TypeKind::Array {
                elem: r.u32(p)?,
                index: r.u32(p + 4)?,
                nelems: r.u32(p + 8)?,
            };
            p += 12;
            k
        }
        4 | 5 => {
            need(12)?;
            let mut members = Vec::with_capacity(vlen);
            for _ in 0..vlen {
                let moff = r.u32(p + 8)?;
                let (bit_offset, bitfield_size) = if kflag {
                    (moff & 0x00ff_ffff, moff >> 24)
                } else {
                    (moff, 0)
                };
                members.push(Member {
                    name: cstr(strings, r.u32(p)?, r.section, r.base + p)?,
                    type_id: r.u32(p + 4)?,
                    bit_offset,
                    bitfield_size,
                });
                p += 12;
            }
            if kind == 4 {
                TypeKind::Struct {
                    size: size_or_type,
                    members,
                }
            } else {
                TypeKind::Union {
                    size: size_or_type,
                    members,
                }
            }
        }
        6 => {
            need(8)?;
            let mut values = Vec::with_capacity(vlen);
            for _ in 0..vlen {
                let v = r.u32(p + 4)?;
                values.push(Enumerator {
                    name: cstr(strings, r.u32(p)?, r.section, r.base + p)?,
                    value: if kflag { v as i32 as i64 } else { v as i64 },
                });
                p += 8;
            }
            TypeKind::Enum {
                size: size_or_type,
                signed: kflag,
                values,
            }
        }
        7 => TypeKind::Fwd { is_union: kflag },
        8 => TypeKind::Typedef {
            type_id: size_or_type,
        },
        9 => TypeKind::Volatile {
            type_id: size_or_type,
        },
        10 => TypeKind::Const {
            type_id: size_or_type,
        },
        11 => TypeKind::Restrict {
            type_id: size_or_type,
        },
        12 => TypeKind::Func {
            proto: size_or_type,
            linkage: vlen as u16,
        },
        13 => {
            need(8)?;
            let mut params = Vec::with_capacity(vlen);
            for _ in 0..vlen {
                params.push(Param {
                    name: cstr(strings, r.u32(p)?, r.section, r.base + p)?,
                    type_id: r.u32(p + 4)?,
                });
                p += 8;
            }
            TypeKind::FuncProto {
                ret: size_or_type,
                params,
            }
        }
        14 => {
            let linkage = r.u32(p)?;
            p += 4;
            TypeKind::Var {
                type_id: size_or_type,
                linkage,
            }
        }
        15 => {
            need(12)?;
            let mut vars = Vec::with_capacity(vlen);
            for _ in 0..vlen {
                vars.push(VarSecInfo {
                    type_id: r.u32(p)?,
                    offset: r.u32(p + 4)?,
                    size: r.u32(p + 8)?,
                });
                p += 12;
            }
            TypeKind::Datasec {
                size: size_or_type,
                vars,
            }
        }
        16 => TypeKind::Float { size: size_or_type },
        17 => {
            let c = r.u32(p)? as i32;
            p += 4;
            TypeKind::DeclTag {
                type_id: size_or_type,
                component_idx: c,
            }
        }
        18 => TypeKind::TypeTag {
            type_id: size_or_type,
        },
        19 => {
            need(12)?;
            let mut values = Vec::with_capacity(vlen);
            for _ in 0..vlen {
                let lo = r.u32(p + 4)? as u64;
                let hi = r.u32(p + 8)? as u64;
                values.push(Enumerator {
                    name: cstr(strings, r.u32(p)?, r.section, r.base + p)?,
                    value: ((hi << 32) | lo) as i64,
                });
                p += 12;
            }
            TypeKind::Enum64 {
                size: size_or_type,
                signed: kflag,
                values,
            }
        }
        other => {
            return Err(LoadError::btf(
                r.section,
                at,
                format!("unknown type kind {other}"),
            ));
        }
    };
    Ok((Type { name, kind }, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(type_len: u32, str_len: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&MAGIC.to_le_bytes());
        v.extend_from_slice(&[1, 0]);
        for x in [24u32, 0, type_len, type_len, str_len] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v
    }

    #[test]
    fn parses_int_and_ptr() {
        let mut types = Vec::new();
        for x in [1u32, 0x0100_0000, 4, 0x0100_0020, 0, 0x0200_0000, 1] {
            types.extend_from_slice(&x.to_le_bytes());
        }
        let strings = b"\0int\0";
        let mut b = header(types.len() as u32, strings.len() as u32);
        b.extend(types);
        b.extend_from_slice(strings);
        let btf = Btf::parse(&b, Endian::Little).unwrap();
        assert_eq!(btf.types.len(), 3);
        assert_eq!(btf.types[1].name, "int");
        assert_eq!(btf.size_of(1), Some(4));
        assert_eq!(btf.size_of(2), Some(8));
    }

    #[test]
    fn rejects_bad_kind_and_strings() {
        let mut types = Vec::new();
        for x in [0u32, 0x1f00_0000, 0] {
            types.extend_from_slice(&x.to_le_bytes());
        }
        let mut b = header(12, 1);
        b.extend(types.clone());
        b.push(0);
        assert!(matches!(
            Btf::parse(&b, Endian::Little),
            Err(LoadError::BadBtf { .. })
        ));
        let mut b = header(12, 1);
        types[0..4].copy_from_slice(&100u32.to_le_bytes());
        types[4..8].copy_from_slice(&0x0200_0000u32.to_le_bytes());
        b.extend(types);
        b.push(0);
        let e = Btf::parse(&b, Endian::Little).unwrap_err();
        assert!(e.to_string().contains("string offset 100"), "{e}");
    }

    #[test]
    fn rejects_truncated() {
        let b = header(100, 1);
        assert!(Btf::parse(&b, Endian::Little).is_err());
        assert!(Btf::parse(&[0x9f], Endian::Little).is_err());
    }
}
