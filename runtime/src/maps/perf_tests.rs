use super::*;
use crate::maps::kernel_bpf::{self as k, Asm, Rng};
use crate::maps::{MapOptions, MapType};
use std::time::Instant;

fn opts() -> MapOptions {
    MapOptions {
        ncpus: 2,
        pin_dir: std::env::temp_dir().join("bpfc-test-pins"),
    }
}

fn perf_map(entries: u32) -> Arc<Map> {
    let spec = MapSpec::new("events", MapType::PerfEventArray, 4, 4, entries, 0);
    Map::create_with(&spec, &opts()).unwrap()
}

fn arr(m: &Map) -> &PerfEventArray {
    PerfEventArray::from_map(m).unwrap()
}

/// Samples by CPU and lost counts by CPU.
type Samples = Vec<(u32, Vec<u8>)>;
type Losts = Vec<(u32, u64)>;

/// Every sample and lost count a consume delivers.
fn read_all(pb: &mut PerfBuffer) -> (Samples, Losts) {
    let (mut s, mut l) = (Vec::new(), Vec::new());
    pb.consume(
        |cpu, d| s.push((cpu, d.to_vec())),
        |cpu, n| l.push((cpu, n)),
    );
    (s, l)
}

/// `data` as a sample shows it: padded so that 4 + len is a multiple of 8
/// (the padding of a sample written where nothing was before is zero).
fn padded(data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    v.resize((data.len() + 4).next_multiple_of(8) - 4, 0);
    v
}

/// The data of a sample without its padding.
fn unpadded(sample: &[u8], len: usize) -> Vec<u8> {
    assert_eq!(sample.len(), (len + 4).next_multiple_of(8) - 4);
    sample[..len].to_vec()
}

#[test]
fn definitions() {
    // max_entries 0: one slot per CPU slot, as libbpf makes it.
    let m = perf_map(0);
    assert_eq!(m.spec().max_entries, 2);
    for (kk, v, f) in [
        (8, 4, 0),
        (4, 8, 0),
        (4, 4, crate::maps::flags::BPF_F_RDONLY_PROG),
        (4, 4, crate::maps::flags::BPF_F_MMAPABLE),
    ] {
        let s = MapSpec::new("e", MapType::PerfEventArray, kk, v, 4, f);
        assert_eq!(
            Map::create_with(&s, &opts()).unwrap_err().code(),
            errno::EINVAL
        );
    }
    let s = MapSpec::new(
        "e",
        MapType::PerfEventArray,
        4,
        4,
        4,
        crate::maps::flags::BPF_F_PRESERVE_ELEMS,
    );
    let m = Map::create_with(&s, &opts()).unwrap();
    let e = m.pin(&opts().pin_dir.join("perf-never")).unwrap_err();
    assert!(e.to_string().contains("cannot be pinned"), "{e}");
}

#[test]
fn user_space_operations() {
    let m = perf_map(4);
    let pb = PerfBuffer::new(&m, 1).unwrap();
    let id = pb.events()[1].id();
    let key = |i: u32| i.to_ne_bytes();
    let mut v = [0u8; 4];
    assert_eq!(
        m.lookup(&key(0), &mut v).unwrap_err().code(),
        errno::ENOTSUPP
    );
    assert_eq!(
        m.update(&key(2), &id.to_ne_bytes(), 1).unwrap_err().code(),
        errno::EINVAL
    );
    assert_eq!(
        m.update(&key(4), &id.to_ne_bytes(), 0).unwrap_err().code(),
        errno::E2BIG
    );
    assert_eq!(
        m.update(&key(2), &u32::MAX.to_ne_bytes(), 0)
            .unwrap_err()
            .code(),
        errno::EBADF
    );
    m.update(&key(2), &id.to_ne_bytes(), 0).unwrap();
    m.delete(&key(2)).unwrap();
    assert_eq!(m.delete(&key(2)).unwrap_err().code(), errno::ENOENT);
    assert_eq!(m.delete(&key(4)).unwrap_err().code(), errno::E2BIG);
    assert_eq!(
        m.keys().unwrap(),
        (0..4u32)
            .map(|i| i.to_ne_bytes().to_vec())
            .collect::<Vec<_>>()
    );
}

