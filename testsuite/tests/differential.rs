//! Differential testing: generated programs (`bpfc_testsuite::gen`) run on
//! the reference interpreter and on the Cranelift JIT, checked and
//! unchecked; r0, the final input buffer, faults (with their pc) and, for
//! programs with maps, every map's contents after the run must agree. Map
//! programs get fresh maps per run and prog arrays holding tail targets of
//! the same engine; a test helper ([`gen::FAIL_HELPER`]) fails on odd r1.
//! One case in 50 without maps or helpers other than 5 also runs as a
//! checked AOT object (linked with the C driver) and must agree.
//! Programs the verifier accepts (as `syscall` programs, whose context is the input)
//! also run as checked code without the checks the verifier's facts drop;
//! one case in four comes from the generator's verifiable mode for that.
//!
//! - `BPFC_DIFF_CASES`: number of programs (default 10000).
//! - `BPFC_DIFF_SEED`: base seed (decimal or 0x-hex; default fixed, `random`
//!   picks one from the clock). Printed on every run.
//! - `BPFC_DIFF_ONLY`: run only the case with this case seed (as printed on
//!   a failure).

use bpfc_compiler::bind::BoundProgram;
use bpfc_compiler::codegen::aot::compile_object;
use bpfc_compiler::codegen::jit::{self, JitError, JitProgram};
use bpfc_compiler::codegen::{parse_triple, Binding, CodegenOptions, OptLevel, Request};
use bpfc_compiler::disasm::{disassemble, Syntax};
use bpfc_compiler::interp::{self, InterpProgram, RunError};
use bpfc_compiler::isa::{CallTarget, Endian, Insn};
use bpfc_compiler::loader::ProgType;
use bpfc_compiler::verifier::{self, Facts};
use bpfc_runtime::abi::{FaultCode, RunState};
use bpfc_runtime::maps::prog_array::ProgArray;
use bpfc_runtime::maps::{Map, MapSpec, MapType};
use bpfc_runtime::programs::TailTarget;
use bpfc_runtime::{ExecContext, HelperTable};
use bpfc_testsuite::aot;
use bpfc_testsuite::gen::{self, case_seed, generate, generate_verifiable, Generated, MapKind};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

const DEFAULT_SEED: u64 = 0x6270_6663_6469_6666;
const MAX_INSNS: u64 = 100_000;
/// Failures printed in full.
const MAX_REPORTS: usize = 3;

/// The outcome of one run in engine-neutral terms.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Ok(u64),
    Fault { code: FaultCode, pc: usize },
}

/// Interpreter result mapped to the JIT's fault kinds; `None`: not comparable
/// (instruction limit) — the case is skipped.
fn interp_outcome(r: &Result<u64, RunError>) -> Result<Option<Outcome>, String> {
    Ok(Some(match r {
        Ok(v) => Outcome::Ok(*v),
        Err(RunError::InsnLimit { .. }) => return Ok(None),
        Err(RunError::OutOfBounds { pc, .. } | RunError::ReadOnly { pc, .. }) => Outcome::Fault {
            code: FaultCode::OutOfBounds,
            pc: *pc,
        },
        Err(RunError::CallDepth { pc, .. }) => Outcome::Fault {
            code: FaultCode::CallDepth,
            pc: *pc,
        },
        Err(RunError::UnknownHelper { pc, .. }) => Outcome::Fault {
            code: FaultCode::UnknownHelper,
            pc: *pc,
        },
        Err(RunError::HelperFault { pc, .. }) => Outcome::Fault {
            code: FaultCode::HelperFault,
            pc: *pc,
        },
        Err(e) => return Err(format!("unexpected interpreter error: {e}")),
    }))
}

fn jit_outcome(r: &Result<u64, JitError>) -> Result<Outcome, String> {
    match r {
        Ok(v) => Ok(Outcome::Ok(*v)),
        Err(JitError::Fault { pc, code, .. }) => Ok(Outcome::Fault {
            code: *code,
            pc: *pc,
        }),
        Err(e) => Err(format!("unexpected JIT error: {e}")),
    }
}

enum CaseResult {
    /// Agreed; the outcome's kind (index into `KINDS`).
    Pass(usize),
    Skipped,
    Fail(String),
}

