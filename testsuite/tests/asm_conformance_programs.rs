//! The assembler reproduces the reference assembler's output: for every entry
//! of the conformance suite's programs.json, the `-- asm` section of
//! `tests/<name>.data` (and its `-- raw` section, where there is one)
//! assembles to the pre-assembled `program` bytes exactly, and the `.data`
//! parser reads the same `mem` and `result` as programs.json holds.

use bpfc_compiler::asm::assemble;
use bpfc_compiler::isa::{encode_program, Endian};
use bpfc_testsuite::{conformance_dir_or_skip, conformance_programs_or_skip, read_data};

#[test]
fn every_conformance_program_assembles_to_the_reference_bytes() {
    let test = "asm_conformance_programs";
    let (Some(dir), Some(cases)) = (
        conformance_dir_or_skip(test),
        conformance_programs_or_skip(test),
    ) else {
        return;
    };
    assert_eq!(cases.len(), 313);
    let mut failures = Vec::new();
    let mut raw_checked = 0;
    for case in &cases {
        let name = &case.name;
        let want = &case.program;
        let data = read_data(&dir.join("tests").join(format!("{name}.data")))
            .unwrap_or_else(|e| panic!("{e}"));
        // The .data parser agrees with the suite's own extraction of memory and result.
        if data.mem != case.mem {
            failures.push(format!(
                "{name}: -- mem {:?} != programs.json {:?}",
                data.mem, case.mem
            ));
        }
        if data.result != Some(case.result) {
            failures.push(format!(
                "{name}: -- result {:?} != programs.json {:#x}",
                data.result, case.result
            ));
        }
        if let Some(raw) = &data.raw {
            raw_checked += 1;
            if raw != want {
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
                if got != *want {
                    failures.push(format!(
                        "{name}: assembled bytes differ\n  got  {}\n  want {}",
                        hex(&got),
                        hex(want)
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
