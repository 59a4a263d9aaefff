use super::*;
use crate::maps::flags::{BPF_F_NO_PREALLOC, BPF_F_RDONLY_PROG};
use crate::maps::{Map, MapOptions, MapType};
use bpfc_oracle::{self as oracle, KernelMap, MapCreate};
use std::sync::Arc;

const USER: u64 = BPF_F_USER_STACK;

fn opts() -> MapOptions {
    MapOptions {
        ncpus: 2,
        pin_dir: std::env::temp_dir().join("bpfc-test-pins"),
    }
}

fn make(value: u32, max: u32, flags: u32) -> Arc<Map> {
    let spec = MapSpec::new("st", MapType::StackTrace, 4, value, max, flags);
    Map::create_with(&spec, &opts()).unwrap()
}

fn k(i: u32) -> [u8; 4] {
    i.to_ne_bytes()
}

fn ips_of(v: &[u8]) -> Vec<u64> {
    v.chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
        .collect()
}

fn code(r: MapResult<()>) -> i32 {
    r.err().map_or(0, |e| e.code())
}

#[test]
fn definitions_match_the_kernel() {
    let build_id = BPF_F_STACK_BUILD_ID;
    let max = max_stack();
    let cases: &[(u32, u32, u32, u32)] = &[
        (4, 8, 4, 0),
        (4, 8 * max, 4, 0),
        (4, 8 * (max + 1), 4, 0),
        (4, 12, 4, 0),
        (4, 4, 4, 0),
        (4, 0, 4, 0),
        (8, 8, 4, 0),
        (4, 8, 0, 0),
        (4, 64, 4, build_id),
        (4, 48, 4, build_id),
        (4, 32 * (max + 1), 4, build_id),
        (4, 8, 4, BPF_F_RDONLY_PROG),
        (4, 8, 4, BPF_F_NO_PREALLOC),
        (4, 8, (1 << 31) + 1, 0),
    ];
    let kernel = oracle::available("definitions_match_the_kernel");
    for &(key, value, entries, flags) in cases {
        let spec = MapSpec::new("st", MapType::StackTrace, key, value, entries, flags);
        let ours = Map::create_with(&spec, &opts())
            .err()
            .map_or(0, |e| e.code());
        let bad_def = key != 4 || entries == 0 || value < 8 || !value.is_multiple_of(8);
        let bad_flags = flags & (BPF_F_RDONLY_PROG | BPF_F_NO_PREALLOC) != 0;
        let too_deep = if flags & build_id != 0 {
            !value.is_multiple_of(32) || value / 32 > max
        } else {
            value / 8 > max
        };
        let expect = if bad_def || bad_flags || too_deep {
            errno::EINVAL
        } else if entries > 1 << 31 {
            errno::E2BIG
        } else {
            0
        };
        assert_eq!(
            ours, expect,
            "key {key} value {value} entries {entries} flags {flags:#x}"
        );
        if kernel {
            let theirs = KernelMap::create(&MapCreate::new(7, key, value, entries).flags(flags))
                .err()
                .map_or(0, i32::from);
            assert_eq!(
                ours, theirs,
                "vs kernel: key {key} value {value} entries {entries} flags {flags:#x}"
            );
        }
    }
}

#[test]
fn user_space_ops_on_an_empty_map_match_the_kernel() {
    let m = make(32, 4, 0);
    let ours = [
        code(m.lookup(&k(0), &mut [0; 32])),
        code(m.lookup(&k(4), &mut [0; 32])),
        code(m.update(&k(0), &[0; 32], 0)),
        code(m.delete(&k(0))),
        code(m.delete(&k(4))),
        code(m.get_next_key(None, &mut [0; 4])),
        code(m.get_next_key(Some(&k(2)), &mut [0; 4])),
        code(m.lookup_and_delete(&k(0), &mut [0; 32], 0)),
    ];
    assert_eq!(
        ours,
        [
            errno::ENOENT,
            errno::ENOENT,
            errno::EINVAL,
            errno::ENOENT,
            errno::E2BIG,
            errno::ENOENT,
            errno::ENOENT,
            errno::ENOTSUPP
        ]
    );
    if !oracle::available("user_space_ops_on_an_empty_map_match_the_kernel") {
        return;
    }
    let km = KernelMap::create(&MapCreate::new(7, 4, 32, 4)).unwrap();
    let code = |r: Result<(), oracle::Errno>| r.err().map_or(0, i32::from);
    let theirs = [
        code(km.get(&k(0)).map(drop)),
        code(km.get(&k(4)).map(drop)),
        code(km.update(&k(0), &[0; 32], 0)),
        code(km.delete(&k(0))),
        code(km.delete(&k(4))),
        code(km.next_key(None).map(drop)),
        code(km.next_key(Some(&k(2))).map(drop)),
    ];
    assert_eq!(ours[..7], theirs);
}

