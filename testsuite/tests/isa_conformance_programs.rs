//! Every pre-assembled conformance program decodes, validates and re-encodes
//! to the same bytes.

use bpfc_compiler::isa::{decode_program, encode_program, Endian};
use bpfc_testsuite::conformance_programs_or_skip;

#[test]
fn conformance_programs_decode_and_reencode() {
    let Some(cases) = conformance_programs_or_skip("isa_conformance_programs") else {
        return;
    };
    assert_eq!(cases.len(), 313);
    for case in &cases {
        let insns = decode_program(&case.program, Endian::Little)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(
            encode_program(&insns, Endian::Little),
            case.program,
            "{}",
            case.name
        );
    }
}
