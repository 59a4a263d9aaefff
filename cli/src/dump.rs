//! `bpfc dump FILE.o`: what the loader sees in an object: programs, maps,
//! global data, then each program's disassembly with its source lines.

use anyhow::Context;
use bpfc_compiler::isa::Insn;
use bpfc_compiler::loader::{load, LoadOptions, MapInit, Object, Program};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The ELF object (clang -target bpf).
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Only this program (name, or a section holding one program).
    #[arg(long)]
    program: Option<String>,
    /// Resolve CO-RE relocations against this BTF (e.g. /sys/kernel/btf/vmlinux).
    #[arg(long)]
    btf: Option<PathBuf>,
}

/// One instruction as text. A placeholder until the disassembler lands.
fn insn_text(_pc: usize, insn: &Insn) -> String {
    format!("{insn:?}")
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let mut opts = LoadOptions::default();
    if let Some(b) = &args.btf {
        opts.target_btf =
            Some(std::fs::read(b).with_context(|| format!("reading {}", b.display()))?);
    }
    let obj = load(&bytes, &opts).with_context(|| format!("loading {}", args.file.display()))?;
    let programs: Vec<&Program> = match &args.program {
        Some(name) => vec![obj.program(name)?],
        None => obj.programs.iter().collect(),
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&obj, &programs))?
        );
    } else {
        print!("{}", to_text(&obj, &programs));
    }
    Ok(())
}

fn init_text(obj: &Object, init: &MapInit) -> String {
    match init {
        MapInit::Map(i) => obj.maps.get(*i).map_or("?".into(), |m| m.name.clone()),
        MapInit::Program(p) => format!("prog {p}"),
    }
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
        let _ = writeln!(
            s,
            "  {:<20} section {:<28} type {:<16} {} insns, {} functions",
            p.name,
            p.section,
            p.kind.prog_type.name(),
            p.insns.len(),
            p.functions.len()
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
        let mut line_i = 0;
        let mut shown: Option<(&str, u32)> = None;
        for (pc, insn) in p.insns.iter().enumerate() {
            if let Some(f) = p.functions.iter().find(|f| f.start == pc) {
                let _ = writeln!(s, "\n<{}>:", f.name);
            }
            while let Some(l) = p.line_info.get(line_i).filter(|l| l.pc <= pc) {
                // Like `llvm-objdump -S`: a source line once per change of line.
                if l.pc == pc && shown != Some((l.file.as_str(), l.line)) {
                    let _ = writeln!(s, "; {}  [{}:{}]", l.text.trim(), l.file, l.line);
                    shown = Some((l.file.as_str(), l.line));
                }
                line_i += 1;
            }
            if *insn == Insn::LddwHigh {
                continue;
            }
            let _ = writeln!(s, "{pc:>6}: {}", insn_text(pc, insn));
        }
    }
    s
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
            "core_relocations": p.core_relos,
            "disassembly": p.insns.iter().enumerate()
                .filter(|(_, i)| **i != Insn::LddwHigh)
                .map(|(pc, i)| {
                    let line = p.line_info.iter().find(|l| l.pc == pc);
                    json!({
                        "pc": pc,
                        "text": insn_text(pc, i),
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
