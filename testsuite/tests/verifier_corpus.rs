//! The kernel's own verifier tests (tools/testing/selftests/bpf/progs/
//! verifier_*.c, built by testsuite/fixtures/verifier/build.sh) against
//! bpfc's verifier: each program's expected privileged verdict and
//! messages come from its BTF decl tags (`__success`, `__failure`,
//! `__msg`, `__retval`, `__flag` ... as the selftests' test_loader reads
//! them); unprivileged-only cases do not apply.
//!
//! Prints `N agree, M differ (U unsound, S too strict) of T` for the
//! program types bpfc models, one line per disagreement, and how many
//! agreeing rejections carry the kernel's message. Fails when an unsound
//! verdict about memory safety appears or agreement drops below the
//! recorded floor. `BPFC_VERIFIER_CORPUS_DIR` points it at freshly built
//! objects; `BPFC_VERIFIER_CORPUS_VERBOSE=1` prints every case.
//!
//! Also: accepted cases with `__retval` that need no context, maps or
//! helpers run in the interpreter and JIT code and must return the
//! kernel's value; the kernel's verifier scale programs must be accepted.

use bpfc_compiler::codegen::{jit::JitProgram, CodegenOptions};
use bpfc_compiler::interp;
use bpfc_compiler::isa::{CallTarget, Insn, LddwSrc};
use bpfc_compiler::loader::{self, Btf, Object, ProgType};
use bpfc_compiler::progtype;
use bpfc_compiler::verifier::{self, Input, Options};
use bpfc_runtime::{ExecContext, HelperTable};
use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
use std::path::{Path, PathBuf};

/// Agreement (percent of applicable cases) below which the test fails.
const AGREEMENT_FLOOR: f64 = 97.0;

/// One test case: a program and what the kernel must say about it.
#[derive(Clone, Debug)]
struct Case {
    object: String,
    name: String,
    section: String,
    description: String,
    expect_failure: bool,
    msgs: Vec<String>,
    retval: Option<i64>,
    /// The expected return value depends on the test run's input
    /// (`POINTER_VALUE`, `TEST_DATA_LEN`).
    retval_symbolic: bool,
    flags: Vec<String>,
    log_level: u32,
}

