//! Two processes on pinned LPM trie, queue and bloom filter maps: a child
//! process (this test binary, running an ignored test) writes while the
//! parent reads live, then the parent checks what it left; and children
//! killed in the middle of their writes, after which the maps must go on
//! consistent.

use bpfc_runtime::maps::{errno, flags, Map, MapOptions, MapSpec, MapType};
use std::path::{Path, PathBuf};
use std::process::Command;

const DIR_ENV: &str = "BPFC_SHARED_MAPS_DIR";
const PREFIXES: u32 = 1000;
const PUSHES: u64 = 3000;
const BLOOMED: u32 = 500;

fn specs() -> [MapSpec; 3] {
    [
        MapSpec::new(
            "trie",
            MapType::LpmTrie,
            8,
            4,
            PREFIXES,
            flags::BPF_F_NO_PREALLOC,
        ),
        MapSpec::new("queue", MapType::Queue, 0, 8, 16, 0),
        MapSpec::new("bloom", MapType::BloomFilter, 0, 4, BLOOMED, 0),
    ]
}

fn prefix(i: u32) -> Vec<u8> {
    let mut k = 24u32.to_ne_bytes().to_vec();
    k.extend_from_slice(&[10, (i / 256) as u8, (i % 256) as u8, 0]);
    k
}

fn host(i: u32) -> Vec<u8> {
    let mut k = prefix(i);
    k[..4].copy_from_slice(&32u32.to_ne_bytes());
    k[7] = 77;
    k
}

fn open(dir: &Path) -> Vec<std::sync::Arc<Map>> {
    specs()
        .iter()
        .map(|s| Map::open_pinned(&dir.join(&s.name), Some(s)).unwrap())
        .collect()
}

/// The writer, run by `two_processes` in a child process.
#[test]
#[ignore = "run by two_processes in a child process"]
fn child_writer() {
    let dir = PathBuf::from(std::env::var_os(DIR_ENV).expect("run by two_processes"));
    let maps = open(&dir);
    let (trie, queue, bloom) = (&maps[0], &maps[1], &maps[2]);
    let mut pushed = 0u64;
    let mut i = 0u32;
    while pushed < PUSHES || i < PREFIXES {
        if i < PREFIXES {
            trie.update(&prefix(i), &(i + 1).to_ne_bytes(), flags::BPF_NOEXIST)
                .unwrap();
            if i < BLOOMED {
                bloom.update(&[], &i.to_ne_bytes(), 0).unwrap();
            }
            i += 1;
        }
        // The parent pops: a full queue waits for it.
        if pushed < PUSHES {
            match queue.update(&[], &pushed.to_ne_bytes(), 0) {
                Ok(()) => pushed += 1,
                Err(e) if e.code() == errno::E2BIG => std::thread::yield_now(),
                Err(e) => panic!("push: {e}"),
            }
        }
    }
}

