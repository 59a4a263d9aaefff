//! The running kernel as the oracle for the LPM trie, queue, stack and
//! bloom filter maps and for batch operations: the same random operations
//! on a kernel map (through `bpf()`) and on a bpfc map, every result code,
//! returned value and key compared, and the final contents walked in both
//! (in order: bpfc builds the kernel's trie, and the kernel's hash with
//! `BPF_F_ZERO_SEED`). Needs root; prints a SKIP line otherwise (fails
//! under `BPFC_TEST_REQUIRE=all`).

#[path = "kernel_maps/sys.rs"]
mod sys;

use bpfc_runtime::maps::{flags, Map, MapOptions, MapSpec, MapType};
use std::fmt::Debug;
use std::sync::Arc;
use sys::KMap;

fn require_all() -> bool {
    std::env::var("BPFC_TEST_REQUIRE").is_ok_and(|v| v == "all")
}

/// Whether the kernel can be asked; prints a SKIP line when not.
fn kernel_or_skip(test: &str) -> bool {
    match sys::available() {
        Ok(()) => true,
        Err(why) => {
            assert!(
                !require_all(),
                "{test}: {why} (nothing may skip with BPFC_TEST_REQUIRE=all)"
            );
            println!("SKIP: {test}: {why}");
            false
        }
    }
}

fn opts() -> MapOptions {
    MapOptions {
        pin_dir: std::env::temp_dir().join("bpfc-test-pins"),
        ..MapOptions::default()
    }
}

/// A deterministic generator.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A kernel map and a bpfc map given the same operations.
struct Pair {
    k: KMap,
    b: Arc<Map>,
    what: String,
    log: Vec<String>,
    ops: usize,
}

type R = Result<(), i32>;

fn code(r: bpfc_runtime::maps::MapResult<()>) -> R {
    r.map_err(|e| e.code())
}

impl Pair {
    fn new(spec: &MapSpec, what: String) -> Pair {
        let k = KMap::create(spec).unwrap_or_else(|e| panic!("{what}: kernel create: errno {e}"));
        let b = Map::create_with(spec, &opts()).unwrap_or_else(|e| panic!("{what}: bpfc: {e}"));
        Pair {
            k,
            b,
            what,
            log: Vec::new(),
            ops: 0,
        }
    }

    fn check<T: PartialEq + Debug>(&mut self, op: String, kernel: T, bpfc: T) {
        self.ops += 1;
        self.log.push(op);
        if kernel != bpfc {
            panic!(
                "{}: operation {} differs\n kernel: {kernel:?}\n bpfc:   {bpfc:?}\nsequence:\n{}",
                self.what,
                self.log.len(),
                self.log.join("\n")
            );
        }
    }