/// The test cases of one object, from its ELF symbols and BTF decl tags.
fn cases(path: &Path) -> Result<Vec<Case>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let elf = object::File::parse(&*bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let btf_data = elf
        .section_by_name(".BTF")
        .ok_or_else(|| format!("{}: no .BTF", path.display()))?
        .data()
        .map_err(|e| e.to_string())?;
    let btf =
        Btf::parse(btf_data, bpfc_compiler::isa::Endian::Little).map_err(|e| e.to_string())?;
    let object = path.file_stem().unwrap().to_string_lossy().into_owned();
    let mut out = Vec::new();
    for sym in elf.symbols() {
        if sym.kind() != object::SymbolKind::Text || !sym.is_global() {
            continue;
        }
        let Some(idx) = sym.section_index() else {
            continue;
        };
        let section = elf.section_by_index(idx).map_err(|e| e.to_string())?;
        let section = section.name().map_err(|e| e.to_string())?.to_string();
        if section == ".text" {
            continue;
        }
        let name = sym.name().map_err(|e| e.to_string())?.to_string();
        let Some(func_id) = btf.find(&name, 12) else {
            continue;
        };
        let tags: Vec<String> = btf
            .types
            .iter()
            .filter_map(|t| match t.kind {
                loader::btf::TypeKind::DeclTag {
                    type_id,
                    component_idx: -1,
                } if type_id == func_id => Some(t.name.clone()),
                _ => None,
            })
            .collect();
        let mut c = Case {
            object: object.clone(),
            name: name.clone(),
            section: section.clone(),
            description: name.clone(),
            expect_failure: false,
            msgs: Vec::new(),
            retval: None,
            retval_symbolic: false,
            flags: Vec::new(),
            log_level: 0,
        };
        let (mut priv_mode, mut unpriv, mut aux, mut arch) = (false, false, false, Vec::new());
        for t in &tags {
            let Some(t) = t.strip_prefix("comment:") else {
                continue;
            };
            let dynamic = |pfx: &str| {
                t.strip_prefix(pfx)
                    .and_then(|r| r.split_once('='))
                    .map(|(_, m)| m.to_string())
            };
            if let Some(d) = t.strip_prefix("test_description=") {
                c.description = d.to_string();
            } else if t == "test_expect_failure" {
                c.expect_failure = true;
                priv_mode = true;
            } else if t == "test_expect_success" {
                priv_mode = true;
            } else if t == "test_auxiliary" {
                aux = true;
                priv_mode = true;
            } else if let Some(m) = dynamic("test_expect_msg=") {
                c.msgs.push(m);
                priv_mode = true;
            } else if t.starts_with("test_expect_xlated=") {
                priv_mode = true;
            } else if let Some(v) = t.strip_prefix("test_retval=") {
                c.retval_symbolic = matches!(v, "POINTER_VALUE" | "TEST_DATA_LEN");
                c.retval = Some(match v {
                    "INT_MIN" => i32::MIN as i64,
                    "POINTER_VALUE" => 0xcafe4a,
                    "TEST_DATA_LEN" => 64,
                    v => match v.strip_prefix("0x") {
                        Some(h) => i64::from_str_radix(h, 16).unwrap_or(0) as i32 as i64,
                        None => v.parse::<i64>().unwrap_or(0) as i32 as i64,
                    },
                });
                priv_mode = true;
            } else if t.contains("unpriv") {
                unpriv = true;
            } else if let Some(l) = t.strip_prefix("test_log_level=") {
                c.log_level = l.parse().unwrap_or(1);
            } else if let Some(f) = t.strip_prefix("test_prog_flags=") {
                c.flags.push(f.to_string());
            } else if let Some(a) = t.strip_prefix("test_arch=") {
                arch.push(a.to_string());
            }
        }
        if !priv_mode && unpriv {
            continue;
        }
        if aux || (!arch.is_empty() && !arch.iter().any(|a| a == "X86_64")) {
            continue;
        }
        out.push(c);
    }
    Ok(out)
}

/// Whether the kernel's message list matches the log in order (a pattern's
/// `{{.*}}` parts match anything on one line).
fn msgs_match(log: &str, msgs: &[String]) -> Option<bool> {
    let mut pos = 0;
    for m in msgs {
        let pieces: Vec<&str> = m.split("{{.*}}").collect();
        if m.contains("{{") && m.replace("{{.*}}", "").contains("{{") {
            return None;
        }
        let hay = &log[pos..];
        let mut found = None;
        'start: for (s, _) in hay.match_indices(pieces[0]) {
            let mut at = s + pieces[0].len();
            for p in &pieces[1..] {
                let line_end = hay[at..].find('\n').map_or(hay.len(), |e| at + e);
                match hay[at..line_end].find(p) {
                    Some(i) => at += i + p.len(),
                    None => continue 'start,
                }
            }
            found = Some(at);
            break;
        }
        match found {
            Some(end) => pos += end,
            None => return Some(false),
        }
    }
    Some(true)
}

/// Rejection messages that are about memory safety (an unsound verdict on
/// one of these could let a program touch memory it must not).
fn about_memory(msgs: &[String]) -> bool {
    const WORDS: &[&str] = &[
        "invalid access",
        "invalid mem access",
        "invalid read",
        "invalid write",
        "invalid indirect",
        "outside of",
        "out of bounds",
        "!read_ok",
        "invalid bpf_context",
        "min value is negative",
        "unbounded memory access",
        "offset is outside",
        "pointer arithmetic",
        "invalid stack",
        "invalid size",
        "cannot write",
        "invalid zero-sized",
        "expected=",
        "type=",
        "misaligned",
        "leaks addr",
        "invalid variable-offset",
        "map_value_or_null",
        "or_null",
        "dereference",
        "invalid unbounded",
        "variable stack access",
        "variable ctx access",
        "corrupt spilled",
        "invalid ",
    ];
    msgs.iter().any(|m| WORDS.iter().any(|w| m.contains(w)))
}

