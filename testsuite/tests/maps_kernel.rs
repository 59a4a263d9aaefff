//! bpfc's maps against the running kernel's (root and `bpf()` needed; a
//! SKIP line otherwise, a failure under `BPFC_TEST_REQUIRE=all`).
//!
//! - `diff/<case>`: a seeded random sequence of user-space operations
//!   (`BPFC_MAPS_OPS`, default 10,000, plus a final comparison of the whole
//!   contents) on a kernel map and a bpfc map of the same definition, every
//!   result compared (`bpfc_testsuite::mapdiff` says what each mode
//!   compares). `BPFC_MAPS_SEED` replays a run; a difference prints the
//!   seed and the shrunk operation sequence.
//! - `self/<case>`: the same harness with the kernel on both sides, which
//!   must always agree; this checks the harness itself (hash-order and LRU
//!   rules included: two kernel hash maps have different hash seeds).
//! - `definitions`: bad (and some good) map definitions must give the same
//!   errno from both.
//! - `kernel_wrapper`: the `bpf()` wrapper's batch, pin and program commands
//!   against the kernel's own element commands.
//!
//! Adding a map type is one entry in [`cases`]. Entries whose type the
//! runtime cannot create yet print a NOTE and are not compared.

use bpfc_runtime::maps::{flags as f, MapSpec, MapType};
use bpfc_testsuite::kernel::{self, Batch, KernelMap, MapCreate, Prog, ProgLoad, TestRun};
use bpfc_testsuite::mapdiff::{self, subject::Subject, Case, CaseBtf, Keys, Mode, NotRun};
use bpfc_testsuite::rawbtf::BtfBuilder;
use libtest_mimic::{Arguments, Failed, Trial};
use std::os::fd::AsFd;
use std::time::Instant;

fn spec(name: &str, t: MapType, key: u32, value: u32, entries: u32, flags: u32) -> MapSpec {
    MapSpec::new(name, t, key, value, entries, flags)
}

/// A value `{ u64 a; struct bpf_spin_lock lock; u32 b; u64 c; }` (24 bytes,
/// lock at 8) with a u32 key, in BTF for the kernel.
fn spin_lock_btf() -> CaseBtf {
    let mut b = BtfBuilder::new();
    let u32t = b.int("unsigned int", 4, 0);
    let u64t = b.int("long long unsigned int", 8, 0);
    let lock = b.struct_("bpf_spin_lock", 4, &[("val", u32t, 0)]);
    let value = b.struct_(
        "locked",
        24,
        &[
            ("a", u64t, 0),
            ("lock", lock, 64),
            ("b", u32t, 96),
            ("c", u64t, 128),
        ],
    );
    CaseBtf {
        raw: b.build(),
        key_type_id: u32t,
        value_type_id: value,
    }
}

fn with_lock(mut s: MapSpec) -> MapSpec {
    s.spin_lock_off = Some(8);
    s
}

