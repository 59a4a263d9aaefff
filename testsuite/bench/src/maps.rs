//! bpfc-bench-maps: nanoseconds per map operation through the runtime's
//! Rust API, single-threaded and with 2 threads at once, beside a
//! `std::collections::HashMap` behind a `RwLock` doing the same work in the
//! same run. Prints a markdown table (stdout) and progress (stderr).
//!
//! Method: an operation runs `OPS` times in a loop over a fixed, shuffled
//! set of keys; the loop is timed; this repeats `REPS` times and the
//! median per-operation time is reported. With 2 threads both run the loop
//! at once (each on its own half of the keys where the operation writes),
//! and the figure is the wall time over the operations of one thread: equal
//! to the single-threaded figure when the threads do not slow each other.
//!
//! Usage: `bpfc-bench-maps [FILTER...]` (rows whose name contains a filter).

use bpfc_runtime::maps::{flags, Map, MapOptions, MapSpec, MapType};
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Arc, Barrier, RwLock};
use std::time::Instant;

/// Operations per timed loop and timed loops per figure.
const OPS: u64 = 20_000;
const REPS: usize = 101;
/// Keys each map holds (the hash maps have room for twice as many).
const KEYS: u32 = 1000;

/// A measured operation: `op(thread, i)` does operation number `i`.
type Op = Box<dyn Fn(usize, u64) + Sync>;

struct Row {
    map: String,
    op: &'static str,
    cells: Result<(f64, f64), String>,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Median ns per operation with `threads` threads running `op` at once.
fn time(op: &Op, threads: usize) -> f64 {
    // Warm up.
    for i in 0..OPS / 10 {
        op(0, i);
    }
    let mut per = Vec::with_capacity(REPS);
    for _ in 0..REPS {
        let barrier = Barrier::new(threads + 1);
        let elapsed = std::thread::scope(|s| {
            for t in 0..threads {
                let (op, barrier) = (&op, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    for i in 0..OPS {
                        op(t, i);
                    }
                });
            }
            barrier.wait();
            let start = Instant::now();
            // The scope joins the threads before returning.
            start
        });
        per.push(elapsed.elapsed().as_nanos() as f64 / OPS as f64);
    }
    median(&mut per)
}

/// The i-th key index of thread `t`: all keys for reads, thread `t`'s half
/// for writes (`split`), in a scrambled order.
fn key_index(t: usize, i: u64, split: bool) -> u32 {
    let k = (i.wrapping_mul(7919) % u64::from(KEYS)) as u32;
    if split {
        (k & !1) | t as u32 & 1
    } else {
        k
    }
}

fn key_bytes(k: u32, size: usize) -> Vec<u8> {
    let mut b = vec![0u8; size];
    // Spread the index over the key so long keys differ early and late.
    b[..4].copy_from_slice(&k.to_ne_bytes());
    let n = b.len();
    if n >= 8 {
        b[n - 4..].copy_from_slice(&k.wrapping_mul(2_654_435_761).to_ne_bytes());
    }
    b
}

fn create(spec: &MapSpec) -> Result<Arc<Map>, String> {
    Map::create_with(spec, &MapOptions::default()).map_err(|e| format!("n/a: {e}"))
}

fn measure(map: &str, op: &'static str, f: Result<Op, String>) -> Row {
    eprintln!("== {map}: {op}");
    let cells = f.map(|f| (time(&f, 1), time(&f, 2)));
    if let Ok((a, b)) = &cells {
        eprintln!("   1 thread {a:.1} ns, 2 threads {b:.1} ns");
    }
    Row {
        map: map.to_string(),
        op,
        cells,
    }
}