#[test]
fn output_rules() {
    let m = perf_map(3);
    let a = arr(&m);
    // No reader yet: empty slots.
    assert_eq!(
        a.output(BPF_F_CURRENT_CPU, 0, b"x").unwrap_err().code(),
        errno::ENOENT
    );
    let mut pb = PerfBuffer::new(&m, 1).unwrap();
    // Two CPU slots: slots 0 and 1 hold their CPU's event, 2 stays empty.
    assert_eq!(pb.events().len(), 2);
    a.output(BPF_F_CURRENT_CPU, 1, b"cpu1").unwrap();
    a.output(0, 0, b"cpu0").unwrap();
    assert_eq!(a.output(1, 0, b"x").unwrap_err().code(), errno::EOPNOTSUPP);
    assert_eq!(a.output(2, 0, b"x").unwrap_err().code(), errno::ENOENT);
    assert_eq!(a.output(3, 0, b"x").unwrap_err().code(), errno::E2BIG);
    assert_eq!(
        a.output(1 << 32, 0, b"x").unwrap_err().code(),
        errno::EINVAL
    );
    // bpf_skb_output's context length bits are the caller's business.
    a.output_frags((8 << 32) | 1, 1, &[b"meta", b"ctx"])
        .unwrap();
    assert_eq!(
        a.output(0, 0, &vec![0; 70_000]).unwrap_err().code(),
        errno::E2BIG
    );
    let (s, l) = read_all(&mut pb);
    assert!(l.is_empty());
    assert_eq!(
        s,
        [
            (0, padded(b"cpu0")),
            (1, padded(b"cpu1")),
            (1, padded(b"metactx"))
        ]
    );
    // The reader going away empties its slots.
    drop(pb);
    assert_eq!(a.output(0, 0, b"x").unwrap_err().code(), errno::ENOENT);
    assert!(PerfBuffer::new(&m, 3).is_err());
    let not_perf =
        Map::create_with(&MapSpec::new("a", MapType::Array, 4, 4, 1, 0), &opts()).unwrap();
    assert!(PerfBuffer::new(&not_perf, 1).is_err());
}

#[test]
fn samples_wrap_and_lost_records_follow() {
    let m = perf_map(2);
    let a = arr(&m);
    let mut pb = PerfBuffer::new(&m, 1).unwrap();
    let page = page_size();
    let mut want = Vec::new();
    let mut got = Vec::new();
    // Go round the buffer several times with odd sizes.
    for i in 0..500usize {
        let d: Vec<u8> = (0..(i * 13) % 301).map(|j| (i + j) as u8).collect();
        if a.output(0, 0, &d).is_err() {
            got.extend(read_all(&mut pb).0);
            a.output(0, 0, &d).unwrap();
        }
        want.push((0, d));
    }
    got.extend(read_all(&mut pb).0);
    let got: Vec<_> = got
        .into_iter()
        .zip(&want)
        .map(|((cpu, s), (_, d))| (cpu, unpadded(&s, d.len())))
        .collect();
    assert_eq!(got, want);
    // Fill the buffer, count what is dropped.
    let rec = [9u8; 100];
    let mut fit = 0;
    while a.output(0, 0, &rec).is_ok() {
        fit += 1;
    }
    assert!(fit >= page / 112 - 1, "{fit}");
    for _ in 0..6 {
        assert_eq!(a.output(0, 0, &rec).unwrap_err().code(), errno::ENOSPC);
    }
    assert_eq!(pb.events()[0].lost(), 7);
    let (s, l) = read_all(&mut pb);
    assert_eq!((s.len(), l.len()), (fit, 0));
    // The next record that fits carries the count in front of it.
    a.output(0, 0, b"after").unwrap();
    let order = std::cell::RefCell::new(Vec::new());
    pb.consume(
        |_, d| order.borrow_mut().push(format!("sample {}", d.len())),
        |cpu, n| order.borrow_mut().push(format!("lost {n} on {cpu}")),
    );
    assert_eq!(order.into_inner(), ["lost 7 on 0", "sample 12"]);
    assert_eq!(pb.events()[0].lost(), 0);
}