#[test]
fn jhash2_known_values() {
    // lookup3's hashword() of the empty key is its initial value.
    assert_eq!(jhash2(&[], 0), 0xdead_beef);
    // Values fixed by the kernel's stack ids (checked in the next test).
    assert_ne!(jhash2(&[1], 0), jhash2(&[2], 0));
    assert_ne!(jhash2(&[1, 2, 3, 4], 0), jhash2(&[1, 2, 3, 5], 0));
}

/// The kernel's ids for its own stacks are `jhash2(ips) & (buckets - 1)`
/// computed here, and the same stack gets the same id in a bpfc map.
#[test]
fn ids_are_the_kernels() {
    if !oracle::available("ids_are_the_kernels") {
        return;
    }
    let entries = 1 << 16;
    let km = KernelMap::create(&MapCreate::new(7, 4, 8 * 32, entries)).unwrap();
    let ours = make(8 * 32, entries, 0);
    let sm = stack_map(&ours).unwrap();
    let mut checked = 0;
    for skip in 0..3 {
        // bpf_get_stackid (27) of the kernel stack, `skip` frames skipped.
        let prog = oracle::helper_call(27, km.fd(), skip, false).expect("load get_stackid program");
        let id = prog.run_once().unwrap();
        assert!(id >= 0, "kernel get_stackid: {id}");
        let v = km.get(&k(id as u32)).unwrap();
        let ips: Vec<u64> = ips_of(&v).into_iter().take_while(|&ip| ip != 0).collect();
        assert!(!ips.is_empty());
        assert_eq!(
            stack_hash(&ips) & (entries - 1),
            id as u32,
            "kernel stack {ips:x?} has id {id}"
        );
        assert_eq!(sm.get_stackid_ips(&ips, USER), id);
        checked += 1;
    }
    assert_eq!(checked, 3);
}

#[test]
fn stackid_stores_dedups_and_skips() {
    let m = make(32, 4, 0);
    let sm = stack_map(&m).unwrap();
    let a = [1u64, 2, 3, 4, 5];
    // Four entries fit: the id is the hash of the first four.
    let id = sm.get_stackid_ips(&a, USER);
    assert_eq!(id, (stack_hash(&a[..4]) & 3) as i64);
    let mut v = [0u8; 32];
    m.lookup(&k(id as u32), &mut v).unwrap();
    assert_eq!(ips_of(&v), [1, 2, 3, 4]);
    assert_eq!(sm.get_stackid_ips(&a, USER), id, "same stack, same id");
    // Skipping one frame: the next four.
    let id2 = sm.get_stackid_ips(&a, USER | 1);
    if id2 >= 0 {
        assert_eq!(id2, (stack_hash(&a[1..5]) & 3) as i64);
        m.lookup(&k(id2 as u32), &mut v).unwrap();
        assert_eq!(ips_of(&v), [2, 3, 4, 5]);
    } else {
        assert_eq!(id2, -(errno::EEXIST as i64), "only a collision may fail");
    }
    // A short stack is zero-filled.
    m.delete(&k(id as u32)).unwrap();
    let short = [9u64];
    let id3 = sm.get_stackid_ips(&short, USER);
    if id3 >= 0 {
        m.lookup(&k(id3 as u32), &mut v).unwrap();
        assert_eq!(ips_of(&v), [9, 0, 0, 0]);
    }
    assert!(m.elements().unwrap() >= 1);
}

