use super::*;
use crate::maps::kernel_bpf::{self as k, Asm, Rng};
use crate::maps::ring::MAX_RECORD_SZ;
use crate::maps::shm::page_size;
use crate::maps::{MapOptions, MapType};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicU64;

fn opts() -> MapOptions {
    MapOptions {
        ncpus: 2,
        pin_dir: std::env::temp_dir().join("bpfc-test-pins"),
    }
}

fn ringbuf(size: usize) -> Arc<Map> {
    let spec = MapSpec::new("rb", MapType::Ringbuf, 0, 0, size as u32, 0);
    Map::create_with(&spec, &opts()).unwrap()
}

fn rb(m: &Map) -> &RingBuf {
    RingBuf::from_map(m).unwrap()
}

/// The data area as bytes, and the header words at `off`.
fn data(r: &RingBuf) -> Vec<u8> {
    let (base, len) = r.ring.data_range();
    // SAFETY: the first half of the data mappings; no producer runs.
    unsafe { std::slice::from_raw_parts(base as *const u8, len / 2) }.to_vec()
}

fn hdr(r: &RingBuf, off: usize) -> (u32, u32) {
    let d = data(r);
    let w = |o: usize| u32::from_ne_bytes(d[o..o + 4].try_into().unwrap());
    (w(off), w(off + 4))
}

/// Every record handed to a consumer, in order.
fn drain(c: &mut RingBufConsumer) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    c.consume(|s| {
        out.push(s.to_vec());
        ControlFlow::Continue(())
    });
    out
}

#[test]
fn bad_definitions() {
    let page = page_size() as u32;
    for (k, v, n, f) in [
        (4, 0, page, 0),
        (0, 8, page, 0),
        (0, 0, 0, 0),
        (0, 0, page * 3, 0),
        (0, 0, page / 2, 0),
        (0, 0, page, crate::maps::flags::BPF_F_RDONLY),
        (0, 0, page, crate::maps::flags::BPF_F_MMAPABLE),
    ] {
        for t in [MapType::Ringbuf, MapType::UserRingbuf] {
            let e = Map::create_with(&MapSpec::new("r", t, k, v, n, f), &opts()).unwrap_err();
            assert_eq!(e.code(), errno::EINVAL, "{t} {k} {v} {n} {f:#x}: {e}");
        }
    }
    let numa = MapSpec::new(
        "r",
        MapType::Ringbuf,
        0,
        0,
        page,
        crate::maps::flags::BPF_F_NUMA_NODE,
    );
    Map::create_with(&numa, &opts()).unwrap();
}

#[test]
fn user_space_ops_are_not_supported() {
    let m = ringbuf(page_size());
    let mut none = [0u8; 0];
    assert_eq!(
        m.lookup(&[], &mut none).unwrap_err().code(),
        errno::ENOTSUPP
    );
    assert_eq!(m.update(&[], &[], 0).unwrap_err().code(), errno::ENOTSUPP);
    assert_eq!(m.delete(&[]).unwrap_err().code(), errno::ENOTSUPP);
    assert_eq!(
        m.get_next_key(None, &mut none).unwrap_err().code(),
        errno::ENOTSUPP
    );
}