    fn key<'a>(&self, key: &'a [u8]) -> Option<&'a [u8]> {
        (!key.is_empty()).then_some(key)
    }

    fn update(&mut self, key: &[u8], value: &[u8], f: u64) {
        let kr = self.k.update(self.key(key), value, f);
        let br = code(self.b.update(key, value, f));
        self.check(format!("update {key:?} {value:?} flags {f}"), kr, br);
    }

    fn lookup(&mut self, key: &[u8], value: &[u8], f: u64) {
        let (mut kv, mut bv) = (value.to_vec(), value.to_vec());
        let kr = self.k.lookup(self.key(key), &mut kv, f);
        let br = code(self.b.lookup_flags(key, &mut bv, f));
        self.check(format!("lookup {key:?} flags {f}"), (kr, kv), (br, bv));
    }

    fn delete(&mut self, key: &[u8]) {
        let kr = self.k.delete(self.key(key));
        let br = code(self.b.delete(key));
        self.check(format!("delete {key:?}"), kr, br);
    }

    fn lookup_and_delete(&mut self, key: &[u8], f: u64) {
        let n = self.b.user_value_size();
        let (mut kv, mut bv) = (vec![0xab; n], vec![0xab; n]);
        let kr = self.k.lookup_and_delete(self.key(key), &mut kv, f);
        let br = code(self.b.lookup_and_delete(key, &mut bv, f));
        self.check(
            format!("lookup_and_delete {key:?} flags {f}"),
            (kr, kv),
            (br, bv),
        );
    }

    fn get_next_key(&mut self, key: Option<&[u8]>) -> Option<Vec<u8>> {
        let n = self.b.key_size();
        let (mut kn, mut bn) = (vec![0xab; n], vec![0xab; n]);
        let kr = self.k.get_next_key(key, &mut kn);
        let br = code(self.b.get_next_key(key, &mut bn));
        let ok = kr.is_ok();
        self.check(format!("get_next_key {key:?}"), (kr, &kn), (br, &bn));
        ok.then_some(kn)
    }

    /// Every key in `get_next_key` order, compared step by step.
    fn walk(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut cur = None;
        while let Some(k) = self.get_next_key(cur.as_deref()) {
            assert!(
                out.len() <= self.b.spec().max_entries as usize,
                "endless walk"
            );
            out.push(k.clone());
            cur = Some(k);
        }
        for k in &out {
            let v = vec![0u8; self.b.user_value_size()];
            self.lookup(k, &v, 0);
        }
        out
    }

    /// `BPF_MAP_LOOKUP[_AND_DELETE]_BATCH` with `count` elements of room:
    /// the result, count and token (the same in both).
    fn lookup_batch(
        &mut self,
        delete: bool,
        in_batch: Option<&[u8]>,
        count: u32,
        ef: u64,
        f: u64,
    ) -> (R, u32, Vec<u8>) {
        let token = self.b.batch_token_size();
        let (ks, vs) = (self.b.key_size(), self.b.user_value_size());
        let n = count as usize;
        let mut kbufs = (vec![0xcd; token], vec![0xcd; n * ks], vec![0xcd; n * vs]);
        let mut bbufs = kbufs.clone();
        let (mut kc, mut bc) = (count, count);
        let cmd = if delete {
            sys::BPF_MAP_LOOKUP_AND_DELETE_BATCH
        } else {
            sys::BPF_MAP_LOOKUP_BATCH
        };
        let kr = self.k.batch(
            cmd,
            in_batch,
            &mut kbufs.0,
            &mut kbufs.1,
            &mut kbufs.2,
            &mut kc,
            ef,
            f,
        );
        let br = if delete {
            self.b.lookup_and_delete_batch(
                in_batch,
                &mut bbufs.0,
                &mut bbufs.1,
                &mut bbufs.2,
                &mut bc,
                ef,
                f,
            )
        } else {
            self.b.lookup_batch(
                in_batch,
                &mut bbufs.0,
                &mut bbufs.1,
                &mut bbufs.2,
                &mut bc,
                ef,
                f,
            )
        };
        let br = code(br);
        let out = (br, bc, bbufs.0.clone());
        self.check(
            format!("lookup_batch delete {delete} in {in_batch:?} count {count} elem_flags {ef} flags {f}"),
            (kr, kc, kbufs),
            (br, bc, bbufs),
        );
        out
    }

    fn update_batch(&mut self, keys: &[u8], values: &[u8], count: u32, ef: u64) {
        let (mut kc, mut bc) = (count, count);
        let (mut kk, mut kv) = (keys.to_vec(), values.to_vec());
        let kr = self.k.batch(
            sys::BPF_MAP_UPDATE_BATCH,
            None,
            &mut [],
            &mut kk,
            &mut kv,
            &mut kc,
            ef,
            0,
        );
        let br = code(self.b.update_batch(keys, values, &mut bc, ef, 0));
        self.check(
            format!("update_batch {keys:?} {values:?} count {count} elem_flags {ef}"),
            (kr, kc),
            (br, bc),
        );
    }

    fn delete_batch(&mut self, keys: &[u8], count: u32, ef: u64) {
        let (mut kc, mut bc) = (count, count);
        let mut kk = keys.to_vec();
        let kr = self.k.batch(
            sys::BPF_MAP_DELETE_BATCH,
            None,
            &mut [],
            &mut kk,
            &mut [],
            &mut kc,
            ef,
            0,
        );
        let br = code(self.b.delete_batch(keys, &mut bc, ef, 0));
        self.check(
            format!("delete_batch {keys:?} count {count} elem_flags {ef}"),
            (kr, kc),
            (br, bc),
        );
    }
}

