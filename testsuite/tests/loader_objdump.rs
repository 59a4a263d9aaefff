//! The loader's relocated instructions of every ELF fixture against
//! `llvm-objdump-19 -dr` (the comparison is `loader_common::objdump`).

mod loader_common;

use bpfc_testsuite::{elf_fixtures, tool_or_skip};
use loader_common::objdump::{check_fixture, objdump};

#[test]
fn relocated_instructions_match_llvm_objdump() {
    if !tool_or_skip(
        "relocated_instructions_match_llvm_objdump",
        "llvm-objdump-19",
        "--version",
    ) {
        return;
    }
    let mut total = 0;
    for path in elf_fixtures() {
        let listing = objdump(&path).unwrap();
        let n = check_fixture(&path, &listing);
        assert!(n > 0, "{}", path.display());
        total += n;
    }
    println!("checked {total} instructions against llvm-objdump-19");
}