#[test]
fn records_have_the_kernel_layout() {
    let page = page_size();
    let m = ringbuf(page);
    let r = rb(&m);
    assert_eq!(r.query(BPF_RB_RING_SIZE), page as u64);
    r.output(b"hello", 0).unwrap();
    // len 5, page offset 3 (after the control, consumer and producer pages).
    assert_eq!(hdr(r, 0), (5, 3));
    assert_eq!(&data(r)[8..13], b"hello");
    assert_eq!(r.query(BPF_RB_PROD_POS), 16);
    assert_eq!(r.query(BPF_RB_AVAIL_DATA), 16);
    assert_eq!(r.query(BPF_RB_CONS_POS), 0);
    assert_eq!(r.query(99), 0);
    // Reserved: BUSY until submitted.
    let p = r.reserve(12, 0).unwrap();
    assert_eq!(p as usize, r.ring.data_range().0 + 24);
    assert_eq!(hdr(r, 16), (12 | BUSY_BIT, 3));
    let q = r.reserve(1, 0).unwrap();
    r.discard(q, 0).unwrap();
    assert_eq!(hdr(r, 40), (1 | DISCARD_BIT, 3));
    // The consumer stops at the busy record.
    let mut c = r.consumer();
    assert_eq!(drain(&mut c), [b"hello".to_vec()]);
    assert_eq!(r.query(BPF_RB_CONS_POS), 16);
    // SAFETY: 12 reserved bytes.
    unsafe { std::ptr::copy_nonoverlapping(b"twelve bytes".as_ptr(), p, 12) };
    r.submit(p, 0).unwrap();
    assert_eq!(hdr(r, 16), (12, 3));
    // The discarded record is skipped.
    assert_eq!(drain(&mut c), [b"twelve bytes".to_vec()]);
    assert_eq!(r.query(BPF_RB_CONS_POS), 56);
    assert_eq!(r.query(BPF_RB_AVAIL_DATA), 0);
    // Committing twice, or a pointer that is no reservation, is refused.
    assert_eq!(r.submit(p, 0).unwrap_err().code(), errno::EINVAL);
    assert_eq!(submit_sample(p, 0).unwrap_err().code(), errno::EINVAL);
    let mut local = [0u8; 8];
    assert_eq!(
        submit_sample(local.as_mut_ptr(), 0).unwrap_err().code(),
        errno::EINVAL
    );
    // Flags: reserve takes none, output only the wakeup flags.
    assert!(r.reserve(8, 1).is_none());
    assert_eq!(r.output(b"x", 4).unwrap_err().code(), errno::EINVAL);
    assert_eq!(r.reserve_dynptr(8, 1).unwrap_err().code(), errno::EINVAL);
    assert_eq!(
        r.reserve_dynptr(DYNPTR_MAX_SIZE + 1, 0).unwrap_err().code(),
        errno::E2BIG
    );
    let d = r.reserve_dynptr(3, 0).unwrap();
    discard_sample(d, 0).unwrap();
}

#[test]
fn full_ring_and_pending_records() {
    let page = page_size();
    let m = ringbuf(page);
    let r = rb(&m);
    // A record can never take the whole ring: one byte less at most.
    assert!(r.reserve(page as u64 - 8, 0).is_none());
    assert!(r.reserve(page as u64 + 1, 0).is_none());
    assert!(r.reserve(MAX_RECORD_SZ + 1, 0).is_none());
    let a = r.reserve(page as u64 / 2 - 8, 0).unwrap();
    // Room for this one ...
    let b = r.reserve(page as u64 / 4 - 8, 0).unwrap();
    // ... but not for one that would end a whole ring after `a`.
    assert!(r.reserve(page as u64 / 4, 0).is_none());
    assert_eq!(
        r.output(&vec![0; page / 4], 0).unwrap_err().code(),
        errno::EAGAIN
    );
    r.submit(b, 0).unwrap();
    // Still pending: `a` holds the space.
    assert!(r.reserve(page as u64 / 4, 0).is_none());
    r.discard(a, 0).unwrap();
    // The consumer has not moved: no room until it does.
    assert!(r.reserve(page as u64 / 4, 0).is_none());
    let mut c = r.consumer();
    assert_eq!(drain(&mut c).len(), 1);
    let big = r.reserve(page as u64 / 2, 0).unwrap();
    r.submit(big, 0).unwrap();
}

#[test]
fn wrapped_records_are_contiguous() {
    let page = page_size();
    let m = ringbuf(page);
    let r = rb(&m);
    let mut c = r.consumer();
    let mut expect = Vec::new();
    let mut got = Vec::new();
    for i in 0..200u32 {
        let len = 1 + (i as usize * 37) % 700;
        let rec: Vec<u8> = (0..len).map(|j| (i as usize + j) as u8).collect();
        if r.output(&rec, 0).is_err() {
            got.extend(drain(&mut c));
            r.output(&rec, 0).unwrap();
        }
        expect.push(rec);
    }
    got.extend(drain(&mut c));
    assert_eq!(got, expect);
    // Positions went round the ring several times.
    assert!(r.query(BPF_RB_CONS_POS) > 4 * page as u64);
    // A record that straddles the end reads through the second mapping.
    let end = r.query(BPF_RB_PROD_POS) & (page as u64 - 1);
    let pad = (page as u64 - end) as usize - 8 - 8;
    r.output(&vec![7; pad], 0).unwrap();
    r.output(
        &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17],
        0,
    )
    .unwrap();
    let got = drain(&mut c);
    assert_eq!(got[1], (1..=17).collect::<Vec<u8>>());
}

