//! The C host example's packet counter (`examples/c-host/xdp_count.c`):
//! built with its Makefile against this build's bpfc and runtime library,
//! run on the shipped capture with several `.rodata` tunings, and checked
//! against `bpfc run --pcap` on the same object, capture and `.rodata`
//! (verdicts, refused frames and the counts map), and against the running
//! kernel's test runs of the same frames when it is available.

mod common;

use bpfc_testsuite::net::{self, Outcome};
use bpfc_testsuite::{hex_decode, tool_or_skip, workspace_root};
use common::data::{bytes, json_bytes, packet_inputs, read_pcap, u64_at};
use common::host::{make_c_example, ok, run, tmpdir, valgrind, BPFC};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
const VERDICTS: [&str; 5] = [
    "XDP_ABORTED",
    "XDP_DROP",
    "XDP_PASS",
    "XDP_TX",
    "XDP_REDIRECT",
];
/// The program's `enum proto`, in order.
const PROTOS: [&str; 7] = ["tcp", "udp", "icmp", "icmpv6", "arp", "other", "truncated"];

/// What one counting run gave: frames, refused frames, verdict counts,
/// and per protocol index (packets, bytes) from the counts map.
#[derive(Debug, PartialEq, Eq)]
struct Counts {
    packets: u64,
    refused: u64,
    verdicts: BTreeMap<String, u64>,
    protos: BTreeMap<u32, (u64, u64)>,
}

fn parse_host(text: &str) -> Counts {
    let mut c = Counts {
        packets: 0,
        refused: 0,
        verdicts: BTreeMap::new(),
        protos: BTreeMap::new(),
    };
    for l in text.lines() {
        let w: Vec<&str> = l.split(' ').collect();
        let n = |s: &str| s.parse::<u64>().unwrap_or_else(|_| panic!("{l:?}"));
        match w[..] {
            ["packets", p] => c.packets = n(p),
            ["refused", r] => c.refused = n(r),
            ["verdict", v, k] => {
                c.verdicts.insert(v.to_string(), n(k));
            }
            ["proto", i, name, p, b] => {
                let i: u32 = i.parse().unwrap();
                assert_eq!(PROTOS[i as usize], name, "{l}");
                c.protos.insert(i, (n(p), n(b)));
            }
            _ => panic!("unexpected line {l:?} in\n{text}"),
        }
    }
    c
}

/// The `.rodata` image: `drop_proto`, then `min_len`.
fn rodata(drop: &str, min_len: u32) -> Vec<u8> {
    let d = PROTOS
        .iter()
        .position(|p| *p == drop)
        .unwrap_or(PROTOS.len()) as u32;
    [d.to_le_bytes(), min_len.to_le_bytes()].concat()
}

fn bpfc_run(dir: &Path, obj: &Path, pcap: &Path, ro: &[u8]) -> Counts {
    let maps_in = serde_json::json!({
        ".rodata": [{"key": json_bytes(&[0; 4]), "value": json_bytes(ro)}]
    });
    let min = dir.join("maps-in.json");
    std::fs::write(&min, maps_in.to_string()).unwrap();
    let out = ok(
        run(
            Command::new(BPFC)
                .arg("run")
                .arg(obj)
                .args(["--json", "--pcap"])
                .arg(pcap)
                .arg("--maps-in")
                .arg(&min)
                .args(["--maps-out", "-"]),
            b"",
        ),
        "bpfc run --pcap",
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let maps = &v["maps"];
    let protos = maps["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let k = bytes(&e["key"]);
            let val = bytes(&e["value"]);
            (
                u32::from_le_bytes(k[..4].try_into().unwrap()),
                (u64_at(&val, 0), u64_at(&val, 8)),
            )
        })
        .collect();
    Counts {
        packets: v["packets"].as_u64().unwrap(),
        refused: v["refused"].as_u64().unwrap(),
        verdicts: serde_json::from_value(v["verdicts"].clone()).unwrap(),
        protos,
    }
}

