//! `bpfc gen skeleton --lang rust`: a Rust module for an object that
//! `bpfc compile` turns into `NAME.o` (what `bpfc-build` generates and
//! links): `#[repr(C)]` types from BTF, typed maps (key and value types from
//! BTF), global data as typed values, and each program as a method taking
//! its context. Types C would lay out differently from BTF (bitfields,
//! unions) become byte arrays of the same size; every struct's size and
//! every field's offset is asserted at compile time.

use super::scalar::{Int, Spelling};
use super::skeleton::{ident, GlobalVar};
use crate::compile::map_kind;
use bpfc_compiler::loader::btf::{Btf, TypeKind};
use bpfc_compiler::loader::Object;
use bpfc_runtime::host::desc::MapKind;
use std::collections::BTreeSet;
use std::fmt::Write as _;

struct Types<'a> {
    btf: &'a Btf,
    done: BTreeSet<u32>,
    names: BTreeSet<String>,
    out: String,
}

/// A Rust identifier for a C name (keywords get a trailing `_`).
fn rust_ident(name: &str) -> String {
    const KEYWORDS: &[&str] = &[
        "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn",
        "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref",
        "return", "self", "Self", "static", "struct", "super", "trait", "true", "type", "unsafe",
        "use", "where", "while", "async", "await", "dyn", "box", "yield", "try", "macro",
    ];
    if KEYWORDS.contains(&name) {
        format!("{name}_")
    } else {
        name.to_string()
    }
}

impl<'a> Types<'a> {
    /// The Rust type of BTF type `id`, defining named structs it needs.
    fn ty(&mut self, id: u32, depth: u32) -> String {
        let id = self.btf.skip_mods_and_typedefs(id);
        let Some(t) = self.btf.get(id).cloned() else {
            return "()".into();
        };
        if depth > 32 {
            return "u64".into();
        }
        match &t.kind {
            TypeKind::Int { size, encoding, .. } => {
                let int = Int::of(*size, *encoding);
                let sign = if int.signed { "i" } else { "u" };
                format!("{sign}{}", int.bytes * 8)
            }
            TypeKind::Float { size } => if *size == 4 { "f32" } else { "f64" }.into(),
            TypeKind::Enum { size, signed, .. } | TypeKind::Enum64 { size, signed, .. } => {
                format!("{}{}", if *signed { "i" } else { "u" }, size * 8)
            }
            TypeKind::Ptr { .. } => "u64".into(),
            TypeKind::Array { elem, nelems, .. } => {
                format!("[{}; {nelems}]", self.ty(*elem, depth + 1))
            }
            TypeKind::Struct { size, .. } | TypeKind::Union { size, .. } => {
                if Spelling::Rust.as_bytes(&t) {
                    return format!("[u8; {size}]");
                }
                self.define(id, depth + 1);
                rust_ident(&t.name)
            }
            _ => "u64".into(),
        }
    }

    /// `#[repr(C)] struct NAME` for struct `id`: fields at their BTF
    /// offsets, or opaque bytes when a member is a bitfield.
    fn define(&mut self, id: u32, depth: u32) {
        if !self.done.insert(id) {
            return;
        }
        let t = self.btf.get(id).cloned().expect("a type the caller found");
        let TypeKind::Struct { size, members } = &t.kind else {
            return;
        };
        let name = rust_ident(&t.name);
        if !self.names.insert(name.clone()) {
            return;
        }
        let align = Spelling::Rust.align_of(self.btf, id, 0);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "#[repr(C, align({align}))]\n#[derive(Clone, Copy, Debug)]\npub struct {name} {{"
        );
        let mut asserts = String::new();
        if members.iter().any(|m| m.bitfield_size > 0) {
            let _ = writeln!(s, "    pub bytes: [u8; {size}],");
        } else {
            let mut at = 0u64;
            for (i, m) in members.iter().enumerate() {
                let off = u64::from(m.bit_offset / 8);
                if off > at {
                    let _ = writeln!(s, "    pub _pad{i}: [u8; {}],", off - at);
                }
                let fname = if m.name.is_empty() {
                    format!("_anon{i}")
                } else {
                    rust_ident(&m.name)
                };
                let fty = self.ty(m.type_id, depth + 1);
                let _ = writeln!(s, "    pub {fname}: {fty},");
                let _ = writeln!(
                    asserts,
                    "const _: () = assert!(core::mem::offset_of!({name}, {fname}) == {off});"
                );
                at = off + self.btf.size_of(m.type_id).unwrap_or(0);
            }
            if u64::from(*size) > at.div_ceil(align) * align {
                let _ = writeln!(s, "    pub _tail: [u8; {}],", u64::from(*size) - at);
            }
        }
        s.push_str("}\n");
        let _ = writeln!(
            s,
            "const _: () = assert!(core::mem::size_of::<{name}>() == {size});\n\
             // SAFETY: integers, arrays and structs of them, padding spelt out.\n\
             unsafe impl bpfc_runtime::host::typed::Plain for {name} {{}}"
        );
        s.push_str(&asserts);
        self.out.push_str(&s);
        self.out.push('\n');
    }
}

