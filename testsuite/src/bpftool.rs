//! `bpftool btf dump file X format raw` read into a small type table, so
//! tests can check bpfc's BTF, CO-RE and map results against an independent
//! tool rather than against numbers written into the test.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// One type line of the raw dump and the member lines under it.
#[derive(Clone, Debug, Default)]
pub struct RawType {
    /// `STRUCT`, `INT`, `PTR` ...
    pub kind: String,
    /// The quoted name (`(anon)` for none).
    pub name: String,
    /// `key=value` attributes of the type line (`size`, `type_id`, `nr_elems` ...).
    pub attrs: BTreeMap<String, String>,
    /// The member/enumerator/variable lines, each as its quoted name (empty if
    /// none) and its `key=value` attributes.
    pub members: Vec<(String, BTreeMap<String, String>)>,
}

impl RawType {
    pub fn attr(&self, key: &str) -> Option<u64> {
        let v = self.attrs.get(key)?;
        v.parse().ok()
    }
}

/// A whole raw dump, by type id.
#[derive(Clone, Debug, Default)]
pub struct RawBtf {
    pub types: BTreeMap<u32, RawType>,
}

/// Whether `bpftool` can be run; prints a skip line (or fails under
/// `BPFC_TEST_REQUIRE=all`) when it cannot.
pub fn available(test: &str) -> bool {
    crate::tool_or_skip(test, "bpftool", "version")
}

fn attrs(text: &str) -> BTreeMap<String, String> {
    // Drop quoted names first: they may contain '='.
    let mut plain = String::new();
    let mut quoted = false;
    for c in text.chars() {
        if c == '\'' {
            quoted = !quoted;
        } else if !quoted {
            plain.push(c);
        }
    }
    plain
        .split_whitespace()
        .filter_map(|tok| tok.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_end_matches(',').to_string()))
        .collect()
}

fn quoted(text: &str) -> String {
    text.split('\'').nth(1).unwrap_or("").to_string()
}

/// Parse the text of a raw dump.
pub fn parse_raw(text: &str) -> RawBtf {
    let mut out = RawBtf::default();
    let mut cur: Option<u32> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix('[') {
            let Some((id, rest)) = rest.split_once("] ") else {
                continue;
            };
            let Ok(id) = id.parse() else { continue };
            let (kind, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            out.types.insert(
                id,
                RawType {
                    kind: kind.to_string(),
                    name: quoted(rest),
                    attrs: attrs(rest),
                    members: Vec::new(),
                },
            );
            cur = Some(id);
        } else if let (Some(sub), Some(id)) = (line.strip_prefix('\t'), cur) {
            let t = out.types.get_mut(&id).unwrap();
            t.members.push((quoted(sub), attrs(sub)));
        }
    }
    out
}

/// Run bpftool on a file (an object or raw BTF such as vmlinux) and parse it.
pub fn dump(path: &Path) -> RawBtf {
    let out = Command::new("bpftool")
        .args(["btf", "dump", "file"])
        .arg(path)
        .args(["format", "raw"])
        .output()
        .expect("running bpftool");
    assert!(
        out.status.success(),
        "bpftool btf dump failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    parse_raw(&String::from_utf8(out.stdout).unwrap())
}

impl RawBtf {
    pub fn get(&self, id: u32) -> &RawType {
        self.types
            .get(&id)
            .unwrap_or_else(|| panic!("bpftool dump has no type {id}"))
    }

    /// Id of the first type of this kind and name.
    pub fn find(&self, kind: &str, name: &str) -> Option<u32> {
        self.types
            .iter()
            .find(|(_, t)| t.kind == kind && t.name == name)
            .map(|(&id, _)| id)
    }

    /// Skip typedefs, modifiers and type tags.
    pub fn skip_mods(&self, mut id: u32) -> u32 {
        loop {
            let t = self.get(id);
            match t.kind.as_str() {
                "TYPEDEF" | "CONST" | "VOLATILE" | "RESTRICT" | "TYPE_TAG" => {
                    id = t.attr("type_id").unwrap() as u32
                }
                _ => return id,
            }
        }
    }

    /// Size in bytes of a type.
    pub fn size_of(&self, id: u32) -> u64 {
        let id = self.skip_mods(id);
        let t = self.get(id);
        match t.kind.as_str() {
            "PTR" => 8,
            "ARRAY" => {
                self.size_of(t.attr("type_id").unwrap() as u32) * t.attr("nr_elems").unwrap()
            }
            _ => t
                .attr("size")
                .unwrap_or_else(|| panic!("type {id} ({}) has no size", t.kind)),
        }
    }

    /// The member `name` of struct/union `id`: (type id, bit offset).
    pub fn member(&self, id: u32, name: &str) -> Option<(u32, u64)> {
        let t = self.get(self.skip_mods(id));
        t.members.iter().find(|(n, _)| n == name).map(|(_, a)| {
            (
                a["type_id"].parse().unwrap(),
                a["bits_offset"].parse().unwrap(),
            )
        })
    }

    /// Member `index` of struct/union `id`: (name, type id, bit offset).
    pub fn member_at(&self, id: u32, index: usize) -> (String, u32, u64) {
        let t = self.get(self.skip_mods(id));
        let (n, a) = &t.members[index];
        (
            n.clone(),
            a["type_id"].parse().unwrap(),
            a["bits_offset"].parse().unwrap(),
        )
    }

    /// The value of enumerator `name` of enum `id`.
    pub fn enum_value(&self, id: u32, name: &str) -> Option<i64> {
        let t = self.get(self.skip_mods(id));
        t.members.iter().find(|(n, _)| n == name).map(|(_, a)| {
            a["val"]
                .trim_end_matches("ULL")
                .trim_end_matches("LL")
                .parse()
                .unwrap()
        })
    }

    /// Follow a CO-RE field access string of a struct of `local` through this
    /// BTF by member names, as libbpf matches fields: the byte offset and size
    /// of the field in this BTF, or `None` when a member is missing.
    pub fn core_field(&self, local: &RawBtf, local_root: u32, access: &str) -> Option<(u64, u64)> {
        let idx: Vec<usize> = access.split(':').map(|s| s.parse().unwrap()).collect();
        let root_name = &local.get(local.skip_mods(local_root)).name;
        let root = self.find("STRUCT", root_name)?;
        let mut bits = idx[0] as u64 * self.size_of(root) * 8;
        let (mut lid, mut tid) = (local_root, root);
        for &i in &idx[1..] {
            let lt = local.get(local.skip_mods(lid));
            if lt.kind == "ARRAY" {
                lid = lt.attr("type_id").unwrap() as u32;
                let tt = self.get(self.skip_mods(tid));
                tid = tt.attr("type_id").unwrap() as u32;
                bits += i as u64 * self.size_of(tid) * 8;
                continue;
            }
            let (name, ltype, _) = local.member_at(lid, i);
            let (ttype, off) = self.member(tid, &name)?;
            bits += off;
            lid = ltype;
            tid = ttype;
        }
        Some((bits / 8, self.size_of(tid)))
    }
}
