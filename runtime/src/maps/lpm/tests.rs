use super::super::{errno, flags, Map, MapOptions, MapSpec, MapType};
use super::*;
use std::sync::Arc;

fn opts() -> MapOptions {
    MapOptions {
        ncpus: 2,
        pin_dir: std::env::temp_dir().join("bpfc-test-pins"),
    }
}

fn trie_spec(data: u32, value: u32, entries: u32) -> MapSpec {
    MapSpec::new(
        "lpm",
        MapType::LpmTrie,
        4 + data,
        value,
        entries,
        flags::BPF_F_NO_PREALLOC,
    )
}

fn trie(entries: u32) -> Arc<Map> {
    Map::create_with(&trie_spec(4, 4, entries), &opts()).unwrap()
}

/// An IPv4 key `a.b.c.d/plen`.
fn k4(ip: [u8; 4], plen: u32) -> Vec<u8> {
    let mut k = plen.to_ne_bytes().to_vec();
    k.extend_from_slice(&ip);
    k
}

fn val(x: u32) -> [u8; 4] {
    x.to_ne_bytes()
}

fn get(m: &Map, key: &[u8]) -> Result<u32, i32> {
    let mut v = [0u8; 4];
    m.lookup(key, &mut v)
        .map(|()| u32::from_ne_bytes(v))
        .map_err(|e| e.code())
}

fn code<T: std::fmt::Debug>(r: MapResult<T>) -> i32 {
    r.unwrap_err().code()
}

fn keys(m: &Map) -> Vec<Vec<u8>> {
    m.keys().unwrap()
}

/// The four prefixes of the kernel's example, plus 192.168.1.0/24.
fn example() -> Arc<Map> {
    let m = trie(16);
    m.update(&k4([192, 168, 0, 0], 16), &val(1), 0).unwrap();
    m.update(&k4([192, 168, 0, 0], 24), &val(2), 0).unwrap();
    m.update(&k4([192, 168, 128, 0], 24), &val(3), 0).unwrap();
    m.update(&k4([192, 168, 1, 0], 24), &val(5), 0).unwrap();
    m
}

#[test]
fn bad_definitions() {
    let o = opts();
    let no_prealloc = flags::BPF_F_NO_PREALLOC;
    for (k, v, n, f, want) in [
        (8, 4, 16, 0, errno::EINVAL),
        (4, 4, 16, no_prealloc, errno::EINVAL),
        (261, 4, 16, no_prealloc, errno::EINVAL),
        (8, 0, 16, no_prealloc, errno::EINVAL),
        (8, VALUE_SIZE_MAX + 1, 16, no_prealloc, errno::EINVAL),
        (8, 4, 0, no_prealloc, errno::EINVAL),
        (
            8,
            4,
            16,
            no_prealloc | flags::BPF_F_ZERO_SEED,
            errno::EINVAL,
        ),
        (8, 4, 16, no_prealloc | flags::BPF_F_MMAPABLE, errno::EINVAL),
    ] {
        let s = MapSpec::new("lpm", MapType::LpmTrie, k, v, n, f);
        let e = Map::create_with(&s, &o).unwrap_err();
        assert_eq!(e.code(), want, "{s:?}: {e}");
    }
    let mut s = trie_spec(4, 8, 4);
    s.spin_lock_off = Some(0);
    assert_eq!(code(Map::create_with(&s, &o)), errno::EOPNOTSUPP);
    // The extremes the kernel accepts; memory is taken lazily, so even the
    // largest max_entries costs nothing up front.
    Map::create_with(&trie_spec(1, 1, 1), &o).unwrap();
    Map::create_with(&trie_spec(256, 4, 1), &o).unwrap();
    Map::create_with(&trie_spec(4, VALUE_SIZE_MAX, 1), &o).unwrap();
    let big = Map::create_with(&trie_spec(16, 8, u32::MAX), &o).unwrap();
    let mut k = vec![0u8; 20];
    k[..4].copy_from_slice(&128u32.to_ne_bytes());
    big.update(&k, &[1; 8], 0).unwrap();
    assert_eq!(big.elements(), Some(1));
}

