//! `bpfc gen skeleton`: a C header in the manner of `bpftool gen
//! skeleton` for an object that `bpfc compile` turns into `NAME.o`: a
//! `struct NAME` with the object, its maps and programs by name, and typed
//! pointers to its global data (one struct per data section, from the
//! section's BTF), and the functions that open, load and destroy it.

use super::ctypes::Emitter;
use crate::compile::map_kind;
use bpfc_compiler::loader::btf::{Btf, TypeKind};
use bpfc_compiler::loader::{MapDef, Object};
use bpfc_runtime::host::desc::MapKind;
use std::fmt::Write as _;

/// A C identifier for a map or section name (`.rodata` -> `rodata`).
pub fn ident(name: &str) -> String {
    let s: String = name
        .trim_start_matches('.')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{s}")
    } else {
        s
    }
}

/// One global data section with typed variables.
struct Section {
    member: String,
    /// The struct definition.
    def: String,
}

/// Offsets and sizes of the object's variables by (section, name), from
/// its symbol table: a relocatable object's BTF leaves them 0 (libbpf
/// fills them in the same way).
pub type Symbols = std::collections::BTreeMap<(String, String), (u64, u64)>;

pub fn symbols(bytes: &[u8]) -> Symbols {
    use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
    let mut out = Symbols::new();
    let Ok(f) = object::File::parse(bytes) else {
        return out;
    };
    for sym in f.symbols() {
        let (Ok(name), Some(idx)) = (sym.name(), sym.section_index()) else {
            continue;
        };
        let Ok(sec) = f.section_by_index(idx) else {
            continue;
        };
        let Ok(sec_name) = sec.name() else { continue };
        out.insert(
            (sec_name.to_string(), name.to_string()),
            (sym.address(), sym.size()),
        );
    }
    out
}

/// A global variable a skeleton exposes: where it is in its section (from
/// the symbol table, else BTF), its name and BTF type.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GlobalVar {
    pub off: u64,
    pub size: u64,
    pub name: String,
    pub type_id: u32,
}

/// The object's global data sections (`.data`, `.rodata`, `.bss`, ...)
/// that have variables a skeleton exposes, each with those variables in
/// offset order. Static variables and names that are not identifiers stay
/// private, as in bpftool's skeletons.
pub fn global_sections<'o>(
    obj: &'o Object,
    btf: &Btf,
    syms: &Symbols,
) -> Vec<(&'o MapDef, Vec<GlobalVar>)> {
    let mut out = Vec::new();
    for def in &obj.maps {
        if !matches!(
            map_kind(def),
            MapKind::Data | MapKind::Rodata | MapKind::Bss
        ) {
            continue;
        }
        let Some(TypeKind::Datasec { vars, .. }) = btf
            .types
            .iter()
            .find(|t| t.name == def.name && matches!(t.kind, TypeKind::Datasec { .. }))
            .map(|t| &t.kind)
        else {
            continue;
        };
        let mut vars: Vec<GlobalVar> = vars
            .iter()
            .filter_map(|v| {
                let var = btf.get(v.type_id)?;
                let TypeKind::Var { type_id, linkage } = var.kind else {
                    return None;
                };
                let exposed = linkage != 0
                    && var
                        .name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_');
                let (off, size) = syms
                    .get(&(def.name.clone(), var.name.clone()))
                    .copied()
                    .unwrap_or((u64::from(v.offset), u64::from(v.size)));
                exposed.then(|| GlobalVar {
                    off,
                    size,
                    name: var.name.clone(),
                    type_id,
                })
            })
            .collect();
        if !vars.is_empty() {
            vars.sort();
            out.push((def, vars));
        }
    }
    out
}

