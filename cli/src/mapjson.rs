//! Map contents as JSON, in bpftool's shapes: one entry is
//! `{"key": ["0x01",...], "value": [...]}` (per-CPU maps: `"values": [{"cpu":
//! N, "value": [...]}]`), with a `"formatted"` member from the map's BTF when
//! it has key/value types; a map's contents are the list of its entries, and
//! several maps an object from map name to that list (the file format of
//! `bpfc run --maps-in/--maps-out`). [`Json`] keeps members in order and is
//! written as bpftool's JSON writer writes (compact, or `-p` pretty).

use crate::btfdump;
use anyhow::{anyhow, bail, Context, Result};
use bpfc_compiler::isa::Endian;
use bpfc_compiler::loader::{Btf, GlobalKind, MapOrigin, Object};
use bpfc_runtime::maps::{errno, Map};

/// A JSON value with members in order. `Raw` is printed as is: numbers,
/// `true`/`false`/`null`, and the unquoted text bpftool's plain BTF output
/// has (`0x1234` for a pointer).
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Raw(String),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    pub fn null() -> Json {
        Json::Raw("null".into())
    }

    pub fn num(n: impl std::fmt::Display) -> Json {
        Json::Raw(n.to_string())
    }

    pub fn obj(members: Vec<(&str, Json)>) -> Json {
        Json::Object(
            members
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    /// bpftool's writer output, without the final newline.
    pub fn write(&self, pretty: bool) -> String {
        let mut w = Writer {
            out: String::new(),
            pretty,
            depth: 0,
            sep: None,
        };
        w.value(self);
        w.out
    }
}

/// bpftool's `json_writer`: a separator before every value but the first
/// of a container, a newline and 4 spaces per level before every member
/// name and before a closing bracket of a non-empty container (pretty only).
struct Writer {
    out: String,
    pretty: bool,
    depth: usize,
    sep: Option<char>,
}

impl Writer {
    fn eol(&mut self) {
        if self.pretty {
            self.out.push('\n');
            for _ in 0..self.depth {
                self.out.push_str("    ");
            }
        }
    }

    fn eor(&mut self) {
        if let Some(c) = self.sep {
            self.out.push(c);
        }
        self.sep = Some(',');
    }

    fn begin(&mut self, c: char) {
        self.eor();
        self.out.push(c);
        self.depth += 1;
        self.sep = None;
    }

    fn end(&mut self, c: char) {
        self.depth -= 1;
        if self.sep.is_some() {
            self.eol();
        }
        self.out.push(c);
        self.sep = Some(',');
    }

    fn value(&mut self, v: &Json) {
        match v {
            Json::Raw(s) => {
                self.eor();
                self.out.push_str(s);
            }
            Json::Str(s) => {
                self.eor();
                quote(&mut self.out, s);
            }
            Json::Array(items) => {
                self.begin('[');
                for i in items {
                    self.value(i);
                }
                self.end(']');
            }
            Json::Object(members) => {
                self.begin('{');
                for (k, v) in members {
                    self.eor();
                    self.eol();
                    self.sep = None;
                    quote(&mut self.out, k);
                    self.out.push(':');
                    if self.pretty {
                        self.out.push(' ');
                    }
                    self.value(v);
                }
                self.end('}');
            }
        }
    }
}

/// A JSON string literal, escaped as bpftool's writer escapes.
fn quote(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{c}' => out.push_str("\\f"),
            '\u{8}' => out.push_str("\\b"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `["0x01","0x00",...]`.
pub fn hex_list(bytes: &[u8]) -> Json {
    Json::Array(
        bytes
            .iter()
            .map(|b| Json::Raw(format!("\"0x{b:02x}\"")))
            .collect(),
    )
}

/// A map's key/value BTF, parsed, when its spec has one.
pub struct MapTypes {
    btf: Btf,
    key: u32,
    value: u32,
}

impl MapTypes {
    pub fn of(map: &Map) -> Option<MapTypes> {
        let b = map.spec().btf.as_ref()?;
        let endian = if cfg!(target_endian = "little") {
            Endian::Little
        } else {
            Endian::Big
        };
        let btf = Btf::parse(&b.raw, endian).ok()?;
        Some(MapTypes {
            btf,
            key: b.key_type_id,
            value: b.value_type_id,
        })
    }
}

/// The per-CPU slots of a user value: `(cpu, value bytes)`.
fn cpu_slots<'a>(map: &Map, value: &'a [u8]) -> impl Iterator<Item = (usize, &'a [u8])> {
    let vs = map.spec().value_size as usize;
    let step = vs.div_ceil(8) * 8;
    (0..map.ncpus() as usize).map(move |c| (c, &value[c * step..c * step + vs]))
}

/// bpftool's `formatted` member (and its plain-text BTF output, with
/// `plain`): the key and value printed by type.
pub fn formatted(map: &Map, t: &MapTypes, key: &[u8], value: &[u8], plain: bool) -> Json {
    let mut m = Vec::new();
    if map.spec().key_size != 0 {
        m.push(("key".to_string(), btfdump::dump(&t.btf, t.key, key, plain)));
    }
    if map.map_type().is_percpu() {
        let values = cpu_slots(map, value)
            .map(|(c, v)| {
                Json::obj(vec![
                    ("cpu", Json::num(c)),
                    ("value", btfdump::dump(&t.btf, t.value, v, plain)),
                ])
            })
            .collect();
        m.push(("values".to_string(), Json::Array(values)));
    } else {
        m.push((
            "value".to_string(),
            btfdump::dump(&t.btf, t.value, value, plain),
        ));
    }
    Json::Object(m)
}

/// One entry as `bpftool -j map dump` prints it.
pub fn entry(map: &Map, types: Option<&MapTypes>, key: &[u8], value: &[u8]) -> Json {
    let mut m = vec![("key".to_string(), hex_list(key))];
    if map.map_type().is_percpu() {
        let values = cpu_slots(map, value)
            .map(|(c, v)| Json::obj(vec![("cpu", Json::num(c)), ("value", hex_list(v))]))
            .collect();
        m.push(("values".to_string(), Json::Array(values)));
    } else {
        m.push(("value".to_string(), hex_list(value)));
    }
    if let Some(t) = types {
        m.push((
            "formatted".to_string(),
            formatted(map, t, key, value, false),
        ));
    }
    Json::Object(m)
}

/// Every (key, value) of a map in `get_next_key` order (keyless maps:
/// none, as bpftool's dump finds none).
pub fn elements(map: &Map) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    if map.spec().key_size == 0 {
        return Ok(Vec::new());
    }
    map.entries()
        .map_err(|e| anyhow!("map {}: {e}", map.name()))
}

/// A map's contents: the list `bpftool -j map dump` prints.
pub fn entries(map: &Map) -> Result<Json> {
    let types = MapTypes::of(map);
    Ok(Json::Array(
        elements(map)?
            .iter()
            .map(|(k, v)| entry(map, types.as_ref(), k, v))
            .collect(),
    ))
}

/// Several maps' contents: `{"name": [entries...], ...}` (the format of
/// `bpfc run --maps-out`). Maps without keys are left out, and so are those
/// whose elements user space cannot read (perf event arrays: the kernel's
/// lookup says `ENOTSUPP`), as `bpftool map dump` cannot show them.
pub fn maps_object<'a>(maps: impl IntoIterator<Item = (&'a str, &'a Map)>) -> Result<Json> {
    let mut m = Vec::new();
    for (name, map) in maps {
        if map.spec().key_size == 0 {
            continue;
        }
        match entries(map) {
            Ok(v) => m.push((name.to_string(), v)),
            Err(_) if unreadable(map) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Json::Object(m))
}

/// Whether user space cannot read the elements of `map` at all.
fn unreadable(map: &Map) -> bool {
    let key = vec![0u8; map.key_size()];
    let mut value = vec![0u8; map.user_value_size()];
    map.lookup(&key, &mut value).is_err_and(|e| {
        matches!(
            e.code(),
            bpfc_runtime::maps::errno::ENOTSUPP | bpfc_runtime::maps::errno::EOPNOTSUPP
        )
    })
}

/// The bytes of a `["0x01", ...]` list (numbers are taken too).
pub fn parse_hex_list(v: &serde_json::Value, what: &str) -> Result<Vec<u8>> {
    let items = v
        .as_array()
        .ok_or_else(|| anyhow!("{what} is not a list of bytes"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let n = match b {
                serde_json::Value::String(s) => {
                    let h = s.trim_start_matches("0x").trim_start_matches("0X");
                    u8::from_str_radix(h, 16).ok()
                }
                serde_json::Value::Number(n) => n.as_u64().and_then(|n| u8::try_from(n).ok()),
                _ => None,
            };
            n.ok_or_else(|| anyhow!("{what}[{i}] is not a byte: {b}"))
        })
        .collect()
}

/// Put a list of entries (as [`entries`] writes them) into a map: an update
/// per entry; keyless maps push the values in order. Per-CPU entries give
/// every CPU's value (`"values"`), or one `"value"` for all CPUs.
pub fn load_entries(map: &Map, list: &serde_json::Value) -> Result<()> {
    let items = list
        .as_array()
        .ok_or_else(|| anyhow!("map {}: not a list of entries", map.name()))?;
    let vs = map.spec().value_size as usize;
    for (i, e) in items.iter().enumerate() {
        let what = format!("map {} entry {i}", map.name());
        let key = match e.get("key") {
            Some(k) => parse_hex_list(k, &format!("{what}: key"))?,
            None => Vec::new(),
        };
        let mut value = vec![0u8; map.user_value_size()];
        if let Some(cpus) = e.get("values").filter(|_| map.map_type().is_percpu()) {
            let cpus = cpus
                .as_array()
                .ok_or_else(|| anyhow!("{what}: values is not a list"))?;
            let step = vs.div_ceil(8) * 8;
            for c in cpus {
                let cpu = c
                    .get("cpu")
                    .and_then(serde_json::Value::as_u64)
                    .filter(|&n| n < u64::from(map.ncpus()))
                    .ok_or_else(|| anyhow!("{what}: a value without a valid cpu"))?
                    as usize;
                let v = parse_hex_list(
                    c.get("value").unwrap_or(&serde_json::Value::Null),
                    &format!("{what}: cpu {cpu} value"),
                )?;
                if v.len() != vs {
                    bail!(
                        "{what}: cpu {cpu} value has {} bytes, the map's values {vs}",
                        v.len()
                    );
                }
                value[cpu * step..cpu * step + vs].copy_from_slice(&v);
            }
        } else {
            let v = parse_hex_list(
                e.get("value").ok_or_else(|| anyhow!("{what}: no value"))?,
                &format!("{what}: value"),
            )?;
            if v.len() != vs {
                bail!("{what}: value has {} bytes, the map's values {vs}", v.len());
            }
            if map.map_type().is_percpu() {
                let step = vs.div_ceil(8) * 8;
                for c in 0..map.ncpus() as usize {
                    value[c * step..c * step + vs].copy_from_slice(&v);
                }
            } else {
                value = v;
            }
        }
        if key.len() != map.key_size() {
            bail!(
                "{what}: key has {} bytes, the map's keys {}",
                key.len(),
                map.key_size()
            );
        }
        map.update(&key, &value, 0).map_err(|e| {
            let why = if e.code() == errno::E2BIG {
                "the map is full".to_string()
            } else {
                e.to_string()
            };
            anyhow!("{what}: update failed: {why}")
        })?;
    }
    Ok(())
}

/// Take the entries of `.rodata` maps out of a `{"name": [entries...]}`
/// object and make their values the maps' initial images in `obj`: the
/// runtime freezes `.rodata` when it creates the map (as libbpf does at
/// load), so a value for it must be in place before, as a host sets a
/// skeleton's `rodata` before load.
pub fn take_initial_images(obj: &mut Object, v: &mut serde_json::Value) -> Result<()> {
    let Some(members) = v.as_object_mut() else {
        return Ok(());
    };
    for def in &mut obj.maps {
        if def.origin != MapOrigin::Global(GlobalKind::Rodata) {
            continue;
        }
        let Some(list) = members.remove(&def.name) else {
            continue;
        };
        let what = format!("map {}", def.name);
        let items = list
            .as_array()
            .ok_or_else(|| anyhow!("{what}: not a list of entries"))?;
        for (i, e) in items.iter().enumerate() {
            let what = format!("{what} entry {i}");
            let key = parse_hex_list(
                e.get("key").unwrap_or(&serde_json::Value::Null),
                &format!("{what}: key"),
            )?;
            if key != [0; 4] {
                bail!("{what}: global data has the one key 0 (4 zero bytes)");
            }
            let value = parse_hex_list(
                e.get("value").ok_or_else(|| anyhow!("{what}: no value"))?,
                &format!("{what}: value"),
            )?;
            if value.len() != def.value_size as usize {
                bail!(
                    "{what}: value has {} bytes, the map's values {}",
                    value.len(),
                    def.value_size
                );
            }
            def.data = value;
        }
    }
    Ok(())
}

/// Load `{"name": [entries...]}` into the maps `find` names.
pub fn load_maps_object<'a>(
    v: &serde_json::Value,
    find: impl Fn(&str) -> Option<&'a Map>,
) -> Result<()> {
    let obj = v
        .as_object()
        .ok_or_else(|| anyhow!("not an object from map names to entries"))?;
    for (name, list) in obj {
        let map = find(name).ok_or_else(|| anyhow!("no map named {name}"))?;
        load_entries(map, list).with_context(|| format!("map {name}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpfc_runtime::maps::{MapOptions, MapSpec, MapType};

    #[test]
    fn writer_matches_bpftool_shapes() {
        let v = Json::Array(vec![Json::obj(vec![
            ("key", hex_list(&[1, 0])),
            ("value", Json::Array(vec![])),
        ])]);
        assert_eq!(v.write(false), r#"[{"key":["0x01","0x00"],"value":[]}]"#);
        assert_eq!(
            v.write(true),
            "[{\n        \"key\": [\"0x01\",\"0x00\"\n        ],\n        \"value\": []\n    }\n]"
        );
    }

    #[test]
    fn entries_round_trip() {
        let o = MapOptions {
            ncpus: 3,
            ..MapOptions::default()
        };
        for t in [MapType::Hash, MapType::PercpuHash, MapType::Array] {
            let a = Map::create_with(&MapSpec::new("a", t, 4, 6, 8, 0), &o).unwrap();
            let us = a.user_value_size();
            for k in 0..3u32 {
                let v: Vec<u8> = (0..us as u8).map(|b| b.wrapping_mul(k as u8 + 1)).collect();
                a.update(&k.to_ne_bytes(), &v, 0).unwrap();
            }
            let text = entries(&a).unwrap().write(false);
            let b = Map::create_with(&MapSpec::new("b", t, 4, 6, 8, 0), &o).unwrap();
            load_entries(&b, &serde_json::from_str(&text).unwrap()).unwrap();
            let mut x = a.entries().unwrap();
            let mut y = b.entries().unwrap();
            x.sort();
            y.sort();
            // Per-CPU padding bytes are not part of the format.
            let strip = |v: &mut Vec<(Vec<u8>, Vec<u8>)>| {
                if t.is_percpu() {
                    for (_, val) in v.iter_mut() {
                        for c in 0..3 {
                            val[c * 8 + 6..c * 8 + 8].fill(0);
                        }
                    }
                }
            };
            strip(&mut x);
            strip(&mut y);
            assert_eq!(x, y, "{t}");
        }
    }
}
