//! The fixtures built by GCC 12's BPF backend (`fixtures/elf/gcc`, see
//! build.sh) against the same sources built by clang: the same programs,
//! the same maps (including what GCC's BTF loses and DWARF keeps), the same
//! results where a program runs (so calls, callbacks and data references
//! written in binutils' encoding land where clang's do), and GCC's CO-RE
//! access strings relocated against another layout as bpftool reads it.
//! Without BTF, legacy maps load and BTF-defined maps are refused naming
//! -gbtf.

use bpfc_compiler::interp;
use bpfc_compiler::isa::Insn;
use bpfc_compiler::loader::{load, Btf, LoadOptions, MapDef, MapInit, MapOrigin, Object};
use bpfc_runtime::{ExecContext, HelperTable};
use bpfc_testsuite::bpftool;
use bpfc_testsuite::elf_fixture_dir;

fn obj(path: &str) -> Object {
    let p = elf_fixture_dir().join(path);
    Object::parse(&std::fs::read(&p).unwrap()).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn gcc_fixtures() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(elf_fixture_dir().join("gcc"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".o") && !n.starts_with("nobtf_"))
        .collect();
    v.sort();
    v
}

/// What must agree between the two builds of a map (maps of maps by name:
/// the compilers order definitions differently).
fn shape(o: &Object, m: &MapDef) -> String {
    let initial: Vec<(u32, String)> = m
        .initial
        .iter()
        .map(|(k, v)| {
            (
                *k,
                match v {
                    MapInit::Map(i) => o.maps[*i].name.clone(),
                    MapInit::Program(p) => format!("prog {p}"),
                },
            )
        })
        .collect();
    format!(
        "{} {} key {} value {} entries {} flags {:#x} extra {:#x} pin {} numa {} initial {:?} inner {:?} ops {:?}",
        m.name,
        m.type_name(),
        m.key_size,
        m.value_size,
        m.max_entries,
        m.map_flags,
        m.map_extra,
        m.pinning,
        m.numa_node,
        initial,
        m.inner.as_ref().map(|i| (i.type_name(), i.key_size, i.value_size, i.max_entries)),
        m.struct_ops.as_ref().map(|o| (&o.type_name, o.link, &o.funcs)),
    )
}

#[test]
fn gcc_fixtures_match_clang() {
    let all = gcc_fixtures();
    assert!(all.len() >= 16, "{all:?}");
    let mut maps = 0;
    for f in &all {
        let (g, c) = (obj(&format!("gcc/{f}")), obj(f));
        let progs = |o: &Object| {
            let mut v: Vec<(String, String, String)> = o
                .programs
                .iter()
                .map(|p| (p.name.clone(), p.section.clone(), format!("{:?}", p.kind)))
                .collect();
            v.sort();
            v
        };
        assert_eq!(progs(&g), progs(&c), "{f}: programs");
        for p in &g.programs {
            assert_eq!(p.error, None, "gcc/{f} {}", p.name);
        }
        // Map definitions (global data sections are laid out by each compiler).
        let defs = |o: &Object| {
            let mut v: Vec<String> = o
                .maps
                .iter()
                .filter(|m| {
                    matches!(
                        m.origin,
                        MapOrigin::Btf | MapOrigin::Legacy | MapOrigin::StructOps
                    )
                })
                .map(|m| shape(o, m))
                .collect();
            v.sort();
            v
        };
        assert_eq!(defs(&g), defs(&c), "{f}: maps");
        maps += defs(&g).len();
        // The same .kconfig externs.
        let kconfig = |o: &Object| {
            o.maps
                .iter()
                .find(|m| m.origin == MapOrigin::Kconfig)
                .map(|m| m.data.clone())
        };
        assert_eq!(kconfig(&g), kconfig(&c), "{f}: .kconfig");
    }
    // An arena's 64-bit map_extra, which GCC 12's BTF drops, came from DWARF.
    let arena = obj("gcc/maps_extra.o");
    let m = &arena.maps[arena.map_index("m_arena").unwrap()];
    assert_eq!(m.map_extra, 0x1_0000_0000);
    println!(
        "{} GCC objects, {maps} map definitions, as clang's",
        all.len()
    );
}

/// Programs that need no context, maps or helpers: (file, program, result),
/// the results of loader_run.rs for the clang builds.
const PURE: &[(&str, &str, u64)] = &[
    ("calls.o", "pure_sum", 385),
    ("calls.o", "pure_fib", 6765),
    ("static_calls.o", "static_caller", 85),
    ("ksym.o", "ksym_pure", 543),
    ("bigendian.o", "be_pure", 100),
    ("btf_kinds.o", "btf_kinds", 42),
];

