//! `bpfc run`: create a program's maps, bind it, run it (once or `--repeat`
//! times) and print what `bpftool prog run` prints, then what the run left
//! behind: trace output, ring buffer and perf records, map contents.

use crate::compile::Opt;
use crate::{input, mapjson, output};
use anyhow::{bail, Context as _};
use bpfc_compiler::bind::{BoundProgram, Instance, InstanceOptions, Verify};
use bpfc_compiler::codegen::{
    jit::{self, JitError, JitProgram},
    CodegenOptions,
};
use bpfc_compiler::interp::{self, InterpProgram};
use bpfc_compiler::progtype::convert;
use bpfc_runtime::abi::FaultCode;
use bpfc_runtime::maps::perf::PerfBuffer;
use bpfc_runtime::maps::ringbuf::RingBuf;
use bpfc_runtime::maps::{Map, MapOptions, MapType};
use bpfc_runtime::programs::TailTarget;
use bpfc_runtime::{ExecContext, HelperTable};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

/// Execution engine of `bpfc run`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// Cranelift JIT code.
    Jit,
    /// The reference interpreter (checks every memory access).
    Interp,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Jit => "jit",
            Engine::Interp => "interp",
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// Program file: an ELF object (clang -target bpf) or raw 8-byte instructions.
    file: PathBuf,
    #[command(flatten)]
    select: input::Select,
    /// The program's context: r1 points at a copy of this file's bytes
    /// (r2 holds their length), as BPF_PROG_TEST_RUN's ctx_in.
    #[arg(long, value_name = "FILE", visible_alias = "mem")]
    ctx_in: Option<PathBuf>,
    /// Write the context as the run left it to this file (ctx_out).
    #[arg(long, value_name = "FILE")]
    ctx_out: Option<PathBuf>,
    /// Network programs (xdp, tc, socket filters, cgroup_skb, lwt): the
    /// Ethernet frame to run on, as BPF_PROG_TEST_RUN's data_in. --ctx-in
    /// then holds an `xdp_md` / `__sk_buff` with the fields the kernel
    /// accepts there.
    #[arg(long, value_name = "FILE")]
    data_in: Option<PathBuf>,
    /// Write the packet as the run left it to this file (data_out).
    #[arg(long, value_name = "FILE")]
    data_out: Option<PathBuf>,
    /// Network programs: run on every packet of this capture (pcap,
    /// Ethernet) and print how many got each verdict.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["data_in", "ctx_in", "repeat"])]
    pcap: Option<PathBuf>,
    /// With --pcap: write the packets the program passed or transmitted,
    /// as it left them, to this capture.
    #[arg(long, value_name = "FILE", requires = "pcap")]
    pcap_out: Option<PathBuf>,
    /// Execution engine.
    #[arg(long, value_enum, default_value = "jit")]
    engine: Engine,
    /// JIT: skip the bounds checks. Only for verified programs: unchecked code
    /// trusts the program to touch nothing but its stack, context and maps.
    /// By default every access the verifier did not prove safe is checked
    /// and a bad one stops the run with an error.
    #[arg(long)]
    unchecked: bool,
    /// Skip the verifier: the program runs with every memory access checked
    /// (with --unchecked too: unchecked, trusting the program blindly).
    #[arg(long)]
    no_verify: bool,
    /// The program type to verify as: for raw instruction files (without
    /// it they are verified as socket_filter and run checked if rejected);
    /// for objects it overrides the section name's.
    #[arg(long = "type", value_name = "TYPE")]
    prog_type: Option<String>,
    /// JIT: how much compile time to spend on faster code (default: speed).
    #[arg(long, value_enum)]
    opt_level: Option<Opt>,
    /// Run the program N times (each on a fresh copy of the context; a
    /// network program, as the kernel's test run, on the same packet each
    /// time) and print the average duration, as `bpftool prog run repeat N`.
    #[arg(long, value_name = "N", default_value = "1")]
    repeat: u32,
    /// The CPU slot the run executes on (per-CPU maps, bpf_get_smp_processor_id).
    #[arg(long, value_name = "N", default_value = "0")]
    cpu: u32,
    /// Fill maps before the run from this JSON file (`bpfc map dump -j`
    /// entries by map name; global data as `.data`, `.rodata`, `.bss`;
    /// `.rodata` becomes the map's initial image, set before it is frozen).
    #[arg(long, value_name = "FILE")]
    maps_in: Option<PathBuf>,
    /// Write every map's contents after the run to this JSON file (`-`:
    /// print them after the return value).
    #[arg(long, value_name = "FILE")]
    maps_out: Option<PathBuf>,
    /// Print one JSON object: `retval`, `duration` as bpftool does, plus
    /// `r0`, `engine`, trace output and records.
    #[arg(long)]
    json: bool,
    /// After the run, wait this many milliseconds before writing the context
    /// and maps out: bpf_timer callbacks the run armed fire meanwhile.
    #[arg(long, value_name = "MS", default_value = "0")]
    wait_ms: u64,
    /// Stop with an error after this many executed instructions (default:
    /// 2^32; 0: no limit). JIT code counts a basic block at a time.
    #[arg(long, value_name = "N")]
    max_insns: Option<u64>,
}

