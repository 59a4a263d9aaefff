//! Map definitions of every fixture against two independent tools:
//! `bpftool btf dump` (the `.maps` datasec variables and their
//! `__uint`/`__type` members; the `.struct_ops*` datasecs) and
//! `llvm-objdump-19 -t` (the map symbols of `maps`, `.maps` and `.struct_ops*`:
//! names in offset order and sizes).

use bpfc_compiler::loader::{MapOrigin, Object};
use bpfc_testsuite::bpftool::{self, RawBtf};
use bpfc_testsuite::{elf_fixtures, tool_or_skip};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// The value of a `__uint(name, N)` member: PTR to an ARRAY of N.
fn uint(b: &RawBtf, type_id: u32) -> Option<u64> {
    let t = b.get(b.skip_mods(type_id));
    if t.kind != "PTR" {
        return None;
    }
    let arr = b.get(b.skip_mods(t.attr("type_id")? as u32));
    (arr.kind == "ARRAY")
        .then(|| arr.attr("nr_elems"))
        .flatten()
}

/// Size of the pointee of a `__type(name, T)` member.
fn pointee_size(b: &RawBtf, type_id: u32) -> u64 {
    let t = b.get(b.skip_mods(type_id));
    assert_eq!(t.kind, "PTR");
    b.size_of(t.attr("type_id").unwrap() as u32)
}

/// (variable name, type id, offset, size) of a datasec.
fn datasec(b: &RawBtf, name: &str) -> Vec<(String, u32, u64, u64)> {
    let Some(id) = b.find("DATASEC", name) else {
        return Vec::new();
    };
    b.get(id)
        .members
        .iter()
        .map(|(_, a)| {
            let var: u32 = a["type_id"].parse().unwrap();
            let v = b.get(var);
            (
                v.name.clone(),
                v.attr("type_id").unwrap() as u32,
                a["offset"].parse().unwrap(),
                a["size"].parse().unwrap(),
            )
        })
        .collect()
}

fn check_btf_maps(file: &str, obj: &Object, b: &RawBtf) -> usize {
    let mut n = 0;
    for (name, ty, _, _) in datasec(b, ".maps") {
        let what = format!("{file} map {name}");
        let m = &obj.maps[obj
            .map_index(&name)
            .unwrap_or_else(|| panic!("{what}: missing"))];
        assert_eq!(m.origin, MapOrigin::Btf, "{what}");
        let st = b.get(b.skip_mods(ty));
        for (member, a) in &st.members {
            let mt: u32 = a["type_id"].parse().unwrap();
            let want = match member.as_str() {
                "type" => (m.map_type as u64, uint(b, mt)),
                "max_entries" => (m.max_entries as u64, uint(b, mt)),
                "map_flags" => (m.map_flags as u64, uint(b, mt)),
                "numa_node" => (m.numa_node as u64, uint(b, mt)),
                "pinning" => (m.pinning as u64, uint(b, mt)),
                "key_size" => (m.key_size as u64, uint(b, mt)),
                "value_size" => (m.value_size as u64, uint(b, mt)),
                "map_extra" => (m.map_extra, uint(b, mt)),
                "key" => (m.key_size as u64, Some(pointee_size(b, mt))),
                "value" => (m.value_size as u64, Some(pointee_size(b, mt))),
                _ => continue,
            };
            // `__ulong` members are enums, not __uint pointers: bpfc's value
            // is checked in loader_fixtures.
            if let (ours, Some(theirs)) = want {
                assert_eq!(ours, theirs, "{what} member {member}");
                n += 1;
            }
        }
    }
    for sec in [".struct_ops", ".struct_ops.link"] {
        for (name, ty, _, size) in datasec(b, sec) {
            let what = format!("{file} struct_ops map {name}");
            let m = &obj.maps[obj
                .map_index(&name)
                .unwrap_or_else(|| panic!("{what}: missing"))];
            let ops = m.struct_ops.as_ref().expect("struct_ops info");
            assert_eq!(
                (m.map_type, m.value_size as u64, m.max_entries, ops.link),
                (26, size, 1, sec == ".struct_ops.link"),
                "{what}"
            );
            assert_eq!(ops.type_name, b.get(b.skip_mods(ty)).name, "{what}");
            // Every program slot is a member of the struct at its offset.
            for f in &ops.funcs {
                let (_, bits) = b.member(ty, &f.member).unwrap();
                assert_eq!(bits / 8, f.offset as u64, "{what} {}", f.member);
            }
            n += 1;
        }
    }
    n
}