#[test]
fn gcc_programs_compute_what_clang_programs_do() {
    for (f, name, want) in PURE {
        for path in [format!("gcc/{f}"), f.to_string()] {
            let o = obj(&path);
            let p = o.program(name).unwrap();
            let got = interp::run(
                &p.insns,
                &mut [],
                &HelperTable::new(),
                &mut ExecContext::new(),
                &interp::Options {
                    endian: o.endian,
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| panic!("{path} {name}: {e}"));
            assert_eq!(got, *want, "{path} {name}");
        }
    }
}

#[test]
fn gcc_callbacks_and_global_calls_land_on_their_functions() {
    // pure_sum calls the global sum_to (GCC: `call` holding its byte offset
    // minus one); with_loop passes loop_cb to bpf_loop (an lddw of .text).
    let o = obj("gcc/calls.o");
    for p in &o.programs {
        for (pc, insn) in p.insns.iter().enumerate() {
            let target = match insn {
                Insn::Call(bpfc_compiler::isa::CallTarget::Local(_)) => insn.branch_target(pc),
                Insn::Lddw {
                    src: bpfc_compiler::isa::LddwSrc::Func,
                    imm,
                    ..
                } => Some(pc as i64 + 1 + *imm as u32 as i32 as i64),
                _ => None,
            };
            if let Some(t) = target {
                assert!(
                    p.functions.iter().any(|f| f.start as i64 == t),
                    "{} pc {pc}: {insn:?} lands at {t}, not a function start ({:?})",
                    p.name,
                    p.functions
                );
            }
        }
    }
    let with_loop = o.program("with_loop").unwrap();
    let names: Vec<&str> = with_loop
        .functions
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names, ["with_loop", "loop_cb"]);
}

#[test]
fn gcc_access_strings_relocate_as_bpftool_lays_out_the_target() {
    if !bpftool::available("gcc_access_strings_relocate_as_bpftool_lays_out_the_target") {
        return;
    }
    let target = bpftool::dump(&elf_fixture_dir().join("gcc_core_target.o"));
    let rec = target.find("STRUCT", "rec").unwrap();
    let inner = target.find("STRUCT", "inner").unwrap();
    let off = |s: u32, m: &str| target.member(s, m).unwrap().1 as i16 / 8;
    let (pid, flags, inn, y) = (
        off(rec, "pid"),
        off(rec, "flags"),
        off(rec, "in"),
        off(inner, "y"),
    );
    let size = target.size_of(rec) as i16;
    let opts = LoadOptions {
        target_btf: Some(
            Btf::parse_target(&std::fs::read(elf_fixture_dir().join("gcc_core_target.o")).unwrap())
                .unwrap(),
        ),
        ..Default::default()
    };
    let o = load(
        &std::fs::read(elf_fixture_dir().join("gcc/gcc_core.o")).unwrap(),
        &opts,
    )
    .unwrap();
    let loads = |name: &str| -> Vec<i16> {
        o.program(name)
            .unwrap()
            .insns
            .iter()
            .filter_map(|i| match i {
                Insn::Ldx { off, .. } => Some(*off),
                _ => None,
            })
            .collect()
    };
    // r->flags, r->pid, r->in.y, r[2].in.y ("80:2:1": 80 bytes, two elements
    // of the local 40-byte struct), as GCC orders the loads.
    assert_eq!(loads("gcc_ptr"), [flags, pid, inn + y, 2 * size + inn + y]);
    // glob.flags ("1"), glob.pid ("0"), glob.in.y ("2:1"): no leading "0:".
    assert_eq!(loads("gcc_object"), [flags, pid, inn + y]);
}

#[test]
fn without_btf_legacy_maps_load_and_btf_maps_name_gbtf() {
    let g = obj("gcc/nobtf_globals.o");
    assert!(g.btf.is_none());
    let mut legacy: Vec<&str> = g
        .maps
        .iter()
        .filter(|m| m.origin == MapOrigin::Legacy)
        .map(|m| m.name.as_str())
        .collect();
    legacy.sort();
    assert_eq!(legacy, ["legacy_array", "legacy_hash"]);
    assert!(g.programs.iter().all(|p| p.error.is_none()));
    let e =
        Object::parse(&std::fs::read(elf_fixture_dir().join("gcc/nobtf_maps_common.o")).unwrap())
            .unwrap_err()
            .to_string();
    assert!(e.contains("section .maps") && e.contains("-gbtf"), "{e}");
}
