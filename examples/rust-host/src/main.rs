//! A request loop with a hook: every request goes through the eBPF rate
//! limiter (compiled by bpfc-build into this binary) before it is served.
//! The limits are tuned through `.rodata` before load; afterwards the
//! host reads the per-client buckets from the hash map, the totals from
//! `.bss` and the denials from the ring buffer.
//!
//! usage: rust-host REQUESTS RATE_PER_SEC BURST

include!(concat!(env!("OUT_DIR"), "/limiter.skel.rs"));

use bpfc_runtime::maps::ringbuf::RingBufConsumer;
use std::ops::ControlFlow;

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

    let mut served = 0u64;
    for i in 0..requests {
        // Three clients; client 0 is greedy.
        let mut req = limiter::request {
            client: (i % 3) as u32,
            cost: if i % 3 == 0 { 2 } else { 1 },
            now_ns: i * 50_000_000,
        };
        // The hook: the program decides whether the request is served.
        if skel.run_limit(&mut req, 0).unwrap_or_else(|e| panic!("run: {e}")) == 1 {
            served += 1;
        }
    }
    println!("served {served}");
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
