//! Values printed by their BTF type, as bpftool's BTF dumper prints them
//! (the `formatted` member of `bpftool -j map dump`, and its plain output
//! for maps with BTF): integers as numbers, `_Bool` as true/false, char
//! arrays holding a printable C string as strings, enums by name, structs and
//! unions as objects, bitfields and 128-bit integers as hex, pointers as
//! numbers (plain text: `0x...`). `plain` selects bpftool's plain-text
//! variants (unquoted hex for bitfields, `%p` for pointers).

use crate::mapjson::Json;
use bpfc_compiler::loader::btf::{Btf, TypeKind};

/// Deepest nesting followed.
const MAX_DEPTH: usize = 32;
const INT_SIGNED: u8 = 1;
const INT_CHAR: u8 = 2;
const INT_BOOL: u8 = 4;

/// `data` (a key or value, host byte order) printed as type `id`.
pub fn dump(btf: &Btf, id: u32, data: &[u8], plain: bool) -> Json {
    dump_at(btf, id, data, plain, 0)
}

/// Up to 16 bytes as an unsigned number, host byte order.
fn uint(data: &[u8]) -> u128 {
    let mut b = [0u8; 16];
    let n = data.len().min(16);
    if cfg!(target_endian = "little") {
        b[..n].copy_from_slice(&data[..n]);
        u128::from_le_bytes(b)
    } else {
        b[16 - n..].copy_from_slice(&data[..n]);
        u128::from_be_bytes(b)
    }
}

/// Sign-extend the low `bits` of `v`.
fn sign_extend(v: u128, bits: u32) -> i128 {
    if bits == 0 || bits >= 128 {
        return v as i128;
    }
    let shift = 128 - bits;
    ((v << shift) as i128) >> shift
}

/// Hex as bpftool prints bitfields and 128-bit integers: quoted in JSON,
/// bare in plain text.
fn hex(v: u128, plain: bool) -> Json {
    if plain {
        Json::Raw(format!("0x{v:x}"))
    } else {
        Json::Str(format!("0x{v:x}"))
    }
}

fn dump_at(btf: &Btf, id: u32, data: &[u8], plain: bool, depth: usize) -> Json {
    if depth > MAX_DEPTH {
        return Json::Str("(too deep)".into());
    }
    let id = btf.skip_mods_and_typedefs(id);
    let Some(t) = btf.get(id) else {
        return Json::Str(format!("(unknown type {id})"));
    };
    match &t.kind {
        TypeKind::Int {
            size,
            encoding,
            offset,
            bits,
        } => int(data, *size, *encoding, *offset, *bits, plain),
        TypeKind::Ptr { .. } => {
            let v = uint(&data[..data.len().min(8)]) as u64;
            match (plain, v) {
                (true, 0) => Json::Raw("(nil)".into()),
                (true, v) => Json::Raw(format!("0x{v:x}")),
                (false, v) => Json::num(v),
            }
        }
        TypeKind::Array { elem, nelems, .. } => {
            if let Some(s) = c_string(btf, *elem, data, *nelems) {
                return Json::Str(s);
            }
            let esize = btf.size_of(*elem).unwrap_or(0) as usize;
            Json::Array(
                (0..*nelems as usize)
                    .map(|i| {
                        let from = (i * esize).min(data.len());
                        let to = (from + esize).min(data.len());
                        dump_at(btf, *elem, &data[from..to], plain, depth + 1)
                    })
                    .collect(),
            )
        }
        TypeKind::Struct { members, .. } | TypeKind::Union { members, .. } => Json::Object(
            members
                .iter()
                .map(|m| {
                    let v = if m.bitfield_size != 0 {
                        bitfield(data, m.bit_offset, m.bitfield_size, plain)
                    } else if m.bit_offset % 8 != 0 {
                        // A member off byte boundaries without a bitfield
                        // size: an int of `bits` bits at that offset.
                        let bits = match btf.get(btf.skip_mods_and_typedefs(m.type_id)) {
                            Some(t) => match t.kind {
                                TypeKind::Int { bits, .. } => u32::from(bits),
                                _ => 0,
                            },
                            None => 0,
                        };
                        bitfield(data, m.bit_offset, bits, plain)
                    } else {
                        let off = (m.bit_offset / 8) as usize;
                        let size = btf.size_of(m.type_id).unwrap_or(0) as usize;
                        let from = off.min(data.len());
                        let to = (off + size).min(data.len());
                        dump_at(btf, m.type_id, &data[from..to], plain, depth + 1)
                    };
                    (m.name.clone(), v)
                })
                .collect(),
        ),
        TypeKind::Enum {
            size,
            signed,
            values,
        }
        | TypeKind::Enum64 {
            size,
            signed,
            values,
        } => {
            let n = (*size as usize).min(data.len());
            let raw = uint(&data[..n]);
            let v = if *signed {
                sign_extend(raw, n as u32 * 8) as i64
            } else {
                raw as u64 as i64
            };
            // Enumerators of 32-bit enums hold the value sign-extended.
            let v32 = raw as u32 as i32 as i64;
            match values
                .iter()
                .find(|e| e.value == v || (*size == 4 && e.value == v32))
            {
                Some(e) => Json::Str(e.name.clone()),
                None if *signed => Json::num(v),
                None => Json::num(raw),
            }
        }
        TypeKind::Float { size } => match *size {
            4 if data.len() >= 4 => Json::num(f32::from_ne_bytes(data[..4].try_into().unwrap())),
            8 if data.len() >= 8 => Json::num(f64::from_ne_bytes(data[..8].try_into().unwrap())),
            _ => hex(uint(data), plain),
        },
        other => Json::Str(format!("(unsupported kind {})", other.kind_name())),
    }
}

