//! `bpfc map`: bpftool's map commands over bpfc's pinned maps, with
//! bpftool's arguments, output (plain and `-j`/`-p` JSON), error lines
//! (`Error: update failed: File exists`) and exit statuses (255 for bad
//! arguments, 256 - errno for a failed operation).
//!
//! A map is named `pinned FILE`: a map pinned by a bpfc runtime (or created
//! here) in a file system that allows shared mappings, such as /dev/shm.
//! Its `id` is the pinned file's inode number (bpfc has no global map ids);
//! `memlock` is the size of its storage file.

use crate::mapjson::{self, Json, MapTypes};
use crate::output;
use bpfc_runtime::maps::{
    default_pin_dir, errno, flags, strerror, Map, MapError, MapOptions, MapSpec, MapType,
};
use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    /// A command and its arguments, as bpftool takes them (`bpfc map help`).
    #[arg(allow_hyphen_values = true, trailing_var_arg = true, num_args = 0..)]
    words: Vec<String>,
}

const USAGE: &str = "\
Usage: bpfc map { show | list }   [MAP]
       bpfc map create     FILE type TYPE key KEY_SIZE value VALUE_SIZE \\
                               entries MAX_ENTRIES name NAME [flags FLAGS] \\
                               [inner_map MAP]
       bpfc map dump       MAP
       bpfc map update     MAP [key DATA] [value VALUE] [UPDATE_FLAGS]
       bpfc map lookup     MAP [key DATA]
       bpfc map getnext    MAP [key DATA]
       bpfc map delete     MAP  key DATA
       bpfc map peek       MAP
       bpfc map push       MAP value VALUE
       bpfc map pop        MAP
       bpfc map enqueue    MAP value VALUE
       bpfc map dequeue    MAP
       bpfc map help

       MAP := pinned FILE
       DATA := { [hex] BYTES }
       VALUE := DATA
       UPDATE_FLAGS := { any | exist | noexist }
       TYPE := { hash | array | percpu_hash | percpu_array | lru_hash |
                 lru_percpu_hash | lpm_trie | queue | stack | bloom_filter | ... }
       OPTIONS := { {-j|--json} [{-p|--pretty}] }
";

/// A failed command: bpftool's message and the exit status.
struct Fail {
    msg: String,
    status: i32,
}

impl Fail {
    /// Bad arguments and the like (bpftool returns -1).
    fn arg(msg: impl Into<String>) -> Fail {
        Fail {
            msg: msg.into(),
            status: 255,
        }
    }

    /// A failed operation (bpftool returns -errno).
    fn errno(msg: impl Into<String>, e: i32) -> Fail {
        Fail {
            msg: msg.into(),
            status: (256 - e.clamp(1, 255)) & 0xff,
        }
    }
}

/// What a command printed and its exit status (a lookup that finds
/// nothing prints and still fails).
struct Done {
    out: String,
    status: i32,
}

impl Done {
    fn ok(out: String) -> Done {
        Done { out, status: 0 }
    }
}

struct Ctx {
    json: bool,
    pretty: bool,
}

impl Ctx {
    /// A JSON value as the command's output.
    fn json(&self, v: &Json) -> String {
        format!("{}\n", v.write(self.pretty))
    }
}

pub fn main(a: Args) -> anyhow::Result<()> {
    let mut ctx = Ctx {
        json: false,
        pretty: false,
    };
    let mut words = Vec::new();
    for w in a.words {
        match w.as_str() {
            "-j" | "--json" => ctx.json = true,
            "-p" | "--pretty" => {
                ctx.json = true;
                ctx.pretty = true;
            }
            "-jp" | "-pj" => {
                ctx.json = true;
                ctx.pretty = true;
            }
            _ => words.push(w),
        }
    }
    match run(&ctx, &words) {
        Ok(done) => {
            output::print(&done.out)?;
            if done.status != 0 {
                std::process::exit(done.status);
            }
            Ok(())
        }
        Err(f) => {
            if ctx.json {
                let v = Json::obj(vec![("error", Json::Str(f.msg))]);
                output::print(ctx.json(&v))?;
            } else {
                let _ = writeln!(std::io::stderr(), "Error: {}", f.msg);
            }
            std::process::exit(f.status)
        }
    }
}

