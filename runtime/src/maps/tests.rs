use super::*;
use std::sync::atomic::AtomicU64;

fn opts() -> MapOptions {
    MapOptions {
        ncpus: 4,
        pin_dir: std::env::temp_dir().join("bpfc-test-pins"),
    }
}

fn spec(t: MapType, k: u32, v: u32, n: u32) -> MapSpec {
    MapSpec::new("m", t, k, v, n, 0)
}

fn k32(i: u32) -> [u8; 4] {
    i.to_ne_bytes()
}

#[test]
fn array_semantics() {
    let m = Map::create_with(&spec(MapType::Array, 4, 8, 4), &opts()).unwrap();
    let mut v = [0u8; 8];
    m.lookup(&k32(3), &mut v).unwrap();
    assert_eq!(v, [0; 8]);
    assert_eq!(m.lookup(&k32(4), &mut v).unwrap_err().code(), errno::ENOENT);
    m.update(&k32(1), &7u64.to_ne_bytes(), flags::BPF_ANY)
        .unwrap();
    m.update(&k32(1), &8u64.to_ne_bytes(), flags::BPF_EXIST)
        .unwrap();
    assert_eq!(
        m.update(&k32(1), &8u64.to_ne_bytes(), flags::BPF_NOEXIST)
            .unwrap_err()
            .code(),
        errno::EEXIST
    );
    assert_eq!(
        m.update(&k32(9), &8u64.to_ne_bytes(), 0)
            .unwrap_err()
            .code(),
        errno::E2BIG
    );
    assert_eq!(
        m.update(&k32(1), &[0; 8], 3).unwrap_err().code(),
        errno::EINVAL
    );
    assert_eq!(m.delete(&k32(1)).unwrap_err().code(), errno::EINVAL);
    m.lookup(&k32(1), &mut v).unwrap();
    assert_eq!(u64::from_ne_bytes(v), 8);
    let keys: Vec<u32> = m
        .keys()
        .unwrap()
        .iter()
        .map(|k| u32::from_ne_bytes(k[..4].try_into().unwrap()))
        .collect();
    assert_eq!(keys, [0, 1, 2, 3]);
    let mut next = [0u8; 4];
    m.get_next_key(Some(&k32(77)), &mut next).unwrap();
    assert_eq!(next, k32(0));
    assert_eq!(
        m.get_next_key(Some(&k32(3)), &mut next).unwrap_err().code(),
        errno::ENOENT
    );
    // Programs see the value in place.
    let p = m.prog_lookup(&k32(1), 0).unwrap();
    assert_eq!(p as usize, m.native().values as usize + 8);
}

#[test]
fn bad_definitions() {
    let o = opts();
    for (s, code) in [
        (spec(MapType::Array, 8, 8, 4), errno::EINVAL),
        (spec(MapType::Array, 4, 0, 4), errno::EINVAL),
        (spec(MapType::Hash, 0, 8, 4), errno::EINVAL),
        (spec(MapType::Hash, 4, 8, 0), errno::EINVAL),
        (spec(MapType::PercpuArray, 4, 40000, 4), errno::E2BIG),
        (
            MapSpec::new("m", MapType::Hash, 4, 4, 4, flags::BPF_F_MMAPABLE),
            errno::EINVAL,
        ),
        (
            MapSpec::new("m", MapType::LruHash, 4, 4, 4, flags::BPF_F_NO_PREALLOC),
            errno::ENOTSUPP,
        ),
        (spec(MapType::Sockmap, 4, 4, 4), errno::EINVAL),
    ] {
        let e = Map::create_with(&s, &o).unwrap_err();
        assert_eq!(e.code(), code, "{s:?}: {e}");
    }
    let e = Map::create_with(&spec(MapType::TaskStorage, 4, 4, 0), &o).unwrap_err();
    assert!(e.to_string().contains("task_storage"), "{e}");
}