#[test]
fn wakeup_rules() {
    let m = ringbuf(page_size());
    let r = rb(&m);
    let n = || r.ring.notify().seq();
    let mut c = r.consumer();
    // The consumer has caught up with the record: wake.
    let s = n();
    r.output(b"a", 0).unwrap();
    assert_ne!(n(), s);
    // Not caught up (the first record is still unread): no wakeup.
    let s = n();
    r.output(b"b", 0).unwrap();
    assert_eq!(n(), s);
    // Forced.
    r.output(b"c", BPF_RB_FORCE_WAKEUP).unwrap();
    assert_ne!(n(), s);
    drain(&mut c);
    // Caught up, but told not to.
    let s = n();
    r.output(b"d", BPF_RB_NO_WAKEUP).unwrap();
    assert_eq!(n(), s);
    drain(&mut c);
    // A consumer sleeping in poll is woken by a producer thread.
    std::thread::scope(|sc| {
        let m2 = m.clone();
        let h = sc.spawn(move || {
            let mut c = RingBufConsumer::new(&m2).unwrap();
            let mut got = Vec::new();
            let t = Instant::now();
            let n = c.poll(Some(Duration::from_secs(20)), |s| {
                got.push(s.to_vec());
                ControlFlow::Continue(())
            });
            (n, got, t.elapsed())
        });
        std::thread::sleep(Duration::from_millis(100));
        r.output(b"wake", 0).unwrap();
        let (n, got, waited) = h.join().unwrap();
        assert_eq!((n, got), (1, vec![b"wake".to_vec()]));
        assert!(waited < Duration::from_secs(10));
    });
    // Nothing comes: poll returns after its timeout.
    let t = Instant::now();
    assert_eq!(
        c.poll(Some(Duration::from_millis(50)), |_| ControlFlow::Continue(
            ()
        )),
        0
    );
    assert!(t.elapsed() >= Duration::from_millis(50));
}

#[test]
fn consumer_stops_on_break() {
    let m = ringbuf(page_size());
    let r = rb(&m);
    for i in 0..5u8 {
        r.output(&[i], 0).unwrap();
    }
    let mut c = r.consumer();
    let mut seen = Vec::new();
    let n = c.consume(|s| {
        seen.push(s[0]);
        if s[0] == 2 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    assert_eq!((n, seen), (3, vec![0, 1, 2]));
    assert_eq!(drain(&mut c), [vec![3], vec![4]]);
}

/// Record `i` of producer `t`: its id, then bytes derived from both.
fn record(t: u32, i: u32) -> Vec<u8> {
    let len = 8 + ((t * 7 + i * 13) % 90) as usize;
    let mut v = Vec::with_capacity(len);
    v.extend(t.to_ne_bytes());
    v.extend(i.to_ne_bytes());
    v.extend((8..len).map(|j| (t as usize * 31 + i as usize + j) as u8));
    v
}

/// Records of `per` a producer delivers (every third is discarded).
fn delivered(per: u32) -> u32 {
    per - per / 3
}

/// Check a stream of records from `producers` producers of `per` records
/// each (every third one discarded): each producer's records arrive once,
/// in order, with their contents.
fn check_stream(got: &[Vec<u8>], producers: u32, per: u32) {
    let mut next = vec![0u32; producers as usize];
    for rec in got {
        let t = u32::from_ne_bytes(rec[..4].try_into().unwrap());
        let i = u32::from_ne_bytes(rec[4..8].try_into().unwrap());
        assert!(t < producers, "producer {t}");
        while next[t as usize] % 3 == 2 {
            next[t as usize] += 1;
        }
        assert_eq!(i, next[t as usize], "producer {t} out of order");
        assert_eq!(rec, &record(t, i));
        next[t as usize] += 1;
    }
    assert_eq!(got.len() as u32, delivered(per) * producers);
}

/// Produce `per` records as producer `t`: output, reserve + submit, and
/// every third record reserved and discarded; retry while the ring is full.
fn produce(r: &RingBuf, t: u32, per: u32) {
    for i in 0..per {
        let rec = record(t, i);
        loop {
            let ok = if i % 3 == 2 {
                r.reserve(rec.len() as u64, 0)
                    .map(|p| r.discard(p, 0).unwrap())
                    .is_some()
            } else if i % 2 == 0 {
                r.output(&rec, 0).is_ok()
            } else {
                r.reserve(rec.len() as u64, 0)
                    .map(|p| {
                        // SAFETY: `rec.len()` reserved bytes.
                        unsafe { std::ptr::copy_nonoverlapping(rec.as_ptr(), p, rec.len()) };
                        submit_sample(p, 0).unwrap();
                    })
                    .is_some()
            };
            if ok {
                break;
            }
            std::thread::yield_now();
        }
    }
}

#[test]
fn threads_produce_exact_records() {
    const PRODUCERS: u32 = 4;
    const PER: u32 = 20_000;
    let m = ringbuf(4 * page_size());
    let r = rb(&m);
    let mut got = Vec::new();
    std::thread::scope(|s| {
        for t in 0..PRODUCERS {
            s.spawn(move || produce(r, t, PER));
        }
        let want = delivered(PER) * PRODUCERS;
        let mut c = r.consumer();
        let t0 = Instant::now();
        while (got.len() as u32) < want {
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "stalled at {}",
                got.len()
            );
            c.poll(Some(Duration::from_millis(100)), |rec| {
                got.push(rec.to_vec());
                ControlFlow::Continue(())
            });
        }
    });
    check_stream(&got, PRODUCERS, PER);
    assert_eq!(r.query(BPF_RB_AVAIL_DATA), 0);
}

#[test]
fn dead_producer_thread_is_recovered() {
    let m = ringbuf(page_size());
    let r = rb(&m);
    r.output(b"before", 0).unwrap();
    // A thread reserves and exits without committing.
    std::thread::scope(|s| {
        s.spawn(|| {
            r.reserve(16, 0).unwrap();
        });
    });
    r.output(b"after", 0).unwrap();
    let mut c = r.consumer();
    assert_eq!(drain(&mut c), [b"before".to_vec()]);
    let mut got = Vec::new();
    let t = Instant::now();
    while got.is_empty() && t.elapsed() < Duration::from_secs(10) {
        c.poll(Some(Duration::from_millis(200)), |s| {
            got.push(s.to_vec());
            ControlFlow::Continue(())
        });
    }
    assert_eq!(got, [b"after".to_vec()]);
    // The abandoned record was turned into a discarded one.
    assert_eq!(hdr(r, 16), (16 | DISCARD_BIT, 3));
}

#[test]
fn a_run_cut_short_releases_its_reservations() {
    let m = ringbuf(page_size());
    let r = rb(&m);
    let other = ringbuf(page_size());
    let mut c = r.consumer();
    // Another thread's reservation is not this thread's to release.
    std::thread::scope(|s| {
        s.spawn(|| {
            let p = r.reserve(4, 0).unwrap();
            std::thread::sleep(Duration::from_millis(100));
            r.submit(p, 0).unwrap();
        });
        std::thread::sleep(Duration::from_millis(20));
        r.reserve(5, 0).unwrap();
        r.reserve(6, 0).unwrap();
        rb(&other).reserve(7, 0).unwrap();
        assert_eq!(discard_thread_reservations(), 3);
    });
    r.output(b"next", 0).unwrap();
    let got = drain(&mut c);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1], b"next");
    assert_eq!(rb(&other).query(BPF_RB_AVAIL_DATA), 16);
    assert_eq!(drain(&mut rb(&other).consumer()), Vec::<Vec<u8>>::new());
}