/// The instruction budget when `--max-insns` is not given, for both
/// engines. A runaway loop stops with an error instead of hanging the
/// terminal: the interpreter runs a tight loop at about 10^8 instructions a
/// second even in a debug build, so 2^32 of them take well under a minute
/// (JIT code, a few seconds). Real programs stay far below it (the kernel
/// verifies at most a million instructions; only bounded loops of billions
/// of iterations come near), and those can ask for more, or for `0`.
pub const DEFAULT_MAX_INSNS: u64 = 1 << 32;

/// Appended to an instruction-limit error.
const LIMIT_HINT: &str = " (--max-insns N sets the limit, 0 removes it)";

/// A program of either engine, ready to run.
enum Runnable {
    Jit(Arc<JitProgram>),
    Interp(Arc<InterpProgram>, interp::Options),
}

impl Runnable {
    fn target(&self) -> Arc<dyn TailTarget> {
        match self {
            Runnable::Jit(p) => p.clone(),
            Runnable::Interp(p, _) => p.clone(),
        }
    }

    fn run(&self, ctx_mem: &mut [u8], ctx: &mut ExecContext) -> Result<u64, Failure> {
        match self {
            Runnable::Interp(p, opts) => {
                interp::run_bound(&p.bound, ctx_mem, ctx, opts).map_err(|e| match e {
                    interp::RunError::InsnLimit { pc, .. } => {
                        Failure::new(format_args!("{e}{LIMIT_HINT}"), Some(pc))
                    }
                    _ => Failure::new(&e, Some(e.pc())),
                })
            }
            Runnable::Jit(p) => p.run(ctx_mem, ctx).map_err(|e| match e {
                JitError::Fault {
                    pc,
                    code: FaultCode::InsnLimit,
                    ..
                } => Failure::new(format_args!("{e}{LIMIT_HINT}"), Some(pc)),
                JitError::Fault { pc, .. } | JitError::UnknownFault { pc, .. } => {
                    Failure::new(&e, Some(pc))
                }
            }),
        }
    }
}

/// A failed run or compilation: the message and, when it concerns one, the instruction.
struct Failure {
    error: String,
    pc: Option<usize>,
}

impl Failure {
    fn new(error: impl std::fmt::Display, pc: Option<usize>) -> Failure {
        Failure {
            error: error.to_string(),
            pc,
        }
    }
}

