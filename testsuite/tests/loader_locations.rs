//! Every error says where: the file offset and size for a broken container,
//! the section and offset (or `.BTF.ext` offset) for broken contents, the
//! section's name for section symbols; each fact once, on one line. And what
//! libbpf ignores (relocations of DWARF and BTF) or can take lazily (a huge
//! `.bss`) does not fail the load.

use bpfc_compiler::loader::{load, LoadError, LoadOptions, Object};
use bpfc_testsuite::elf_fixture_dir;
use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

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

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// File offset of the section header of `name`.
fn shdr(b: &[u8], name: &str) -> usize {
    let f = object::File::parse(b).unwrap();
    let idx = f.section_by_name(name).unwrap().index().0;
    u64_at(b, 0x28) as usize + 64 * idx
}

fn section_data(b: &[u8], name: &str) -> usize {
    let f = object::File::parse(b).unwrap();
    f.section_by_name(name).unwrap().file_range().unwrap().0 as usize
}

/// The error's text, checked to be one line holding each part.
fn says(e: &LoadError, parts: &[&str]) -> String {
    let msg = e.to_string();
    assert_eq!(msg.lines().count(), 1, "{msg:?}");
    for p in parts {
        assert!(msg.contains(p), "{msg:?} lacks {p:?}");
    }
    msg
}

#[test]
fn truncated_files_name_the_offset_and_file_size() {
    let b = fixture("calls.o");
    let shoff = u64_at(&b, 0x28);
    // The section header table is the end of the file: any cut breaks it.
    let cut = &b[..b.len() - 1];
    let e = err_of(Object::parse(cut));
    assert_eq!(
        e,
        LoadError::Malformed {
            offset: shoff,
            file_size: cut.len() as u64,
            reason: e_reason(&e),
        }
    );
    says(
        &e,
        &[
            &format!("file offset {shoff:#x}"),
            &format!("file size {:#x}", cut.len()),
            "section header table",
        ],
    );
    // A header cut short.
    let e = err_of(Object::parse(&b[..40]));
    says(&e, &["file size 0x28", "ELF header needs 64 bytes"]);
    // One section's contents pointing past the end: its header is named.
    let mut t = b.clone();
    let h = shdr(&t, "xdp");
    put_u64(&mut t, h + 0x18, 0x10_0000);
    let e = err_of(Object::parse(&t));
    assert!(
        matches!(e, LoadError::Malformed { offset, .. } if offset == h as u64),
        "{e:?}"
    );
    says(
        &e,
        &[
            "extend past the end of the file",
            &format!("file offset {h:#x}"),
        ],
    );
    let e = err_of(Object::parse(b"hello"));
    says(&e, &["not an ELF file (5 bytes)"]);
}