/// Pinned-map path for the cross-process tests.
fn pin_path(tag: &str) -> std::path::PathBuf {
    opts().pin_dir.join(format!(
        "rb-{tag}-{}-{:?}",
        std::process::id(),
        Instant::now()
    ))
}

fn spawn_child(mode: &str, path: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "maps::ringbuf::tests::child_process",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("BPFC_RB_CHILD", format!("{mode}:{}", path.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Wait for the child, at most `limit`; its stdout.
fn finish(mut child: std::process::Child, limit: Duration) -> String {
    let t = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut out = String::new();
            std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
            assert!(status.success(), "child failed: {status}\n{out}");
            return out;
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child process took longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

const CHILD_PRODUCERS: u32 = 2;
const CHILD_PER: u32 = 5_000;

/// The other process of the cross-process tests (run by them, not alone).
#[test]
#[ignore = "helper process of the cross-process ring buffer tests"]
fn child_process() {
    let Ok(arg) = std::env::var("BPFC_RB_CHILD") else {
        return;
    };
    let (mode, path) = arg.split_once(':').unwrap();
    let m = Map::open_pinned(Path::new(path), None).unwrap();
    let r = rb(&m);
    match mode {
        "consume" => {
            let want = delivered(CHILD_PER) * CHILD_PRODUCERS;
            let mut c = r.consumer();
            let mut got = Vec::new();
            let t = Instant::now();
            while (got.len() as u32) < want && t.elapsed() < Duration::from_secs(60) {
                c.poll(Some(Duration::from_secs(1)), |rec| {
                    got.push(rec.to_vec());
                    ControlFlow::Continue(())
                });
            }
            check_stream(&got, CHILD_PRODUCERS, CHILD_PER);
            println!("consumed {}", got.len());
        }
        "produce" => {
            std::thread::scope(|s| {
                for t in 0..CHILD_PRODUCERS {
                    s.spawn(move || produce(r, t, CHILD_PER));
                }
            });
            println!("produced");
        }
        "wait1" => {
            let mut c = r.consumer();
            let t = Instant::now();
            let mut got = Vec::new();
            let n = c.poll(Some(Duration::from_secs(60)), |rec| {
                got.push(rec.to_vec());
                ControlFlow::Continue(())
            });
            println!(
                "woken after {} ms with {n} {:?}",
                t.elapsed().as_millis(),
                got
            );
        }
        "abandon" => {
            r.output(b"first", 0).unwrap();
            r.reserve(24, 0).unwrap();
            println!("reserved");
            std::thread::sleep(Duration::from_secs(60));
        }
        _ => panic!("unknown mode {mode}"),
    }
}

#[test]
fn consumer_in_another_process() {
    let m = ringbuf(2 * page_size());
    let path = pin_path("consume");
    m.pin(&path).unwrap();
    let child = spawn_child("consume", &path);
    let r = rb(&m);
    std::thread::scope(|s| {
        for t in 0..CHILD_PRODUCERS {
            s.spawn(move || produce(r, t, CHILD_PER));
        }
    });
    let out = finish(child, Duration::from_secs(90));
    m.unpin().unwrap();
    let want = delivered(CHILD_PER) * CHILD_PRODUCERS;
    assert!(out.contains(&format!("consumed {want}")), "{out}");
}

#[test]
fn sleeping_consumer_in_another_process_is_woken() {
    let m = ringbuf(page_size());
    let path = pin_path("wait1");
    m.pin(&path).unwrap();
    let mut child = spawn_child("wait1", &path);
    // Wait until the child sleeps in poll (the sleeper count is in the
    // shared block), then produce.
    let notify = rb(&m).ring.notify();
    let t = Instant::now();
    while notify.sleepers() == 0 {
        if t.elapsed() > Duration::from_secs(60) || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("the child never went to sleep in poll");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    rb(&m).output(b"ping", 0).unwrap();
    let out = finish(child, Duration::from_secs(90));
    m.unpin().unwrap();
    let at = out.find("woken after").unwrap_or_else(|| panic!("{out}"));
    let line = out[at..].lines().next().unwrap();
    assert!(line.ends_with("with 1 [[112, 105, 110, 103]]"), "{line}");
    let ms: u64 = line.split(' ').nth(2).unwrap().parse().unwrap();
    // Woken by the output, long before the child's 60 s timeout.
    assert!(ms < 30_000, "{line}");
}

#[test]
fn producer_in_another_process() {
    let m = ringbuf(2 * page_size());
    let path = pin_path("produce");
    m.pin(&path).unwrap();
    let mut child = Some(spawn_child("produce", &path));
    let r = rb(&m);
    let want = delivered(CHILD_PER) * CHILD_PRODUCERS;
    let mut c = r.consumer();
    let mut got = Vec::new();
    let t = Instant::now();
    while (got.len() as u32) < want {
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "stalled at {}",
            got.len()
        );
        c.poll(Some(Duration::from_millis(200)), |rec| {
            got.push(rec.to_vec());
            ControlFlow::Continue(())
        });
        if let Some(ch) = child.as_mut() {
            if ch.try_wait().unwrap().is_some() {
                let out = finish(child.take().unwrap(), Duration::from_secs(1));
                assert!(out.contains("produced"), "{out}");
            }
        }
    }
    if let Some(ch) = child {
        finish(ch, Duration::from_secs(30));
    }
    m.unpin().unwrap();
    check_stream(&got, CHILD_PRODUCERS, CHILD_PER);
}

#[test]
fn killed_producer_process_is_recovered() {
    let m = ringbuf(page_size());
    let path = pin_path("abandon");
    m.pin(&path).unwrap();
    let mut child = spawn_child("abandon", &path);
    // Wait for "reserved".
    let mut line = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let t = Instant::now();
    while !line.contains("reserved") {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "child did not reserve"
        );
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    }
    child.kill().unwrap();
    child.wait().unwrap();
    m.unpin().unwrap();
    let r = rb(&m);
    r.output(b"mine", 0).unwrap();
    let mut c = r.consumer();
    let mut got = Vec::new();
    let t = Instant::now();
    while got.len() < 2 && t.elapsed() < Duration::from_secs(10) {
        c.poll(Some(Duration::from_millis(200)), |s| {
            got.push(s.to_vec());
            ControlFlow::Continue(())
        });
    }
    assert_eq!(got, [b"first".to_vec(), b"mine".to_vec()]);
}

#[test]
fn pinned_ring_reopens_with_its_definition() {
    let m = ringbuf(page_size());
    let path = pin_path("reopen");
    m.pin(&path).unwrap();
    let other = Map::open_pinned(&path, Some(m.spec())).unwrap();
    rb(&other).output(b"via the pin", 0).unwrap();
    let mut c = rb(&m).consumer();
    assert_eq!(drain(&mut c), [b"via the pin".to_vec()]);
    let mut wrong = m.spec().clone();
    wrong.max_entries *= 2;
    assert!(Map::open_pinned(&path, Some(&wrong)).is_err());
    m.unpin().unwrap();
}

// ---- the running kernel as the oracle ----

const RB_OUTPUT: i32 = 130;
const RB_RESERVE: i32 = 131;
const RB_SUBMIT: i32 = 132;
const RB_DISCARD: i32 = 133;
const RB_QUERY: i32 = 134;

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seed as usize * 131 + i * 7) as u8)
        .collect()
}