#[test]
fn longest_prefix_wins() {
    let m = example();
    assert_eq!(get(&m, &k4([192, 168, 0, 5], 32)), Ok(2));
    assert_eq!(get(&m, &k4([192, 168, 1, 7], 32)), Ok(5));
    assert_eq!(get(&m, &k4([192, 168, 128, 200], 32)), Ok(3));
    assert_eq!(get(&m, &k4([192, 168, 2, 1], 32)), Ok(1));
    assert_eq!(get(&m, &k4([192, 168, 255, 1], 32)), Ok(1));
    assert_eq!(get(&m, &k4([10, 0, 0, 1], 32)), Err(errno::ENOENT));
    // A shorter key matches only prefixes at most as long.
    assert_eq!(get(&m, &k4([192, 168, 0, 0], 20)), Ok(1));
    assert_eq!(get(&m, &k4([192, 168, 0, 0], 24)), Ok(2));
    assert_eq!(get(&m, &k4([192, 168, 0, 0], 15)), Err(errno::ENOENT));
    // The intermediate node 192.168.0.0/23 is not an element.
    assert_eq!(get(&m, &k4([192, 168, 0, 0], 23)), Ok(1));
    // Too long a prefix finds nothing.
    assert_eq!(get(&m, &k4([192, 168, 0, 0], 33)), Err(errno::ENOENT));
    // /0 matches everything.
    m.update(&k4([0, 0, 0, 0], 0), &val(9), 0).unwrap();
    assert_eq!(get(&m, &k4([10, 0, 0, 1], 32)), Ok(9));
    assert_eq!(get(&m, &k4([10, 0, 0, 1], 0)), Ok(9));
    // Programs get a pointer to the value.
    let p = m.prog_lookup(&k4([192, 168, 1, 9], 32), 0).unwrap();
    // SAFETY: a live 4-byte value.
    assert_eq!(unsafe { (p as *const u32).read_unaligned() }, 5);
    assert!(m.slabs().iter().any(|s| s.contains(p as usize, 4)));
    assert!(!m.slabs().iter().any(|s| s.contains(p as usize, 5)));
    assert!(m.prog_lookup(&k4([11, 0, 0, 0], 33), 0).is_none());
}

#[test]
fn get_next_key_is_post_order() {
    let m = example();
    // More specific prefixes before less specific ones, left before right.
    let want = [
        k4([192, 168, 0, 0], 24),
        k4([192, 168, 1, 0], 24),
        k4([192, 168, 128, 0], 24),
        k4([192, 168, 0, 0], 16),
    ];
    assert_eq!(keys(&m), want);
    let mut next = [0u8; 8];
    // An absent key, an intermediate node's prefix and too long a prefix
    // start over from the first.
    for start in [
        k4([10, 0, 0, 0], 8),
        k4([192, 168, 0, 0], 23),
        k4([192, 168, 0, 0], 40),
        k4([192, 168, 0, 1], 32),
    ] {
        m.get_next_key(Some(&start), &mut next).unwrap();
        assert_eq!(next.to_vec(), want[0], "after {start:?}");
    }
    assert_eq!(
        code(m.get_next_key(Some(&want[3]), &mut next)),
        errno::ENOENT
    );
    // Stored data beyond the prefix comes back as it was given.
    let m = trie(4);
    m.update(&k4([10, 1, 2, 3], 8), &val(1), 0).unwrap();
    assert_eq!(keys(&m), [k4([10, 1, 2, 3], 8)]);
    assert_eq!(get(&m, &k4([10, 9, 9, 9], 32)), Ok(1));
    // An empty trie has no first key.
    let m = trie(4);
    assert_eq!(code(m.get_next_key(None, &mut next)), errno::ENOENT);
}

