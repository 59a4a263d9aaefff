//! What the C and Rust generators both need to know of BTF scalars: an
//! integer's width and sign, and the alignment a type gets in a C struct
//! (the Rust side uses `#[repr(C)]`, so the two must agree).

use bpfc_compiler::loader::btf::{Btf, Type, TypeKind};

/// Nesting beyond which a type is taken as opaque (BTF may be cyclic).
pub const MAX_DEPTH: u32 = 64;

/// A BTF integer as the generators spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Int {
    /// 1, 2, 4, 8 or 16 (a BTF size that is none of these is taken as 16).
    pub bytes: u32,
    pub signed: bool,
    /// `BTF_INT_BOOL`: a one-byte `_Bool` (a `u8` in Rust).
    pub boolean: bool,
}

impl Int {
    /// The integer with BTF `size` and `encoding` (`BTF_INT_SIGNED` 1,
    /// `BTF_INT_BOOL` 4).
    pub fn of(size: u32, encoding: u8) -> Int {
        let bytes = if matches!(size, 1 | 2 | 4 | 8) {
            size
        } else {
            16
        };
        let boolean = bytes == 1 && encoding & 4 != 0;
        Int {
            bytes,
            signed: encoding & 1 != 0 && !boolean,
            boolean,
        }
    }
}

/// How a generator spells aggregates: C defines every struct and union;
/// Rust defines named structs and spells unions and anonymous structs as
/// byte arrays of their size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spelling {
    C,
    Rust,
}

impl Spelling {
    /// Whether aggregate `t` is spelt as bytes rather than defined.
    pub fn as_bytes(self, t: &Type) -> bool {
        self == Spelling::Rust && (t.name.is_empty() || matches!(t.kind, TypeKind::Union { .. }))
    }

    /// The alignment of type `id` as a member: its largest scalar's size
    /// (pointers 8, bytes 1), which `#[repr(C)]` and C agree on.
    pub fn align_of(self, btf: &Btf, id: u32, depth: u32) -> u64 {
        let id = btf.skip_mods_and_typedefs(id);
        let Some(t) = btf.get(id) else { return 1 };
        if depth > MAX_DEPTH {
            return 8;
        }
        match &t.kind {
            TypeKind::Int { size, .. }
            | TypeKind::Float { size }
            | TypeKind::Enum { size, .. }
            | TypeKind::Enum64 { size, .. } => u64::from(*size).clamp(1, 16),
            TypeKind::Ptr { .. } => 8,
            TypeKind::Array { elem, .. } => self.align_of(btf, *elem, depth + 1),
            TypeKind::Struct { members, .. } | TypeKind::Union { members, .. }
                if !self.as_bytes(t) =>
            {
                members
                    .iter()
                    .map(|m| self.align_of(btf, m.type_id, depth + 1))
                    .max()
                    .unwrap_or(1)
            }
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Int;

    #[test]
    fn integers_by_size_and_encoding() {
        let int = |bytes, signed, boolean| Int {
            bytes,
            signed,
            boolean,
        };
        assert_eq!(Int::of(4, 1), int(4, true, false));
        assert_eq!(Int::of(8, 0), int(8, false, false));
        assert_eq!(Int::of(1, 2), int(1, false, false));
        assert_eq!(Int::of(1, 4), int(1, false, true));
        assert_eq!(Int::of(1, 5), int(1, false, true));
        assert_eq!(Int::of(16, 1), int(16, true, false));
        assert_eq!(Int::of(3, 1), int(16, true, false));
    }
}
