//! Every pre-assembled conformance program decodes, validates and re-encodes
//! to the same bytes.

use bpfc_compiler::isa::{decode_program, encode_program, Endian};
use bpfc_testsuite::{conformance_dir, hex_decode};

#[test]
fn conformance_programs_decode_and_reencode() {
    let path = conformance_dir().join("programs.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let cases: serde_json::Value = serde_json::from_str(&text).expect("programs.json parses");
    let cases = cases.as_array().expect("an array");
    assert_eq!(cases.len(), 313);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let bytes = hex_decode(case["program"].as_str().unwrap()).unwrap();
        let insns =
            decode_program(&bytes, Endian::Little).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(encode_program(&insns, Endian::Little), bytes, "{name}");
    }
}
