//! Map definitions and relocated, linked instructions of every fixture
//! compared with aya-obj 0.3.0's parse of the same object (its
//! `relocate_maps` with each map's bpfc index as the "fd", then
//! `relocate_calls`), for the objects aya-obj can parse.
//!
//! What aya-obj 0.3.0 cannot parse, and why (each listed fixture must fail
//! to parse with that reason, so the list stays true):
//! - `bigendian.o`: it reads BTF in the host's byte order only (InvalidHeader).
//! - `maps_extra.o`: `__array(values, int (void *))` of a prog array (aya
//!   wants pointers to map structs there) and `__ulong` (UnexpectedBtfType).
//! - `core_run.o`: CO-RE relocation kind 12, type_matches (InvalidRelocationKind).
//!
//! aya-obj 0.3.0 leaves `.kconfig` extern loads unrelocated; those are
//! checked to be as compiled, bpfc's values are tested in loader_fixtures.
//! - `core_bad_size.o`, `core_run_target.o`, `ksym.o`: section `syscall`,
//!   `struct_ops.o`: section `struct_ops/...` (InvalidProgramSection).
#![cfg(target_os = "linux")]

use bpfc_compiler::isa::{encode_insn, Endian};
use bpfc_compiler::loader::{MapOrigin, Object, Program};
use bpfc_testsuite::elf_fixtures;
use std::collections::{BTreeMap, HashSet};

/// `BPF_F_MMAPABLE`: bpfc sets it on global data maps as libbpf does; aya does not.
const F_MMAPABLE: u32 = 1 << 10;

/// Fixtures aya-obj 0.3.0 rejects, with a word of its error.
const AYA_CANNOT: [(&str, &str); 12] = [
    ("bigendian.o", "InvalidHeader"),
    ("core_flavors.o", "InvalidRelocationKind { kind: 12 }"),
    (
        "core_poison.o",
        "InvalidProgramSection { section: \"syscall\" }",
    ),
    (
        "gcc_core.o",
        "InvalidProgramSection { section: \"syscall\" }",
    ),
    (
        "gcc_core_target.o",
        "InvalidProgramSection { section: \"syscall\" }",
    ),
    (
        "one_broken.o",
        "InvalidProgramSection { section: \"syscall\" }",
    ),
    ("maps_extra.o", "UnexpectedBtfType"),
    ("core_run.o", "InvalidRelocationKind { kind: 12 }"),
    (
        "core_bad_size.o",
        "InvalidProgramSection { section: \"syscall\" }",
    ),
    (
        "core_run_target.o",
        "InvalidProgramSection { section: \"syscall\" }",
    ),
    ("ksym.o", "InvalidProgramSection { section: \"syscall\" }"),
    (
        "struct_ops.o",
        "InvalidProgramSection { section: \"struct_ops",
    ),
];

fn insn_bytes(i: &aya_obj::generated::bpf_insn) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = i.code;
    b[1] = i.dst_reg() | (i.src_reg() << 4);
    b[2..4].copy_from_slice(&i.off.to_le_bytes());
    b[4..8].copy_from_slice(&i.imm.to_le_bytes());
    b
}

fn compare_maps(path: &str, ours: &Object, aya: &aya_obj::Object) -> usize {
    let mut names: Vec<&String> = aya.maps.keys().collect();
    names.sort();
    for name in &names {
        let a = &aya.maps[*name];
        let what = format!("{path} map {name}");
        let i = ours
            .map_index(name)
            .unwrap_or_else(|| panic!("{what}: missing from bpfc's maps"));
        let m = &ours.maps[i];
        let flags = match m.origin {
            MapOrigin::Global(_) | MapOrigin::Kconfig => m.map_flags & !F_MMAPABLE,
            _ => m.map_flags,
        };
        assert_eq!(
            (m.map_type, m.key_size, m.value_size, m.max_entries, flags),
            (
                a.map_type(),
                a.key_size(),
                a.value_size(),
                a.max_entries(),
                a.map_flags()
            ),
            "{what}"
        );
        assert_eq!(m.map_extra, a.map_extra(), "{what}");
        assert_eq!(m.pinning, a.pinning() as u32, "{what}");
        if let MapOrigin::Global(_) = m.origin {
            // bpfc keeps no bytes for .bss: its value is value_size zeroes.
            let mut image = m.data.clone();
            image.resize(m.value_size as usize, 0);
            assert_eq!(image, a.data(), "{what}");
        }
        match (&m.inner, a.inner()) {
            (Some(mi), Some(ai)) => assert_eq!(
                (mi.map_type, mi.key_size, mi.value_size, mi.max_entries),
                (
                    ai.map_type(),
                    ai.key_size(),
                    ai.value_size(),
                    ai.max_entries()
                ),
                "{what} inner"
            ),
            (None, None) => {}
            (x, y) => panic!("{what}: inner {x:?} vs {:?}", y.is_some()),
        }
    }
    names.len()
}