fn license_gpl(l: Option<&str>) -> bool {
    matches!(
        l,
        Some(
            "GPL"
                | "GPL v2"
                | "GPL and additional rights"
                | "Dual BSD/GPL"
                | "Dual MIT/GPL"
                | "Dual MPL/GPL"
        )
    )
}

struct Outcome {
    accepted: bool,
    facts: Option<verifier::Facts>,
    message: String,
    log: String,
}

fn run_case(obj: &Object, c: &Case) -> Result<Outcome, String> {
    let prog = obj.program(&c.name).map_err(|e| e.to_string())?;
    let kind = loader::classify(c.section.trim_start_matches('?'));
    let mut opts = Options::new(kind.prog_type);
    opts.attach_type = kind.attach_type.map(str::to_string);
    opts.log_level = c.log_level.max(1);
    opts.sleepable = kind.sleepable || kind.prog_type == ProgType::Syscall;
    opts.gpl = license_gpl(obj.license.as_deref());
    // prog_tests/verifier.c runs this object with CAP_BPF and CAP_NET_ADMIN
    // only, without CAP_PERFMON.
    opts.perfmon = c.object != "verifier_mtu";
    for f in &c.flags {
        match f.as_str() {
            "BPF_F_STRICT_ALIGNMENT" => opts.strict_alignment = true,
            "BPF_F_ANY_ALIGNMENT" => opts.strict_alignment = false,
            "BPF_F_TEST_STATE_FREQ" => opts.test_state_freq = true,
            "BPF_F_SLEEPABLE" => opts.sleepable = true,
            _ => {}
        }
    }
    let func_info: Vec<(usize, u32)> = prog.func_info.iter().map(|f| (f.pc, f.type_id)).collect();
    let input = Input {
        insns: &prog.insns,
        maps: &obj.maps,
        btf: obj.btf.as_ref(),
        func_info: &func_info,
        endian: obj.endian,
    };
    Ok(match verifier::verify(&input, &opts) {
        Ok(v) => Outcome {
            accepted: true,
            message: String::new(),
            log: v.log,
            facts: Some(v.facts),
        },
        Err(r) => Outcome {
            accepted: false,
            facts: None,
            message: r.to_string(),
            log: format!("{}\n{}", r.log, r.message),
        },
    })
}

fn corpus_dir() -> PathBuf {
    match std::env::var_os("BPFC_VERIFIER_CORPUS_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/verifier"),
    }
}

#[test]
fn kernel_verifier_corpus() {
    let dir = corpus_dir();
    let mut objects: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "o"))
        .collect();
    objects.sort();
    assert!(!objects.is_empty(), "no objects in {}", dir.display());
    let verbose = std::env::var("BPFC_VERIFIER_CORPUS_VERBOSE").is_ok_and(|v| v == "1");
    let (mut total, mut agree, mut unsound, mut strict) = (0u32, 0u32, 0u32, 0u32);
    let (mut unsupported, mut unsound_memory) = (0u32, 0u32);
    let (mut rejections_agreed, mut msg_agreed) = (0u32, 0u32);
    let mut lines = Vec::new();
    for path in &objects {
        let cs = cases(path).unwrap_or_else(|e| panic!("{e}"));
        let bytes = std::fs::read(path).unwrap();
        let obj = Object::parse(&bytes);
        for c in &cs {
            let ty = loader::classify(c.section.trim_start_matches('?')).prog_type;
            if !progtype::supported(ty) {
                unsupported += 1;
                continue;
            }
            total += 1;
            let out = match &obj {
                Ok(o) => run_case(o, c),
                Err(e) => Err(format!("object does not load: {e}")),
            };
            let out = out.unwrap_or_else(|e| Outcome {
                accepted: false,
                facts: None,
                message: e,
                log: String::new(),
            });
            let kernel = if c.expect_failure { "reject" } else { "accept" };
            let id = format!("{}/{} ({})", c.object, c.name, c.description);
            if out.accepted != c.expect_failure {
                agree += 1;
                if c.expect_failure && !c.msgs.is_empty() {
                    rejections_agreed += 1;
                    if msgs_match(&out.log, &c.msgs) == Some(true) {
                        msg_agreed += 1;
                    } else if verbose {
                        lines.push(format!(
                            "  message  {id}: kernel {:?}, bpfc {:?}",
                            c.msgs, out.message
                        ));
                    }
                }
                if verbose {
                    lines.push(format!("  agree    {id}: {kernel}"));
                }
            } else if c.expect_failure {
                unsound += 1;
                let mem = about_memory(&c.msgs);
                if mem {
                    unsound_memory += 1;
                }
                lines.push(format!(
                    "  UNSOUND{} {id}: kernel rejects {:?}, bpfc accepts",
                    if mem { " [memory]" } else { "" },
                    c.msgs
                ));
            } else {
                strict += 1;
                lines.push(format!(
                    "  STRICT   {id}: kernel accepts, bpfc: {}",
                    out.message.lines().last().unwrap_or("")
                ));
            }
        }
    }
    for l in &lines {
        println!("{l}");
    }
    let pct = 100.0 * agree as f64 / total.max(1) as f64;
    println!(
        "{agree} agree, {} differ ({unsound} unsound, {strict} too strict) of {total} ({pct:.1}%); \
         {unsupported} cases of program types bpfc does not model; \
         {msg_agreed} of {rejections_agreed} agreeing rejections with the kernel's message; \
         {unsound_memory} unsound about memory safety",
        total - agree
    );
    assert_eq!(unsound_memory, 0, "unsound verdicts about memory safety");
    assert_eq!(unsound, 0, "unsound verdicts");
    assert!(
        pct >= AGREEMENT_FLOOR,
        "agreement {pct:.1}% fell below {AGREEMENT_FLOOR}%"
    );
}

