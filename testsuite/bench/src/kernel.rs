//! bpfc-bench-kernel: bpfc's JIT beside the running kernel on the same
//! object (`kernel/progs.c`, XDP programs that ignore their packet): map
//! lookups and updates, LPM lookups, tail calls, bpf_loop and ring buffer
//! output. The kernel runs each program with `BPF_PROG_TEST_RUN` and
//! `repeat` (its reported duration: the average ns per run, measured in the
//! kernel around the program calls); bpfc runs the same program the same
//! number of times through `JitProgram::run` and takes the wall time over
//! the loop divided by the runs. Each figure is the median of `ROUNDS`
//! rounds; a round loads the object afresh on both sides (fresh maps) and
//! interleaves kernel and bpfc. Per-operation figures subtract the `empty`
//! program's per-run time and divide by the operations a run makes.
//!
//! Needs root (the kernel side); prints a markdown table on stdout,
//! progress on stderr. Usage: `bpfc-bench-kernel [FILTER...]`.

use bpfc_compiler::bind::{Instance, InstanceOptions};
use bpfc_compiler::codegen::jit::{self, JitProgram};
use bpfc_compiler::codegen::{CodegenOptions, OptLevel};
use bpfc_compiler::loader::{self, Object};
use bpfc_runtime::maps::Map;
use bpfc_runtime::programs::TailTarget;
use bpfc_runtime::{ExecContext, HelperTable};
use bpfc_testsuite::kernel_run::{self, Driver, KernelRun};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

const ROUNDS: usize = 7;

/// (program, what one operation is, operations per run, runs per round).
const PROGRAMS: [(&str, &str, u32, u32); 7] = [
    ("empty", "one run of an empty program", 1, 200_000),
    ("array_inc", "array lookup + increment", 256, 20_000),
    ("hash_ops", "hash update + lookup (4-byte key)", 256, 4_000),
    (
        "lpm_lookup",
        "LPM trie lookup (/32 in 64 prefixes)",
        256,
        4_000,
    ),
    ("chain", "tail call (33 per run)", 33, 100_000),
    ("loop", "bpf_loop iteration, trivial callback", 1000, 10_000),
    ("ringbuf", "ring buffer output, 8 bytes", 1, 100_000),
];

fn object_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kernel/progs.o")
}

/// The LPM prefixes both sides start with: 64 prefixes of 10.0.0.0/8
/// (/16 and /24), value = their number.
fn lpm_entries() -> Vec<(Vec<u8>, Vec<u8>)> {
    (0..64u32)
        .map(|i| {
            let (len, addr) = if i % 2 == 0 {
                (16, 0x0a00_0000 | (i << 16))
            } else {
                (24, 0x0a00_0000 | (i << 16) | (i << 8))
            };
            let mut key = (len as u32).to_ne_bytes().to_vec();
            key.extend(addr.to_be_bytes());
            (key, (i + 1).to_ne_bytes().to_vec())
        })
        .collect()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One kernel round: ns per run as the kernel reports it.
fn kernel_round(driver: &Driver, prog: &str, runs: u32) -> Result<f64, String> {
    let lpm: Vec<_> = lpm_entries()
        .into_iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect();
    let run = KernelRun {
        data_in: vec![0; 64],
        repeat: runs,
        maps_in: (prog == "lpm_lookup").then(|| json!({ "lpm": lpm })),
        ..Default::default()
    };
    let r = driver.run(&object_path(), prog, &run)?;
    if r.retval != 2 {
        return Err(format!(
            "{prog}: the kernel returned {} (want XDP_PASS)",
            r.retval
        ));
    }
    Ok(r.duration as f64)
}

/// One bpfc round: fresh maps, the program compiled, `runs` runs timed.
fn bpfc_round(obj: &Object, prog: &str, runs: u32, checked: bool) -> Result<f64, String> {
    let inst = Instance::new(obj, &InstanceOptions::default()).map_err(|e| e.to_string())?;
    if prog == "lpm_lookup" {
        let m: &Arc<Map> = inst.map("lpm").ok_or("no map lpm")?;
        for (k, v) in lpm_entries() {
            m.update(&k, &v, 0).map_err(|e| e.to_string())?;
        }
    }
    let helpers = HelperTable::kernel();
    let opts = CodegenOptions {
        opt_level: OptLevel::Speed,
        checked,
        insn_limit: None,
    };
    let compile = |name: &str| -> Result<Arc<JitProgram>, String> {
        let p = obj
            .programs
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| format!("no program {name}"))?;
        let bound = inst.bind(obj, p, &helpers).map_err(|e| e.to_string())?;
        let jit = JitProgram::from_bound(bound, &opts, None).map_err(|e| e.to_string())?;
        Ok(jit::share(jit))
    };
    let main = compile(prog)?;
    inst.fill_prog_arrays(|name| {
        if name == prog {
            Some(main.clone() as Arc<dyn TailTarget>)
        } else {
            compile(name).ok().map(|p| p as Arc<dyn TailTarget>)
        }
    })
    .map_err(|e| e.to_string())?;
    let mut ctx = ExecContext::new();
    let mut buf = [0u8; 64];
    let r = main.run(&mut buf, &mut ctx).map_err(|e| e.to_string())?;
    if r != 2 {
        return Err(format!("{prog}: bpfc returned {r} (want XDP_PASS)"));
    }
    let start = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(main.run(&mut buf, &mut ctx).map_err(|e| e.to_string())?);
    }
    let ns = start.elapsed().as_nanos() as f64 / runs as f64;
    // The prog array holds programs that hold it: empty it.
    if let Some(m) = inst.map("progs") {
        let _ = m.delete(&0u32.to_ne_bytes());
    }
    Ok(ns)
}