/// (function name, offset in it) of a program pc, for bpfc's layout.
fn ours_at(p: &Program, pc: i64) -> Option<(String, i64)> {
    p.functions
        .iter()
        .find(|f| pc >= f.start as i64 && pc < (f.start + f.len) as i64)
        .map(|f| (f.name.clone(), pc - f.start as i64))
}

/// Compare one linked program instruction by instruction. aya places
/// callees depth first, bpfc breadth first, so functions are matched by name
/// (aya's layout comes from the func_info it relocates) and call targets
/// compared as (function, offset).
fn compare_program(path: &str, ours: &Object, p: &Program, linked: &aya_obj::Function) -> usize {
    let btf = ours.btf.as_ref().unwrap();
    let mut aya_funcs: Vec<(i64, String)> = linked
        .func_info
        .func_info
        .iter()
        .map(|fi| {
            (
                fi.insn_off as i64,
                btf.get(fi.type_id).unwrap().name.clone(),
            )
        })
        .collect();
    aya_funcs.sort();
    let aya_at = |pc: i64| -> Option<(String, i64)> {
        let i = aya_funcs
            .partition_point(|(s, _)| *s <= pc)
            .checked_sub(1)?;
        let (start, name) = &aya_funcs[i];
        Some((name.clone(), pc - start))
    };
    let what = format!("{path} {}", p.name);
    let mut names: Vec<&str> = p.functions.iter().map(|f| f.name.as_str()).collect();
    let mut theirs: Vec<&str> = aya_funcs.iter().map(|(_, n)| n.as_str()).collect();
    names.sort();
    theirs.sort();
    assert_eq!(names, theirs, "{what}: placed functions {aya_funcs:?}");
    let mut ours_bytes = Vec::new();
    for insn in &p.insns {
        encode_insn(insn, Endian::Little, &mut ours_bytes);
    }
    let mut compared = 0;
    assert_eq!(linked.instructions.len(), p.insns.len(), "{what}: length");
    for f in &p.functions {
        let a_start = aya_funcs.iter().find(|(_, n)| *n == f.name).unwrap().0 as usize;
        for i in 0..f.len {
            let (pc, apc) = (f.start + i, a_start + i);
            let w = format!("{what} {}+{i}", f.name);
            let o: [u8; 8] = ours_bytes[pc * 8..pc * 8 + 8].try_into().unwrap();
            let a = insn_bytes(&linked.instructions[apc]);
            let (osrc, asrc) = (o[1] >> 4, a[1] >> 4);
            let imm = |b: &[u8; 8]| i32::from_le_bytes(b[4..8].try_into().unwrap()) as i64;
            match (o[0], osrc) {
                // Local call or function address: same callee and offset.
                (0x85, 1) | (0x18, 4) => {
                    assert_eq!((a[0], asrc), (o[0], osrc), "{w}");
                    assert_eq!(
                        ours_at(p, pc as i64 + 1 + imm(&o)),
                        aya_at(apc as i64 + 1 + imm(&a)),
                        "{w}: call target"
                    );
                    assert_eq!(o[..4], a[..4], "{w}: opcode, registers, offset");
                }
                // Map by index (bpfc) = map by fd (aya), fd = bpfc's index.
                (0x18, 5) => {
                    assert_eq!((asrc, imm(&a)), (1, imm(&o)), "{w}: map");
                    assert_eq!(o[0], a[0], "{w}");
                }
                // aya-obj 0.3.0 does not resolve .kconfig externs: it leaves
                // the lddw as compiled.
                (0x18, 6) if ours.maps[imm(&o) as usize].origin == MapOrigin::Kconfig => {
                    assert_eq!((asrc, imm(&a)), (0, 0), "{w}: kconfig");
                }
                // Map value: index and offset (the next slot's imm).
                (0x18, 6) => {
                    assert_eq!((asrc, imm(&a)), (2, imm(&o)), "{w}: map value");
                    let next = insn_bytes(&linked.instructions[apc + 1]);
                    assert_eq!(
                        ours_bytes[pc * 8 + 12..pc * 8 + 16],
                        next[4..8],
                        "{w}: value offset"
                    );
                }
                _ if i > 0 && p.insns[pc - 1].slots() == 2 => {
                    // Second lddw slot: the map value case compared it.
                    if !matches!(
                        p.insns[pc - 1],
                        bpfc_compiler::isa::Insn::Lddw {
                            src: bpfc_compiler::isa::LddwSrc::MapIdxValue,
                            ..
                        }
                    ) {
                        assert_eq!(o, a, "{w}");
                    }
                }
                _ => assert_eq!(o, a, "{w}: {:?}", p.insns[pc]),
            }
            compared += 1;
        }
    }
    compared
}

