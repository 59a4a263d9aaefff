//! The example shipped for the README: its committed binary is what its
//! source assembles to, and it computes what its comment says.

use bpfc_compiler::{asm, interp, isa};
use bpfc_runtime::{ExecContext, HelperTable};
use bpfc_testsuite::workspace_root;

#[test]
fn primes_example_is_current_and_counts_168() {
    let dir = workspace_root().join("testsuite/examples");
    let src = std::fs::read_to_string(dir.join("primes.s")).unwrap();
    let bin = std::fs::read(dir.join("primes.bin")).unwrap();
    let insns = asm::assemble(&src).unwrap();
    assert_eq!(
        isa::encode_program(&insns, isa::Endian::Little),
        bin,
        "primes.bin is stale: rerun `bpfc asm`"
    );
    let r0 = interp::run(
        &insns,
        &mut [],
        &HelperTable::new(),
        &mut ExecContext::new(),
        &Default::default(),
    )
    .unwrap();
    assert_eq!(r0, 168);
}