/// Symbols of `llvm-objdump -t` by section: (value, size, name).
fn objdump_symbols(path: &Path) -> BTreeMap<String, Vec<(u64, u64, String)>> {
    let out = Command::new("llvm-objdump-19")
        .arg("-t")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut by_section: BTreeMap<String, Vec<(u64, u64, String)>> = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        // 0000000000000000 g     O .maps	0000000000000020 m_hash
        let Some((left, right)) = line.split_once('\t') else {
            continue;
        };
        let Ok(value) = u64::from_str_radix(&left[..16.min(left.len())], 16) else {
            continue;
        };
        let section = left.split_whitespace().last().unwrap().to_string();
        let flags = &left[16..left.len() - section.len()];
        if !flags.contains('O') {
            continue;
        }
        let mut r = right.split_whitespace();
        let size = u64::from_str_radix(r.next().unwrap(), 16).unwrap();
        let name = r.next().unwrap_or("").to_string();
        by_section
            .entry(section)
            .or_default()
            .push((value, size, name));
    }
    for v in by_section.values_mut() {
        v.sort();
    }
    by_section
}

fn check_symbols(
    file: &str,
    obj: &Object,
    syms: &BTreeMap<String, Vec<(u64, u64, String)>>,
) -> usize {
    let mut n = 0;
    for (section, origin) in [
        ("maps", MapOrigin::Legacy),
        (".maps", MapOrigin::Btf),
        (".struct_ops", MapOrigin::StructOps),
        (".struct_ops.link", MapOrigin::StructOps),
    ] {
        let Some(list) = syms.get(section) else {
            continue;
        };
        let names: Vec<&str> = list.iter().map(|(_, _, n)| n.as_str()).collect();
        let ours: Vec<&str> = obj
            .maps
            .iter()
            .filter(|m| {
                m.origin == origin
                    && (origin != MapOrigin::StructOps
                        || m.struct_ops.as_ref().unwrap().link == (section == ".struct_ops.link"))
            })
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(ours, names, "{file} {section}: maps in symbol order");
        for (_, size, name) in list {
            let m = &obj.maps[obj.map_index(name).unwrap()];
            match origin {
                MapOrigin::Legacy => {
                    let def = m.legacy.as_ref().map_or(20, |l| l.def_size as u64);
                    assert_eq!(def, *size, "{file} {name}: definition size");
                }
                MapOrigin::StructOps => {
                    assert_eq!(m.value_size as u64, *size, "{file} {name}: value size")
                }
                _ => {}
            }
            n += 1;
        }
    }
    n
}

/// The relocations of the struct_ops sections as `llvm-objdump -r` lists
/// them: (section, offset, symbol).
fn struct_ops_relocations(path: &Path) -> Vec<(String, u64, String)> {
    let out = Command::new("llvm-objdump-19")
        .arg("-r")
        .arg(path)
        .output()
        .unwrap();
    let mut v = Vec::new();
    let mut section = String::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        if let Some(s) = line.strip_prefix("RELOCATION RECORDS FOR [") {
            section = s.trim_end_matches("]:").to_string();
        } else if section.starts_with(".struct_ops") {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let [off, _, sym] = f.as_slice() {
                if let Ok(off) = u64::from_str_radix(off, 16) {
                    v.push((section.clone(), off, sym.to_string()));
                }
            }
        }
    }
    v
}

#[test]
fn struct_ops_programs_match_llvm_objdump_relocations() {
    if !tool_or_skip(
        "struct_ops_programs_match_llvm_objdump_relocations",
        "llvm-objdump-19",
        "--version",
    ) {
        return;
    }
    let path = bpfc_testsuite::elf_fixture_dir().join("struct_ops.o");
    let obj = Object::parse(&std::fs::read(&path).unwrap()).unwrap();
    let relocs = struct_ops_relocations(&path);
    assert!(relocs.len() >= 4, "{relocs:?}");
    let mut ours = Vec::new();
    for m in &obj.maps {
        let Some(ops) = &m.struct_ops else { continue };
        // Each map's variable starts at 0 of its own section here.
        let sec = if ops.link {
            ".struct_ops.link"
        } else {
            ".struct_ops"
        };
        for f in &ops.funcs {
            ours.push((sec.to_string(), f.offset as u64, f.program.clone()));
        }
    }
    ours.sort();
    let mut want = relocs;
    want.sort();
    assert_eq!(ours, want);
}

#[test]
fn map_definitions_match_bpftool_and_llvm_objdump() {
    if !bpftool::available("map_definitions_match_bpftool_and_llvm_objdump") {
        return;
    }
    if !tool_or_skip(
        "map_definitions_match_bpftool_and_llvm_objdump",
        "llvm-objdump-19",
        "--version",
    ) {
        return;
    }
    let (mut members, mut symbols) = (0, 0);
    for path in elf_fixtures() {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let obj = Object::parse(&std::fs::read(&path).unwrap()).unwrap();
        members += check_btf_maps(&file, &obj, &bpftool::dump(&path));
        symbols += check_symbols(&file, &obj, &objdump_symbols(&path));
    }
    println!("checked {members} map members with bpftool, {symbols} map symbols with llvm-objdump");
    assert!(members >= 100, "only {members} members");
    assert!(symbols >= 40, "only {symbols} symbols");
}