fn main() {
    let filters: Vec<String> = std::env::args().skip(1).collect();
    let Some(driver) = kernel_run::driver("bpfc-bench-kernel") else {
        eprintln!("bpfc-bench-kernel: the kernel side needs root and libbpf-dev");
        std::process::exit(1);
    };
    let obj = loader::load(
        &std::fs::read(object_path()).expect("kernel/progs.o"),
        &Default::default(),
    )
    .expect("loading kernel/progs.o");
    // (kernel, bpfc, bpfc checked) ns per run, by program.
    let mut rows = Vec::new();
    for &(prog, what, ops, runs) in &PROGRAMS {
        if prog != "empty"
            && !filters.is_empty()
            && !filters.iter().any(|f| prog.contains(f.as_str()))
        {
            continue;
        }
        let (mut k, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            eprintln!("{prog}: round {}/{ROUNDS}", round + 1);
            let run = || -> Result<(f64, f64, f64), String> {
                Ok((
                    kernel_round(&driver, prog, runs)?,
                    bpfc_round(&obj, prog, runs, false)?,
                    bpfc_round(&obj, prog, runs, true)?,
                ))
            };
            match run() {
                Ok((x, y, z)) => {
                    k.push(x);
                    b.push(y);
                    c.push(z);
                }
                Err(e) => {
                    eprintln!("bpfc-bench-kernel: {e}");
                    std::process::exit(1);
                }
            }
        }
        rows.push((
            prog,
            what,
            ops,
            median(&mut k),
            median(&mut b),
            median(&mut c),
        ));
    }
    let base = rows
        .iter()
        .find(|r| r.0 == "empty")
        .map(|r| (r.3, r.4, r.5));
    println!("| operation | ops/run | kernel ns/run | bpfc JIT ns/run | kernel ns/op | bpfc JIT ns/op | bpfc/kernel | bpfc checked ns/op |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (prog, what, ops, k, b, c) in &rows {
        let (kb, bb, cb) = match (prog, base) {
            (&"empty", _) | (_, None) => (0.0, 0.0, 0.0),
            (_, Some(x)) => x,
        };
        let per = |t: f64, base: f64| ((t - base) / *ops as f64).max(0.0);
        let (kp, bp, cp) = (per(*k, kb), per(*b, bb), per(*c, cb));
        println!(
            "| {what} (`{prog}`) | {ops} | {k:.1} | {b:.1} | {kp:.2} | {bp:.2} | {:.2} | {cp:.2} |",
            bp / kp
        );
    }
}
