//! CO-RE relocations resolved against other layouts: the BTF of
//! core_target.o and core_run_target.o (ELF files given as target BTF, as
//! libbpf accepts) and the running kernel's BTF, checked against
//! `bpftool btf dump` of the same files.

use bpfc_compiler::isa::{Insn, Size, Src};
use bpfc_compiler::loader::core::POISON;
use bpfc_compiler::loader::{load, Btf, CoreReloKind, LoadError, LoadOptions, Object};
use bpfc_testsuite::bpftool::{self, RawBtf};
use bpfc_testsuite::{elf_fixture_dir, skip};
use object::{Object as _, ObjectSection as _};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(elf_fixture_dir().join(name)).unwrap()
}

fn btf_of(obj: &[u8]) -> Vec<u8> {
    let f = object::File::parse(obj).unwrap();
    f.section_by_name(".BTF").unwrap().data().unwrap().to_vec()
}

/// Load `obj` with the BTF of fixture `target` (an ELF file) as CO-RE target.
#[allow(clippy::result_large_err)]
fn load_against(obj: &str, target: &str) -> Result<Object, LoadError> {
    let opts = LoadOptions {
        target_btf: Some(Btf::parse_target(&fixture(target)).unwrap()),
        ..Default::default()
    };
    load(&fixture(obj), &opts)
}

const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

/// The kernel's BTF, or `None` after a skip line (a failure under
/// `BPFC_TEST_REQUIRE=all`).
fn vmlinux(test: &str) -> Option<Vec<u8>> {
    match std::fs::read(VMLINUX) {
        Ok(b) => Some(b),
        Err(e) => {
            skip(test, &format!("{VMLINUX} not readable: {e}"));
            None
        }
    }
}

fn value(insn: &Insn) -> i64 {
    match *insn {
        Insn::Alu {
            src: Src::Imm(imm), ..
        } => imm as i64,
        Insn::Ldx { off, .. } | Insn::Stx { off, .. } | Insn::St { off, .. } => off as i64,
        Insn::Lddw { imm, .. } => imm as i64,
        other => panic!("not a CO-RE instruction: {other:?}"),
    }
}

/// (access, kind) → value, for each relocation of core_fields.
fn values(obj: &Object) -> Vec<(String, CoreReloKind, i64)> {
    let p = obj.program("core_fields").unwrap();
    let recs = &obj.btf_ext.as_ref().unwrap().core_relos["raw_tp/sched_switch"];
    recs.iter()
        .map(|r| {
            (
                r.access.clone(),
                r.kind,
                value(&p.insns[r.insn_off as usize / 8]),
            )
        })
        .collect()
}

fn find(v: &[(String, CoreReloKind, i64)], access: &str, kind: CoreReloKind) -> i64 {
    v.iter()
        .find(|(a, k, _)| a == access && *k == kind)
        .unwrap_or_else(|| panic!("no relocation {access} {kind:?} in {v:?}"))
        .2
}

#[test]
fn own_btf_keeps_compiled_values() {
    let bytes = fixture("core.o");
    let obj = Object::parse(&bytes).unwrap();
    let v = values(&obj);
    use CoreReloKind::*;
    assert_eq!(find(&v, "0:0", FieldByteOffset), 0);
    assert_eq!(find(&v, "0:2:0", FieldByteOffset), 16);
    assert_eq!(find(&v, "0:3:2", FieldByteOffset), 32);
    assert_eq!(find(&v, "0:3", FieldByteOffset), 24);
    assert_eq!(find(&v, "2", EnumvalValue), 7);
}