#[test]
fn threads_count_exactly() {
    let m = perf_map(2);
    let a = arr(&m);
    let mut pb = PerfBuffer::new(&m, 2).unwrap();
    const PER: u32 = 20_000;
    let mut samples = [[0u32; 4]; 2];
    let mut lost = [0u64; 2];
    let mut failed = [0u64; 2];
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..4u32)
            .map(|t| {
                s.spawn(move || {
                    // Two threads on each CPU slot.
                    let cpu = t % 2;
                    let mut dropped = 0u64;
                    for i in 0..PER {
                        let mut d = t.to_ne_bytes().to_vec();
                        d.extend(i.to_ne_bytes());
                        if a.output(BPF_F_CURRENT_CPU, cpu, &d).is_err() {
                            dropped += 1;
                        }
                    }
                    (cpu, dropped)
                })
            })
            .collect();
        let t0 = Instant::now();
        while hs.iter().any(|h| !h.is_finished()) {
            assert!(t0.elapsed() < Duration::from_secs(60));
            pb.poll(
                Some(Duration::from_millis(10)),
                |cpu, d| {
                    let t = u32::from_ne_bytes(d[..4].try_into().unwrap());
                    assert_eq!(t % 2, cpu);
                    samples[cpu as usize][t as usize] += 1;
                },
                |cpu, n| lost[cpu as usize] += n,
            );
        }
        for h in hs {
            let (cpu, dropped) = h.join().unwrap();
            failed[cpu as usize] += dropped;
        }
    });
    pb.consume(
        |cpu, d| {
            samples[cpu as usize][u32::from_ne_bytes(d[..4].try_into().unwrap()) as usize] += 1
        },
        |cpu, n| lost[cpu as usize] += n,
    );
    // Lost counts still pending (no record came after them).
    for (cpu, ev) in pb.events().iter().enumerate() {
        lost[cpu] += ev.lost();
    }
    for cpu in 0..2 {
        let delivered: u32 = samples[cpu].iter().sum();
        assert_eq!(
            u64::from(delivered) + lost[cpu],
            2 * u64::from(PER),
            "cpu {cpu}"
        );
        assert_eq!(lost[cpu], failed[cpu], "cpu {cpu}");
    }
}

#[test]
fn poll_is_woken_by_output() {
    let m = perf_map(2);
    let a = arr(&m);
    let mut pb = PerfBuffer::new(&m, 1).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(100));
            a.output(1, 1, b"late").unwrap();
        });
        let t = Instant::now();
        let mut got = Vec::new();
        let n = pb.poll(
            Some(Duration::from_secs(20)),
            |cpu, d| got.push((cpu, d.to_vec())),
            |_, _| {},
        );
        assert_eq!((n, got), (1, vec![(1, padded(b"late"))]));
        assert!(t.elapsed() < Duration::from_secs(10));
    });
    let t = Instant::now();
    assert_eq!(
        pb.poll(Some(Duration::from_millis(50)), |_, _| {}, |_, _| {}),
        0
    );
    assert!(t.elapsed() >= Duration::from_millis(50));
}

// ---- the running kernel as the oracle ----

const PERF_EVENT_OUTPUT: i32 = 25;

/// Whole records from `tail` up to `head` (at most `n`), moving the tail;
/// LOST records' event ids are zeroed (the kernel's and ours differ).
fn records(
    head: u64,
    tail: &mut u64,
    size: usize,
    n: usize,
    get: impl Fn(u64, &mut [u8]),
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while *tail != head && out.len() < n {
        let mut h = [0u8; 8];
        get(*tail, &mut h);
        let len = u16::from_ne_bytes([h[6], h[7]]) as usize;
        assert!(len >= 8 && len <= size, "record size {len}");
        let mut r = vec![0u8; len];
        get(*tail, &mut r);
        if u32::from_ne_bytes(r[..4].try_into().unwrap()) == PERF_RECORD_LOST {
            r[8..16].fill(0);
        }
        *tail += len as u64;
        out.push(r);
    }
    out
}

fn output_prog(map: &k::KernelMap, flags: u64, data: &[u8]) -> Vec<k::Insn> {
    let top = data.len().next_multiple_of(8).max(8) as i16;
    let mut a = Asm::default();
    a.mov(6, 1).stack_bytes(top, data);
    if data.is_empty() {
        a.stack_bytes(8, &[0; 8]);
    }
    a.mov(1, 6)
        .ld_map(2, map)
        .ld64(3, flags)
        .mov(4, 10)
        .add_imm(4, -i32::from(top))
        .mov_imm(5, data.len() as i32)
        .call(PERF_EVENT_OUTPUT)
        .exit();
    a.finish()
}

