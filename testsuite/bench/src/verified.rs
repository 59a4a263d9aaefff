//! Checked code on verified programs: the programs of
//! `programs/verified/verified.o` (syscall programs working on the stack
//! and a map value) bound as `bpfc run` binds them (maps created, the
//! verifier's facts recorded), then JIT-compiled three ways: unchecked,
//! checked with the verifier's facts (accesses proven in bounds go
//! unchecked) and checked without them (`--no-verify`). All three and the
//! interpreter must return the same r0; the medians come from interleaved
//! rounds of the same run.

use crate::measure::{Timings, ROUNDS};
use crate::report::ns;
use bpfc_compiler::bind::{BoundProgram, Instance, InstanceOptions};
use bpfc_compiler::codegen::jit::JitProgram;
use bpfc_compiler::codegen::CodegenOptions;
use bpfc_compiler::interp;
use bpfc_compiler::loader::{self, LoadOptions};
use bpfc_runtime::{ExecContext, HelperTable};

const OBJECT: &[u8] = include_bytes!("../programs/verified/verified.o");
/// The context: the seed the programs fill their data from.
const SEED: u64 = 0x2545_f491_4f6c_dd1d;

/// The three compilations, in table order.
const VARIANTS: [(&str, bool, bool); 3] = [
    ("unchecked", false, true),
    ("checked, verified", true, true),
    ("checked, unverified", true, false),
];

fn compile(bound: &BoundProgram, checked: bool, facts: bool) -> Result<JitProgram, String> {
    let mut b = bound.clone();
    if !facts {
        b.facts = None;
    }
    let opts = CodegenOptions {
        checked,
        ..Default::default()
    };
    JitProgram::from_bound(b, &opts, None).map_err(|e| e.to_string())
}

/// Measure every program whose name contains a filter (all without one)
/// and print the table.
pub fn bench(filter: &[String]) -> Result<(), String> {
    let obj = loader::load(OBJECT, &LoadOptions::default()).map_err(|e| e.to_string())?;
    let inst = Instance::new(&obj, &InstanceOptions::default()).map_err(|e| e.to_string())?;
    let helpers = HelperTable::kernel();
    let mut rows = Vec::new();
    for prog in &obj.programs {
        if !filter.is_empty() && !filter.iter().any(|f| prog.name.contains(f.as_str())) {
            continue;
        }
        eprintln!("== {} (verified)", prog.name);
        let bound = inst
            .bind(&obj, prog, &helpers)
            .map_err(|e| format!("{}: {e}", prog.name))?;
        if bound.facts.is_none() {
            return Err(format!("{}: not verified", prog.name));
        }
        let mut ctx = SEED.to_le_bytes();
        let expected = interp::run_bound(
            &bound,
            &mut ctx,
            &mut ExecContext::new(),
            &Default::default(),
        )
        .map_err(|e| format!("{} (interpreter): {e}", prog.name))?;
        let mut progs = Vec::new();
        for (what, checked, facts) in VARIANTS {
            let p = compile(&bound, checked, facts)?;
            let mut ctx = SEED.to_le_bytes();
            let got = p
                .run(&mut ctx, &mut ExecContext::new())
                .map_err(|e| format!("{} ({what}): {e}", prog.name))?;
            if got != expected {
                return Err(format!(
                    "{} ({what}): r0 = {got:#x}, the interpreter gives {expected:#x}",
                    prog.name
                ));
            }
            progs.push(p);
        }
        let mut times: Vec<Timings> = progs.iter().map(|_| Timings::default()).collect();
        let mut ectx = ExecContext::new();
        for _ in 0..ROUNDS {
            for (p, t) in progs.iter().zip(times.iter_mut()) {
                t.round(|| {
                    let mut ctx = SEED.to_le_bytes();
                    p.run(&mut ctx, &mut ectx)
                })
                .map_err(|e| e.to_string())?;
            }
        }
        let medians: Vec<f64> = times.iter().map(|t| t.sample().median_ns).collect();
        for ((what, ..), m) in VARIANTS.iter().zip(&medians) {
            eprintln!("   {what}: {m:.0} ns");
        }
        rows.push((prog.name.clone(), prog.insns.len(), medians));
    }
    println!("\n### Checked code on verified programs (bpfc JIT; median per run, and ratio to unchecked)\n");
    print!("| program | eBPF insns |");
    for (what, ..) in VARIANTS {
        print!(" {what} |");
    }
    println!("\n|---|---:|---:|---:|---:|");
    for (name, insns, m) in &rows {
        print!("| {name} | {insns} |");
        for v in m {
            print!(" {} ({:.2}×) |", ns(*v), v / m[0]);
        }
        println!();
    }
    Ok(())
}