#[test]
fn target_btf_with_another_layout() {
    // Raw BTF bytes (the .BTF section alone) and the ELF file give one result.
    let opts = LoadOptions {
        target_btf: Some(Btf::parse_target(&btf_of(&fixture("core_target.o"))).unwrap()),
        ..Default::default()
    };
    let obj = load(&fixture("core.o"), &opts).unwrap();
    let from_elf = load_against("core.o", "core_target.o").unwrap();
    assert_eq!(obj.programs, from_elf.programs);
    let v = values(&obj);
    use CoreReloKind::*;
    // struct task { long pad0; unsigned long flags; int pid; struct inner in; int arr[4]; bits:3; sbits:5 }
    // struct inner { short y; long pad; int x; }  (size 24)
    assert_eq!(find(&v, "0:0", FieldByteOffset), 16);
    assert_eq!(find(&v, "0:2:0", FieldByteOffset), 24 + 16);
    assert_eq!(find(&v, "0:3:2", FieldByteOffset), 48 + 8);
    assert_eq!(find(&v, "0:3", FieldByteOffset), 48);
    assert_eq!(find(&v, "0:2:1", FieldByteSize), 2);
    assert_eq!(find(&v, "0:1", FieldExists), 1);
    // bits:3 at bit 512: a 4-byte load at byte 64, shifted left 61 and right 61.
    assert_eq!(find(&v, "0:4", FieldByteOffset), 64);
    assert_eq!(find(&v, "0:4", FieldByteSize), 4);
    assert_eq!(find(&v, "0:4", FieldLshiftU64), 61);
    assert_eq!(find(&v, "0:4", FieldRshiftU64), 61);
    assert_eq!(find(&v, "0:4", FieldSigned), 0);
    assert_eq!(find(&v, "0:5", FieldSigned), 1);
    assert_eq!(
        find(&v, "0", TypeSize),
        24,
        "bpf_core_type_size(struct inner)"
    );
    assert_eq!(find(&v, "2", EnumvalValue), 9);
    assert_eq!(find(&v, "2", EnumvalExists), 1);
}

#[test]
fn relocations_the_kernel_cannot_take_are_poisoned() {
    let Some(vmlinux) = vmlinux("relocations_the_kernel_cannot_take_are_poisoned") else {
        return;
    };
    let opts = LoadOptions {
        target_btf: Some(Btf::parse_target(&vmlinux).unwrap()),
        ..Default::default()
    };
    // The kernel has no `struct task`: as libbpf does, every field and
    // enumerator-value instruction becomes the poison call and the program
    // still loads; existence checks read 0.
    let obj = load(&fixture("core.o"), &opts).unwrap();
    let p = obj.program("core_fields").unwrap();
    assert_eq!(p.error, None);
    let recs = &obj.btf_ext.as_ref().unwrap().core_relos["raw_tp/sched_switch"];
    use CoreReloKind::*;
    let mut poisoned = 0;
    for r in recs {
        let pc = r.insn_off as usize / 8;
        let poison = p.poisoned_at(pc);
        match r.kind {
            FieldExists | TypeExists | EnumvalExists | TypeSize => {
                assert!(poison.is_none(), "{r:?}");
                assert_eq!(value(&p.insns[pc]), 0, "{r:?} reads 0");
            }
            _ => {
                let poison = poison.unwrap_or_else(|| panic!("{r:?} not poisoned"));
                assert_eq!(p.insns[pc], POISON, "{r:?}");
                assert_eq!(poison.access, r.access);
                assert_eq!(poison.kind, r.kind.name());
                let want = if r.kind == EnumvalValue {
                    ("enum colour", "no matching enumerator in the target BTF")
                } else {
                    ("struct task", "no matching field in the target BTF")
                };
                assert_eq!((poison.type_name.as_str(), poison.reason.as_str()), want);
                let msg = poison.to_string();
                assert!(msg.contains(&format!("\"{}\"", r.access)), "{msg}");
                assert!(msg.contains(&format!("instruction {pc}")), "{msg}");
                poisoned += 1;
            }
        }
    }
    assert_eq!(p.poisoned.len(), poisoned);
    assert!(poisoned >= 10, "{poisoned}");
}

/// The relocation records of `section` in `obj` with the instruction each one
/// patched, in record order.
fn relocated<'a>(
    obj: &'a Object,
    program: &str,
    section: &str,
) -> Vec<(&'a bpfc_compiler::loader::btf_ext::CoreReloRec, Insn)> {
    let p = obj.program(program).unwrap();
    let f = &p.functions[0];
    obj.btf_ext.as_ref().unwrap().core_relos[section]
        .iter()
        .filter(|r| {
            let off = r.insn_off as u64;
            off >= f.section_offset && off < f.section_offset + 8 * f.len as u64
        })
        .map(|r| {
            let pc = f.start + ((r.insn_off as u64 - f.section_offset) / 8) as usize;
            (r, p.insns[pc])
        })
        .collect()
}

