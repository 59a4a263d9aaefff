//! CO-RE relocations of core.o resolved against a different layout (the BTF
//! of core_target.o) and against the running kernel's BTF.

use bpfc_compiler::isa::{Insn, Src};
use bpfc_compiler::loader::{load, CoreReloKind, LoadError, LoadOptions, Object};
use bpfc_testsuite::{elf_fixture_dir, require_all};
use object::{Object as _, ObjectSection as _};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(elf_fixture_dir().join(name)).unwrap()
}

fn btf_of(obj: &[u8]) -> Vec<u8> {
    let f = object::File::parse(obj).unwrap();
    f.section_by_name(".BTF").unwrap().data().unwrap().to_vec()
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
    let opts = LoadOptions {
        target_btf: Some(btf_of(&fixture("core_target.o"))),
        ..Default::default()
    };
    let obj = load(&fixture("core.o"), &opts).unwrap();
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
fn unresolvable_relocation_names_its_access_string() {
    let path = "/sys/kernel/btf/vmlinux";
    let Ok(vmlinux) = std::fs::read(path) else {
        assert!(!require_all(), "{path} is required (BPFC_TEST_REQUIRE=all)");
        println!("SKIP: {path} not readable");
        return;
    };
    let opts = LoadOptions {
        target_btf: Some(vmlinux),
        ..Default::default()
    };
    // The kernel has no `struct task`: field relocations cannot resolve.
    match load(&fixture("core.o"), &opts).unwrap_err() {
        e @ LoadError::Core { .. } => {
            let LoadError::Core {
                ref access,
                ref type_name,
                ..
            } = e
            else {
                unreachable!()
            };
            assert!(access.starts_with("0:"), "{e}");
            assert_eq!(type_name, "struct task");
            assert!(e.to_string().contains(&format!("\"{access}\"")), "{e}");
        }
        e => panic!("{e:?}"),
    }
}
