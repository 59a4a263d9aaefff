use super::*;
use crate::maps::kernel_bpf::{self as k, Asm, Rng};
use crate::maps::shm::page_size;
use crate::maps::{MapOptions, MapType};
use std::sync::Arc;
use std::time::Instant;

fn opts() -> MapOptions {
    MapOptions {
        ncpus: 2,
        pin_dir: std::env::temp_dir().join("bpfc-test-pins"),
    }
}

fn user_ringbuf(size: usize) -> Arc<Map> {
    let spec = MapSpec::new("urb", MapType::UserRingbuf, 0, 0, size as u32, 0);
    Map::create_with(&spec, &opts()).unwrap()
}

fn urb(m: &Map) -> &UserRingBuf {
    UserRingBuf::from_map(m).unwrap()
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seed as usize * 97 + i * 5 + 1) as u8)
        .collect()
}

fn put(urb: &UserRingBuf, bytes: &[u8]) {
    let mut s = urb.reserve(bytes.len() as u32).unwrap();
    s.as_mut_slice().copy_from_slice(bytes);
    s.submit();
}

/// Drain with `flags`, collecting samples; the callback returns `stop`
/// for the sample numbered `stop_at` (1-based), 0 otherwise.
fn collect(urb: &UserRingBuf, flags: u64, stop_at: usize) -> (i64, Vec<Vec<u8>>) {
    let mut got = Vec::new();
    let r = urb.drain(flags, |s| {
        got.push(s.to_vec());
        i64::from(got.len() == stop_at)
    });
    (r, got)
}

#[test]
fn produce_and_drain() {
    let m = user_ringbuf(page_size());
    let u = urb(&m);
    let mut none = [0u8; 0];
    assert_eq!(
        m.lookup(&[], &mut none).unwrap_err().code(),
        errno::ENOTSUPP
    );
    put(u, b"one");
    put(u, b"");
    let d = u.reserve(5).unwrap();
    d.discard();
    put(u, b"three!!!!");
    // Header: length, then a zero word; the producer position moved.
    let ring = &u.ring;
    assert_eq!(ring.hdr_len(0).load(Ordering::Relaxed), 3);
    assert_eq!(
        ring.producer_pos().load(Ordering::Relaxed),
        16 + 8 + 16 + 24
    );
    let (r, got) = collect(u, 0, 0);
    // The discarded sample is skipped and not counted.
    assert_eq!(r, 3);
    assert_eq!(got, [b"one".to_vec(), vec![], b"three!!!!".to_vec()]);
    assert_eq!(u.avail(), 0);
    assert_eq!(collect(u, 0, 0), (0, vec![]));
    // A callback returning 1 stops the drain after that sample.
    for i in 0..5u8 {
        put(u, &[i]);
    }
    assert_eq!(collect(u, 0, 2), (2, vec![vec![0], vec![1]]));
    assert_eq!(collect(u, 0, 0).0, 3);
    // Bad flags.
    assert_eq!(collect(u, 4, 0).0, -i64::from(errno::EINVAL));
    // A sample still being written ends the drain.
    let busy = u.reserve(4).unwrap();
    put(u, b"late");
    assert_eq!(collect(u, 0, 0), (0, vec![]));
    busy.submit();
    assert_eq!(collect(u, 0, 0).0, 2);
    // Dropping a reserved sample discards it.
    drop(u.reserve(7).unwrap());
    assert_eq!(collect(u, 0, 0), (0, vec![]));
    assert_eq!(u.avail(), 0);
}

#[test]
fn reserve_limits() {
    let page = page_size();
    let m = user_ringbuf(page);
    let u = urb(&m);
    assert_eq!(u.reserve(BUSY_BIT).err().unwrap().code(), errno::E2BIG);
    assert_eq!(
        u.reserve(DISCARD_BIT | 1).err().unwrap().code(),
        errno::E2BIG
    );
    assert_eq!(
        u.reserve(page as u32 - 7).err().unwrap().code(),
        errno::E2BIG
    );
    // Unlike the kernel's producers, user space may fill the whole ring.
    let all = u.reserve(page as u32 - 8).unwrap();
    assert_eq!(u.reserve(0).err().unwrap().code(), errno::ENOSPC);
    all.submit();
    assert_eq!(collect(u, 0, 0).0, 1);
    assert!(u.reserve(0).is_ok());
}

