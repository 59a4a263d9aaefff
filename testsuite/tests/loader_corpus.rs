//! Objects nobody on this project wrote, from Debian packages (xdp-tools and
//! libxdp1, cilium/ebpf's testdata in golang-github-cilium-ebpf-dev, the
//! skeletons embedded in libbpf-tools' binaries) and the project's fixtures
//! rebuilt by GCC (`fixtures/elf/gcc`): every one loads, as compiled and
//! against this machine's kernel BTF, with no program failing but the few
//! listed below with the reason; every loaded instruction matches
//! `llvm-objdump-19 -dr`; and the program lists are those libbpf finds, or
//! where libbpf cannot open the object, those cilium's own tests expect.

mod loader_common;

use bpfc_compiler::loader::{load, Btf, LoadOptions, Object};
use bpfc_testsuite::{skip, tool_or_skip};
use loader_common::{corpus, libbpf_dump, libbpf_programs, CorpusObject, Source};
use std::collections::BTreeMap;

const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// The programs that fail to load, on purpose: (file name, program, what
/// the error says).
const EXPECTED_ERRORS: &[(&str, &str, &str)] = &[
    // `asm("%0 = MY_CONST ll")`: an undefined symbol with no BTF. libbpf
    // refuses the object; cilium leaves the reference for the user to fill.
    ("loader-clang-7-el.elf", "asm_relocation", "extern MY_CONST"),
    ("loader-clang-7-eb.elf", "asm_relocation", "extern MY_CONST"),
    ("loader-clang-9-el.elf", "asm_relocation", "extern MY_CONST"),
    ("loader-clang-9-eb.elf", "asm_relocation", "extern MY_CONST"),
    (
        "loader-clang-14-el.elf",
        "asm_relocation",
        "extern MY_CONST",
    ),
    (
        "loader-clang-14-eb.elf",
        "asm_relocation",
        "extern MY_CONST",
    ),
    ("loader-el.elf", "asm_relocation", "extern MY_CONST"),
    ("loader-eb.elf", "asm_relocation", "extern MY_CONST"),
    // A call to a function declared and never defined (cilium's test
    // expects the program to be unusable until the user appends it).
    ("fwd_decl-el.elf", "call_fwd", "extern fwd"),
    ("fwd_decl-eb.elf", "call_fwd", "extern fwd"),
];

fn file_name(o: &CorpusObject) -> String {
    o.path.file_name().unwrap().to_string_lossy().into_owned()
}

/// Load `o` and check each program error is an expected one; returns the
/// object and the number of poisoned instructions.
fn load_checked(o: &CorpusObject, opts: &LoadOptions) -> (Object, usize) {
    let bytes = std::fs::read(&o.path).unwrap();
    let obj = load(&bytes, opts).unwrap_or_else(|e| panic!("{}: {e}", o.name));
    let file = file_name(o);
    for p in &obj.programs {
        if let Some(e) = &p.error {
            let why = EXPECTED_ERRORS
                .iter()
                .find(|(f, n, _)| *f == file && *n == p.name)
                .unwrap_or_else(|| panic!("{} program {}: {e}", o.name, p.name));
            assert!(e.to_string().contains(why.2), "{} {}: {e}", o.name, p.name);
        }
    }
    for (f, n, _) in EXPECTED_ERRORS.iter().filter(|(f, _, _)| *f == file) {
        let p = obj.program(n).unwrap();
        assert!(
            p.error.is_some(),
            "{} {f} {n} loads now: update EXPECTED_ERRORS",
            o.name
        );
    }
    let poisoned = obj.programs.iter().map(|p| p.poisoned.len()).sum();
    (obj, poisoned)
}

#[test]
fn every_corpus_object_loads() {
    let test = "every_corpus_object_loads";
    let Some(all) = corpus(test) else { return };
    let target = match std::fs::read(VMLINUX) {
        Ok(b) => Some(Btf::parse_target(&b).unwrap()),
        Err(e) => {
            skip(test, &format!("{VMLINUX}: {e}"));
            None
        }
    };
    let mut counts: BTreeMap<Source, (usize, usize, usize)> = BTreeMap::new();
    let mut poisoned_objects = Vec::new();
    for o in &all {
        let (obj, _) = load_checked(o, &LoadOptions::default());
        let c = counts.entry(o.source).or_default();
        c.0 += 1;
        c.1 += obj.programs.len();
        if let Some(t) = &target {
            let opts = LoadOptions {
                target_btf: Some(t.clone()),
                ..Default::default()
            };
            let (moved, poisoned) = load_checked(o, &opts);
            assert_eq!(
                moved.programs.len(),
                obj.programs.len(),
                "{}: the target BTF changed the program list",
                o.name
            );
            c.2 += poisoned;
            if poisoned > 0 {
                poisoned_objects.push(format!("{} ({poisoned})", file_name(o)));
            }
        }
    }
    for (s, (objects, programs, poisoned)) in &counts {
        println!(
            "{s:?}: {objects} objects, {programs} programs, {poisoned} instructions poisoned against {VMLINUX}"
        );
    }
    println!("poisoned in: {}", poisoned_objects.join(", "));
    // Every corpus is there: the packages install what they did when this
    // test was written (xdp-tools 1.3.1, cilium/ebpf 0.9.1, libbpf-tools 0.26).
    assert!(counts[&Source::Xdp].0 >= 40, "{counts:?}");
    assert!(counts[&Source::Cilium].0 >= 36, "{counts:?}");
    assert!(counts[&Source::LibbpfTools].0 >= 61, "{counts:?}");
    assert!(counts[&Source::Gcc].0 >= 16, "{counts:?}");
}

