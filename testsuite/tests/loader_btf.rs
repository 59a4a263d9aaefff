//! The BTF parser against `bpftool btf dump file X format raw` for every
//! fixture: type ids, kinds, names, sizes and the member, parameter,
//! enumerator and datasec lines.

use bpfc_compiler::loader::btf::{Btf, TypeKind};
use bpfc_compiler::loader::Object;
use bpfc_testsuite::elf_fixtures;
use std::collections::BTreeMap;
use std::process::Command;

/// Header attributes bpftool prints that we compare.
fn header_attrs(btf: &Btf, id: u32) -> BTreeMap<&'static str, String> {
    let mut m = BTreeMap::new();
    let t = btf.get(id).unwrap();
    match &t.kind {
        TypeKind::Int {
            size, offset, bits, ..
        } => {
            m.insert("size", size.to_string());
            m.insert("bits_offset", offset.to_string());
            m.insert("nr_bits", bits.to_string());
        }
        TypeKind::Array {
            elem,
            index,
            nelems,
        } => {
            m.insert("type_id", elem.to_string());
            m.insert("index_type_id", index.to_string());
            m.insert("nr_elems", nelems.to_string());
        }
        TypeKind::Struct { size, members } | TypeKind::Union { size, members } => {
            m.insert("size", size.to_string());
            m.insert("vlen", members.len().to_string());
        }
        TypeKind::Enum { size, values, .. } | TypeKind::Enum64 { size, values, .. } => {
            m.insert("size", size.to_string());
            m.insert("vlen", values.len().to_string());
        }
        TypeKind::FuncProto { ret, params } => {
            m.insert("ret_type_id", ret.to_string());
            m.insert("vlen", params.len().to_string());
        }
        TypeKind::Datasec { size, vars } => {
            m.insert("size", size.to_string());
            m.insert("vlen", vars.len().to_string());
        }
        TypeKind::Float { size } => {
            m.insert("size", size.to_string());
        }
        TypeKind::DeclTag {
            type_id,
            component_idx,
        } => {
            m.insert("type_id", type_id.to_string());
            m.insert("component_idx", component_idx.to_string());
        }
        k => {
            if let Some(r) = k.referenced() {
                m.insert("type_id", r.to_string());
            }
        }
    }
    m
}

/// The indented lines bpftool prints below a type.
fn sub_lines(btf: &Btf, id: u32) -> Vec<String> {
    let name = |s: &str| {
        if s.is_empty() {
            "(anon)".to_string()
        } else {
            s.to_string()
        }
    };
    match &btf.get(id).unwrap().kind {
        TypeKind::Struct { members, .. } | TypeKind::Union { members, .. } => members
            .iter()
            .map(|m| {
                let mut s = format!(
                    "'{}' type_id={} bits_offset={}",
                    name(&m.name),
                    m.type_id,
                    m.bit_offset
                );
                if m.bitfield_size != 0 {
                    s += &format!(" bitfield_size={}", m.bitfield_size);
                }
                s
            })
            .collect(),
        TypeKind::Enum { values, .. } => values
            .iter()
            .map(|v| format!("'{}' val={}", v.name, v.value))
            .collect(),
        TypeKind::Enum64 { values, signed, .. } => values
            .iter()
            .map(|v| {
                if *signed {
                    format!("'{}' val={}LL", v.name, v.value)
                } else {
                    format!("'{}' val={}ULL", v.name, v.value as u64)
                }
            })
            .collect(),
        TypeKind::FuncProto { params, .. } => params
            .iter()
            .map(|p| format!("'{}' type_id={}", name(&p.name), p.type_id))
            .collect(),
        TypeKind::Datasec { vars, .. } => vars
            .iter()
            .map(|v| {
                format!(
                    "type_id={} offset={} size={} ({} '{}')",
                    v.type_id,
                    v.offset,
                    v.size,
                    btf.get(v.type_id).unwrap().kind.kind_name().to_uppercase(),
                    btf.get(v.type_id).unwrap().name
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn btf_matches_bpftool() {
    if !bpfc_testsuite::bpftool::available("btf_matches_bpftool") {
        return;
    }
    let mut kinds = std::collections::BTreeSet::new();
    let mut compared = 0;
    for path in elf_fixtures() {
        let bytes = std::fs::read(&path).unwrap();
        let obj = Object::parse(&bytes).unwrap();
        let btf = obj.btf.as_ref().expect("fixtures have BTF");
        let out = Command::new("bpftool")
            .args(["btf", "dump", "file"])
            .arg(&path)
            .args(["format", "raw"])
            .output()
            .unwrap();
        assert!(out.status.success(), "bpftool failed on {}", path.display());
        let text = String::from_utf8(out.stdout).unwrap();
        let mut cur: Option<u32> = None;
        let mut subs: Vec<String> = Vec::new();
        let finish = |cur: Option<u32>, subs: &mut Vec<String>| {
            if let Some(id) = cur {
                assert_eq!(&sub_lines(btf, id), subs, "{} type {id}", path.display());
            }
            subs.clear();
        };
        let mut count = 0;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix('[') {
                finish(cur, &mut subs);
                let (id, rest) = rest.split_once("] ").unwrap();
                let id: u32 = id.parse().unwrap();
                let (kind, rest) = rest.split_once(' ').unwrap();
                let t = btf
                    .get(id)
                    .unwrap_or_else(|| panic!("{}: no type {id}", path.display()));
                let what = format!("{} type {id}", path.display());
                assert_eq!(t.kind.kind_name().to_uppercase(), kind, "{what}");
                kinds.insert(kind.to_string());
                let name = rest.split('\'').nth(1).unwrap();
                let ours = if t.name.is_empty() { "(anon)" } else { &t.name };
                assert_eq!(ours, name, "{what}");
                let attrs = header_attrs(btf, id);
                for tok in rest.split_whitespace() {
                    if let Some((k, v)) = tok.split_once('=') {
                        if let Some(ours) = attrs.get(k) {
                            assert_eq!(ours, v.trim_end_matches(','), "{what} {k}");
                        }
                    }
                }
                cur = Some(id);
                count += 1;
            } else if let Some(sub) = line.strip_prefix('\t') {
                subs.push(sub.to_string());
            }
        }
        finish(cur, &mut subs);
        assert_eq!(count + 1, btf.types.len(), "{}", path.display());
        compared += count;
    }
    println!("compared {compared} types with bpftool; kinds: {kinds:?}");
    assert_eq!(kinds.len(), 19, "every BTF kind covered: {kinds:?}");
}