fn report(g: &Generated, what: &str, details: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "case seed {:#018x} (rerun: BPFC_DIFF_ONLY={:#x}), {:?}-endian machine: {what}",
        g.seed,
        g.seed,
        machine_order(g)
    );
    s.push_str(details);
    let _ = writeln!(s, "input: {}", hex(&g.input));
    let _ = writeln!(s, "--- program (LLVM syntax)");
    s.push_str(&disassemble(&g.insns, Syntax::Llvm));
    for (i, t) in g.tail_targets.iter().enumerate() {
        let _ = writeln!(s, "--- tail target in slot {i} (LLVM syntax)");
        s.push_str(&disassemble(t, Syntax::Llvm));
    }
    let _ = writeln!(s, "--- program (conformance syntax)");
    s.push_str(&disassemble(&g.insns, Syntax::Conformance));
    s
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The test helper [`gen::FAIL_HELPER`]: fails on an odd r1, else `r1 * 3`.
unsafe extern "C" fn fail_odd(r1: u64, _: u64, _: u64, _: u64, _: u64, st: *mut RunState) -> u64 {
    if r1 & 1 == 1 {
        // SAFETY: the engine passes its live run state.
        return bpfc_runtime::helpers::fail(unsafe { &mut *st }, "odd argument");
    }
    r1.wrapping_mul(3)
}

/// The helpers of generated programs: the conformance suite's helper 5,
/// the map helpers and the failing helper.
fn helper_table() -> HelperTable {
    let mut t = HelperTable::conformance();
    let kernel = HelperTable::kernel();
    for id in [1, 2, 3] {
        t.insert(*kernel.get(id).expect("a kernel map helper"));
    }
    t.add(gen::FAIL_HELPER as u32, "fail_odd", fail_odd);
    t
}

/// Fresh maps for one run of a map program.
fn make_maps() -> Vec<Option<Arc<Map>>> {
    gen::MAPS
        .iter()
        .map(|&(name, kind, key, value, n)| {
            let t = match kind {
                MapKind::Array => MapType::Array,
                MapKind::Hash => MapType::Hash,
                MapKind::ProgArray => MapType::ProgArray,
            };
            Some(Map::create(&MapSpec::new(name, t, key, value, n, 0)).expect("creating a map"))
        })
        .collect()
}

fn bound(insns: &[Insn], helpers: &HelperTable, maps: &[Option<Arc<Map>>]) -> BoundProgram {
    BoundProgram {
        maps: maps.to_vec(),
        ..BoundProgram::raw(insns, Endian::Little, helpers)
    }
}

/// Put the tail targets into the prog array (slots 0..).
fn fill_progs(maps: &[Option<Arc<Map>>], targets: Vec<Arc<dyn TailTarget>>) {
    let m = maps[2].as_ref().expect("the prog array");
    let arr = m
        .imp()
        .as_any()
        .downcast_ref::<ProgArray>()
        .expect("a prog array");
    for (i, t) in targets.into_iter().enumerate() {
        arr.set(i as u32, t).expect("filling a prog array slot");
    }
}

/// Every map's entries after a run (sorted), and the prog array emptied
/// (its programs hold the maps: the cycle is broken here).
fn dump_maps(maps: &[Option<Arc<Map>>]) -> String {
    let mut s = String::new();
    for m in maps.iter().flatten() {
        if m.map_type() == MapType::ProgArray {
            for i in 0..m.spec().max_entries {
                let _ = m.delete(&i.to_ne_bytes());
            }
            continue;
        }
        let mut e = m.entries().expect("dumping a map");
        e.sort();
        let _ = write!(s, "{}:", m.name());
        for (k, v) in e {
            if v.iter().any(|b| *b != 0) || m.map_type() == MapType::Hash {
                let _ = write!(s, " {}={}", hex(&k), hex(&v));
            }
        }
        s.push('\n');
    }
    s
}

/// One case in four runs as a big-endian eBPF machine (as `bpfeb` bytecode
/// does): memory in big-endian order and `le`/`be` swapped, which the JIT
/// implements with byte swaps on this little-endian host.
fn machine_order(g: &Generated) -> Endian {
    if !g.maps && (g.seed >> 8).is_multiple_of(4) {
        Endian::Big
    } else {
        Endian::Little
    }
}

/// The verifier's facts when it accepts the program as a `syscall` program
/// (r1: the input, of any length up to 64 KiB; its bounds stay checked).
fn verified(g: &Generated) -> Option<Facts> {
    let input = verifier::Input {
        insns: &g.insns,
        maps: &[],
        btf: None,
        func_info: &[],
        endian: machine_order(g),
    };
    let mut opts = verifier::Options::new(ProgType::Syscall);
    opts.sleepable = true;
    opts.max_insns = 200_000;
    verifier::verify(&input, &opts).ok().map(|v| v.facts)
}

