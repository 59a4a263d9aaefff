//! Fuzz the ELF loader: any bytes must load or give a typed error, never panic.
#![no_main]

use bpfc_compiler::loader::{load, LoadOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = load(data, &LoadOptions::default());
});