#[test]
fn update_flags_and_limits() {
    let m = example();
    assert_eq!(m.elements(), Some(4));
    let k16 = k4([192, 168, 0, 0], 16);
    assert_eq!(
        code(m.update(&k16, &val(7), flags::BPF_NOEXIST)),
        errno::EEXIST
    );
    m.update(&k16, &val(7), flags::BPF_EXIST).unwrap();
    assert_eq!(get(&m, &k4([192, 168, 9, 9], 32)), Ok(7));
    let absent = k4([10, 0, 0, 0], 8);
    assert_eq!(
        code(m.update(&absent, &val(1), flags::BPF_EXIST)),
        errno::ENOENT
    );
    // The intermediate node's prefix is not an element: EXIST fails,
    // NOEXIST makes it one.
    let im = k4([192, 168, 0, 0], 23);
    assert_eq!(
        code(m.update(&im, &val(1), flags::BPF_EXIST)),
        errno::ENOENT
    );
    m.update(&im, &val(23), flags::BPF_NOEXIST).unwrap();
    assert_eq!(m.elements(), Some(5));
    assert_eq!(get(&m, &k4([192, 168, 1, 255], 23)), Ok(23));
    for f in [3, 4, 8, flags::BPF_F_LOCK] {
        assert_eq!(
            code(m.update(&absent, &val(1), f)),
            errno::EINVAL,
            "flags {f}"
        );
    }
    assert_eq!(
        code(m.update(&k4([1, 2, 3, 4], 33), &val(1), 0)),
        errno::EINVAL
    );
    assert_eq!(
        code(m.update(&k4([1, 2, 3, 4], 32)[..7], &val(1), 0)),
        errno::EINVAL
    );
    assert_eq!(m.elements(), Some(5));
    assert_eq!(
        code(m.lookup_and_delete(&k16, &mut [0; 4], 0)),
        errno::ENOTSUPP
    );
}

#[test]
fn full_trie() {
    let m = trie(3);
    for i in 0..3u8 {
        m.update(&k4([10, i, 0, 0], 16), &val(i.into()), flags::BPF_NOEXIST)
            .unwrap();
    }
    let new = k4([10, 9, 0, 0], 16);
    assert_eq!(code(m.update(&new, &val(1), 0)), errno::ENOSPC);
    assert_eq!(
        code(m.update(&new, &val(1), flags::BPF_NOEXIST)),
        errno::ENOSPC
    );
    // EXIST on an absent key says ENOENT before looking at the room.
    assert_eq!(
        code(m.update(&new, &val(1), flags::BPF_EXIST)),
        errno::ENOENT
    );
    // A parent prefix, or an intermediate node becoming an element, needs room.
    assert_eq!(
        code(m.update(&k4([10, 0, 0, 0], 8), &val(1), 0)),
        errno::ENOSPC
    );
    assert_eq!(
        code(m.update(&k4([10, 0, 0, 0], 14), &val(1), 0)),
        errno::ENOSPC
    );
    // Replacing works when full.
    for round in 0..100 {
        m.update(&k4([10, 1, 0, 0], 16), &val(round), 0).unwrap();
    }
    assert_eq!(get(&m, &k4([10, 1, 2, 3], 32)), Ok(99));
    assert_eq!(m.elements(), Some(3));
    m.delete(&k4([10, 0, 0, 0], 16)).unwrap();
    m.update(&new, &val(1), 0).unwrap();
}

