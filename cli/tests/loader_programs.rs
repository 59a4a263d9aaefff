//! The CLI on objects whose programs do not all load, on poisoned CO-RE
//! instructions, on libbpf's `.kconfig` values (`--kconfig-host`), and on
//! programs `compile` cannot bind.

mod common;

use bpfc_testsuite::skip;
use common::{
    bpfc, elf_fixture as fixture, one_line_error as error, scratch as tmp, success as stdout,
};

#[test]
fn a_broken_program_is_reported_and_the_other_stays_usable() {
    let obj = fixture("one_broken.o");
    // dump: the broken one marked with its error, the good one listed.
    let text = stdout(&bpfc(&["dump", &obj]));
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("broken "))
        .unwrap();
    assert!(
        line.contains("ERROR: section syscall offset")
            && line.contains("extern CONFIG_BPFC_NO_SUCH_OPTION"),
        "{line}"
    );
    assert!(text.contains("; not loaded: section syscall"), "{text}");
    assert!(
        text.contains("Disassembly of good (section syscall):"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&bpfc(&["dump", "--json", &obj]))).unwrap();
    let progs = json["programs"].as_array().unwrap();
    let by = |n: &str| progs.iter().find(|p| p["name"] == n).unwrap();
    assert!(by("broken")["error"]
        .as_str()
        .unwrap()
        .contains("CONFIG_BPFC_NO_SUCH_OPTION"));
    assert!(by("good")["error"].is_null());
    assert!(by("good")["disassembly"].as_array().unwrap().len() > 2);
    // run, disasm and compile work on the good one.
    assert!(stdout(&bpfc(&["run", &obj, "--program", "good"])).starts_with("Return value: 42,"));
    assert!(stdout(&bpfc(&[
        "run",
        &obj,
        "--program",
        "good",
        "--engine",
        "interp"
    ]))
    .starts_with("Return value: 42,"));
    assert!(stdout(&bpfc(&["disasm", &obj, "--program", "good"])).contains("exit"));
    let out = tmp("good.o");
    stdout(&bpfc(&["compile", &obj, "--program", "good", "-o", &out]));
    assert!(std::fs::read(&out).unwrap().starts_with(b"\x7fELF"));
    // ... and fail, naming the program and the extern, on the broken one.
    for cmd in ["run", "compile", "disasm"] {
        let mut args = vec![cmd, obj.as_str(), "--program", "broken"];
        if cmd == "compile" {
            args.extend(["-o", out.as_str()]);
        }
        let e = error(&bpfc(&args));
        assert!(
            e.contains("program broken") && e.contains("extern CONFIG_BPFC_NO_SUCH_OPTION"),
            "{cmd}: {e}"
        );
    }
    // disasm of the whole object: the good listing, then the error, status 1.
    let all = bpfc(&["disasm", &obj]);
    assert!(String::from_utf8_lossy(&all.stdout).contains("good (section syscall):"));
    let e = error(&all);
    assert!(e.contains("program broken"), "{e}");
    // With a value for the option, nothing is broken.
    let fixed: serde_json::Value = serde_json::from_str(&stdout(&bpfc(&[
        "dump",
        "--json",
        &obj,
        "--kconfig",
        "CONFIG_BPFC_NO_SUCH_OPTION=3",
    ])))
    .unwrap();
    assert!(fixed["programs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["error"].is_null()));
}

#[test]
fn a_reached_poisoned_instruction_names_its_relocation() {
    let vmlinux = "/sys/kernel/btf/vmlinux";
    if !std::path::Path::new(vmlinux).exists() {
        skip(
            "a_reached_poisoned_instruction_names_its_relocation",
            "no kernel BTF",
        );
        return;
    }
    let obj = fixture("core_poison.o");
    let zero = tmp("zero.bin");
    let one = tmp("one.bin");
    std::fs::write(&zero, 0u32.to_le_bytes()).unwrap();
    std::fs::write(&one, 1u32.to_le_bytes()).unwrap();
    for engine in ["jit", "interp"] {
        // The verifier rejects the reachable poisoned call, as the kernel
        // does; what is tested here is the engines' report when one runs.
        let base = [
            "run",
            &obj,
            "--no-verify",
            "--btf",
            vmlinux,
            "--engine",
            engine,
            "--mem",
        ];
        let ok = stdout(&bpfc(&[&base[..], &[zero.as_str()]].concat()));
        assert!(ok.starts_with("Return value: 7,"), "{engine}: {ok}");
        let e = error(&bpfc(&[&base[..], &[one.as_str()]].concat()));
        for part in [
            "reached an instruction whose CO-RE relocation could not be applied",
            "CO-RE byte_off relocation, access \"0:0\" on struct task_struct___o",
            "no matching field in the target BTF",
            "core_poison.c:",
        ] {
            assert!(e.contains(part), "{engine}: {e:?} lacks {part:?}");
        }
    }
    // dump marks it.
    let text = stdout(&bpfc(&["dump", &obj, "--btf", vmlinux]));
    assert!(text.contains("1 poisoned by CO-RE"), "{text}");
    assert!(
        text.contains("; poisoned: CO-RE byte_off relocation"),
        "{text}"
    );
    assert!(text.contains("call 0xbad2310"), "{text}");
}

/// `LINUX_KERNEL_VERSION` of the running kernel, computed here from its
/// release as libbpf does (without Ubuntu's or Debian's version strings,
/// which this test does not expect).
fn host_version() -> u64 {
    let r = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let n: Vec<u64> = r
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|x| x.parse().unwrap())
        .collect();
    (n[0] << 16) + (n[1] << 8) + n[2].min(255)
}

