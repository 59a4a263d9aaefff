//! Every ELF fixture loads, and its programs, maps and global data match what
//! the C sources define.

use bpfc_compiler::isa::{validate, CallTarget, Insn, LddwSrc};
use bpfc_compiler::loader::{GlobalKind, MapInit, MapOrigin, Object, ProgType};
use bpfc_testsuite::{elf_fixture_dir, elf_fixtures};

fn load(name: &str) -> Object {
    let bytes = std::fs::read(elf_fixture_dir().join(name)).unwrap();
    match Object::parse(&bytes) {
        Ok(o) => o,
        Err(e) => panic!("{name}: {e}"),
    }
}

#[test]
fn every_fixture_loads_and_validates() {
    let all = elf_fixtures();
    assert!(all.len() >= 6, "fixtures missing: {all:?}");
    for path in all {
        let bytes = std::fs::read(&path).unwrap();
        let obj = Object::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!obj.programs.is_empty(), "{}", path.display());
        assert!(obj.license.is_some(), "{}", path.display());
        for p in &obj.programs {
            if let Some(e) = &p.error {
                // The fixture made to have one broken program.
                assert!(
                    path.ends_with("one_broken.o") && p.name == "broken",
                    "{} {}: {e}",
                    path.display(),
                    p.name
                );
                continue;
            }
            validate(&p.insns).unwrap_or_else(|e| panic!("{} {}: {e}", path.display(), p.name));
            assert!(
                !p.line_info.is_empty(),
                "{} {} has no line info",
                path.display(),
                p.name
            );
            assert_eq!(
                p.func_info.len(),
                p.functions.len(),
                "{} {}",
                path.display(),
                p.name
            );
            for (pc, insn) in p.insns.iter().enumerate() {
                if let Insn::Lddw { src, imm, .. } = insn {
                    match src {
                        LddwSrc::BtfId => assert!(p.externs.iter().any(|e| e.pc == pc)),
                        LddwSrc::MapIdx => assert!((*imm as usize) < obj.maps.len()),
                        LddwSrc::MapIdxValue => {
                            let m = &obj.maps[(*imm as u32) as usize];
                            assert!((imm >> 32) < m.value_size as u64);
                        }
                        LddwSrc::Imm | LddwSrc::Func => {}
                        other => panic!("unexpected lddw src {other:?}"),
                    }
                }
            }
        }
    }
}

#[test]
fn calls_fixture_links_subprograms() {
    let obj = load("calls.o");
    let names: Vec<&str> = obj.programs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["pure_sum", "pure_fib", "with_loop"]);
    let sum = obj.program("pure_sum").unwrap();
    assert_eq!(sum.kind.prog_type, ProgType::Xdp);
    let fnames: Vec<&str> = sum.functions.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(fnames, ["pure_sum", "sum_to", "square"]);
    // Every local call lands on the start of a placed function.
    for p in &obj.programs {
        for (pc, insn) in p.insns.iter().enumerate() {
            let target = match insn {
                Insn::Call(CallTarget::Local(_)) => insn.branch_target(pc).unwrap(),
                Insn::Lddw {
                    src: LddwSrc::Func,
                    imm,
                    ..
                } => pc as i64 + 1 + (*imm as u32 as i32) as i64,
                _ => continue,
            };
            assert!(
                p.functions.iter().any(|f| f.start as i64 == target),
                "{} pc {pc}: target {target} is not a function start",
                p.name
            );
        }
    }
    let lp = obj.program("with_loop").unwrap();
    assert_eq!(lp.kind.prog_type, ProgType::SchedCls);
    assert!(lp.functions.iter().any(|f| f.name == "loop_cb"));
    assert!(lp.insns.iter().any(|i| matches!(
        i,
        Insn::Lddw {
            src: LddwSrc::Func,
            ..
        }
    )));
    assert!(
        obj.program("xdp").is_err(),
        "two programs in xdp: ambiguous"
    );
    assert_eq!(obj.program("classifier").unwrap().name, "with_loop");
}

