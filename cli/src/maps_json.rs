//! Map contents as JSON in `bpftool map dump -j`'s shape: a list of
//! entries, each `{"key": ["0x01", ...], "value": [...]}` (per-CPU maps:
//! `"values": [{"cpu": N, "value": [...]}, ...]`). `bpfc run --maps-in` and
//! `--maps-out` use an object from map name to such a list.

use anyhow::{anyhow, bail, Context as _};
use bpfc_runtime::maps::{round8, Map};
use serde_json::{json, Value};
use std::sync::Arc;

/// `["0x01", "0x00", ...]`.
pub fn bytes_json(b: &[u8]) -> Value {
    Value::Array(
        b.iter()
            .map(|x| Value::String(format!("{x:#04x}")))
            .collect(),
    )
}

/// The bytes of a `["0x01", ...]` list (plain numbers are accepted too).
pub fn bytes_of(v: &Value, what: &str) -> anyhow::Result<Vec<u8>> {
    let list = v
        .as_array()
        .ok_or_else(|| anyhow!("{what}: expected a list of bytes"))?;
    list.iter()
        .enumerate()
        .map(|(i, x)| {
            let n = match x {
                Value::String(s) => match s.strip_prefix("0x") {
                    Some(h) => u64::from_str_radix(h, 16).ok(),
                    None => s.parse().ok(),
                },
                Value::Number(n) => n.as_u64(),
                _ => None,
            };
            n.filter(|&n| n <= 0xff)
                .map(|n| n as u8)
                .ok_or_else(|| anyhow!("{what}: byte {i} ({x}) is not a byte"))
        })
        .collect()
}

/// One map's entries in bpftool's shape.
pub fn entries(map: &Map) -> anyhow::Result<Value> {
    let mut out = Vec::new();
    if map.spec().key_size == 0 {
        return Ok(Value::Array(out));
    }
    let slot = round8(map.spec().value_size);
    for (k, v) in map
        .entries()
        .map_err(|e| anyhow!("map {}: {e}", map.name()))?
    {
        if map.map_type().is_percpu() {
            let values: Vec<Value> = v
                .chunks(slot)
                .enumerate()
                .map(|(cpu, c)| json!({"cpu": cpu, "value": bytes_json(&c[..map.spec().value_size as usize])}))
                .collect();
            out.push(json!({"key": bytes_json(&k), "values": values}));
        } else {
            out.push(json!({"key": bytes_json(&k), "value": bytes_json(&v)}));
        }
    }
    Ok(Value::Array(out))
}

/// Every map's entries by name (maps without keys are left out).
pub fn dump(maps: &[(String, Arc<Map>)]) -> anyhow::Result<Value> {
    let mut obj = serde_json::Map::new();
    for (name, m) in maps {
        if m.spec().key_size != 0 {
            obj.insert(name.clone(), entries(m)?);
        }
    }
    Ok(Value::Object(obj))
}

/// Update maps from `{name: [entries]}`.
pub fn load(text: &str, maps: &[(String, Arc<Map>)]) -> anyhow::Result<()> {
    let v: Value = serde_json::from_str(text).context("not JSON")?;
    let obj = v
        .as_object()
        .ok_or_else(|| anyhow!("expected an object from map name to entries"))?;
    for (name, list) in obj {
        let Some((_, m)) = maps.iter().find(|(n, _)| n == name) else {
            let known: Vec<&str> = maps.iter().map(|(n, _)| n.as_str()).collect();
            bail!("no map named {name} (the object has {})", known.join(", "));
        };
        let list = list
            .as_array()
            .ok_or_else(|| anyhow!("map {name}: expected a list of entries"))?;
        for (i, e) in list.iter().enumerate() {
            let what = format!("map {name} entry {i}");
            let key = bytes_of(e.get("key").unwrap_or(&Value::Null), &format!("{what} key"))?;
            let value = match (e.get("value"), e.get("values")) {
                (Some(v), _) => {
                    let mut b = bytes_of(v, &format!("{what} value"))?;
                    if m.map_type().is_percpu() {
                        // One value for every CPU slot.
                        b.resize(round8(m.spec().value_size), 0);
                        b.repeat(m.ncpus() as usize)
                    } else {
                        b
                    }
                }
                (None, Some(vs)) => {
                    let slot = round8(m.spec().value_size);
                    let mut b = vec![0u8; m.user_value_size()];
                    for (j, c) in vs.as_array().into_iter().flatten().enumerate() {
                        let cpu = c.get("cpu").and_then(Value::as_u64).unwrap_or(j as u64) as usize;
                        let v = bytes_of(
                            c.get("value").unwrap_or(&Value::Null),
                            &format!("{what} cpu {cpu}"),
                        )?;
                        let at = cpu * slot;
                        if cpu >= m.ncpus() as usize || v.len() > slot {
                            bail!(
                                "{what}: cpu {cpu} does not fit the map's {} CPU slots",
                                m.ncpus()
                            );
                        }
                        b[at..at + v.len()].copy_from_slice(&v);
                    }
                    b
                }
                (None, None) => bail!("{what}: no value"),
            };
            m.update(&key, &value, 0)
                .map_err(|err| anyhow!("{what}: update failed: {err}"))?;
        }
    }
    Ok(())
}