fn sections(obj: &Object, syms: &Symbols, name: &str, types: &mut String) -> Vec<Section> {
    let Some(btf) = &obj.btf else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut em = Emitter::new(btf);
    for (def, vars) in global_sections(obj, btf, syms) {
        let member = ident(&def.name);
        let sname = format!("{name}__{member}");
        let mut s = format!("struct {sname} {{\n");
        let mut at = 0u64;
        let mut asserts = String::new();
        for (
            i,
            GlobalVar {
                off,
                size,
                name: var,
                type_id,
            },
        ) in vars.iter().enumerate()
        {
            if *off > at {
                let _ = writeln!(s, "\tchar __pad{i}[{}];", off - at);
            }
            let _ = writeln!(s, "\t{};", em.decl(*type_id, var));
            let _ = writeln!(
                asserts,
                "_Static_assert(offsetof(struct {sname}, {var}) == {off}, \"{var}\");"
            );
            at = off + size;
        }
        s.push_str("};\n");
        s.push_str(&asserts);
        out.push(Section { member, def: s });
    }
    types.push_str(&em.out);
    out
}

/// The header for object `obj` compiled as `name`.
pub fn generate(obj: &Object, syms: &Symbols, name: &str) -> String {
    let guard = format!("BPFC_SKEL_{}_H", name.to_ascii_uppercase());
    let jit = format!("BPFC_SKEL_{}_JIT_FILE", name.to_ascii_uppercase());
    let maps: Vec<(String, String)> = obj
        .maps
        .iter()
        .filter(|d| map_kind(d) != MapKind::Absent)
        .map(|d| (ident(&d.name), d.name.clone()))
        .collect();
    let progs: Vec<&str> = obj
        .programs
        .iter()
        .filter(|p| p.error.is_none() && p.externs.is_empty())
        .map(|p| p.name.as_str())
        .collect();
    let mut types = String::new();
    let secs = sections(obj, syms, name, &mut types);
    let mut h = String::new();
    let _ = write!(
        h,
        "/* Generated by `bpfc gen skeleton` for object {name}: link with\n \
         * {name}.o from `bpfc compile` and the bpfc runtime library; or define\n \
         * {jit} as the path of the .bpf.o to compile at run time\n \
         * (bpfc_object_open_file) and link the JIT library (libbpfc_jit). */\n\
         #ifndef {guard}\n#define {guard}\n\n\
         #include <stddef.h>\n#include <stdlib.h>\n\n#include \"bpfc.h\"\n\n\
         #ifdef __cplusplus\nextern \"C\" {{\n#endif\n\n\
         extern const struct bpfc_object_desc {name}__object;\n\n"
    );
    h.push_str(&types);
    for s in &secs {
        h.push_str(&s.def);
        h.push('\n');
    }
    let _ = writeln!(
        h,
        "struct {name} {{\n\tstruct bpfc_object *obj;\n\tstruct {{"
    );
    for (m, _) in &maps {
        let _ = writeln!(h, "\t\tconst struct bpfc_map *{m};");
    }
    if maps.is_empty() {
        h.push_str("\t\tchar __none;\n");
    }
    h.push_str("\t} maps;\n\tstruct {\n");
    for p in &progs {
        let _ = writeln!(h, "\t\tconst struct bpfc_program *{p};");
    }
    if progs.is_empty() {
        h.push_str("\t\tchar __none;\n");
    }
    h.push_str("\t} progs;\n\tstruct {\n");
    for p in &progs {
        let _ = writeln!(h, "\t\tstruct bpfc_link *{p};");
    }
    if progs.is_empty() {
        h.push_str("\t\tchar __none;\n");
    }
    h.push_str("\t} links;\n");
    for s in &secs {
        let _ = writeln!(h, "\tstruct {name}__{} *{};", s.member, s.member);
    }
    h.push_str("};\n\n");
    // destroy
    // detach: every link of attach.
    let _ = writeln!(
        h,
        "static inline void {name}__detach(struct {name} *skel)\n{{"
    );
    for p in &progs {
        let _ = writeln!(
            h,
            "\tif (skel->links.{p} != NULL) {{\n\t\tbpfc_link_destroy(skel->links.{p});\n\t\tskel->links.{p} = NULL;\n\t}}"
        );
    }
    h.push_str("\t(void)skel;\n}\n\n");
    let _ = write!(
        h,
        "static inline void {name}__destroy(struct {name} *skel)\n{{\n\
         \tif (skel == NULL)\n\t\treturn;\n\
         \t{name}__detach(skel);\n\
         \tif (skel->obj != NULL)\n\t\tbpfc_object_destroy(skel->obj);\n\
         \tfree(skel);\n}}\n\n"
    );
    // Point each section member at the map's value: the image before
    // load, the live value after.
    let _ = writeln!(
        h,
        "static inline int {name}__map_data(struct {name} *skel)\n{{"
    );
    for s in &secs {
        let _ = writeln!(
            h,
            "\tskel->{m} = (struct {name}__{m} *)bpfc_map_initial_value(skel->maps.{m}, NULL);\n\
             \tif (skel->{m} == NULL)\n\t\treturn bpfc_errno();",
            m = s.member
        );
    }
    h.push_str("\treturn 0;\n}\n\n");
    // open
    let _ = writeln!(
        h,
        "static inline struct {name} *{name}__open(void)\n{{\n\
         \tstruct {name} *skel = (struct {name} *)calloc(1, sizeof(*skel));\n\n\
         \tif (skel == NULL)\n\t\treturn NULL;\n\
         #ifdef {jit}\n\
         \tskel->obj = bpfc_object_open_file({jit});\n\
         #else\n\
         \tskel->obj = bpfc_object_open(&{name}__object);\n\
         #endif\n\
         \tif (skel->obj == NULL)\n\t\tgoto err;"
    );
    for (m, real) in &maps {
        let _ = writeln!(
            h,
            "\tskel->maps.{m} = bpfc_object_find_map(skel->obj, \"{real}\");\n\
             \tif (skel->maps.{m} == NULL)\n\t\tgoto err;"
        );
    }
    for p in &progs {
        let _ = writeln!(
            h,
            "\tskel->progs.{p} = bpfc_object_find_program(skel->obj, \"{p}\");\n\
             \tif (skel->progs.{p} == NULL)\n\t\tgoto err;"
        );
    }
    let _ = write!(
        h,
        "\tif ({name}__map_data(skel) != 0)\n\t\tgoto err;\n\
         \treturn skel;\nerr:\n\t{name}__destroy(skel);\n\treturn NULL;\n}}\n\n"
    );
    // detach before destroy (declared first), load, open_and_load, attach
    let _ = write!(
        h,
        "static inline int {name}__load(struct {name} *skel)\n{{\n\
         \tint err = bpfc_object_load(skel->obj);\n\n\
         \tif (err != 0)\n\t\treturn err;\n\
         \treturn {name}__map_data(skel);\n}}\n\n\
         static inline struct {name} *{name}__open_and_load(void)\n{{\n\
         \tstruct {name} *skel = {name}__open();\n\n\
         \tif (skel == NULL)\n\t\treturn NULL;\n\
         \tif ({name}__load(skel) != 0) {{\n\t\t{name}__destroy(skel);\n\t\treturn NULL;\n\t}}\n\
         \treturn skel;\n}}\n\n"
    );
    // attach: each program to the hook its section names (bpfc_hook_fire).
    let _ = writeln!(
        h,
        "/* Attach every program to the hook its section names; the host runs\n \
         * them with bpfc_hook_fire(\"SECTION\", ctx, size, cpu, ...). */\n\
         static inline int {name}__attach(struct {name} *skel)\n{{"
    );
    for p in &progs {
        let _ = writeln!(
            h,
            "\tif (skel->links.{p} == NULL) {{\n\t\tskel->links.{p} = bpfc_program_attach(skel->progs.{p});\n\
             \t\tif (skel->links.{p} == NULL) {{\n\t\t\tint err = bpfc_errno();\n\n\t\t\t{name}__detach(skel);\n\t\t\treturn err;\n\t\t}}\n\t}}"
        );
    }
    h.push_str("\t(void)skel;\n\treturn 0;\n}\n\n#ifdef __cplusplus\n}\n#endif\n#endif\n");
    h
}