#[test]
fn drain_inside_drain_is_busy() {
    let m = user_ringbuf(page_size());
    let u = urb(&m);
    put(u, b"x");
    let mut inner = 0;
    assert_eq!(
        u.drain(0, |_| {
            inner = u.drain(0, |_| 0);
            0
        }),
        1
    );
    assert_eq!(inner, -i64::from(errno::EBUSY));
    // Another thread draining meanwhile is refused too.
    put(u, b"y");
    std::thread::scope(|s| {
        u.drain(0, |_| {
            let other = s.spawn(|| u.drain(0, |_| 0)).join().unwrap();
            assert_eq!(other, -i64::from(errno::EBUSY));
            0
        });
    });
}

#[test]
fn a_dead_drainer_is_taken_over() {
    let m = user_ringbuf(page_size());
    let u = urb(&m);
    // A thread that died while draining left its id in the busy word.
    let tid = std::thread::spawn(crate::maps::lock::current_tid)
        .join()
        .unwrap();
    u.ring.busy().store(tid, Ordering::Relaxed);
    put(u, b"z");
    assert_eq!(collect(u, 0, 0).0, 1);
    assert_eq!(u.ring.busy().load(Ordering::Relaxed), 0);
}

#[test]
fn a_dead_producer_is_skipped() {
    let m = user_ringbuf(page_size());
    let u = urb(&m);
    put(u, b"before");
    // A producer thread dies between reserve and submit.
    std::thread::scope(|s| {
        s.spawn(|| std::mem::forget(u.reserve(16).unwrap()));
    });
    put(u, b"after");
    assert_eq!(collect(u, 0, 0), (1, vec![b"before".to_vec()]));
    // Drains stop at the abandoned sample until it has blocked them for a
    // while, then skip it.
    let t = Instant::now();
    let mut got = Vec::new();
    while got.is_empty() {
        assert!(t.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
        got = collect(u, 0, 0).1;
    }
    assert!(t.elapsed() >= crate::maps::ring::STUCK_CHECK_AFTER);
    assert_eq!(got, [b"after".to_vec()]);
    // A live producer's sample is never skipped.
    let held = u.reserve(3).unwrap();
    put(u, b"x");
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(collect(u, 0, 0), (0, vec![]));
    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(collect(u, 0, 0), (0, vec![]));
    held.submit();
    assert_eq!(collect(u, 0, 0).0, 2);
}

#[test]
fn at_most_max_samples_per_drain() {
    let m = user_ringbuf(2 << 20);
    let u = urb(&m);
    for _ in 0..MAX_SAMPLES + 10 {
        u.reserve(0).unwrap().submit();
    }
    assert_eq!(collect(u, 0, 0).0, MAX_SAMPLES);
    assert_eq!(collect(u, 0, 0).0, 10);
}

#[test]
fn broken_producers_are_reported() {
    let page = page_size();
    let m = user_ringbuf(page);
    let u = urb(&m);
    let ring = &u.ring;
    put(u, b"ok");
    // A producer position that is not 8-aligned.
    ring.producer_pos().fetch_add(4, Ordering::Relaxed);
    assert_eq!(collect(u, 0, 0).0, -i64::from(errno::EINVAL));
    ring.producer_pos().fetch_sub(4, Ordering::Relaxed);
    // A length running past the producer position.
    ring.hdr_len(0).store(40, Ordering::Relaxed);
    assert_eq!(collect(u, 0, 0).0, -i64::from(errno::EINVAL));
    // A length larger than the ring, the positions claiming that much.
    ring.hdr_len(0).store(page as u32 + 8, Ordering::Relaxed);
    ring.producer_pos()
        .store(4 * page as u64, Ordering::Relaxed);
    assert_eq!(collect(u, 0, 0).0, -i64::from(errno::E2BIG));
}

#[test]
fn blocked_producer_is_woken_by_a_drain() {
    let page = page_size();
    let m = user_ringbuf(page);
    let u = urb(&m);
    u.reserve(page as u32 / 2).unwrap().submit();
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let t = Instant::now();
            let r = u.reserve_blocking(page as u32 / 2, Some(Duration::from_secs(20)));
            (r.map(UserSample::submit).map_err(|e| e.code()), t.elapsed())
        });
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(collect(u, 0, 0).0, 1);
        let (r, waited) = h.join().unwrap();
        assert_eq!(r, Ok(()));
        assert!(waited < Duration::from_secs(10));
    });
    // A full ring and no drain: the timeout, then ENOSPC.
    let t = Instant::now();
    let r = u.reserve_blocking(page as u32 / 2, Some(Duration::from_millis(50)));
    assert_eq!(r.err().unwrap().code(), errno::ENOSPC);
    assert!(t.elapsed() >= Duration::from_millis(50));
    // Drain with BPF_RB_NO_WAKEUP does not wake; FORCE wakes with nothing.
    let seq = u.ring.notify().seq();
    assert_eq!(collect(u, BPF_RB_NO_WAKEUP, 0).0, 1);
    assert_eq!(u.ring.notify().seq(), seq);
    assert_eq!(collect(u, BPF_RB_FORCE_WAKEUP, 0).0, 0);
    assert_ne!(u.ring.notify().seq(), seq);
}