fn run(ctx: &Ctx, w: &[String]) -> Result<Done, Fail> {
    let Some(cmd) = w.first() else {
        return usage();
    };
    let rest = &w[1..];
    match cmd.as_str() {
        "show" | "list" => show(ctx, rest),
        "dump" => dump(ctx, rest),
        "lookup" | "peek" => lookup(ctx, rest),
        "update" | "push" | "enqueue" => update(ctx, rest),
        "delete" => delete(ctx, rest),
        "getnext" => getnext(ctx, rest),
        "pop" | "dequeue" => pop(ctx, rest),
        "create" => create(ctx, rest),
        "help" => {
            let _ = std::io::stderr().write_all(USAGE.as_bytes());
            Ok(Done::ok(if ctx.json {
                ctx.json(&Json::null())
            } else {
                String::new()
            }))
        }
        _ => usage(),
    }
}

fn usage() -> Result<Done, Fail> {
    let _ = std::io::stderr().write_all(USAGE.as_bytes());
    Err(Fail::arg("unknown or missing map command (see above)"))
}

/// `MAP := pinned FILE`: the open map and the words after it.
fn open_map(w: &[String]) -> Result<(Arc<Map>, PathBuf, &[String]), Fail> {
    match w.first().map(String::as_str) {
        Some("pinned") => {}
        Some("id" | "name") => {
            return Err(Fail::arg(
                "bpfc maps are reached through their pinned files only (MAP := pinned FILE)",
            ))
        }
        Some(x) => return Err(Fail::arg(format!("expected 'pinned', got: '{x}'"))),
        None => return Err(Fail::arg("expected 'pinned FILE'")),
    }
    let path = w
        .get(1)
        .ok_or_else(|| Fail::arg("expected a file after 'pinned'"))?;
    let path = PathBuf::from(path);
    let map = Map::open_pinned(&path, None).map_err(|e| open_error(&path, &e))?;
    Ok((map, path, &w[2..]))
}

fn open_error(path: &Path, e: &MapError) -> Fail {
    match e.reason() {
        Some(r) if r.starts_with("cannot open pinned map") => Fail::arg(format!(
            "bpf obj get ({}): {}",
            path.display(),
            strerror(e.code())
        )),
        Some(r) => Fail::arg(r.to_string()),
        None => Fail::arg(format!("{}: {}", path.display(), strerror(e.code()))),
    }
}

/// bpftool's `is_prefix`: `w` starts the keyword.
fn is_prefix(w: &str, keyword: &str) -> bool {
    keyword.starts_with(w)
}

/// C's `strtoul(s, &end, base)` with the whole string consumed (base 0:
/// `0x` hex, leading `0` octal, else decimal; base 16 takes a `0x` too).
fn strtoul(s: &str, base: u32) -> Option<u64> {
    let (neg, body) = match s.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (radix, digits) = match base {
        16 => (
            16,
            body.strip_prefix("0x")
                .or_else(|| body.strip_prefix("0X"))
                .unwrap_or(body),
        ),
        _ => {
            if let Some(h) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
                (16, h)
            } else if body.len() > 1 && body.starts_with('0') {
                (8, &body[1..])
            } else {
                (10, body)
            }
        }
    };
    let v = if digits.is_empty() {
        // strtoul of "" (or a bare "0x") parses nothing and leaves no rest.
        if body.is_empty() || body == "0" {
            0
        } else {
            return None;
        }
    } else {
        u64::from_str_radix(digits, radix).ok()?
    };
    Some(if neg { v.wrapping_neg() } else { v })
}

/// `[hex] BYTES`: exactly `n` bytes for `what`, and the words after them.
fn parse_bytes<'a>(w: &'a [String], what: &str, n: usize) -> Result<(Vec<u8>, &'a [String]), Fail> {
    let (base, w) = match w.first() {
        Some(h) if !h.is_empty() && is_prefix(h, "hex") => (16, &w[1..]),
        _ => (0, w),
    };
    let mut out = Vec::with_capacity(n);
    while out.len() < n && out.len() < w.len() {
        let s = &w[out.len()];
        let v = strtoul(s, base).ok_or_else(|| Fail::arg(format!("error parsing byte: {s}")))?;
        out.push(v as u8);
    }
    if out.len() != n {
        return Err(Fail::arg(format!(
            "{what} expected {n} bytes got {}",
            out.len()
        )));
    }
    Ok((out, &w[n..]))
}

/// What an element command takes.
struct Elem {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    flags: u64,
}