#[test]
fn hash_semantics() {
    let m = Map::create_with(&spec(MapType::Hash, 4, 8, 3), &opts()).unwrap();
    let mut v = [0u8; 8];
    assert_eq!(m.lookup(&k32(1), &mut v).unwrap_err().code(), errno::ENOENT);
    assert_eq!(
        m.update(&k32(1), &[1; 8], flags::BPF_EXIST)
            .unwrap_err()
            .code(),
        errno::ENOENT
    );
    for i in 0..3 {
        m.update(&k32(i), &[i as u8; 8], flags::BPF_NOEXIST)
            .unwrap();
    }
    assert_eq!(m.elements(), Some(3));
    // Full: a new key fails, replacing an existing one works.
    assert_eq!(
        m.update(&k32(9), &[9; 8], 0).unwrap_err().code(),
        errno::E2BIG
    );
    for round in 0..200u8 {
        m.update(&k32(1), &[round; 8], flags::BPF_EXIST).unwrap();
    }
    m.lookup(&k32(1), &mut v).unwrap();
    assert_eq!(v, [199; 8]);
    assert_eq!(
        m.update(&k32(2), &[0; 8], flags::BPF_NOEXIST)
            .unwrap_err()
            .code(),
        errno::EEXIST
    );
    let mut keys: Vec<Vec<u8>> = m.keys().unwrap();
    keys.sort();
    assert_eq!(keys.len(), 3);
    // get_next_key of an absent key starts over.
    let mut first = [0u8; 4];
    m.get_next_key(None, &mut first).unwrap();
    let mut again = [0u8; 4];
    m.get_next_key(Some(&k32(1000)), &mut again).unwrap();
    assert_eq!(first, again);
    m.lookup_and_delete(&k32(0), &mut v, 0).unwrap();
    assert_eq!(v, [0; 8]);
    assert_eq!(m.delete(&k32(0)).unwrap_err().code(), errno::ENOENT);
    m.delete(&k32(2)).unwrap();
    assert_eq!(m.elements(), Some(1));
    m.update(&k32(5), &[5; 8], 0).unwrap();
    m.update(&k32(6), &[6; 8], 0).unwrap();
    assert_eq!(
        m.update(&k32(7), &[7; 8], 0).unwrap_err().code(),
        errno::E2BIG
    );
}

#[test]
fn percpu_values() {
    let o = opts();
    for t in [MapType::PercpuArray, MapType::PercpuHash] {
        let m = Map::create_with(&spec(t, 4, 4, 8), &o).unwrap();
        assert_eq!(m.user_value_size(), 32);
        let mut user = [0u8; 32];
        for c in 0..4 {
            user[c * 8..c * 8 + 4].copy_from_slice(&(c as u32 + 10).to_ne_bytes());
        }
        m.update(&k32(2), &user, 0).unwrap();
        // A program on CPU 3 sees slot 3 and writes only it.
        let p = m.prog_lookup(&k32(2), 3).unwrap();
        // SAFETY: a live 4-byte value.
        assert_eq!(unsafe { (p as *const u32).read() }, 13);
        m.prog_update(&k32(2), &99u32.to_ne_bytes(), 0, 1).unwrap();
        let mut out = [0u8; 32];
        m.lookup(&k32(2), &mut out).unwrap();
        let slots: Vec<u32> = (0..4)
            .map(|c| u32::from_ne_bytes(out[c * 8..c * 8 + 4].try_into().unwrap()))
            .collect();
        assert_eq!(slots, [10, 99, 12, 13], "{t}");
    }
    // A new per-CPU hash element written by a program has zeroes elsewhere.
    let m = Map::create_with(&spec(MapType::PercpuHash, 4, 4, 8), &o).unwrap();
    m.prog_update(&k32(1), &5u32.to_ne_bytes(), 0, 2).unwrap();
    let mut out = [0xffu8; 32];
    m.lookup(&k32(1), &mut out).unwrap();
    assert_eq!(out[16..20], 5u32.to_ne_bytes());
    assert_eq!(out[..16], [0; 16]);
}

#[test]
fn lru_evicts_unused_first() {
    let m = Map::create_with(&spec(MapType::LruHash, 4, 8, 64), &opts()).unwrap();
    for i in 0..64 {
        m.update(&k32(i), &[1; 8], 0).unwrap();
    }
    // Keep touching the even keys while inserting more.
    for i in 64..96 {
        for j in (0..64).step_by(2) {
            m.prog_lookup(&k32(j), 0);
        }
        m.update(&k32(i), &[2; 8], 0).unwrap();
        let mut v = [0u8; 8];
        m.lookup(&k32(i), &mut v).unwrap();
    }
    assert_eq!(m.elements(), Some(64));
    let mut v = [0u8; 8];
    let even_kept = (0..64)
        .step_by(2)
        .filter(|&j| m.lookup(&k32(j), &mut v).is_ok())
        .count();
    assert_eq!(even_kept, 32, "recently used keys were evicted");
}

#[test]
fn spin_lock_flag() {
    let mut s = spec(MapType::Hash, 4, 16, 4);
    let m = Map::create_with(&s, &opts()).unwrap();
    assert_eq!(
        m.update(&k32(1), &[0; 16], flags::BPF_F_LOCK)
            .unwrap_err()
            .code(),
        errno::EINVAL
    );
    s.spin_lock_off = Some(0);
    let m = Map::create_with(&s, &opts()).unwrap();
    m.update(&k32(1), &[7; 16], flags::BPF_F_LOCK).unwrap();
    let mut v = [0u8; 16];
    m.lookup_flags(&k32(1), &mut v, flags::BPF_F_LOCK).unwrap();
    // The lock bytes read as zero and were not overwritten.
    assert_eq!(v[..4], [0; 4]);
    assert_eq!(v[4..], [7; 12]);
    let p = m.prog_lookup(&k32(1), 0).unwrap();
    // SAFETY: the lock word of a live value.
    assert_eq!(unsafe { (p as *const u32).read() }, 0);
}

