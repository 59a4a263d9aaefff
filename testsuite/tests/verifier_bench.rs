//! Verification time: bpfc's verifier beside the running kernel's on the
//! same programs in the same run. The programs are the kernel's verifier
//! scale programs (testsuite/fixtures/verifier/scale: pyperf, strobemeta,
//! loops, the L4 load balancer), the largest cases of the verifier corpus
//! and the project's own fixtures. For each: bpfc's median time over
//! several runs and its processed instructions; the kernel's
//! `BPF_PROG_LOAD` wall time and the verification time and processed
//! instructions its log reports (`log_level` 4).
//!
//! Ignored by default (it wants a release build and root):
//!
//!     cargo test --release -p bpfc-testsuite --test verifier_bench -- --ignored --nocapture
//!
//! The kernel part is skipped without root.

#![cfg(target_os = "linux")]

use bpfc_compiler::loader::{self, Object, ProgType};
use bpfc_compiler::progtype;
use bpfc_compiler::verifier::{self, Input, Options};
use bpfc_testsuite::kernel_verify::{self as kernel, KernelMaps, LoadSpec, F_SLEEPABLE};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Runs per program (the median is reported).
const RUNS: usize = 5;

/// The program type the kernel's scale test loads each object as
/// (prog_tests/bpf_verif_scale.c).
fn scale_type(name: &str) -> ProgType {
    use ProgType::*;
    match name {
        n if n.starts_with("test_verif_scale") => SchedCls,
        "loop4" | "loop5" => SchedCls,
        "loop6" => Kprobe,
        n if n.starts_with("test_sysctl_loop") => CgroupSysctl,
        "test_xdp_loop" => Xdp,
        "test_seg6_loop" => LwtSeg6local,
        "twfw" => CgroupSkb,
        _ => RawTracepoint,
    }
}