/// Compile (JIT) or wrap (interpreter) a bound program for the engine.
fn prepare(bound: BoundProgram, args: &Args, max_insns: Option<u64>) -> Result<Runnable, Failure> {
    if args.unchecked && bound.facts.is_none() && !args.no_verify {
        let why = if bound.prog_type == 0 {
            "the verifier rejects it as socket_filter; --type chooses another type"
        } else {
            "the verifier does not model its program type"
        };
        return Err(Failure::new(
            format_args!(
                "--unchecked: program {} is not verified ({why}); add --no-verify to run it unchecked anyway",
                bound.name
            ),
            None,
        ));
    }
    Ok(match args.engine {
        Engine::Interp => Runnable::Interp(
            InterpProgram::share(bound),
            interp::Options {
                max_insns,
                ..Default::default()
            },
        ),
        Engine::Jit => {
            let opts = CodegenOptions {
                opt_level: args.opt_level.unwrap_or(Opt::Speed).into(),
                checked: !args.unchecked,
                insn_limit: max_insns,
            };
            let p =
                JitProgram::from_bound(bound, &opts, None).map_err(|e| Failure::new(e, None))?;
            Runnable::Jit(jit::share(p))
        }
    })
}

pub fn main(args: Args) -> anyhow::Result<()> {
    let file = args.file.display().to_string();
    if args.opt_level.is_some() && args.engine != Engine::Jit {
        bail!("--opt-level chooses how the JIT compiles: use it with --engine jit");
    }
    if args.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    let map_opts = MapOptions::default();
    if args.cpu >= map_opts.ncpus {
        bail!(
            "--cpu {}: this machine has {} CPU slots (0 to {})",
            args.cpu,
            map_opts.ncpus,
            map_opts.ncpus - 1
        );
    }
    let mut prog = input::load(&args.file, &args.select)?;
    let maps_in_what = || {
        let path = args.maps_in.as_ref().map(|p| p.display().to_string());
        format!("--maps-in {}", path.unwrap_or_default())
    };
    let mut maps_in = match &args.maps_in {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
            let v: serde_json::Value = serde_json::from_str(&text).with_context(maps_in_what)?;
            Some(v)
        }
        None => None,
    };
    if let (Some(obj), Some(v)) = (prog.object.as_mut(), maps_in.as_mut()) {
        mapjson::take_initial_images(obj, v).with_context(maps_in_what)?;
    }
    let prog_type = input::prog_type_arg(args.prog_type.as_deref())?;
    let helpers = HelperTable::kernel();
    let max_insns = match args.max_insns.unwrap_or(DEFAULT_MAX_INSNS) {
        0 => None,
        n => Some(n),
    };
    let at = |pc: Option<usize>| pc.map(|pc| prog.source_at(pc)).unwrap_or_default();
    let fail = |f: Failure| anyhow::anyhow!("{file}: {}{}", f.error, at(f.pc));

    // Maps, then the program bound to them; programs that the object's prog
    // arrays name are bound and prepared for the same engine. A network
    // program's context accesses were converted (`net_ctx`): it runs on a
    // packet, as the kernel's test run does.
    let (net_ctx, net_ty);
    // Context bytes an object's verified program accesses (the kernel's
    // max_ctx_offset): its test run refuses a smaller context.
    let mut ctx_min = 0;
    let (runnable, instance) = match &prog.object {
        None => {
            let mut bound = BoundProgram::raw(&prog.insns, prog.endian, &helpers);
            bound.name = prog.name.clone();
            input::verify_raw(&mut bound, prog_type, args.no_verify)
                .map_err(|e| input::rejected(&file, e))?;
            net_ctx = bound.ctx;
            net_ty = prog_type;
            (prepare(bound, &args, max_insns).map_err(fail)?, None)
        }
        Some(obj) => {
            let inst_opts = InstanceOptions {
                maps: map_opts.clone(),
                verify: if args.no_verify {
                    Verify::No
                } else {
                    Verify::Yes
                },
                prog_type,
                ..Default::default()
            };
            let inst = Instance::new(obj, &inst_opts).with_context(|| file.clone())?;
            let main = obj
                .programs
                .iter()
                .find(|p| p.name == prog.name)
                .expect("input::load picked a program of this object");
            let bound = inst
                .bind(obj, main, &helpers)
                .map_err(|e| input::rejected(&file, e))?;
            net_ctx = bound.ctx;
            net_ty = Some(prog_type.unwrap_or(main.kind.prog_type));
            ctx_min = bound.facts.as_ref().map_or(0, |f| f.max_ctx_offset);
            let runnable = prepare(bound, &args, max_insns).map_err(fail)?;
            let mut prepared: Vec<(String, Arc<dyn TailTarget>)> =
                vec![(main.name.clone(), runnable.target())];
            let mut error = None;
            inst.fill_prog_arrays(|name| {
                if let Some((_, t)) = prepared.iter().find(|(n, _)| n == name) {
                    return Some(t.clone());
                }
                let p = obj.programs.iter().find(|p| p.name == name)?;
                let made = inst
                    .bind(obj, p, &helpers)
                    .map_err(|e| Failure::new(input::bind_message(&e), None))
                    .and_then(|b| prepare(b, &args, max_insns));
                match made {
                    Ok(r) => {
                        let t = r.target();
                        prepared.push((name.to_string(), t.clone()));
                        Some(t)
                    }
                    Err(e) => {
                        error = Some(e);
                        None
                    }
                }
            })
            .map_err(|e| match error.take() {
                Some(f) => fail(f),
                None => anyhow::anyhow!("{file}: {e}"),
            })?;
            (runnable, Some(inst))
        }
    };
    let named_maps: Vec<(String, Arc<Map>)> = instance
        .as_ref()
        .map(|inst| {
            inst.defs
                .iter()
                .zip(&inst.maps)
                .filter_map(|(d, m)| m.as_ref().map(|m| (d.name.clone(), m.clone())))
                .collect()
        })
        .unwrap_or_default();
    if let Some(v) = &maps_in {
        mapjson::load_maps_object(v, |name| {
            named_maps
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, m)| &**m)
        })
        .with_context(maps_in_what)?;
    }
    // Perf event arrays deliver only to open buffers: open one per map.
    let mut perf = Vec::new();
    for (name, m) in &named_maps {
        if m.map_type() == MapType::PerfEventArray {
            let b = PerfBuffer::new(m, 8).with_context(|| format!("{file}: map {name}"))?;
            perf.push((name.clone(), b));
        }
    }

    if let Some(pcap) = &args.pcap {
        let ty = match (net_ty, net_ctx) {
            (Some(t), Some(_)) => t,
            _ => bail!(
                "{file}: --pcap needs a verified network program (xdp, tc, socket_filter, cgroup_skb, lwt)"
            ),
        };
        let mut ctx = ExecContext::new();
        ctx.cpu = args.cpu;
        let r = crate::pcap::replay(ty, pcap, args.pcap_out.as_deref(), &mut ctx, |mem, ctx| {
            runnable
                .run(mem, ctx)
                .map_err(|f| format!("{}{}", f.error, at(f.pc)))
        })?;
        // `--maps-out -`: as for one run, the maps follow on stdout.
        let maps_stdout = write_maps_out(args.maps_out.as_deref(), &named_maps)?;
        let per = if r.packets > r.refused {
            (r.ns / (r.packets - r.refused) as u128) as u64
        } else {
            0
        };
        if args.json {
            let mut v = serde_json::json!({
                "packets": r.packets,
                "verdicts": r.verdicts,
                "refused": r.refused,
                "written": r.written,
                "ns_per_packet": per,
                "engine": args.engine.name(),
            });
            if let Some(text) = &maps_stdout {
                v["maps"] = serde_json::from_str(text).context("--maps-out -")?;
            }
            return output::print(format!("{v}\n"));
        }
        let mut text = format!("{} packets", r.packets);
        for (v, n) in &r.verdicts {
            text.push_str(&format!(", {v}: {n}"));
        }
        if r.refused > 0 {
            text.push_str(&format!(
                ", refused (not a frame a test run accepts): {}",
                r.refused
            ));
        }
        text.push_str(&format!("; {per}ns per packet"));
        if args.pcap_out.is_some() {
            text.push_str(&format!("; {} written", r.written));
        }
        return output::print(format!("{text}\n{}", maps_stdout.unwrap_or_default()));
    }
    let ctx_in = input::read_mem(args.ctx_in.as_deref())?;
    if net_ctx.is_none() && args.data_in.is_none() && ctx_in.len() < ctx_min as usize {
        bail!(
            "{file}: program {} accesses {ctx_min} bytes of its context; --ctx-in gives {} (the kernel's test run refuses a smaller context: EINVAL)",
            prog.name,
            ctx_in.len()
        );
    }
    let mut ctx = ExecContext::new();
    ctx.cpu = args.cpu;
    // Where a redirect helper sent the packet.
    let mut redirect = None;
    let (r0, duration, ctx_mem, data_out) = if net_ctx.is_some() || args.data_in.is_some() {
        let data_in = match &args.data_in {
            Some(p) => std::fs::read(p).with_context(|| p.display().to_string())?,
            None => bail!(
                "{file}: {} programs run on a packet: --data-in FILE gives the Ethernet frame (BPF_PROG_TEST_RUN's data_in)",
                net_ty.map_or("this", |t| t.name())
            ),
        };
        let ty = match (net_ty, net_ctx) {
            (Some(t), Some(_)) => t,
            (Some(t), None) if convert::net_setup(t, &[], None).is_some() => bail!(
                "{file}: --data-in: the context accesses of an unverified {} program cannot be converted; run it verified (without --no-verify)",
                t.name()
            ),
            _ => bail!(
                "{file}: --data-in needs a network program (xdp, tc, socket_filter, cgroup_skb, lwt); --type chooses the type of raw instructions"
            ),
        };
        // As in the kernel, asking for ctx_out without a ctx_in runs with a
        // zeroed context.
        let ctx_given =
            (args.ctx_in.is_some() || args.ctx_out.is_some()).then_some(ctx_in.as_slice());
        let net = convert::net_setup(ty, &data_in, ctx_given)
            .expect("a converted program is a network program")
            .map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
        let out = bpfc_runtime::net::test_run(net, &mut ctx, args.repeat, |mem, ctx| {
            runnable.run(mem, ctx)
        })
        .map_err(fail)?;
        let ctx_out = if ctx_given.is_some() {
            out.ctx_out
        } else {
            Vec::new()
        };
        redirect = out.redirect;
        (out.r0, out.duration, ctx_out, Some(out.data_out))
    } else {
        let mut ctx_mem = ctx_in.clone();
        let mut total_ns: u128 = 0;
        let mut r0 = 0;
        for i in 0..args.repeat {
            if i > 0 {
                ctx_mem.copy_from_slice(&ctx_in);
            }
            let start = Instant::now();
            r0 = runnable.run(&mut ctx_mem, &mut ctx).map_err(fail)?;
            total_ns += start.elapsed().as_nanos();
        }
        let duration = u64::try_from(total_ns / args.repeat as u128).unwrap_or(u64::MAX);
        (r0, duration, ctx_mem, None)
    };
    if args.data_out.is_some() && data_out.is_none() {
        bail!("{file}: --data-out needs --data-in");
    }
    if let (Some(path), Some(d)) = (&args.data_out, &data_out) {
        std::fs::write(path, d).with_context(|| path.display().to_string())?;
    }
    if args.wait_ms > 0 {
        std::thread::sleep(std::time::Duration::from_millis(args.wait_ms));
    }
    let timer_faults = bpfc_runtime::helpers::timers::take_faults();

    if let Some(path) = &args.ctx_out {
        std::fs::write(path, &ctx_mem).with_context(|| path.display().to_string())?;
    }
    // `--maps-out -`: the maps go to stdout after the return value (in
    // `--json`, as its `maps`).
    let maps_stdout = write_maps_out(args.maps_out.as_deref(), &named_maps)?;
    let trace = String::from_utf8_lossy(&ctx.trace).into_owned();
    let records = drain_records(&named_maps, &mut perf);

    // Like the kernel's BPF_PROG_TEST_RUN (and so bpftool), the return value
    // is the low 32 bits of r0; `r0` in the JSON output has all 64.
    let retval = r0 as u32;
    if args.json {
        let v = serde_json::json!({
            "retval": retval,
            "duration": duration,
            "r0": r0,
            "engine": args.engine.name(),
            "trace": trace,
            "records": records,
            "timer_faults": timer_faults,
        });
        let mut v = v;
        if let Some(text) = &maps_stdout {
            v["maps"] = serde_json::from_str(text).context("--maps-out -")?;
        }
        if let Some(ifindex) = redirect {
            v["redirect"] = serde_json::json!(ifindex);
        }
        if let Some(d) = &data_out {
            v["data_out"] =
                serde_json::Value::String(d.iter().map(|b| format!("{b:02x}")).collect());
            if !ctx_mem.is_empty() {
                v["ctx_out"] =
                    serde_json::Value::String(ctx_mem.iter().map(|b| format!("{b:02x}")).collect());
            }
        }
        return output::print(format!("{v}\n"));
    }
    let mut err = String::new();
    if !trace.is_empty() {
        err.push_str(&trace);
        if !trace.ends_with('\n') {
            err.push('\n');
        }
    }
    for f in &timer_faults {
        err.push_str(&format!("{f}\n"));
    }
    for (map, recs) in records.as_object().into_iter().flatten() {
        for r in recs.as_array().into_iter().flatten() {
            err.push_str(&format!("{map}: {}\n", r.as_str().unwrap_or_default()));
        }
    }
    if !err.is_empty() {
        use std::io::Write as _;
        let _ = std::io::stderr().write_all(err.as_bytes());
    }
    let avg = if args.repeat > 1 { " (average)" } else { "" };
    output::print(format!(
        "Return value: {retval}, duration{avg}: {duration}ns\n{}",
        maps_stdout.unwrap_or_default()
    ))
}