/// One operation, done by a program in the kernel and through our API.
#[derive(Debug, Clone, Copy)]
enum Op {
    Output {
        size: usize,
        flags: u64,
    },
    Commit {
        size: u64,
        discard: bool,
        flags: u64,
    },
    Two {
        a: u64,
        b: u64,
        discard_a: bool,
    },
    Query {
        flags: u64,
    },
    Consume {
        records: usize,
    },
}

fn kernel_prog(op: Op, seed: u64, map: &k::KernelMap) -> Vec<k::Insn> {
    let mut a = Asm::default();
    match op {
        Op::Output { size, flags } => {
            let top = size.next_multiple_of(8).max(8) as i16;
            a.stack_bytes(top, &pattern(seed, size));
            if size == 0 {
                a.stack_bytes(8, &[0; 8]);
            }
            a.ld_map(1, map)
                .mov(2, 10)
                .add_imm(2, -i32::from(top))
                .mov_imm(3, size as i32)
                .mov_imm(4, flags as i32)
                .call(RB_OUTPUT)
                .exit();
        }
        Op::Commit {
            size,
            discard,
            flags,
        } => {
            a.ld_map(1, map)
                .mov_imm(2, size as i32)
                .mov_imm(3, 0)
                .call(RB_RESERVE)
                .jeq_imm(0, 0, "out")
                .mov(6, 0)
                .write_bytes(6, 0, &pattern(seed, (size as usize).min(64)))
                .mov(1, 6)
                .mov_imm(2, flags as i32)
                .call(if discard { RB_DISCARD } else { RB_SUBMIT })
                .mov_imm(0, 1)
                .label("out")
                .exit();
        }
        Op::Two {
            a: sa,
            b: sb,
            discard_a,
        } => {
            a.ld_map(1, map)
                .mov_imm(2, sa as i32)
                .mov_imm(3, 0)
                .call(RB_RESERVE)
                .mov(6, 0)
                .ld_map(1, map)
                .mov_imm(2, sb as i32)
                .mov_imm(3, 0)
                .call(RB_RESERVE)
                .mov(7, 0)
                .mov_imm(8, 0)
                .jeq_imm(7, 0, "no_b")
                .write_bytes(7, 0, &pattern(seed + 1, (sb as usize).min(16)))
                .mov(1, 7)
                .mov_imm(2, 0)
                .call(RB_SUBMIT)
                .or_imm(8, 2)
                .label("no_b")
                .jeq_imm(6, 0, "no_a")
                .write_bytes(6, 0, &pattern(seed, (sa as usize).min(16)))
                .mov(1, 6)
                .mov_imm(2, 0)
                .call(if discard_a { RB_DISCARD } else { RB_SUBMIT })
                .or_imm(8, 1)
                .label("no_a")
                .mov(0, 8)
                .exit();
        }
        Op::Query { flags } => {
            a.ld_map(1, map)
                .mov_imm(2, flags as i32)
                .call(RB_QUERY)
                .exit();
        }
        Op::Consume { .. } => unreachable!(),
    }
    a.finish()
}

