//! What runs read and print: `bpfc run`'s JSON maps (hex byte arrays,
//! entries in any order) against a host's `map` lines, and the frames of a
//! capture as the kernel oracle's inputs.

use bpfc_testsuite::net::Input;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The bytes of a JSON array of "0x.." strings.
pub fn bytes(v: &Value) -> Vec<u8> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|b| u8::from_str_radix(b.as_str().unwrap().trim_start_matches("0x"), 16).unwrap())
        .collect()
}

/// The little-endian word at `at`.
pub fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// A JSON array of "0x.." strings of `b`, as `--maps-in` reads them.
pub fn json_bytes(b: &[u8]) -> Value {
    b.iter().map(|x| format!("{x:#04x}")).collect()
}

/// Maps JSON with every map's entries sorted by key, for maps whose order
/// is not defined.
pub fn sorted(maps: &Value) -> Value {
    let mut m = maps.clone();
    for (_, entries) in m.as_object_mut().into_iter().flatten() {
        if let Some(a) = entries.as_array_mut() {
            a.sort_by_key(|e| e["key"].to_string());
        }
    }
    m
}

/// Hex of a JSON array of "0x.." strings.
fn hex_of(v: &Value) -> String {
    v.as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap().trim_start_matches("0x").to_string())
        .collect()
}

/// `bpfc run --maps-out` as a host prints maps: name -> lines.
fn json_maps(v: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for (name, elems) in v.as_object().unwrap() {
        let mut set = BTreeSet::new();
        for e in elems.as_array().unwrap() {
            let key = hex_of(&e["key"]);
            let value = match e.get("values") {
                Some(per_cpu) => per_cpu
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| {
                        let mut h = hex_of(&c["value"]);
                        while !h.len().is_multiple_of(16) {
                            h.push_str("00");
                        }
                        h
                    })
                    .collect(),
                None => hex_of(&e["value"]),
            };
            set.insert(format!("{key} {value}"));
        }
        out.insert(name.clone(), set);
    }
    out
}

/// A host's `map`/`skip` lines against `bpfc run --maps-out`'s file.
pub fn compare_maps<'a>(what: &str, lines: impl Iterator<Item = &'a str>, maps_out: &Path) {
    let mut got: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut skipped = BTreeSet::new();
    for l in lines {
        let w: Vec<&str> = l.split(' ').collect();
        match w[..] {
            ["map", m, k, v] => {
                got.entry(m.to_string())
                    .or_default()
                    .insert(format!("{k} {v}"));
            }
            ["skip", m] => {
                skipped.insert(m.to_string());
            }
            _ => panic!("{what}: unexpected line {l:?}"),
        }
    }
    let want = json_maps(&serde_json::from_slice(&std::fs::read(maps_out).unwrap()).unwrap());
    for (m, elems) in &want {
        if skipped.contains(m) {
            continue;
        }
        let empty = BTreeSet::new();
        assert_eq!(got.get(m).unwrap_or(&empty), elems, "{what}: map {m}");
    }
    for m in got.keys() {
        assert!(
            want.contains_key(m),
            "{what}: map {m} is not in bpfc run's output"
        );
    }
}

/// The frames of a pcap file.
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let mut r = pcap_file::pcap::PcapReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut v = Vec::new();
    while let Some(p) = r.next_packet() {
        v.push(p.unwrap().data.into_owned());
    }
    v
}

/// Frames as the kernel oracle's test-run inputs (no context).
pub fn packet_inputs(frames: &[Vec<u8>]) -> Vec<Input> {
    frames
        .iter()
        .map(|f| Input {
            data: f.clone(),
            ctx: None,
        })
        .collect()
}