#[test]
fn globals_fixture_maps_and_data() {
    let obj = load("globals.o");
    assert_eq!(obj.license.as_deref(), Some("Dual BSD/GPL"));
    assert_eq!(obj.kernel_version, Some(0x050a00));
    let h = &obj.maps[obj.map_index("legacy_hash").unwrap()];
    assert_eq!(h.origin, MapOrigin::Legacy);
    assert_eq!(
        (
            h.map_type,
            h.key_size,
            h.value_size,
            h.max_entries,
            h.map_flags
        ),
        (1, 4, 8, 128, 1)
    );
    let a = &obj.maps[obj.map_index("legacy_array").unwrap()];
    assert_eq!(
        (a.map_type, a.key_size, a.value_size, a.max_entries),
        (2, 4, 16, 4)
    );
    let kinds: Vec<(&str, GlobalKind)> =
        obj.data.iter().map(|d| (d.name.as_str(), d.kind)).collect();
    for (name, kind) in [
        (".data", GlobalKind::Data),
        (".rodata", GlobalKind::Rodata),
        (".bss", GlobalKind::Bss),
        (".data.foo", GlobalKind::Data),
    ] {
        assert!(
            kinds.contains(&(name, kind)),
            "{name} missing from {kinds:?}"
        );
    }
    assert!(
        obj.data.iter().any(|d| d.name.starts_with(".rodata.str")),
        "string literals: {kinds:?}"
    );
    let data = &obj.maps[obj.map_index(".data").unwrap()];
    // int counter = 7 is the first .data variable.
    assert_eq!(&data.data[..4], &7i32.to_le_bytes());
    let foo = &obj.maps[obj.map_index(".data.foo").unwrap()];
    assert_eq!(foo.data, 99i32.to_le_bytes());
    let bss = &obj.maps[obj.map_index(".bss").unwrap()];
    assert!(bss.data.iter().all(|&b| b == 0));
    let p = obj.program("use_globals").unwrap();
    assert_eq!(p.kind.prog_type, ProgType::SocketFilter);
    let uses = |m: usize| {
        p.insns.iter().any(|i| match i {
            Insn::Lddw {
                src: LddwSrc::MapIdx | LddwSrc::MapIdxValue,
                imm,
                ..
            } => (*imm as u32) as usize == m,
            _ => false,
        })
    };
    for name in ["legacy_hash", ".data", ".rodata", ".bss", ".data.foo"] {
        assert!(
            uses(obj.map_index(name).unwrap()),
            "use_globals does not reference {name}"
        );
    }
    let kp = obj.program("kp").unwrap();
    assert_eq!(kp.kind.prog_type, ProgType::Kprobe);
    assert_eq!(kp.kind.attach_to.as_deref(), Some("do_sys_open"));
}

#[test]
fn maps_fixture_btf_maps() {
    let obj = load("maps.o");
    let get = |n: &str| &obj.maps[obj.map_index(n).unwrap_or_else(|| panic!("no map {n}"))];
    let h = get("m_hash");
    assert_eq!(
        (h.map_type, h.key_size, h.value_size, h.max_entries),
        (1, 4, 16, 1024)
    );
    assert!(h.key_type_id.is_some() && h.value_type_id.is_some());
    let lpm = get("m_lpm");
    assert_eq!((lpm.map_type, lpm.key_size, lpm.map_flags), (11, 8, 1));
    assert_eq!(get("m_stack_trace").value_size, 127 * 8);
    assert_eq!(get("m_bloom").map_extra, 3);
    let pinned = get("m_pinned");
    assert_eq!(
        (pinned.pinning, pinned.numa_node, pinned.map_flags),
        (1, 1, 4)
    );
    let aom = get("m_array_of_maps");
    assert_eq!(aom.map_type, 12);
    let inner = aom.inner.as_ref().expect("inner map");
    assert_eq!(
        (
            inner.map_type,
            inner.key_size,
            inner.value_size,
            inner.max_entries
        ),
        (2, 4, 4, 1)
    );
    let ia = obj.map_index("inner_a").unwrap();
    let ib = obj.map_index("inner_b").unwrap();
    assert_eq!(
        aom.initial,
        vec![(0, MapInit::Map(ia)), (2, MapInit::Map(ib))]
    );
    assert!(get("m_hash_of_maps").inner.is_some());
    assert!(get("m_hash_of_maps").initial.is_empty());
    let extra = load("maps_extra.o");
    let get = |n: &str| &extra.maps[extra.map_index(n).unwrap_or_else(|| panic!("no map {n}"))];
    assert_eq!(get("m_arena").map_extra, 0x1_0000_0000);
    assert_eq!(get("m_arena").map_type, 33);
    let progs = get("m_progs");
    assert_eq!(progs.map_type, 3);
    assert_eq!(progs.initial, vec![(1, MapInit::Program("tail_a".into()))]);
    // Every kernel map type from hash (1) to arena (33), the 33 of
    // BPF_MAP_TYPE_* in Linux 6.18, across the three map fixtures.
    let mut types: Vec<u32> = ["maps.o", "maps_extra.o", "struct_ops.o"]
        .into_iter()
        .flat_map(|f| load(f).maps.into_iter().map(|m| m.map_type))
        .collect();
    types.sort();
    types.dedup();
    let want: Vec<u32> = (1..=33).collect();
    assert_eq!(types, want);
}

#[test]
fn static_functions_of_a_program_section_are_subprograms() {
    let obj = load("static_calls.o");
    let names: Vec<&str> = obj.programs.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["static_caller"],
        "static functions are not programs"
    );
    let p = obj.program("static_caller").unwrap();
    let fnames: Vec<(&str, &str)> = p
        .functions
        .iter()
        .map(|f| (f.name.as_str(), f.section.as_str()))
        .collect();
    assert_eq!(
        fnames,
        [
            ("static_caller", "xdp"),
            ("twice_plus", "xdp"),
            ("twice", "xdp")
        ]
    );
    // Each local call lands on a placed function's first instruction.
    let mut calls = 0;
    for (pc, insn) in p.insns.iter().enumerate() {
        if let Insn::Call(CallTarget::Local(_)) = insn {
            let t = insn.branch_target(pc).unwrap() as usize;
            assert!(
                p.functions.iter().any(|f| f.start == t),
                "pc {pc} calls {t}"
            );
            calls += 1;
        }
    }
    assert_eq!(calls, 3);
}

