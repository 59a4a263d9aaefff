//! `bpfc-map-worker`: a second process for the map concurrency tests
//! (`tests/maps_concurrency.rs`), working on a pinned bpfc map.
//!
//! - `add PATH KEY N`: N atomic increments of the u64 value of u32 KEY,
//!   through the pointer a program's lookup gets (CPU slot 0).
//! - `seq PATH KEY N`: update KEY with the values 1..=N in order.
//! - `churn PATH KEYS SEED`: update, look up and delete u32 keys below KEYS
//!   (u64 values `key * 1000 + n`) until killed; prints `ready` first.
//!
//! Prints `done` and exits 0 when finished; a failed operation exits 1.

use bpfc_runtime::maps::{errno, Map, MapType};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

fn fail(msg: String) -> ! {
    eprintln!("bpfc-map-worker: {msg}");
    std::process::exit(1)
}

fn num<T: std::str::FromStr>(s: Option<&String>, what: &str) -> T {
    s.and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fail(format!("missing or bad {what}")))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("");
    let path = args
        .get(1)
        .unwrap_or_else(|| fail("usage: bpfc-map-worker add|seq|churn PATH ...".into()));
    let map =
        Map::open_pinned(Path::new(path), None).unwrap_or_else(|e| fail(format!("{path}: {e}")));
    match mode {
        "add" => {
            let key: u32 = num(args.get(2), "KEY");
            let n: u64 = num(args.get(3), "N");
            let p = map
                .prog_lookup(&key.to_ne_bytes(), 0)
                .unwrap_or_else(|| fail(format!("key {key} is not in the map")));
            // SAFETY: an 8-aligned u64 value inside the map's shared block,
            // which stays mapped while `map` lives.
            let v = unsafe { AtomicU64::from_ptr(p as *mut u64) };
            for _ in 0..n {
                v.fetch_add(1, Ordering::Relaxed);
            }
        }
        "seq" => {
            let key: u32 = num(args.get(2), "KEY");
            let n: u64 = num(args.get(3), "N");
            for i in 1..=n {
                map.update(&key.to_ne_bytes(), &i.to_ne_bytes(), 0)
                    .unwrap_or_else(|e| fail(format!("update {i}: {e}")));
            }
        }
        "churn" => {
            let keys: u32 = num(args.get(2), "KEYS");
            let mut x: u64 = num::<u64>(args.get(3), "SEED") | 1;
            println!("ready");
            let _ = std::io::stdout().flush();
            let mut v = [0u8; 8];
            // Array elements cannot be deleted: only updates and lookups.
            let deletes = map.map_type() != MapType::Array;
            for n in 0u64.. {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let k = (x % u64::from(keys)) as u32;
                let key = k.to_ne_bytes();
                let r = match x % 8 {
                    0..=3 => map.update(&key, &(u64::from(k) * 1000 + n).to_ne_bytes(), 0),
                    4..=5 if deletes => map.delete(&key),
                    _ => map.lookup(&key, &mut v),
                };
                match r {
                    Ok(()) => {}
                    Err(e) if e.code() == errno::ENOENT || e.code() == errno::E2BIG => {}
                    Err(e) => fail(format!("churn: {e}")),
                }
            }
        }
        _ => fail(format!("unknown mode {mode:?}")),
    }
    println!("done");
}