fn e_reason(e: &LoadError) -> String {
    match e {
        LoadError::Malformed { reason, .. } => reason.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn relocations_against_section_symbols_use_the_section_name() {
    let b = fixture("globals.o");
    // The .rodata reference of `socket` is against the section symbol; move
    // it onto the first instruction, which is not an lddw.
    let f = object::File::parse(&*b).unwrap();
    let rel = f.section_by_name(".relsocket").unwrap();
    let at = rel.file_range().unwrap().0 as usize;
    let n = rel.size() as usize / 16;
    let (idx, _) = (0..n)
        .map(|i| (i, u64_at(&b, at + 16 * i)))
        .find(|&(_, off)| off == 0x120)
        .expect("the .rodata relocation at 0x120");
    let mut t = b.clone();
    put_u64(&mut t, at + 16 * idx, 0);
    let e = err_of(Object::parse(&t));
    let LoadError::BadRelocationTarget {
        ref symbol,
        ref section,
        offset,
        ..
    } = e
    else {
        panic!("{e:?}")
    };
    assert_eq!(
        (symbol.as_str(), section.as_str(), offset),
        (".rodata", "socket", 0)
    );
    says(
        &e,
        &["section socket offset 0x0: relocation against .rodata targets"],
    );
}

#[test]
fn decode_errors_state_each_fact_once() {
    let mut b = fixture("calls.o");
    let text = section_data(&b, "xdp");
    // The exit of pure_sum: find the first 0x95 opcode in xdp.
    let slot = (0..).find(|i| b[text + 8 * i] == 0x95).unwrap();
    put_u32(&mut b, text + 8 * slot + 4, 1);
    let e = err_of(Object::parse(&b));
    let msg = says(
        &e,
        &[
            &format!("section xdp offset {:#x}", 8 * slot),
            &format!("instruction {slot}: invalid immediate 1 for opcode 0x95"),
        ],
    );
    assert_eq!(msg.matches("invalid immediate").count(), 1, "{msg}");
    // The anyhow-style chain (`{:#}`) adds nothing: there is no source.
    assert!(std::error::Error::source(&e).is_none());
}

#[test]
fn map_and_extern_errors_name_section_and_offset() {
    // A legacy map symbol moved past its section: the map's definition
    // offset in `maps` is named.
    let b = fixture("globals.o");
    let f = object::File::parse(&*b).unwrap();
    let sym = f
        .symbols()
        .find(|s| s.name() == Ok("legacy_array"))
        .unwrap();
    let symtab = f
        .section_by_name(".symtab")
        .unwrap()
        .file_range()
        .unwrap()
        .0 as usize;
    let mut t = b.clone();
    put_u64(&mut t, symtab + 24 * sym.index().0 + 8, 0x1000);
    let e = err_of(Object::parse(&t));
    assert!(
        matches!(&e, LoadError::BadMap { map, section, offset: 0x1000, .. } if map == "legacy_array" && section == "maps"),
        "{e:?}"
    );
    says(&e, &["section maps offset 0x1000: map legacy_array"]);
    // A strong .kconfig extern without a value: the instruction that loads it.
    let b = fixture("kconfig.o");
    let f = object::File::parse(&*b).unwrap();
    let sec = f
        .section_by_name("tracepoint/syscalls/sys_enter_openat")
        .unwrap();
    let (off, _) = sec
        .relocations()
        .find(|(_, r)| {
            matches!(r.target(), object::RelocationTarget::Symbol(i)
                if f.symbol_by_index(i).unwrap().name() == Ok("CONFIG_HZ"))
        })
        .unwrap();
    let opts = LoadOptions {
        kconfig: Default::default(),
        ..Default::default()
    };
    let e = err_of(load(&b, &opts));
    says(
        &e,
        &[&format!(
            "section tracepoint/syscalls/sys_enter_openat offset {off:#x}: extern CONFIG_HZ"
        )],
    );
}

#[test]
fn ignored_relocation_sections_may_be_corrupt() {
    for (file, rel) in [
        ("globals.o", ".rel.BTF"),
        ("globals.o", ".rel.debug_info"),
        ("calls.o", ".rel.BTF.ext"),
    ] {
        let b = fixture(file);
        let want = Object::parse(&b).unwrap();
        let at = section_data(&b, rel);
        let h = shdr(&b, rel);
        // Garbage relocations: symbol 0xffffff, type 0x7f, offset far away.
        let mut t = b.clone();
        put_u64(&mut t, at, 0xdead_beef);
        put_u64(&mut t, at + 8, (0xff_ffff << 32) | 0x7f);
        let got = Object::parse(&t).unwrap_or_else(|e| panic!("{file} {rel}: {e}"));
        assert_eq!(got.programs, want.programs, "{file} {rel}");
        // A size that is not whole records, and a target that does not exist.
        let mut t = b.clone();
        put_u64(&mut t, h + 0x20, u64_at(&b, h + 0x20) - 3);
        put_u32(&mut t, h + 0x2c, 0xffff);
        Object::parse(&t).unwrap_or_else(|e| panic!("{file} {rel}: {e}"));
    }
}

#[test]
fn a_huge_bss_is_not_materialised() {
    let b = fixture("globals.o");
    let h = shdr(&b, ".bss");
    let mut t = b.clone();
    put_u64(&mut t, h + 0x20, 1 << 31);
    let obj = Object::parse(&t).unwrap();
    let m = &obj.maps[obj.map_index(".bss").unwrap()];
    assert_eq!((m.value_size, m.data.len()), (1 << 31, 0));
    // Larger than a map value can be: an error naming the section.
    put_u64(&mut t, h + 0x20, 1 << 40);
    let e = err_of(Object::parse(&t));
    says(&e, &["section .bss", "does not fit a map value"]);
}

/// `.BTF.ext` header fields of calls.o: (file offset of the section,
/// header length, func_info offset, line_info offset).
fn ext_layout(b: &[u8]) -> (usize, usize, usize, usize) {
    let at = section_data(b, ".BTF.ext");
    let hdr = u32_at(b, at + 4) as usize;
    (
        at,
        hdr,
        u32_at(b, at + 8) as usize,
        u32_at(b, at + 16) as usize,
    )
}

fn btf_ext_error(t: &[u8], offset: usize, parts: &[&str]) {
    let e = err_of(Object::parse(t));
    let LoadError::BadBtf {
        section,
        offset: got,
        ..
    } = &e
    else {
        panic!("{e:?}")
    };
    assert_eq!((*section, *got), (".BTF.ext", offset), "{e}");
    let mut all = vec![".BTF.ext offset"];
    all.extend_from_slice(parts);
    says(&e, &all);
}

#[test]
fn bad_btf_ext_names_its_offset() {
    let b = fixture("calls.o");
    let (at, hdr, func_off, line_off) = ext_layout(&b);
    // Truncated header: the section cut to 10 bytes.
    let mut t = b.clone();
    let h = shdr(&t, ".BTF.ext");
    put_u64(&mut t, h + 0x20, 10);
    btf_ext_error(&t, 8, &["truncated"]);
    // A func_info record size smaller than a record.
    let mut t = b.clone();
    let fi = at + hdr + func_off;
    put_u32(&mut t, fi, 4);
    btf_ext_error(&t, hdr + func_off, &["record size 4 < 8"]);
    // A line_info record pointing outside its section: the first record of
    // the first section (rec_size, then name, count, then records).
    let li = at + hdr + line_off;
    let rec = li + 4 + 8;
    let mut t = b.clone();
    put_u32(&mut t, rec, 0x10_0000);
    btf_ext_error(
        &t,
        rec - at,
        &["line_info at instruction offset 0x100000 is not an instruction"],
    );
    // func_info that does not list each function once: the first record
    // moved to an instruction that starts no function.
    let rec = fi + 4 + 8;
    let mut t = b.clone();
    put_u32(&mut t, rec, u32_at(&b, rec) + 8);
    btf_ext_error(&t, rec - at, &["func_info records for", "functions"]);
}
