// Throwaway profiling aid (not committed).
use bpfc_compiler::codegen::jit::JitProgram;
use bpfc_compiler::codegen::CodegenOptions;
use bpfc_compiler::isa::{decode_program, Endian};
use bpfc_runtime::HelperTable;
use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let insns = decode_program(&bytes, Endian::Little).unwrap();
    let helpers = HelperTable::conformance();
    let opts = CodegenOptions::default();
    let mut times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let p = JitProgram::new(&insns, &helpers, &opts).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e6);
        drop(p);
    }
    let _ = cranelift_codegen::timing::take_current();
    let n: usize = std::env::args()
        .nth(2)
        .map(|s| s.parse().unwrap())
        .unwrap_or(1);
    let t = Instant::now();
    for _ in 0..n {
        let p = JitProgram::new(&insns, &helpers, &opts).unwrap();
        drop(p);
    }
    println!(
        "wall per compile {:.1} us",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "{} (sum over {n})",
        cranelift_codegen::timing::take_current()
    );
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let med = times[times.len() / 2];
    println!(
        "median {med:.0} us, {:.2} us/insn",
        med / insns.len() as f64
    );
}

#[allow(dead_code)]
pub fn phases() {}
