//! `compile_object` writes a valid relocatable object for each supported
//! triple: right format, architecture and byte order, the entry symbol
//! defined and exported, helpers left undefined for the linker.

use bpfc_compiler::codegen::{
    aot::compile_object, parse_triple, Binding, CodegenOptions, Request, SUPPORTED_TARGETS,
};
use bpfc_compiler::{asm, isa::Endian};
use object::{Architecture, BinaryFormat, Object, ObjectSymbol};

const PROGRAM: &str = "
mov %r1, 7
call 5
call local f
exit
f:
stxdw [%r10-8], %r0
ldxdw %r0, [%r10-8]
exit
";

fn expected(triple: &str) -> (BinaryFormat, Architecture, bool) {
    let arch = match triple.split('-').next() {
        Some("x86_64") => Architecture::X86_64,
        Some("aarch64") => Architecture::Aarch64,
        Some("riscv64gc") => Architecture::Riscv64,
        Some("s390x") => Architecture::S390x,
        other => panic!("no expectation for {other:?}"),
    };
    let format = if triple.contains("apple") {
        BinaryFormat::MachO
    } else if triple.contains("windows") {
        BinaryFormat::Coff
    } else {
        BinaryFormat::Elf
    };
    (format, arch, triple.starts_with("s390x"))
}

#[test]
fn objects_for_every_supported_triple() {
    let insns = asm::assemble(PROGRAM).unwrap();
    for name in SUPPORTED_TARGETS {
        let triple = parse_triple(name).unwrap();
        let bytes = compile_object(
            &Request {
                insns: &insns,
                endian: Endian::Little,
                binding: &Binding::object(&[]),
                opts: &CodegenOptions::default(),
                symbol: "my_prog",
                facts: None,
            },
            &triple,
            None,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let obj = object::File::parse(&*bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (format, arch, big_endian) = expected(name);
        assert_eq!(obj.format(), format, "{name}");
        assert_eq!(obj.architecture(), arch, "{name}");
        assert_eq!(!obj.is_little_endian(), big_endian, "{name}");
        assert_eq!(obj.kind(), object::ObjectKind::Relocatable, "{name}");
        // Mach-O prefixes C symbols with an underscore.
        let prefix = if format == BinaryFormat::MachO {
            "_"
        } else {
            ""
        };
        let find = |n: String| obj.symbols().find(|s| s.name() == Ok(n.as_str()));
        let entry =
            find(format!("{prefix}my_prog")).unwrap_or_else(|| panic!("{name}: no entry symbol"));
        assert!(
            entry.is_definition() && entry.is_global(),
            "{name}: entry not an exported definition"
        );
        let helper = find(format!("{prefix}bpfc_helper_5"))
            .unwrap_or_else(|| panic!("{name}: no helper import"));
        assert!(helper.is_undefined(), "{name}: helper should be undefined");
    }
}

#[test]
fn unsupported_triple_is_a_clear_error() {
    let err = parse_triple("mips-unknown-linux-gnu")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("mips-unknown-linux-gnu") && err.contains("x86_64-unknown-linux-gnu"),
        "{err}"
    );
}