#[test]
fn stackid_errors() {
    let m = make(32, 4, 0);
    let sm = stack_map(&m).unwrap();
    let e = |c: i32| -(c as i64);
    assert_eq!(sm.get_stackid_ips(&[1, 2], 1 << 12), e(errno::EINVAL));
    assert_eq!(
        sm.get_stackid_ips(&[1, 2], 0),
        e(errno::EFAULT),
        "kernel stack"
    );
    assert_eq!(sm.get_stackid_ips(&[], USER), e(errno::EFAULT));
    assert_eq!(sm.get_stackid_ips(&[1, 2], USER | 2), e(errno::EFAULT));
    assert_eq!(sm.get_stackid(0), e(errno::EFAULT));
    assert_eq!(
        sm.get_stackid(USER | 0xff),
        e(errno::EFAULT),
        "skips the whole stack"
    );
}

/// Two different stacks with the same id in a map of `buckets` buckets.
fn colliding(buckets: u32) -> ([u64; 2], [u64; 2]) {
    let first = [100u64, 200];
    let want = stack_hash(&first) & (buckets - 1);
    let second = (0u64..)
        .map(|i| [300 + i, 400])
        .find(|s| stack_hash(s) & (buckets - 1) == want)
        .unwrap();
    (first, second)
}

#[test]
fn collisions_fast_compare_and_reuse() {
    let m = make(16, 2, 0);
    let sm = stack_map(&m).unwrap();
    let (a, b) = colliding(2);
    let id = sm.get_stackid_ips(&a, USER);
    assert!(id >= 0);
    assert_eq!(sm.get_stackid_ips(&b, USER), -(errno::EEXIST as i64));
    assert_eq!(
        sm.get_stackid_ips(&b, USER | BPF_F_FAST_STACK_CMP),
        -(errno::EEXIST as i64),
        "different hash"
    );
    assert_eq!(sm.get_stackid_ips(&a, USER | BPF_F_FAST_STACK_CMP), id);
    assert_eq!(sm.get_stackid_ips(&b, USER | BPF_F_REUSE_STACKID), id);
    let mut v = [0u8; 16];
    m.lookup(&k(id as u32), &mut v).unwrap();
    assert_eq!(ips_of(&v), b);
    assert_eq!(sm.get_stackid_ips(&a, USER), -(errno::EEXIST as i64));
    // One preallocated stack: replacing needs a second, so it fails.
    let one = make(16, 1, 0);
    let s1 = stack_map(&one).unwrap();
    assert_eq!(s1.get_stackid_ips(&a, USER), 0);
    assert_eq!(
        s1.get_stackid_ips(&b, USER | BPF_F_REUSE_STACKID),
        -(errno::ENOMEM as i64)
    );
    assert_eq!(
        s1.get_stackid_ips(&a, USER | BPF_F_REUSE_STACKID),
        0,
        "same stack"
    );
}

#[test]
fn user_space_walk_lookup_delete() {
    let m = make(16, 8, 0);
    let sm = stack_map(&m).unwrap();
    let mut ids: Vec<u32> = Vec::new();
    for i in 0..40u64 {
        let id = sm.get_stackid_ips(&[i, i + 1], USER);
        if id >= 0 && !ids.contains(&(id as u32)) {
            ids.push(id as u32);
        }
    }
    ids.sort();
    assert!(ids.len() >= 2);
    let keys: Vec<u32> = m
        .keys()
        .unwrap()
        .iter()
        .map(|k| u32::from_ne_bytes(k[..4].try_into().unwrap()))
        .collect();
    assert_eq!(keys, ids, "get_next_key walks the ids in use in order");
    assert_eq!(m.elements(), Some(ids.len()));
    // From an id not in use or out of range, the walk restarts at the first.
    let mut next = [0u8; 4];
    let unused = (0..8).find(|i| !ids.contains(i));
    if let Some(u) = unused {
        m.get_next_key(Some(&k(u)), &mut next).unwrap();
        assert_eq!(u32::from_ne_bytes(next), ids[0]);
    }
    m.get_next_key(Some(&k(99)), &mut next).unwrap();
    assert_eq!(u32::from_ne_bytes(next), ids[0]);
    m.delete(&k(ids[0])).unwrap();
    assert_eq!(code(m.delete(&k(ids[0]))), errno::ENOENT);
    assert_eq!(code(m.lookup(&k(ids[0]), &mut [0; 16])), errno::ENOENT);
    assert_eq!(code(m.delete(&k(8))), errno::E2BIG);
}