#[test]
fn delete_exact_prefixes() {
    let m = example();
    for (k, want) in [
        (k4([192, 168, 0, 0], 20), errno::ENOENT),
        (k4([192, 168, 0, 0], 23), errno::ENOENT),
        (k4([192, 168, 0, 0], 32), errno::ENOENT),
        (k4([10, 0, 0, 0], 8), errno::ENOENT),
        (k4([192, 168, 0, 0], 33), errno::EINVAL),
    ] {
        assert_eq!(code(m.delete(&k)), want, "{k:?}");
    }
    // The bits after the prefix do not matter.
    m.delete(&k4([192, 168, 1, 99], 24)).unwrap();
    assert_eq!(get(&m, &k4([192, 168, 1, 7], 32)), Ok(1));
    // The intermediate node went with it: the /24 is 192.168.0.0/16's child.
    assert_eq!(
        keys(&m),
        [
            k4([192, 168, 0, 0], 24),
            k4([192, 168, 128, 0], 24),
            k4([192, 168, 0, 0], 16),
        ]
    );
    // A node with two children stays as an intermediate node.
    m.delete(&k4([192, 168, 0, 0], 16)).unwrap();
    assert_eq!(m.elements(), Some(2));
    assert_eq!(get(&m, &k4([192, 168, 9, 9], 32)), Err(errno::ENOENT));
    assert_eq!(code(m.delete(&k4([192, 168, 0, 0], 16))), errno::ENOENT);
    assert_eq!(
        keys(&m),
        [k4([192, 168, 0, 0], 24), k4([192, 168, 128, 0], 24)]
    );
    m.delete(&k4([192, 168, 0, 0], 24)).unwrap();
    m.delete(&k4([192, 168, 128, 0], 24)).unwrap();
    assert_eq!(m.elements(), Some(0));
    assert!(keys(&m).is_empty());
    // Everything was given back: the trie reaches no node.
    let t = m.imp().as_any().downcast_ref::<LpmTrie>().unwrap();
    assert_eq!(t.load(t.root_slot()), 0);
}

/// A model of the trie's semantics: elements as (prefix length, data,
/// value), matching on the first `prefix length` bits.
#[derive(Default)]
struct Model {
    elems: Vec<(u32, Vec<u8>, u32)>,
}

impl Model {
    fn find(&self, plen: u32, data: &[u8]) -> Option<usize> {
        self.elems
            .iter()
            .position(|(p, d, _)| *p == plen && common_prefix(d, data, plen) == plen)
    }

    fn longest(&self, plen: u32, data: &[u8]) -> Option<u32> {
        self.elems
            .iter()
            .filter(|(p, d, _)| *p <= plen && common_prefix(d, data, *p) == *p)
            .max_by_key(|(p, _, _)| *p)
            .map(|e| e.2)
    }
}