#[test]
fn threads_produce_and_one_drains() {
    let m = user_ringbuf(4 * page_size());
    let u = urb(&m);
    const PER: u32 = 10_000;
    let mut seen = [0u32; 3];
    std::thread::scope(|s| {
        for t in 0..3u32 {
            s.spawn(move || {
                for i in 0..PER {
                    let mut v = t.to_ne_bytes().to_vec();
                    v.extend(i.to_ne_bytes());
                    let mut smp = u.reserve_blocking(8, None).unwrap();
                    smp.as_mut_slice().copy_from_slice(&v);
                    smp.submit();
                }
            });
        }
        let t0 = Instant::now();
        while seen.iter().sum::<u32>() < 3 * PER {
            assert!(t0.elapsed() < Duration::from_secs(60));
            let r = u.drain(0, |s| {
                let t = u32::from_ne_bytes(s[..4].try_into().unwrap()) as usize;
                let i = u32::from_ne_bytes(s[4..].try_into().unwrap());
                assert_eq!(i, seen[t], "producer {t} out of order");
                seen[t] += 1;
                0
            });
            assert!(r >= 0, "{r}");
            if r == 0 {
                std::thread::yield_now();
            }
        }
    });
    assert_eq!(seen, [PER; 3]);
}

// ---- the running kernel as the oracle ----

const USER_RINGBUF_DRAIN: i32 = 209;
const DYNPTR_READ: i32 = 201;

/// The kernel's user ring buffer as libbpf's producer sees it.
struct KUser {
    fd: k::KernelMap,
    cons: bpfc_oracle::perf::Mapping,
    prod: bpfc_oracle::perf::Mapping,
    page: usize,
    size: usize,
}

impl KUser {
    fn new(size: usize) -> KUser {
        let page = page_size();
        let fd = k::map_create(MapType::UserRingbuf as u32, 0, 0, size as u32, 0).unwrap();
        let cons = k::mapping(&fd, page, 0, false);
        let prod = k::mapping(&fd, page + 2 * size, page, true);
        KUser {
            fd,
            cons,
            prod,
            page,
            size,
        }
    }

    /// `user_ring_buffer__reserve`, written out: the sample's position.
    fn reserve(&self, size: u32) -> Result<u64, i32> {
        let c = self.cons.u64_at(0);
        let p = self.prod.u64_at(0);
        let total = record_len(u64::from(size));
        if total > self.size as u64 {
            return Err(errno::E2BIG);
        }
        if (self.size as u64 - (p - c)) < total {
            return Err(errno::ENOSPC);
        }
        let off = self.page + (p & (self.size as u64 - 1)) as usize;
        self.prod.set_u32(off, size | BUSY_BIT);
        self.prod.set_u32(off + 4, 0);
        self.prod.set_u64(0, p + total);
        Ok(p)
    }

