use super::super::{errno, flags, Map, MapOptions, MapSpec, MapType};
use std::sync::Arc;

fn opts() -> MapOptions {
    MapOptions {
        ncpus: 2,
        pin_dir: std::env::temp_dir().join("bpfc-test-pins"),
    }
}

fn make(t: MapType, k: u32, v: u32, n: u32, f: u32) -> Arc<Map> {
    Map::create_with(&MapSpec::new("b", t, k, v, n, f), &opts()).unwrap()
}

fn k32(i: u32) -> [u8; 4] {
    i.to_ne_bytes()
}

/// Buffers for a lookup batch of `n` elements, filled with a marker.
struct Bufs {
    out: Vec<u8>,
    keys: Vec<u8>,
    values: Vec<u8>,
}

fn bufs(m: &Map, n: usize) -> Bufs {
    Bufs {
        out: vec![0xee; m.batch_token_size()],
        keys: vec![0xee; n * m.key_size()],
        values: vec![0xee; n * m.user_value_size()],
    }
}

/// A lookup batch: (errno or 0, count, buffers).
fn lookup(m: &Map, delete: bool, from: Option<&[u8]>, n: u32, ef: u64, f: u64) -> (i32, u32, Bufs) {
    let mut b = bufs(m, n as usize);
    let mut count = n;
    let r = if delete {
        m.lookup_and_delete_batch(
            from,
            &mut b.out,
            &mut b.keys,
            &mut b.values,
            &mut count,
            ef,
            f,
        )
    } else {
        m.lookup_batch(
            from,
            &mut b.out,
            &mut b.keys,
            &mut b.values,
            &mut count,
            ef,
            f,
        )
    };
    (r.map_or_else(|e| e.code(), |()| 0), count, b)
}

fn keys_of(b: &Bufs, ks: usize, n: u32) -> Vec<Vec<u8>> {
    b.keys[..n as usize * ks]
        .chunks(ks)
        .map(<[u8]>::to_vec)
        .collect()
}

#[test]
fn types_without_batches() {
    for m in [
        make(MapType::Queue, 0, 4, 4, 0),
        make(MapType::Stack, 0, 4, 4, 0),
        Map::create_with(
            &MapSpec {
                map_extra: 0,
                ..MapSpec::new("b", MapType::BloomFilter, 0, 4, 4, 0)
            },
            &opts(),
        )
        .unwrap(),
    ] {
        assert_eq!(lookup(&m, false, None, 2, 0, 0).0, errno::ENOTSUPP);
        assert_eq!(lookup(&m, true, None, 2, 0, 0).0, errno::ENOTSUPP);
        let mut c = 1;
        assert_eq!(
            m.update_batch(&[], &[0; 4], &mut c, 0, 0)
                .unwrap_err()
                .code(),
            errno::ENOTSUPP
        );
        assert_eq!(
            m.delete_batch(&[], &mut c, 0, 0).unwrap_err().code(),
            errno::ENOTSUPP
        );
        assert_eq!(c, 1, "count untouched");
    }
    // Arrays and tries cannot delete in batches.
    let a = make(MapType::Array, 4, 4, 4, 0);
    let t = make(MapType::LpmTrie, 8, 4, 4, flags::BPF_F_NO_PREALLOC);
    for m in [&a, &t] {
        assert_eq!(lookup(m, true, None, 2, 0, 0).0, errno::ENOTSUPP);
    }
    let mut c = 1;
    assert_eq!(
        a.delete_batch(&k32(0), &mut c, 0, 0).unwrap_err().code(),
        errno::ENOTSUPP
    );
}

