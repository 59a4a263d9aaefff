//! bpfc maps under concurrency: threads of one process, and processes
//! sharing a pinned map (the second process is `bpfc-map-worker`).
//!
//! Exact counts where the kernel promises them (atomic adds on values,
//! one winner per `BPF_NOEXIST` race, each element popped once, a replaced
//! key never missing), no crash, and a map that stays usable after a
//! process was killed in the middle of updating it. What such a kill can
//! leave behind is in docs/maps.md ("A process dying mid-operation").

use bpfc_runtime::maps::{errno, flags, Map, MapOptions, MapSpec, MapType};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WORKER: &str = env!("CARGO_BIN_EXE_bpfc-map-worker");

fn k32(i: u32) -> [u8; 4] {
    i.to_ne_bytes()
}

fn opts(ncpus: u32) -> MapOptions {
    MapOptions {
        ncpus,
        ..MapOptions::default()
    }
}

/// A scratch pin directory under /dev/shm, removed on drop.
struct PinDir(PathBuf);

impl PinDir {
    fn new(test: &str) -> PinDir {
        let d = PathBuf::from(format!("/dev/shm/bpfc-test-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        PinDir(d)
    }

    fn opts(&self) -> MapOptions {
        MapOptions {
            pin_dir: self.0.clone(),
            ..MapOptions::default()
        }
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// xorshift for choosing keys in threads.
fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// Programs' atomic adds (through the pointer a lookup returns) from 4
/// threads on 8 shared keys, while another thread updates, deletes and
/// looks up other keys: every add counts.
#[test]
fn atomic_adds_are_exact_under_churn() {
    const THREADS: u32 = 4;
    const ADDS: u64 = 25_000;
    for t in [
        MapType::Array,
        MapType::PercpuArray,
        MapType::Hash,
        MapType::PercpuHash,
        MapType::LruHash,
        MapType::LruPercpuHash,
    ] {
        let m = Map::create_with(&MapSpec::new("adds", t, 4, 8, 1024, 0), &opts(THREADS)).unwrap();
        let vsize = m.user_value_size();
        for k in 0..8 {
            m.update(&k32(k), &vec![0; vsize], 0).unwrap();
        }
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            let churn = s.spawn(|| {
                let mut x = 0x1234_5678u64;
                let mut n = 0u64;
                let v = vec![1u8; vsize];
                let mut out = vec![0u8; vsize];
                while !stop.load(Ordering::Relaxed) {
                    // Keys 100..300: never the counted ones, well below
                    // capacity (no LRU eviction of the counted keys).
                    let k = k32(100 + (next(&mut x) % 200) as u32);
                    let r = match x % 4 {
                        0 | 1 => m.update(&k, &v, 0),
                        2 if t != MapType::Array && t != MapType::PercpuArray => m.delete(&k),
                        _ => m.lookup(&k, &mut out),
                    };
                    assert!(
                        r.is_ok() || r.as_ref().unwrap_err().code() == errno::ENOENT,
                        "{t}: churn: {r:?}"
                    );
                    n += 1;
                }
                n
            });
            let adders: Vec<_> = (0..THREADS)
                .map(|cpu| {
                    let m = &m;
                    s.spawn(move || {
                        for i in 0..ADDS {
                            let k = (i % 8) as u32;
                            let p = m.prog_lookup(&k32(k), cpu).expect("counted key present");
                            // SAFETY: an 8-aligned u64 value; programs add atomically.
                            unsafe { AtomicU64::from_ptr(p as *mut u64) }
                                .fetch_add(1, Ordering::Relaxed);
                        }
                    })
                })
                .collect();
            for a in adders {
                a.join().unwrap();
            }
            stop.store(true, Ordering::Relaxed);
            assert!(churn.join().unwrap() > 0);
        });
        let mut sum = 0u64;
        let mut v = vec![0u8; vsize];
        for k in 0..8 {
            m.lookup(&k32(k), &mut v).unwrap();
            // Per-CPU: one 8-byte slot per CPU slot; sum them all.
            for slot in v.chunks_exact(8) {
                sum += u64::from_ne_bytes(slot.try_into().unwrap());
            }
        }
        assert_eq!(sum, u64::from(THREADS) * ADDS, "{t}");
    }
}

/// Threads race to create keys with `BPF_NOEXIST`: the winner's value is
/// the one stored, only the winner deletes, so its delete always succeeds
/// and the map ends empty.
#[test]
fn noexist_races_have_one_winner() {
    for t in [MapType::Hash, MapType::LruHash] {
        let m = Map::create_with(&MapSpec::new("race", t, 4, 8, 64, 0), &opts(4)).unwrap();
        let wins: u64 = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4u64)
                .map(|tid| {
                    let m = &m;
                    s.spawn(move || {
                        let mut x = 0x9e37_79b9 + tid;
                        let mut wins = 0;
                        let mut v = [0u8; 8];
                        for _ in 0..20_000 {
                            let k = k32((next(&mut x) % 8) as u32);
                            match m.update(&k, &tid.to_ne_bytes(), flags::BPF_NOEXIST) {
                                Ok(()) => {
                                    wins += 1;
                                    m.lookup(&k, &mut v).unwrap();
                                    assert_eq!(u64::from_ne_bytes(v), tid, "{t}: a loser replaced");
                                    m.delete(&k).unwrap();
                                }
                                Err(e) => assert_eq!(e.code(), errno::EEXIST, "{t}"),
                            }
                        }
                        wins
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert!(wins > 0);
        assert!(m.keys().unwrap().is_empty(), "{t}");
        assert_eq!(m.elements(), Some(0), "{t}");
    }
}

/// Four threads pop (lookup-and-delete) the same 4,000 keys in different
/// orders: each key is popped exactly once.
#[test]
fn each_element_is_popped_once() {
    for t in [MapType::Hash, MapType::PercpuHash, MapType::LruHash] {
        let m = Map::create_with(&MapSpec::new("pop", t, 4, 8, 4096, 0), &opts(2)).unwrap();
        let vsize = m.user_value_size();
        for k in 0..4000u32 {
            let mut v = vec![0u8; vsize];
            v[..4].copy_from_slice(&k.to_ne_bytes());
            m.update(&k32(k), &v, flags::BPF_NOEXIST).unwrap();
        }
        let popped: Vec<Vec<u32>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4u32)
                .map(|tid| {
                    let m = &m;
                    s.spawn(move || {
                        let mut got = Vec::new();
                        let mut v = vec![0u8; vsize];
                        for i in 0..4000u32 {
                            // Thread t walks from a different start, two backwards.
                            let k = if tid % 2 == 0 {
                                (i + tid * 1000) % 4000
                            } else {
                                (4000 - i + tid * 1000) % 4000
                            };
                            match m.lookup_and_delete(&k32(k), &mut v, 0) {
                                Ok(()) => {
                                    let was = u32::from_ne_bytes(v[..4].try_into().unwrap());
                                    assert_eq!(was, k, "{t}: popped another key's value");
                                    got.push(k);
                                }
                                Err(e) => assert_eq!(e.code(), errno::ENOENT),
                            }
                        }
                        got
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let all: Vec<u32> = popped.concat();
        let set: HashSet<u32> = all.iter().copied().collect();
        assert_eq!(
            all.len(),
            4000,
            "{t}: pops (duplicates: {})",
            all.len() - set.len()
        );
        assert_eq!(set.len(), 4000, "{t}");
        assert!(m.keys().unwrap().is_empty(), "{t}");
    }
}

/// Keys that are only ever replaced never look absent to readers, and a
/// reader only ever sees values some writer wrote.
#[test]
fn replaced_keys_never_look_absent() {
    let m = Map::create_with(&MapSpec::new("repl", MapType::Hash, 4, 8, 64, 0), &opts(2)).unwrap();
    // A value's high half is the complement of its low half.
    let val = |n: u32| (u64::from(!n) << 32 | u64::from(n)).to_ne_bytes();
    for k in 0..16 {
        m.update(&k32(k), &val(0), 0).unwrap();
    }
    let stop = AtomicBool::new(false);
    let reads = std::thread::scope(|s| {
        for w in 0..2u64 {
            let (m, stop) = (&m, &stop);
            s.spawn(move || {
                let mut x = 77 + w;
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    n = n.wrapping_add(1);
                    m.update(&k32((next(&mut x) % 16) as u32), &val(n), 0)
                        .unwrap();
                }
            });
        }
        let readers: Vec<_> = (0..2u64)
            .map(|r| {
                let m = &m;
                s.spawn(move || {
                    let mut x = 99 + r;
                    let mut v = [0u8; 8];
                    for _ in 0..200_000 {
                        let k = (next(&mut x) % 16) as u32;
                        m.lookup(&k32(k), &mut v)
                            .unwrap_or_else(|e| panic!("key {k} looked absent: {e}"));
                        let w = u64::from_ne_bytes(v);
                        assert_eq!((w >> 32) as u32, !(w as u32), "torn value {w:#x}");
                    }
                    200_000u64
                })
            })
            .collect();
        let results: Vec<_> = readers.into_iter().map(|h| h.join()).collect();
        // Stop the writers before reporting a reader's failure.
        stop.store(true, Ordering::Relaxed);
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .sum::<u64>()
    });
    assert_eq!(reads, 400_000);
    assert_eq!(m.elements(), Some(16));
}

fn worker(args: &[&str]) -> Command {
    let mut c = Command::new(WORKER);
    c.args(args);
    c
}

fn wait_ok(mut child: Child, what: &str) {
    let st = child.wait().unwrap();
    assert!(st.success(), "{what}: worker exited with {st}");
}

/// Two more processes and this one add to the same value of a pinned map.
#[test]
fn processes_add_exactly() {
    let dir = PinDir::new("adds");
    let path = dir.0.join("counter");
    let m = Map::create_with(
        &MapSpec::new("counter", MapType::Hash, 4, 8, 16, 0),
        &dir.opts(),
    )
    .unwrap();
    m.update(&k32(0), &0u64.to_ne_bytes(), 0).unwrap();
    m.pin(&path).unwrap();
    let p = path.to_str().unwrap();
    let n = 200_000u64;
    let kids: Vec<Child> = (0..2)
        .map(|_| worker(&["add", p, "0", &n.to_string()]).spawn().unwrap())
        .collect();
    let v = m.prog_lookup(&k32(0), 0).unwrap();
    for _ in 0..n {
        // SAFETY: an 8-aligned u64 value of the live map.
        unsafe { AtomicU64::from_ptr(v as *mut u64) }.fetch_add(1, Ordering::Relaxed);
    }
    for k in kids {
        wait_ok(k, "add");
    }
    let mut out = [0u8; 8];
    m.lookup(&k32(0), &mut out).unwrap();
    assert_eq!(u64::from_ne_bytes(out), 3 * n);
}

/// A writer in another process updates a key 1..=N; this process reads the
/// pinned map while it runs and sees the values go up live.
#[test]
fn second_process_updates_are_seen_live() {
    let dir = PinDir::new("live");
    let path = dir.0.join("seq");
    let m = Map::create_with(
        &MapSpec::new("seq", MapType::Array, 4, 8, 4, 0),
        &dir.opts(),
    )
    .unwrap();
    m.pin(&path).unwrap();
    // This process opens the pin as any reader would.
    let reader = Map::open_pinned(&path, Some(m.spec())).unwrap();
    let n = 300_000u64;
    let mut child = worker(&["seq", path.to_str().unwrap(), "1", &n.to_string()])
        .spawn()
        .unwrap();
    let (mut last, mut distinct) = (0u64, 0u32);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut v = [0u8; 8];
    loop {
        reader.lookup(&k32(1), &mut v).unwrap();
        let now = u64::from_ne_bytes(v);
        assert!(now >= last, "value went back from {last} to {now}");
        if now != last {
            distinct += 1;
            last = now;
        }
        if now == n {
            break;
        }
        assert!(Instant::now() < deadline, "writer stuck at {now}");
        if child.try_wait().unwrap().is_some() && now != n {
            // The writer finished; the next read must see the end.
            reader.lookup(&k32(1), &mut v).unwrap();
            assert_eq!(u64::from_ne_bytes(v), n);
            break;
        }
    }
    wait_ok(child, "seq");
    assert!(
        distinct >= 3,
        "saw only {distinct} values while the writer ran"
    );
    println!("second_process_updates_are_seen_live: saw {distinct} distinct values of {n}");
}

/// Spawn a churn worker and kill it (SIGKILL) while it updates.
fn churn_and_kill(path: &Path, keys: u32, seed: u64, after: Duration) {
    let mut child = worker(&[
        "churn",
        path.to_str().unwrap(),
        &keys.to_string(),
        &seed.to_string(),
    ])
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    std::thread::sleep(after);
    child.kill().unwrap();
    // Reaped: a dead owner's locks are taken over once its thread is gone.
    let st = child.wait().unwrap();
    assert!(!st.success(), "the churn worker ended by itself: {st}");
}

/// Kill a process in the middle of an update loop, 12 times; after each,
/// this process must still do every operation on every key, promptly.
/// Afterwards, report what the kills left behind.
#[test]
fn killed_writer_leaves_map_usable() {
    let dir = PinDir::new("kill");
    let keys = 64u32;
    for t in [MapType::Hash, MapType::LruHash, MapType::Array] {
        let path = dir.0.join(t.name());
        // LRU maps take a free element before every update and evict when
        // none is left: room for twice the keys keeps the keys in place. A
        // kill may leak one counted element (checked below), so a hash map
        // gets room for one per kill beside the keys.
        let entries = match t {
            MapType::LruHash => 2 * keys,
            MapType::Hash => keys + 12,
            _ => keys,
        };
        let spec = MapSpec::new("victim", t, 4, 8, entries, 0);
        let m = Map::create_with(&spec, &dir.opts()).unwrap();
        m.pin(&path).unwrap();
        let mut duplicates = 0;
        let mut x = 0xdead_beefu64;
        for round in 0..12u64 {
            let after = Duration::from_millis(2 + next(&mut x) % 25);
            churn_and_kill(&path, keys, round + 1, after);
            let start = Instant::now();
            let mut v = [0u8; 8];
            for k in 0..keys {
                let want = u64::from(k) << 32 | round;
                m.update(&k32(k), &want.to_ne_bytes(), 0)
                    .unwrap_or_else(|e| panic!("{t} round {round}: update {k}: {e}"));
                m.lookup(&k32(k), &mut v).unwrap();
                assert_eq!(u64::from_ne_bytes(v), want, "{t}: key {k}");
            }
            if t != MapType::Array {
                for k in 0..keys {
                    m.delete(&k32(k))
                        .unwrap_or_else(|e| panic!("{t} round {round}: delete {k}: {e}"));
                    // A kill between linking a replacement and unlinking the
                    // element it replaces leaves a second element of the key.
                    while m.delete(&k32(k)).is_ok() {
                        duplicates += 1;
                    }
                }
                assert!(
                    m.keys().unwrap().is_empty(),
                    "{t}: keys left after deleting all"
                );
            }
            // Lock takeover waits 50 ms per dead owner; a stuck map would not.
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{t} round {round}: a pass took {:?}",
                start.elapsed()
            );
        }
        let leaked = if t == MapType::Array {
            0
        } else {
            m.elements().unwrap()
        };
        println!(
            "killed_writer_leaves_map_usable: {t}: 12 kills; left behind: {leaked} \
             counted elements not in the map, {duplicates} duplicate elements"
        );
        // At most one element per kill can be lost between count and link.
        assert!(leaked <= 12, "{t}: {leaked} elements leaked");
        // The map still takes a full set of new keys (minus what leaked).
        if t != MapType::Array {
            for k in 0..keys - leaked as u32 {
                m.update(&k32(k), &[1; 8], flags::BPF_NOEXIST)
                    .unwrap_or_else(|e| panic!("{t}: insert {k} after the kills: {e}"));
            }
        }
        m.unpin().unwrap();
    }
}

/// Several threads of this process and a killed process at once: the
/// survivors finish.
#[test]
fn threads_survive_a_killed_process() {
    let dir = PinDir::new("mixed");
    let path = dir.0.join("m");
    let m = Arc::new(
        Map::create_with(&MapSpec::new("m", MapType::Hash, 4, 8, 128, 0), &dir.opts()).unwrap(),
    );
    m.pin(&path).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            let (m, stop) = (m.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut x = 5 + t;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let k = k32((next(&mut x) % 64) as u32);
                    let _ = m.update(&k, &n.to_ne_bytes(), 0);
                    let _ = m.delete(&k);
                    n += 1;
                }
                n
            })
        })
        .collect();
    for round in 0..6 {
        churn_and_kill(&path, 64, 100 + round, Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        assert!(t.join().unwrap() > 0);
    }
}