/// Every map definition compared with the kernel. One entry per definition:
/// the spec, how keys are drawn, what can be compared.
fn cases() -> Vec<Case> {
    use Keys::*;
    use MapType as T;
    use Mode::*;
    let idx = Index { extra: 4 };
    vec![
        // Arrays: every index exists; out-of-range ones give E2BIG/ENOENT.
        Case::new("array", spec("array", T::Array, 4, 8, 32, 0), idx, Exact),
        Case::new(
            "array_value3",
            spec("arr3", T::Array, 4, 3, 17, 0),
            idx,
            Exact,
        ),
        Case::new(
            "array_wronly",
            spec("arrwo", T::Array, 4, 8, 8, f::BPF_F_WRONLY),
            idx,
            Exact,
        ),
        Case::new(
            "percpu_array",
            spec("parr", T::PercpuArray, 4, 12, 16, 0),
            idx,
            Exact,
        ),
        Case::new(
            "array_spin_lock",
            with_lock(spec("arrlk", T::Array, 4, 24, 8, 0)),
            idx,
            Exact,
        )
        .with_btf(spin_lock_btf()),
        // Hash maps: full maps (pool larger than max_entries), odd key sizes.
        Case::new(
            "hash",
            spec("hash", T::Hash, 4, 8, 16, 0),
            Random { pool: 24 },
            HashOrder,
        ),
        Case::new(
            "hash_key13_no_prealloc",
            // No-prealloc maps below 2 * CPUs * 32 entries count exactly in
            // the kernel (bigger ones use an approximate per-CPU counter).
            spec("h13", T::Hash, 13, 5, 40, f::BPF_F_NO_PREALLOC),
            Random { pool: 60 },
            HashOrder,
        ),
        Case::new(
            "hash_key64",
            spec("h64", T::Hash, 64, 16, 32, 0),
            Random { pool: 48 },
            HashOrder,
        ),
        // With BPF_F_ZERO_SEED, bpfc's hash (the kernel's jhash), bucket count
        // and head insertion give the kernel's order: compared exactly.
        Case::new(
            "hash_zero_seed",
            spec("hzs", T::Hash, 8, 8, 64, f::BPF_F_ZERO_SEED),
            Random { pool: 80 },
            Exact,
        ),
        Case::new(
            "percpu_hash_zero_seed_no_prealloc",
            spec(
                "phzs",
                T::PercpuHash,
                12,
                4,
                48,
                f::BPF_F_ZERO_SEED | f::BPF_F_NO_PREALLOC,
            ),
            Random { pool: 64 },
            Exact,
        ),
        Case::new(
            "lru_hash_zero_seed",
            spec("lruzs", T::LruHash, 4, 8, 64, f::BPF_F_ZERO_SEED),
            Bounded { pool: 24 },
            Exact,
        ),
        Case::new(
            "hash_rdonly",
            spec("hro", T::Hash, 4, 8, 8, f::BPF_F_RDONLY),
            Random { pool: 12 },
            HashOrder,
        ),
        Case::new(
            "hash_spin_lock",
            with_lock(spec("hlk", T::Hash, 4, 24, 16, 0)),
            Random { pool: 24 },
            HashOrder,
        )
        .with_btf(spin_lock_btf()),
        Case::new(
            "percpu_hash",
            spec("phash", T::PercpuHash, 8, 12, 16, 0),
            Random { pool: 24 },
            HashOrder,
        ),
        Case::new(
            "percpu_hash_no_prealloc",
            spec("phnp", T::PercpuHash, 4, 8, 16, f::BPF_F_NO_PREALLOC),
            Random { pool: 24 },
            HashOrder,
        ),
        // LRU maps below eviction: the kernel refills a CPU's free list from
        // the global one, evicting only when fewer than target_free =
        // clamp(max_entries / CPUs / 2, 1, 128) free nodes remain there (per-CPU
        // lists: when the CPU's own max_entries / CPUs nodes are used up).
        // With the thread on one CPU and only the pool's keys (Bounded), at
        // most pool + 1 nodes in use
        // (an update takes its node before freeing the old one), nothing is
        // evicted when pool + 1 <= max_entries - target_free (common list)
        // or pool + 1 <= max_entries / CPUs (per-CPU lists, each CPU's own
        // list alike), and results compare exactly, as for hash maps.
        Case::new(
            "lru_hash",
            spec("lru", T::LruHash, 4, 8, 64, 0),
            Bounded { pool: 24 },
            HashOrder,
        ),
        Case::new(
            "lru_percpu_hash",
            spec("lrupc", T::LruPercpuHash, 4, 12, 64, 0),
            Bounded { pool: 24 },
            HashOrder,
        ),
        Case::new(
            "lru_hash_no_common_lru",
            spec("lrunc", T::LruHash, 4, 8, 64, f::BPF_F_NO_COMMON_LRU),
            Bounded { pool: 24 },
            HashOrder,
        ),
        // LRU maps under eviction: only what each side's history allows.
        Case::new(
            "lru_hash_evicting",
            spec("lruev", T::LruHash, 4, 8, 32, 0),
            Random { pool: 96 },
            LruEvicting,
        ),
        Case::new(
            "lru_percpu_hash_evicting",
            spec("lrupev", T::LruPercpuHash, 4, 8, 16, 0),
            Random { pool: 64 },
            LruEvicting,
        ),
        Case::new(
            "lru_no_common_evicting",
            spec("lruncev", T::LruHash, 4, 8, 32, f::BPF_F_NO_COMMON_LRU),
            Random { pool: 64 },
            LruEvicting,
        ),
        // Families on their way (compared once the runtime creates them).
        Case::new(
            "lpm_trie_v4",
            spec("lpm4", T::LpmTrie, 8, 8, 64, f::BPF_F_NO_PREALLOC),
            Lpm { pool: 96 },
            Exact,
        ),
        Case::new(
            "lpm_trie_v6",
            spec("lpm6", T::LpmTrie, 20, 4, 48, f::BPF_F_NO_PREALLOC),
            Lpm { pool: 72 },
            Exact,
        ),
        Case::new("queue", spec("queue", T::Queue, 0, 8, 16, 0), None, Exact),
        Case::new("stack", spec("stack", T::Stack, 0, 12, 16, 0), None, Exact),
        Case::new(
            "bloom_filter",
            MapSpec {
                map_extra: 3,
                ..spec("bloom", T::BloomFilter, 0, 8, 64, 0)
            },
            None,
            Bloom,
        ),
    ]
}