/// A small deterministic generator (no dependency for tests).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn random_operations_follow_the_model() {
    // Data of one 64-bit word, of two (9 bytes) and of more (17).
    for (data, entries, seed) in [
        (2u32, 40u32, 1u64),
        (4, 200, 2),
        (5, 64, 3),
        (9, 64, 4),
        (17, 64, 5),
    ] {
        let m = Map::create_with(&trie_spec(data, 4, entries), &opts()).unwrap();
        let mut model = Model::default();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed);
        let max_plen = data * 8;
        for step in 0..20_000u32 {
            // Few distinct prefixes, so that keys collide and nest often.
            let plen = (rng.below(max_plen as u64 + 2)) as u32;
            let mut d = vec![0u8; data as usize];
            // Keys longer than a 64-bit word share most leading bytes, so
            // that walks compare past the first word.
            for (i, b) in d.iter_mut().enumerate() {
                *b = if data > 8 && i + 2 < data as usize && rng.below(8) != 0 {
                    0x0a
                } else {
                    [0u8, 0x80, 0xc0, 0xff, 0x0f][rng.below(5) as usize]
                };
            }
            let mut key = plen.to_ne_bytes().to_vec();
            key.extend_from_slice(&d);
            let ctx = format!("data {data}, step {step}, key {key:?}");
            match rng.below(4) {
                0 | 1 => {
                    let f = rng.below(3);
                    let r = m.update(&key, &val(step), f).map_err(|e| e.code());
                    let want = if plen > max_plen {
                        Err(errno::EINVAL)
                    } else {
                        match (model.find(plen, &d), f) {
                            (Some(_), flags::BPF_NOEXIST) => Err(errno::EEXIST),
                            (None, flags::BPF_EXIST) => Err(errno::ENOENT),
                            (None, _) if model.elems.len() == entries as usize => {
                                Err(errno::ENOSPC)
                            }
                            (Some(i), _) => {
                                model.elems[i] = (plen, d.clone(), step);
                                Ok(())
                            }
                            (None, _) => {
                                model.elems.push((plen, d.clone(), step));
                                Ok(())
                            }
                        }
                    };
                    assert_eq!(r, want, "update: {ctx}");
                }
                2 => {
                    let r = m.delete(&key).map_err(|e| e.code());
                    let want = if plen > max_plen {
                        Err(errno::EINVAL)
                    } else if let Some(i) = model.find(plen, &d) {
                        model.elems.remove(i);
                        Ok(())
                    } else {
                        Err(errno::ENOENT)
                    };
                    assert_eq!(r, want, "delete: {ctx}");
                }
                _ => {
                    let want = if plen > max_plen {
                        None
                    } else {
                        model.longest(plen, &d)
                    };
                    assert_eq!(get(&m, &key).ok(), want, "lookup: {ctx}");
                }
            }
            assert_eq!(m.elements(), Some(model.elems.len()), "count: {ctx}");
            if step % 500 == 0 {
                check_walk(&m, &model);
            }
        }
        check_walk(&m, &model);
    }
}

/// `get_next_key` visits every element once, a prefix after every longer
/// prefix it covers.
fn check_walk(m: &Map, model: &Model) {
    let ks = keys(m);
    assert_eq!(ks.len(), model.elems.len());
    for k in &ks {
        let (p, d) = split_key(k);
        assert!(model.find(p, d).is_some(), "walk gave {k:?}");
    }
    for (i, a) in ks.iter().enumerate() {
        let (pa, da) = split_key(a);
        for b in &ks[..i] {
            let (pb, db) = split_key(b);
            // Post-order: an earlier key never covers a later one.
            assert!(
                !(pb < pa && common_prefix(db, da, pb) == pb),
                "{b:?} came before the more specific {a:?}"
            );
        }
    }
}