#[test]
fn matches_the_kernel() {
    if !k::kernel_or_skip("perf::matches_the_kernel") {
        return;
    }
    let page = page_size();
    let pages = 1;
    let size = pages * page;
    // Run everything on CPU 0 (a thread of our own, pinned there).
    std::thread::scope(|s| {
        s.spawn(|| {
            if !k::pin_to_cpu(0) {
                k::skip(
                    "perf::matches_the_kernel",
                    "this process may not run on CPU 0",
                );
                return;
            }
            let kmap = k::map_create(MapType::PerfEventArray as u32, 4, 4, 2, 0).unwrap();
            let ev0 = k::perf_event_open_bpf_output(0).unwrap();
            let kbuf = k::mapping(&ev0, (1 + pages) * page, 0, true);
            k::update(
                &kmap,
                &0u32.to_ne_bytes(),
                &(std::os::fd::AsRawFd::as_raw_fd(&ev0) as u32).to_ne_bytes(),
                0,
            )
            .unwrap();
            let m = perf_map(2);
            let a = arr(&m);
            let pb = PerfBuffer::new(&m, pages).unwrap();
            let ours = pb.events()[0].clone();
            let run = |flags: u64, data: &[u8]| {
                let prog = k::prog_load(
                    k::PROG_TYPE_SCHED_CLS,
                    &output_prog(&kmap, flags, data),
                    None,
                )
                .unwrap_or_else(|e| panic!("{e}"));
                let want = k::test_run(&prog);
                let got = a
                    .output(flags, 0, data)
                    .map_or_else(|e| -e.code() as u32, |()| 0);
                (got, want)
            };
            let mut rng = Rng(0x5851_f42d_4c95_7f2d);
            let mut lost_seen = 0;
            let mut ktail = 0u64;
            let mut otail = 0u64;
            for step in 0..500u64 {
                let what = format!("step {step}");
                if rng.below(8) == 0 {
                    let n = 1 + rng.below(8) as usize;
                    let khead = kbuf.u64_at(1024);
                    let want = records(khead, &mut ktail, size, n, |pos, out| {
                        let off = (pos as usize) & (size - 1);
                        let first = out.len().min(size - off);
                        out[..first].copy_from_slice(&kbuf.bytes(page + off, first));
                        let rest = out.len() - first;
                        out[first..].copy_from_slice(&kbuf.bytes(page, rest));
                    });
                    kbuf.set_u64(1032, ktail);
                    let ohead = ours.head.load(Ordering::Acquire);
                    let got = records(ohead, &mut otail, size, n, |pos, out| ours.get(pos, out));
                    ours.tail.store(otail, Ordering::Release);
                    lost_seen += got
                        .iter()
                        .filter(|r| r[0] == PERF_RECORD_LOST as u8)
                        .count();
                    assert_eq!(got, want, "{what}: records");
                } else {
                    let len = if rng.below(5) == 0 {
                        200 + rng.below(100)
                    } else {
                        rng.below(64)
                    };
                    let data: Vec<u8> = (0..len).map(|i| (step * 7 + i) as u8).collect();
                    let flags = [0, BPF_F_CURRENT_CPU][rng.below(2) as usize];
                    let (got, want) = run(flags, &data);
                    assert_eq!(got, want, "{what}: output of {len} bytes");
                }
                assert_eq!(
                    ours.head.load(Ordering::Acquire),
                    kbuf.u64_at(1024),
                    "{what}: data_head"
                );
            }
            assert!(lost_seen > 0, "the sequence never lost a record");
            assert!(kbuf.u64_at(1024) > 4 * size as u64);
            // Errors: an index past the end, an empty slot, another CPU's
            // event, flags outside the index.
            let (got, want) = run(2, b"x");
            assert_eq!((got, want), (-errno::E2BIG as u32, -errno::E2BIG as u32));
            k::delete(&kmap, &1u32.to_ne_bytes()).unwrap_err();
            m.delete(&1u32.to_ne_bytes()).unwrap();
            let (got, want) = run(1, b"x");
            assert_eq!((got, want), (-errno::ENOENT as u32, -errno::ENOENT as u32));
            let ev1 = k::perf_event_open_bpf_output(1);
            if ev1.is_err() {
                k::skip(
                    "perf::matches_the_kernel",
                    "no CPU 1 for the EOPNOTSUPP case",
                );
            }
            if let Ok(ev1) = ev1 {
                let _kbuf1 = k::mapping(&ev1, 2 * page, 0, true);
                k::update(
                    &kmap,
                    &1u32.to_ne_bytes(),
                    &(std::os::fd::AsRawFd::as_raw_fd(&ev1) as u32).to_ne_bytes(),
                    0,
                )
                .unwrap();
                m.update(&1u32.to_ne_bytes(), &pb.events()[1].id().to_ne_bytes(), 0)
                    .unwrap();
                let (got, want) = run(1, b"x");
                assert_eq!(
                    (got, want),
                    (-errno::EOPNOTSUPP as u32, -errno::EOPNOTSUPP as u32)
                );
            }
            let (got, want) = run(1 << 60, b"x");
            assert_eq!((got, want), (-errno::EINVAL as u32, -errno::EINVAL as u32));
        });
    });
}

