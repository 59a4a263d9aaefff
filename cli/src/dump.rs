//! `bpfc dump`: what bpfc sees in a file. For an ELF object: programs, maps,
//! global data, then each program's disassembly with its source lines (like
//! `llvm-objdump -S`); for raw instructions: the disassembly. With `--clif`
//! or `--asm`: the Cranelift IR or native code one program lowers to.

use crate::{input, native, output};
use anyhow::Context;
use bpfc_compiler::bind::map_spec;
use bpfc_compiler::codegen::{aot, parse_triple, Binding, CodegenOptions, Dumps, MapSlot, Request};
use bpfc_compiler::disasm::{disassemble, format_named, Names, Syntax};
use bpfc_compiler::isa::{Insn, LddwSrc};
use bpfc_compiler::loader::{MapDef, MapInit, Object, Program};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// An ELF object (clang -target bpf) or raw 8-byte instructions.
    file: PathBuf,
    #[command(flatten)]
    select: input::Select,
    /// Print JSON instead of text (objects).
    #[arg(long)]
    json: bool,
    /// Print the Cranelift IR of each function (source locations are eBPF pcs).
    #[arg(long)]
    clif: bool,
    /// Print the native code of each function, grouped by eBPF instruction.
    #[arg(long)]
    asm: bool,
    /// Target of `--clif`/`--asm` (see `bpfc targets`).
    #[arg(long, default_value = "x86_64-unknown-linux-gnu")]
    target: String,
    /// Lower in bounds-checked mode (`--clif`/`--asm`): as `compile
    /// --checked`, without the checks of accesses the verifier proved safe.
    #[arg(long)]
    checked: bool,
    /// Lower without the verifier's facts (`--clif`/`--asm`), as `compile
    /// --no-verify` does.
    #[arg(long)]
    no_verify: bool,
}

/// What the object knows about one program's numbers: map, function and
/// kernel symbol names.
struct ObjNames<'a> {
    obj: &'a Object,
    prog: &'a Program,
}

impl Names for ObjNames<'_> {
    fn map(&self, index: u32) -> Option<String> {
        self.obj.maps.get(index as usize).map(|m| m.name.clone())
    }
    fn function(&self, pc: usize) -> Option<String> {
        self.prog
            .functions
            .iter()
            .find(|f| f.start == pc)
            .map(|f| f.name.clone())
    }
    fn kernel_symbol(&self, pc: usize) -> Option<String> {
        self.prog
            .externs
            .iter()
            .find(|e| e.pc == pc)
            .map(|e| e.name.clone())
    }
}

/// One instruction as text: the syntax of `llvm-objdump -d`, with map
/// references, local calls and kernel symbols named (see `bpfc_compiler::disasm`).
fn insn_text(obj: &Object, prog: &Program, pc: usize, insn: &Insn) -> String {
    format_named(pc, insn, &ObjNames { obj, prog })
}

/// The map an instruction refers to and the offset into its value.
fn map_ref(obj: &Object, insn: &Insn) -> Option<Value> {
    match *insn {
        Insn::Lddw {
            src: src @ (LddwSrc::MapIdx | LddwSrc::MapIdxValue),
            imm,
            ..
        } => {
            let idx = imm as u32 as usize;
            Some(json!({
                "index": idx,
                "name": obj.maps.get(idx).map(|m| m.name.clone()),
                "offset": (src == LddwSrc::MapIdxValue).then_some(imm >> 32),
            }))
        }
        _ => None,
    }
}

pub fn main(args: Args) -> anyhow::Result<()> {
    if args.clif || args.asm {
        return lowered(&args);
    }
    let file = args.file.display().to_string();
    let bytes = std::fs::read(&args.file).with_context(|| file.clone())?;
    if !input::is_elf(&bytes) {
        let prog = input::load(&args.file, &args.select)?;
        return output::print(disassemble(&prog.insns, Syntax::Llvm));
    }
    let obj = input::load_object(&args.file, &bytes, &args.select)?;
    let programs: Vec<&Program> = match &args.select.program {
        Some(name) => vec![obj.program(name).with_context(|| file.clone())?],
        None => obj.programs.iter().collect(),
    };
    if args.json {
        let json = serde_json::to_string_pretty(&to_json(&obj, &programs))?;
        output::print(json + "\n")
    } else {
        output::print(to_text(&obj, &programs))
    }
}