/// bpftool's `parse_elem`: `key DATA`, `value DATA`, an update flag, in any
/// order; `want_key`/`want_value` say which the command takes (keyless maps
/// take no key).
fn parse_elem(map: &Map, mut w: &[String], want_key: bool, want_value: bool) -> Result<Elem, Fail> {
    let ks = map.key_size();
    let vs = map.spec().value_size as usize;
    let mut e = Elem {
        key: None,
        value: None,
        flags: flags::BPF_ANY,
    };
    let mut need_key = want_key && ks != 0;
    let mut need_value = want_value;
    let mut flag_seen = false;
    while let Some(word) = w.first() {
        if is_prefix(word, "key") {
            if !need_key {
                return Err(Fail::arg(if ks != 0 {
                    "duplicate key"
                } else {
                    "unnecessary key"
                }));
            }
            let (k, rest) = parse_bytes(&w[1..], "key", ks)?;
            e.key = Some(k);
            need_key = false;
            w = rest;
        } else if is_prefix(word, "value") {
            if !need_value {
                return Err(Fail::arg(if e.value.is_some() {
                    "duplicate value"
                } else {
                    "unnecessary value"
                }));
            }
            if map.map_type().holds_references() {
                return Err(Fail::arg(format!(
                    "values of a {} map name other objects; bpfc map cannot set them",
                    map.map_type()
                )));
            }
            let (v, rest) = parse_bytes(&w[1..], "value", vs)?;
            // Per-CPU maps: the one value typed goes to every CPU.
            let user = if map.map_type().is_percpu() {
                let step = vs.div_ceil(8) * 8;
                let mut all = vec![0u8; map.user_value_size()];
                for c in 0..map.ncpus() as usize {
                    all[c * step..c * step + vs].copy_from_slice(&v);
                }
                all
            } else {
                v
            };
            e.value = Some(user);
            need_value = false;
            w = rest;
        } else if !flag_seen && is_prefix(word, "any") {
            e.flags = flags::BPF_ANY;
            flag_seen = true;
            w = &w[1..];
        } else if !flag_seen && is_prefix(word, "noexist") {
            e.flags = flags::BPF_NOEXIST;
            flag_seen = true;
            w = &w[1..];
        } else if !flag_seen && is_prefix(word, "exist") {
            e.flags = flags::BPF_EXIST;
            flag_seen = true;
            w = &w[1..];
        } else {
            return Err(Fail::arg(format!("expected key or value, got: {word}")));
        }
    }
    if need_key {
        return Err(Fail::arg("did not find key"));
    }
    if need_value {
        return Err(Fail::arg("did not find value"));
    }
    Ok(e)
}

/// bpftool's `fprint_hex`: bytes separated by spaces, two after every 8th,
/// a newline after every 16th.
fn fprint_hex(b: &[u8]) -> String {
    let mut s = String::new();
    for (i, x) in b.iter().enumerate() {
        if i == 0 {
        } else if i % 16 == 0 {
            s.push('\n');
        } else if i % 8 == 0 {
            s.push_str("  ");
        } else {
            s.push(' ');
        }
        s.push_str(&format!("{x:02x}"));
    }
    s
}

/// One element in bpftool's plain form.
fn entry_plain(map: &Map, key: &[u8], value: &[u8]) -> String {
    let ks = map.key_size();
    let vs = map.spec().value_size as usize;
    let mut s = String::new();
    if !map.map_type().is_percpu() {
        let break_names = ks > 16 || vs > 16;
        let single_line = ks + vs <= 24 && !break_names;
        let brk = if break_names { '\n' } else { ' ' };
        if ks != 0 {
            s.push_str(&format!("key:{brk}{}", fprint_hex(key)));
            s.push_str(if single_line { "  " } else { "\n" });
        }
        if vs != 0 {
            s.push_str(&format!("value:{brk}{}", fprint_hex(value)));
        }
        s.push('\n');
    } else {
        if ks != 0 {
            s.push_str(&format!("key:\n{}\n", fprint_hex(key)));
        }
        let step = vs.div_ceil(8) * 8;
        for c in 0..map.ncpus() as usize {
            let brk = if vs > 16 { '\n' } else { ' ' };
            s.push_str(&format!(
                "value (CPU {c:02}):{brk}{}\n",
                fprint_hex(&value[c * step..c * step + vs])
            ));
        }
    }
    s
}