/// The same operation on our ring; the program's return value.
fn our_op(r: &RingBuf, op: Op, seed: u64) -> u32 {
    let ret = |res: MapResult<()>| res.map_or_else(|e| -e.code() as u32, |()| 0);
    let fill = |p: *mut u8, bytes: &[u8]| {
        // SAFETY: at least `bytes.len()` reserved bytes.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) }
    };
    match op {
        Op::Output { size, flags } => ret(r.output(&pattern(seed, size), flags)),
        Op::Commit {
            size,
            discard,
            flags,
        } => match r.reserve(size, 0) {
            None => 0,
            Some(p) => {
                fill(p, &pattern(seed, (size as usize).min(64)));
                if discard {
                    r.discard(p, flags).unwrap();
                } else {
                    r.submit(p, flags).unwrap();
                }
                1
            }
        },
        Op::Two { a, b, discard_a } => {
            let pa = r.reserve(a, 0);
            let pb = r.reserve(b, 0);
            let mut bits = 0;
            if let Some(p) = pb {
                fill(p, &pattern(seed + 1, (b as usize).min(16)));
                r.submit(p, 0).unwrap();
                bits |= 2;
            }
            if let Some(p) = pa {
                fill(p, &pattern(seed, (a as usize).min(16)));
                if discard_a {
                    r.discard(p, 0).unwrap();
                } else {
                    r.submit(p, 0).unwrap();
                }
                bits |= 1;
            }
            bits
        }
        Op::Query { flags } => r.query(flags) as u32,
        Op::Consume { .. } => unreachable!(),
    }
}

