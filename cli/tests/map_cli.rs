//! `bpfc map` against `bpftool map`: the same commands on a kernel map
//! pinned on bpffs and on a bpfc map pinned in /dev/shm, with the same
//! definition, BTF and contents, must print the same (stdout and stderr)
//! and exit alike. Where bpftool's output depends on the kernel (ids,
//! memlock, a hash map's order, `btf_id`) the comparison says so.
//! Also: a round trip through a pinned map with a second process, and
//! bpfc-only errors.

use bpfc_runtime::maps::{Map, MapBtf, MapOptions, MapSpec, MapType};
use bpfc_testsuite::kernel::{self, KernelMap, MapCreate};
use bpfc_testsuite::rawbtf::{BtfBuilder, INT_BOOL, INT_CHAR, INT_SIGNED};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// (exit status, stdout, stderr)
type Run = (i32, String, String);

fn exec(cmd: &str, args: &[String]) -> Run {
    let out = Command::new(cmd).args(args).output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn bpfc(args: &[String]) -> Run {
    exec(env!("CARGO_BIN_EXE_bpfc"), args)
}

/// Split a command line, `@` standing for `pinned PATH`.
fn words(line: &str, path: &Path) -> Vec<String> {
    line.split_whitespace()
        .flat_map(|w| {
            if w == "@" {
                vec!["pinned".to_string(), path.display().to_string()]
            } else {
                vec![w.to_string()]
            }
        })
        .collect()
}

/// A kernel map pinned on bpffs and a bpfc map pinned in /dev/shm with the
/// same definition and BTF; both pins removed on drop.
struct Pair {
    kpath: PathBuf,
    bpath: PathBuf,
    _kernel: KernelMap,
    _bpfc: Arc<Map>,
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.kpath);
        if let Some(dir) = self.bpath.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Removes the paths on drop (also when a test fails).
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

fn pair(tag: &str, spec: &MapSpec) -> Pair {
    let kpath = PathBuf::from(format!(
        "/sys/fs/bpf/bpfc-mapcli-{}-{tag}",
        std::process::id()
    ));
    let dir = PathBuf::from(format!("/dev/shm/bpfc-mapcli-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bpath = dir.join(tag);
    let _ = std::fs::remove_file(&kpath);
    let _ = std::fs::remove_file(&bpath);
    let btf_fd = spec
        .btf
        .as_ref()
        .map(|b| kernel::btf_load(&b.raw).unwrap_or_else(|(e, log)| panic!("{e}\n{log}")));
    let mut c = MapCreate::new(
        spec.map_type as u32,
        spec.key_size,
        spec.value_size,
        spec.max_entries,
    )
    .flags(spec.flags)
    .name(&spec.name);
    if let (Some(fd), Some(b)) = (&btf_fd, &spec.btf) {
        c = c.btf(fd.as_fd(), b.key_type_id, b.value_type_id);
    }
    let k = KernelMap::create(&c).unwrap();
    k.pin(&kpath).unwrap();
    let opts = MapOptions {
        pin_dir: dir,
        ..MapOptions::default()
    };
    let b = Map::create_with(spec, &opts).unwrap();
    b.pin(&bpath).unwrap();
    Pair {
        kpath,
        bpath,
        _kernel: k,
        _bpfc: b,
    }
}

/// How two outputs are compared.
#[derive(Clone, Copy, PartialEq)]
enum Cmp {
    /// Byte for byte.
    Exact,
    /// JSON lists compared as sets (a hash map's order is its own).
    JsonSet,
    /// `show`: the same apart from the id and memlock numbers.
    Show,
}

fn normalize_show(r: &Run) -> Run {
    let scrub = |s: &str| -> String {
        if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(s) {
            if let Some(o) = v.as_object_mut() {
                o.insert("id".into(), 0.into());
                o.insert("bytes_memlock".into(), 0.into());
            }
            return v.to_string();
        }
        s.lines()
            .map(|l| {
                let l = match l.split_once(": ") {
                    Some((id, rest)) if id.chars().all(|c| c.is_ascii_digit()) => {
                        format!("ID: {rest}")
                    }
                    _ => l.to_string(),
                };
                match l.find("memlock ") {
                    Some(i) => format!("{}memlock N", &l[..i]),
                    None => l,
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    (r.0, scrub(&r.1), r.2.clone())
}

fn json_set(s: &str) -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON: {e}: {s}"));
    let mut items: Vec<String> = v
        .as_array()
        .expect("a list")
        .iter()
        .map(|x| x.to_string())
        .collect();
    items.sort();
    items
}

/// Run `line` through bpftool on the kernel map and bpfc on the bpfc map.
fn compare(p: &Pair, line: &str, cmp: Cmp, checked: &mut usize) {
    let k = exec("bpftool", &words(line, &p.kpath));
    let b = bpfc(&words(line, &p.bpath));
    let (k, b) = match cmp {
        Cmp::Show => (normalize_show(&k), normalize_show(&b)),
        _ => (k, b),
    };
    let same = match cmp {
        Cmp::JsonSet => k.0 == b.0 && k.2 == b.2 && json_set(&k.1) == json_set(&b.1),
        _ => k == b,
    };
    assert!(
        same,
        "`{line}` differs:\nbpftool (status {}):\n{}{}\nbpfc (status {}):\n{}{}",
        k.0, k.1, k.2, b.0, b.1, b.2
    );
    *checked += 1;
}

fn available(test: &str) -> bool {
    kernel::available(test) && bpfc_testsuite::bpftool::available(test)
}

/// Every command on hash, array, per-CPU and queue maps without BTF.
#[test]
fn plain_maps_print_as_bpftool() {
    if !available("map_cli::plain_maps_print_as_bpftool") {
        return;
    }
    let mut n = 0;
    let mut sh = |spec: MapSpec, lines: &[(&str, Cmp)]| {
        let p = pair(&spec.name.clone(), &spec);
        for (l, c) in lines {
            compare(&p, l, *c, &mut n);
        }
    };
    use Cmp::*;
    sh(
        MapSpec::new("h", MapType::Hash, 4, 8, 3, 0),
        &[
            ("map show @", Show),
            ("-j map show @", Show),
            ("map dump @", Exact),
            ("map -j dump @", Exact),
            (
                "map update @ key 1 0 0 0 value hex 01 02 03 04 05 06 07 08",
                Exact,
            ),
            (
                "map update @ key hex 02 00 00 00 value 9 0 0 0 0 0 0 0x1f noexist",
                Exact,
            ),
            (
                "map update @ key 1 0 0 0 value 1 2 3 4 5 6 7 8 noexist",
                Exact,
            ),
            (
                "-j map update @ key 1 0 0 0 value 1 2 3 4 5 6 7 8 noexist",
                Exact,
            ),
            (
                "map update @ key 7 0 0 0 value 1 2 3 4 5 6 7 8 exist",
                Exact,
            ),
            (
                "map update @ key 1 0 0 0 value 010 2 3 4 5 6 7 8 exist",
                Exact,
            ),
            ("map update @ key 3 0 0 0 value 1 2 3 4 5 6 7 8 any", Exact),
            ("map update @ key 4 0 0 0 value 1 2 3 4 5 6 7 8", Exact),
            ("map update @ key 1 0 0 value 1 2 3 4 5 6 7 8", Exact),
            ("map update @ key 1 0 0 0 0 value 1 2 3 4 5 6 7 8", Exact),
            ("map update @ key 1 0 0 0 value hex 00", Exact),
            (
                "map update @ key 1 0 0 0 value 1 2 3 4 5 6 7 8 bogus",
                Exact,
            ),
            ("map update @ value 1 2 3 4 5 6 7 8", Exact),
            ("-j map dump @", JsonSet),
            ("map dump @ -p", JsonSet),
            ("map lookup @ key 1 0 0 0", Exact),
            ("-j map lookup @ key 1 0 0 0", Exact),
            ("map lookup @ key 7 0 0 0", Exact),
            ("-j map lookup @ key 7 0 0 0", Exact),
            ("map lookup @ key 1 0 0 0 value 1", Exact),
            ("map delete @ key 9 0 0 0", Exact),
            ("-j map delete @ key 9 0 0 0", Exact),
            ("map delete @ key 2 0 0 0", Exact),
            ("map delete @ key 3 0 0 0", Exact),
            ("-j map delete @ key 3 0 0 0", Exact),
            // One element left: the order is no longer the hash's.
            ("map dump @", Exact),
            ("map getnext @", Exact),
            ("-j map getnext @", Exact),
            ("map getnext @ key 1 0 0 0", Exact),
            ("-j map getnext @ key 1 0 0 0", Exact),
            ("map getnext @ key 5 0 0 0", Exact),
            ("map show @", Show),
        ],
    );
    sh(
        MapSpec::new("big", MapType::Array, 4, 40, 3, 0),
        &[
            ("map update @ key 1 0 0 0 value 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40", Exact),
            ("map update @ key 3 0 0 0 value 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40", Exact),
            ("map update @ key 0 0 0 0 value hex 01 noexist", Exact),
            ("map dump @", Exact),
            ("-j map dump @", Exact),
            ("-p map dump @", Exact),
            ("map lookup @ key 1 0 0 0", Exact),
            ("map delete @ key 1 0 0 0", Exact),
            ("map getnext @ key 2 0 0 0", Exact),
            ("-j map show @", Show),
        ],
    );
    sh(
        MapSpec::new("k20", MapType::Hash, 20, 20, 2, 0),
        &[
            ("map update @ key hex 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 01 value 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2", Exact),
            ("map dump @", Exact),
            ("map getnext @", Exact),
            ("-j map dump @", Exact),
        ],
    );
    sh(
        MapSpec::new("k4v20", MapType::Hash, 4, 20, 2, 0),
        &[
            (
                "map update @ key 5 0 0 0 value 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2 2",
                Exact,
            ),
            ("map dump @", Exact),
        ],
    );
    sh(
        MapSpec::new("pc", MapType::PercpuHash, 4, 12, 4, 0),
        &[
            (
                "map update @ key 1 0 0 0 value 1 2 3 4 5 6 7 8 9 10 11 12",
                Exact,
            ),
            ("map dump @", Exact),
            ("-j map dump @", Exact),
            ("map lookup @ key 1 0 0 0", Exact),
            ("-j map lookup @ key 1 0 0 0", Exact),
        ],
    );
    sh(
        MapSpec::new("pca", MapType::PercpuArray, 4, 20, 2, 0),
        &[
            (
                "map update @ key 1 0 0 0 value 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
                Exact,
            ),
            ("map dump @", Exact),
            ("-p map dump @", Exact),
        ],
    );
    // Keyless: only what the runtime has (the queue family lands elsewhere).
    let queue = MapSpec::new("q", MapType::Queue, 0, 4, 2, 0);
    if Map::create_with(&queue, &MapOptions::default()).is_ok() {
        sh(
            queue,
            &[
                ("map push @ value 1 0 0 0", Exact),
                ("-j map enqueue @ value 2 0 0 0", Exact),
                ("map push @ value 3 0 0 0", Exact),
                ("map peek @", Exact),
                ("-j map peek @", Exact),
                ("map pop @", Exact),
                ("-j map dequeue @", Exact),
                ("map pop @", Exact),
                ("-j map pop @", Exact),
                ("map peek @", Exact),
                ("map dump @", Exact),
                ("map update @ key 1 0 0 0 value 1 0 0 0", Exact),
            ],
        );
    } else {
        println!("plain_maps_print_as_bpftool: queue not compared: bpfc cannot create queues yet");
    }
    println!("plain_maps_print_as_bpftool: {n} commands print alike");
}

/// A value struct with most BTF kinds bpftool formats.
fn rich_btf() -> MapBtf {
    let mut b = BtfBuilder::new();
    let u32t = b.int("unsigned int", 4, 0);
    let i64t = b.int("long", 8, INT_SIGNED);
    let chr = b.int("char", 1, INT_SIGNED);
    let c2 = b.int("char", 1, INT_CHAR);
    let s8 = b.int("signed char", 1, INT_SIGNED);
    let boolt = b.int("_Bool", 1, INT_BOOL);
    let u16t = b.int("short unsigned int", 2, 0);
    let name = b.array(chr, u32t, 8);
    let bytes = b.array(chr, u32t, 4);
    let e = b.enum_("color", &[("RED", 0), ("GREEN", 1)]);
    let xs = b.array(u16t, u32t, 3);
    let u8t = b.int("unsigned char", 1, 0);
    let u8x4 = b.array(u8t, u32t, 4);
    let un = b.union("u", 4, &[("w", u32t, 0), ("b", u8x4, 0)]);
    let bf = b.struct_bitfields(
        "bf",
        4,
        &[("lo", u32t, 0, 3), ("mid", u32t, 3, 5), ("hi", u32t, 8, 24)],
    );
    let vp = b.ptr(0);
    let value = b.struct_(
        "val",
        64,
        &[
            ("a", u32t, 0),
            ("name", name, 32),
            ("b", i64t, 128),
            ("c", e, 192),
            ("ok", boolt, 224),
            ("s8", s8, 232),
            ("ch", c2, 240),
            ("xs", xs, 256),
            ("u", un, 320),
            ("bf", bf, 352),
            ("p", vp, 384),
            ("raw", bytes, 448),
        ],
    );
    let key = b.typedef("key_t", u32t);
    MapBtf {
        raw: b.build(),
        key_type_id: key,
        value_type_id: value,
    }
}

fn rich_value(n: u8) -> String {
    let mut v = [0u8; 64];
    v[0] = 7 + n;
    v[4..9].copy_from_slice(b"hello");
    v[16..24].copy_from_slice(&(-5i64 - i64::from(n)).to_ne_bytes());
    v[24] = n % 3; // an enumerator, or a number that is none
    v[28] = 1;
    v[29] = 0xfb;
    v[30] = b'A' + n;
    v[32..34].copy_from_slice(&300u16.to_ne_bytes());
    v[40..44].copy_from_slice(&0x0102_0304u32.to_ne_bytes());
    v[44..48].copy_from_slice(&(5u32 | (9 << 3) | (77 << 8)).to_ne_bytes());
    v[48..56].copy_from_slice(&(0x1234u64 * u64::from(n)).to_ne_bytes());
    v[56..60].copy_from_slice(&[1, 2, 3, 4]);
    v.iter().map(|b| format!("{b} ")).collect()
}

/// Maps with key/value BTF: the `formatted` member and the plain BTF output.
#[test]
fn btf_maps_print_as_bpftool() {
    if !available("map_cli::btf_maps_print_as_bpftool") {
        return;
    }
    use Cmp::*;
    let mut n = 0;
    let spec = MapSpec {
        btf: Some(rich_btf()),
        ..MapSpec::new("rich", MapType::Array, 4, 64, 3, 0)
    };
    let p = pair("rich", &spec);
    for (i, key) in [0u8, 2].iter().enumerate() {
        let line = format!("map update @ key {key} 0 0 0 value {}", rich_value(i as u8));
        compare(&p, &line, Exact, &mut n);
    }
    for (l, c) in [
        ("map dump @", Exact),
        ("-j map dump @", Exact),
        ("-p map dump @", Exact),
        ("map lookup @ key 2 0 0 0", Exact),
        ("-j map lookup @ key 0 0 0 0", Exact),
    ] {
        compare(&p, l, c, &mut n);
    }
    drop(p);
    // Per-CPU values by type.
    let mut b = BtfBuilder::new();
    let u32t = b.int("unsigned int", 4, 0);
    let spec = MapSpec {
        btf: Some(MapBtf {
            raw: b.build(),
            key_type_id: u32t,
            value_type_id: u32t,
        }),
        ..MapSpec::new("pcb", MapType::PercpuArray, 4, 4, 2, 0)
    };
    let p = pair("pcb", &spec);
    for (l, c) in [
        ("map update @ key 1 0 0 0 value 9 1 0 0", Exact),
        ("map dump @", Exact),
        ("-j map dump @", Exact),
        ("map lookup @ key 1 0 0 0", Exact),
    ] {
        compare(&p, l, c, &mut n);
    }
    println!("btf_maps_print_as_bpftool: {n} commands print alike");
}

/// Create errors as bpftool reports them (bpffs for bpftool, /dev/shm for
/// bpfc).
#[test]
fn create_errors_as_bpftool() {
    if !available("map_cli::create_errors_as_bpftool") {
        return;
    }
    let pid = std::process::id();
    let k = PathBuf::from(format!("/sys/fs/bpf/bpfc-mapcli-create-{pid}"));
    let dir = PathBuf::from(format!("/dev/shm/bpfc-mapcli-create-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();
    let b = dir.join("m");
    let _cleanup = Cleanup(vec![k.clone(), dir.clone()]);
    let mut n = 0;
    for (line, strip_reason) in [
        (
            "map create @ type hash key 4 value 8 entries 4 name m",
            false,
        ),
        (
            "-j map create @ type hash key 4 value 8 entries 4 name m",
            false,
        ),
        (
            "map create @ type hash key 4 value 8 entries 4 name m",
            false,
        ),
        (
            "map create @ type nosuch key 4 value 8 entries 4 name m",
            false,
        ),
        ("map create @ type hash key 4 value 8 entries 4", false),
        ("map create @ type hash key 4 key 8 entries 4 name m", false),
        (
            "map create @ type hash key 4x value 8 entries 4 name m",
            false,
        ),
        (
            "map create @ type hash key 0 value 8 entries 4 name m",
            true,
        ),
        (
            "-j map create @ type hash key 0 value 8 entries 4 name m",
            true,
        ),
    ] {
        let w = |p: &Path| -> Vec<String> {
            line.split_whitespace()
                .map(|x| {
                    if x == "@" {
                        p.display().to_string()
                    } else {
                        x.to_string()
                    }
                })
                .collect()
        };
        let mut kr = exec("bpftool", &w(&k));
        let mut br = bpfc(&w(&b));
        for (r, p) in [(&mut kr, &k), (&mut br, &b)] {
            let p = p.display().to_string();
            r.1 = r.1.replace(&p, "PATH");
            r.2 = r.2.replace(&p, "PATH");
        }
        if strip_reason {
            // bpfc adds why after bpftool's line: "... Invalid argument (map m: ...)".
            for s in [&mut br.1, &mut br.2] {
                if let Some(i) = s.find(" (map m") {
                    let eol = s[i..].find('\n').map_or(s.len(), |e| i + e);
                    let end = s[i..eol].rfind(')').map_or(eol, |e| i + e + 1);
                    s.replace_range(i..end, "");
                }
            }
        }
        assert_eq!(kr, br, "`{line}`");
        n += 1;
    }
    println!("create_errors_as_bpftool: {n} commands alike");
}

/// `bpfc map create` makes a map another process opens, `bpfc map` from a
/// second process sees this process's updates as they happen, and this
/// process sees the CLI's.
#[test]
fn round_trip_through_a_pinned_map() {
    let dir = PathBuf::from(format!("/dev/shm/bpfc-mapcli-rt-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = Cleanup(vec![dir.clone()]);
    let path = dir.join("counter");
    let p = path.display().to_string();
    let run = |line: &str| bpfc(&words(line, &path));
    let r = run("map create @ type hash key 4 value 8 entries 8 name counter");
    // `create` takes a path, not `pinned PATH`.
    assert_ne!(r.0, 0);
    let r = bpfc(
        &[
            "map", "create", &p, "type", "hash", "key", "4", "value", "8", "entries", "8", "name",
            "counter",
        ]
        .map(String::from),
    );
    assert_eq!(r, (0, String::new(), String::new()));
    let m = Map::open_pinned(&path, None).unwrap();
    assert_eq!(m.name(), "counter");
    assert_eq!(m.spec().max_entries, 8);
    for i in 1..=3u64 {
        m.update(&1u32.to_ne_bytes(), &(i * 100).to_ne_bytes(), 0)
            .unwrap();
        let r = run("-j map lookup @ key 1 0 0 0");
        assert_eq!(r.0, 0, "{r:?}");
        let v: serde_json::Value = serde_json::from_str(&r.1).unwrap();
        let got: Vec<u8> = v["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| u8::from_str_radix(&b.as_str().unwrap()[2..], 16).unwrap())
            .collect();
        assert_eq!(got, (i * 100).to_ne_bytes(), "the CLI sees update {i}");
    }
    let r = run("map update @ key 2 0 0 0 value 42 0 0 0 0 0 0 0 noexist");
    assert_eq!(r.0, 0, "{r:?}");
    let mut v = [0u8; 8];
    m.lookup(&2u32.to_ne_bytes(), &mut v).unwrap();
    assert_eq!(
        u64::from_ne_bytes(v),
        42,
        "this process sees the CLI's update"
    );
    let r = run("map delete @ key 1 0 0 0");
    assert_eq!(r.0, 0);
    assert!(m.lookup(&1u32.to_ne_bytes(), &mut v).is_err());
    let r = run("map dump @");
    assert_eq!(
        r.1,
        "key: 02 00 00 00  value: 2a 00 00 00 00 00 00 00\nFound 1 element\n"
    );
    // Errors of bpfc's own: a file that is no map, a map by id.
    std::fs::write(dir.join("junk"), b"not a map").unwrap();
    let r = bpfc(&words("map dump @", &dir.join("junk")));
    assert_eq!(r.0, 255);
    assert!(
        r.2.starts_with("Error: ") && r.2.contains("not a bpfc map"),
        "{r:?}"
    );
    let r = bpfc(&["map", "dump", "id", "3"].map(String::from));
    assert_eq!(r.0, 255);
    assert!(r.2.contains("pinned"), "{r:?}");
}
