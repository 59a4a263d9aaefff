//! The LLVM syntax matches llvm-objdump-19: for each object under
//! `fixtures/disasm/` (clang-19 builds of the C files and an llvm-mc-19 build
//! of `extra.s`, see `rebuild.sh`), the instruction text bpfc prints for the
//! raw `.text` bytes (`NAME.bin`) equals the committed `llvm-objdump-19 -d`
//! listing (`NAME.objdump`) line by line, ignoring `<label>` annotations.
//! Where that listing says `<unknown>` or drops the fetch flag of a 32-bit
//! atomic, the `--mcpu=v4` listing (`NAME.objdump-v4`) is the reference.
//! When llvm-objdump-19 is installed the committed listings are also checked
//! against a fresh run on `NAME.o`.
//!
//! bpfc adds the helper's name as a comment after a helper call
//! (`call 0x5 # bpf_ktime_get_ns`); the comparison takes it off after
//! checking it names the kernel's helper of that id, and llvm-mc-19 must
//! read such lines back to the same instructions.

use bpfc_compiler::disasm::{format_insn, Syntax};
use bpfc_compiler::isa::{decode_unvalidated, encode_insn, CallTarget, Endian, Insn, Size};
use bpfc_testsuite::workspace_root;
use object::{Object as _, ObjectSection as _};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const FIXTURES: [&str; 4] = ["basic", "alu32", "v4", "extra"];

fn dir() -> PathBuf {
    workspace_root().join("testsuite/fixtures/disasm")
}

/// One listing line: bytes and instruction text, by slot index.
type Listing = BTreeMap<usize, (Vec<u8>, String)>;

fn parse_listing(text: &str) -> Listing {
    let mut out = Listing::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, '\t');
        let (Some(pc), Some(bytes), Some(insn)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Some(Ok(pc)) = pc.trim().strip_suffix(':').map(str::parse::<usize>) else {
            continue;
        };
        let bytes = bytes
            .split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
            .collect();
        let insn = match insn.rfind(" <") {
            Some(i) if insn.ends_with('>') => &insn[..i],
            _ => insn,
        };
        out.insert(pc, (bytes, insn.to_string()));
    }
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `text` without the helper-name comment bpfc puts after a helper call,
/// after checking that the comment is there exactly when the kernel names
/// the helper, and names it.
fn without_helper_comment<'a>(insn: &Insn, text: &'a str) -> &'a str {
    let name = match insn {
        Insn::Call(CallTarget::Helper(id)) => bpfc_runtime::helpers::kernel_name((*id).into()),
        _ => None,
    };
    match (name, text.split_once(" # ")) {
        (Some(name), Some((insn_text, comment))) => {
            assert_eq!(comment, format!("bpf_{name}"), "{text}");
            insn_text
        }
        (Some(_), None) => panic!("{text:?}: helper call without its name"),
        (None, Some(_)) => panic!("{text:?}: a comment on {insn:?}"),
        (None, None) => text,
    }
}

/// The objdump-v4 spelling is the reference for these (see the module doc).
fn v4_reference(insn: &Insn, default_text: &str) -> bool {
    default_text == "<unknown>"
        || matches!(
            insn,
            Insn::Atomic {
                size: Size::W,
                fetch: true,
                ..
            }
        )
}