/// Hex of a record's bytes, space separated.
fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The records ring buffers and perf event arrays hold after the run, by map
/// name (perf: `cpu N: ..`, lost records as `cpu N: lost M`).
fn drain_records(
    maps: &[(String, Arc<Map>)],
    perf: &mut [(String, PerfBuffer)],
) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (name, m) in maps {
        if let Some(rb) = RingBuf::from_map(m) {
            let mut recs = Vec::new();
            rb.consumer().consume(|r| {
                recs.push(serde_json::Value::String(hex(r)));
                ControlFlow::Continue(())
            });
            if !recs.is_empty() {
                out.insert(name.clone(), recs.into());
            }
        }
    }
    for (name, buf) in perf.iter_mut() {
        let mut recs = Vec::new();
        let mut lost = Vec::new();
        buf.consume(
            |cpu, data| {
                recs.push(serde_json::Value::String(format!(
                    "cpu {cpu}: {}",
                    hex(data)
                )))
            },
            |cpu, n| lost.push(serde_json::Value::String(format!("cpu {cpu}: lost {n}"))),
        );
        recs.extend(lost);
        if !recs.is_empty() {
            out.insert(name.clone(), recs.into());
        }
    }
    serde_json::Value::Object(out)
}

/// `--maps-out PATH`: every map's contents as JSON, written to `PATH`, or
/// returned for stdout when `PATH` is `-`.
fn write_maps_out(
    path: Option<&std::path::Path>,
    named_maps: &[(String, std::sync::Arc<Map>)],
) -> anyhow::Result<Option<String>> {
    let Some(path) = path else { return Ok(None) };
    let v = mapjson::maps_object(named_maps.iter().map(|(n, m)| (n.as_str(), &**m)))?;
    let text = format!("{}\n", v.write(true));
    if path.as_os_str() == "-" {
        return Ok(Some(text));
    }
    std::fs::write(path, text).with_context(|| path.display().to_string())?;
    Ok(None)
}
