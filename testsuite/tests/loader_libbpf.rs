//! CO-RE and linking against libbpf itself, with the running kernel as the
//! judge of what loads: libbpf (libbpf-dev, through `harness/libbpf_dump.c`)
//! loads each program of an object alone into the kernel with CO-RE against
//! `/sys/kernel/btf/vmlinux`, and the instructions it handed the kernel
//! must be the ones bpfc's loader produces against the same BTF: the same
//! relocated offsets and sizes, the same poison calls where a relocation
//! cannot be applied, the same existence answers, the same subprogram
//! layout. Map loads are compared by map, kfunc and kernel-variable
//! references by kind (their ids come from the kernel). Objects:
//! `core_flavors.o` (fallbacks written the way libbpf-tools writes them) and
//! every libbpf-tools skeleton and xdp-tools object.

mod loader_common;

use bpfc_compiler::isa::{encode_insn, CallTarget, Endian, Insn, LddwSrc};
use bpfc_compiler::loader::{load, Btf, LoadOptions, Object, Program};
use bpfc_testsuite::{elf_fixture_dir, skip};
use loader_common::{can_load_bpf, corpus, libbpf_dump, libbpf_load, RawInsn, Source};
use std::path::Path;

const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// bpfc's instructions as raw slots.
fn raw(p: &Program) -> Vec<RawInsn> {
    let mut out = Vec::new();
    for insn in p.insns.iter().filter(|i| **i != Insn::LddwHigh) {
        let mut b = Vec::new();
        encode_insn(insn, Endian::Little, &mut b);
        for s in b.chunks(8) {
            out.push(RawInsn {
                code: s[0],
                dst: s[1] & 0xf,
                src: s[1] >> 4,
                off: i16::from_le_bytes([s[2], s[3]]),
                imm: i32::from_le_bytes([s[4], s[5], s[6], s[7]]),
                map: None,
            });
        }
    }
    out
}

/// Whether libbpf's name of a map (the kernel's: internal maps get an
/// object-name prefix, truncated to 15 characters) is bpfc's `ours`.
fn same_map(theirs: &str, ours: &str) -> bool {
    if ours.starts_with('.') {
        theirs
            .find('.')
            .is_some_and(|i| ours.starts_with(&theirs[i..]))
    } else {
        theirs == ours
    }
}

/// Compare one program; returns the number of poison calls seen.
fn compare(what: &str, obj: &Object, p: &Program, theirs: &[RawInsn]) -> usize {
    let ours = raw(p);
    assert_eq!(ours.len(), theirs.len(), "{what}: instruction count");
    let mut poison = 0;
    let mut pc = 0;
    while pc < ours.len() {
        let (o, t) = (&ours[pc], &theirs[pc]);
        let at = format!("{what} insn {pc}: bpfc {o:?}, libbpf {t:?}");
        let insn = p.insns[pc];
        match (t.code, t.src) {
            // Map references: the same map (and value offset).
            (0x18, 1 | 2) => {
                let Insn::Lddw { dst, src, imm } = insn else {
                    panic!("{at}")
                };
                let want = if t.src == 1 {
                    LddwSrc::MapIdx
                } else {
                    LddwSrc::MapIdxValue
                };
                assert_eq!((dst.index() as u8, src), (t.dst, want), "{at}");
                let name = &obj.maps[imm as u32 as usize].name;
                let theirs_name = t.map.as_deref().unwrap_or_else(|| panic!("{at}: no map"));
                assert!(same_map(theirs_name, name), "{at}: map {name}");
                assert_eq!(ours[pc + 1].imm, theirs[pc + 1].imm, "{at}: offset");
                pc += 2;
                continue;
            }
            // A kernel variable or a kfunc's address: the kernel's BTF id.
            (0x18, 3) => {
                assert!(
                    matches!(insn, Insn::Lddw { src: LddwSrc::BtfId, dst, .. } if dst.index() as u8 == t.dst),
                    "{at}"
                );
                pc += 2;
                continue;
            }
            (0x85, 2) => {
                assert!(matches!(insn, Insn::Call(CallTarget::Kfunc { .. })), "{at}");
            }
            _ => assert_eq!(o, t, "{at}"),
        }
        if t.code == 0x85 && t.src == 0 && t.imm == 0xbad2310 {
            poison += 1;
        }
        pc += 1;
    }
    poison
}