/// Definitions both must accept or refuse with the same errno.
#[test]
fn definitions_agree() {
    if !kernel_or_skip("definitions_agree") {
        return;
    }
    let np = flags::BPF_F_NO_PREALLOC;
    let lpm = |k, v, n, f| MapSpec::new("d", MapType::LpmTrie, k, v, n, f);
    let q = |t, k, v, n, f| MapSpec::new("d", t, k, v, n, f);
    let bloom = |k, v, n, f, extra| MapSpec {
        map_extra: extra,
        ..MapSpec::new("d", MapType::BloomFilter, k, v, n, f)
    };
    let mut specs = vec![
        lpm(8, 4, 16, 0),
        lpm(8, 4, 16, np),
        lpm(4, 4, 16, np),
        lpm(5, 4, 16, np),
        lpm(260, 4, 16, np),
        lpm(261, 4, 16, np),
        lpm(8, 0, 16, np),
        lpm(8, 4, 0, np),
        lpm(8, 4194024, 1, np),
        lpm(8, 4194025, 1, np),
        lpm(8, 4, u32::MAX, np),
        lpm(8, 4, 16, np | flags::BPF_F_RDONLY),
        lpm(8, 4, 16, np | flags::BPF_F_ZERO_SEED),
        lpm(8, 4, 16, np | flags::BPF_F_RDONLY | flags::BPF_F_WRONLY),
        bloom(0, 4, 16, 0, 0),
        bloom(0, 4, 16, 0, 15),
        bloom(0, 4, 16, 0, 16),
        bloom(4, 4, 16, 0, 0),
        bloom(0, 0, 16, 0, 0),
        bloom(0, 4, 0, 0, 0),
        bloom(0, 4194304, 1, 0, 0),
        bloom(0, 4194305, 1, 0, 0),
        bloom(0, 4, 16, flags::BPF_F_ZERO_SEED, 3),
        bloom(0, 4, 16, np, 0),
        bloom(0, 4, 16, flags::BPF_F_MMAPABLE, 0),
    ];
    for t in [MapType::Queue, MapType::Stack] {
        specs.extend([
            q(t, 0, 4, 16, 0),
            q(t, 4, 4, 16, 0),
            q(t, 0, 0, 16, 0),
            q(t, 0, 4, 0, 0),
            q(t, 0, 4, 16, np),
            q(t, 0, 4, 16, flags::BPF_F_ZERO_SEED),
            q(t, 0, 4, 16, flags::BPF_F_WRONLY),
            q(t, 0, 4194304, 1, 0),
            q(t, 0, 4194305, 1, 0),
        ]);
    }
    let mut bloom_extra = q(MapType::Queue, 0, 4, 16, 0);
    bloom_extra.map_extra = 1;
    specs.push(bloom_extra);
    for s in &specs {
        let k = KMap::create(s).err();
        let b = Map::create_with(s, &opts()).err().map(|e| e.code());
        assert_eq!(k, b, "{s:?}");
    }
}

/// An LPM key: a prefix length up to one past the longest, and data from a
/// few byte values, so that prefixes collide and nest.
fn lpm_key(rng: &mut Rng, data: usize) -> Vec<u8> {
    let max = 8 * data as u64;
    let plen = if rng.below(20) == 0 {
        max + 1 + rng.below(3)
    } else {
        rng.below(max + 1)
    } as u32;
    let mut k = plen.to_ne_bytes().to_vec();
    for _ in 0..data {
        k.push(rng.pick(&[0x00, 0x80, 0xc0, 0x40, 0xff, 0x0f, 0xaa]));
    }
    k
}