fn diff(case: &Case, seed: u64, n: usize) -> Result<(), Failed> {
    mapdiff::pin_to_cpu(0);
    match mapdiff::compare(case, seed, n)? {
        Ok(r) => {
            println!(
                "diff/{}: {} operations compared in {:.2} s (seed {seed:#x}{}): {}",
                case.name,
                r.ops,
                r.elapsed.as_secs_f64(),
                match (r.batch, case.mode) {
                    (true, _) => "",
                    (false, Mode::LruEvicting) => {
                        "; no batch commands: what they return depends on the kernel's evictions"
                    }
                    (false, _) => "; batch commands not compared: one side has none",
                },
                r.stats.summary()
            );
            Ok(())
        }
        Err(NotRun::NotImplemented(why)) => {
            println!("NOTE: diff/{}: not compared: {why}", case.name);
            Ok(())
        }
    }
}

fn self_check(case: &Case, seed: u64, n: usize) -> Result<(), Failed> {
    mapdiff::pin_to_cpu(0);
    let make = || -> Result<mapdiff::check::Sides, String> {
        let k = |_| {
            mapdiff::kernel_map(&case.spec, case.btf.as_ref())
                .map_err(|e| format!("{}: the kernel cannot create the map: {e}", case.name))
        };
        Ok((Box::new(k(0)?), Box::new(k(1)?)))
    };
    let r = mapdiff::compare_with(case, seed, n, &make)?;
    println!(
        "self/{}: kernel against kernel, {} operations in {:.2} s",
        case.name,
        r.ops,
        r.elapsed.as_secs_f64()
    );
    Ok(())
}

/// The harness must be able to fail: a bpfc hash map one entry larger than
/// the kernel's differs once the maps fill up, and the report names the
/// seed and a shrunk sequence.
fn detects_a_difference(seed: u64) -> Result<(), Failed> {
    mapdiff::pin_to_cpu(0);
    let case = Case::new(
        "hash_one_larger",
        spec("h", MapType::Hash, 4, 8, 16, 0),
        Keys::Random { pool: 24 },
        Mode::HashOrder,
    );
    let make = || -> Result<mapdiff::check::Sides, String> {
        let k = mapdiff::kernel_map(&case.spec, None).map_err(|e| e.to_string())?;
        let b = mapdiff::bpfc_map(&MapSpec {
            max_entries: 17,
            ..case.spec.clone()
        })
        .map_err(|e| e.to_string())?;
        Ok((Box::new(k), Box::new(mapdiff::subject::Bpfc(b))))
    };
    match mapdiff::compare_with(&case, seed, 2_000, &make) {
        Ok(_) => Err("a 17-entry map compared equal to a 16-entry one".into()),
        Err(report) => {
            let shrunk = report
                .lines()
                .find(|l| l.starts_with("shrunk to"))
                .unwrap_or_default()
                .to_string();
            if !report.contains("BPFC_MAPS_SEED=") || !report.contains("E2BIG") {
                return Err(format!("the report lacks the seed or the E2BIG: {report}").into());
            }
            println!("detects_a_difference: {shrunk}");
            Ok(())
        }
    }
}

/// One definition: the spec, BTF for the kernel, an inner map template.
struct Def {
    label: &'static str,
    spec: MapSpec,
    btf: Option<CaseBtf>,
}

fn def(label: &'static str, spec: MapSpec) -> Def {
    Def {
        label,
        spec,
        btf: None,
    }
}