fn run_jit(
    g: &Generated,
    helpers: &HelperTable,
    checked: bool,
    facts: Option<Facts>,
) -> Result<(Outcome, Vec<u8>, String), String> {
    // Unchecked code is compiled at Speed; checked code mostly at None
    // (cheaper to compile), one case in four at Speed.
    let opt_level = if checked && !g.seed.is_multiple_of(4) {
        OptLevel::None
    } else {
        OptLevel::Speed
    };
    let opts = CodegenOptions {
        opt_level,
        checked,
        insn_limit: None,
    };
    let compile_err = |e| format!("JIT compile (checked={checked}) failed: {e}");
    let mut mem = g.input.clone();
    let mut ctx = ExecContext::new();
    if !g.maps {
        let mut b = BoundProgram::raw(&g.insns, machine_order(g), helpers);
        b.facts = facts;
        let prog = JitProgram::from_bound(b, &opts, None).map_err(compile_err)?;
        let r = prog.run(&mut mem, &mut ctx);
        return Ok((jit_outcome(&r)?, mem, String::new()));
    }
    let maps = make_maps();
    let mut targets: Vec<Arc<dyn TailTarget>> = Vec::new();
    for t in &g.tail_targets {
        let p =
            JitProgram::from_bound(bound(t, helpers, &maps), &opts, None).map_err(compile_err)?;
        targets.push(jit::share(p));
    }
    fill_progs(&maps, targets);
    let prog = JitProgram::from_bound(bound(&g.insns, helpers, &maps), &opts, None)
        .map_err(compile_err)?;
    let r = prog.run(&mut mem, &mut ctx);
    Ok((jit_outcome(&r)?, mem, dump_maps(&maps)))
}

/// Cases the verifier accepted, run as checked code with its facts too.
static VERIFIED: AtomicUsize = AtomicUsize::new(0);

/// The interpreter's run; map programs with fresh maps and tail targets.
fn run_interp(g: &Generated, helpers: &HelperTable) -> (Result<u64, RunError>, Vec<u8>, String) {
    let mut mem = g.input.clone();
    let mut ctx = ExecContext::new();
    let opts = interp::Options {
        max_insns: Some(MAX_INSNS),
        endian: machine_order(g),
    };
    if !g.maps {
        let r = interp::run(&g.insns, &mut mem, helpers, &mut ctx, &opts);
        return (r, mem, String::new());
    }
    let maps = make_maps();
    let targets = g
        .tail_targets
        .iter()
        .map(|t| InterpProgram::share(bound(t, helpers, &maps)) as Arc<dyn TailTarget>)
        .collect();
    fill_progs(&maps, targets);
    let r = interp::run_bound(&bound(&g.insns, helpers, &maps), &mut mem, &mut ctx, &opts);
    (r, mem, dump_maps(&maps))
}

/// One case in 50 that uses no maps and calls no helper but 5 (the only one
/// the AOT driver defines) also runs as a checked AOT object for this host,
/// linked with the C driver of `bpfc_testsuite::aot`: its r0, or its fault
/// and pc, must be the interpreter's (the driver does not report the input
/// after the run).
fn aot_eligible(g: &Generated) -> bool {
    !g.maps
        && (g.seed >> 24).is_multiple_of(50)
        && g.insns.iter().all(|i| match i {
            Insn::Call(CallTarget::Helper(id)) => *id == 5,
            _ => true,
        })
}

fn run_aot(g: &Generated) -> Result<Outcome, String> {
    let opts = CodegenOptions {
        opt_level: OptLevel::Speed,
        checked: true,
        insn_limit: None,
    };
    let triple = parse_triple(aot::AotTarget::X86_64.triple).map_err(|e| e.to_string())?;
    let object = compile_object(
        &Request {
            insns: &g.insns,
            endian: machine_order(g),
            binding: &Binding::object(&[5]),
            opts: &opts,
            symbol: "diff_prog",
            facts: None,
        },
        &triple,
        None,
    )
    .map_err(|e| format!("AOT compile failed: {e}"))?;
    match aot::link_and_run(&aot::AotTarget::X86_64, &object, "diff_prog", &g.input) {
        Ok(r0) => Ok(Outcome::Ok(r0)),
        Err(aot::AotRunError::Fault { code, pc, .. }) => Ok(Outcome::Fault {
            code: FaultCode::from_raw(code).ok_or(format!("AOT fault code {code}"))?,
            pc: pc as usize,
        }),
        Err(e) => Err(format!("AOT run failed: {e}")),
    }
}

