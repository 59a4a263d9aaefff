//! The CLI on ELF objects: a bad `--btf` is blamed on itself, ambiguous
//! program names list the candidates, kernel externs fail only the program
//! that uses them, programs with global data and maps run, `--kconfig`
//! overrides reach the `.kconfig` map, and dumps name maps and offsets.

mod common;

use bpfc_compiler::loader::{self, LoadOptions};
use common::{
    bpfc, elf_fixture as fixture, one_line_error as error, scratch_file as tmp, success as stdout,
};
use std::path::PathBuf;

#[test]
fn a_bad_btf_file_is_named_not_the_object() {
    let obj = fixture("core_run.o");
    let garbage = tmp("garbage.btf", b"definitely not BTF");
    let e = error(&bpfc(&["dump", "--btf", &garbage, &obj]));
    assert!(
        e.starts_with(&format!(
            "bpfc: error: --btf {garbage}: raw BTF offset 0x0: bad magic"
        )),
        "{e}"
    );
    assert!(!e.contains("core_run.o"), "{e}");
    // An ELF file without .BTF (the bpfc binary itself).
    let exe = env!("CARGO_BIN_EXE_bpfc");
    let e = error(&bpfc(&["dump", "--btf", exe, &obj]));
    assert!(
        e.contains(&format!(
            "--btf {exe}: section .BTF offset 0x0: the ELF file has no .BTF section"
        )),
        "{e}"
    );
    // An ELF file whose .BTF is broken: the error names that section.
    let mut target = std::fs::read(fixture("core_run_target.o")).unwrap();
    let at = {
        use object::{Object as _, ObjectSection as _};
        let f = object::File::parse(&*target).unwrap();
        f.section_by_name(".BTF").unwrap().file_range().unwrap().0 as usize
    };
    target[at + 4..at + 8].copy_from_slice(&8u32.to_le_bytes());
    let bad = tmp("bad-btf.o", &target);
    let e = error(&bpfc(&["dump", "--btf", &bad, &obj]));
    assert!(
        e.contains(&format!("--btf {bad}: .BTF offset 0x4: header length 8")),
        "{e}"
    );
    // Good ELF and raw targets load.
    stdout(&bpfc(&[
        "dump",
        "--btf",
        &fixture("core_run_target.o"),
        &obj,
    ]));
    if std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
        stdout(&bpfc(&[
            "dump",
            "--btf",
            "/sys/kernel/btf/vmlinux",
            &fixture("core_vmlinux.o"),
        ]));
    }
}

#[test]
fn a_section_with_several_programs_is_ambiguous() {
    let e = error(&bpfc(&[
        "run",
        "--program",
        "syscall",
        &fixture("core_run.o"),
    ]));
    assert!(e.contains("section syscall holds 3 programs"), "{e}");
    assert!(e.contains("core_values, core_ids, core_read"), "{e}");
    let e = error(&bpfc(&["dump", "--program", "xdp", &fixture("calls.o")]));
    assert!(e.contains("choose one of pure_sum, pure_fib"), "{e}");
    // A section with one program still selects it.
    stdout(&bpfc(&[
        "dump",
        "--program",
        "classifier",
        &fixture("calls.o"),
    ]));
}

#[test]
fn kernel_externs_fail_only_their_program() {
    let obj = fixture("ksym.o");
    let e = error(&bpfc(&["run", "--program", "uses_kfunc", &obj]));
    for part in [
        "section tp_btf/sched_switch offset 0x8",
        "extern bpf_task_acquire",
        "program uses_kfunc at instruction 1",
    ] {
        assert!(e.contains(part), "{e} lacks {part}");
    }
    let interp = stdout(&bpfc(&[
        "run",
        "--engine",
        "interp",
        "--program",
        "ksym_pure",
        &obj,
    ]));
    let jit = stdout(&bpfc(&["run", "--program", "ksym_pure", &obj]));
    // ksym.c: r = r * 3 + i for i in 1..=6.
    let want = (1..=6).fold(0u32, |r, i| r * 3 + i);
    for out in [interp, jit] {
        assert!(out.starts_with(&format!("Return value: {want},")), "{out}");
    }
    let dump = stdout(&bpfc(&["dump", &obj]));
    assert!(dump.contains("call kfunc[bpf_task_acquire]"), "{dump}");
    assert!(dump.contains("call kfunc[bpf_task_release]"), "{dump}");
    assert!(dump.contains("= ksym[bpf_prog_active] ll"), "{dump}");
}