#[test]
fn permissions_and_flags() {
    let ro = make(MapType::Hash, 4, 4, 4, flags::BPF_F_RDONLY);
    let mut c = 1;
    assert_eq!(
        ro.update_batch(&k32(1), &[0; 4], &mut c, 0, 0)
            .unwrap_err()
            .code(),
        errno::EPERM
    );
    assert_eq!(
        ro.delete_batch(&k32(1), &mut c, 0, 0).unwrap_err().code(),
        errno::EPERM
    );
    assert_eq!(lookup(&ro, true, None, 1, 0, 0).0, errno::EPERM);
    assert_eq!(lookup(&ro, false, None, 1, 0, 0).0, errno::ENOENT);
    let wo = make(MapType::Array, 4, 4, 4, flags::BPF_F_WRONLY);
    assert_eq!(lookup(&wo, false, None, 1, 0, 0).0, errno::EPERM);
    wo.update_batch(&k32(1), &[0; 4], &mut c, 0, 0).unwrap();
    wo.freeze().unwrap();
    assert_eq!(
        wo.update_batch(&k32(1), &[0; 4], &mut c, 0, 0)
            .unwrap_err()
            .code(),
        errno::EPERM
    );

    let h = make(MapType::Hash, 4, 4, 4, 0);
    for ef in [1, 2, 8, flags::BPF_F_LOCK] {
        assert_eq!(
            lookup(&h, false, None, 1, ef, 0).0,
            errno::EINVAL,
            "elem_flags {ef}"
        );
        let mut c = 1;
        let e = h.update_batch(&k32(1), &[0; 4], &mut c, ef, 0).unwrap_err();
        assert_eq!((e.code(), c), (errno::EINVAL, 1), "elem_flags {ef}");
        assert_eq!(
            h.delete_batch(&k32(1), &mut c, ef, 0).unwrap_err().code(),
            errno::EINVAL
        );
    }
    // Hash batches refuse flags, the others ignore them.
    assert_eq!(lookup(&h, false, None, 1, 0, 1).0, errno::EINVAL);
    let a = make(MapType::Array, 4, 4, 2, 0);
    assert_eq!(lookup(&a, false, None, 4, 0, 1).1, 2);
    // A count of 0 does nothing at all.
    let (r, c, b) = lookup(&h, false, None, 0, 0, 0);
    assert_eq!((r, c), (0, 0));
    assert_eq!(b.out, [0xee; 4]);
    // Buffers must hold `count` elements.
    let mut c = 2;
    let mut out = [0u8; 4];
    let e = h
        .lookup_batch(None, &mut out, &mut [0; 4], &mut [0; 8], &mut c, 0, 0)
        .unwrap_err();
    assert_eq!(e.code(), errno::EINVAL);
    assert!(e.to_string().contains("keys of 4 bytes"), "{e}");
    let e = h.lookup_batch(None, &mut [0; 2], &mut [0; 8], &mut [0; 8], &mut c, 0, 0);
    assert!(e.unwrap_err().to_string().contains("out_batch"));
    assert_eq!(
        h.update_batch(&[0; 8], &[0; 4], &mut c, 0, 0)
            .unwrap_err()
            .code(),
        errno::EINVAL
    );
}

#[test]
fn spin_locked_values() {
    let mut s = MapSpec::new("b", MapType::Hash, 4, 8, 4, 0);
    s.spin_lock_off = Some(0);
    let m = Map::create_with(&s, &opts()).unwrap();
    let mut c = 2;
    m.update_batch(
        &[k32(1), k32(2)].concat(),
        &[[9; 8], [8; 8]].concat(),
        &mut c,
        flags::BPF_F_LOCK,
        0,
    )
    .unwrap();
    assert_eq!(c, 2);
    let (r, c, b) = lookup(&m, false, None, 4, flags::BPF_F_LOCK, 0);
    assert_eq!((r, c), (errno::ENOENT, 2));
    // The lock word reads as zero.
    for v in b.values[..16].chunks(8) {
        assert_eq!(v[..4], [0; 4]);
        assert!(v[4..] == [9; 4] || v[4..] == [8; 4]);
    }
}