    fn write(&self, pos: u64, bytes: &[u8]) {
        let off = self.page + ((pos + 8) & (self.size as u64 - 1)) as usize;
        self.prod.write(off, bytes);
    }

    fn commit(&self, pos: u64, discard: bool) {
        let off = self.page + (pos & (self.size as u64 - 1)) as usize;
        let len = u32::from_ne_bytes(self.prod.bytes(off, 4).try_into().unwrap());
        let new = (len & !BUSY_BIT) | if discard { DISCARD_BIT } else { 0 };
        self.prod.set_u32(off, new);
    }

    fn positions(&self) -> (u64, u64) {
        (self.cons.u64_at(0), self.prod.u64_at(0))
    }

    fn data(&self) -> Vec<u8> {
        self.prod.bytes(self.page, self.size)
    }
}

/// A program draining `rb` with `flags` whose callback adds the first 8
/// bytes of each sample (0 when shorter) and counts samples in `out`
/// (value words 1 and 2), returning 1 at the `stop_at`-th sample; the
/// drain's result goes to word 0. Also returns where the callback starts.
fn drain_prog(
    rb: &k::KernelMap,
    out: &k::KernelMap,
    flags: u64,
    stop_at: i32,
) -> (Vec<k::Insn>, u32) {
    let mut a = Asm::default();
    a.ld_map(1, rb)
        .ld_func(2, "cb")
        .mov_imm(3, 0)
        .mov_imm(4, flags as i32)
        .call(USER_RINGBUF_DRAIN)
        .ld_map_value(1, out, 0)
        .stx64(1, 0, 0)
        .mov_imm(0, 0)
        .exit()
        .label("cb")
        .mov(6, 1)
        .ld_map_value(7, out, 0)
        .mov_imm(1, 0)
        .stx64(10, -8, 1)
        .mov(1, 10)
        .add_imm(1, -8)
        .mov_imm(2, 8)
        .mov(3, 6)
        .mov_imm(4, 0)
        .mov_imm(5, 0)
        .call(DYNPTR_READ)
        .ldx64(1, 10, -8)
        .ldx64(2, 7, 8)
        .add(2, 1)
        .stx64(7, 8, 2)
        .ldx64(2, 7, 16)
        .add_imm(2, 1)
        .stx64(7, 16, 2)
        .jne_imm(2, stop_at, "go_on")
        .mov_imm(0, 1)
        .exit()
        .label("go_on")
        .mov_imm(0, 0)
        .exit();
    (a.finish(), a.at("cb"))
}

/// Our drain with the same callback: (result, sum, count).
fn our_drain(u: &UserRingBuf, flags: u64, stop_at: i64) -> (i64, u64, u64) {
    let (mut sum, mut count) = (0u64, 0u64);
    let r = u.drain(flags, |s| {
        if s.len() >= 8 {
            sum = sum.wrapping_add(u64::from_ne_bytes(s[..8].try_into().unwrap()));
        }
        count += 1;
        i64::from(count as i64 == stop_at)
    });
    (r, sum, count)
}

