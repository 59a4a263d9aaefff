//! Applying one operation sequence to two maps and comparing every result,
//! then shrinking a failing sequence. What is compared depends on the case's
//! [`Mode`]:
//!
//! - `Exact`: every result code and every byte returned, `get_next_key`
//!   included, and the whole contents in iteration order.
//! - `HashOrder`: the same, except that the order of keys is each map's own
//!   hash order: `get_next_key` from NULL or an absent key must succeed on
//!   both or fail alike, and each side's answer must be a key it holds;
//!   from a present key each side may answer with any other key it holds
//!   or `ENOENT`; whole walks are compared as sets (no key twice).
//! - `LruEvicting`: which element an LRU map evicts is the kernel's private
//!   choice (per-CPU free lists, their refill targets and its list rotation),
//!   so results cannot be compared one to one. Instead each side is checked
//!   against what its own history allows, and invalid-argument errors must
//!   agree: see [`Shadow`].
//! - `Bloom`: a value that was added must test present on both sides; any
//!   other value may test present on either (false positives depend on the
//!   hash seed); all other results equal.

use super::ops::{hex, Op, ANY, EXIST, NOEXIST};
use super::subject::{BatchOut, Out, Subject};
use super::{Case, Mode};
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

const ENOENT: i32 = libc::ENOENT;
const EEXIST: i32 = libc::EEXIST;
const EINVAL: i32 = libc::EINVAL;
const ENOSPC: i32 = libc::ENOSPC;

/// The errno's symbolic name, for reports.
pub fn errno_name(e: i32) -> String {
    let n = match e {
        1 => "EPERM",
        2 => "ENOENT",
        7 => "E2BIG",
        9 => "EBADF",
        12 => "ENOMEM",
        14 => "EFAULT",
        16 => "EBUSY",
        17 => "EEXIST",
        22 => "EINVAL",
        28 => "ENOSPC",
        95 => "EOPNOTSUPP",
        524 => "ENOTSUPP",
        _ => return format!("errno {e}"),
    };
    n.to_string()
}

pub fn show(o: &Out) -> String {
    match o {
        Ok(b) if b.is_empty() => "ok".into(),
        Ok(b) => format!("ok {}", hex(b)),
        Err(e) => errno_name(*e),
    }
}

fn label(o: &Result<impl Sized, i32>) -> String {
    match o {
        Ok(_) => "ok".into(),
        Err(e) => errno_name(*e),
    }
}

/// Outcome counts per operation kind and result (of the first side).
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub counts: BTreeMap<&'static str, BTreeMap<String, usize>>,
    pub ops: usize,
}

impl Stats {
    fn add(&mut self, kind: &'static str, outcome: String) {
        *self
            .counts
            .entry(kind)
            .or_default()
            .entry(outcome)
            .or_default() += 1;
        self.ops += 1;
    }

