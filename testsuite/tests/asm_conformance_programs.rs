//! The assembler reproduces the reference assembler's output: for every entry
//! of the conformance suite's programs.json, the `-- asm` section of
//! `tests/<name>.data` (and its `-- raw` section, where there is one)
//! assembles to the pre-assembled `program` bytes exactly, and the `.data`
//! parser reads the same `mem` and `result` as programs.json holds.

use bpfc_compiler::asm::assemble;
use bpfc_compiler::isa::{encode_program, Endian};
use bpfc_testsuite::{conformance_dir, hex_decode, read_data};

#[test]
fn every_conformance_program_assembles_to_the_reference_bytes() {
    let dir = conformance_dir();
    let path = dir.join("programs.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let cases: serde_json::Value = serde_json::from_str(&text).expect("programs.json parses");
    let cases = cases.as_array().expect("an array");
    assert_eq!(cases.len(), 313);
    let mut failures = Vec::new();
    let mut raw_checked = 0;
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let want = hex_decode(case["program"].as_str().expect("program")).expect("hex");
        let data = read_data(&dir.join("tests").join(format!("{name}.data")))
            .unwrap_or_else(|e| panic!("{e}"));
        // The .data parser agrees with the suite's own extraction of memory and result.
        let mem = hex_decode(case["mem"].as_str().expect("mem")).expect("hex");
        if data.mem != mem {
            failures.push(format!(
                "{name}: -- mem {:?} != programs.json {mem:?}",
                data.mem
            ));
        }
        let result = case["result"].as_str().expect("result");
        let result = u64::from_str_radix(result.trim_start_matches("0x"), 16).expect("hex result");
        if data.result != Some(result) {
            failures.push(format!(
                "{name}: -- result {:?} != programs.json {result:#x}",
                data.result
            ));
        }
        if let Some(raw) = &data.raw {
            raw_checked += 1;
            if *raw != want {
                failures.push(format!("{name}: -- raw section differs from programs.json"));
            }
        }
        let Some(asm) = &data.asm else {
            failures.push(format!("{name}: no -- asm section"));
            continue;
        };
        match assemble(asm) {
            Ok(insns) => {
                let got = encode_program(&insns, Endian::Little);
                if got != want {
                    failures.push(format!(
                        "{name}: assembled bytes differ\n  got  {}\n  want {}",
                        hex(&got),
                        hex(&want)
                    ));
                }
            }
            Err(e) => failures.push(format!("{name}.data:{}: {e}", data.asm_line + e.line - 1)),
        }
    }
    assert_eq!(
        raw_checked, 1,
        "lddw.data is the one file with a -- raw section"
    );
    assert!(
        failures.is_empty(),
        "{} of {} programs differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