/// libbpf's consumer loop over the kernel ring's mappings, stopping after
/// `records` records.
fn kernel_consume(
    cons: &bpfc_oracle::perf::Mapping,
    prod: &bpfc_oracle::perf::Mapping,
    page: usize,
    mask: u64,
    records: usize,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut c = cons.u64_at(0);
    let p = prod.u64_at(0);
    while c < p && out.len() < records {
        let off = page + (c & mask) as usize;
        let len = u32::from_ne_bytes(prod.bytes(off, 4).try_into().unwrap());
        if len & BUSY_BIT != 0 {
            break;
        }
        let n = len & !(BUSY_BIT | DISCARD_BIT);
        if len & DISCARD_BIT == 0 {
            out.push(prod.bytes(off + 8, n as usize));
        }
        c += record_len(u64::from(n));
        cons.set_u64(0, c);
    }
    out
}

#[test]
fn matches_the_kernel() {
    if !k::kernel_or_skip("ringbuf::matches_the_kernel") {
        return;
    }
    let page = page_size();
    let size = 2 * page;
    let mask = size as u64 - 1;
    let kfd = k::map_create(MapType::Ringbuf as u32, 0, 0, size as u32, 0).unwrap();
    let kcons = k::mapping(&kfd, page, 0, true);
    let kprod = k::mapping(&kfd, page + 2 * size, page, false);
    let m = ringbuf(size);
    let r = rb(&m);
    let mut c = r.consumer();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut counts = [0usize; 5];
    for step in 0..400u64 {
        let op = match rng.below(12) {
            0..=3 => Op::Output {
                size: if rng.below(8) == 0 {
                    200 + rng.below(57)
                } else {
                    rng.below(100)
                } as usize,
                flags: [0, BPF_RB_NO_WAKEUP, BPF_RB_FORCE_WAKEUP, 4][rng.below(4) as usize],
            },
            4..=5 => Op::Commit {
                size: match rng.below(10) {
                    0 => page as u64 / 2 + rng.below(page as u64),
                    1 => size as u64 - 16 + rng.below(32),
                    _ => rng.below(300),
                },
                discard: rng.below(3) == 0,
                flags: [0, BPF_RB_NO_WAKEUP, BPF_RB_FORCE_WAKEUP][rng.below(3) as usize],
            },
            6 => Op::Two {
                a: rng.below(200),
                b: [rng.below(200), size as u64 - 200 - rng.below(900)][rng.below(2) as usize],
                discard_a: rng.below(2) == 0,
            },
            7 => Op::Query {
                flags: rng.below(5),
            },
            _ => Op::Consume {
                records: 1 + rng.below(6) as usize,
            },
        };
        let what = format!("step {step}: {op:?}");
        match op {
            Op::Consume { records } => {
                counts[4] += 1;
                let want = kernel_consume(&kcons, &kprod, page, mask, records);
                let mut got = Vec::new();
                c.consume(|s| {
                    got.push(s.to_vec());
                    if got.len() == records {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                });
                assert_eq!(got, want, "{what}");
            }
            _ => {
                let prog = k::prog_load(k::PROG_TYPE_SCHED_CLS, &kernel_prog(op, step, &kfd), None)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                let want = k::test_run(&prog);
                let got = our_op(r, op, step);
                assert_eq!(got, want, "{what}: return value");
                counts[match op {
                    Op::Output { .. } => 0,
                    Op::Commit { .. } => 1,
                    Op::Two { .. } => 2,
                    _ => 3,
                }] += 1;
            }
        }
        assert_eq!(
            (r.query(BPF_RB_CONS_POS), r.query(BPF_RB_PROD_POS)),
            (kcons.u64_at(0), kprod.u64_at(0)),
            "{what}: positions"
        );
        assert!(
            data(r) == kprod.bytes(page, size),
            "{what}: data area differs"
        );
    }
    // The sequence went round the ring and hit full rings.
    assert!(r.query(BPF_RB_PROD_POS) > 4 * size as u64);
    assert!(counts.iter().all(|&n| n > 10), "{counts:?}");
}

#[test]
fn kernel_refuses_what_we_refuse() {
    if !k::kernel_or_skip("ringbuf::kernel_refuses_what_we_refuse") {
        return;
    }
    let page = page_size() as u32;
    for t in [MapType::Ringbuf, MapType::UserRingbuf] {
        for (key, value, n, f) in [
            (0, 0, page, 0),
            (4, 0, page, 0),
            (0, 8, page, 0),
            (0, 0, 0, 0),
            (0, 0, page * 3, 0),
            (0, 0, page / 2, 0),
            (0, 0, page, crate::maps::flags::BPF_F_RDONLY),
            (0, 0, page, crate::maps::flags::BPF_F_WRONLY),
            (0, 0, page, crate::maps::flags::BPF_F_RDONLY_PROG),
            (0, 0, page, crate::maps::flags::BPF_F_MMAPABLE),
            (0, 0, page, crate::maps::flags::BPF_F_NO_PREALLOC),
            (0, 0, page, crate::maps::flags::BPF_F_NUMA_NODE),
        ] {
            let kernel = k::map_create(t as u32, key, value, n, f).map(|_| ());
            let ours = Map::create_with(&MapSpec::new("r", t, key, value, n, f), &opts())
                .map(|_| ())
                .map_err(|e| e.code());
            assert_eq!(
                ours, kernel,
                "{t} key {key} value {value} entries {n} flags {f:#x}"
            );
        }
        // User-space operations.
        let kfd = k::map_create(t as u32, 0, 0, page, 0).unwrap();
        let m = Map::create_with(&MapSpec::new("r", t, 0, 0, page, 0), &opts()).unwrap();
        let mut none = [0u8; 0];
        assert_eq!(
            m.lookup(&[], &mut []).map_err(|e| e.code()),
            k::lookup(&kfd, &[], &mut none),
            "{t} lookup"
        );
        assert_eq!(
            m.update(&[], &[], 0).map_err(|e| e.code()),
            k::update(&kfd, &[], &[], 0),
            "{t} update"
        );
        assert_eq!(
            m.delete(&[]).map_err(|e| e.code()),
            k::delete(&kfd, &[]),
            "{t} delete"
        );
        assert_eq!(
            m.get_next_key(None, &mut []).map_err(|e| e.code()),
            k::get_next_key(&kfd, None, &mut none),
            "{t} get_next_key"
        );
    }
}

#[test]
fn counts_are_exact_with_atomic_adds_in_records() {
    // Records reserved by many threads at once keep their own bytes.
    let m = ringbuf(8 * page_size());
    let r = rb(&m);
    let total = AtomicU64::new(0);
    let mut sum = 0u64;
    let mut count = 0u64;
    std::thread::scope(|s| {
        for t in 0..3u64 {
            let total = &total;
            s.spawn(move || {
                for i in 0..10_000u64 {
                    let v = t * 1_000_000 + i;
                    loop {
                        if let Some(p) = r.reserve(8, 0) {
                            // SAFETY: 8 reserved, 8-aligned bytes.
                            unsafe { (p as *mut u64).write(v) };
                            r.submit(p, 0).unwrap();
                            break;
                        }
                        std::thread::yield_now();
                    }
                    total.fetch_add(v, Ordering::Relaxed);
                }
            });
        }
        let mut c = r.consumer();
        let t0 = Instant::now();
        while count < 30_000 {
            assert!(t0.elapsed() < Duration::from_secs(60));
            c.poll(Some(Duration::from_millis(100)), |rec| {
                sum += u64::from_ne_bytes(rec.try_into().unwrap());
                count += 1;
                ControlFlow::Continue(())
            });
        }
    });
    assert_eq!(count, 30_000);
    assert_eq!(sum, total.load(Ordering::Relaxed));
}