/// Keys 0.. until two of them share a bucket of a 4-bucket zero-seed hash.
fn colliding(m: &Map) -> (u32, Vec<u32>) {
    let mut by_bucket = vec![Vec::new(); 4];
    for i in 0.. {
        let b = super::super::hashfn::hash(&k32(i), 0) & 3;
        by_bucket[b as usize].push(i);
        if by_bucket[b as usize].len() == 2 {
            for &k in &by_bucket[b as usize] {
                m.update(&k32(k), &k32(k + 100), 0).unwrap();
            }
            return (b, by_bucket[b as usize].clone());
        }
    }
    unreachable!()
}

#[test]
fn hash_buckets() {
    let m = make(MapType::Hash, 4, 4, 4, flags::BPF_F_ZERO_SEED);
    assert_eq!(m.batch_token_size(), 4);
    let (bucket, keys) = colliding(&m);
    // The bucket does not fit in one element: ENOSPC, nothing copied, the
    // token names the bucket.
    let (r, c, b) = lookup(&m, false, Some(&k32(bucket)), 1, 0, 0);
    assert_eq!((r, c), (errno::ENOSPC, 0));
    assert_eq!(b.out, k32(bucket));
    assert_eq!(b.keys, [0xee; 4]);
    // With room it comes whole, in chain order (newest first).
    let (r, c, b) = lookup(&m, false, Some(&k32(bucket)), 2, 0, 0);
    assert_eq!(c, 2);
    assert_eq!(
        keys_of(&b, 4, 2),
        [k32(keys[1]).to_vec(), k32(keys[0]).to_vec()]
    );
    assert_eq!(b.values[..4], k32(keys[1] + 100));
    if bucket == 3 {
        assert_eq!(r, errno::ENOENT);
    } else {
        assert_eq!((r, b.out.clone()), (0, k32(bucket + 1).to_vec()));
    }
    // A token past the last bucket: ENOENT, count 0, token untouched.
    let (r, c, b) = lookup(&m, false, Some(&k32(4)), 2, 0, 0);
    assert_eq!((r, c, b.out), (errno::ENOENT, 0, vec![0xee; 4]));
    // From the start with room for everything: ENOENT, all of it.
    let (r, c, b) = lookup(&m, false, None, 8, 0, 0);
    assert_eq!((r, c), (errno::ENOENT, 2));
    assert_eq!(b.out, k32(4));
    // A bucket that does not fit after others were copied ends the batch
    // without an error.
    m.update(&k32(1000), &k32(0), 0).unwrap();
    let other = super::super::hashfn::hash(&k32(1000), 0) & 3;
    if other < bucket {
        let (r, c, b) = lookup(&m, false, None, 2, 0, 0);
        assert_eq!((r, c), (0, 1));
        assert_eq!(b.out, k32(bucket));
    }
    // Deleting batches empty the map.
    let (r, c, _) = lookup(&m, true, None, 8, 0, 0);
    assert_eq!((r, c), (errno::ENOENT, 3));
    assert_eq!(m.elements(), Some(0));
    let (r, c, _) = lookup(&m, false, None, 8, 0, 0);
    assert_eq!((r, c), (errno::ENOENT, 0));
}

#[test]
fn hash_update_and_delete_stop_at_a_failure() {
    let m = make(MapType::Hash, 4, 4, 3, 0);
    let keys: Vec<u8> = (0..5).flat_map(k32).collect();
    let values: Vec<u8> = (10..15).flat_map(k32).collect();
    let mut c = 5;
    // The fourth key does not fit: E2BIG after three.
    assert_eq!(
        m.update_batch(&keys, &values, &mut c, 0, 0)
            .unwrap_err()
            .code(),
        errno::E2BIG
    );
    assert_eq!(c, 3);
    let mut c = 5;
    assert_eq!(
        m.delete_batch(&keys, &mut c, 0, 0).unwrap_err().code(),
        errno::ENOENT
    );
    assert_eq!(c, 3);
    assert_eq!(m.elements(), Some(0));
}