fn kconfig_image(args: &[&str]) -> Vec<u8> {
    let json: serde_json::Value = serde_json::from_str(&stdout(&bpfc(args))).unwrap();
    let m = json["maps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == ".kconfig")
        .unwrap();
    assert!(
        json["programs"][0]["error"].is_null(),
        "{}",
        json["programs"][0]["error"]
    );
    let hex = m["data"].as_str().unwrap();
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn u32_at(b: &[u8], off: usize) -> u64 {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap()) as u64
}

#[test]
fn libbpf_virtual_externs_default_and_from_the_host() {
    let obj = fixture("kconfig_linux.o");
    // In name order, 8 bytes apart: CONFIG_BPFC_ABSENT (weak: 0), CONFIG_HZ,
    // LINUX_BPFC_UNKNOWN (weak: 0), LINUX_HAS_BPF_COOKIE,
    // LINUX_HAS_SYSCALL_WRAPPER, LINUX_KERNEL_VERSION.
    let d = kconfig_image(&["dump", "--json", &obj]);
    assert_eq!(
        (
            u32_at(&d, 0),
            u32_at(&d, 8),
            u32_at(&d, 16),
            d[24],
            d[32],
            u32_at(&d, 40)
        ),
        (0, 250, 0, 1, 1, 0x060800)
    );
    let h = kconfig_image(&["dump", "--json", "--kconfig-host", &obj]);
    let config = std::process::Command::new("sh")
        .arg("-c")
        .arg("zcat /proc/config.gz 2>/dev/null || cat /boot/config-$(uname -r)")
        .output()
        .unwrap();
    let config = String::from_utf8_lossy(&config.stdout).into_owned();
    match config.lines().find_map(|l| l.strip_prefix("CONFIG_HZ=")) {
        Some(hz) => assert_eq!(u32_at(&h, 8), hz.parse::<u64>().unwrap()),
        None => skip(
            "libbpf_virtual_externs_default_and_from_the_host",
            "no kernel configuration to compare CONFIG_HZ with",
        ),
    }
    let kallsyms = std::fs::read_to_string("/proc/kallsyms").unwrap();
    let wrapper = kallsyms.lines().any(|l| l.ends_with(" __x64_sys_bpf"));
    assert_eq!(u32_at(&h, 0), 0);
    assert_eq!(u32_at(&h, 16), 0);
    assert_eq!(h[24], (host_version() >= 0x050f00) as u8);
    if cfg!(target_arch = "x86_64") {
        assert_eq!(h[32], wrapper as u8);
    }
    assert_eq!(u32_at(&h, 40), host_version());
    // --kconfig still overrides the host's values.
    let o = kconfig_image(&[
        "dump",
        "--json",
        "--kconfig-host",
        "--kconfig",
        "CONFIG_HZ=1000",
        &obj,
    ]);
    assert_eq!(u32_at(&o, 8), 1000);
}

#[test]
fn compile_binds_maps_and_refuses_kernel_symbols() {
    let out = tmp("refused.o");
    // Maps, global data, .kconfig values and callbacks compile now: the
    // object carries its maps' table and descriptor.
    for (fixture_name, program) in [
        ("globals.o", Some("use_globals")),
        ("kconfig.o", None),
        ("calls.o", Some("with_loop")),
    ] {
        let _ = std::fs::remove_file(&out);
        let f = fixture(fixture_name);
        let mut args = vec!["compile", f.as_str(), "-o", out.as_str()];
        if let Some(p) = program {
            args.extend(["--program", p]);
        }
        stdout(&bpfc(&args));
        assert!(std::fs::read(&out).unwrap().starts_with(b"\x7fELF"));
    }
    // A kfunc cannot be bound: the program, the extern, and a hint.
    let e = error(&bpfc(&["compile", &fixture("ksym.o"), "-o", &out]));
    for part in ["program uses_kfunc", "bpf_task_acquire", "--program"] {
        assert!(e.contains(part), "{e:?} lacks {part:?}");
    }
}
