//! The kernel-differential map harness: one [`Case`] per map definition,
//! a seeded random sequence of user-space operations ([`ops`]) applied to a
//! kernel map (through [`crate::kernel`]) and to a bpfc map, every result
//! compared ([`check`]), a failing sequence shrunk and printed with its seed.
//!
//! Adding a map type is one [`Case`] in `tests/maps_kernel.rs`: its
//! [`MapSpec`], how keys are drawn ([`Keys`]) and what can be compared
//! ([`Mode`]). Cases whose type the runtime cannot create yet are reported
//! and skipped, so a table entry can land before its family does.

pub mod check;
pub mod ops;
pub mod subject;

use crate::kernel::{self, KernelMap, MapCreate};
use bpfc_runtime::maps::{Map, MapOptions, MapSpec};
use check::{Make, Mismatch, Sides, Stats};
use std::fmt::Write as _;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};
use subject::Bpfc;

/// How a case draws its keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keys {
    /// Keyless maps (queue, stack, bloom filter).
    None,
    /// u32 indices `0..max_entries + extra` (arrays; the extra ones are out
    /// of range).
    Index { extra: u32 },
    /// A pool of `pool` random keys of the key size, and now and then a
    /// fresh random key.
    Random { pool: usize },
    /// Only the `pool` random keys: at most `pool` elements ever exist
    /// (LRU maps kept below eviction).
    Bounded { pool: usize },
    /// LPM trie keys (`u32` prefix length, then the data), a pool of
    /// `pool` nested and overlapping prefixes.
    Lpm { pool: usize },
}

/// What can be compared between the kernel and bpfc ([`check`] says how).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Exact,
    HashOrder,
    LruEvicting,
    Bloom,
}

/// Raw BTF for the kernel side and the key and value type ids in it (for
/// values with a `struct bpf_spin_lock`, which the kernel finds from BTF).
#[derive(Clone, Debug)]
pub struct CaseBtf {
    pub raw: Vec<u8>,
    pub key_type_id: u32,
    pub value_type_id: u32,
}

/// One map definition to compare.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: &'static str,
    pub spec: MapSpec,
    pub keys: Keys,
    pub mode: Mode,
    pub btf: Option<CaseBtf>,
}

impl Case {
    pub fn new(name: &'static str, spec: MapSpec, keys: Keys, mode: Mode) -> Case {
        Case {
            name,
            spec,
            keys,
            mode,
            btf: None,
        }
    }

    pub fn with_btf(mut self, btf: CaseBtf) -> Case {
        self.btf = Some(btf);
        self
    }
}

/// The kernel map of a case.
pub fn kernel_map(spec: &MapSpec, btf: Option<&CaseBtf>) -> Result<KernelMap, kernel::Errno> {
    let btf_fd = match btf {
        Some(b) => Some(kernel::btf_load(&b.raw).map_err(|(e, log)| {
            eprintln!("BTF_LOAD failed: {log}");
            e
        })?),
        None => None,
    };
    let name: String = spec
        .name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        .take(15)
        .collect();
    let mut c = MapCreate::new(
        spec.map_type as u32,
        spec.key_size,
        spec.value_size,
        spec.max_entries,
    )
    .flags(spec.flags)
    .name(&name)
    .map_extra(spec.map_extra);
    if let (Some(fd), Some(b)) = (&btf_fd, btf) {
        c = c.btf(fd.as_fd(), b.key_type_id, b.value_type_id);
    }
    KernelMap::create(&c)
}

/// The bpfc map of a case (default options: the host's possible CPUs).
pub fn bpfc_map(spec: &MapSpec) -> Result<std::sync::Arc<Map>, bpfc_runtime::maps::MapError> {
    Map::create_with(spec, &MapOptions::default())
}

/// Whether the runtime says it has no implementation of the type yet.
pub fn not_implemented(e: &bpfc_runtime::maps::MapError) -> bool {
    e.reason()
        .is_some_and(|r| r.contains("not implemented yet"))
}

/// The outcome of comparing one case.
#[derive(Clone, Debug)]
pub struct Report {
    pub ops: usize,
    pub stats: Stats,
    pub elapsed: Duration,
    /// Whether batch commands were part of the sequence.
    pub batch: bool,
}

