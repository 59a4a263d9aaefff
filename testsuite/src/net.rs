//! Network programs under test, in bpfc and in the kernel: an object's
//! program run on a list of packets (each `(data_in, ctx_in)`) by one of
//! bpfc's engines through the library, and by the running kernel through
//! `harness/pkt_run.c` (libbpf, `BPF_PROG_TEST_RUN`), with results in one
//! comparable shape: per packet the return value, data_out and ctx_out (or
//! the errno of a refused input), then every map's elements.

use bpfc_compiler::bind::{BoundProgram, Instance, InstanceOptions};
use bpfc_compiler::codegen::{jit::JitProgram, CodegenOptions};
use bpfc_compiler::interp;
use bpfc_compiler::loader::{self, LoadOptions, ProgType};
use bpfc_compiler::progtype::convert;
use bpfc_runtime::{ExecContext, HelperTable};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One packet of a run: the frame and an optional context.
#[derive(Clone, Debug)]
pub struct Input {
    pub data: Vec<u8>,
    pub ctx: Option<Vec<u8>>,
}

/// A map element written before the packets: (map name, key, value).
pub type Fill = (String, Vec<u8>, Vec<u8>);

/// What one test run gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok {
        retval: u32,
        data_out: Vec<u8>,
        /// Only when the input had a context.
        ctx_out: Option<Vec<u8>>,
    },
    /// The test run refused the input with this errno.
    Refused(i32),
}

/// The results of a whole list and the maps afterwards (`NAME KEY VALUE`
/// lines, sorted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Results {
    pub outcomes: Vec<Outcome>,
    pub maps: Vec<String>,
}

pub fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// bpfc's engines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Interp,
    /// JIT code with bounds checks.
    JitChecked,
    /// JIT code without them (the program is verified).
    Jit,
}

impl Engine {
    pub const ALL: [Engine; 3] = [Engine::Interp, Engine::JitChecked, Engine::Jit];

    pub fn name(self) -> &'static str {
        match self {
            Engine::Interp => "interp",
            Engine::JitChecked => "jit-checked",
            Engine::Jit => "jit",
        }
    }
}

/// A program bound, verified and with its context accesses converted.
pub struct Loaded {
    pub ty: ProgType,
    pub inst: Instance,
    pub bound: BoundProgram,
}

/// Load `prog` of the object at `path`, create its maps and bind it (the
/// binding verifies it and converts its context accesses).
pub fn load(path: &Path, prog: &str) -> Result<Loaded, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let obj = loader::load(&bytes, &LoadOptions::default()).map_err(|e| e.to_string())?;
    let p = obj.program(prog).map_err(|e| e.to_string())?;
    let inst = Instance::new(&obj, &InstanceOptions::default()).map_err(|e| e.to_string())?;
    let bound = inst
        .bind(&obj, p, &HelperTable::kernel())
        .map_err(|e| e.to_string())?;
    let ty = p.kind.prog_type;
    if bound.facts.is_none() || bound.ctx.is_none() {
        return Err(format!("{prog}: not verified and converted by the binding"));
    }
    Ok(Loaded { ty, inst, bound })
}

/// Run every input through `engine`, in order, on one set of maps.
pub fn run_bpfc(l: &Loaded, engine: Engine, inputs: &[Input]) -> Result<Results, String> {
    run_bpfc_with(l, engine, &[], inputs)
}

/// [`run_bpfc`] after writing `fills` into the maps.
pub fn run_bpfc_with(
    l: &Loaded,
    engine: Engine,
    fills: &[Fill],
    inputs: &[Input],
) -> Result<Results, String> {
    for (name, k, v) in fills {
        let m = l.inst.map(name).ok_or(format!("no map {name}"))?;
        m.update(k, v, 0).map_err(|e| format!("map {name}: {e}"))?;
    }
    let jit = match engine {
        Engine::Interp => None,
        e => {
            let opts = CodegenOptions {
                checked: e == Engine::JitChecked,
                ..Default::default()
            };
            Some(JitProgram::from_bound(l.bound.clone(), &opts, None).map_err(|e| e.to_string())?)
        }
    };
    let mut outcomes = Vec::new();
    for (i, inp) in inputs.iter().enumerate() {
        let net = match convert::net_setup(l.ty, &inp.data, inp.ctx.as_deref()) {
            None => return Err(format!("{} is not a network program type", l.ty.name())),
            Some(Err(e)) => {
                outcomes.push(Outcome::Refused(e.errno()));
                continue;
            }
            Some(Ok(n)) => n,
        };
        let mut ctx = ExecContext::new();
        let out = bpfc_runtime::net::test_run(net, &mut ctx, 1, |mem, ctx| match &jit {
            None => interp::run_bound(&l.bound, mem, ctx, &interp::Options::default())
                .map_err(|e| e.to_string()),
            Some(j) => j.run(mem, ctx).map_err(|e| e.to_string()),
        })
        .map_err(|e| format!("packet {i}: {e}"))?;
        outcomes.push(Outcome::Ok {
            retval: out.retval,
            data_out: out.data_out,
            ctx_out: inp.ctx.as_ref().map(|_| out.ctx_out),
        });
    }
    let mut maps = Vec::new();
    for (d, m) in l.inst.defs.iter().zip(&l.inst.maps) {
        let Some(m) = m else { continue };
        if d.name.contains('.') {
            continue;
        }
        for (k, v) in m.entries().map_err(|e| e.to_string())? {
            maps.push(format!("{} {} {}", d.name, hex(&k), hex(&v)));
        }
    }
    maps.sort();
    Ok(Results { outcomes, maps })
}