/// lookup, update and program lookup rows of a keyed map whose keys are
/// `key_size` bytes.
fn keyed_rows(rows: &mut Vec<Row>, label: &str, spec: MapSpec) {
    let map = match create(&spec) {
        Ok(m) => m,
        Err(e) => {
            for op in ["lookup", "update"] {
                rows.push(Row {
                    map: label.into(),
                    op,
                    cells: Err(e.clone()),
                });
            }
            return;
        }
    };
    let ks = spec.key_size as usize;
    let vs = map.user_value_size();
    let keys: Arc<Vec<Vec<u8>>> = Arc::new((0..KEYS).map(|k| key_bytes(k, ks)).collect());
    for k in keys.iter() {
        map.update(k, &vec![1u8; vs], flags::BPF_ANY).unwrap();
    }
    let (m, ky) = (map.clone(), keys.clone());
    rows.push(measure(
        label,
        "lookup (copy out)",
        Ok(Box::new(move |t, i| {
            let mut v = [0u8; 64];
            let k = &ky[key_index(t, i, false) as usize];
            m.lookup(k, &mut v[..vs]).unwrap();
            black_box(&v);
        })),
    ));
    let (m, ky) = (map.clone(), keys.clone());
    rows.push(measure(
        label,
        "update (existing key)",
        Ok(Box::new(move |t, i| {
            let v = [i as u8; 64];
            let k = &ky[key_index(t, i, true) as usize];
            m.update(k, &v[..vs], flags::BPF_ANY).unwrap();
        })),
    ));
    let (m, ky) = (map, keys);
    rows.push(measure(
        label,
        "program lookup (pointer)",
        Ok(Box::new(move |t, i| {
            let k = &ky[key_index(t, i, false) as usize];
            black_box(m.prog_lookup(k, t as u32).unwrap());
        })),
    ));
}

/// The same lookups and updates on a `HashMap<[u8; N], [u8; 8]>` behind a
/// `RwLock` (read lock for lookups, write lock for updates).
fn std_rows<const N: usize>(rows: &mut Vec<Row>) {
    let label = format!("std HashMap + RwLock, {N} B keys");
    let keys: Arc<Vec<[u8; N]>> = Arc::new(
        (0..KEYS)
            .map(|k| key_bytes(k, N).try_into().unwrap())
            .collect(),
    );
    let map: Arc<RwLock<HashMap<[u8; N], [u8; 8]>>> =
        Arc::new(RwLock::new(keys.iter().map(|k| (*k, [1u8; 8])).collect()));
    let (m, ky) = (map.clone(), keys.clone());
    rows.push(measure(
        &label,
        "lookup (copy out)",
        Ok(Box::new(move |t, i| {
            let k = &ky[key_index(t, i, false) as usize];
            let v: [u8; 8] = *m.read().unwrap().get(k).unwrap();
            black_box(v);
        })),
    ));
    let (m, ky) = (map, keys);
    rows.push(measure(
        &label,
        "update (existing key)",
        Ok(Box::new(move |t, i| {
            let k = &ky[key_index(t, i, true) as usize];
            m.write().unwrap().insert(*k, [i as u8; 8]);
        })),
    ));
}

fn lpm_row(rows: &mut Vec<Row>) {
    let label = "LPM trie, 10,000 prefixes (/8 to /32)";
    let spec = MapSpec::new(
        "lpm",
        MapType::LpmTrie,
        8,
        8,
        10_000,
        flags::BPF_F_NO_PREALLOC,
    );
    let op: Result<Op, String> = create(&spec).map(|m| {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut n = 0;
        while n < 10_000 {
            let r = next();
            let plen = 8 + (r % 25) as u32;
            let mut key = plen.to_ne_bytes().to_vec();
            key.extend_from_slice(&((r >> 32) as u32).to_be_bytes());
            if m.update(&key, &r.to_ne_bytes(), flags::BPF_NOEXIST).is_ok() {
                n += 1;
            }
        }
        let probes: Arc<Vec<Vec<u8>>> = Arc::new(
            (0..KEYS)
                .map(|_| {
                    let mut key = 32u32.to_ne_bytes().to_vec();
                    key.extend_from_slice(&(next() as u32).to_be_bytes());
                    key
                })
                .collect(),
        );
        Box::new(move |t, i| {
            let mut v = [0u8; 8];
            let _ = black_box(m.lookup(&probes[key_index(t, i, false) as usize], &mut v));
        }) as Op
    });
    rows.push(measure(label, "/32 lookup", op));
}