/// Whether the AOT toolchain is here (checked once; a skip line if not).
fn aot_available() -> bool {
    static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OK.get_or_init(|| match aot::tool_available(&aot::AotTarget::X86_64) {
        Ok(()) => true,
        Err(e) => {
            bpfc_testsuite::skip("differential (AOT cases)", &e);
            false
        }
    })
}

static AOT_CASES: AtomicUsize = AtomicUsize::new(0);

/// Map programs run, those that left entries in a map, those with tail targets.
static MAP_CASES: AtomicUsize = AtomicUsize::new(0);
static MAP_WRITES: AtomicUsize = AtomicUsize::new(0);
static TAIL_CASES: AtomicUsize = AtomicUsize::new(0);

fn check_case(seed: u64, helpers: &HelperTable) -> CaseResult {
    // One case in four comes from the verifiable generator.
    let g = if (seed >> 16).is_multiple_of(4) {
        generate_verifiable(seed)
    } else {
        generate(seed)
    };
    let (ir, imem, imaps) = run_interp(&g, helpers);
    if g.maps {
        MAP_CASES.fetch_add(1, Ordering::Relaxed);
        if imaps.contains('=') {
            MAP_WRITES.fetch_add(1, Ordering::Relaxed);
        }
        if !g.tail_targets.is_empty() {
            TAIL_CASES.fetch_add(1, Ordering::Relaxed);
        }
    }
    let iout = match interp_outcome(&ir) {
        Ok(Some(o)) => o,
        Ok(None) => return CaseResult::Skipped,
        Err(e) => return CaseResult::Fail(report(&g, &e, "")),
    };
    if !g.may_fault && !matches!(iout, Outcome::Ok(_)) {
        return CaseResult::Fail(report(
            &g,
            "generator bug: a program without deliberate faults faulted",
            &format!("interpreter: {ir:?}\n"),
        ));
    }
    let memory_fault = matches!(
        iout,
        Outcome::Fault {
            code: FaultCode::OutOfBounds,
            ..
        }
    );
    let facts = verified(&g);
    let mut runs = vec![(true, None), (false, None)];
    if let Some(f) = facts {
        VERIFIED.fetch_add(1, Ordering::Relaxed);
        runs.push((true, Some(f)));
    }
    for (checked, facts) in runs {
        if !checked && memory_fault {
            continue;
        }
        let what = match (checked, facts.is_some()) {
            (true, true) => "checked=true, verified",
            (true, false) => "checked=true",
            _ => "checked=false",
        };
        let (jout, jmem, jmaps) = match run_jit(&g, helpers, checked, facts) {
            Ok(x) => x,
            Err(e) => return CaseResult::Fail(report(&g, &e, &format!("interpreter: {ir:?}\n"))),
        };
        if jout != iout || jmem != imem || jmaps != imaps {
            let mut d = String::new();
            let _ = writeln!(d, "interpreter:   {iout:x?}  ({ir:?})");
            let _ = writeln!(d, "jit ({what}): {jout:x?}");
            if jmem != imem {
                let _ = writeln!(d, "input after interpreter: {}", hex(&imem));
                let _ = writeln!(d, "input after jit:         {}", hex(&jmem));
            }
            if jmaps != imaps {
                let _ = writeln!(d, "maps after interpreter:\n{imaps}");
                let _ = writeln!(d, "maps after jit:\n{jmaps}");
            }
            return CaseResult::Fail(report(
                &g,
                &format!("interpreter and JIT ({what}) disagree"),
                &d,
            ));
        }
    }
    if aot_eligible(&g) && aot_available() {
        AOT_CASES.fetch_add(1, Ordering::Relaxed);
        match run_aot(&g) {
            Ok(aout) if aout == iout => {}
            Ok(aout) => {
                return CaseResult::Fail(report(
                    &g,
                    "interpreter and AOT (checked) disagree",
                    &format!("interpreter: {iout:x?}  ({ir:?})\naot:         {aout:x?}\n"),
                ))
            }
            Err(e) => return CaseResult::Fail(report(&g, &e, &format!("interpreter: {ir:?}\n"))),
        }
    }
    CaseResult::Pass(kind(&iout))
}

const KINDS: [&str; 5] = [
    "ok",
    "out-of-bounds",
    "call-depth",
    "unknown-helper",
    "helper-fault",
];