/// Why a case was not compared.
#[derive(Clone, Debug)]
pub enum NotRun {
    /// The runtime cannot create the type yet.
    NotImplemented(String),
}

/// Compare `case` between the kernel and bpfc for `n` operations from
/// `seed`. `Err` carries the full failure report (seed, shrunk sequence).
pub fn compare(case: &Case, seed: u64, n: usize) -> Result<Result<Report, NotRun>, String> {
    if let Err(e) = bpfc_map(&case.spec) {
        if not_implemented(&e) {
            return Ok(Err(NotRun::NotImplemented(e.to_string())));
        }
    }
    let make = || -> Result<Sides, String> {
        let k = kernel_map(&case.spec, case.btf.as_ref())
            .map_err(|e| format!("{}: the kernel cannot create the map: {e}", case.name))?;
        let b = bpfc_map(&case.spec)
            .map_err(|e| format!("{}: bpfc cannot create the map: {e}", case.name))?;
        Ok((Box::new(k), Box::new(Bpfc(b))))
    };
    compare_with(case, seed, n, &make).map(Ok)
}

/// [`compare`] with any two sides (the harness's self-check runs the
/// kernel against itself).
pub fn compare_with(case: &Case, seed: u64, n: usize, make: &Make) -> Result<Report, String> {
    let start = Instant::now();
    let (a, b) = make()?;
    if a.value_size() != b.value_size() || a.key_size() != b.key_size() {
        return Err(format!(
            "{}: sizes differ: kernel key {} value {}, bpfc key {} value {}",
            case.name,
            a.key_size(),
            a.value_size(),
            b.key_size(),
            b.value_size()
        ));
    }
    let batch = a.batch().is_some() && b.batch().is_some() && case.mode != Mode::LruEvicting;
    let ops = ops::generate(case, seed, n, batch, a.value_size());
    drop((a, b));
    let mut stats = Stats::default();
    match check::run(case, make, &ops, &mut stats) {
        Ok(()) => Ok(Report {
            ops: ops.len(),
            stats,
            elapsed: start.elapsed(),
            batch,
        }),
        Err(first) => {
            let (short, why) = check::shrink(case, make, &ops, first.clone(), SHRINK_BUDGET);
            Err(failure_report(case, seed, &ops, &first, &short, &why))
        }
    }
}

const SHRINK_BUDGET: Duration = Duration::from_secs(30);
/// Operations printed before the failing one when a sequence is long.
const SHOW: usize = 60;

fn failure_report(
    case: &Case,
    seed: u64,
    ops: &[Op],
    first: &Mismatch,
    short: &[Op],
    why: &Mismatch,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "map case {} differs from the kernel (seed {seed:#x}; rerun with BPFC_MAPS_SEED={seed:#x})",
        case.name
    );
    let _ = writeln!(s, "spec: {:?}", case.spec);
    let _ = writeln!(
        s,
        "first difference at operation #{}: {}: {}",
        first.index, ops[first.index], first.what
    );
    let _ = writeln!(
        s,
        "shrunk to {} operations (on fresh maps), failing at the last: {}",
        short.len(),
        why.what
    );
    let from = short.len().saturating_sub(SHOW);
    if from > 0 {
        let _ = writeln!(s, "  ... {from} earlier operations not shown");
    }
    for (i, op) in short.iter().enumerate().skip(from) {
        let _ = writeln!(s, "  #{i}: {op}");
    }
    s
}

pub use ops::Op;

/// The seed: `BPFC_MAPS_SEED` (decimal or 0x hex), else from the clock.
pub fn seed_from_env() -> u64 {
    if let Ok(v) = std::env::var("BPFC_MAPS_SEED") {
        let v = v.trim();
        let parsed = match v.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16),
            None => v.parse(),
        };
        return parsed.unwrap_or_else(|_| panic!("BPFC_MAPS_SEED={v} is not a number"));
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

/// Operations per case: `BPFC_MAPS_OPS`, default `default`.
pub fn ops_from_env(default: usize) -> usize {
    std::env::var("BPFC_MAPS_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Keep the calling thread on one CPU, so that the kernel's per-CPU LRU
/// lists (and bpfc's, which follow the CPU too) stay those of one CPU for a
/// whole sequence.
pub fn pin_to_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET and
    // sched_setaffinity get valid pointers to it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