fn definitions_table() -> Vec<Def> {
    use MapType as T;
    let s = |t, k, v, n, fl| spec("d", t, k, v, n, fl);
    let inner = |outer: MapSpec, inner: MapSpec| MapSpec {
        inner: Some(Box::new(inner)),
        ..outer
    };
    let extra = |mut sp: MapSpec, x: u64| {
        sp.map_extra = x;
        sp
    };
    // bpfc's hash element header is not the kernel's; the kernel refuses
    // key + value >= KMALLOC_MAX_SIZE (4 MiB) - sizeof(struct htab_elem) (48).
    let kmalloc_max = 4u32 << 20;
    vec![
        def("hash key_size 0", s(T::Hash, 0, 8, 4, 0)),
        def("hash value_size 0", s(T::Hash, 4, 0, 4, 0)),
        def("hash max_entries 0", s(T::Hash, 4, 8, 0, 0)),
        def("hash good", s(T::Hash, 4, 8, 4, 0)),
        def(
            "hash key+value at the kmalloc limit",
            s(T::Hash, 4, kmalloc_max - 48 - 4, 1, 0),
        ),
        def(
            "hash key+value just below the limit",
            s(T::Hash, 4, kmalloc_max - 48 - 5, 1, 0),
        ),
        def(
            "hash max_entries 2^31 + 1",
            s(T::Hash, 4, 8, (1 << 31) + 1, f::BPF_F_NO_PREALLOC),
        ),
        def(
            "hash max_entries u32::MAX",
            s(T::Hash, 4, 8, u32::MAX, f::BPF_F_NO_PREALLOC),
        ),
        def(
            "percpu_hash value 32 KiB + 1",
            s(T::PercpuHash, 4, 32 * 1024 + 1, 4, 0),
        ),
        def(
            "percpu_hash value 32 KiB",
            s(T::PercpuHash, 4, 32 * 1024, 4, 0),
        ),
        def("array key_size 8", s(T::Array, 8, 8, 4, 0)),
        def("array key_size 0", s(T::Array, 0, 8, 4, 0)),
        def("array value_size 0", s(T::Array, 4, 0, 4, 0)),
        def("array max_entries 0", s(T::Array, 4, 8, 0, 0)),
        def("array value_size > INT_MAX", s(T::Array, 4, 1 << 31, 1, 0)),
        def(
            "array larger than memory (1 TiB)",
            s(T::Array, 4, 1 << 20, 1 << 20, 0),
        ),
        def(
            "percpu_array value 32 KiB + 1",
            s(T::PercpuArray, 4, 32 * 1024 + 1, 4, 0),
        ),
        def(
            "hash BPF_F_MMAPABLE",
            s(T::Hash, 4, 8, 4, f::BPF_F_MMAPABLE),
        ),
        def("hash unknown flag 1<<20", s(T::Hash, 4, 8, 4, 1 << 20)),
        def(
            "hash RDONLY|WRONLY",
            s(T::Hash, 4, 8, 4, f::BPF_F_RDONLY | f::BPF_F_WRONLY),
        ),
        def(
            "hash RDONLY_PROG|WRONLY_PROG",
            s(
                T::Hash,
                4,
                8,
                4,
                f::BPF_F_RDONLY_PROG | f::BPF_F_WRONLY_PROG,
            ),
        ),
        def(
            "hash NO_COMMON_LRU",
            s(T::Hash, 4, 8, 4, f::BPF_F_NO_COMMON_LRU),
        ),
        def(
            "lru_hash NO_PREALLOC",
            s(T::LruHash, 4, 8, 4, f::BPF_F_NO_PREALLOC),
        ),
        def(
            "lru_percpu_hash NO_COMMON_LRU",
            s(T::LruPercpuHash, 4, 8, 4, f::BPF_F_NO_COMMON_LRU),
        ),
        def(
            "array NO_PREALLOC",
            s(T::Array, 4, 8, 4, f::BPF_F_NO_PREALLOC),
        ),
        def("array ZERO_SEED", s(T::Array, 4, 8, 4, f::BPF_F_ZERO_SEED)),
        def("array MMAPABLE", s(T::Array, 4, 8, 4, f::BPF_F_MMAPABLE)),
        def(
            "array PRESERVE_ELEMS",
            s(T::Array, 4, 8, 4, f::BPF_F_PRESERVE_ELEMS),
        ),
        def("array INNER_MAP", s(T::Array, 4, 8, 4, f::BPF_F_INNER_MAP)),
        def(
            "percpu_array MMAPABLE",
            s(T::PercpuArray, 4, 8, 4, f::BPF_F_MMAPABLE),
        ),
        def(
            "percpu_array INNER_MAP",
            s(T::PercpuArray, 4, 8, 4, f::BPF_F_INNER_MAP),
        ),
        def("hash map_extra 1", extra(s(T::Hash, 4, 8, 4, 0), 1)),
        def("array map_extra 1", extra(s(T::Array, 4, 8, 4, 0), 1)),
        Def {
            label: "percpu_hash with a spin lock",
            spec: with_lock(s(T::PercpuHash, 4, 24, 4, 0)),
            btf: Some(spin_lock_btf()),
        },
        Def {
            label: "lru_hash with a spin lock",
            spec: with_lock(s(T::LruHash, 4, 24, 4, 0)),
            btf: Some(spin_lock_btf()),
        },
        Def {
            label: "array with a spin lock and MMAPABLE",
            spec: with_lock(s(T::Array, 4, 24, 4, f::BPF_F_MMAPABLE)),
            btf: Some(spin_lock_btf()),
        },
        // LPM tries.
        def("lpm good", s(T::LpmTrie, 8, 8, 16, f::BPF_F_NO_PREALLOC)),
        def("lpm without NO_PREALLOC", s(T::LpmTrie, 8, 8, 16, 0)),
        def(
            "lpm key_size 4 (no data)",
            s(T::LpmTrie, 4, 8, 16, f::BPF_F_NO_PREALLOC),
        ),
        def(
            "lpm key_size 4 + 256",
            s(T::LpmTrie, 260, 8, 16, f::BPF_F_NO_PREALLOC),
        ),
        def(
            "lpm key_size 4 + 257",
            s(T::LpmTrie, 261, 8, 16, f::BPF_F_NO_PREALLOC),
        ),
        def(
            "lpm value_size 0",
            s(T::LpmTrie, 8, 0, 16, f::BPF_F_NO_PREALLOC),
        ),
        def(
            "lpm max_entries 0",
            s(T::LpmTrie, 8, 8, 0, f::BPF_F_NO_PREALLOC),
        ),
        // Queue, stack, bloom filter, ring buffer.
        def("queue good", s(T::Queue, 0, 8, 16, 0)),
        def("queue key_size 4", s(T::Queue, 4, 8, 16, 0)),
        def("queue value_size 0", s(T::Queue, 0, 0, 16, 0)),
        def("stack max_entries 0", s(T::Stack, 0, 8, 0, 0)),
        def(
            "stack NO_PREALLOC",
            s(T::Stack, 0, 8, 4, f::BPF_F_NO_PREALLOC),
        ),
        def("bloom good", extra(s(T::BloomFilter, 0, 8, 16, 0), 3)),
        def("bloom key_size 4", s(T::BloomFilter, 4, 8, 16, 0)),
        def(
            "bloom 16 hash functions",
            extra(s(T::BloomFilter, 0, 8, 16, 0), 16),
        ),
        def("bloom value_size 0", s(T::BloomFilter, 0, 0, 16, 0)),
        def("ringbuf good", s(T::Ringbuf, 0, 0, 4096, 0)),
        def("ringbuf not a power of 2", s(T::Ringbuf, 0, 0, 4096 * 3, 0)),
        def("ringbuf key_size 4", s(T::Ringbuf, 4, 0, 4096, 0)),
        // Map-in-map templates.
        def(
            "array_of_maps of arrays",
            inner(s(T::ArrayOfMaps, 4, 4, 4, 0), s(T::Array, 4, 8, 4, 0)),
        ),
        def(
            "hash_of_maps of hashes",
            inner(s(T::HashOfMaps, 8, 4, 4, 0), s(T::Hash, 4, 8, 4, 0)),
        ),
        def(
            "array_of_maps value_size 8",
            inner(s(T::ArrayOfMaps, 4, 8, 4, 0), s(T::Array, 4, 8, 4, 0)),
        ),
        def(
            "array_of_maps of prog arrays",
            inner(s(T::ArrayOfMaps, 4, 4, 4, 0), s(T::ProgArray, 4, 4, 4, 0)),
        ),
        def(
            "array_of_maps of array_of_maps",
            inner(
                s(T::ArrayOfMaps, 4, 4, 4, 0),
                inner(s(T::ArrayOfMaps, 4, 4, 4, 0), s(T::Array, 4, 8, 4, 0)),
            ),
        ),
    ]
}