fn kind(o: &Outcome) -> usize {
    match o {
        Outcome::Ok(_) => 0,
        Outcome::Fault {
            code: FaultCode::OutOfBounds,
            ..
        } => 1,
        Outcome::Fault {
            code: FaultCode::CallDepth,
            ..
        } => 2,
        Outcome::Fault {
            code: FaultCode::HelperFault,
            ..
        } => 4,
        Outcome::Fault { .. } => 3,
    }
}

fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

#[test]
fn interpreter_and_jit_agree() {
    let helpers = helper_table();
    if let Some(only) = std::env::var("BPFC_DIFF_ONLY")
        .ok()
        .and_then(|s| parse_u64(&s))
    {
        match check_case(only, &helpers) {
            CaseResult::Fail(r) => panic!("{r}"),
            CaseResult::Skipped => println!("case {only:#x}: skipped (instruction limit)"),
            CaseResult::Pass(k) => println!("case {only:#x}: pass ({})", KINDS[k]),
        }
        return;
    }
    let cases: u64 = std::env::var("BPFC_DIFF_CASES")
        .ok()
        .and_then(|s| parse_u64(&s))
        .unwrap_or(10_000);
    let base = match std::env::var("BPFC_DIFF_SEED").ok() {
        Some(s) if s == "random" => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
        Some(s) => parse_u64(&s).unwrap_or_else(|| panic!("bad BPFC_DIFF_SEED '{s}'")),
        None => DEFAULT_SEED,
    };
    println!("differential: {cases} cases, BPFC_DIFF_SEED={base:#x}");
    let start = Instant::now();
    let next = AtomicUsize::new(0);
    let passed: [AtomicUsize; KINDS.len()] = Default::default();
    let skipped = AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::<(u64, String)>::new());
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(4);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as u64;
                if i >= cases {
                    break;
                }
                match check_case(case_seed(base, i), &helpers) {
                    CaseResult::Pass(k) => {
                        passed[k].fetch_add(1, Ordering::Relaxed);
                    }
                    CaseResult::Skipped => {
                        skipped.fetch_add(1, Ordering::Relaxed);
                    }
                    CaseResult::Fail(r) => {
                        if let Ok(mut f) = failures.lock() {
                            f.push((i, r));
                        }
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap_or_default();
    failures.sort_by_key(|(i, _)| *i);
    let passed = passed.map(|a| a.into_inner());
    let skipped = skipped.into_inner();
    let by_kind: Vec<String> = KINDS
        .iter()
        .zip(passed)
        .map(|(k, n)| format!("{n} {k}"))
        .collect();
    let verified = VERIFIED.load(Ordering::Relaxed);
    println!(
        "differential: {} agreed ({}), {skipped} skipped (instruction limit), {} failed, {:.1?}; \
         {verified} accepted by the verifier also ran checked without the checks it proved",
        passed.iter().sum::<usize>(),
        by_kind.join(", "),
        failures.len(),
        start.elapsed()
    );
    let (map_cases, map_writes, tail_cases) = (
        MAP_CASES.load(Ordering::Relaxed),
        MAP_WRITES.load(Ordering::Relaxed),
        TAIL_CASES.load(Ordering::Relaxed),
    );
    let aot_cases = AOT_CASES.load(Ordering::Relaxed);
    println!(
        "differential: {map_cases} programs with maps ({map_writes} left map entries), {tail_cases} with tail targets; {aot_cases} also ran as AOT objects"
    );
    // The generator must keep reaching every outcome, faults included.
    if cases >= 1000 {
        assert!(
            map_writes > 0 && tail_cases > 0,
            "no map or tail-call programs"
        );
        assert!(
            aot_cases > 0 || !aot_available(),
            "no case ran as an AOT object"
        );
        for (k, n) in KINDS.iter().zip(passed) {
            assert!(n > 0, "no case ended with outcome '{k}'");
        }
    }
    // Verified code must keep being exercised.
    if cases >= 1000 {
        assert!(
            verified * 20 >= cases as usize,
            "only {verified} of {cases} cases verified"
        );
    }
    // Skips must stay rare or the test silently stops testing.
    assert!(
        (skipped as u64) * 100 <= cases,
        "{skipped} of {cases} cases hit the instruction limit"
    );
    if !failures.is_empty() {
        for (_, r) in failures.iter().take(MAX_REPORTS) {
            eprintln!("{r}\n");
        }
        panic!(
            "{} of {cases} generated programs disagree (BPFC_DIFF_SEED={base:#x}); first shown above",
            failures.len()
        );
    }
}