#[test]
fn percpu_hash_values() {
    let m = make(MapType::PercpuHash, 4, 4, 8, 0);
    let mut user = vec![0u8; 16];
    user[..4].copy_from_slice(&k32(5));
    user[8..12].copy_from_slice(&k32(6));
    let mut c = 1;
    m.update_batch(&k32(1), &user, &mut c, 0, 0).unwrap();
    let (r, c, b) = lookup(&m, true, None, 4, 0, 0);
    assert_eq!((r, c), (errno::ENOENT, 1));
    assert_eq!(b.values[..16], user[..]);
    assert_eq!(m.elements(), Some(0));
}

#[test]
fn arrays_walk_keys() {
    let m = make(MapType::Array, 4, 4, 5, 0);
    assert_eq!(m.batch_token_size(), 4);
    let keys: Vec<u8> = (0..5).flat_map(k32).collect();
    let values: Vec<u8> = (10..15).flat_map(k32).collect();
    let mut c = 5;
    m.update_batch(&keys, &values, &mut c, 0, 0).unwrap();
    // Index 5 is out of range: E2BIG after none.
    let mut c = 2;
    let e = m.update_batch(&[k32(5), k32(0)].concat(), &[0; 8], &mut c, 0, 0);
    assert_eq!((e.unwrap_err().code(), c), (errno::E2BIG, 0));
    // Two at a time: the token is the last key copied.
    let (r, c, b) = lookup(&m, false, None, 2, 0, 0);
    assert_eq!((r, c, b.out.clone()), (0, 2, k32(1).to_vec()));
    assert_eq!(b.values, [k32(10), k32(11)].concat());
    let (r, c, b) = lookup(&m, false, Some(&k32(1)), 2, 0, 0);
    assert_eq!((r, c, b.out), (0, 2, k32(3).to_vec()));
    let (r, c, b) = lookup(&m, false, Some(&k32(3)), 2, 0, 0);
    assert_eq!((r, c, b.out.clone()), (errno::ENOENT, 1, k32(4).to_vec()));
    assert_eq!(b.values[..4], k32(14));
    // From the last key: nothing, the token untouched.
    let (r, c, b) = lookup(&m, false, Some(&k32(4)), 2, 0, 0);
    assert_eq!((r, c, b.out), (errno::ENOENT, 0, vec![0xee; 4]));
    // A token out of range starts over, as get_next_key does.
    let (r, c, _) = lookup(&m, false, Some(&k32(99)), 9, 0, 0);
    assert_eq!((r, c), (errno::ENOENT, 5));
}

#[test]
fn tries_walk_in_post_order() {
    let m = make(MapType::LpmTrie, 8, 4, 3, flags::BPF_F_NO_PREALLOC);
    let key = |ip: [u8; 4], plen: u32| [plen.to_ne_bytes(), ip].concat();
    let keys = [
        key([10, 0, 0, 0], 8),
        key([10, 1, 0, 0], 16),
        key([10, 2, 0, 0], 16),
        key([11, 0, 0, 0], 8),
    ]
    .concat();
    let values: Vec<u8> = (1..5).flat_map(k32).collect();
    let mut c = 4;
    // The fourth does not fit: ENOSPC after three.
    assert_eq!(
        m.update_batch(&keys, &values, &mut c, 0, 0)
            .unwrap_err()
            .code(),
        errno::ENOSPC
    );
    assert_eq!(c, 3);
    let (r, c, b) = lookup(&m, false, None, 8, 0, 0);
    assert_eq!((r, c), (errno::ENOENT, 3));
    assert_eq!(keys_of(&b, 8, 3), m.keys().unwrap());
    assert_eq!(b.out, key([10, 0, 0, 0], 8));
    assert_eq!(b.values[8..12], k32(1));
    let mut c = 3;
    let e = m.delete_batch(&keys[8..], &mut c, 0, 0).unwrap_err();
    assert_eq!((e.code(), c), (errno::ENOENT, 2));
    assert_eq!(m.elements(), Some(1));
}
