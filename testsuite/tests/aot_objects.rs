//! Native objects for every supported target: format, architecture,
//! endianness, the exported entry symbol and the undefined helper import.

use bpfc_compiler::codegen::{aot::compile_object, target, CodegenOptions};
use bpfc_compiler::isa::{decode_program, Endian};
use object::{Architecture, BinaryFormat, Object, ObjectSymbol};

/// `r1 = 7; call 5; exit` — uses helper 5.
const PROGRAM: [u8; 24] = [
    0xb7, 0x01, 0, 0, 7, 0, 0, 0, // mov r1, 7
    0x85, 0x00, 0, 0, 5, 0, 0, 0, // call 5
    0x95, 0x00, 0, 0, 0, 0, 0, 0, // exit
];

fn expected(triple: &str) -> (BinaryFormat, Architecture, bool) {
    let format = if triple.contains("apple") {
        BinaryFormat::MachO
    } else if triple.contains("windows") {
        BinaryFormat::Coff
    } else {
        BinaryFormat::Elf
    };
    let arch = match triple.split('-').next() {
        Some("x86_64") => Architecture::X86_64,
        Some("aarch64") => Architecture::Aarch64,
        Some("riscv64gc") => Architecture::Riscv64,
        Some("s390x") => Architecture::S390x,
        other => panic!("unexpected arch {other:?}"),
    };
    (format, arch, triple.starts_with("s390x"))
}

#[test]
fn objects_for_every_supported_target() {
    let insns = decode_program(&PROGRAM, Endian::Little).expect("program decodes");
    let mut failures = Vec::new();
    for name in target::SUPPORTED_TARGETS {
        let triple = target::parse_triple(name).expect("supported triple parses");
        let bytes = match compile_object(
            &insns,
            Endian::Little,
            &triple,
            &CodegenOptions::default(),
            "prog_entry",
            &[],
            None,
        ) {
            Ok(b) => b,
            Err(e) => {
                failures.push(format!("{name}: compile: {e}"));
                continue;
            }
        };
        let file = match object::File::parse(&*bytes) {
            Ok(f) => f,
            Err(e) => {
                failures.push(format!("{name}: parse: {e}"));
                continue;
            }
        };
        let (format, arch, big) = expected(name);
        if file.format() != format {
            failures.push(format!("{name}: format {:?}", file.format()));
        }
        if file.architecture() != arch {
            failures.push(format!("{name}: architecture {:?}", file.architecture()));
        }
        if file.is_little_endian() == big {
            failures.push(format!("{name}: wrong endianness"));
        }
        let prefix = if format == BinaryFormat::MachO {
            "_"
        } else {
            ""
        };
        let entry = format!("{prefix}prog_entry");
        let helper = format!("{prefix}bpfc_helper_5");
        let sym = |n: &str| file.symbols().find(|s| s.name() == Ok(n));
        match sym(&entry) {
            Some(s) if s.is_definition() && s.is_global() => {}
            Some(_) => failures.push(format!("{name}: {entry} not a global definition")),
            None => failures.push(format!("{name}: {entry} missing")),
        }
        match sym(&helper) {
            Some(s) if s.is_undefined() => {}
            Some(_) => failures.push(format!("{name}: {helper} is defined")),
            None => failures.push(format!("{name}: {helper} missing")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn unsupported_target_is_an_error_listing_the_supported_ones() {
    let err = target::parse_triple("mips-unknown-linux-gnu").expect_err("mips is unsupported");
    let msg = err.to_string();
    for name in target::SUPPORTED_TARGETS {
        assert!(msg.contains(name), "{msg}");
    }
}