#[test]
fn long_legacy_definitions_keep_the_iproute2_fields() {
    let obj = load("legacy_elf.o");
    let get = |n: &str| &obj.maps[obj.map_index(n).unwrap()];
    let h = get("elf_hash");
    assert_eq!(
        (
            h.origin,
            h.map_type,
            h.key_size,
            h.value_size,
            h.max_entries,
            h.map_flags,
            h.pinning
        ),
        (MapOrigin::Legacy, 1, 4, 8, 64, 1, 2)
    );
    let l = h.legacy.as_ref().expect("a 36-byte definition");
    assert_eq!((l.def_size, l.id, l.inner_id, l.inner_idx), (36, 7, 0, 0));
    let o = get("elf_outer");
    assert_eq!((o.map_type, o.pinning), (12, 1));
    let l = o.legacy.as_ref().unwrap();
    assert_eq!((l.id, l.inner_id, l.inner_idx), (8, 7, 0));
    // The five-field definitions of globals.o have no extra fields.
    let g = load("globals.o");
    assert!(g.maps.iter().all(|m| m.legacy.is_none()));
}

#[test]
fn core_fixture_resolves_against_own_btf() {
    let obj = load("core.o");
    let p = obj.program("core_fields").unwrap();
    assert!(
        p.core_relos >= 10,
        "only {} CO-RE relocations",
        p.core_relos
    );
}

#[test]
fn kconfig_fixture_uses_defaults() {
    let obj = load("kconfig.o");
    let m = &obj.maps[obj.map_index(".kconfig").unwrap()];
    assert_eq!(m.origin, MapOrigin::Kconfig);
    // Sorted by name: CONFIG_BPFC_NOT_A_REAL_OPTION (weak, 0), CONFIG_HZ, LINUX_KERNEL_VERSION.
    assert_eq!(m.data[0], 0);
    assert_eq!(&m.data[8..12], &250i32.to_le_bytes());
    assert_eq!(&m.data[16..20], &0x060800u32.to_le_bytes());
}

#[test]
fn bigendian_fixture() {
    let obj = load("bigendian.o");
    assert_eq!(obj.endian, bpfc_compiler::isa::Endian::Big);
    let data = &obj.maps[obj.map_index(".data").unwrap()];
    assert_eq!(data.data, 0x1122334455667788u64.to_be_bytes());
    let m = &obj.maps[obj.map_index("be_map").unwrap()];
    assert_eq!(
        (m.map_type, m.key_size, m.value_size, m.max_entries),
        (2, 4, 8, 2)
    );
    let p = obj.program("be_pure").unwrap();
    assert_eq!(p.functions.len(), 2);
}

#[test]
fn struct_ops_maps_hold_their_programs() {
    let obj = load("struct_ops.o");
    let get = |n: &str| &obj.maps[obj.map_index(n).unwrap()];
    // struct bpf_dummy_ops: three function pointers, then `unsigned int flags` at 24.
    for (name, link, flags, funcs) in [
        (
            "dummy",
            false,
            0x1234u32,
            vec![("test_1", 0, "test_1"), ("test_2", 8, "test_2")],
        ),
        (
            "dummy_link",
            true,
            0x5678,
            vec![
                ("test_1", 0, "test_1"),
                ("test_sleepable", 16, "test_sleepable"),
            ],
        ),
    ] {
        let m = get(name);
        assert_eq!(m.origin, MapOrigin::StructOps);
        assert_eq!(
            (m.map_type, m.key_size, m.value_size, m.max_entries),
            (26, 4, 32, 1)
        );
        assert_eq!(
            m.map_flags,
            if link { 1 << 13 } else { 0 },
            "{name}: BPF_F_LINK"
        );
        assert_eq!(m.data.len(), 32);
        assert_eq!(&m.data[24..28], &flags.to_le_bytes(), "{name}: image");
        let ops = m.struct_ops.as_ref().unwrap();
        assert_eq!((ops.type_name.as_str(), ops.link), ("bpf_dummy_ops", link));
        let got: Vec<(&str, u32, &str)> = ops
            .funcs
            .iter()
            .map(|f| (f.member.as_str(), f.offset, f.program.as_str()))
            .collect();
        assert_eq!(got, funcs, "{name}");
        for f in &ops.funcs {
            let p = obj.program(&f.program).unwrap();
            assert_eq!(p.kind.prog_type, ProgType::StructOps);
        }
    }
    assert!(obj.program("test_sleepable").unwrap().kind.sleepable);
    assert!(!obj.program("test_1").unwrap().kind.sleepable);
}
