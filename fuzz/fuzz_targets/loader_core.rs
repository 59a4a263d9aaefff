//! Fuzz CO-RE resolution: a fixture with CO-RE relocations (chosen by the
//! input's length) loaded against the input as target BTF (raw BTF or an ELF
//! file with .BTF, so whole fixtures are good seeds). Every input must load
//! or give a typed error.
#![no_main]

use bpfc_compiler::loader::{load, Btf, LoadOptions};
use libfuzzer_sys::fuzz_target;

const OBJECTS: [&[u8]; 4] = [
    include_bytes!("../../testsuite/fixtures/elf/core.o"),
    include_bytes!("../../testsuite/fixtures/elf/core_run.o"),
    include_bytes!("../../testsuite/fixtures/elf/core_vmlinux.o"),
    include_bytes!("../../testsuite/fixtures/elf/core_bad_size.o"),
];

fuzz_target!(|data: &[u8]| {
    let Ok(target) = Btf::parse_target(data) else {
        return;
    };
    let opts = LoadOptions {
        target_btf: Some(target),
        ..Default::default()
    };
    let _ = load(OBJECTS[data.len() % OBJECTS.len()], &opts);
});