/// The kernel's errno for a definition (map-in-map: the inner map created
/// first, as its template).
fn kernel_create(d: &Def) -> Result<(), i32> {
    let inner = d.spec.inner.as_ref().map(|i| {
        kernel_create_map(i)
            .unwrap_or_else(|e| panic!("{}: the kernel refuses the inner map itself: {e}", d.label))
    });
    let btf_fd = d.btf.as_ref().map(|b| {
        kernel::btf_load(&b.raw).unwrap_or_else(|(e, log)| panic!("BTF_LOAD: {e}\n{log}"))
    });
    let mut c = MapCreate::new(
        d.spec.map_type as u32,
        d.spec.key_size,
        d.spec.value_size,
        d.spec.max_entries,
    )
    .flags(d.spec.flags)
    .map_extra(d.spec.map_extra);
    if let Some(i) = &inner {
        c = c.inner_map(i.fd());
    }
    if let (Some(fd), Some(b)) = (&btf_fd, &d.btf) {
        c = c.btf(fd.as_fd(), b.key_type_id, b.value_type_id);
    }
    KernelMap::create(&c).map(drop).map_err(|e| e.0)
}

fn kernel_create_map(s: &MapSpec) -> Result<KernelMap, kernel::Errno> {
    let inner = match &s.inner {
        Some(i) => Some(kernel_create_map(i)?),
        None => None,
    };
    let mut c = MapCreate::new(s.map_type as u32, s.key_size, s.value_size, s.max_entries)
        .flags(s.flags)
        .map_extra(s.map_extra);
    if let Some(i) = &inner {
        c = c.inner_map(i.fd());
    }
    KernelMap::create(&c)
}

