//! `bpfc run --pcap`: the verdict counts and the packets written with
//! --pcap-out agree with the running kernel's test runs of the same frames
//! (testsuite/fixtures/net/sample.pcap) for an XDP program, a tc program
//! that rewrites packets and a socket filter whose return value trims them.

mod common;

use bpfc_testsuite::net::{self, Outcome};
use common::data::{packet_inputs, read_pcap};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testsuite/fixtures/net")
}

/// What bpfc should count and write for the kernel's outcome of `frame`.
fn expect(prog: &str, frame: &[u8], o: &Outcome) -> (Option<String>, Option<Vec<u8>>) {
    let Outcome::Ok {
        retval, data_out, ..
    } = o
    else {
        return (None, None);
    };
    match prog {
        "xdp_parse" => {
            let name = ["XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX"][*retval as usize];
            let pass = matches!(retval, 2 | 3).then(|| data_out.clone());
            (Some(name.into()), pass)
        }
        "tc_nat" => {
            assert_eq!(*retval, 0, "tc_nat always returns TC_ACT_OK");
            (Some("TC_ACT_OK".into()), Some(data_out.clone()))
        }
        _ => {
            if *retval == 0 {
                return (Some("drop".into()), None);
            }
            let l3 = &data_out[14..];
            let mut w = frame[..14].to_vec();
            w.extend_from_slice(&l3[..l3.len().min(*retval as usize)]);
            (Some("accept".into()), Some(w))
        }
    }
}

#[test]
fn pcap_replay_agrees_with_the_kernel() {
    let Some(driver) = net::kernel_driver("pcap_replay_agrees_with_the_kernel") else {
        return;
    };
    let pcap = fixtures().join("sample.pcap");
    let frames = read_pcap(&pcap);
    assert_eq!(frames.len(), 300);
    let inputs = packet_inputs(&frames);
    for prog in ["xdp_parse", "tc_nat", "sf_load_bytes"] {
        let obj = fixtures().join(format!("{prog}.o"));
        let (kernel, _) = net::run_kernel(&driver, &obj, prog, &inputs, None).unwrap();
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut refused = 0;
        let mut written = Vec::new();
        for (f, o) in frames.iter().zip(&kernel.outcomes) {
            match expect(prog, f, o) {
                (None, _) => refused += 1,
                (Some(v), w) => {
                    *counts.entry(v).or_default() += 1;
                    written.extend(w);
                }
            }
        }
        for engine in ["jit", "interp"] {
            let out = std::env::temp_dir().join(format!("bpfc-pcap-{prog}-{engine}.pcap"));
            let o = Command::new(env!("CARGO_BIN_EXE_bpfc"))
                .args([
                    "run",
                    obj.to_str().unwrap(),
                    "--engine",
                    engine,
                    "--json",
                    "--pcap",
                ])
                .arg(&pcap)
                .arg("--pcap-out")
                .arg(&out)
                .output()
                .unwrap();
            let v: serde_json::Value = serde_json::from_str(&common::success(&o)).unwrap();
            let got: BTreeMap<String, u64> = serde_json::from_value(v["verdicts"].clone()).unwrap();
            assert_eq!(got, counts, "{prog} {engine}");
            assert_eq!(v["refused"], refused, "{prog} {engine}");
            assert_eq!(read_pcap(&out), written, "{prog} {engine}: packets written");
        }
    }
}
