//! Loaded instructions against `llvm-objdump-19 -dr`: every instruction
//! without a relocation must re-encode to the bytes objdump shows; relocated
//! ones (and local calls, whose offsets change with linking) are checked
//! against the relocation's symbol the way libbpf would resolve it.

use bpfc_compiler::isa::{encode_insn, CallTarget, Insn, LddwSrc};
use bpfc_compiler::loader::{ExternKind, Object, Program};
use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Per section: section slot → (bytes, relocation (type, symbol)).
pub type Listing = BTreeMap<String, BTreeMap<usize, (Vec<u8>, Option<(String, String)>)>>;

pub fn objdump(path: &Path) -> Option<Listing> {
    let out = Command::new("llvm-objdump-19")
        .arg("-dr")
        .arg(path)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "llvm-objdump failed on {}",
        path.display()
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut listing = Listing::new();
    let mut section = String::new();
    let mut last: Option<usize> = None;
    for line in text.lines() {
        if let Some(s) = line.strip_prefix("Disassembly of section ") {
            section = s.trim_end_matches(':').to_string();
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if let [_, _, reloc, sym] = fields.as_slice() {
            let parts: Vec<&str> = reloc.split_whitespace().collect();
            if parts.len() == 2 && parts[1].starts_with("R_BPF") {
                let slot = last.expect("relocation before an instruction");
                let off = usize::from_str_radix(parts[0].trim_end_matches(':'), 16).unwrap();
                assert_eq!(off / 8, slot);
                listing.get_mut(&section).unwrap().get_mut(&slot).unwrap().1 =
                    Some((parts[1].to_string(), sym.trim().to_string()));
                continue;
            }
        }
        if fields.len() >= 3 {
            let addr = fields[0].trim().trim_end_matches(':');
            if let Ok(slot) = addr.parse::<usize>() {
                let bytes: Vec<u8> = fields[1]
                    .split_whitespace()
                    .map(|b| u8::from_str_radix(b, 16).unwrap())
                    .collect();
                listing
                    .entry(section.clone())
                    .or_default()
                    .insert(slot, (bytes, None));
                last = Some(slot);
            }
        }
    }
    Some(listing)
}

/// (section name, section slot) of a program pc.
fn origin(p: &Program, pc: usize) -> (String, usize) {
    let f = p
        .functions
        .iter()
        .find(|f| pc >= f.start && pc < f.start + f.len)
        .unwrap_or_else(|| panic!("{}: pc {pc} outside functions", p.name));
    (
        f.section.clone(),
        f.section_offset as usize / 8 + pc - f.start,
    )
}

/// Check every instruction of every loaded program of `path` against the
/// listing; returns how many were checked. GCC objects (`.comment`) keep a
/// named symbol's value in relocated fields (see the loader's `reloc`).
pub fn check_fixture(path: &Path, listing: &Listing) -> usize {
    let bytes = std::fs::read(path).unwrap();
    let obj = Object::parse(&bytes).unwrap();
    let elf = object::File::parse(&*bytes).unwrap();
    let gcc = elf
        .section_by_name(".comment")
        .and_then(|s| s.data().ok())
        .is_some_and(|d| {
            let t = String::from_utf8_lossy(d);
            t.contains("GCC:") && !t.contains("clang")
        });
    let section_syms: std::collections::BTreeSet<String> = elf
        .sections()
        .filter_map(|s| s.name().ok().map(str::to_string))
        .collect();
    // Symbol name → (section name, value).
    let mut syms = BTreeMap::new();
    for s in elf.symbols() {
        if let (Ok(name), Some(idx)) = (s.name(), s.section_index()) {
            let sec = elf
                .section_by_index(idx)
                .unwrap()
                .name()
                .unwrap()
                .to_string();
            syms.insert(name.to_string(), (sec, s.address()));
        }
    }
    let mut checked = 0;
    for p in obj.programs.iter().filter(|p| p.error.is_none()) {
        for (pc, insn) in p.insns.iter().enumerate() {
            if *insn == Insn::LddwHigh {
                continue;
            }
            let (sec, slot) = origin(p, pc);
            let what = format!("{} {} pc {pc} ({sec} slot {slot})", path.display(), p.name);
            let (want, reloc) = listing[&sec]
                .get(&slot)
                .unwrap_or_else(|| panic!("{what}: not in objdump"));
            let mut got = Vec::new();
            encode_insn(insn, obj.endian, &mut got);
            let orig_imm = {
                let b: [u8; 4] = want[4..8].try_into().unwrap();
                match obj.endian {
                    bpfc_compiler::isa::Endian::Little => i32::from_le_bytes(b),
                    bpfc_compiler::isa::Endian::Big => i32::from_be_bytes(b),
                }
            };
            let target_origin = |target: i64| origin(p, usize::try_from(target).unwrap());
            // The addend of a relocation against `sym` (value `sval`).
            let addend = |sym: &str, sval: u64| -> i64 {
                if gcc && !section_syms.contains(sym) {
                    orig_imm as i64 - sval as i64
                } else {
                    orig_imm as i64
                }
            };
            match (reloc, insn) {
                (None, Insn::Call(CallTarget::Local(_))) => {
                    let t = target_origin(insn.branch_target(pc).unwrap());
                    assert_eq!(
                        t,
                        (sec.clone(), (slot as i64 + orig_imm as i64 + 1) as usize),
                        "{what}"
                    );
                }
                (None, _) => assert_eq!(&got, want, "{what}: {insn:?}"),
                (Some((ty, sym)), Insn::Call(CallTarget::Local(_))) => {
                    assert_eq!(ty, "R_BPF_64_32", "{what}");
                    let (ssec, sval) = syms.get(sym).cloned().unwrap_or((sym.clone(), 0));
                    let t = target_origin(insn.branch_target(pc).unwrap());
                    assert_eq!(
                        t,
                        (ssec, (sval as i64 / 8 + addend(sym, sval) + 1) as usize),
                        "{what}"
                    );
                }
                (Some((ty, sym)), Insn::Lddw { src, imm, .. }) => {
                    assert_eq!(ty, "R_BPF_64_64", "{what}");
                    let (ssec, sval) = syms.get(sym).cloned().unwrap_or((sym.clone(), 0));
                    match src {
                        LddwSrc::Func => {
                            let t = target_origin(pc as i64 + 1 + (*imm as u32 as i32) as i64);
                            assert_eq!(
                                t,
                                (ssec, (sval as i64 + addend(sym, sval)) as usize / 8),
                                "{what}"
                            );
                        }
                        LddwSrc::MapIdx => {
                            // The map's own symbol, or the symbol at the
                            // section offset the relocation names.
                            let at = (sval as i64 + addend(sym, sval)) as u64;
                            let name = &obj.maps[*imm as usize].name;
                            let named = syms.get(name).cloned();
                            assert_eq!(named, Some((ssec.clone(), at)), "{what}: map {name}");
                        }
                        // A __ksym variable: recorded as an unresolved extern.
                        LddwSrc::BtfId => assert!(
                            p.externs.iter().any(|e| e.pc == pc
                                && &e.name == sym
                                && e.kind == ExternKind::Ksym),
                            "{what}: {:?}",
                            p.externs
                        ),
                        LddwSrc::MapIdxValue => {
                            let m = &obj.maps[*imm as u32 as usize];
                            if m.name == ".kconfig" {
                                assert!(
                                    sym.starts_with("CONFIG_") || sym.starts_with("LINUX_"),
                                    "{what}"
                                );
                            } else {
                                assert_eq!(m.name, ssec, "{what}");
                                assert_eq!(
                                    imm >> 32,
                                    (sval as i64 + addend(sym, sval)) as u32 as u64,
                                    "{what}"
                                );
                            }
                        }
                        other => panic!("{what}: unexpected {other:?}"),
                    }
                    // Everything but the immediates and src is unchanged.
                    assert_eq!(got[0], want[0], "{what}");
                }
                (Some((ty, sym)), Insn::Call(CallTarget::Kfunc { .. })) => {
                    // A call to an undefined function: a kfunc, left for
                    // the kernel's BTF and recorded as an extern.
                    assert_eq!(ty, "R_BPF_64_32", "{what}");
                    assert!(!syms.contains_key(sym), "{what}: {sym} is defined");
                    assert!(
                        p.externs
                            .iter()
                            .any(|e| e.pc == pc && &e.name == sym && e.kind == ExternKind::Kfunc),
                        "{what}: {:?}",
                        p.externs
                    );
                }
                (Some(r), other) => panic!("{what}: relocation {r:?} on {other:?}"),
            }
            checked += 1;
        }
    }
    checked
}
