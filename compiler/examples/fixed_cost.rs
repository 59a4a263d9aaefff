// Throwaway profiling aid (not committed).
use bpfc_compiler::codegen::jit::JitProgram;
use bpfc_compiler::codegen::{build_isa, CodegenOptions, IsaUse};
use bpfc_compiler::isa::{decode_program, Endian};
use bpfc_runtime::HelperTable;
use cranelift_jit::{JITBuilder, JITModule};
use std::time::Instant;

fn med(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let path = std::env::args().nth(1).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let insns = decode_program(&bytes, Endian::Little).unwrap();
    let helpers = HelperTable::conformance();
    let opts = CodegenOptions::default();
    let host = target_lexicon::Triple::host();
    let n = 200;
    let isa_t = med((0..n)
        .map(|_| {
            let t = Instant::now();
            let i = build_isa(&host, &opts, IsaUse::Jit).unwrap();
            let e = t.elapsed().as_secs_f64() * 1e6;
            drop(i);
            e
        })
        .collect());
    let mod_t = med((0..n)
        .map(|_| {
            let i = build_isa(&host, &opts, IsaUse::Jit).unwrap();
            let t = Instant::now();
            let b = JITBuilder::with_isa(i, cranelift_module::default_libcall_names());
            let m = JITModule::new(b);
            let e = t.elapsed().as_secs_f64() * 1e6;
            drop(m);
            e
        })
        .collect());
    let all_t = med((0..n)
        .map(|_| {
            let t = Instant::now();
            let p = JitProgram::new(&insns, &helpers, &opts).unwrap();
            let e = t.elapsed().as_secs_f64() * 1e6;
            drop(p);
            e
        })
        .collect());
    phases(&insns);
    println!(
        "build_isa {isa_t:.1} us, JITModule::new {mod_t:.1} us, JitProgram::new {all_t:.1} us"
    );
}

#[allow(dead_code)]
fn phases(insns: &[bpfc_compiler::isa::Insn]) {
    use bpfc_compiler::codegen::{compile_program, HelperSet};
    let opts = CodegenOptions::default();
    let host = target_lexicon::Triple::host();
    let (mut a, mut b, mut c) = (vec![], vec![], vec![]);
    for _ in 0..500 {
        let t0 = Instant::now();
        let isa = build_isa(&host, &opts, IsaUse::Jit).unwrap();
        let builder = JITBuilder::with_isa(isa, cranelift_module::default_libcall_names());
        let mut module = JITModule::new(builder);
        let id = compile_program(
            &mut module,
            insns,
            Endian::Little,
            &HelperSet::default(),
            &opts,
            "e",
            None,
        )
        .unwrap();
        let t1 = Instant::now();
        module.finalize_definitions().unwrap();
        let _ = module.get_finalized_function(id);
        let t2 = Instant::now();
        unsafe { module.free_memory() };
        let t3 = Instant::now();
        a.push((t1 - t0).as_secs_f64() * 1e6);
        b.push((t2 - t1).as_secs_f64() * 1e6);
        c.push((t3 - t2).as_secs_f64() * 1e6);
    }
    println!(
        "compile {:.1} finalize {:.1} free {:.1}",
        med(a),
        med(b),
        med(c)
    );
}