fn ldx(insn: &Insn) -> (Size, i16) {
    match *insn {
        Insn::Ldx { size, off, .. } => (size, off),
        other => panic!("not a load: {other:?}"),
    }
}

fn size_of_bytes(n: u64) -> Size {
    match n {
        1 => Size::B,
        2 => Size::H,
        4 => Size::W,
        8 => Size::DW,
        _ => panic!("no load of {n} bytes"),
    }
}

/// Every field-offset relocation of `program`, resolved against `target`,
/// agrees with bpftool's view of the two BTFs: offset from the target, and a
/// load's size follows the target field's when the local one differs.
fn check_fields_with_bpftool(
    obj: &Object,
    program: &str,
    section: &str,
    local: &RawBtf,
    target: &RawBtf,
) -> usize {
    let mut checked = 0;
    for (rec, insn) in relocated(obj, program, section) {
        let what = format!(
            "{program} {} {:?} at {:#x}",
            rec.access, rec.kind, rec.insn_off
        );
        let root = local.skip_mods(rec.type_id);
        let (off, size) = target
            .core_field(local, root, &rec.access)
            .unwrap_or_else(|| panic!("{what}: bpftool finds no such field in the target"));
        let (_, local_size) = local.core_field(local, root, &rec.access).unwrap();
        match rec.kind {
            CoreReloKind::FieldByteOffset => match insn {
                Insn::Ldx { .. } => {
                    let (sz, o) = ldx(&insn);
                    assert_eq!(o as u64, off, "{what}");
                    if local_size != size {
                        assert_eq!(sz, size_of_bytes(size), "{what}: load size");
                    }
                }
                other => assert_eq!(value(&other) as u64, off, "{what}"),
            },
            CoreReloKind::FieldByteSize => assert_eq!(value(&insn) as u64, size, "{what}"),
            CoreReloKind::FieldExists => assert_eq!(value(&insn), 1, "{what}"),
            _ => continue,
        }
        checked += 1;
    }
    checked
}

#[test]
fn load_size_follows_an_unsigned_field_that_shrinks() {
    if !bpftool::available("load_size_follows_an_unsigned_field_that_shrinks") {
        return;
    }
    let local = bpftool::dump(&elf_fixture_dir().join("core_run.o"));
    let target = bpftool::dump(&elf_fixture_dir().join("core_run_target.o"));
    let obj = load_against("core_run.o", "core_run_target.o").unwrap();
    // struct run_ctx.flags: __u64 locally, __u32 in the target.
    let ctx = local.find("STRUCT", "run_ctx").unwrap();
    let (ltype, _) = local.member(ctx, "flags").unwrap();
    let tctx = target.find("STRUCT", "run_ctx").unwrap();
    let (ttype, toff) = target.member(tctx, "flags").unwrap();
    assert_eq!((local.size_of(ltype), target.size_of(ttype)), (8, 4));
    let recs = relocated(&obj, "core_read", "syscall");
    let flags = recs
        .iter()
        .find(|(r, _)| {
            local
                .member_at(ctx, r.access.split(':').nth(1).unwrap().parse().unwrap())
                .0
                == "flags"
        })
        .expect("a relocation of the flags load");
    assert_eq!(ldx(&flags.1), (Size::W, (toff / 8) as i16));
    // As compiled, the same load reads 8 bytes at the local offset.
    let own = Object::parse(&fixture("core_run.o")).unwrap();
    let (_, loff) = local.member(ctx, "flags").unwrap();
    let own_flags = relocated(&own, "core_read", "syscall")
        .into_iter()
        .find(|(r, _)| r.insn_off == flags.0.insn_off)
        .unwrap();
    assert_eq!(ldx(&own_flags.1), (Size::DW, (loff / 8) as i16));
    assert!(check_fields_with_bpftool(&obj, "core_read", "syscall", &local, &target) >= 2);
}