#[test]
fn pinned_stacks_are_seen_by_another_opener() {
    let m = make(16, 4, 0);
    let id = stack_map(&m).unwrap().get_stackid_ips(&[7, 8], USER);
    assert!(id >= 0);
    let path = opts()
        .pin_dir
        .join(format!("st-pin-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    m.pin(&path).unwrap();
    let other = Map::open_pinned(&path, Some(m.spec())).unwrap();
    let mut v = [0u8; 16];
    other.lookup(&k(id as u32), &mut v).unwrap();
    assert_eq!(ips_of(&v), [7, 8]);
    // The opener stores into the same block.
    let id2 = stack_map(&other)
        .unwrap()
        .get_stackid_ips(&[1, 2], USER | BPF_F_REUSE_STACKID);
    m.lookup(&k(id2 as u32), &mut v).unwrap();
    assert_eq!(ips_of(&v), [1, 2]);
    m.unpin().unwrap();
}

/// The function an address (a return address) lies in.
fn function_of(ip: u64) -> String {
    let mut name = String::new();
    backtrace::resolve((ip - 1) as usize as *mut std::ffi::c_void, |s| {
        if name.is_empty() {
            name = s.name().map(|n| n.to_string()).unwrap_or_default();
        }
    });
    name
}

#[inline(never)]
fn runtime_like_helper(m: &Map, flags: u64) -> i64 {
    let r = stack_map(m).unwrap().get_stackid(flags);
    std::hint::black_box(r)
}

/// A host function starting a "run" in the three ways an engine can.
#[inline(never)]
fn host_caller(m: &Map, how: u8, flags: u64) -> i64 {
    let r = match how {
        0 => stack_map(m).unwrap().get_stackid(flags),
        1 => run_anchored(false, || runtime_like_helper(m, flags)),
        _ => run_anchored(true, || runtime_like_helper(m, flags)),
    };
    std::hint::black_box(r)
}

#[test]
fn captures_the_host_thread_stack() {
    let m = make(8 * 16, 64, 0);
    for how in 0..3u8 {
        let id = host_caller(&m, how, USER | BPF_F_REUSE_STACKID);
        assert!(id >= 0, "how {how}: {id}");
        let mut v = vec![0u8; 8 * 16];
        m.lookup(&k(id as u32), &mut v).unwrap();
        let ips = ips_of(&v);
        let top = function_of(ips[0]);
        assert!(top.contains("host_caller"), "how {how}: top frame is {top}");
        let next = function_of(ips[1]);
        assert!(
            next.contains("captures_the_host_thread_stack"),
            "how {how}: second frame is {next}"
        );
        // Skipping one frame starts at the test function.
        let id = host_caller(&m, how, USER | BPF_F_REUSE_STACKID | 1);
        m.lookup(&k(id as u32), &mut v).unwrap();
        let top = function_of(ips_of(&v)[0]);
        assert!(
            top.contains("captures_the_host_thread_stack"),
            "how {how}, skip 1: {top}"
        );
    }
}

#[inline(never)]
fn host_get_stack(buf: &mut [u8], flags: u64) -> i64 {
    std::hint::black_box(get_stack(buf, flags))
}

#[test]
fn get_stack_semantics() {
    let mut buf = [0xffu8; 32];
    let n = host_get_stack(&mut buf, USER);
    assert!(n > 0 && n % 8 == 0, "{n}");
    assert!(function_of(ips_of(&buf)[0]).contains("host_get_stack"));
    let e = |c: i32| -(c as i64);
    let mut buf = [0xffu8; 12];
    assert_eq!(get_stack(&mut buf, USER), e(errno::EINVAL));
    assert_eq!(buf, [0; 12], "cleared on error");
    let mut buf = [0xffu8; 16];
    assert_eq!(get_stack(&mut buf, 0), e(errno::EFAULT));
    assert_eq!(buf, [0; 16]);
    assert_eq!(
        get_stack(&mut buf, USER | BPF_F_FAST_STACK_CMP),
        e(errno::EINVAL)
    );
    assert_eq!(get_stack(&mut buf, BPF_F_USER_BUILD_ID), e(errno::EINVAL));
    assert_eq!(
        get_stack(&mut [0u8; 48], USER | BPF_F_USER_BUILD_ID),
        e(errno::EINVAL)
    );
    // Over a given stack.
    let ips = [1u64, 2, 3];
    let mut buf = [0xffu8; 32];
    assert_eq!(get_stack_ips(&ips, &mut buf, USER), 24);
    assert_eq!(ips_of(&buf), [1, 2, 3, 0]);
    assert_eq!(get_stack_ips(&ips, &mut buf, USER | 1), 16);
    assert_eq!(ips_of(&buf), [2, 3, 0, 0]);
    assert_eq!(get_stack_ips(&ips, &mut buf, USER | 3), 0);
    assert_eq!(ips_of(&buf), [0; 4]);
    assert_eq!(get_stack_ips(&ips, &mut buf, USER | 4), e(errno::EFAULT));
    let mut two = [0u8; 16];
    assert_eq!(get_stack_ips(&ips, &mut two, USER), 16);
    assert_eq!(ips_of(&two), [1, 2]);
    assert_eq!(get_stack_ips(&ips, &mut [], USER), 0);
}

#[test]
fn build_ids_locate_code_in_files() {
    let ip = host_caller as *const () as usize as u64;
    let e = build_id_entries(&[ip, 8]).into_iter().collect::<Vec<_>>();
    let status = |x: &[u8; 32]| i32::from_ne_bytes(x[..4].try_into().unwrap());
    let last = |x: &[u8; 32]| u64::from_ne_bytes(x[24..].try_into().unwrap());
    // An address in no object keeps the address.
    assert_eq!(status(&e[1]), BUILD_ID_STATUS_IP);
    assert_eq!(last(&e[1]), 8);
    assert_eq!(e[1][4..24], [0; 20]);
    if status(&e[0]) != BUILD_ID_STATUS_VALID {
        let why = "the test binary has no build id (linked without --build-id)";
        if std::env::var("BPFC_TEST_REQUIRE").as_deref() == Ok("all") {
            panic!("build_ids_locate_code_in_files: {why}");
        }
        println!("SKIP build_ids_locate_code_in_files: {why}");
        return;
    }
    // The build id is the executable's, and the offset locates the code.
    let exe = std::fs::read("/proc/self/exe").unwrap();
    assert!(
        exe.windows(20).any(|w| w == &e[0][4..24]),
        "build id not in the file"
    );
    let off = last(&e[0]) as usize;
    // SAFETY: 16 bytes of this function's code, mapped readable.
    let mem = unsafe { std::slice::from_raw_parts(ip as usize as *const u8, 16) };
    assert_eq!(&exe[off..off + 16], mem);

    // The map form: entries of the stack, the same id for the same stack.
    let m = make(32 * 8, 16, BPF_F_STACK_BUILD_ID);
    let ids: Vec<i64> = (0..2).map(|_| host_caller(&m, 0, USER)).collect();
    let id = ids[0];
    assert!(id >= 0, "{id}");
    assert_eq!(ids[1], id, "the same stack twice");
    let mut v = vec![0u8; 32 * 8];
    m.lookup(&k(id as u32), &mut v).unwrap();
    let first: [u8; 32] = v[..32].try_into().unwrap();
    assert_eq!(status(&first), BUILD_ID_STATUS_VALID);
    assert_eq!(first[4..24], e[0][4..24]);
    // bpf_get_stack with build ids.
    let mut buf = [0u8; 32 * 4];
    let n = get_stack(&mut buf, USER | BPF_F_USER_BUILD_ID);
    assert!(n >= 32 && n % 32 == 0, "{n}");
    assert_eq!(
        i32::from_ne_bytes(buf[..4].try_into().unwrap()),
        BUILD_ID_STATUS_VALID
    );
}
