//! Malformed objects give typed errors naming where the problem is, and no
//! mutation of a fixture makes the loader panic.

use bpfc_compiler::loader::{load, LoadError, LoadOptions, Object};
use bpfc_testsuite::{elf_fixture_dir, elf_fixtures};
use object::{Object as _, ObjectSection as _};
use proptest::prelude::*;

/// The load error, or else the first program's: an error inside one
/// program's code fails that program only (`Program::error`).
#[allow(clippy::result_large_err)]
fn err_of(r: Result<Object, bpfc_compiler::loader::LoadError>) -> bpfc_compiler::loader::LoadError {
    match r {
        Err(e) => e,
        Ok(obj) => obj
            .programs
            .iter()
            .find_map(|p| p.error.clone())
            .expect("neither the object nor any program failed"),
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(elf_fixture_dir().join(name)).unwrap()
}

/// File offset of a section's contents.
fn section_offset(bytes: &[u8], name: &str) -> usize {
    let f = object::File::parse(bytes).unwrap();
    let s = f.section_by_name(name).unwrap();
    s.file_range().unwrap().0 as usize
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn get_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn not_elf_and_truncated() {
    assert!(matches!(
        Object::parse(b"hello"),
        Err(LoadError::NotElf { .. })
    ));
    assert!(matches!(Object::parse(&[]), Err(LoadError::NotElf { .. })));
    let b = fixture("calls.o");
    let mut junk = b.clone();
    junk[0] = b'X';
    assert!(matches!(
        Object::parse(&junk),
        Err(LoadError::NotElf { .. })
    ));
    for len in [20, 64, 100, b.len() / 2, b.len() - 1] {
        let e = err_of(Object::parse(&b[..len]));
        assert!(
            matches!(
                e,
                LoadError::Malformed { .. } | LoadError::BadSection { .. }
            ),
            "{len}: {e:?}"
        );
    }
}

#[test]
fn wrong_class_and_machine() {
    let mut b = fixture("calls.o");
    b[4] = 1;
    assert_eq!(
        err_of(Object::parse(&b)),
        LoadError::WrongClass { class: 1 }
    );
    let mut b = fixture("calls.o");
    b[18..20].copy_from_slice(&62u16.to_le_bytes());
    assert_eq!(
        err_of(Object::parse(&b)),
        LoadError::WrongMachine { machine: 62 }
    );
}

/// Offset of the first relocation of `.relxdp` in calls.o (the call to sum_to at 0x8).
fn xdp_reloc(b: &[u8]) -> usize {
    let at = section_offset(b, ".relxdp");
    assert_eq!(get_u64(b, at), 8);
    at
}

#[test]
fn missing_symbol() {
    let mut b = fixture("calls.o");
    let at = xdp_reloc(&b);
    let info = get_u64(&b, at + 8);
    put_u64(&mut b, at + 8, (0xffffu64 << 32) | (info & 0xffff_ffff));
    match err_of(Object::parse(&b)) {
        LoadError::MissingSymbol {
            section, offset, ..
        } => {
            assert_eq!((section.as_str(), offset), ("xdp", 8))
        }
        e => panic!("{e:?}"),
    }
    // A strong .kconfig extern without a value.
    let opts = LoadOptions {
        kconfig: Default::default(),
        ..Default::default()
    };
    let e = err_of(load(&fixture("kconfig.o"), &opts));
    assert!(
        matches!(e, LoadError::UnresolvedExtern { ref name, .. } if name == "CONFIG_HZ"),
        "{e:?}"
    );
}

#[test]
fn bad_relocations() {
    let b = fixture("calls.o");
    let at = xdp_reloc(&b);
    let info = get_u64(&b, at + 8);
    // Unknown relocation type.
    let mut t = b.clone();
    put_u64(&mut t, at + 8, (info & !0xffff_ffff) | 7);
    assert_eq!(
        err_of(Object::parse(&t)),
        LoadError::BadRelocationType {
            section: "xdp".into(),
            offset: 8,
            r_type: 7
        }
    );
    // Offset outside the section.
    let mut t = b.clone();
    put_u64(&mut t, at, 0x10000);
    assert!(matches!(
        err_of(Object::parse(&t)),
        LoadError::RelocationOutOfRange {
            offset: 0x10000,
            ..
        }
    ));
    // A call relocation on an instruction that is not a call (pc 0 is `r1 = 10`).
    let mut t = b.clone();
    put_u64(&mut t, at, 0);
    assert!(matches!(
        err_of(Object::parse(&t)),
        LoadError::BadRelocationTarget {
            offset: 0,
            expected: "a local call (call with src 1)",
            ..
        }
    ));
    // An lddw relocation that is not on an lddw: .relclassifier's only entry, moved to pc 0.
    let mut t = b.clone();
    let tc = section_offset(&t, ".relclassifier");
    put_u64(&mut t, tc, 0);
    assert!(matches!(
        err_of(Object::parse(&t)),
        LoadError::BadRelocationTarget {
            expected: "lddw",
            ..
        }
    ));
}

#[test]
fn bad_btf() {
    let b = fixture("calls.o");
    let btf = section_offset(&b, ".BTF");
    let hdr = u32::from_le_bytes(b[btf + 4..btf + 8].try_into().unwrap()) as usize;
    let type_off = u32::from_le_bytes(b[btf + 8..btf + 12].try_into().unwrap()) as usize;
    let first = btf + hdr + type_off;
    let check = |t: &[u8], what: &str| match err_of(Object::parse(t)) {
        LoadError::BadBtf {
            section, reason, ..
        } => {
            assert_eq!(section, ".BTF");
            assert!(reason.contains(what), "{reason} does not mention {what}")
        }
        e => panic!("{what}: {e:?}"),
    };
    // Header: bad magic.
    let mut t = b.clone();
    t[btf] = 0;
    check(&t, "magic");
    // Truncated type section (type_len far beyond the section).
    let mut t = b.clone();
    put_u32(&mut t, btf + 12, 0x00ff_ffff);
    check(&t, "extends past the end");
    // Bad kind in the first type.
    let mut t = b.clone();
    put_u32(&mut t, first + 4, 0x1f00_0000);
    check(&t, "unknown type kind 31");
    // Bad string offset in the first type's name.
    let mut t = b.clone();
    put_u32(&mut t, first, 0x00ff_ffff);
    check(&t, "string offset");
}

#[test]
fn every_fixture_truncation_is_an_error_not_a_panic() {
    for path in elf_fixtures() {
        let b = std::fs::read(&path).unwrap();
        for len in (0..b.len()).step_by(97) {
            let _ = Object::parse(&b[..len]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn mutated_fixtures_never_panic(
        which in 0usize..16,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let all = elf_fixtures();
        let mut b = std::fs::read(&all[which % all.len()]).unwrap();
        for (i, v) in edits {
            let at = i.index(b.len());
            b[at] = v;
        }
        let _ = Object::parse(&b);
    }
}

/// File ranges of the sections the loader interprets (not DWARF).
fn interesting_ranges(bytes: &[u8]) -> Vec<(usize, usize)> {
    let f = object::File::parse(bytes).unwrap();
    f.sections()
        .filter(|s| {
            !s.name().unwrap_or("").starts_with(".debug")
                && !s.name().unwrap_or("").starts_with(".rel.debug")
        })
        .filter_map(|s| s.file_range())
        .filter(|&(_, len)| len > 0)
        .map(|(o, l)| (o as usize, l as usize))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]
    #[test]
    fn mutated_loader_sections_never_panic(
        which in 0usize..16,
        section in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let all = elf_fixtures();
        let mut b = std::fs::read(&all[which % all.len()]).unwrap();
        let ranges = interesting_ranges(&b);
        let (start, len) = ranges[section.index(ranges.len())];
        for (i, v) in edits {
            b[start + i.index(len)] = v;
        }
        let _ = Object::parse(&b);
    }
}
