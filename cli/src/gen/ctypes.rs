//! C declarations from BTF, for skeletons: a type as a declarator
//! (`unsigned int x`, `char name[8]`, `struct foo *p`), and the
//! definitions of the named structs, unions and enums those use, in an
//! order a C compiler accepts. Typedefs are resolved to what they name and
//! `const`/`volatile` are dropped (as bpftool's skeletons strip them), so
//! the output needs no header but `<stdint.h>`-free C. Every struct gets a
//! `_Static_assert` of its BTF size, so a layout C would not reproduce
//! fails to compile rather than misreading memory.

use super::scalar::{Int, Spelling, MAX_DEPTH};
use bpfc_compiler::loader::btf::{Btf, TypeKind};
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// Emits definitions once each, dependencies first.
pub struct Emitter<'a> {
    btf: &'a Btf,
    done: BTreeSet<u32>,
    pub out: String,
}

impl<'a> Emitter<'a> {
    pub fn new(btf: &'a Btf) -> Emitter<'a> {
        Emitter {
            btf,
            done: BTreeSet::new(),
            out: String::new(),
        }
    }

    /// Skip typedefs and modifiers.
    fn resolve(&self, id: u32) -> u32 {
        self.btf.skip_mods_and_typedefs(id)
    }

    /// `name` declared with type `id` (`name` may be empty: an abstract
    /// declarator). Named aggregates it uses by value are defined first.
    pub fn decl(&mut self, id: u32, name: &str) -> String {
        self.decl_at(id, name, 0)
    }

    fn decl_at(&mut self, id: u32, name: &str, depth: u32) -> String {
        let id = self.resolve(id);
        let sep = |base: &str| {
            if name.is_empty() {
                base.to_string()
            } else {
                format!("{base} {name}")
            }
        };
        let Some(t) = self.btf.get(id).cloned() else {
            return sep("void");
        };
        if depth > MAX_DEPTH {
            return sep("void *");
        }
        match &t.kind {
            TypeKind::Void => sep("void"),
            TypeKind::Int { size, encoding, .. } => sep(&int_name(&t.name, *size, *encoding)),
            TypeKind::Float { .. } => sep(if t.name.is_empty() { "double" } else { &t.name }),
            TypeKind::Ptr { type_id } => {
                let target = self.resolve(*type_id);
                match self.btf.get(target).map(|t| &t.kind) {
                    // Function pointers and anything odd: an opaque pointer.
                    Some(TypeKind::FuncProto { .. }) | None => sep("void *"),
                    _ => {
                        // Pointers need only a declaration of a named aggregate.
                        let inner = format!("*{name}");
                        self.decl_ref(target, &inner, depth + 1)
                    }
                }
            }
            TypeKind::Array { elem, nelems, .. } => {
                let inner = if name.starts_with('*') {
                    format!("({name})[{nelems}]")
                } else {
                    format!("{name}[{nelems}]")
                };
                self.decl_at(*elem, &inner, depth + 1)
            }
            TypeKind::Struct { .. }
            | TypeKind::Union { .. }
            | TypeKind::Enum { .. }
            | TypeKind::Enum64 { .. } => {
                if t.name.is_empty() {
                    let body = self.body(id, depth + 1);
                    sep(&body)
                } else {
                    self.define(id, depth + 1);
                    sep(&format!("{} {}", keyword(&t.kind), t.name))
                }
            }
            TypeKind::Fwd { is_union } => sep(&format!(
                "{} {}",
                if *is_union { "union" } else { "struct" },
                t.name
            )),
            _ => sep("void *"),
        }
    }

    /// A pointer's target: named aggregates by name (declared, not
    /// necessarily defined), the rest as usual.
    fn decl_ref(&mut self, id: u32, name: &str, depth: u32) -> String {
        let Some(t) = self.btf.get(id).cloned() else {
            return format!("void {name}");
        };
        match &t.kind {
            TypeKind::Struct { .. } | TypeKind::Union { .. } if !t.name.is_empty() => {
                format!("{} {} {name}", keyword(&t.kind), t.name)
            }
            _ => self.decl_at(id, name, depth),
        }
    }

    /// Define the named aggregate `id` (once).
    fn define(&mut self, id: u32, depth: u32) {
        if !self.done.insert(id) {
            return;
        }
        let t = self.btf.get(id).cloned().expect("a type the caller found");
        let body = self.body(id, depth);
        let _ = writeln!(self.out, "{body};");
        if let TypeKind::Struct { size, .. } | TypeKind::Union { size, .. } = t.kind {
            let _ = writeln!(
                self.out,
                "_Static_assert(sizeof({} {}) == {size}, \"BTF size of {}\");\n",
                keyword(&t.kind),
                t.name,
                t.name
            );
        } else {
            self.out.push('\n');
        }
    }

    /// `struct NAME { ... }` (or an enum's), members padded to their BTF
    /// offsets.
    fn body(&mut self, id: u32, depth: u32) -> String {
        let t = self.btf.get(id).cloned().expect("a type the caller found");
        let kw = keyword(&t.kind);
        let head = if t.name.is_empty() {
            kw.to_string()
        } else {
            format!("{kw} {}", t.name)
        };
        match &t.kind {
            TypeKind::Enum { values, .. } | TypeKind::Enum64 { values, .. } => {
                let mut s = format!("{head} {{");
                for v in values {
                    let _ = write!(s, " {} = {},", v.name, v.value);
                }
                s.push_str(" }");
                s
            }
            TypeKind::Struct { size, members } | TypeKind::Union { size, members } => {
                let is_union = matches!(t.kind, TypeKind::Union { .. });
                let mut s = format!("{head} {{\n");
                let mut at = 0u64; // bits
                let mut pad = 0;
                for m in members {
                    let off = u64::from(m.bit_offset);
                    if !is_union && off / 8 > at.div_ceil(8) && m.bitfield_size == 0 {
                        let _ = writeln!(s, "\tchar __pad{pad}[{}];", off / 8 - at.div_ceil(8));
                        pad += 1;
                    }
                    let d = self.decl_at(m.type_id, &m.name, depth + 1);
                    if m.bitfield_size > 0 {
                        let _ = writeln!(s, "\t{d} : {};", m.bitfield_size);
                        at = off + u64::from(m.bitfield_size);
                    } else {
                        let _ = writeln!(s, "\t{d};");
                        let sz = self.btf.size_of(m.type_id).unwrap_or(0);
                        at = off + sz * 8;
                    }
                }
                let end = at.div_ceil(8);
                if !is_union && u64::from(*size) > end && natural_size_short(self, id, end) {
                    let _ = writeln!(s, "\tchar __pad{pad}[{}];", u64::from(*size) - end);
                }
                s.push('}');
                s
            }
            _ => head,
        }
    }
}

/// Whether C's own tail padding would not reach `size`: only pad
/// explicitly when the members' alignment cannot explain the gap.
fn natural_size_short(e: &Emitter, id: u32, end: u64) -> bool {
    let Some(t) = e.btf.get(id) else { return false };
    let TypeKind::Struct { size, .. } = t.kind else {
        return false;
    };
    let align = Spelling::C.align_of(e.btf, id, 0).max(1);
    end.div_ceil(align) * align < u64::from(size)
}

fn keyword(k: &TypeKind) -> &'static str {
    match k {
        TypeKind::Union { .. } => "union",
        TypeKind::Enum { .. } | TypeKind::Enum64 { .. } => "enum",
        _ => "struct",
    }
}

/// A C spelling of a BTF integer: its own name when it is a C type name,
/// else one of its size and signedness.
fn int_name(name: &str, size: u32, encoding: u8) -> String {
    const C_NAMES: &[&str] = &[
        "char",
        "signed char",
        "unsigned char",
        "short",
        "short int",
        "unsigned short",
        "short unsigned int",
        "int",
        "unsigned int",
        "long",
        "long int",
        "unsigned long",
        "long unsigned int",
        "long long",
        "long long int",
        "unsigned long long",
        "long long unsigned int",
        "_Bool",
        "__int128",
        "__int128 unsigned",
        "unsigned __int128",
    ];
    if C_NAMES.contains(&name) {
        return name.to_string();
    }
    let int = Int::of(size, encoding);
    match (int.bytes, int.signed) {
        _ if int.boolean => "_Bool".into(),
        (1, true) => "signed char".into(),
        (1, false) => "unsigned char".into(),
        (2, true) => "short".into(),
        (2, false) => "unsigned short".into(),
        (4, true) => "int".into(),
        (4, false) => "unsigned int".into(),
        (8, true) => "long long".into(),
        (8, false) => "unsigned long long".into(),
        (_, true) => "__int128".into(),
        (_, false) => "unsigned __int128".into(),
    }
}