#[test]
fn readers_never_see_a_wrong_answer() {
    // Fixed /16 prefixes 10.i.0.0 with value i; a writer keeps adding,
    // replacing and removing /24s inside them (value 1000 * i + j) and
    // unrelated prefixes, so nodes are recycled all the time. Readers must
    // always get either the /16 or the /24 that covers their address.
    let m = trie(4096);
    for i in 0..8u8 {
        m.update(&k4([10, i, 0, 0], 16), &val(i.into()), 0).unwrap();
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for r in 0..2u64 {
            let m = m.clone();
            let stop = &stop;
            s.spawn(move || {
                let mut rng = Rng(77 + r);
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || n < 10_000 {
                    n += 1;
                    let i = rng.below(8) as u8;
                    let j = rng.below(64) as u8;
                    let got = get(&m, &k4([10, i, j, 1], 32));
                    let ok = got == Ok(i.into()) || got == Ok(1000 * i as u32 + j as u32);
                    assert!(ok, "10.{i}.{j}.1 gave {got:?}");
                    // Programs' lookups take the same path.
                    assert!(m.prog_lookup(&k4([10, i, 200, 1], 32), 0).is_some());
                }
            });
        }
        let mut rng = Rng(5);
        for step in 0..40_000u32 {
            let i = rng.below(8) as u8;
            let j = rng.below(64) as u8;
            let k = k4([10, i, j, 0], 24);
            match rng.below(3) {
                0 => {
                    let _ = m.delete(&k);
                }
                _ => m.update(&k, &val(1000 * i as u32 + j as u32), 0).unwrap(),
            }
            // Unrelated churn elsewhere in the trie.
            let other = k4([172, (step % 32) as u8, rng.below(4) as u8, 0], 24);
            if step % 2 == 0 {
                let _ = m.update(&other, &val(0), 0);
            } else {
                let _ = m.delete(&other);
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}

#[test]
fn a_dead_writer_is_repaired() {
    let m = example();
    let t = m.imp().as_any().downcast_ref::<LpmTrie>().unwrap();
    // A writer that took a node, counted an element and died before
    // linking it, leaving the dirty mark.
    {
        let _g = t.lock().lock();
        t.ctrl(C_DIRTY).store(1, Ordering::Relaxed);
        let leaked = t.alloc(24, 0, &[1, 2, 3, 4], Some(&val(0))).unwrap();
        t.ctrl(C_ENTRIES).fetch_add(1, Ordering::Relaxed);
        assert_eq!(t.gen(leaked).load(Ordering::Relaxed) & 1, 0);
    }
    assert_eq!(m.elements(), Some(5));
    // The next writer repairs the books first.
    m.update(&k4([10, 0, 0, 0], 8), &val(8), 0).unwrap();
    assert_eq!(m.elements(), Some(5));
    assert_eq!(t.ctrl(C_DIRTY).load(Ordering::Relaxed), 0);
    assert_eq!(t.ctrl(C_FREE_LEN).load(Ordering::Relaxed), 1);
    assert_eq!(keys(&m).len(), 5);
    assert_eq!(get(&m, &k4([192, 168, 1, 1], 32)), Ok(5));
}

#[test]
fn freed_nodes_wait_before_reuse() {
    let m = trie(8);
    let t = m.imp().as_any().downcast_ref::<LpmTrie>().unwrap();
    let k = k4([10, 0, 0, 0], 8);
    m.update(&k, &val(1), 0).unwrap();
    let first = m.prog_lookup(&k, 0).unwrap();
    m.delete(&k).unwrap();
    // The pointer a program holds still shows the old value while fewer
    // than RECYCLE_DELAY freed nodes wait.
    for i in 0..RECYCLE_DELAY - 2 {
        let other = k4([11, 0, 0, i as u8], 32);
        m.update(&other, &val(100 + i), 0).unwrap();
        m.delete(&other).unwrap();
    }
    // SAFETY: pool memory stays mapped for the map's life.
    assert_eq!(unsafe { (first as *const u32).read_unaligned() }, 1);
    assert_eq!(
        t.ctrl(C_FREE_LEN).load(Ordering::Relaxed),
        RECYCLE_DELAY - 1
    );
    // One more, and the queue is used, oldest first.
    let other = k4([12, 0, 0, 0], 32);
    m.update(&other, &val(6), 0).unwrap();
    m.delete(&other).unwrap();
    m.update(&k4([12, 0, 0, 1], 32), &val(7), 0).unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { (first as *const u32).read_unaligned() }, 7);
    assert!(t.ctrl(C_BUMP).load(Ordering::Relaxed) <= t.l.pool);
}

#[test]
fn pinned_trie_is_shared() {
    let o = opts();
    let path = o.pin_dir.join(format!("lpm-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let s = trie_spec(4, 4, 16);
    let m = Map::create_with(&s, &o).unwrap();
    m.update(&k4([10, 0, 0, 0], 8), &val(1), 0).unwrap();
    m.pin(&path).unwrap();
    let other = Map::open_pinned(&path, Some(&s)).unwrap();
    assert_eq!(get(&other, &k4([10, 1, 1, 1], 32)), Ok(1));
    other.update(&k4([10, 1, 0, 0], 16), &val(2), 0).unwrap();
    assert_eq!(get(&m, &k4([10, 1, 1, 1], 32)), Ok(2));
    assert_eq!(keys(&m), keys(&other));
    m.unpin().unwrap();
}