    /// `update: ok 3120, EEXIST 512; lookup: ...`
    pub fn summary(&self) -> String {
        self.counts
            .iter()
            .map(|(k, m)| {
                let parts: Vec<String> = m.iter().map(|(o, n)| format!("{o} {n}")).collect();
                format!("{k}: {}", parts.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// What one side of an LRU map that evicts may hold: every key written and
/// not seen gone, with its value, and whether it is certainly there.
/// Any update attempt with valid flags may evict any element, the updated
/// key included (the kernel takes a free node, evicting if it must, before
/// it looks the key up), so it makes every key uncertain; lookups and walks
/// that find a key make it certain again until the next update.
#[derive(Clone, Debug, Default)]
pub struct Shadow {
    m: BTreeMap<Vec<u8>, (Vec<u8>, bool)>,
}

impl Shadow {
    fn forget_certainty(&mut self) {
        for e in self.m.values_mut() {
            e.1 = false;
        }
    }

    fn update(&mut self, key: &[u8], value: &[u8], flags: u64, out: &Out) -> Result<(), String> {
        if flags > EXIST {
            return match out {
                Err(EINVAL) => Ok(()),
                o => Err(format!(
                    "update with flags {flags:#x} gave {}, expected EINVAL",
                    show(o)
                )),
            };
        }
        self.forget_certainty();
        let known = self.m.contains_key(key);
        match (flags, out) {
            (ANY, Ok(_)) | (NOEXIST, Ok(_)) => {}
            (EXIST, Ok(_)) if known => {}
            (NOEXIST, Err(EEXIST)) if known => {
                self.m.get_mut(key).expect("known").1 = true;
                return Ok(());
            }
            (EXIST, Err(ENOENT)) => {
                self.m.remove(key);
                return Ok(());
            }
            (_, o) => {
                return Err(format!(
                    "update of a key {} gave {}",
                    if known {
                        "written before"
                    } else {
                        "never written (or deleted)"
                    },
                    show(o)
                ))
            }
        }
        self.m.insert(key.to_vec(), (value.to_vec(), true));
        Ok(())
    }

    /// A lookup (or lookup-and-delete) found `out`.
    fn read(&mut self, key: &[u8], flags: u64, out: &Out, deletes: bool) -> Result<(), String> {
        if flags != 0 {
            return match out {
                Err(EINVAL) => Ok(()),
                o => Err(format!(
                    "flags {flags:#x} gave {}, expected EINVAL",
                    show(o)
                )),
            };
        }
        match (self.m.get(key), out) {
            (Some((v, _)), Ok(got)) if got == v => {
                if deletes {
                    self.m.remove(key);
                } else {
                    self.m.get_mut(key).expect("present").1 = true;
                }
                Ok(())
            }
            (Some((v, _)), Ok(got)) => Err(format!(
                "value {} where {} was written last",
                hex(got),
                hex(v)
            )),
            (Some((_, true)), Err(e)) => Err(format!(
                "{} for a key that must be there (no update since it was seen)",
                errno_name(*e)
            )),
            (Some(_), Err(ENOENT)) | (None, Err(ENOENT)) => {
                self.m.remove(key);
                Ok(())
            }
            (None, Ok(got)) => Err(format!(
                "found value {} of a key never written (or deleted)",
                hex(got)
            )),
            (_, o) => Err(format!("unexpected {}", show(o))),
        }
    }

    fn delete(&mut self, key: &[u8], out: &Out) -> Result<(), String> {
        match (self.m.get(key), out) {
            (Some(_), Ok(_)) | (Some((_, false)), Err(ENOENT)) | (None, Err(ENOENT)) => {
                self.m.remove(key);
                Ok(())
            }
            (Some((_, true)), o) => Err(format!("delete of a present key gave {}", show(o))),
            (None, o) => Err(format!("delete of a key never written gave {}", show(o))),
            (Some(_), o) => Err(format!("delete gave {}", show(o))),
        }
    }

    fn next_key(&mut self, key: Option<&[u8]>, out: &Out) -> Result<(), String> {
        match out {
            Ok(k) => {
                if Some(k.as_slice()) == key {
                    return Err("get_next_key returned its own key".into());
                }
                match self.m.get_mut(k) {
                    Some(e) => {
                        e.1 = true;
                        Ok(())
                    }
                    None => Err(format!("get_next_key returned {}, never written", hex(k))),
                }
            }
            Err(ENOENT) if key.is_none() => {
                if self.m.values().any(|e| e.1) {
                    return Err("get_next_key(NULL) says empty, a key must be there".into());
                }
                self.m.clear();
                Ok(())
            }
            Err(ENOENT) => Ok(()),
            Err(e) => Err(format!("get_next_key gave {}", errno_name(*e))),
        }
    }

    /// A whole walk saw exactly `pairs`.
    fn walked(&mut self, pairs: &[(Vec<u8>, Out)], limit: usize) -> Result<(), String> {
        if pairs.len() > limit {
            return Err(format!(
                "{} elements in a map of {limit} entries",
                pairs.len()
            ));
        }
        let seen: HashSet<&[u8]> = pairs.iter().map(|(k, _)| k.as_slice()).collect();
        for (k, (_, certain)) in &self.m {
            if *certain && !seen.contains(k.as_slice()) {
                return Err(format!("walk misses {}, which must be there", hex(k)));
            }
        }
        let mut now = BTreeMap::new();
        for (k, v) in pairs {
            let v = match v {
                Ok(v) => v,
                Err(e) => {
                    return Err(format!(
                        "lookup of walked key {} gave {}",
                        hex(k),
                        errno_name(*e)
                    ))
                }
            };
            match self.m.get(k) {
                Some((w, _)) if w == v => {}
                Some((w, _)) => {
                    return Err(format!(
                        "walked key {} has value {}, {} was written last",
                        hex(k),
                        hex(v),
                        hex(w)
                    ))
                }
                None => return Err(format!("walk found {}, never written", hex(k))),
            }
            now.insert(k.clone(), (v.clone(), true));
        }
        self.m = now;
        Ok(())
    }
}

/// How a walk failed: `get_next_key` gave an errno (compared between the
/// sides), or the walk itself is wrong (a key twice, too many keys).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalkError {
    Errno(i32),
    Broken(String),
}

impl From<WalkError> for String {
    fn from(e: WalkError) -> String {
        match e {
            WalkError::Errno(e) => format!("get_next_key walk fails with {}", errno_name(e)),
            WalkError::Broken(s) => s,
        }
    }
}

/// Every key of `s` in its `get_next_key` order; a key seen twice or more
/// keys than `limit` is an error.
pub fn walk(s: &dyn Subject, limit: usize) -> Result<Vec<Vec<u8>>, WalkError> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut seen = HashSet::new();
    let mut cur: Option<Vec<u8>> = None;
    loop {
        match s.next_key(cur.as_deref()) {
            Ok(k) => {
                if !seen.insert(k.clone()) {
                    return Err(WalkError::Broken(format!(
                        "{}: get_next_key walk returns {} twice",
                        s.side(),
                        hex(&k)
                    )));
                }
                out.push(k.clone());
                if out.len() > limit {
                    return Err(WalkError::Broken(format!(
                        "{}: get_next_key walk goes past {limit} keys",
                        s.side()
                    )));
                }
                cur = Some(k);
            }
            Err(ENOENT) => return Ok(out),
            Err(e) => return Err(WalkError::Errno(e)),
        }
    }
}

fn same(a: &Out, b: &Out) -> Result<(), String> {
    if a == b {
        Ok(())
    } else {
        Err(format!("kernel: {}, bpfc: {}", show(a), show(b)))
    }
}

/// Both sides must agree when either says the arguments are invalid.
fn same_einval(a: &Out, b: &Out) -> Result<(), String> {
    if (a == &Err(EINVAL)) != (b == &Err(EINVAL)) {
        return Err(format!("kernel: {}, bpfc: {}", show(a), show(b)));
    }
    Ok(())
}

fn present(s: &dyn Subject, k: &[u8]) -> bool {
    s.lookup(k, None, 0).is_ok()
}

/// (key, value) pairs a batch walk returned.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// The two sides of a run (kernel first).
pub type Sides = (Box<dyn Subject>, Box<dyn Subject>);

/// Makes two fresh sides.
pub type Make<'a> = dyn Fn() -> Result<Sides, String> + 'a;

/// Collect a whole lookup-batch walk of one side: the final result and
/// every (key, value) returned. `ENOSPC` (a hash bucket larger than the
/// room given) is retried with twice the room, as callers do.
fn batch_walk(
    s: &dyn Subject,
    chunk: u32,
    delete: bool,
    elem_flags: u64,
    flags: u64,
) -> (Result<(), i32>, Pairs) {
    let b = s.batch().expect("batch ops only run with batch support");
    let (ks, vs) = (s.key_size(), s.value_size());
    let mut pairs = Vec::new();
    let mut token: Option<Vec<u8>> = None;
    let mut chunk = chunk;
    for _ in 0..100_000 {
        let o = b.lookup_batch(token.as_deref(), chunk, delete, elem_flags, flags);
        for i in 0..o.count as usize {
            pairs.push((
                o.keys[i * ks..(i + 1) * ks].to_vec(),
                o.values[i * vs..(i + 1) * vs].to_vec(),
            ));
        }
        match o.res {
            Ok(()) if chunk == 0 => return (Ok(()), pairs),
            Ok(()) => token = Some(o.token),
            Err(ENOSPC) if chunk < 1 << 16 => chunk = (chunk * 2).max(1),
            Err(e) => return (Err(e), pairs),
        }
    }
    (Err(-1), pairs)
}

fn show_batch(o: &BatchOut) -> String {
    format!(
        "{} count {} keys {} values {}",
        label(&o.res),
        o.count,
        hex(&o.keys),
        hex(&o.values)
    )
}

/// Applies operations to two sides and compares.
pub struct Runner<'a> {
    case: &'a Case,
    sides: [&'a dyn Subject; 2],
    shadows: [Shadow; 2],
    added: HashSet<Vec<u8>>,
    /// The most elements a walk may see.
    limit: usize,
}

impl<'a> Runner<'a> {
    pub fn new(case: &'a Case, a: &'a dyn Subject, b: &'a dyn Subject) -> Runner<'a> {
        let ncpus = crate::kernel::possible_cpus();
        Runner {
            case,
            sides: [a, b],
            shadows: [Shadow::default(), Shadow::default()],
            added: HashSet::new(),
            // Per-CPU LRU lists round max_entries up to a multiple of the CPUs.
            limit: case.spec.max_entries as usize + ncpus,
        }
    }

    fn both<T>(&self, f: impl Fn(&dyn Subject) -> T) -> (T, T) {
        (f(self.sides[0]), f(self.sides[1]))
    }

    /// Apply `op`; the outcome label for statistics, or what differed.
    pub fn step(&mut self, op: &Op) -> Result<String, String> {
        let mode = self.case.mode;
        let [a, b] = self.sides;
        match op {
            Op::Update { key, value, flags } => {
                let (ra, rb) = self.both(|s| s.update(key, value, *flags));
                match mode {
                    Mode::LruEvicting => {
                        same_einval(&ra, &rb)?;
                        self.lru(|sh, o| sh.update(key, value, *flags, o), &ra, &rb)?;
                    }
                    _ => {
                        same(&ra, &rb)?;
                        if ra.is_ok() {
                            self.added.insert(value.clone());
                        }
                    }
                }
                Ok(label(&ra))
            }
            Op::Lookup { key, value, flags } => {
                let (ra, rb) = self.both(|s| s.lookup(key, value.as_deref(), *flags));
                match mode {
                    Mode::LruEvicting => {
                        same_einval(&ra, &rb)?;
                        self.lru(|sh, o| sh.read(key, *flags, o, false), &ra, &rb)?;
                    }
                    Mode::Bloom => {
                        let v = value.as_deref().unwrap_or(&[]);
                        let maybe = |o: &Out| matches!(o, Ok(_) | Err(ENOENT));
                        if *flags == 0 && self.added.contains(v) {
                            if ra.is_err() || rb.is_err() {
                                return Err(format!(
                                    "an added value must test present: kernel: {}, bpfc: {}",
                                    show(&ra),
                                    show(&rb)
                                ));
                            }
                        } else if !(maybe(&ra) && maybe(&rb)) {
                            same(&ra, &rb)?;
                        }
                    }
                    _ => same(&ra, &rb)?,
                }
                Ok(label(&ra))
            }
            Op::Delete { key } => {
                let (ra, rb) = self.both(|s| s.delete(key));
                match mode {
                    Mode::LruEvicting => {
                        same_einval(&ra, &rb)?;
                        self.lru(|sh, o| sh.delete(key, o), &ra, &rb)?;
                    }
                    _ => same(&ra, &rb)?,
                }
                Ok(label(&ra))
            }
            Op::LookupAndDelete { key, flags } => {
                let (ra, rb) = self.both(|s| s.lookup_and_delete(key, *flags));
                match mode {
                    Mode::LruEvicting => {
                        same_einval(&ra, &rb)?;
                        self.lru(|sh, o| sh.read(key, *flags, o, true), &ra, &rb)?;
                    }
                    _ => same(&ra, &rb)?,
                }
                Ok(label(&ra))
            }
            Op::NextKey { key } => {
                let key = key.as_deref();
                let (ra, rb) = self.both(|s| s.next_key(key));
                match mode {
                    Mode::LruEvicting => {
                        same_einval(&ra, &rb)?;
                        self.lru(|sh, o| sh.next_key(key, o), &ra, &rb)?;
                    }
                    Mode::HashOrder => {
                        let (pa, pb) = match key {
                            Some(k) => self.both(|s| s.lookup(k, None, 0)),
                            None => (Err(ENOENT), Err(ENOENT)),
                        };
                        same(&pa, &pb).map_err(|e| format!("presence of the key differs: {e}"))?;
                        if pa.is_err() {
                            // From NULL or an absent key: the first key, if any.
                            if ra.is_ok() != rb.is_ok() || (ra.is_err() && ra != rb) {
                                return Err(format!("kernel: {}, bpfc: {}", show(&ra), show(&rb)));
                            }
                        }
                        for (s, r) in [(a, &ra), (b, &rb)] {
                            match r {
                                Ok(k2) if Some(k2.as_slice()) == key => {
                                    return Err(format!("{}: returned its own key", s.side()))
                                }
                                Ok(k2) if !present(s, k2) => {
                                    return Err(format!(
                                        "{}: returned {}, which it does not hold",
                                        s.side(),
                                        hex(k2)
                                    ))
                                }
                                Ok(_) | Err(ENOENT) => {}
                                Err(_) => same(&ra, &rb)?,
                            }
                        }
                    }
                    _ => same(&ra, &rb)?,
                }
                Ok(label(&ra))
            }
            Op::Walk => {
                self.compare_contents()?;
                Ok("ok".into())
            }
            Op::Drain => {
                for i in 0..=self.limit {
                    let (ra, rb) = self.both(|s| s.lookup_and_delete(&[], 0));
                    same(&ra, &rb).map_err(|e| format!("pop #{i}: {e}"))?;
                    if ra.is_err() {
                        break;
                    }
                }
                Ok("ok".into())
            }
            Op::LookupBatch {
                chunk,
                delete,
                elem_flags,
                flags,
            } => self.lookup_batch(*chunk, *delete, *elem_flags, *flags),
            Op::UpdateBatch {
                keys,
                values,
                elem_flags,
                flags,
            } => {
                let (k, v) = (keys.concat(), values.concat());
                let n = keys.len() as u32;
                let (oa, ob) = self.both(|s| {
                    s.batch()
                        .expect("batch support")
                        .update_batch(&k, &v, n, *elem_flags, *flags)
                });
                if (oa.res, oa.count) != (ob.res, ob.count) {
                    return Err(format!(
                        "kernel: {} count {}, bpfc: {} count {}",
                        label(&oa.res),
                        oa.count,
                        label(&ob.res),
                        ob.count
                    ));
                }
                Ok(label(&oa.res))
            }
            Op::DeleteBatch {
                keys,
                elem_flags,
                flags,
            } => {
                let k = keys.concat();
                let n = keys.len() as u32;
                let (oa, ob) = self.both(|s| {
                    s.batch()
                        .expect("batch support")
                        .delete_batch(&k, n, *elem_flags, *flags)
                });
                if (oa.res, oa.count) != (ob.res, ob.count) {
                    return Err(format!(
                        "kernel: {} count {}, bpfc: {} count {}",
                        label(&oa.res),
                        oa.count,
                        label(&ob.res),
                        ob.count
                    ));
                }
                Ok(label(&oa.res))
            }
        }
    }

    /// Check each side's result against its shadow.
    fn lru(
        &mut self,
        f: impl Fn(&mut Shadow, &Out) -> Result<(), String>,
        ra: &Out,
        rb: &Out,
    ) -> Result<(), String> {
        for (i, r) in [ra, rb].into_iter().enumerate() {
            f(&mut self.shadows[i], r).map_err(|e| format!("{}: {e}", self.sides[i].side()))?;
        }
        Ok(())
    }

    fn lookup_batch(
        &mut self,
        chunk: u32,
        delete: bool,
        elem_flags: u64,
        flags: u64,
    ) -> Result<String, String> {
        let [a, b] = self.sides;
        if self.case.mode == Mode::Exact {
            // Same elements in the same calls.
            let (ba, bb) = (a.batch().expect("batch"), b.batch().expect("batch"));
            let (mut ta, mut tb): (Option<Vec<u8>>, Option<Vec<u8>>) = (None, None);
            for call in 0..=self.limit + 1 {
                let oa = ba.lookup_batch(ta.as_deref(), chunk, delete, elem_flags, flags);
                let ob = bb.lookup_batch(tb.as_deref(), chunk, delete, elem_flags, flags);
                if (&oa.res, oa.count, &oa.keys, &oa.values)
                    != (&ob.res, ob.count, &ob.keys, &ob.values)
                {
                    return Err(format!(
                        "call {call}: kernel: {}; bpfc: {}",
                        show_batch(&oa),
                        show_batch(&ob)
                    ));
                }
                if oa.res.is_err() || chunk == 0 {
                    return Ok(label(&oa.res));
                }
                ta = Some(oa.token);
                tb = Some(ob.token);
            }
            return Err("lookup batch walk does not end".into());
        }
        let (wa, wb) = self.both(|s| batch_walk(s, chunk, delete, elem_flags, flags));
        if wa.0 != wb.0 {
            return Err(format!(
                "kernel ends with {}, bpfc with {}",
                label(&wa.0),
                label(&wb.0)
            ));
        }
        let (mut pa, mut pb) = (wa.1, wb.1);
        pa.sort();
        pb.sort();
        if pa != pb {
            return Err(format!(
                "batch walks differ: kernel {} elements, bpfc {}",
                pa.len(),
                pb.len()
            ));
        }
        Ok(label(&wa.0))
    }

    /// Walk both maps whole and compare keys and values.
    pub fn compare_contents(&mut self) -> Result<(), String> {
        let limit = self.limit;
        let [a, b] = self.sides;
        let (ka, kb) = match (walk(a, limit), walk(b, limit)) {
            (Ok(ka), Ok(kb)) => (ka, kb),
            (Err(WalkError::Errno(x)), Err(WalkError::Errno(y))) if x == y => return Ok(()),
            (Err(WalkError::Broken(e)), _) | (_, Err(WalkError::Broken(e))) => return Err(e),
            (x, y) => {
                let show = |r: Result<Vec<Vec<u8>>, WalkError>| match r {
                    Ok(k) => format!("{} keys", k.len()),
                    Err(e) => String::from(e),
                };
                return Err(format!(
                    "walks differ: kernel: {}, bpfc: {}",
                    show(x),
                    show(y)
                ));
            }
        };
        match self.case.mode {
            Mode::LruEvicting => {
                for (i, (s, keys)) in [(a, &ka), (b, &kb)].into_iter().enumerate() {
                    let pairs: Vec<(Vec<u8>, Out)> = keys
                        .iter()
                        .map(|k| (k.clone(), s.lookup(k, None, 0)))
                        .collect();
                    self.shadows[i]
                        .walked(&pairs, self.case.spec.max_entries as usize + limit)
                        .map_err(|e| format!("{}: {e}", s.side()))?;
                }
                return Ok(());
            }
            Mode::Exact | Mode::Bloom => {
                if ka != kb {
                    return Err(format!(
                        "key order differs: kernel [{}], bpfc [{}]",
                        ka.iter().map(|k| hex(k)).collect::<Vec<_>>().join(" "),
                        kb.iter().map(|k| hex(k)).collect::<Vec<_>>().join(" ")
                    ));
                }
            }
            Mode::HashOrder => {
                let (mut sa, mut sb) = (ka.clone(), kb.clone());
                sa.sort();
                sb.sort();
                if sa != sb {
                    let only_a: Vec<String> = sa
                        .iter()
                        .filter(|k| !sb.contains(k))
                        .map(|k| hex(k))
                        .collect();
                    let only_b: Vec<String> = sb
                        .iter()
                        .filter(|k| !sa.contains(k))
                        .map(|k| hex(k))
                        .collect();
                    return Err(format!(
                        "key sets differ: only in kernel [{}], only in bpfc [{}]",
                        only_a.join(" "),
                        only_b.join(" ")
                    ));
                }
            }
        }
        for k in &ka {
            let (ra, rb) = self.both(|s| s.lookup(k, None, 0));
            same(&ra, &rb).map_err(|e| format!("value of {}: {e}", hex(k)))?;
        }
        Ok(())
    }
}

/// A difference: the operation's index and what differed.
#[derive(Clone, Debug)]
pub struct Mismatch {
    pub index: usize,
    pub what: String,
}

/// Run `ops` on two fresh sides made by `make`.
pub fn run(case: &Case, make: &Make, ops: &[Op], stats: &mut Stats) -> Result<(), Mismatch> {
    let (a, b) = make().map_err(|what| Mismatch { index: 0, what })?;
    let mut r = Runner::new(case, a.as_ref(), b.as_ref());
    for (i, op) in ops.iter().enumerate() {
        match r.step(op) {
            Ok(outcome) => stats.add(op.kind(), outcome),
            Err(what) => return Err(Mismatch { index: i, what }),
        }
    }
    Ok(())
}

/// The shortest failing sequence found by removing chunks of `ops` (halves,
/// quarters, ... single operations) while the replay on fresh maps still
/// fails, within `budget`.
pub fn shrink(
    case: &Case,
    make: &Make,
    ops: &[Op],
    first: Mismatch,
    budget: Duration,
) -> (Vec<Op>, Mismatch) {
    let start = Instant::now();
    let mut best: Vec<Op> = ops[..=first.index].to_vec();
    let mut why = first;
    let mut chunk = best.len() / 2;
    while chunk >= 1 {
        let mut i = 0;
        while i < best.len() {
            if start.elapsed() > budget {
                return (best, why);
            }
            let end = (i + chunk).min(best.len());
            let mut cand: Vec<Op> = best[..i].to_vec();
            cand.extend_from_slice(&best[end..]);
            if cand.is_empty() {
                i = end;
                continue;
            }
            match run(case, make, &cand, &mut Stats::default()) {
                Err(m) if m.index < cand.len() => {
                    cand.truncate(m.index + 1);
                    best = cand;
                    why = m;
                }
                _ => i = end,
            }
        }
        chunk /= 2;
    }
    (best, why)
}