/// Load `path` with libbpf (each program alone, in the kernel) and with
/// bpfc against vmlinux; compare. Returns (programs compared, refused by
/// the kernel, poison calls).
fn against_libbpf(driver: &Path, path: &Path, target: &Btf) -> (usize, usize, usize) {
    let theirs = match libbpf_load(driver, path, Path::new(VMLINUX)) {
        Ok(t) => t,
        Err(e) => panic!("{}: libbpf cannot open it: {e}", path.display()),
    };
    let opts = LoadOptions {
        target_btf: Some(target.clone()),
        ..Default::default()
    };
    let obj = load(&std::fs::read(path).unwrap(), &opts).unwrap();
    let mut poison = 0;
    for (name, insns) in &theirs.loaded {
        let p = obj
            .program(name)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(p.error, None, "{} {name}", path.display());
        poison += compare(&format!("{} {name}", path.display()), &obj, p, insns);
    }
    (theirs.loaded.len(), theirs.refused.len(), poison)
}

fn setup(test: &str) -> Option<(std::path::PathBuf, Btf)> {
    let driver = libbpf_dump(test)?;
    if !can_load_bpf() {
        skip(test, "loading programs into the kernel needs root");
        return None;
    }
    match std::fs::read(VMLINUX) {
        Ok(b) => Some((driver, Btf::parse_target(&b).unwrap())),
        Err(e) => {
            skip(test, &format!("{VMLINUX}: {e}"));
            None
        }
    }
}

#[test]
fn core_fallbacks_match_libbpf_in_the_kernel() {
    let test = "core_fallbacks_match_libbpf_in_the_kernel";
    let Some((driver, target)) = setup(test) else {
        return;
    };
    let path = elf_fixture_dir().join("core_flavors.o");
    let (loaded, refused, poison) = against_libbpf(&driver, &path, &target);
    // Both programs load in this kernel, each with its dead fallbacks
    // poisoned: the kernel has __state but not state, q->disk but not
    // rq_disk, no bpfc_absent and no BPF_FUNC_bpfc_absent.
    assert_eq!((loaded, refused), (2, 0), "{}", path.display());
    assert!(poison >= 4, "only {poison} poison calls");
    // And bpfc says which relocation each one is.
    let obj = load(
        &std::fs::read(&path).unwrap(),
        &LoadOptions {
            target_btf: Some(target),
            ..Default::default()
        },
    )
    .unwrap();
    let reasons: Vec<String> = obj
        .programs
        .iter()
        .flat_map(|p| {
            p.poisoned
                .iter()
                .map(|x| format!("{} {}", x.type_name, x.access))
        })
        .collect();
    for want in [
        "struct task_struct___o 0:0",
        "struct request___x 0:0",
        "struct bpfc_absent___x 0:1",
        "enum bpf_func_id___x 1",
    ] {
        assert!(
            reasons.iter().any(|r| r == want),
            "{want} not in {reasons:?}"
        );
    }
    println!("core_flavors.o: {loaded} programs, {poison} poison calls, as libbpf");
}

#[test]
fn corpus_objects_match_libbpf_in_the_kernel() {
    let test = "corpus_objects_match_libbpf_in_the_kernel";
    let Some((driver, target)) = setup(test) else {
        return;
    };
    let Some(all) = corpus(test) else { return };
    let (mut objects, mut loaded, mut refused, mut poison) = (0, 0, 0, 0);
    for o in all.iter().filter(|o| {
        matches!(o.source, Source::LibbpfTools | Source::Xdp) && {
            let b = std::fs::read(&o.path).unwrap();
            b.get(5) == Some(&1)
        }
    }) {
        let (l, r, p) = against_libbpf(&driver, &o.path, &target);
        objects += 1;
        loaded += l;
        refused += r;
        poison += p;
    }
    println!(
        "{objects} objects: {loaded} programs loaded by libbpf and identical in bpfc ({poison} poison calls), {refused} refused by this kernel"
    );
    assert!(loaded >= 200, "only {loaded} programs compared");
    assert!(poison > 0, "no poisoned fallback compared");
}
