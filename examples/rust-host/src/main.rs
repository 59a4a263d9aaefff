//! A request loop with a hook: every request fires the hook
//! `request/admit`, where the eBPF rate limiter (compiled by bpfc-build
//! into this binary) is attached, before it is served. The limits are
//! tuned through `.rodata` before load; afterwards the host reads the
//! per-client buckets from the hash map, the totals from `.bss` and the
//! denials from the ring buffer. Once the limiter is detached, the hook
//! runs nothing and requests pass unchecked.
//!
//! usage: rust-host REQUESTS RATE_PER_SEC BURST

include!(concat!(env!("OUT_DIR"), "/limiter.skel.rs"));

use bpfc_runtime::maps::ringbuf::RingBufConsumer;
use std::ops::ControlFlow;

/// The hook in the request loop.
const HOOK: &str = "request/admit";

/// Fire the hook: every program attached decides; none attached, the
/// request passes.
fn admit(req: &mut limiter::request) -> bool {
    let mut verdicts = [0u64; 4];
    let ran = limiter::fire(HOOK, req, 0, &mut verdicts).unwrap_or_else(|e| panic!("fire: {e}"));
    verdicts[..ran.min(verdicts.len())].iter().all(|&v| v == 1)
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let [requests, rate, burst] = args[..] else {
        eprintln!("usage: rust-host REQUESTS RATE_PER_SEC BURST");
        std::process::exit(2);
    };
    let mut skel = limiter::Skel::open().unwrap_or_else(|e| panic!("open: {e}"));
    skel.rodata_mut().rate_per_sec = rate;
    skel.rodata_mut().burst = burst;
    skel.load().unwrap_or_else(|e| panic!("load: {e}"));
    let link = skel
        .attach_limit(HOOK)
        .unwrap_or_else(|e| panic!("attach: {e}"));

    let (mut served, mut verdicts) = (0u64, String::new());
    for i in 0..requests {
        // Three clients; client 0 is greedy.
        let mut req = limiter::request {
            client: (i % 3) as u32,
            cost: if i % 3 == 0 { 2 } else { 1 },
            now_ns: i * 50_000_000,
        };
        let ok = admit(&mut req);
        served += u64::from(ok);
        verdicts.push(if ok { '1' } else { '0' });
    }
    println!("served {served}");
    println!("verdicts {verdicts}");
    // Detached, the limiter no longer sees requests: a request that would
    // be denied now (client 0 again at the last request's time) passes.
    drop(link);
    let mut req = limiter::request {
        client: 0,
        cost: 1_000_000,
        now_ns: requests * 50_000_000,
    };
    println!("after detach admitted {}", admit(&mut req));
    let bss = skel.bss();
    println!("allowed {} denied {}", bss.allowed_total, bss.denied_total);
    let buckets = skel.buckets().unwrap();
    let mut clients = buckets.keys().unwrap();
    clients.sort();
    for c in clients {
        let b = buckets.get(&c).unwrap().unwrap();
        println!("bucket {c} tokens {} last {}", b.tokens, b.last_ns);
    }
    let mut per_client = [0u64; 3];
    let mut consumer = RingBufConsumer::new(&skel.denials().unwrap()).unwrap();
    consumer.consume(|rec| {
        let client = u32::from_ne_bytes(rec[..4].try_into().unwrap());
        per_client[client as usize % 3] += 1;
        ControlFlow::Continue(())
    });
    println!("denials {} {} {}", per_client[0], per_client[1], per_client[2]);
}
