use super::*;
use crate::maps::flags::{BPF_EXIST, BPF_F_LOCK, BPF_F_RDONLY, BPF_F_RDONLY_PROG, BPF_NOEXIST};
use crate::maps::MapOptions;
use bpfc_oracle::{self as oracle, KernelMap, MapCreate};
use std::os::fd::{AsRawFd, BorrowedFd};

fn opts() -> MapOptions {
    MapOptions {
        ncpus: 2,
        pin_dir: std::env::temp_dir().join("bpfc-test-pins"),
    }
}

fn spec(t: MapType, key: u32, value: u32, max: u32, flags: u32) -> MapSpec {
    MapSpec::new("m", t, key, value, max, flags)
}

fn outer(t: MapType, key: u32, max: u32, inner: &MapSpec) -> MapResult<Arc<Map>> {
    let s = MapSpec {
        inner: Some(Box::new(inner.clone())),
        ..spec(t, key, 4, max, 0)
    };
    Map::create_with(&s, &opts())
}

fn k(i: u32) -> [u8; 4] {
    i.to_ne_bytes()
}

fn kernel_map(s: &MapSpec) -> Result<KernelMap, i32> {
    let c = MapCreate::new(s.map_type as u32, s.key_size, s.value_size, s.max_entries);
    KernelMap::create(&c.flags(s.flags)).map_err(i32::from)
}

/// A kernel map of maps of `t` (12: array, 13: hash) with template `inner`.
fn kernel_outer(t: u32, max: u32, inner: BorrowedFd<'_>) -> Result<KernelMap, i32> {
    KernelMap::create(&MapCreate::new(t, 4, 4, max).inner_map(inner)).map_err(i32::from)
}