#[test]
fn llvm_syntax_matches_llvm_objdump_listings() {
    let mut compared = 0;
    let mut via_v4 = 0;
    let mut named = 0;
    for name in FIXTURES {
        let d = dir();
        let bin = std::fs::read(d.join(format!("{name}.bin"))).expect("fixture .bin");
        let default = parse_listing(&read(&d.join(format!("{name}.objdump"))));
        let v4 = parse_listing(&read(&d.join(format!("{name}.objdump-v4"))));
        let insns =
            decode_unvalidated(&bin, Endian::Little).unwrap_or_else(|e| panic!("{name}.bin: {e}"));
        let shown: Vec<usize> = (0..insns.len())
            .filter(|&pc| insns[pc] != Insn::LddwHigh)
            .collect();
        assert_eq!(
            shown,
            default.keys().copied().collect::<Vec<_>>(),
            "{name}: slots"
        );
        for pc in shown {
            let insn = &insns[pc];
            let (bytes, want) = &default[&pc];
            assert_eq!(
                &bin[pc * 8..pc * 8 + bytes.len()],
                &bytes[..],
                "{name}.bin differs from {name}.objdump at {pc}"
            );
            let full = format_insn(pc, insn, Syntax::Llvm);
            let got = without_helper_comment(insn, &full);
            named += usize::from(got.len() < full.len());
            if v4_reference(insn, want) {
                via_v4 += 1;
                assert_eq!(
                    got, v4[&pc].1,
                    "{name}: instruction {pc} ({insn:?}) vs objdump --mcpu=v4"
                );
            } else {
                assert_eq!(got, want, "{name}: instruction {pc} ({insn:?})");
            }
            compared += 1;
        }
    }
    println!(
        "compared {compared} instructions ({via_v4} against the --mcpu=v4 listing, \
         {named} helper calls named)"
    );
    assert!(compared > 250, "only {compared} instructions compared");
    assert!(named > 0, "no named helper call compared");
}

/// bpfc's LLVM-syntax listing, helper comments included, assembled by
/// llvm-mc-19 gives the instructions back.
#[test]
fn llvm_mc_reads_named_helper_calls_back() {
    let test = "llvm_mc_reads_named_helper_calls_back";
    if !bpfc_testsuite::tool_or_skip(test, "llvm-mc-19", "--version") {
        return;
    }
    let ids = [1, 5, 12, 181, 211, 999, -1];
    let mut insns: Vec<Insn> = ids
        .iter()
        .map(|&id| Insn::Call(CallTarget::Helper(id)))
        .collect();
    insns.push(Insn::Exit);
    let listing: String = insns
        .iter()
        .map(|i| format_insn(0, i, Syntax::Llvm) + "\n")
        .collect();
    assert!(listing.contains("call 0xb5 # bpf_loop\n"), "{listing}");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let src = dir.join(format!("helpers-{}.s", std::process::id()));
    let obj = src.with_extension("o");
    std::fs::write(&src, &listing).unwrap();
    let out = Command::new("llvm-mc-19")
        .args(["-triple", "bpfel", "-filetype=obj", "-o"])
        .arg(&obj)
        .arg(&src)
        .output()
        .expect("run llvm-mc-19");
    assert!(out.status.success(), "llvm-mc-19 on\n{listing}: {out:?}");
    let data = std::fs::read(&obj).unwrap();
    let _ = std::fs::remove_file(&src);
    let _ = std::fs::remove_file(&obj);
    let elf = object::File::parse(&*data).expect("llvm-mc's object");
    let text = elf.section_by_name(".text").expect(".text");
    let mut want = Vec::new();
    for insn in &insns {
        encode_insn(insn, Endian::Little, &mut want);
    }
    assert_eq!(text.data().unwrap(), &want[..]);
}

#[test]
fn committed_listings_match_a_fresh_llvm_objdump_run() {
    let tool = "llvm-objdump-19";
    if !bpfc_testsuite::tool_or_skip(
        "committed_listings_match_a_fresh_llvm_objdump_run",
        tool,
        "--version",
    ) {
        return;
    }
    for name in FIXTURES {
        let obj = dir().join(format!("{name}.o"));
        for (extra, suffix) in [(None, "objdump"), (Some("--mcpu=v4"), "objdump-v4")] {
            let mut cmd = Command::new(tool);
            cmd.arg("-d").args(extra).arg(&obj);
            let out = cmd.output().expect("run llvm-objdump-19");
            assert!(out.status.success(), "{cmd:?}: {out:?}");
            let fresh = parse_listing(&String::from_utf8_lossy(&out.stdout));
            let committed = parse_listing(&read(&dir().join(format!("{name}.{suffix}"))));
            assert!(!fresh.is_empty(), "{cmd:?} printed no instructions");
            assert_eq!(fresh, committed, "{name}.{suffix} is stale: run rebuild.sh");
        }
    }
}