#[test]
fn a_signed_field_that_changes_size_is_poisoned() {
    // libbpf poisons a load whose size would have to change for anything
    // but a pointer or an unsigned integer.
    let obj = load_against("core_bad_size.o", "core_run_target.o").unwrap();
    let p = obj.program("bad_size").unwrap();
    assert_eq!(p.insns[0], POISON);
    let poison = p.poisoned_at(0).expect("instruction 0 is poisoned");
    assert_eq!(
        (
            poison.section.as_str(),
            poison.offset,
            poison.access.as_str(),
            poison.kind.as_str()
        ),
        ("syscall", 0, "0:0", "byte_off")
    );
    let msg = poison.to_string();
    for part in [
        "section syscall",
        "instruction 0",
        "\"0:0\"",
        "struct run_signed",
        "8 bytes locally and 4",
    ] {
        assert!(msg.contains(part), "{msg:?} lacks {part:?}");
    }
    assert_eq!(msg.lines().count(), 1);
}

#[test]
fn resolves_against_vmlinux_as_bpftool_reads_it() {
    let test = "resolves_against_vmlinux_as_bpftool_reads_it";
    let Some(vmlinux) = vmlinux(test) else { return };
    if !bpftool::available(test) {
        return;
    }
    let opts = LoadOptions {
        target_btf: Some(Btf::parse_target(&vmlinux).unwrap()),
        ..Default::default()
    };
    let obj = load(&fixture("core_vmlinux.o"), &opts).unwrap();
    let local = bpftool::dump(&elf_fixture_dir().join("core_vmlinux.o"));
    let kernel = bpftool::dump(std::path::Path::new(VMLINUX));
    let n = check_fields_with_bpftool(&obj, "on_switch", "raw_tp/sched_switch", &local, &kernel);
    assert!(n >= 6, "only {n} relocations checked");
    // task_struct.flags is an unsigned int in the kernel: the 8-byte local
    // load must read 4 bytes.
    let task = kernel.find("STRUCT", "task_struct").unwrap();
    let (ftype, foff) = kernel.member(task, "flags").unwrap();
    assert_eq!(
        kernel.size_of(ftype),
        4,
        "kernel task_struct.flags is a u32"
    );
    let loads: Vec<(Size, i16)> = obj
        .program("on_switch")
        .unwrap()
        .insns
        .iter()
        .filter(|i| matches!(i, Insn::Ldx { .. }))
        .map(ldx)
        .collect();
    assert!(
        loads.contains(&(Size::W, (foff / 8) as i16)),
        "no u32 load of flags at {}: {loads:?}",
        foff / 8
    );
}

#[test]
fn type_id_and_type_match_relocations() {
    if !bpftool::available("type_id_and_type_match_relocations") {
        return;
    }
    let local = bpftool::dump(&elf_fixture_dir().join("core_run.o"));
    let target = bpftool::dump(&elf_fixture_dir().join("core_run_target.o"));
    let own = Object::parse(&fixture("core_run.o")).unwrap();
    let moved = load_against("core_run.o", "core_run_target.o").unwrap();
    let kinds: Vec<CoreReloKind> = own.btf_ext.as_ref().unwrap().core_relos["syscall"]
        .iter()
        .map(|r| r.kind)
        .collect();
    use CoreReloKind::*;
    for k in [
        TypeIdLocal,
        TypeIdTarget,
        TypeMatches,
        TypeExists,
        EnumvalValue,
    ] {
        assert!(kinds.contains(&k), "clang-19 emitted no {k:?}: {kinds:?}");
    }
    let lid = local.find("STRUCT", "run_ctx").unwrap() as i64;
    let tid = target.find("STRUCT", "run_ctx").unwrap() as i64;
    for (obj, want_target) in [(&own, lid), (&moved, tid)] {
        let recs = relocated(obj, "core_ids", "syscall");
        let get = |k| value(&recs.iter().find(|(r, _)| r.kind == k).unwrap().1);
        assert_eq!(get(TypeIdLocal), lid);
        assert_eq!(get(TypeIdTarget), want_target);
    }
    // run_shape has the target's members in another order (matches);
    // run_nomatch's x is a long there (does not).
    let matches = |obj: &Object| -> Vec<(String, i64)> {
        relocated(obj, "core_values", "syscall")
            .into_iter()
            .filter(|(r, _)| r.kind == TypeMatches)
            .map(|(r, i)| (local.get(r.type_id).name.clone(), value(&i)))
            .collect()
    };
    assert_eq!(
        matches(&own),
        [("run_shape".to_string(), 1), ("run_nomatch".to_string(), 1)]
    );
    assert_eq!(
        matches(&moved),
        [("run_shape".to_string(), 1), ("run_nomatch".to_string(), 0)]
    );
}