#[test]
fn matches_the_kernel() {
    if !k::kernel_or_skip("user_ringbuf::matches_the_kernel") {
        return;
    }
    let page = page_size();
    let size = 2 * page;
    let kr = KUser::new(size);
    let out = k::map_create(MapType::Array as u32, 4, 24, 1, 0).unwrap();
    let btf = k::btf_load(&k::btf_prog_and_callback()).unwrap();
    let flag_set = [0, BPF_RB_NO_WAKEUP, BPF_RB_FORCE_WAKEUP, 4];
    let stops = [-1i32, 1, 3];
    let mut progs = Vec::new();
    for &f in &flag_set {
        for &stop in &stops {
            let (insns, cb_at) = drain_prog(&kr.fd, &out, f, stop);
            let prog = k::prog_load(
                k::PROG_TYPE_SCHED_CLS,
                &insns,
                Some((&btf, &[(0, 4), (cb_at, 6)])),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            progs.push(((f, stop), prog));
        }
    }
    let m = user_ringbuf(size);
    let u = urb(&m);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    // Samples reserved and not yet committed: ours and the kernel's.
    let mut held: Vec<(UserSample<'_>, u64)> = Vec::new();
    let mut drained = 0i64;
    for step in 0..600u64 {
        let what = format!("step {step}");
        match rng.below(10) {
            0..=4 => {
                let size = match rng.below(10) {
                    0 => page as u32 + rng.below(page as u64) as u32,
                    1 => size as u32 - 8 + rng.below(16) as u32,
                    _ => rng.below(120) as u32,
                };
                let bytes = pattern(step, size.min(64) as usize);
                let kres = kr.reserve(size);
                let ours = u.reserve(size);
                assert_eq!(
                    ours.as_ref().err().map(|e| e.code()),
                    kres.err(),
                    "{what}: reserve {size}"
                );
                if let (Ok(mut s), Ok(kpos)) = (ours, kres) {
                    s.as_mut_slice()[..bytes.len()].copy_from_slice(&bytes);
                    kr.write(kpos, &bytes);
                    match rng.below(4) {
                        0 => {
                            s.discard();
                            kr.commit(kpos, true);
                        }
                        1 if held.len() < 3 => held.push((s, kpos)),
                        _ => {
                            s.submit();
                            kr.commit(kpos, false);
                        }
                    }
                }
            }
            5 if !held.is_empty() => {
                let (s, kpos) = held.remove(rng.below(held.len() as u64) as usize);
                let discard = rng.below(2) == 0;
                kr.commit(kpos, discard);
                if discard {
                    s.discard();
                } else {
                    s.submit();
                }
            }
            _ => {
                let i = rng.below(progs.len() as u64) as usize;
                let ((f, stop), prog) = &progs[i];
                k::update(&out, &0u32.to_ne_bytes(), &[0; 24], 0).unwrap();
                assert_eq!(k::test_run(prog), 0, "{what}");
                let mut v = [0u8; 24];
                k::lookup(&out, &0u32.to_ne_bytes(), &mut v).unwrap();
                let word = |i: usize| u64::from_ne_bytes(v[i * 8..i * 8 + 8].try_into().unwrap());
                let want = (word(0) as i64, word(1), word(2));
                let got = our_drain(u, *f, i64::from(*stop));
                assert_eq!(got, want, "{what}: drain flags {f} stop {stop}");
                drained += got.0.max(0);
            }
        }
        assert_eq!(
            (
                u.ring.consumer_pos().load(Ordering::Relaxed),
                u.ring.producer_pos().load(Ordering::Relaxed)
            ),
            kr.positions(),
            "{what}: positions"
        );
        let (base, _) = u.ring.data_range();
        // SAFETY: the first data mapping; nobody else writes.
        let ours = unsafe { std::slice::from_raw_parts(base as *const u8, size) };
        assert!(ours == kr.data().as_slice(), "{what}: data area differs");
    }
    assert!(drained > 100, "{drained}");
    assert!(u.ring.producer_pos().load(Ordering::Relaxed) > 4 * size as u64);
    for (s, _) in held {
        s.submit();
    }
}

#[test]
fn broken_producers_match_the_kernel() {
    if !k::kernel_or_skip("user_ringbuf::broken_producers_match_the_kernel") {
        return;
    }
    let page = page_size();
    let size = page;
    let kr = KUser::new(size);
    let out = k::map_create(MapType::Array as u32, 4, 24, 1, 0).unwrap();
    let btf = k::btf_load(&k::btf_prog_and_callback()).unwrap();
    let (insns, cb_at) = drain_prog(&kr.fd, &out, 0, -1);
    let prog = k::prog_load(
        k::PROG_TYPE_SCHED_CLS,
        &insns,
        Some((&btf, &[(0, 4), (cb_at, 6)])),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let m = user_ringbuf(size);
    let u = urb(&m);
    let kdrain = || {
        k::update(&out, &0u32.to_ne_bytes(), &[0; 24], 0).unwrap();
        k::test_run(&prog);
        let mut v = [0u8; 24];
        k::lookup(&out, &0u32.to_ne_bytes(), &mut v).unwrap();
        i64::from_ne_bytes(v[..8].try_into().unwrap())
    };
    let ring = &u.ring;
    // Each case: (header length, producer position) written by a producer
    // that does not follow the protocol, after one good 8-byte sample.
    for (case, (len, prod)) in [
        (12u32, 20u64),
        (40, 32),
        (size as u32 + 8, 4 * size as u64),
        (BUSY_BIT | DISCARD_BIT | 8, 16),
        ((1 << 24) + 8, 1 << 26),
        (8, 16),
    ]
    .into_iter()
    .enumerate()
    {
        let kp = kr.reserve(8).unwrap();
        kr.commit(kp, false);
        u.reserve(8).unwrap().submit();
        assert_eq!(kdrain(), 1, "case {case}");
        assert_eq!(our_drain(u, 0, -1).0, 1, "case {case}");
        let (kc, _) = kr.positions();
        let c = ring.consumer_pos().load(Ordering::Relaxed);
        assert_eq!(c, kc);
        let off = (c & (size as u64 - 1)) as usize;
        kr.prod.set_u32(page + off, len);
        kr.prod.set_u64(0, kc + prod);
        ring.hdr_len(off as u64).store(len, Ordering::Relaxed);
        ring.producer_pos().store(c + prod, Ordering::Relaxed);
        let want = kdrain();
        let got = our_drain(u, 0, -1).0;
        assert_eq!(
            got, want,
            "case {case}: length {len:#x}, producer at +{prod}"
        );
        // Put things straight for the next case: consume nothing more.
        let (kc, _) = kr.positions();
        assert_eq!(
            ring.consumer_pos().load(Ordering::Relaxed),
            kc,
            "case {case}"
        );
        kr.prod.set_u64(0, kc);
        ring.producer_pos().store(kc, Ordering::Relaxed);
    }
}

#[test]
fn max_samples_match_the_kernel() {
    if !k::kernel_or_skip("user_ringbuf::max_samples_match_the_kernel") {
        return;
    }
    let size = 2 << 20;
    let kr = KUser::new(size);
    let out = k::map_create(MapType::Array as u32, 4, 24, 1, 0).unwrap();
    let btf = k::btf_load(&k::btf_prog_and_callback()).unwrap();
    let (insns, cb_at) = drain_prog(&kr.fd, &out, 0, -1);
    let prog = k::prog_load(
        k::PROG_TYPE_SCHED_CLS,
        &insns,
        Some((&btf, &[(0, 4), (cb_at, 6)])),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let m = user_ringbuf(size);
    let u = urb(&m);
    for i in 0..MAX_SAMPLES + 100 {
        let p = kr.reserve(0).unwrap();
        kr.commit(p, i % 1000 == 7);
        let s = u.reserve(0).unwrap();
        if i % 1000 == 7 {
            s.discard();
        } else {
            s.submit();
        }
    }
    for _ in 0..2 {
        k::update(&out, &0u32.to_ne_bytes(), &[0; 24], 0).unwrap();
        k::test_run(&prog);
        let mut v = [0u8; 24];
        k::lookup(&out, &0u32.to_ne_bytes(), &mut v).unwrap();
        let want = i64::from_ne_bytes(v[..8].try_into().unwrap());
        assert_eq!(our_drain(u, 0, -1).0, want);
        assert_eq!(
            ring_positions(u),
            kr.positions(),
            "consumer and producer positions"
        );
    }
}

fn ring_positions(u: &UserRingBuf) -> (u64, u64) {
    (
        u.ring.consumer_pos().load(Ordering::Relaxed),
        u.ring.producer_pos().load(Ordering::Relaxed),
    )
}