#[test]
fn lpm_trie_agrees() {
    if !kernel_or_skip("lpm_trie_agrees") {
        return;
    }
    let mut total = 0;
    for (data, entries, value, seed) in [
        (1usize, 12u32, 4u32, 1u64),
        (2, 40, 8, 2),
        (4, 100, 4, 3),
        (5, 24, 3, 4),
        (16, 64, 16, 5),
    ] {
        let spec = MapSpec::new(
            "lpm",
            MapType::LpmTrie,
            4 + data as u32,
            value,
            entries,
            flags::BPF_F_NO_PREALLOC,
        );
        let mut p = Pair::new(
            &spec,
            format!("lpm data {data} entries {entries} seed {seed}"),
        );
        let mut rng = Rng::new(seed);
        let mut known: Vec<Vec<u8>> = Vec::new();
        let ks = 4 + data;
        let vs = value as usize;
        while p.ops < 4000 {
            let key = if !known.is_empty() && rng.below(3) == 0 {
                known[rng.below(known.len() as u64) as usize].clone()
            } else {
                lpm_key(&mut rng, data)
            };
            match rng.below(100) {
                0..=34 => {
                    let f = rng.pick(&[0, 0, 1, 2, 3, 4]);
                    p.update(&key, &rng.bytes(vs), f);
                    known.push(key);
                }
                35..=54 => p.lookup(&key, &vec![0; vs], rng.pick(&[0, 0, 0, 4, 1])),
                55..=69 => p.delete(&key),
                70..=81 => {
                    let from = if rng.below(8) == 0 {
                        None
                    } else {
                        Some(&key[..])
                    };
                    p.get_next_key(from);
                }
                82..=83 => p.lookup_and_delete(&key, 0),
                84..=89 => {
                    let from = (rng.below(4) != 0).then_some(&key[..]);
                    let count = rng.below(7) as u32;
                    let ef = rng.pick(&[0, 0, 0, 0, 1, 4]);
                    let _ = p.lookup_batch(false, from, count, ef, rng.pick(&[0, 0, 0, 1]));
                    if rng.below(4) == 0 {
                        let _ = p.lookup_batch(true, from, count, 0, 0);
                    }
                }
                90..=94 => {
                    let n = rng.below(5) as u32;
                    let mut keys = Vec::new();
                    for _ in 0..n {
                        keys.extend(lpm_key(&mut rng, data));
                    }
                    let values = rng.bytes(n as usize * vs);
                    let ef = rng.pick(&[0, 0, 0, 0, 2, 4]);
                    p.update_batch(&keys, &values, n, ef);
                }
                _ => {
                    let n = rng.below(4) as u32;
                    let mut keys = Vec::new();
                    for _ in 0..n {
                        if !known.is_empty() && rng.below(3) != 0 {
                            keys.extend(&known[rng.below(known.len() as u64) as usize]);
                        } else {
                            keys.extend(lpm_key(&mut rng, data));
                        }
                    }
                    debug_assert_eq!(keys.len(), n as usize * ks);
                    p.delete_batch(&keys, n, rng.pick(&[0, 0, 0, 1]));
                }
            }
            if p.ops % 500 < 2 {
                p.walk();
            }
        }
        let keys = p.walk();
        assert_eq!(p.b.elements(), Some(keys.len()), "{}", p.what);
        total += p.ops;
    }
    println!("lpm_trie_agrees: {total} operations compared");
}

#[test]
fn queue_and_stack_agree() {
    if !kernel_or_skip("queue_and_stack_agree") {
        return;
    }
    let mut total = 0;
    for (t, value, entries, seed) in [
        (MapType::Queue, 4u32, 1u32, 1u64),
        (MapType::Queue, 8, 5, 2),
        (MapType::Queue, 13, 16, 3),
        (MapType::Stack, 4, 1, 4),
        (MapType::Stack, 1, 7, 5),
        (MapType::Stack, 24, 16, 6),
    ] {
        let spec = MapSpec::new("q", t, 0, value, entries, 0);
        let mut p = Pair::new(
            &spec,
            format!("{t} value {value} entries {entries} seed {seed}"),
        );
        let mut rng = Rng::new(seed);
        let vs = value as usize;
        while p.ops < 3400 {
            match rng.below(100) {
                0..=39 => {
                    let f = rng.pick(&[0, 0, 0, 2, 2, 1, 3, 4, 8]);
                    p.update(&[], &rng.bytes(vs), f);
                }
                40..=59 => p.lookup(&[], &vec![0x5a; vs], rng.pick(&[0, 0, 0, 4, 1])),
                60..=89 => p.lookup_and_delete(&[], rng.pick(&[0, 0, 0, 0, 4, 1])),
                90..=93 => p.delete(&[]),
                94..=96 => {
                    p.get_next_key(None);
                }
                _ => {
                    let _ = p.lookup_batch(false, None, 2, 0, 0);
                    p.update_batch(&[], &rng.bytes(vs), 1, 0);
                    p.delete_batch(&[], 1, 0);
                }
            }
        }
        total += p.ops;
    }
    println!("queue_and_stack_agree: {total} operations compared");
}