/// An element as a lookup, peek or pop prints it.
fn print_elem(ctx: &Ctx, map: &Map, key: &[u8], value: &[u8]) -> String {
    let types = MapTypes::of(map);
    if ctx.json {
        ctx.json(&mapjson::entry(map, types.as_ref(), key, value))
    } else if let Some(t) = &types {
        format!(
            "{}\n",
            mapjson::formatted(map, t, key, value, true).write(true)
        )
    } else {
        entry_plain(map, key, value)
    }
}

fn ok_or_null(ctx: &Ctx) -> Done {
    Done::ok(if ctx.json {
        ctx.json(&Json::null())
    } else {
        String::new()
    })
}

fn no_more_args(w: &[String]) -> Result<(), Fail> {
    match w.first() {
        None => Ok(()),
        Some(x) => Err(Fail::arg(format!("unexpected argument: {x}"))),
    }
}

fn show_one(path: &Path, map: &Map) -> (String, Json) {
    let s = map.spec();
    let meta = std::fs::metadata(path).ok();
    let id = meta.as_ref().map_or(0, |m| m.ino());
    let memlock = meta.as_ref().map_or(0, |m| m.len());
    let text = format!(
        "{id}: {}  name {}  flags 0x{:x}\n\tkey {}B  value {}B  max_entries {}  memlock {memlock}B\n",
        s.map_type, s.name, s.flags, s.key_size, s.value_size, s.max_entries
    );
    let json = Json::obj(vec![
        ("id", Json::num(id)),
        ("type", Json::Str(s.map_type.name().into())),
        ("name", Json::Str(s.name.clone())),
        ("flags", Json::num(s.flags)),
        ("bytes_key", Json::num(s.key_size)),
        ("bytes_value", Json::num(s.value_size)),
        ("max_entries", Json::num(s.max_entries)),
        ("bytes_memlock", Json::num(memlock)),
        ("frozen", Json::num(u8::from(map.is_frozen()))),
    ]);
    (text, json)
}

/// Files under `dir` (recursively) that open as bpfc maps.
fn pinned_maps(dir: &Path, out: &mut Vec<(PathBuf, Arc<Map>)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            pinned_maps(&p, out);
        } else if let Ok(m) = Map::open_pinned(&p, None) {
            out.push((p, m));
        }
    }
}

fn show(ctx: &Ctx, w: &[String]) -> Result<Done, Fail> {
    let maps = if w.is_empty() {
        let mut v = Vec::new();
        pinned_maps(&default_pin_dir(), &mut v);
        v
    } else {
        let (m, path, rest) = open_map(w)?;
        no_more_args(rest)?;
        vec![(path, m)]
    };
    let shown: Vec<(String, Json)> = maps.iter().map(|(p, m)| show_one(p, m)).collect();
    if ctx.json {
        let v = if w.is_empty() {
            Json::Array(shown.into_iter().map(|(_, j)| j).collect())
        } else {
            shown
                .into_iter()
                .next()
                .map(|(_, j)| j)
                .unwrap_or(Json::null())
        };
        return Ok(Done::ok(ctx.json(&v)));
    }
    Ok(Done::ok(shown.into_iter().map(|(t, _)| t).collect()))
}

/// (key, value) pairs.
type Elements = Vec<(Vec<u8>, Vec<u8>)>;

/// The elements in `get_next_key` order, as bpftool's dump walks them, and
/// the exit status: a walk that fails other than with `ENOENT` (keyless
/// maps: `EINVAL`) ends the dump with that errno, after what it found.
fn walk(map: &Map) -> (Elements, i32) {
    let mut out = Vec::new();
    let mut cur: Option<Vec<u8>> = None;
    let mut next = vec![0u8; map.key_size()];
    // Bounded: a map changing under the walk cannot make it loop forever.
    for _ in 0..=map.spec().max_entries as usize + 1 {
        match map.get_next_key(cur.as_deref(), &mut next) {
            Ok(()) => {
                let mut v = vec![0u8; map.user_value_size()];
                // A key deleted meanwhile is left out.
                if map.lookup(&next, &mut v).is_ok() {
                    out.push((next.clone(), v));
                }
                cur = Some(next.clone());
            }
            Err(e) if e.code() == errno::ENOENT => return (out, 0),
            Err(e) => return (out, 256 - e.code().clamp(1, 255)),
        }
    }
    (out, 0)
}