fn kernel_run(driver: &Path, obj: &Path, frames: &[Vec<u8>], ro: &[u8]) -> Counts {
    let inputs = packet_inputs(frames);
    let (r, _) =
        net::run_kernel_tuned(driver, obj, "xdp_count", Some(ro), &[], &inputs, None).unwrap();
    let mut c = Counts {
        packets: frames.len() as u64,
        refused: 0,
        verdicts: BTreeMap::new(),
        protos: BTreeMap::new(),
    };
    for o in &r.outcomes {
        match o {
            Outcome::Ok { retval, .. } => {
                let name = VERDICTS
                    .get(*retval as usize)
                    .map_or(format!("XDP {retval}"), |s| s.to_string());
                *c.verdicts.entry(name).or_default() += 1;
            }
            Outcome::Refused(e) => {
                assert_eq!(*e, 22, "the kernel refused a frame with errno {e}");
                c.refused += 1;
            }
        }
    }
    for l in &r.maps {
        let w: Vec<&str> = l.split(' ').collect();
        if let ["counts", k, v] = w[..] {
            let (k, v) = (hex_decode(k).unwrap(), hex_decode(v).unwrap());
            c.protos.insert(
                u32::from_le_bytes(k[..4].try_into().unwrap()),
                (u64_at(&v, 0), u64_at(&v, 8)),
            );
        }
    }
    c
}

#[test]
fn c_example_counts_a_pcap_as_bpfc_run_and_the_kernel() {
    let test = "c_example_counts_a_pcap_as_bpfc_run_and_the_kernel";
    if !tool_or_skip(test, "cc", "--version") || !tool_or_skip(test, "make", "--version") {
        return;
    }
    let src = workspace_root().join("examples/c-host");
    let dir = tmpdir("c-example");
    // The copies' times say nothing: keep the committed object and capture.
    let keep = ["xdp_count.bpf.o", "packets.pcap"];
    let exe = make_c_example(&dir, "xdp-count", &keep, false, &[]);
    let (obj, pcap) = (src.join("xdp_count.bpf.o"), src.join("packets.pcap"));
    let frames = read_pcap(&pcap);
    let driver = net::kernel_driver(test);
    let tunings: [(&str, u32); 4] = [("none", 0), ("udp", 100), ("tcp", 0), ("arp", 300)];
    let mut drops = Vec::new();
    for (drop, min_len) in tunings {
        let what = format!("drop {drop}, min_len {min_len}");
        let host = parse_host(&ok(
            run(
                Command::new(&exe)
                    .arg(&pcap)
                    .arg(drop)
                    .arg(min_len.to_string()),
                b"",
            ),
            &what,
        ));
        let ro = rodata(drop, min_len);
        // The capture has every kind the program tells apart, and frames
        // a test run refuses.
        assert_eq!(host.packets, frames.len() as u64, "{what}");
        assert!(host.refused > 0, "{what}: {host:?}");
        assert_eq!(host.protos.len(), PROTOS.len(), "{what}: {host:?}");
        assert!(
            host.protos.values().all(|&(p, b)| p > 0 && b >= 14 * p),
            "{what}: {host:?}"
        );
        let counted: u64 = host.protos.values().map(|p| p.0).sum();
        assert_eq!(counted, host.packets - host.refused, "{what}");
        assert_eq!(bpfc_run(&dir, &obj, &pcap, &ro), host, "{what}: bpfc run");
        if let Some(d) = &driver {
            assert_eq!(
                kernel_run(d, &obj, &frames, &ro),
                host,
                "{what}: the kernel"
            );
        }
        drops.push(host.verdicts.get("XDP_DROP").copied().unwrap_or(0));
    }
    // The .rodata constants change what the program does: nothing dropped
    // untuned; the tunings drop different sets.
    assert_eq!(drops[0], 0, "{drops:?}");
    assert!(
        drops[1] > 0 && drops[2] > 0 && drops[3] > 0 && drops[1] != drops[2],
        "{drops:?}"
    );
    // Under valgrind: no invalid access, nothing leaked after destroy.
    if tool_or_skip(test, "valgrind", "--version") {
        let out = run(valgrind().arg(&exe).arg(&pcap).args(["udp", "100"]), b"");
        assert!(
            out.status.success(),
            "valgrind: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