fn definitions() -> Result<(), Failed> {
    let mut bad = Vec::new();
    let (mut compared, mut skipped) = (0, Vec::new());
    for d in definitions_table() {
        let k = kernel_create(&d);
        let b = mapdiff::bpfc_map(&d.spec);
        if let Err(e) = &b {
            if mapdiff::not_implemented(e) {
                skipped.push(d.label);
                continue;
            }
        }
        compared += 1;
        let show = |r: Result<(), i32>| match r {
            Ok(()) => "ok".to_string(),
            Err(e) => mapdiff::check::errno_name(e),
        };
        let bc = b.as_ref().map(drop).map_err(|e| e.code());
        let reason = b
            .as_ref()
            .err()
            .map_or(String::new(), |e| format!(" ({e})"));
        println!(
            "definitions: {:<40} kernel {:<10} bpfc {}{reason}",
            d.label,
            show(k),
            show(bc)
        );
        if k != bc {
            bad.push(format!(
                "{}: kernel {}, bpfc {}{reason}",
                d.label,
                show(k),
                show(bc)
            ));
        }
        if let Err(e) = &b {
            if e.reason().is_none() {
                bad.push(format!("{}: bpfc's error has no explanation: {e}", d.label));
            }
        }
    }
    println!(
        "definitions: {compared} compared; not compared (type not implemented yet): {}",
        if skipped.is_empty() {
            "none".to_string()
        } else {
            skipped.join(", ")
        }
    );
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("definitions differ from the kernel:\n{}", bad.join("\n")).into())
    }
}