fn dump(ctx: &Ctx, w: &[String]) -> Result<Done, Fail> {
    let (map, _, rest) = open_map(w)?;
    no_more_args(rest)?;
    let (elems, status) = walk(&map);
    let types = MapTypes::of(&map);
    let out = if ctx.json {
        let list = elems
            .iter()
            .map(|(k, v)| mapjson::entry(&map, types.as_ref(), k, v))
            .collect();
        ctx.json(&Json::Array(list))
    } else if let Some(t) = &types {
        let list = elems
            .iter()
            .map(|(k, v)| mapjson::formatted(&map, t, k, v, true))
            .collect();
        format!("{}\n", Json::Array(list).write(true))
    } else {
        let mut s: String = elems.iter().map(|(k, v)| entry_plain(&map, k, v)).collect();
        let n = elems.len();
        s.push_str(&format!(
            "Found {n} element{}\n",
            if n == 1 { "" } else { "s" }
        ));
        s
    };
    Ok(Done { out, status })
}

fn lookup(ctx: &Ctx, w: &[String]) -> Result<Done, Fail> {
    let (map, _, rest) = open_map(w)?;
    let e = parse_elem(&map, rest, true, false)?;
    let key = e.key.unwrap_or_default();
    let mut value = vec![0u8; map.user_value_size()];
    match map.lookup(&key, &mut value) {
        Ok(()) => Ok(Done::ok(print_elem(ctx, &map, &key, &value))),
        Err(err) if err.code() == errno::ENOENT => Ok(Done {
            out: if ctx.json {
                ctx.json(&Json::null())
            } else {
                format!("key:\n{}\n\nNot found\n", fprint_hex(&key))
            },
            status: 256 - errno::ENOENT,
        }),
        Err(err) => Err(Fail::errno(
            format!("lookup failed: {}", strerror(err.code())),
            err.code(),
        )),
    }
}

fn update(ctx: &Ctx, w: &[String]) -> Result<Done, Fail> {
    let (map, _, rest) = open_map(w)?;
    let e = parse_elem(&map, rest, true, true)?;
    let key = e.key.unwrap_or_default();
    let value = e.value.unwrap_or_default();
    map.update(&key, &value, e.flags).map_err(|err| {
        Fail::errno(
            format!("update failed: {}", strerror(err.code())),
            err.code(),
        )
    })?;
    Ok(ok_or_null(ctx))
}

fn delete(ctx: &Ctx, w: &[String]) -> Result<Done, Fail> {
    let (map, _, rest) = open_map(w)?;
    let e = parse_elem(&map, rest, true, false)?;
    let key = e.key.unwrap_or_default();
    map.delete(&key).map_err(|err| {
        Fail::errno(
            format!("delete failed: {}", strerror(err.code())),
            err.code(),
        )
    })?;
    Ok(ok_or_null(ctx))
}

fn getnext(ctx: &Ctx, w: &[String]) -> Result<Done, Fail> {
    let (map, _, rest) = open_map(w)?;
    let key = if rest.is_empty() {
        None
    } else {
        parse_elem(&map, rest, true, false)?.key
    };
    let mut next = vec![0u8; map.key_size()];
    map.get_next_key(key.as_deref(), &mut next).map_err(|err| {
        Fail::errno(
            format!("can't get next key: {}", strerror(err.code())),
            err.code(),
        )
    })?;
    if ctx.json {
        let v = Json::obj(vec![
            (
                "key",
                key.as_deref().map_or(Json::null(), mapjson::hex_list),
            ),
            ("next_key", mapjson::hex_list(&next)),
        ]);
        return Ok(Done::ok(ctx.json(&v)));
    }
    let k = match &key {
        Some(k) => format!("key:\n{}\n", fprint_hex(k)),
        None => "key: None\n".to_string(),
    };
    Ok(Done::ok(format!("{k}next key:\n{}\n", fprint_hex(&next))))
}

fn pop(ctx: &Ctx, w: &[String]) -> Result<Done, Fail> {
    let (map, _, rest) = open_map(w)?;
    let e = parse_elem(&map, rest, true, false)?;
    let key = e.key.unwrap_or_default();
    let mut value = vec![0u8; map.user_value_size()];
    match map.lookup_and_delete(&key, &mut value, 0) {
        Ok(()) => Ok(Done::ok(print_elem(ctx, &map, &key, &value))),
        // bpftool prints this one on standard output.
        Err(err) if err.code() == errno::ENOENT => Ok(Done {
            out: if ctx.json {
                ctx.json(&Json::null())
            } else {
                "Error: empty map\n".to_string()
            },
            status: 256 - errno::ENOENT,
        }),
        Err(err) => Err(Fail::errno(
            format!("pop failed: {}", strerror(err.code())),
            err.code(),
        )),
    }
}