#[test]
fn bloom_filter_agrees() {
    if !kernel_or_skip("bloom_filter_agrees") {
        return;
    }
    let mut total = 0;
    // With a zero seed bpfc hashes as the kernel does: the same false
    // positives, so every test result must agree.
    for (value, entries, extra, seed) in [
        (4u32, 1u32, 0u64, 1u64),
        (4, 100, 3, 2),
        (5, 10, 0, 3),
        (8, 50, 15, 4),
        (13, 20, 1, 5),
        (16, 200, 7, 6),
        (2, 5, 2, 7),
    ] {
        let spec = MapSpec {
            map_extra: extra,
            ..MapSpec::new(
                "b",
                MapType::BloomFilter,
                0,
                value,
                entries,
                flags::BPF_F_ZERO_SEED,
            )
        };
        let what = format!("bloom value {value} entries {entries} hashes {extra} seed {seed}");
        let mut p = Pair::new(&spec, what);
        let mut rng = Rng::new(seed);
        let vs = value as usize;
        // Values from a small range, so that some are pushed twice and
        // tests hit both pushed and unpushed ones.
        let val = |rng: &mut Rng| {
            let mut v = vec![0u8; vs];
            let x = rng.below(4 * entries as u64 + 8).to_le_bytes();
            let n = vs.min(8);
            v[..n].copy_from_slice(&x[..n]);
            v
        };
        while p.ops < 2000 {
            match rng.below(100) {
                0..=29 => {
                    let v = val(&mut rng);
                    p.update(&[], &v, rng.pick(&[0, 0, 0, 0, 1, 2, 4]));
                }
                30..=89 => {
                    let v = val(&mut rng);
                    p.lookup(&[], &v, rng.pick(&[0, 0, 0, 0, 4]));
                }
                90..=93 => p.delete(&[]),
                94..=96 => {
                    p.get_next_key(None);
                }
                _ => {
                    p.lookup_and_delete(&[], 0);
                    let _ = p.lookup_batch(false, None, 1, 0, 0);
                }
            }
        }
        total += p.ops;
    }
    println!("bloom_filter_agrees: {total} operations compared");
}

#[test]
fn array_batches_agree() {
    if !kernel_or_skip("array_batches_agree") {
        return;
    }
    let mut total = 0;
    for (t, value, entries, seed) in [
        (MapType::Array, 4u32, 10u32, 1u64),
        (MapType::Array, 12, 33, 2),
        (MapType::PercpuArray, 8, 7, 3),
    ] {
        let spec = MapSpec::new("a", t, 4, value, entries, 0);
        let mut p = Pair::new(&spec, format!("{t} batches seed {seed}"));
        let mut rng = Rng::new(seed);
        let vs = p.b.user_value_size();
        let idx = |rng: &mut Rng| {
            (rng.below(entries as u64 + 3) as u32)
                .to_ne_bytes()
                .to_vec()
        };
        while p.ops < 1500 {
            match rng.below(10) {
                0..=3 => {
                    let n = rng.below(6) as u32;
                    let mut keys = Vec::new();
                    for _ in 0..n {
                        keys.extend(idx(&mut rng));
                    }
                    let values = rng.bytes(n as usize * vs);
                    p.update_batch(&keys, &values, n, rng.pick(&[0, 0, 0, 2, 4]));
                }
                4..=7 => {
                    let from = idx(&mut rng);
                    let from = (rng.below(3) != 0).then_some(&from[..]);
                    let count = rng.below(12) as u32;
                    let _ = p.lookup_batch(false, from, count, rng.pick(&[0, 0, 0, 4]), 0);
                }
                8 => {
                    let _ = p.lookup_batch(true, None, 3, 0, 0);
                    let k = idx(&mut rng);
                    p.delete_batch(&k, 1, 0);
                }
                _ => {
                    let k = idx(&mut rng);
                    p.update(&k, &rng.bytes(vs), rng.pick(&[0, 1, 2]));
                }
            }
        }
        p.walk();
        total += p.ops;
    }
    println!("array_batches_agree: {total} operations compared");
}