/// The wrapper's batch, pin and program commands, checked against the
/// kernel's element commands.
fn kernel_wrapper() -> Result<(), Failed> {
    let m =
        KernelMap::create(&MapCreate::new(1, 4, 8, 43).name("wrap")).map_err(|e| e.to_string())?;
    for i in 0..40u32 {
        m.update(&i.to_ne_bytes(), &(u64::from(i) * 3).to_ne_bytes(), 0)?;
    }
    // Update batch: 3 new keys fill the map; then a replacement works and
    // a new key stops the batch (E2BIG) with the count done before it.
    let keys: Vec<u8> = [100u32, 101, 102]
        .iter()
        .flat_map(|k| k.to_ne_bytes())
        .collect();
    let vals: Vec<u8> = [7u64, 8, 9].iter().flat_map(|v| v.to_ne_bytes()).collect();
    let mut b = Batch {
        count: 3,
        ..Batch::default()
    };
    m.update_batch(&mut b, &keys, &vals)?;
    assert_eq!(b.count, 3);
    let full: Vec<u8> = [5u32, 103].iter().flat_map(|k| k.to_ne_bytes()).collect();
    let mut b = Batch {
        count: 2,
        ..Batch::default()
    };
    assert_eq!(
        m.update_batch(&mut b, &full, &[15u64, 1].map(u64::to_ne_bytes).concat()),
        Err(kernel::Errno(libc::E2BIG))
    );
    assert_eq!(b.count, 1, "one element before the full map");
    // Only BPF_F_LOCK is an element flag of batches.
    let mut b = Batch {
        count: 1,
        elem_flags: 1,
        ..Batch::default()
    };
    assert_eq!(
        m.update_batch(&mut b, &keys[..4], &vals[..8]),
        Err(kernel::Errno(libc::EINVAL))
    );
    // Lookup batch walk: everything, as element lookups see it.
    let mut seen = Vec::new();
    let mut token: Option<Vec<u8>> = None;
    loop {
        let mut ks = vec![0u8; 4 * 16];
        let mut vs = vec![0u8; 8 * 16];
        let mut b = Batch {
            in_batch: token.clone(),
            count: 16,
            ..Batch::default()
        };
        let r = m.lookup_batch(&mut b, &mut ks, &mut vs);
        for i in 0..b.count as usize {
            seen.push((
                u32::from_ne_bytes(ks[i * 4..i * 4 + 4].try_into().unwrap()),
                u64::from_ne_bytes(vs[i * 8..i * 8 + 8].try_into().unwrap()),
            ));
        }
        match r {
            Ok(()) => token = Some(b.out_batch),
            Err(kernel::Errno(libc::ENOENT)) => break,
            Err(e) => return Err(format!("lookup batch: {e}").into()),
        }
    }
    seen.sort();
    let mut want = Vec::new();
    for k in m.keys()? {
        let mut v = [0u8; 8];
        m.lookup(&k, &mut v, 0)?;
        want.push((
            u32::from_ne_bytes(k[..].try_into().unwrap()),
            u64::from_ne_bytes(v),
        ));
    }
    want.sort();
    assert_eq!(seen, want);
    assert_eq!(seen.len(), 43);
    // Delete batch stops at the first missing key.
    let del: Vec<u8> = [100u32, 101, 999, 102]
        .iter()
        .flat_map(|k| k.to_ne_bytes())
        .collect();
    let mut b = Batch {
        count: 4,
        ..Batch::default()
    };
    assert_eq!(
        m.delete_batch(&mut b, &del),
        Err(kernel::Errno(libc::ENOENT))
    );
    assert_eq!(b.count, 2);
    // Pin, open from the pin, see the same map; freeze.
    let dir = std::path::Path::new("/sys/fs/bpf");
    let pin = dir.join(format!("bpfc-wrapper-{}", std::process::id()));
    m.pin(&pin)?;
    let again = KernelMap::open_pinned(&pin);
    let _ = std::fs::remove_file(&pin);
    let again = again?;
    assert_eq!(
        (again.key_size, again.value_size, again.max_entries),
        (4, 8, 43)
    );
    assert_eq!(again.info()?.name(), "wrap");
    let mut v = [0u8; 8];
    again.lookup(&5u32.to_ne_bytes(), &mut v, 0)?;
    assert_eq!(u64::from_ne_bytes(v), 15);
    m.freeze()?;
    assert_eq!(
        again.update(&5u32.to_ne_bytes(), &v, 0),
        Err(kernel::Errno(libc::EPERM))
    );
    // A socket filter `r0 = 42; exit`, run twice.
    let insns: Vec<u8> = [0x0000_002a_0000_00b7u64, 0x0000_0000_0000_0095]
        .iter()
        .flat_map(|i| i.to_le_bytes())
        .collect();
    let p = Prog::load(&ProgLoad::new(1, &insns))?;
    let r = p.test_run(&TestRun {
        data_in: &[0u8; 64],
        repeat: 2,
        ..TestRun::default()
    })?;
    assert_eq!(r.retval, 42);
    // A program the verifier refuses gives its log.
    let bad: Vec<u8> = 0x0000_0000_0000_0095u64.to_le_bytes().to_vec();
    let e = Prog::load(&ProgLoad::new(1, &bad)).unwrap_err();
    assert_eq!(e.errno.0, libc::EACCES);
    assert!(e.log.contains("R0 !read_ok"), "{}", e.log);
    Ok(())
}