fn queue_row(rows: &mut Vec<Row>) {
    let spec = MapSpec::new("queue", MapType::Queue, 0, 8, 1024, 0);
    let op: Result<Op, String> = create(&spec).map(|m| {
        Box::new(move |_t: usize, i: u64| {
            m.update(&[], &i.to_ne_bytes(), flags::BPF_ANY).unwrap();
            let mut v = [0u8; 8];
            m.lookup_and_delete(&[], &mut v, 0).unwrap();
            black_box(v);
        }) as Op
    });
    rows.push(measure("queue, 8 B values", "push + pop (one pair)", op));
}

/// One 16-byte record output by the program face and the consumer's pass
/// over what is committed. With 2 threads both output to the one ring and
/// each drains it with its own consumer (consumers take turns; a record goes
/// to one of them). The consumer sits behind an uncontended `Mutex`.
fn ring_row(rows: &mut Vec<Row>) {
    use bpfc_runtime::maps::ringbuf::{RingBuf, RingBufConsumer, BPF_RB_NO_WAKEUP};
    use std::ops::ControlFlow;
    use std::sync::Mutex;
    let spec = MapSpec::new("rb", MapType::Ringbuf, 0, 0, 1 << 16, 0);
    let op: Result<Op, String> = create(&spec).and_then(|m| {
        let consumers = (0..2)
            .map(|_| RingBufConsumer::new(&m).map(Mutex::new))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("n/a: {e}"))?;
        Ok(Box::new(move |t: usize, i: u64| {
            let rb = RingBuf::from_map(&m).expect("a ring buffer");
            let rec = [i as u8; 16];
            let _ = black_box(rb.output(&rec, BPF_RB_NO_WAKEUP));
            let mut c = consumers[t].lock().unwrap();
            black_box(c.consume(|r| {
                black_box(r);
                ControlFlow::Continue(())
            }));
        }) as Op)
    });
    rows.push(measure(
        "ring buffer, 64 KiB, 16 B records",
        "output + consume",
        op,
    ));
}

fn ns(v: f64) -> String {
    format!("{v:.1} ns")
}

/// The 1-minute load average (other work on the machine skews the
/// 2-thread figures most).
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn main() {
    let load_before = load();
    let filter: Vec<String> = std::env::args().skip(1).collect();
    let want = |name: &str| filter.is_empty() || filter.iter().any(|f| name.contains(f.as_str()));
    let mut rows = Vec::new();
    let entries = 2 * KEYS;
    let keyed = [
        (
            "array, 8 B values",
            MapSpec::new("a", MapType::Array, 4, 8, KEYS, 0),
        ),
        (
            "hash, 4 B keys",
            MapSpec::new("h4", MapType::Hash, 4, 8, entries, 0),
        ),
        (
            "hash, 16 B keys",
            MapSpec::new("h16", MapType::Hash, 16, 8, entries, 0),
        ),
        (
            "hash, 64 B keys",
            MapSpec::new("h64", MapType::Hash, 64, 8, entries, 0),
        ),
        (
            "per-CPU hash, 4 B keys, 8 B values",
            MapSpec::new("ph", MapType::PercpuHash, 4, 8, entries, 0),
        ),
    ];
    for (label, spec) in keyed {
        if want(label) {
            keyed_rows(&mut rows, label, spec);
        }
    }
    if want("LPM") {
        lpm_row(&mut rows);
    }
    if want("queue") {
        queue_row(&mut rows);
    }
    if want("ring") {
        ring_row(&mut rows);
    }
    if want("std") {
        std_rows::<4>(&mut rows);
        std_rows::<16>(&mut rows);
        std_rows::<64>(&mut rows);
    }
    println!("| map | operation | 1 thread | 2 threads |");
    println!("|---|---|---:|---:|");
    for r in &rows {
        match &r.cells {
            Ok((a, b)) => println!("| {} | {} | {} | {} |", r.map, r.op, ns(*a), ns(*b)),
            Err(e) => println!("| {} | {} | {e} | |", r.map, r.op),
        }
    }
    println!(
        "\n{} operations per timed loop, median of {} loops; {} keys; per-CPU maps have {} CPU slots; \
         load average {} before the run, {} after.",
        OPS,
        REPS,
        KEYS,
        bpfc_runtime::maps::possible_cpus(),
        load_before,
        load()
    );
}