/// The Rust module for object `obj` compiled as `name`; `syms` gives the
/// variables' offsets.
pub fn generate(obj: &Object, syms: &super::skeleton::Symbols, name: &str) -> String {
    let empty = Btf {
        types: Vec::new(),
        strings: Vec::new(),
    };
    let btf = obj.btf.as_ref().unwrap_or(&empty);
    let mut types = Types {
        btf,
        done: BTreeSet::new(),
        names: BTreeSet::new(),
        out: String::new(),
    };
    let mut body = String::new();
    // Global data sections.
    let mut sections = Vec::new();
    for (def, fields) in super::skeleton::global_sections(obj, btf, syms) {
        let member = ident(&def.name);
        let sname = format!("{}Section", camel(&member));
        let mut s = format!("#[repr(C)]\n#[derive(Clone, Copy, Debug)]\npub struct {sname} {{\n");
        let mut asserts = String::new();
        let mut at = 0u64;
        for (
            i,
            GlobalVar {
                off,
                name: var,
                type_id: ty,
                ..
            },
        ) in fields.iter().enumerate()
        {
            if *off > at {
                let _ = writeln!(s, "    pub _pad{i}: [u8; {}],", off - at);
            }
            let f = rust_ident(var);
            let _ = writeln!(s, "    pub {f}: {},", types.ty(*ty, 0));
            let _ = writeln!(
                asserts,
                "const _: () = assert!(core::mem::offset_of!({sname}, {f}) == {off});"
            );
            at = off + btf.size_of(*ty).unwrap_or(0);
        }
        s.push_str("}\n");
        s.push_str(&asserts);
        body.push_str(&s);
        body.push('\n');
        sections.push((def.name.clone(), member, sname));
    }
    // Maps: typed when BTF gives key and value types.
    let mut maps = Vec::new();
    for def in &obj.maps {
        if map_kind(def) != MapKind::Plain {
            continue;
        }
        let typed = match (def.key_type_id, def.value_type_id) {
            (Some(k), Some(v)) if def.key_size > 0 => Some((types.ty(k, 0), types.ty(v, 0))),
            _ => None,
        };
        maps.push((def.name.clone(), rust_ident(&ident(&def.name)), typed));
    }
    // Programs: their context type from the function's BTF prototype.
    let mut progs = Vec::new();
    for p in obj
        .programs
        .iter()
        .filter(|p| p.error.is_none() && p.externs.is_empty())
    {
        let ctx = p
            .func_info
            .first()
            .and_then(|f| btf.get(f.type_id))
            .and_then(|f| match f.kind {
                TypeKind::Func { proto, .. } => btf.get(proto),
                _ => None,
            })
            .and_then(|proto| match &proto.kind {
                TypeKind::FuncProto { params, .. } => params.first().map(|p| p.type_id),
                _ => None,
            })
            .and_then(
                |ptr| match btf.get(btf.skip_mods_and_typedefs(ptr)).map(|t| &t.kind) {
                    Some(TypeKind::Ptr { type_id }) => Some(btf.skip_mods_and_typedefs(*type_id)),
                    _ => None,
                },
            )
            .filter(|&t| matches!(btf.get(t).map(|t| &t.kind), Some(TypeKind::Struct { .. })))
            .filter(|&t| {
                btf.get(t)
                    .is_some_and(|t| !t.name.starts_with("__sk_buff") && t.name != "xdp_md")
            })
            .map(|t| types.ty(t, 0));
        progs.push((p.name.clone(), p.section.clone(), ctx));
    }

    let mut m = String::new();
    let module = rust_ident(name);
    let _ = writeln!(
        m,
        "// Generated by `bpfc gen skeleton --lang rust` for object {name}.\n\
         #[allow(non_camel_case_types, non_snake_case, dead_code, unused_imports, clippy::all)]\n\
         pub mod {module} {{\n\
         pub use bpfc_runtime::host::hooks::{{fire, Link}};\n\
         use bpfc_runtime::host::object::{{AotProgram, HostError, HostObject}};\n\
         use bpfc_runtime::host::typed::TypedMap;\n\
         use bpfc_runtime::maps::Map;\n\
         use std::sync::Arc;\n\n\
         extern \"C\" {{\n    static {name}__object: bpfc_runtime::host::desc::ObjectNative;\n}}\n"
    );
    m.push_str(&types.out);
    m.push_str(&body);
    m.push_str("/// The object, opened (and, after `load`, loaded).\npub struct Skel {\n    pub obj: HostObject,\n}\n\n");
    m.push_str("impl Skel {\n");
    let _ = writeln!(
        m,
        "    /// Open the linked object (`{name}.o`).\n    pub fn open() -> Result<Skel, HostError> {{\n        \
         // SAFETY: the descriptor `bpfc compile` exported, linked in by bpfc-build.\n        \
         let obj = unsafe {{ HostObject::open(&raw const {name}__object) }}?;\n        \
         Ok(Skel {{ obj }})\n    }}\n\n    \
         /// Create the maps and make the programs runnable.\n    pub fn load(&mut self) -> Result<(), HostError> {{\n        self.obj.load()\n    }}\n\n    \
         pub fn open_and_load() -> Result<Skel, HostError> {{\n        let mut s = Skel::open()?;\n        s.load()?;\n        Ok(s)\n    }}\n"
    );
    for (map, member, sname) in &sections {
        let _ = writeln!(
            m,
            "    /// `{map}`: its image before load, its live value after.\n    \
             pub fn {member}(&self) -> {sname} {{\n        \
             // SAFETY: the section's value (or image) is at least as big as the struct.\n        \
             unsafe {{ std::ptr::read_volatile(self.obj.global_ptr_const(\"{map}\").expect(\"a section of the object\").cast::<{sname}>()) }}\n    }}\n\n    \
             /// `{map}` to change: before load, what load writes; after load, the live value.\n    \
             pub fn {member}_mut(&mut self) -> &mut {sname} {{\n        \
             // SAFETY: as above; `&mut self` keeps runs of this skeleton out meanwhile.\n        \
             unsafe {{ &mut *self.obj.global_ptr(\"{map}\").expect(\"a section of the object\").cast::<{sname}>() }}\n    }}\n"
        );
    }
    for (real, member, typed) in &maps {
        match typed {
            Some((k, v)) => {
                let _ = writeln!(
                    m,
                    "    /// Map `{real}` (after load).\n    pub fn {member}(&self) -> Result<TypedMap<{k}, {v}>, HostError> {{\n        \
                     TypedMap::new(self.map_named(\"{real}\")?)\n    }}\n"
                );
            }
            None => {
                let _ = writeln!(
                    m,
                    "    /// Map `{real}` (after load).\n    pub fn {member}(&self) -> Result<Arc<Map>, HostError> {{\n        \
                     self.map_named(\"{real}\")\n    }}\n"
                );
            }
        }
    }
    m.push_str(
        "    fn map_named(&self, name: &str) -> Result<Arc<Map>, HostError> {\n        \
         self.obj.map(name)\n    }\n\n    \
         fn prog_named(&self, name: &str) -> Result<&AotProgram, HostError> {\n        \
         self.obj.program(name)\n    }\n",
    );
    for (real, _, ctx) in &progs {
        match ctx {
            Some(t) => {
                let _ = writeln!(
                    m,
                    "\n    /// Run program `{real}` on `ctx` (CPU slot `cpu`); r0.\n    \
                     pub fn run_{real}(&self, ctx: &mut {t}, cpu: u32) -> Result<u64, HostError> {{\n        \
                     let p = self.prog_named(\"{real}\")?;\n        \
                     p.check_ctx_size(core::mem::size_of::<{t}>())?;\n        \
                     p.run(ctx as *mut {t} as u64, core::mem::size_of::<{t}>() as u64, cpu)\n            \
                     .map_err(|f| HostError::new(14, f.message))\n    }}"
                );
            }
            None => {
                let _ = writeln!(
                    m,
                    "\n    /// Program `{real}`, to run with `AotProgram::run` / `test_run`.\n    \
                     pub fn run_{real}_program(&self) -> Result<&AotProgram, HostError> {{\n        \
                     self.prog_named(\"{real}\")\n    }}"
                );
            }
        }
    }
    // Hooks: the runtime's registry, as the C skeleton's X__attach.
    let _ = writeln!(
        m,
        "\n    /// Attach every program to the hook its section names (the C\n    \
         /// skeleton's `attach`); [`fire`] with that name runs them. Each stays\n    \
         /// attached until its link is dropped, or the object is.\n    \
         pub fn attach(&self) -> Result<Links, HostError> {{\n        \
         Ok(Links {{"
    );
    for (real, section, _) in &progs {
        let field = rust_ident(real);
        let _ = writeln!(m, "            {field}: self.attach_{real}({section:?})?,");
    }
    m.push_str("        })\n    }\n");
    for (real, _, _) in &progs {
        let _ = writeln!(
            m,
            "\n    /// Attach program `{real}` to the hook `hook` (any name the host fires).\n    \
             pub fn attach_{real}(&self, hook: &str) -> Result<Link, HostError> {{\n        \
             bpfc_runtime::host::hooks::attach(&self.obj, \"{real}\", hook)\n    }}"
        );
    }
    m.push_str(
        "}\n\n/// What [`Skel::attach`] attached: one link per program.\npub struct Links {\n",
    );
    for (real, _, _) in &progs {
        let _ = writeln!(m, "    pub {}: Link,", rust_ident(real));
    }
    m.push_str("}\n}\n");
    m
}

fn camel(s: &str) -> String {
    s.split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}