/// The program type the kernel's verifier scale test loads each object
/// of fixtures/verifier/scale as (prog_tests/bpf_verif_scale.c).
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

/// The scale programs bpfc rejects, with the reason: pyperf600's unrolled
/// loops make one path of more than 8192 conditional jumps (the running
/// kernel, 6.18, rejects it as well when it is built by clang-19).
const SCALE_KNOWN: &[(&str, &str)] = &[("pyperf600", "jumps is too complex")];

/// The verifier scale programs: every one accepted (loop3, an unbounded
/// loop, rejected as the kernel does), within the limits.
#[test]
fn kernel_verifier_scale_programs() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/verifier/scale");
    let mut objects: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "o"))
        .collect();
    objects.sort();
    let mut bad = Vec::new();
    let mut ran = 0;
    for path in &objects {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(path).unwrap();
        let obj = Object::parse(&bytes).unwrap_or_else(|e| panic!("{stem}: {e}"));
        for prog in &obj.programs {
            let ty = scale_type(&stem);
            let kind = loader::classify(prog.section.trim_start_matches('?'));
            let mut opts = Options::new(ty);
            opts.attach_type = kind.attach_type.map(str::to_string);
            opts.gpl = license_gpl(obj.license.as_deref());
            let func_info: Vec<(usize, u32)> =
                prog.func_info.iter().map(|f| (f.pc, f.type_id)).collect();
            let input = Input {
                insns: &prog.insns,
                maps: &obj.maps,
                btf: obj.btf.as_ref(),
                func_info: &func_info,
                endian: obj.endian,
            };
            let t0 = std::time::Instant::now();
            let r = verifier::verify(&input, &opts);
            let dt = t0.elapsed();
            ran += 1;
            let known = SCALE_KNOWN.iter().find(|k| k.0 == stem).map(|k| k.1);
            let verdict = match &r {
                Ok(v) => format!("accepted, {} processed", v.stats.insns_processed),
                Err(e) => format!("rejected: {}", e.message.lines().last().unwrap_or("")),
            };
            println!(
                "{stem}:{} ({} insns) {verdict} in {dt:.2?}",
                prog.name,
                prog.insns.len()
            );
            let ok = match (&r, stem.as_str(), known) {
                (Err(e), "loop3", _) => {
                    e.message.contains("infinite loop detected") || e.message.contains("too large")
                }
                (Err(e), _, Some(why)) => e.message.contains(why),
                (Ok(_), "loop3", _) => false,
                (r, _, _) => r.is_ok(),
            };
            if !ok {
                bad.push(format!("{stem}:{}: {verdict}", prog.name));
            }
        }
    }
    assert!(ran > 0);
    assert!(
        bad.is_empty(),
        "scale programs with an unexpected verdict:\n{}",
        bad.join("\n")
    );
}