struct Row {
    name: String,
    insns: usize,
    bpfc: Result<(Duration, u64), String>,
    kernel: Result<(Duration, Option<Duration>, Option<u64>), String>,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn objects(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "o"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn measure(obj: &Object, prog: &loader::Program, ty: ProgType, with_kernel: bool) -> Row {
    let kind = loader::classify(prog.section.trim_start_matches('?'));
    let mut opts = Options::new(ty);
    opts.attach_type = kind.attach_type.map(str::to_string);
    opts.sleepable = kind.sleepable || ty == ProgType::Syscall;
    let func_info: Vec<(usize, u32)> = prog.func_info.iter().map(|f| (f.pc, f.type_id)).collect();
    let input = Input {
        insns: &prog.insns,
        maps: &obj.maps,
        btf: obj.btf.as_ref(),
        func_info: &func_info,
        endian: obj.endian,
    };
    let mut times = Vec::new();
    let mut bpfc = Err(String::new());
    for _ in 0..RUNS {
        let t0 = Instant::now();
        let r = verifier::verify(&input, &opts);
        times.push(t0.elapsed());
        bpfc = match r {
            Ok(v) => Ok(v.stats.insns_processed),
            Err(e) => Err(e.message.lines().last().unwrap_or("").to_string()),
        };
    }
    let bpfc = bpfc.map(|n| (median(times), n));
    let kernel = if !with_kernel {
        Err("no privileges".to_string())
    } else {
        (|| {
            let maps = KernelMaps::for_program(obj, &prog.insns)?;
            let insns = maps.patch(&prog.insns);
            let spec = LoadSpec {
                prog_type: kernel::prog_type_number(ty).ok_or("no kernel type")?,
                expected_attach_type: kind.attach_type.map_or(0, kernel::attach_type_number),
                flags: if opts.sleepable { F_SLEEPABLE } else { 0 },
                log_level: 4,
                gpl: true,
            };
            let mut walls = Vec::new();
            let mut vtimes = Vec::new();
            let mut processed = None;
            for _ in 0..RUNS {
                let v = kernel::prog_load(&insns, &spec);
                if !v.accepted {
                    return Err(v.message);
                }
                walls.push(v.elapsed);
                if let Some(t) = v.verification_time {
                    vtimes.push(t);
                }
                processed = v.processed;
            }
            let vt = (!vtimes.is_empty()).then(|| median(vtimes));
            Ok((median(walls), vt, processed))
        })()
    };
    Row {
        name: prog.name.clone(),
        insns: prog.insns.len(),
        bpfc,
        kernel,
    }
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

#[test]
#[ignore]
fn verification_time_against_the_kernel() {
    let with_kernel = kernel::available();
    if !with_kernel {
        bpfc_testsuite::skip(
            "verifier_bench",
            "cannot load BPF programs (needs root): bpfc only",
        );
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut rows: Vec<(String, Row)> = Vec::new();
    // The scale programs.
    for path in objects(&root.join("fixtures/verifier/scale")) {
        let bytes = std::fs::read(&path).unwrap();
        let obj = Object::parse(&bytes).unwrap();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        for p in &obj.programs {
            rows.push((
                format!("scale/{stem}"),
                measure(&obj, p, scale_type(&stem), with_kernel),
            ));
        }
    }
    // The largest accepted cases of the verifier corpus, and the project's
    // fixtures.
    let mut candidates = Vec::new();
    for dir in ["fixtures/verifier", "fixtures/elf", "bench/programs"] {
        for path in objects(&root.join(dir)) {
            let bytes = std::fs::read(&path).unwrap();
            let Ok(obj) = Object::parse(&bytes) else {
                continue;
            };
            for (i, p) in obj.programs.iter().enumerate() {
                let ty = loader::classify(p.section.trim_start_matches('?')).prog_type;
                if !progtype::supported(ty) {
                    continue;
                }
                let func_info: Vec<(usize, u32)> =
                    p.func_info.iter().map(|f| (f.pc, f.type_id)).collect();
                let input = Input {
                    insns: &p.insns,
                    maps: &obj.maps,
                    btf: obj.btf.as_ref(),
                    func_info: &func_info,
                    endian: obj.endian,
                };
                if let Ok(v) = verifier::verify(&input, &Options::new(ty)) {
                    candidates.push((v.stats.insns_processed, path.clone(), i, ty, dir));
                }
            }
        }
    }
    candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
    let mut corpus_taken = 0;
    for (_, path, i, ty, dir) in &candidates {
        if *dir == "fixtures/verifier" {
            if corpus_taken >= 10 {
                continue;
            }
            corpus_taken += 1;
        }
        let bytes = std::fs::read(path).unwrap();
        let obj = Object::parse(&bytes).unwrap();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        rows.push((
            format!("{}/{stem}", dir.rsplit('/').next().unwrap()),
            measure(&obj, &obj.programs[*i], *ty, with_kernel),
        ));
    }
    println!("| program | insns | bpfc processed | bpfc time | kernel processed | kernel verification | kernel BPF_PROG_LOAD |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let (mut faster, mut compared) = (0, 0);
    for (group, r) in &rows {
        let (bp, bt) = match &r.bpfc {
            Ok((t, n)) => (n.to_string(), us(*t)),
            Err(e) => (format!("rejected: {e}"), "–".into()),
        };
        let (kp, kv, kw) = match &r.kernel {
            Ok((w, v, n)) => (
                n.map_or("–".into(), |n| n.to_string()),
                v.map_or("–".into(), us),
                us(*w),
            ),
            Err(e) => (format!("n/a ({e})"), "–".into(), "–".into()),
        };
        if let (Ok((t, _)), Ok((_, Some(v), _))) = (&r.bpfc, &r.kernel) {
            compared += 1;
            if t <= v {
                faster += 1;
            }
        }
        println!(
            "| {group}:{} | {} | {bp} | {bt} | {kp} | {kv} | {kw} |",
            r.name, r.insns
        );
    }
    println!("bpfc at or below the kernel's verification time on {faster} of {compared} programs");
}