/// `create FILE type TYPE key N value N entries N name NAME [flags N]
/// [inner_map MAP]`: create the map and pin it at FILE.
fn create(ctx: &Ctx, w: &[String]) -> Result<Done, Fail> {
    let path = PathBuf::from(
        w.first()
            .ok_or_else(|| Fail::arg("expected a file to pin the map at"))?,
    );
    let mut w = &w[1..];
    let mut t: Option<MapType> = None;
    let mut name: Option<String> = None;
    let mut nums: [Option<u32>; 4] = [None; 4];
    let mut inner: Option<Arc<Map>> = None;
    const WHAT: [&str; 4] = ["key size", "value size", "max entries", "flags"];
    while let Some(word) = w.first() {
        let arg = |w: &[String]| -> Result<String, Fail> {
            w.get(1)
                .cloned()
                .ok_or_else(|| Fail::arg(format!("expected an argument after {word}")))
        };
        let slot = ["key", "value", "entries", "flags"]
            .iter()
            .position(|k| is_prefix(word, k) && !word.is_empty());
        if is_prefix(word, "type") && !word.is_empty() {
            let a = arg(w)?;
            if t.is_some() {
                return Err(Fail::arg("map type already specified"));
            }
            t = Some(
                MapType::from_name(&a)
                    .ok_or_else(|| Fail::arg(format!("unrecognized map type: {a}")))?,
            );
            w = &w[2..];
        } else if is_prefix(word, "name") && !word.is_empty() {
            name = Some(arg(w)?);
            w = &w[2..];
        } else if let Some(i) = slot {
            let a = arg(w)?;
            if nums[i].is_some() {
                return Err(Fail::arg(format!("{} already specified", WHAT[i])));
            }
            let v = strtoul(&a, 0)
                .ok_or_else(|| Fail::arg(format!("can't parse {a} as {}", WHAT[i])))?;
            nums[i] = Some(v as u32);
            w = &w[2..];
        } else if is_prefix(word, "inner_map") && !word.is_empty() {
            let (m, _, rest) = open_map(&w[1..])?;
            inner = Some(m);
            w = rest;
        } else if word == "dev" || word == "offload_dev" {
            return Err(Fail::arg("bpfc maps cannot be offloaded to a device"));
        } else {
            return Err(Fail::arg(format!("unknown arg {word}")));
        }
    }
    let name = name.ok_or_else(|| Fail::arg("map name not specified"))?;
    let spec = MapSpec {
        inner: inner.map(|m| Box::new(m.spec().clone())),
        ..MapSpec::new(
            &name,
            t.unwrap_or(MapType::Unspec),
            nums[0].unwrap_or(0),
            nums[1].unwrap_or(0),
            nums[2].unwrap_or(0),
            nums[3].unwrap_or(0),
        )
    };
    // The map's storage file is made in the pin file's directory, so that
    // pinning can name it there.
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let opts = MapOptions {
        pin_dir: dir,
        ..MapOptions::default()
    };
    let map = Map::create_with(&spec, &opts).map_err(|e| {
        let why = e.reason().map_or(String::new(), |r| format!(" ({r})"));
        Fail::arg(format!("map create failed: {}{why}", strerror(e.code())))
    })?;
    map.pin(&path).map_err(|e| {
        Fail::errno(
            format!(
                "can't pin the object ({}): {}",
                path.display(),
                strerror(e.code())
            ),
            e.code(),
        )
    })?;
    Ok(ok_or_null(ctx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtoul_like_c() {
        assert_eq!(strtoul("17", 0), Some(17));
        assert_eq!(strtoul("017", 0), Some(15));
        assert_eq!(strtoul("0x1f", 0), Some(31));
        assert_eq!(strtoul("1f", 16), Some(31));
        assert_eq!(strtoul("0x1f", 16), Some(31));
        assert_eq!(strtoul("0", 0), Some(0));
        assert_eq!(strtoul("value", 0), None);
        assert_eq!(strtoul("-1", 0).map(|v| v as u8), Some(255));
    }

    #[test]
    fn hex_lines_as_bpftool() {
        let b: Vec<u8> = (0..20).collect();
        assert_eq!(
            fprint_hex(&b),
            "00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f\n10 11 12 13"
        );
    }
}