#[test]
fn hash_batches_agree() {
    if !kernel_or_skip("hash_batches_agree") {
        return;
    }
    let mut total = 0;
    // With a zero seed bpfc's buckets are the kernel's: get_next_key order,
    // bucket batches, their tokens and ENOSPC all agree exactly. (LRU maps
    // are left out: their evictions differ by design.)
    for (t, key, value, entries, seed) in [
        (MapType::Hash, 4u32, 8u32, 16u32, 1u64),
        (MapType::Hash, 6, 4, 5, 2),
        (MapType::Hash, 12, 3, 64, 3),
        (MapType::PercpuHash, 4, 8, 8, 4),
    ] {
        let spec = MapSpec::new("h", t, key, value, entries, flags::BPF_F_ZERO_SEED);
        let mut p = Pair::new(
            &spec,
            format!("{t} key {key} entries {entries} seed {seed}"),
        );
        let mut rng = Rng::new(seed);
        let (ks, vs) = (key as usize, p.b.user_value_size());
        let buckets = entries.next_power_of_two() as u64;
        // Keys from a range a little wider than the map.
        let rkey = |rng: &mut Rng| {
            let mut k = vec![0u8; ks];
            let x = rng.below(entries as u64 * 2 + 2).to_le_bytes();
            k[..4].copy_from_slice(&x[..4]);
            k
        };
        while p.ops < 3000 {
            match rng.below(100) {
                0..=29 => {
                    let k = rkey(&mut rng);
                    p.update(&k, &rng.bytes(vs), rng.pick(&[0, 0, 0, 1, 2, 3]));
                }
                30..=39 => {
                    let k = rkey(&mut rng);
                    p.delete(&k);
                }
                40..=49 => {
                    let k = rkey(&mut rng);
                    p.lookup(&k, &vec![0; vs], 0);
                }
                50..=54 => {
                    let k = rkey(&mut rng);
                    let from = (rng.below(5) != 0).then_some(&k[..]);
                    p.get_next_key(from);
                }
                55..=57 => {
                    let k = rkey(&mut rng);
                    p.lookup_and_delete(&k, 0);
                }
                58..=79 => {
                    let token = (rng.below(buckets + 2) as u32).to_ne_bytes();
                    let from = (rng.below(3) != 0).then_some(&token[..]);
                    let count = rng.below(9) as u32;
                    let delete = rng.below(4) == 0;
                    let ef = rng.pick(&[0, 0, 0, 0, 4, 1]);
                    let _ = p.lookup_batch(delete, from, count, ef, rng.pick(&[0, 0, 0, 0, 1]));
                }
                80..=89 => {
                    let n = rng.below(6) as u32;
                    let mut keys = Vec::new();
                    for _ in 0..n {
                        keys.extend(rkey(&mut rng));
                    }
                    let values = rng.bytes(n as usize * vs);
                    p.update_batch(&keys, &values, n, rng.pick(&[0, 0, 0, 0, 2, 4]));
                }
                _ => {
                    let n = rng.below(4) as u32;
                    let mut keys = Vec::new();
                    for _ in 0..n {
                        keys.extend(rkey(&mut rng));
                    }
                    p.delete_batch(&keys, n, rng.pick(&[0, 0, 0, 1]));
                }
            }
            if p.ops % 300 < 2 {
                p.walk();
            }
        }
        p.walk();
        // Drain the whole map in batches, as a tool would: ENOENT at the end.
        let mut token: Option<Vec<u8>> = None;
        let mut drained = 0;
        for _ in 0..=buckets {
            let (mut r, mut n, mut out) = p.lookup_batch(true, token.as_deref(), 4, 0, 0);
            if r == Err(libc::ENOSPC) {
                (r, n, out) = p.lookup_batch(true, token.as_deref(), entries, 0, 0);
            }
            drained += n;
            if r == Err(libc::ENOENT) {
                break;
            }
            token = Some(out);
        }
        assert_eq!(p.b.elements(), Some(0), "{}: {drained} drained", p.what);
        assert!(p.walk().is_empty());
        total += p.ops;
    }
    println!("hash_batches_agree: {total} operations compared");
}