#[test]
fn maps_and_relocated_instructions_match_aya_obj() {
    let mut maps = 0;
    let mut insns = 0;
    let mut parsed = Vec::new();
    for path in elf_fixtures() {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let ours = Object::parse(&bytes).unwrap();
        let cannot = AYA_CANNOT.iter().find(|(f, _)| *f == file);
        let mut aya = match (aya_obj::Object::parse(&bytes), cannot) {
            (Ok(o), None) => o,
            (Err(e), Some((_, why))) => {
                let e = format!("{e:?}");
                assert!(e.contains(why), "{file}: aya-obj fails differently: {e}");
                println!("NOTE: aya-obj 0.3.0 cannot parse {file}: {e}");
                continue;
            }
            (Ok(_), Some(_)) => panic!("{file}: aya-obj parses it now: update AYA_CANNOT"),
            (Err(e), None) => panic!("{file}: aya-obj 0.3.0 cannot parse it: {e:?}"),
        };
        parsed.push(file.clone());
        maps += compare_maps(&file, &ours, &aya);
        let text_sections: HashSet<usize> = aya.functions.keys().map(|(s, _)| *s).collect();
        let fds: BTreeMap<String, i32> = aya
            .maps
            .keys()
            .map(|n| (n.clone(), ours.map_index(n).unwrap() as i32))
            .collect();
        let aya_maps = aya.maps.clone();
        aya.relocate_maps(
            aya_maps.iter().map(|(n, m)| (n.as_str(), fds[n], m)),
            &text_sections,
        )
        .unwrap_or_else(|e| panic!("{file}: aya relocate_maps: {e:?}"));
        // aya-obj also makes programs of static functions in program
        // sections, which libbpf (and bpfc) link as subprograms. Linking
        // one of those as a program rewrites its function in place, so
        // whether a later program gets a callee twice would depend on
        // HashMap order: drop them first, as libbpf would never have them.
        let extra: Vec<String> = aya
            .programs
            .keys()
            .filter(|n| !ours.programs.iter().any(|p| &p.name == *n))
            .cloned()
            .collect();
        for name in &extra {
            assert!(
                ours.programs
                    .iter()
                    .any(|p| p.functions.iter().skip(1).any(|f| &f.name == name)),
                "{file}: aya program {name} is neither a program nor a subprogram of bpfc's"
            );
            aya.programs.remove(name);
        }
        aya.relocate_calls(&text_sections)
            .unwrap_or_else(|e| panic!("{file}: aya relocate_calls: {e:?}"));
        for p in &ours.programs {
            let prog = aya
                .programs
                .get(&p.name)
                .unwrap_or_else(|| panic!("{file}: aya has no program {}", p.name));
            let linked = &aya.functions[&prog.function_key()];
            insns += compare_program(&file, &ours, p, linked);
        }
    }
    println!("compared {maps} maps and {insns} linked instructions with aya-obj: {parsed:?}");
    for must in [
        "calls.o",
        "globals.o",
        "maps.o",
        "maps_common.o",
        "static_calls.o",
        "core.o",
    ] {
        assert!(
            parsed.iter().any(|p| p == must),
            "aya-obj did not parse {must}"
        );
    }
    assert!(maps >= 40, "only {maps} maps compared");
    assert!(insns >= 200, "only {insns} instructions compared");
}