/// `--clif`/`--asm`: compile one program for the target and print the listings.
fn lowered(args: &Args) -> anyhow::Result<()> {
    let prog = input::load(&args.file, &args.select)?;
    let triple = parse_triple(&args.target)?;
    // A rejected program is still shown, with every check.
    let facts = input::verify(&prog, None, args.no_verify).unwrap_or(None);
    let opts = CodegenOptions {
        checked: args.checked,
        ..Default::default()
    };
    let mut dumps = Dumps {
        clif: args.clif.then(String::new),
        native: args.asm.then(Vec::new),
    };
    let symbol = input::symbol_for(&prog.name);
    // An object's maps are bound as a self-describing object binds them:
    // through the map table the host fills in (array lookups inlined).
    let binding = match &prog.object {
        Some(obj) => Binding {
            maps: obj
                .maps
                .iter()
                .map(|d| {
                    map_spec(d, obj.btf.as_ref()).ok().map(|spec| MapSlot {
                        spec,
                        addr: None,
                        values: None,
                        ncpus: None,
                    })
                })
                .collect(),
            map_table: Some(aot::table_symbols(&symbol).0),
            ..Binding::object(&[])
        },
        None => Binding::object(&[]),
    };
    aot::compile_object(
        &Request {
            insns: &prog.insns,
            endian: prog.endian,
            binding: &binding,
            opts: &opts,
            symbol: &symbol,
            facts: facts.as_ref(),
        },
        &triple,
        Some(&mut dumps),
    )
    .with_context(|| args.file.display().to_string())?;
    if let Some(clif) = dumps.clif {
        output::print(clif)?;
    }
    if let Some(functions) = dumps.native {
        // Source lines where they start, as `llvm-objdump -S` shows them.
        let source = |pc: usize| {
            prog.line_info
                .iter()
                .find(|l| l.pc == pc)
                .map(|l| format!("    [{}:{}: {}]", l.file, l.line, l.text.trim()))
                .unwrap_or_default()
        };
        output::print(native::listing(&triple, &functions, &prog.insns, source)?)?;
    }
    Ok(())
}

fn init_text(obj: &Object, init: &MapInit) -> String {
    match init {
        MapInit::Map(i) => obj.maps.get(*i).map_or("?".into(), |m| m.name.clone()),
        MapInit::Program(p) => format!("prog {p}"),
    }
}

/// The fields only some maps have: numa node, map_extra, pinning, the
/// iproute2 fields of long legacy definitions, struct_ops programs.
fn extra_text(m: &MapDef) -> String {
    let mut s = String::new();
    if m.numa_node != 0 {
        let _ = write!(s, " numa_node {}", m.numa_node);
    }
    if m.map_extra != 0 {
        let _ = write!(s, " map_extra {:#x}", m.map_extra);
    }
    if m.pinning != 0 {
        let _ = write!(s, " pinning {}", m.pinning);
    }
    if let Some(l) = &m.legacy {
        let _ = write!(
            s,
            " id {} inner_id {} inner_idx {} ({}-byte def)",
            l.id, l.inner_id, l.inner_idx, l.def_size
        );
    }
    if let Some(ops) = &m.struct_ops {
        let funcs: Vec<String> = ops
            .funcs
            .iter()
            .map(|f| format!("{}={}", f.member, f.program))
            .collect();
        let _ = write!(
            s,
            " struct {}{} {}",
            ops.type_name,
            if ops.link { " (link)" } else { "" },
            funcs.join(" ")
        );
    }
    s
}