#[test]
fn global_data_and_maps_run_in_both_engines() {
    // use_globals (globals.c): counter 7 -> 8, zeroed += threshold (42),
    // bss_arr[1] = big_data[2] + foo_var = 3 + 99; returns counter + zeroed.
    let obj = fixture("globals.o");
    // A socket filter runs on a packet (its contents do not matter here).
    let packet = tmp("globals-packet", &[0u8; 64]);
    for engine in ["jit", "interp"] {
        let out_json = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("object-cli-globals-{engine}.json"));
        let out = bpfc(&[
            "run",
            "--program",
            "use_globals",
            "--data-in",
            &packet,
            "--engine",
            engine,
            "--maps-out",
            out_json.to_str().unwrap(),
            &obj,
        ]);
        let text = stdout(&out);
        assert!(
            text.starts_with("Return value: 50, duration"),
            "{engine}: {text}"
        );
        // Each printk is a trace line; the string literal came from .rodata.str1.1.
        let trace = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(trace, "greet hello, bpfc 8\nliteral 42\n", "{engine}");
        let maps: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out_json).unwrap()).unwrap();
        let word = |map: &str, off: usize, len: usize| -> u64 {
            let v = maps[map][0]["value"].as_array().unwrap();
            v[off..off + len].iter().rev().fold(0, |acc, b| {
                acc << 8 | u64::from_str_radix(&b.as_str().unwrap()[2..], 16).unwrap()
            })
        };
        // Where each variable is in .bss: its ELF symbol's value (the
        // object's BTF leaves offsets for the loader to fill in).
        let bytes = std::fs::read(&obj).unwrap();
        let elf = object::File::parse(&*bytes).unwrap();
        let at = |var: &str| {
            use object::{Object as _, ObjectSymbol as _};
            elf.symbols()
                .find(|s| s.name() == Ok(var))
                .unwrap()
                .address() as usize
        };
        assert_eq!(word(".bss", at("zeroed"), 4), 42, "{engine}");
        assert_eq!(word(".bss", at("bss_arr") + 8, 8), 102, "{engine}");
        assert_eq!(maps["legacy_hash"], serde_json::json!([]), "{engine}");
    }
}

#[test]
fn dump_names_maps_and_value_offsets() {
    let obj = fixture("globals.o");
    let j: serde_json::Value =
        serde_json::from_str(&stdout(&bpfc(&["dump", "--json", &obj]))).unwrap();
    let mut named = 0;
    for p in j["programs"].as_array().unwrap() {
        for i in p["disassembly"].as_array().unwrap() {
            let Some(m) = i["map"].as_object() else {
                continue;
            };
            let name = m["name"].as_str().unwrap();
            let text = i["text"].as_str().unwrap();
            let want = match m["offset"].as_u64() {
                Some(off) => format!("= map_value[{name}]+{off} ll"),
                None => format!("= map[{name}] ll"),
            };
            assert!(text.ends_with(&want), "{text} vs {want}");
            named += 1;
        }
    }
    assert!(named >= 8, "only {named} map references");
    // A non-zero value offset shows.
    let text = stdout(&bpfc(&["dump", &obj]));
    assert!(
        text.lines().any(|l| l.contains("map_value[.data]+8 ll")),
        "{text}"
    );
}

#[test]
fn kconfig_overrides_reach_the_kconfig_map() {
    let obj = fixture("kconfig.o");
    let image = |args: &[&str]| -> String {
        let mut a = vec!["dump", "--json"];
        a.extend_from_slice(args);
        a.push(&obj);
        let j: serde_json::Value = serde_json::from_str(&stdout(&bpfc(&a))).unwrap();
        j["maps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == ".kconfig")
            .unwrap()["data"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let mut opts = LoadOptions::default();
    opts.kconfig.insert("CONFIG_HZ".into(), 1000);
    let lib = loader::load(&std::fs::read(&obj).unwrap(), &opts).unwrap();
    let m = &lib.maps[lib.map_index(".kconfig").unwrap()];
    let hex: String = m.data.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(image(&["--kconfig", "CONFIG_HZ=1000"]), hex);
    assert_eq!(image(&["--kconfig", "CONFIG_HZ=0x3e8"]), hex);
    assert_ne!(image(&[]), hex);
    // A malformed flag is a usage error (clap's exit status 2).
    let out = bpfc(&["dump", "--kconfig", "CONFIG_HZ", &obj]);
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("\"CONFIG_HZ\" is not NAME=VALUE"), "{e}");
}

#[test]
fn raw_disasm_shows_pseudo_lddw_offsets_and_local_calls() {
    use bpfc_compiler::isa::{encode_program, CallTarget, Endian, Insn, LddwSrc, Reg};
    let insns = [
        Insn::Lddw {
            dst: Reg::R1,
            src: LddwSrc::MapIdxValue,
            imm: (8u64 << 32) | 3,
        },
        Insn::LddwHigh,
        Insn::Call(CallTarget::Local(1)),
        Insn::Call(CallTarget::Helper(1)),
        Insn::Exit,
        Insn::Exit,
    ];
    let raw = tmp("pseudo.bin", &encode_program(&insns, Endian::Little));
    let out = stdout(&bpfc(&["disasm", &raw]));
    assert!(out.contains("r1 = map_value[#3]+8 ll"), "{out}");
    assert!(out.contains("call pc+1"), "{out}");
    assert!(out.contains("call 0x1"), "{out}");
}