/// Two threads replace the values of 16 keys while two threads look them
/// up: how many lookups miss a key that is always there, in the kernel and
/// in bpfc. The kernel's preallocated hash maps can miss one (an element is
/// reused while a lookup stands on it); bpfc's lookups recheck the bucket
/// and never miss (runtime/src/maps/hash.rs).
fn replace_race() -> Result<(), Failed> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    fn race(m: &(dyn Subject + Sync), lookups: u64) -> Result<u64, String> {
        for k in 0..16u32 {
            m.update(&k.to_ne_bytes(), &0u64.to_ne_bytes(), 0)
                .map_err(|e| format!("setup: errno {e}"))?;
        }
        let stop = AtomicBool::new(false);
        let missed = AtomicU64::new(0);
        std::thread::scope(|s| {
            for w in 0..2u64 {
                let stop = &stop;
                s.spawn(move || {
                    let (mut x, mut n) = (77 + w, 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        n += 1;
                        let _ = m.update(&((x % 16) as u32).to_ne_bytes(), &n.to_ne_bytes(), 0);
                    }
                });
            }
            let readers: Vec<_> = (0..2u64)
                .map(|r| {
                    let missed = &missed;
                    s.spawn(move || {
                        let mut x = 99 + r;
                        for _ in 0..lookups {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            if m.lookup(&((x % 16) as u32).to_ne_bytes(), None, 0).is_err() {
                                missed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    })
                })
                .collect();
            for r in readers {
                let _ = r.join();
            }
            stop.store(true, Ordering::Relaxed);
        });
        Ok(missed.load(Ordering::Relaxed))
    }
    let spec = spec("race", MapType::Hash, 4, 8, 64, 0);
    let n = 500_000;
    let k = mapdiff::kernel_map(&spec, None)?;
    let kernel_missed = race(&k, n)?;
    let b = mapdiff::subject::Bpfc(mapdiff::bpfc_map(&spec)?);
    let bpfc_missed = race(&b, n)?;
    println!(
        "replace_race: lookups of keys being replaced that missed, of {}: kernel {kernel_missed}, bpfc {bpfc_missed}",
        2 * n
    );
    if bpfc_missed != 0 {
        return Err(format!("bpfc missed {bpfc_missed} keys that were always there").into());
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let seed = mapdiff::seed_from_env();
    let n = mapdiff::ops_from_env(10_000);
    let self_n = mapdiff::ops_from_env(10_000).min(2_000);
    let mut trials = Vec::new();
    let gate = |name: &str| kernel::available(&format!("maps_kernel::{name}"));
    for case in cases() {
        let c = case.clone();
        trials.push(Trial::test(format!("diff/{}", case.name), move || {
            if !gate("diff") {
                return Ok(());
            }
            diff(&c, seed, n)
        }));
        trials.push(Trial::test(format!("self/{}", case.name), move || {
            if !gate("self") {
                return Ok(());
            }
            self_check(&case, seed ^ 0x5e1f, self_n)
        }));
    }
    trials.push(Trial::test("definitions", move || {
        if !gate("definitions") {
            return Ok(());
        }
        definitions()
    }));
    trials.push(Trial::test("kernel_wrapper", move || {
        if !gate("kernel_wrapper") {
            return Ok(());
        }
        kernel_wrapper()
    }));
    trials.push(Trial::test("detects_a_difference", move || {
        if !gate("detects_a_difference") {
            return Ok(());
        }
        detects_a_difference(seed)
    }));
    trials.push(Trial::test("replace_race", move || {
        if !gate("replace_race") {
            return Ok(());
        }
        replace_race()
    }));
    let start = Instant::now();
    let conclusion = libtest_mimic::run(&args, trials);
    println!(
        "maps_kernel: seed {seed:#x}, {n} operations per case, {:.1} s in all",
        start.elapsed().as_secs_f64()
    );
    conclusion.exit();
}