#[test]
fn kernel_refuses_what_we_refuse() {
    if !k::kernel_or_skip("perf::kernel_refuses_what_we_refuse") {
        return;
    }
    use crate::maps::flags::*;
    for (kk, v, n, f) in [
        (4, 4, 4, 0),
        (8, 4, 4, 0),
        (4, 8, 4, 0),
        (4, 4, 4, BPF_F_RDONLY_PROG),
        (4, 4, 4, BPF_F_WRONLY_PROG),
        (4, 4, 4, BPF_F_RDONLY),
        (4, 4, 4, BPF_F_MMAPABLE),
        (4, 4, 4, BPF_F_PRESERVE_ELEMS),
        (4, 4, 4, BPF_F_NO_PREALLOC),
    ] {
        let kernel = k::map_create(MapType::PerfEventArray as u32, kk, v, n, f).map(|_| ());
        let ours = Map::create_with(
            &MapSpec::new("e", MapType::PerfEventArray, kk, v, n, f),
            &opts(),
        )
        .map(|_| ())
        .map_err(|e| e.code());
        assert_eq!(ours, kernel, "key {kk} value {v} entries {n} flags {f:#x}");
    }
    // The kernel refuses max_entries 0; libbpf (and this runtime) make it
    // the number of CPUs first.
    assert_eq!(
        k::map_create(MapType::PerfEventArray as u32, 4, 4, 0, 0).map(|_| ()),
        Err(errno::EINVAL)
    );
    // User-space operations with an event in slot 0.
    let kfd = k::map_create(MapType::PerfEventArray as u32, 4, 4, 4, 0).unwrap();
    let ev = k::perf_event_open_bpf_output(0).unwrap();
    let evfd = (std::os::fd::AsRawFd::as_raw_fd(&ev) as u32).to_ne_bytes();
    let m = perf_map(4);
    let pb = PerfBuffer::new(&m, 1).unwrap();
    let id = pb.events()[0].id().to_ne_bytes();
    let key = |i: u32| i.to_ne_bytes();
    for (what, flags, index) in [
        ("update", 0, 0),
        ("update", 0, 3),
        ("update", 1, 0),
        ("update", 2, 0),
        ("update", 0, 4),
    ] {
        assert_eq!(
            m.update(&key(index), &id, flags).map_err(|e| e.code()),
            k::update(&kfd, &key(index), &evfd, flags),
            "{what} {index} flags {flags}"
        );
    }
    let not_an_event = u32::MAX.to_ne_bytes();
    assert_eq!(
        m.update(&key(1), &not_an_event, 0).map_err(|e| e.code()),
        k::update(&kfd, &key(1), &not_an_event, 0)
    );
    let mut v = [0u8; 4];
    let mut kv = [0u8; 4];
    for i in [0, 1, 9] {
        assert_eq!(
            m.lookup(&key(i), &mut v).map_err(|e| e.code()),
            k::lookup(&kfd, &key(i), &mut kv),
            "lookup {i}"
        );
    }
    for i in [3, 3, 2, 4, 0] {
        assert_eq!(
            m.delete(&key(i)).map_err(|e| e.code()),
            k::delete(&kfd, &key(i)),
            "delete {i}"
        );
    }
    for start in [None, Some(0u32), Some(2), Some(3), Some(7)] {
        let (mut a, mut b) = ([0u8; 4], [0u8; 4]);
        let sk = start.map(key);
        assert_eq!(
            m.get_next_key(sk.as_ref().map(|k| &k[..]), &mut a)
                .map_err(|e| e.code()),
            k::get_next_key(&kfd, sk.as_ref().map(|k| &k[..]), &mut b),
            "get_next_key {start:?}"
        );
        assert_eq!(a, b);
    }
}