fn to_text(obj: &Object, programs: &[&Program]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "endian: {:?}  license: {}  version: {}",
        obj.endian,
        obj.license.as_deref().unwrap_or("-"),
        obj.kernel_version.map_or("-".into(), |v| format!("{v:#x}"))
    );
    let _ = writeln!(s, "\nprograms:");
    for p in programs {
        if let Some(e) = &p.error {
            let _ = writeln!(
                s,
                "  {:<20} section {:<28} type {:<16} ERROR: {e}",
                p.name,
                p.section,
                p.kind.prog_type.name(),
            );
            continue;
        }
        let _ = writeln!(
            s,
            "  {:<20} section {:<28} type {:<16} {} insns, {} function{}{}",
            p.name,
            p.section,
            p.kind.prog_type.name(),
            p.insns.len(),
            p.functions.len(),
            if p.functions.len() == 1 { "" } else { "s" },
            match p.poisoned.len() {
                0 => String::new(),
                n => format!(", {n} poisoned by CO-RE"),
            }
        );
    }
    let _ = writeln!(s, "\nmaps:");
    for (i, m) in obj.maps.iter().enumerate() {
        let _ = write!(
            s,
            "  {i:>3} {:<24} {:<22} key {:<4} value {:<6} entries {:<6} flags {:#x}",
            m.name,
            m.type_name(),
            m.key_size,
            m.value_size,
            m.max_entries,
            m.map_flags
        );
        if let Some(inner) = &m.inner {
            let _ = write!(
                s,
                " inner {}({}/{})",
                inner.type_name(),
                inner.key_size,
                inner.value_size
            );
        }
        if !m.initial.is_empty() {
            let v: Vec<String> = m
                .initial
                .iter()
                .map(|(k, v)| format!("[{k}]={}", init_text(obj, v)))
                .collect();
            let _ = write!(s, " values {}", v.join(" "));
        }
        let _ = write!(s, "{}", extra_text(m));
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "\nglobals:");
    for d in &obj.data {
        let _ = writeln!(
            s,
            "  {:<24} {:?} {} bytes (map {})",
            d.name, d.kind, d.size, d.map_index
        );
    }
    for p in programs {
        let _ = writeln!(s, "\nDisassembly of {} (section {}):", p.name, p.section);
        if let Some(e) = &p.error {
            let _ = writeln!(s, "; not loaded: {e}");
            continue;
        }
        for e in &p.externs {
            let _ = writeln!(
                s,
                "; unresolved {:?} {} at pc {} (section {} offset {:#x})",
                e.kind, e.name, e.pc, e.section, e.offset
            );
        }
        let mut line_i = 0;
        let mut shown: Option<(&str, u32)> = None;
        for (pc, insn) in p.insns.iter().enumerate() {
            if let Some(f) = p.functions.iter().find(|f| f.start == pc) {
                let _ = writeln!(s, "\n<{}>:", f.name);
            }
            while let Some(l) = p.line_info.get(line_i).filter(|l| l.pc <= pc) {
                // Like `llvm-objdump -S`: a source line once per change of line.
                if l.pc == pc && shown != Some((l.file.as_str(), l.line)) {
                    let _ = writeln!(s, "; {}  [{}:{}:{}]", l.text.trim(), l.file, l.line, l.col);
                    shown = Some((l.file.as_str(), l.line));
                }
                line_i += 1;
            }
            if *insn == Insn::LddwHigh {
                continue;
            }
            if let Some(poison) = p.poisoned_at(pc) {
                let _ = writeln!(s, "; poisoned: {poison}");
            }
            let _ = writeln!(s, "{pc:>6}: {}", insn_text(obj, p, pc, insn));
        }
    }
    s
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn to_json(obj: &Object, programs: &[&Program]) -> Value {
    json!({
        "endian": format!("{:?}", obj.endian).to_lowercase(),
        "license": obj.license,
        "version": obj.kernel_version,
        "programs": programs.iter().map(|p| json!({
            "name": p.name,
            "section": p.section,
            "type": p.kind.prog_type.name(),
            "attach_type": p.kind.attach_type,
            "attach_to": p.kind.attach_to,
            "insns": p.insns.len(),
            "functions": p.functions.iter().map(|f| json!({
                "name": f.name, "section": f.section, "start": f.start, "len": f.len,
            })).collect::<Vec<_>>(),
            "error": p.error.as_ref().map(|e| e.to_string()),
            "core_relocations": p.core_relos,
            "poisoned": p.poisoned.iter().map(|x| json!({
                "pc": x.pc, "section": x.section, "offset": x.offset, "kind": x.kind,
                "access": x.access, "type": x.type_name, "reason": x.reason,
            })).collect::<Vec<_>>(),
            "externs": p.externs.iter().map(|e| json!({
                "name": e.name, "kind": format!("{:?}", e.kind).to_lowercase(), "pc": e.pc,
                "section": e.section, "offset": e.offset,
            })).collect::<Vec<_>>(),
            "disassembly": p.insns.iter().enumerate()
                .filter(|(_, i)| **i != Insn::LddwHigh)
                .map(|(pc, i)| {
                    let line = p.line_info.iter().find(|l| l.pc == pc);
                    json!({
                        "pc": pc,
                        "text": insn_text(obj, p, pc, i),
                        "map": map_ref(obj, i),
                        "source": line.map(|l| json!({
                            "file": l.file, "line": l.line, "col": l.col, "text": l.text,
                        })),
                    })
                }).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "maps": obj.maps.iter().map(|m| json!({
            "name": m.name,
            "origin": format!("{:?}", m.origin),
            "type": m.type_name(),
            "type_id": m.map_type,
            "key_size": m.key_size,
            "value_size": m.value_size,
            "max_entries": m.max_entries,
            "flags": m.map_flags,
            "numa_node": m.numa_node,
            "map_extra": m.map_extra,
            "pinning": m.pinning,
            "inner": m.inner.as_ref().map(|i| json!({
                "type": i.type_name(), "key_size": i.key_size,
                "value_size": i.value_size, "max_entries": i.max_entries,
            })),
            "initial": m.initial.iter().map(|(k, v)| json!([k, init_text(obj, v)])).collect::<Vec<_>>(),
            "data": hex(&m.data),
            "legacy": m.legacy.as_ref().map(|l| json!({
                "def_size": l.def_size, "id": l.id, "inner_id": l.inner_id, "inner_idx": l.inner_idx,
            })),
            "struct_ops": m.struct_ops.as_ref().map(|o| json!({
                "type": o.type_name, "link": o.link,
                "funcs": o.funcs.iter().map(|f| json!({
                    "member": f.member, "offset": f.offset, "program": f.program,
                })).collect::<Vec<_>>(),
            })),
        })).collect::<Vec<_>>(),
        "globals": obj.data.iter().map(|d| json!({
            "name": d.name, "kind": format!("{:?}", d.kind), "size": d.size, "map": d.map_index,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Object {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../testsuite/fixtures/elf")
            .join(name);
        Object::parse(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn text_lists_programs_maps_globals_and_source() {
        let obj = fixture("globals.o");
        let progs: Vec<&Program> = obj.programs.iter().collect();
        let t = to_text(&obj, &progs);
        assert!(t.contains("license: Dual BSD/GPL  version: 0x50a00"), "{t}");
        assert!(t.contains("use_globals"), "{t}");
        assert!(t.contains("legacy_hash"), "{t}");
        assert!(t.contains(".rodata.str1.1"), "{t}");
        assert!(
            t.contains("Disassembly of kp (section kprobe/do_sys_open):"),
            "{t}"
        );
        assert!(t.contains("; counter++;  [./globals.c:"), "{t}");
        // Map references name the map and the offset into its value.
        assert!(t.contains("= map[legacy_array] ll"), "{t}");
        assert!(t.contains("= map_value[.data]+"), "{t}");
    }

    #[test]
    fn json_has_every_section() {
        let obj = fixture("calls.o");
        let progs: Vec<&Program> = obj.programs.iter().collect();
        let j = to_json(&obj, &progs);
        assert_eq!(j["programs"].as_array().unwrap().len(), 3);
        assert_eq!(j["programs"][0]["name"], "pure_sum");
        assert_eq!(j["programs"][0]["type"], "xdp");
        let funcs: Vec<&str> = j["programs"][0]["functions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(funcs, ["pure_sum", "sum_to", "square"]);
        assert!(j["programs"][0]["disassembly"][0]["source"]["line"]
            .as_u64()
            .is_some());
    }
}