/// Wait until deferred releases have run: other tests in this process may
/// hold read-side sections for a while on a loaded machine, so wait up to
/// thirty seconds.
fn settle() {
    for _ in 0..15_000 {
        if rcu::collect() == 0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

#[test]
fn templates_are_checked_as_the_kernel_checks_inner_maps() {
    let array = spec(MapType::Array, 4, 8, 4, 0);
    let code = |r: MapResult<Arc<Map>>| r.err().map_or(0, |e| e.code());
    // No template at all.
    let bare = spec(MapType::ArrayOfMaps, 4, 4, 4, 0);
    assert_eq!(code(Map::create_with(&bare, &opts())), errno::EINVAL);
    // Outer definitions.
    assert_eq!(code(outer(MapType::ArrayOfMaps, 4, 4, &array)), 0);
    assert_eq!(code(outer(MapType::HashOfMaps, 8, 4, &array)), 0);
    let bad_value = MapSpec {
        inner: Some(Box::new(array.clone())),
        ..spec(MapType::ArrayOfMaps, 4, 8, 4, 0)
    };
    assert_eq!(code(Map::create_with(&bad_value, &opts())), errno::EINVAL);
    let bad_value = MapSpec {
        map_type: MapType::HashOfMaps,
        ..bad_value
    };
    assert_eq!(code(Map::create_with(&bad_value, &opts())), errno::EINVAL);
    let prog_flags = MapSpec {
        inner: Some(Box::new(array.clone())),
        ..spec(MapType::ArrayOfMaps, 4, 4, 4, BPF_F_RDONLY_PROG)
    };
    assert_eq!(code(Map::create_with(&prog_flags, &opts())), errno::EINVAL);
    // Templates that cannot be inner maps.
    let aom = MapSpec {
        inner: Some(Box::new(array.clone())),
        ..spec(MapType::ArrayOfMaps, 4, 4, 4, 0)
    };
    assert_eq!(code(outer(MapType::ArrayOfMaps, 4, 4, &aom)), errno::EINVAL);
    let progs = spec(MapType::ProgArray, 4, 4, 4, 0);
    assert_eq!(
        code(outer(MapType::HashOfMaps, 4, 4, &progs)),
        errno::ENOTSUPP
    );
    // A template that is no valid map: its own error, said to be the inner map's.
    let e = outer(
        MapType::ArrayOfMaps,
        4,
        4,
        &spec(MapType::Array, 4, 0, 4, 0),
    )
    .unwrap_err();
    assert_eq!(e.code(), errno::EINVAL);
    assert!(e.to_string().contains("inner map"), "{e}");

    if !oracle::available("templates_are_checked_as_the_kernel_checks_inner_maps") {
        return;
    }
    for (inner, ours) in [(&aom, errno::EINVAL), (&progs, errno::ENOTSUPP)] {
        let ifd = if inner.map_type == MapType::ArrayOfMaps {
            let a = kernel_map(&array).unwrap();
            kernel_outer(12, 4, a.fd()).unwrap()
        } else {
            kernel_map(inner).unwrap()
        };
        let theirs = kernel_outer(12, 4, ifd.fd()).err().unwrap_or(0);
        assert_eq!(ours, theirs, "template {}", inner.map_type);
    }
}

/// Which inner maps fit which templates, here and in the kernel.
#[test]
fn inner_maps_match_templates_as_in_the_kernel() {
    use MapType::*;
    let cases: &[(MapSpec, MapSpec, bool)] = &[
        (spec(Array, 4, 8, 4, 0), spec(Array, 4, 8, 4, 0), true),
        (spec(Array, 4, 8, 4, 0), spec(Array, 4, 8, 5, 0), false),
        (spec(Array, 4, 8, 4, 0), spec(Array, 4, 16, 4, 0), false),
        (spec(Array, 4, 8, 4, 0), spec(Hash, 4, 8, 4, 0), false),
        (
            spec(Array, 4, 8, 4, 0),
            spec(Array, 4, 8, 4, BPF_F_RDONLY),
            true,
        ),
        (
            spec(Array, 4, 8, 4, 0),
            spec(Array, 4, 8, 4, BPF_F_RDONLY_PROG),
            false,
        ),
        (
            spec(Array, 4, 8, 4, BPF_F_INNER_MAP),
            spec(Array, 4, 8, 9, BPF_F_INNER_MAP),
            true,
        ),
        (
            spec(Array, 4, 8, 4, BPF_F_INNER_MAP),
            spec(Array, 4, 8, 9, 0),
            false,
        ),
        (spec(Hash, 4, 8, 4, 0), spec(Hash, 4, 8, 99, 0), true),
        (spec(Hash, 4, 8, 4, 0), spec(Hash, 8, 8, 4, 0), false),
        (
            spec(PercpuArray, 4, 8, 4, 0),
            spec(PercpuArray, 4, 8, 9, 0),
            false,
        ),
        (
            spec(PercpuArray, 4, 8, 4, 0),
            spec(PercpuArray, 4, 8, 4, 0),
            true,
        ),
        (spec(LruHash, 4, 8, 4, 0), spec(Hash, 4, 8, 4, 0), false),
    ];
    let kernel = oracle::available("inner_maps_match_templates_as_in_the_kernel");
    for (tmpl, cand, fits) in cases {
        let o = outer(MapType::ArrayOfMaps, 4, 2, tmpl).unwrap();
        let c = Map::create_with(cand, &opts()).unwrap();
        let r = o.update(&k(0), &c.id().to_ne_bytes(), 0);
        assert_eq!(r.is_ok(), *fits, "{tmpl:?} / {cand:?}: {r:?}");
        if let Err(e) = &r {
            assert_eq!(e.code(), errno::EINVAL);
        }
        if kernel {
            let t = kernel_map(tmpl).unwrap();
            let ko = kernel_outer(12, 2, t.fd()).unwrap();
            let kc = kernel_map(cand).unwrap();
            let kr = ko.update(&k(0), &(kc.fd().as_raw_fd() as u32).to_ne_bytes(), 0);
            assert_eq!(
                kr.err().map_or(0, i32::from),
                r.as_ref().err().map_or(0, |e| e.code()),
                "{tmpl:?} / {cand:?}"
            );
        }
    }
}

/// The two inner maps A and B that fit, C that does not, and a missing one.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Inner {
    A,
    B,
    C,
    Missing,
}

#[derive(Debug, PartialEq)]
enum Out {
    Code(i32),
    Found(Inner),
    Key(u32),
    Done,
}

#[derive(Clone, Debug)]
enum Op {
    Update(u32, Inner, u64),
    Delete(u32),
    Lookup(u32),
    Next(Option<u32>),
    LookupAndDelete(u32),
}

trait Side {
    fn run(&self, op: &Op) -> Out;
}

struct Ours {
    m: Arc<Map>,
    inners: [Arc<Map>; 3],
}

impl Side for Ours {
    fn run(&self, op: &Op) -> Out {
        let id = |i: Inner| match i {
            Inner::A => self.inners[0].id(),
            Inner::B => self.inners[1].id(),
            Inner::C => self.inners[2].id(),
            Inner::Missing => u32::MAX - 1,
        };
        let which = |v: u32| {
            [Inner::A, Inner::B, Inner::C]
                .into_iter()
                .find(|&i| id(i) == v)
                .unwrap()
        };
        let mut v = [0u8; 4];
        let r = match op {
            Op::Update(key, i, f) => self
                .m
                .update(&k(*key), &id(*i).to_ne_bytes(), *f)
                .map(|_| Out::Done),
            Op::Delete(key) => self.m.delete(&k(*key)).map(|_| Out::Done),
            Op::Lookup(key) => self
                .m
                .lookup(&k(*key), &mut v)
                .map(|_| Out::Found(which(u32::from_ne_bytes(v)))),
            Op::Next(key) => self
                .m
                .get_next_key(key.map(k).as_ref().map(|k| &k[..]), &mut v)
                .map(|_| Out::Key(u32::from_ne_bytes(v))),
            Op::LookupAndDelete(key) => self
                .m
                .lookup_and_delete(&k(*key), &mut v, 0)
                .map(|_| Out::Done),
        };
        r.unwrap_or_else(|e| Out::Code(e.code()))
    }
}

struct Kernel {
    map: KernelMap,
    inners: [KernelMap; 3],
    ids: [u32; 3],
}

impl Side for Kernel {
    fn run(&self, op: &Op) -> Out {
        let fd = |i: Inner| match i {
            Inner::A => self.inners[0].fd().as_raw_fd() as u32,
            Inner::B => self.inners[1].fd().as_raw_fd() as u32,
            Inner::C => self.inners[2].fd().as_raw_fd() as u32,
            Inner::Missing => 999_999,
        };
        let which = |v: u32| {
            let n = self.ids.iter().position(|&i| i == v).unwrap();
            [Inner::A, Inner::B, Inner::C][n]
        };
        let r = match op {
            Op::Update(key, i, f) => self
                .map
                .update(&k(*key), &fd(*i).to_ne_bytes(), *f)
                .map(|_| Out::Done),
            Op::Delete(key) => self.map.delete(&k(*key)).map(|_| Out::Done),
            Op::Lookup(key) => self
                .map
                .get(&k(*key))
                .map(|v| Out::Found(which(u32::from_ne_bytes(v[..4].try_into().unwrap())))),
            Op::Next(key) => self
                .map
                .next_key(key.map(k).as_ref().map(|k| &k[..]))
                .map(|v| Out::Key(u32::from_ne_bytes(v[..4].try_into().unwrap()))),
            Op::LookupAndDelete(_) => Err(oracle::Errno(errno::ENOTSUPP)),
        };
        let r = r.map_err(i32::from);
        r.unwrap_or_else(Out::Code)
    }
}

fn sides(t: MapType, max: u32) -> Option<(Ours, Option<Kernel>)> {
    let tmpl = spec(MapType::Hash, 4, 8, 16, 0);
    let other = spec(MapType::Hash, 4, 16, 16, 0);
    let mk = |s: &MapSpec| Map::create_with(s, &opts()).unwrap();
    let ours = Ours {
        m: outer(t, 4, max, &tmpl).unwrap(),
        inners: [
            mk(&tmpl),
            mk(&MapSpec {
                max_entries: 99,
                ..tmpl.clone()
            }),
            mk(&other),
        ],
    };
    let kernel = oracle::available("map of maps operations").then(|| {
        let inners = [
            kernel_map(&tmpl).unwrap(),
            kernel_map(&MapSpec {
                max_entries: 99,
                ..tmpl.clone()
            })
            .unwrap(),
            kernel_map(&other).unwrap(),
        ];
        let map = kernel_outer(t as u32, max, inners[0].fd()).unwrap();
        let ids = [
            inners[0].id().unwrap(),
            inners[1].id().unwrap(),
            inners[2].id().unwrap(),
        ];
        Kernel { map, inners, ids }
    });
    Some((ours, kernel))
}

fn check_sequence(t: MapType, max: u32, ops: &[(Op, Out)]) {
    let (ours, kernel) = sides(t, max).unwrap();
    for (n, (op, want)) in ops.iter().enumerate() {
        let got = ours.run(op);
        assert_eq!(&got, want, "{t} op {n}: {op:?}");
        if let Some(kern) = &kernel {
            assert_eq!(kern.run(op), got, "{t} op {n}: {op:?} vs the kernel");
        }
    }
}

#[test]
fn array_of_maps_operations_match_the_kernel() {
    use Inner::*;
    use Op::*;
    let c = Out::Code;
    check_sequence(
        MapType::ArrayOfMaps,
        3,
        &[
            (Lookup(0), c(errno::ENOENT)),
            (Next(None), Out::Key(0)),
            (Next(Some(1)), Out::Key(2)),
            (Next(Some(2)), c(errno::ENOENT)),
            (Next(Some(9)), Out::Key(0)),
            (Update(0, A, 0), Out::Done),
            (Lookup(0), Out::Found(A)),
            (Update(0, B, 0), Out::Done),
            (Lookup(0), Out::Found(B)),
            (Update(1, A, BPF_NOEXIST), c(errno::EINVAL)),
            (Update(1, A, BPF_EXIST), c(errno::EINVAL)),
            (Update(3, A, 0), c(errno::E2BIG)),
            (Update(3, Missing, 1), c(errno::EINVAL)),
            (Update(1, C, 0), c(errno::EINVAL)),
            (Update(1, Missing, 0), c(errno::EBADF)),
            (Update(1, A, BPF_F_LOCK), c(errno::EINVAL)),
            (Lookup(3), c(errno::ENOENT)),
            (LookupAndDelete(0), c(errno::ENOTSUPP)),
            (Delete(0), Out::Done),
            (Delete(0), c(errno::ENOENT)),
            (Delete(3), c(errno::E2BIG)),
            (Lookup(0), c(errno::ENOENT)),
        ],
    );
}

#[test]
fn hash_of_maps_operations_match_the_kernel() {
    use Inner::*;
    use Op::*;
    let c = Out::Code;
    check_sequence(
        MapType::HashOfMaps,
        2,
        &[
            (Lookup(7), c(errno::ENOENT)),
            (Next(None), c(errno::ENOENT)),
            (Update(7, A, BPF_EXIST), c(errno::ENOENT)),
            (Update(7, A, BPF_NOEXIST), Out::Done),
            (Update(7, B, BPF_NOEXIST), c(errno::EEXIST)),
            (Update(7, B, BPF_EXIST), Out::Done),
            (Lookup(7), Out::Found(B)),
            (Update(8, A, 0), Out::Done),
            (Update(9, A, 0), c(errno::E2BIG)),
            (Update(8, B, 0), Out::Done),
            (Update(9, A, 3), c(errno::EINVAL)),
            (Update(9, Missing, 3), c(errno::EBADF)),
            (Update(9, Missing, BPF_F_LOCK), c(errno::EINVAL)),
            (Update(9, C, 0), c(errno::EINVAL)),
            (Delete(7), Out::Done),
            (Delete(7), c(errno::ENOENT)),
            (Next(None), Out::Key(8)),
            (Next(Some(8)), c(errno::ENOENT)),
            (Next(Some(77)), Out::Key(8)),
            (LookupAndDelete(8), c(errno::ENOTSUPP)),
            (Lookup(8), Out::Found(B)),
        ],
    );
}

#[test]
fn programs_get_inner_map_addresses() {
    let tmpl = spec(MapType::Array, 4, 8, 4, 0);
    for t in [MapType::ArrayOfMaps, MapType::HashOfMaps] {
        let o = outer(t, 4, 4, &tmpl).unwrap();
        let a = Map::create_with(&tmpl, &opts()).unwrap();
        o.update(&k(1), &a.id().to_ne_bytes(), 0).unwrap();
        let p = o.prog_lookup(&k(1), 0).unwrap();
        assert_eq!(p as *const Map, a.as_ptr());
        assert!(o.prog_lookup(&k(2), 0).is_none());
        assert!(o.prog_lookup(&k(9), 0).is_none());
        assert!(
            o.slabs().is_empty(),
            "programs do not read inner maps' memory"
        );
        assert_eq!(
            o.prog_update(&k(1), &[0; 4], 0, 0).unwrap_err().code(),
            errno::EOPNOTSUPP
        );
        assert_eq!(o.prog_delete(&k(1)).unwrap_err().code(), errno::EOPNOTSUPP);
        assert_eq!(inner_map(&o, &k(1)).unwrap().id(), a.id());
        if t == MapType::ArrayOfMaps {
            // Compiled code reads the slot array: 8-byte pointers.
            let n = o.native();
            assert_eq!(n.elem_size, 8);
            // SAFETY: slot 1 of the array's 4 pointer slots.
            let slot = unsafe { *(n.values.add(8) as *const usize) };
            assert_eq!(slot, a.as_ptr() as usize);
            // SAFETY: slot 0, empty.
            assert_eq!(unsafe { *(n.values as *const usize) }, 0);
        }
        let e = o.pin(&opts().pin_dir.join("mim-pin")).unwrap_err();
        assert!(e.to_string().contains("cannot be pinned"), "{e}");
    }
}

#[test]
fn outer_maps_hold_their_inner_maps() {
    let tmpl = spec(MapType::Hash, 4, 8, 4, 0);
    for t in [MapType::ArrayOfMaps, MapType::HashOfMaps] {
        let o = outer(t, 4, 4, &tmpl).unwrap();
        let a = Map::create_with(&tmpl, &opts()).unwrap();
        let id = a.id();
        o.update(&k(0), &id.to_ne_bytes(), 0).unwrap();
        drop(a);
        let again = Map::by_id(id).expect("kept alive by the outer map");
        drop(again);
        // A program run in progress keeps a deleted inner map alive.
        let section = rcu::read_lock();
        let p = o.prog_lookup(&k(0), 0).unwrap();
        o.delete(&k(0)).unwrap();
        // A reclamation pass while the section lasts must leave it alone
        // (waiting for all of them to finish would hold this section, and
        // with it every other test's reclamation, for settle's whole bound).
        rcu::collect();
        // SAFETY: the read-side section keeps the inner map alive.
        assert_eq!(unsafe { Map::from_ptr(p as *const Map) }.id(), id);
        drop(section);
        settle();
        assert!(Map::by_id(id).is_none(), "released after the run ended");
        // Dropping the outer map releases what it holds.
        let b = Map::create_with(&tmpl, &opts()).unwrap();
        let bid = b.id();
        o.update(&k(1), &bid.to_ne_bytes(), 0).unwrap();
        drop(b);
        drop(o);
        settle();
        assert!(Map::by_id(bid).is_none());
    }
}

/// Programs looking inner maps up while user space keeps replacing them
/// (and dropping its own references): every map a run reaches is alive.
#[test]
fn lookups_beside_replacements_reach_live_maps() {
    let tmpl = spec(MapType::Array, 4, 8, 1, 0);
    for t in [MapType::ArrayOfMaps, MapType::HashOfMaps] {
        let o = outer(t, 4, 4, &tmpl).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        let mut reached = 0u64;
                        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                            let _run = rcu::read_lock();
                            for key in 0..4u32 {
                                if let Some(p) = o.prog_lookup(&k(key), 0) {
                                    // SAFETY: the run's section keeps it alive.
                                    let m = unsafe { Map::from_ptr(p as *const Map) };
                                    assert_eq!(m.spec().value_size, 8);
                                    assert_eq!(m.native().max_entries, 1);
                                    reached += 1;
                                }
                            }
                        }
                        reached
                    })
                })
                .collect();
            for round in 0..800u32 {
                let key = round % 4;
                if round % 5 == 4 {
                    let _ = o.delete(&k(key));
                } else {
                    let m = Map::create_with(&tmpl, &opts()).unwrap();
                    o.update(&k(key), &m.id().to_ne_bytes(), 0).unwrap();
                }
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            for r in readers {
                assert!(r.join().unwrap() > 0);
            }
        });
        drop(o);
        settle();
    }
}