#[test]
fn two_processes() {
    let dir = std::env::temp_dir().join(format!("bpfc-shared-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let o = MapOptions {
        pin_dir: dir.clone(),
        ..MapOptions::default()
    };
    let maps: Vec<_> = specs()
        .iter()
        .map(|s| {
            let m = Map::create_with(s, &o).unwrap();
            m.pin(&dir.join(&s.name)).unwrap();
            m
        })
        .collect();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer", "--ignored", "--quiet"])
        .env(DIR_ENV, &dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (trie, queue, bloom) = (&maps[0], &maps[1], &maps[2]);
    // Pop everything the child pushes, in order, while looking up prefixes
    // it is adding: absent or right, never anything else.
    let mut next = 0u64;
    let mut lookups = 0u64;
    let start = std::time::Instant::now();
    while next < PUSHES {
        let mut v = [0u8; 8];
        match queue.lookup_and_delete(&[], &mut v, 0) {
            Ok(()) => {
                assert_eq!(u64::from_ne_bytes(v), next, "queue order");
                next += 1;
            }
            Err(e) => {
                assert_eq!(e.code(), errno::ENOENT);
                if child.try_wait().unwrap().is_some() && queue.elements() == Some(0) {
                    break;
                }
            }
        }
        let i = (next as u32 * 7) % PREFIXES;
        let mut val = [0u8; 4];
        match trie.lookup(&host(i), &mut val) {
            Ok(()) => assert_eq!(u32::from_ne_bytes(val), i + 1),
            Err(e) => assert_eq!(e.code(), errno::ENOENT),
        }
        lookups += 1;
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "the child stopped pushing"
        );
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the child failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(next, PUSHES, "values popped");
    for i in 0..PREFIXES {
        let mut val = [0u8; 4];
        trie.lookup(&host(i), &mut val).unwrap();
        assert_eq!(u32::from_ne_bytes(val), i + 1);
    }
    assert_eq!(trie.elements(), Some(PREFIXES as usize));
    assert_eq!(trie.keys().unwrap().len(), PREFIXES as usize);
    for i in 0..BLOOMED {
        bloom.lookup(&[], &mut i.to_ne_bytes()).unwrap();
    }
    assert_eq!(queue.elements(), Some(0));
    println!("two_processes: {PUSHES} values passed in order, {lookups} lookups during the writes");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writes until killed, by `killed_writers`.
#[test]
#[ignore = "run by killed_writers in a child process"]
fn child_churner() {
    let dir = PathBuf::from(std::env::var_os(DIR_ENV).expect("run by killed_writers"));
    let maps = open(&dir);
    let (trie, queue) = (&maps[0], &maps[1]);
    let mut x = std::process::id() as u64 | 1;
    loop {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = (x % PREFIXES as u64) as u32;
        if x & 0x100 == 0 {
            let _ = trie.update(&prefix(i), &(i + 1).to_ne_bytes(), 0);
        } else {
            let _ = trie.delete(&prefix(i));
        }
        if x & 0x200 == 0 {
            let _ = queue.update(&[], &x.to_ne_bytes(), flags::BPF_EXIST);
        } else {
            let _ = queue.lookup_and_delete(&[], &mut [0; 8], 0);
        }
    }
}

#[test]
fn killed_writers() {
    let dir = std::env::temp_dir().join(format!("bpfc-killed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let o = MapOptions {
        pin_dir: dir.clone(),
        ..MapOptions::default()
    };
    let maps: Vec<_> = specs()
        .iter()
        .map(|s| {
            let m = Map::create_with(s, &o).unwrap();
            m.pin(&dir.join(&s.name)).unwrap();
            m
        })
        .collect();
    let (trie, queue) = (&maps[0], &maps[1]);
    for round in 0..8u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_churner", "--ignored", "--quiet"])
            .env(DIR_ENV, &dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30 + 7 * round));
        child.kill().unwrap();
        child.wait().unwrap();
        // The parent writes (taking over a lock the child died holding,
        // repairing what it left) and finds everything consistent.
        let probe = prefix(PREFIXES + round as u32);
        trie.update(&probe, &7u32.to_ne_bytes(), 0).unwrap();
        trie.delete(&probe).unwrap();
        let keys = trie.keys().unwrap();
        assert_eq!(trie.elements(), Some(keys.len()), "round {round}");
        for k in &keys {
            let i = u32::from(k[5]) * 256 + u32::from(k[6]);
            let mut v = [0u8; 4];
            trie.lookup(k, &mut v).unwrap();
            assert_eq!(u32::from_ne_bytes(v), i + 1, "round {round}");
        }
        queue.update(&[], &[1; 8], flags::BPF_EXIST).unwrap();
        let n = queue.elements().unwrap();
        assert!((1..=16).contains(&n), "round {round}: {n} queued");
        for _ in 0..n {
            queue.lookup_and_delete(&[], &mut [0; 8], 0).unwrap();
        }
        assert_eq!(queue.elements(), Some(0));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