#[test]
fn threads_count_exactly() {
    let m = Map::create_with(&spec(MapType::Hash, 4, 8, 1024), &opts()).unwrap();
    for k in 0..16 {
        m.update(&k32(k), &[0; 8], 0).unwrap();
    }
    let total = std::sync::Arc::new(AtomicU64::new(0));
    std::thread::scope(|s| {
        for t in 0..4u32 {
            let m = m.clone();
            let total = total.clone();
            s.spawn(move || {
                for i in 0..20_000u32 {
                    let k = i % 16;
                    let p = m.prog_lookup(&k32(k), t).unwrap();
                    // SAFETY: an 8-aligned live value; programs add atomically.
                    unsafe { AtomicU64::from_ptr(p as *mut u64) }.fetch_add(1, Ordering::Relaxed);
                    total.fetch_add(1, Ordering::Relaxed);
                    // Churn other keys to exercise the chains.
                    let other = 100 + t * 100 + i % 50;
                    m.update(&k32(other), &[1; 8], 0).unwrap();
                    if i % 3 == 0 {
                        let _ = m.delete(&k32(other));
                    }
                }
            });
        }
    });
    let mut sum = 0;
    for k in 0..16 {
        let mut v = [0u8; 8];
        m.lookup(&k32(k), &mut v).unwrap();
        sum += u64::from_ne_bytes(v);
    }
    assert_eq!(sum, 80_000);
    assert_eq!(total.load(Ordering::Relaxed), 80_000);
}

#[test]
fn pin_and_reopen() {
    let o = opts();
    let dir = o.pin_dir.clone();
    let path = dir.join(format!("pin-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let s = spec(MapType::Hash, 4, 8, 16);
    let m = Map::create_with(&s, &o).unwrap();
    m.update(&k32(1), &[1; 8], 0).unwrap();
    m.pin(&path).unwrap();
    let other = Map::open_pinned(&path, Some(&s)).unwrap();
    let mut v = [0u8; 8];
    other.lookup(&k32(1), &mut v).unwrap();
    assert_eq!(v, [1; 8]);
    other.update(&k32(2), &[2; 8], 0).unwrap();
    m.lookup(&k32(2), &mut v).unwrap();
    assert_eq!(v, [2; 8]);
    let mut wrong = s.clone();
    wrong.max_entries = 32;
    let e = Map::open_pinned(&path, Some(&wrong)).unwrap_err();
    assert!(e.to_string().contains("max_entries is 16"), "{e}");
    assert_eq!(
        m.pin(&path).unwrap_err().code(),
        errno::EEXIST,
        "pinning twice at one path"
    );
    m.unpin().unwrap();
    assert!(!path.exists());
}

#[test]
fn slabs_bound_values() {
    let m = Map::create_with(&spec(MapType::Hash, 4, 12, 4), &opts()).unwrap();
    m.update(&k32(1), &[1; 12], 0).unwrap();
    let p = m.prog_lookup(&k32(1), 0).unwrap() as usize;
    let slabs = m.slabs();
    assert!(slabs.iter().any(|s| s.contains(p, 12)));
    assert!(!slabs.iter().any(|s| s.contains(p, 13)));
    assert!(!slabs.iter().any(|s| s.contains(p - 1, 1)));
}

#[test]
fn cpu_list() {
    assert_eq!(parse_cpu_list("0-3"), Some(4));
    assert_eq!(parse_cpu_list("0"), Some(1));
    assert_eq!(parse_cpu_list("0-1,4-5"), Some(6));
}

#[test]
fn pin_keeps_btf() {
    let o = opts();
    let path = o.pin_dir.join(format!("btf-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mut s = spec(MapType::Array, 4, 8, 4);
    s.btf = Some(MapBtf {
        raw: (0..=255u8).cycle().take(1000).collect(),
        key_type_id: 3,
        value_type_id: 7,
    });
    let m = Map::create_with(&s, &o).unwrap();
    m.update(&k32(3), &[9; 8], 0).unwrap();
    m.pin(&path).unwrap();
    let again = Map::open_pinned(&path, Some(&s)).unwrap();
    assert_eq!(again.spec().btf, s.btf);
    let mut v = [0u8; 8];
    again.lookup(&k32(3), &mut v).unwrap();
    assert_eq!(v, [9; 8]);
    m.unpin().unwrap();
}