/// The kernel driver (`harness/pkt_run.c` built with `cc -lbpf`), once per
/// process, or `None` after a skip line for `test`.
pub fn kernel_driver(test: &str) -> Option<PathBuf> {
    crate::kernel_run::libbpf_harness(test, "pkt_run")
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or(0))
        .collect()
}

/// Run every input in the kernel; with `repeat`, also the kernel's
/// average duration of the first input run `repeat` times.
pub fn run_kernel(
    driver: &Path,
    obj: &Path,
    prog: &str,
    inputs: &[Input],
    repeat: Option<u32>,
) -> Result<(Results, Option<u64>), String> {
    run_kernel_with(driver, obj, prog, &[], inputs, repeat)
}

/// [`run_kernel`] after writing `fills` into the maps.
pub fn run_kernel_with(
    driver: &Path,
    obj: &Path,
    prog: &str,
    fills: &[Fill],
    inputs: &[Input],
    repeat: Option<u32>,
) -> Result<(Results, Option<u64>), String> {
    run_kernel_tuned(driver, obj, prog, None, fills, inputs, repeat)
}

/// [`run_kernel_with`], the object's `.rodata` image replaced by `rodata`
/// before load (as a skeleton's host sets its read-only globals).
pub fn run_kernel_tuned(
    driver: &Path,
    obj: &Path,
    prog: &str,
    rodata: Option<&[u8]>,
    fills: &[Fill],
    inputs: &[Input],
    repeat: Option<u32>,
) -> Result<(Results, Option<u64>), String> {
    let list = std::env::temp_dir().join(format!(
        "bpfc-pkts-{}-{prog}-{}",
        std::process::id(),
        inputs.len()
    ));
    let mut text = String::new();
    for (name, k, v) in fills {
        let _ = writeln!(text, "map {name} {} {}", hex(k), hex(v));
    }
    for i in inputs {
        let ctx = i.ctx.as_ref().map_or("-".to_string(), |c| hex(c));
        let _ = writeln!(text, "{} {ctx}", hex(&i.data));
    }
    std::fs::write(&list, text).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(driver);
    cmd.arg(obj).arg(prog).arg(&list);
    if let Some(r) = rodata {
        cmd.env("PKT_RUN_RODATA", hex(r));
    }
    if let Some(r) = repeat {
        cmd.arg(r.to_string());
    }
    let o = cmd.output().map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&list);
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).trim().to_string());
    }
    let mut outcomes = Vec::new();
    let mut maps = Vec::new();
    let mut duration = None;
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.as_slice() {
            ["ok", r, d, c] => outcomes.push(Outcome::Ok {
                retval: r.parse().map_err(|_| line.to_string())?,
                data_out: unhex(d),
                ctx_out: (*c != "-").then(|| unhex(c)),
            }),
            ["err", e] => outcomes.push(Outcome::Refused(e.parse().unwrap_or(-1))),
            ["map", n, k, v] => maps.push(format!("{n} {k} {v}")),
            ["duration", d] => duration = d.parse().ok(),
            _ => return Err(format!("unexpected driver output: {line}")),
        }
    }
    maps.sort();
    Ok((Results { outcomes, maps }, duration))
}

/// The first difference between the kernel's results and bpfc's, as a
/// message naming the packet.
pub fn diff(
    inputs: &[Input],
    frames: &[String],
    kernel: &Results,
    bpfc: &Results,
) -> Option<String> {
    for (i, (k, b)) in kernel.outcomes.iter().zip(&bpfc.outcomes).enumerate() {
        if k != b {
            let inp = &inputs[i];
            return Some(format!(
                "packet {i} ({}): data_in {} ctx_in {}\n  kernel: {}\n  bpfc:   {}",
                frames.get(i).map_or("", |s| s.as_str()),
                hex(&inp.data),
                inp.ctx.as_ref().map_or("-".into(), |c| hex(c)),
                show(k),
                show(b)
            ));
        }
    }
    if kernel.outcomes.len() != bpfc.outcomes.len() {
        return Some(format!(
            "{} results from the kernel, {} from bpfc",
            kernel.outcomes.len(),
            bpfc.outcomes.len()
        ));
    }
    if kernel.maps != bpfc.maps {
        let only_k: Vec<_> = kernel
            .maps
            .iter()
            .filter(|m| !bpfc.maps.contains(m))
            .collect();
        let only_b: Vec<_> = bpfc
            .maps
            .iter()
            .filter(|m| !kernel.maps.contains(m))
            .collect();
        return Some(format!(
            "maps differ after the run\n  kernel only: {only_k:?}\n  bpfc only:   {only_b:?}"
        ));
    }
    None
}

fn show(o: &Outcome) -> String {
    match o {
        Outcome::Ok {
            retval,
            data_out,
            ctx_out,
        } => format!(
            "retval {retval} data_out {} ctx_out {}",
            hex(data_out),
            ctx_out.as_ref().map_or("-".into(), |c| hex(c))
        ),
        Outcome::Refused(e) => format!("refused, errno {e}"),
    }
}