fn int(data: &[u8], size: u32, encoding: u8, offset: u8, bits: u8, plain: bool) -> Json {
    let size = (size as usize).min(data.len());
    if offset != 0 || u32::from(bits) != size as u32 * 8 {
        return bitfield(data, u32::from(offset), u32::from(bits), plain);
    }
    let raw = uint(&data[..size]);
    if encoding & INT_BOOL != 0 {
        return Json::Raw(if raw != 0 { "true" } else { "false" }.into());
    }
    if size > 8 {
        return hex(raw, plain);
    }
    if encoding & INT_CHAR != 0 {
        let c = raw as u8;
        return if (0x20..0x7f).contains(&c) {
            Json::Str((c as char).to_string())
        } else if plain {
            Json::Raw(format!("0x{c:x}"))
        } else {
            Json::Raw(format!("\"\\u00{c:02x}\""))
        };
    }
    if encoding & INT_SIGNED != 0 {
        Json::num(sign_extend(raw, size as u32 * 8))
    } else {
        Json::num(raw)
    }
}

fn bitfield(data: &[u8], bit_offset: u32, bits: u32, plain: bool) -> Json {
    let start = (bit_offset / 8) as usize;
    let end = (bit_offset + bits).div_ceil(8) as usize;
    if bits == 0 || end > data.len() || end - start > 16 {
        return hex(0, plain);
    }
    let v = uint(&data[start..end]) >> (bit_offset % 8);
    let mask = if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    hex(v & mask, plain)
}

/// A char array holding a printable C string (a NUL before any
/// unprintable byte): its text.
fn c_string(btf: &Btf, elem: u32, data: &[u8], nelems: u32) -> Option<String> {
    // Qualifiers are skipped, typedefs are not: a typedef of char is no string.
    let mut id = elem;
    for _ in 0..MAX_DEPTH {
        match btf.get(id).map(|t| &t.kind) {
            Some(
                TypeKind::Const { type_id }
                | TypeKind::Volatile { type_id }
                | TypeKind::Restrict { type_id }
                | TypeKind::TypeTag { type_id },
            ) => id = *type_id,
            _ => break,
        }
    }
    let t = btf.get(id)?;
    let TypeKind::Int {
        size: 1, encoding, ..
    } = t.kind
    else {
        return None;
    };
    if encoding & INT_CHAR == 0 && t.name != "char" {
        return None;
    }
    let bytes = &data[..(nelems as usize).min(data.len())];
    let end = bytes.iter().position(|&b| b == 0)?;
    if bytes[..end].iter().any(|&b| !(0x20..0x7f).contains(&b)) {
        return None;
    }
    Some(String::from_utf8_lossy(&bytes[..end]).into_owned())
}