#[test]
fn corpus_instructions_match_llvm_objdump() {
    let test = "corpus_instructions_match_llvm_objdump";
    if !tool_or_skip(test, "llvm-objdump-19", "--version") {
        return;
    }
    let Some(all) = corpus(test) else { return };
    let mut total = 0;
    for o in &all {
        let listing = loader_common::objdump::objdump(&o.path).unwrap();
        let n = loader_common::objdump::check_fixture(&o.path, &listing);
        total += n;
    }
    println!(
        "checked {total} instructions of {} objects against llvm-objdump-19",
        all.len()
    );
    assert!(total > 40_000, "only {total} instructions");
}

/// cilium/ebpf's `TestLoadCollectionSpec` (elf_reader_test.go) expects these
/// programs in every `loader-*.elf`, where libbpf refuses the object (its
/// legacy `maps` section, or `static_fn`, a static function in a program
/// section). bpfc follows libbpf's rule that such a function is not a
/// program (it is a subprogram of the programs that call it), so the list
/// is cilium's without `static_fn`.
const CILIUM_LOADER_PROGRAMS: &[(&str, &str)] = &[
    ("xdp_prog", "xdp"),
    ("no_relocation", "socket"),
    ("asm_relocation", "socket/2"),
    ("data_sections", "socket/3"),
    ("global_fn3", "other"),
    ("anon_const", "socket/4"),
];

/// Why libbpf 1.1 may refuse an object the loader reads.
const LIBBPF_REFUSES: &[&str] = &[
    // Big-endian objects on a little-endian host.
    "endianness mismatch",
    // libbpf 1.0 dropped SEC("maps").
    "legacy map definitions in 'maps' section are not supported",
    // A static function in a program section.
    "is static and not supported",
    // Externs without the BTF libbpf wants (see EXPECTED_ERRORS).
    "failed to find BTF for extern",
    // GCC 12's BTF for an arena's map_extra (no enumerator).
    "attr 'map_extra': expected PTR",
];

fn names(obj: &Object) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = obj
        .programs
        .iter()
        .map(|p| (p.name.clone(), p.section.clone()))
        .collect();
    v.sort();
    v
}

#[test]
fn corpus_program_lists_match_libbpf_and_cilium() {
    let test = "corpus_program_lists_match_libbpf_and_cilium";
    let Some(driver) = libbpf_dump(test) else {
        return;
    };
    let Some(all) = corpus(test) else { return };
    let mut lists: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let (mut by_libbpf, mut by_cilium, mut by_twin) = (0, 0, 0);
    let mut later = Vec::new();
    for o in &all {
        let obj = Object::parse(&std::fs::read(&o.path).unwrap()).unwrap();
        let ours = names(&obj);
        lists.insert(o.path.display().to_string(), ours.clone());
        match libbpf_programs(&driver, &o.path) {
            Ok(mut theirs) => {
                theirs.sort();
                assert_eq!(ours, theirs, "{}: programs differ from libbpf's", o.name);
                by_libbpf += 1;
            }
            Err(why) => {
                assert!(
                    LIBBPF_REFUSES.iter().any(|r| why.contains(r)),
                    "{}: libbpf refuses it for an unexpected reason: {why}",
                    o.name
                );
                later.push(o.clone());
            }
        }
    }
    for o in later {
        let file = file_name(&o);
        let ours = &lists[&o.path.display().to_string()];
        if o.source == Source::Cilium && file.starts_with("loader-") {
            let mut want: Vec<(String, String)> = CILIUM_LOADER_PROGRAMS
                .iter()
                .map(|(n, s)| (n.to_string(), s.to_string()))
                .collect();
            want.sort();
            assert_eq!(
                ours, &want,
                "{}: programs differ from cilium's test",
                o.name
            );
            by_cilium += 1;
            continue;
        }
        // A big-endian object: the same program list as its little-endian twin.
        let twin = o.path.to_string_lossy().replace("-eb.elf", "-el.elf");
        if let Some(twin_list) = lists
            .get(&twin)
            .filter(|_| twin != o.path.to_string_lossy())
        {
            assert_eq!(ours, twin_list, "{}: programs differ from {twin}", o.name);
            by_twin += 1;
            continue;
        }
        // The rest libbpf refuses for reasons listed in LIBBPF_REFUSES;
        // their lists are checked by the fixture tests (clang builds of the
        // same sources have the same programs: `gcc_fixtures_match_clang`).
        println!("NOTE: no program list to compare for {}", o.name);
    }
    println!(
        "program lists: {by_libbpf} objects as libbpf lists them, {by_cilium} as cilium's tests expect, {by_twin} as their little-endian twins"
    );
    assert!(by_libbpf >= 100, "{by_libbpf}");
}