/// A program the engines can run without a context, maps or helpers:
/// local calls only, no map or function references, no legacy packet
/// loads, and (by the verifier's facts) no access to the context, a
/// packet or a map value.
fn runnable_alone(insns: &[Insn], facts: &verifier::Facts) -> bool {
    let code = insns.iter().all(|i| match i {
        Insn::Call(CallTarget::Local(_)) => true,
        Insn::Call(_) | Insn::Callx { .. } | Insn::LdAbs { .. } | Insn::LdInd { .. } => false,
        Insn::Lddw { src, .. } => *src == LddwSrc::Imm,
        _ => true,
    });
    code && facts
        .access
        .iter()
        .flatten()
        .all(|a| a.regions.iter().all(|r| *r == verifier::Region::Stack))
}

/// The corpus cases with `__retval` that bpfc accepts and that need no
/// context, maps or helpers run in the interpreter and in JIT code
/// (checked and unchecked): each must return the kernel's value (as the
/// test run reports it: the low 32 bits of r0).
#[test]
fn kernel_verifier_corpus_retvals() {
    let dir = corpus_dir();
    let mut objects: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "o"))
        .collect();
    objects.sort();
    let (mut with_retval, mut accepted, mut ran, mut not_runnable) = (0, 0, 0, 0);
    let mut wrong = Vec::new();
    let helpers = HelperTable::new();
    for path in &objects {
        let cs = cases(path).unwrap_or_else(|e| panic!("{e}"));
        let bytes = std::fs::read(path).unwrap();
        let Ok(obj) = Object::parse(&bytes) else {
            continue;
        };
        for c in &cs {
            let Some(want) = c.retval else { continue };
            let ty = loader::classify(c.section.trim_start_matches('?')).prog_type;
            if c.expect_failure || c.retval_symbolic || !progtype::supported(ty) {
                continue;
            }
            with_retval += 1;
            let Ok(Outcome {
                accepted: true,
                facts: Some(facts),
                ..
            }) = run_case(&obj, c)
            else {
                continue;
            };
            accepted += 1;
            let prog = obj.program(&c.name).unwrap();
            if !runnable_alone(&prog.insns, &facts) {
                not_runnable += 1;
                continue;
            }
            let id = format!("{}/{} ({})", c.object, c.name, c.description);
            let want = want as u32;
            let got = interp::run(
                &prog.insns,
                &mut [],
                &helpers,
                &mut ExecContext::new(),
                &interp::Options {
                    endian: obj.endian,
                    ..Default::default()
                },
            );
            ran += 1;
            match got {
                Ok(v) if v as u32 == want => {}
                Ok(v) => wrong.push(format!(
                    "{id}: interpreter returns {:#x}, kernel {want:#x}",
                    v as u32
                )),
                Err(e) => wrong.push(format!("{id}: interpreter: {e}")),
            }
            for checked in [false, true] {
                let opts = CodegenOptions {
                    checked,
                    ..Default::default()
                };
                let r = JitProgram::compile(&prog.insns, obj.endian, &helpers, &opts, None)
                    .map_err(|e| e.to_string())
                    .and_then(|j| {
                        j.run(&mut [], &mut ExecContext::new())
                            .map_err(|e| e.to_string())
                    });
                match r {
                    Ok(v) if v as u32 == want => {}
                    Ok(v) => wrong.push(format!(
                        "{id}: JIT (checked: {checked}) returns {:#x}, kernel {want:#x}",
                        v as u32
                    )),
                    Err(e) => wrong.push(format!("{id}: JIT (checked: {checked}): {e}")),
                }
            }
        }
    }
    for w in &wrong {
        println!("  {w}");
    }
    println!(
        "{ran} of the {accepted} cases with __retval bpfc accepts (of {with_retval}) ran alone \
         ({not_runnable} need a context, maps or helpers); {} wrong results",
        wrong.len()
    );
    assert!(ran > 0);
    assert!(wrong.is_empty(), "{} wrong results", wrong.len());
}
