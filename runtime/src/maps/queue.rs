//! `BPF_MAP_TYPE_QUEUE` (FIFO) and `BPF_MAP_TYPE_STACK` (LIFO): keyless maps
//! of `max_entries` values in a ring, as `kernel/bpf/queue_stack_maps.c`
//! keeps them. Push (`update` from user space, `bpf_map_push_elem`) fails
//! with `E2BIG` when full, unless `BPF_EXIST` asks to drop the oldest value;
//! peek (`lookup`) and pop (`lookup_and_delete`) fail with `ENOENT` when
//! empty. Keys, `delete` and `get_next_key` do not exist (`EINVAL`).
//!
//! Layout after the header: a lock word, `head` (where the next push goes),
//! `tail` (the oldest value), then `max_entries + 1` value slots (one stays
//! empty so that full and empty differ). Every operation holds the lock, a
//! cross-process [`SpinLock`]; the memory is backed at creation, as the
//! kernel allocates it.

use super::error::{errno, MapError, MapResult};
use super::flags::{BPF_EXIST, BPF_NOEXIST};
use super::lock::SpinLock;
use super::lpm::check_no_special_fields;
use super::store::{Store, HEADER_SIZE};
use super::{values, MapImpl, MapSpec, MapType};
use std::any::Any;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

/// `KMALLOC_MAX_SIZE`: the largest value.
const VALUE_SIZE_MAX: u32 = 4 << 20;

const C_LOCK: usize = 0;
const C_HEAD: usize = 4;
const C_TAIL: usize = 8;
const CTRL_SIZE: usize = 64;

pub struct QueueMap {
    store: Store,
    spec: MapSpec,
    /// LIFO order (a stack) instead of FIFO.
    stack: bool,
    /// Value slots: `max_entries + 1`.
    size: u64,
    slots: usize,
}

fn layout(spec: &MapSpec) -> MapResult<(u64, usize, usize)> {
    let name = &spec.name;
    if spec.max_entries == 0 || spec.key_size != 0 || spec.value_size == 0 {
        return Err(MapError::invalid(format!(
            "map {name}: a {} map needs key_size 0 and non-zero value_size and max_entries (has {}, {}, {})",
            spec.map_type, spec.key_size, spec.value_size, spec.max_entries
        )));
    }
    if spec.value_size > VALUE_SIZE_MAX {
        return Err(MapError::with_reason(
            errno::E2BIG,
            format!("map {name}: values are at most {VALUE_SIZE_MAX} bytes"),
        ));
    }
    // Linux 6.12 refused rings of 4 GiB or more (`E2BIG`); later kernels
    // allocate whatever fits in memory, and so does bpfc.
    let size = spec.max_entries as u64 + 1;
    let slots = HEADER_SIZE + CTRL_SIZE;
    let total = (size * spec.value_size as u64)
        .checked_add(slots as u64)
        .filter(|&t| t <= isize::MAX as u64 / 2)
        .ok_or_else(|| {
            MapError::with_reason(
                errno::ENOMEM,
                format!(
                    "map {name}: {size} values of {} bytes do not fit in memory",
                    spec.value_size
                ),
            )
        })?;
    Ok((size, slots, total as usize))
}

impl QueueMap {
    pub fn create(spec: &MapSpec, dir: Option<&Path>) -> MapResult<QueueMap> {
        let (size, slots, total) = layout(spec)?;
        check_no_special_fields(spec)?;
        let store = Store::create(spec, 1, total - HEADER_SIZE, dir)?;
        store.reserve(0, total)?;
        store.mark_ready();
        Ok(QueueMap::new(store, spec, size, slots))
    }

    pub fn attach(store: Store, spec: &MapSpec) -> MapResult<QueueMap> {
        let (size, slots, total) = layout(spec)?;
        if store.body_len() + HEADER_SIZE < total {
            return Err(MapError::invalid(format!(
                "pinned {} map {} is shorter than its definition",
                spec.map_type, spec.name
            )));
        }
        Ok(QueueMap::new(store, spec, size, slots))
    }

    fn new(store: Store, spec: &MapSpec, size: u64, slots: usize) -> QueueMap {
        QueueMap {
            store,
            spec: spec.clone(),
            stack: spec.map_type == MapType::Stack,
            size,
            slots,
        }
    }

    fn word(&self, off: usize) -> &AtomicU32 {
        // SAFETY: a 4-aligned control word inside the block, which lives as
        // long as `self`.
        unsafe { AtomicU32::from_ptr(self.store.shm().at(HEADER_SIZE + off) as *mut u32) }
    }

    fn slot(&self, i: u64) -> *mut u8 {
        self.store
            .shm()
            .at(self.slots + i as usize * self.spec.value_size as usize)
    }

    /// `head` and `tail` as stored, clamped into the ring (a damaged file
    /// cannot send a copy outside the block).
    fn ends(&self) -> (u64, u64) {
        let h = self.word(C_HEAD).load(Ordering::Relaxed) as u64;
        let t = self.word(C_TAIL).load(Ordering::Relaxed) as u64;
        (h % self.size, t % self.size)
    }

    fn set(&self, which: usize, i: u64) {
        self.word(which).store(i as u32, Ordering::Relaxed);
    }

    fn step(&self, i: u64) -> u64 {
        if i + 1 >= self.size {
            0
        } else {
            i + 1
        }
    }

    /// `queue_stack_map_push_elem`.
    fn push(&self, value: &[u8], flags: u64) -> MapResult<()> {
        if flags & BPF_NOEXIST != 0 || flags > BPF_EXIST {
            return Err(MapError::INVAL);
        }
        let _g = SpinLock::new(self.word(C_LOCK)).lock();
        let (head, mut tail) = self.ends();
        if self.step(head) == tail {
            if flags & BPF_EXIST == 0 {
                return Err(MapError::TOO_BIG);
            }
            // Full: drop the oldest value to make room.
            tail = self.step(tail);
            self.set(C_TAIL, tail);
        }
        let n = self.spec.value_size as usize;
        // SAFETY: a whole value slot inside the block.
        unsafe { values::write(self.slot(head), &value[..n]) };
        self.set(C_HEAD, self.step(head));
        Ok(())
    }

    /// Peek (`delete` false) or pop: the oldest value of a queue, the newest
    /// of a stack. `out` is untouched when empty.
    fn get(&self, out: &mut [u8], delete: bool) -> MapResult<()> {
        let _g = SpinLock::new(self.word(C_LOCK)).lock();
        let (head, tail) = self.ends();
        if head == tail {
            return Err(MapError::NOENT);
        }
        let n = self.spec.value_size as usize;
        let index = if self.stack {
            if head == 0 {
                self.size - 1
            } else {
                head - 1
            }
        } else {
            tail
        };
        // SAFETY: a whole value slot inside the block.
        unsafe { values::read(self.slot(index), &mut out[..n]) };
        if delete {
            if self.stack {
                self.set(C_HEAD, index);
            } else {
                self.set(C_TAIL, self.step(tail));
            }
        }
        Ok(())
    }

    /// A program's pop or peek: the buffer is zeroed when there is nothing.
    fn prog_get(&self, out: &mut [u8], delete: bool) -> MapResult<()> {
        if out.len() < self.spec.value_size as usize {
            return Err(MapError::INVAL);
        }
        let r = self.get(out, delete);
        if r.is_err() {
            out[..self.spec.value_size as usize].fill(0);
        }
        r
    }
}

impl MapImpl for QueueMap {
    fn lookup(&self, _key: Option<&[u8]>, value: &mut [u8], _flags: u64) -> MapResult<()> {
        self.get(value, false)
    }

    fn update(&self, _key: Option<&[u8]>, value: &[u8], flags: u64) -> MapResult<()> {
        self.push(value, flags)
    }

    fn delete(&self, _key: &[u8]) -> MapResult<()> {
        Err(MapError::INVAL)
    }

    fn get_next_key(&self, _key: Option<&[u8]>, _next: &mut [u8]) -> MapResult<()> {
        Err(MapError::INVAL)
    }

    fn lookup_and_delete(
        &self,
        _key: Option<&[u8]>,
        value: &mut [u8],
        _flags: u64,
    ) -> MapResult<()> {
        self.get(value, true)
    }

    fn prog_update(&self, _key: &[u8], _value: &[u8], _flags: u64, _cpu: u32) -> MapResult<()> {
        Err(MapError::INVAL)
    }

    fn prog_delete(&self, _key: &[u8]) -> MapResult<()> {
        Err(MapError::INVAL)
    }

    fn prog_push(&self, value: &[u8], flags: u64) -> MapResult<()> {
        if value.len() < self.spec.value_size as usize {
            return Err(MapError::INVAL);
        }
        self.push(value, flags)
    }

    fn prog_pop(&self, value: &mut [u8]) -> MapResult<()> {
        self.prog_get(value, true)
    }

    fn prog_peek(&self, value: &mut [u8]) -> MapResult<()> {
        self.prog_get(value, false)
    }

    fn store(&self) -> Option<&Store> {
        Some(&self.store)
    }

    fn elements(&self) -> Option<usize> {
        let (head, tail) = self.ends();
        Some(((head + self.size - tail) % self.size) as usize)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::super::{errno, flags, Map, MapOptions, MapSpec, MapType};
    use std::sync::Arc;

    fn opts() -> MapOptions {
        MapOptions {
            ncpus: 2,
            pin_dir: std::env::temp_dir().join("bpfc-test-pins"),
        }
    }

    fn make(t: MapType, entries: u32) -> Arc<Map> {
        Map::create_with(&MapSpec::new("q", t, 0, 4, entries, 0), &opts()).unwrap()
    }

    fn v(x: u32) -> [u8; 4] {
        x.to_ne_bytes()
    }

    fn code<T: std::fmt::Debug>(r: super::MapResult<T>) -> i32 {
        r.unwrap_err().code()
    }

    #[test]
    fn bad_definitions() {
        let o = opts();
        for (k, vs, n, f, want) in [
            (4, 4, 4, 0, errno::EINVAL),
            (0, 0, 4, 0, errno::EINVAL),
            (0, 4, 0, 0, errno::EINVAL),
            (0, 4, 4, flags::BPF_F_NO_PREALLOC, errno::EINVAL),
            (0, 4, 4, flags::BPF_F_ZERO_SEED, errno::EINVAL),
            (0, (4 << 20) + 1, 1, 0, errno::E2BIG),
            (0, 4 << 20, u32::MAX, 0, errno::ENOMEM),
        ] {
            for t in [MapType::Queue, MapType::Stack] {
                let s = MapSpec::new("q", t, k, vs, n, f);
                let e = Map::create_with(&s, &o).unwrap_err();
                assert_eq!(e.code(), want, "{s:?}: {e}");
            }
        }
        let mut s = MapSpec::new("q", MapType::Queue, 0, 8, 4, 0);
        s.spin_lock_off = Some(0);
        assert_eq!(code(Map::create_with(&s, &o)), errno::EOPNOTSUPP);
        // Read-only and write-only flags are accepted.
        Map::create_with(
            &MapSpec::new("q", MapType::Stack, 0, 4, 4, flags::BPF_F_RDONLY_PROG),
            &o,
        )
        .unwrap();
    }

    #[test]
    fn queue_is_fifo() {
        let m = make(MapType::Queue, 3);
        let mut out = [0xaau8; 4];
        assert_eq!(code(m.lookup(&[], &mut out)), errno::ENOENT);
        assert_eq!(code(m.lookup_and_delete(&[], &mut out, 0)), errno::ENOENT);
        // A failed user-space peek leaves the buffer alone.
        assert_eq!(out, [0xaa; 4]);
        for i in 1..=3 {
            m.update(&[], &v(i), flags::BPF_ANY).unwrap();
        }
        assert_eq!(m.elements(), Some(3));
        assert_eq!(code(m.update(&[], &v(4), flags::BPF_ANY)), errno::E2BIG);
        m.lookup(&[], &mut out).unwrap();
        assert_eq!(out, v(1));
        // BPF_EXIST drops the oldest.
        m.update(&[], &v(4), flags::BPF_EXIST).unwrap();
        assert_eq!(m.elements(), Some(3));
        for want in [2, 3, 4] {
            m.lookup_and_delete(&[], &mut out, 0).unwrap();
            assert_eq!(out, v(want));
        }
        assert_eq!(code(m.lookup_and_delete(&[], &mut out, 0)), errno::ENOENT);
        // Wrapping around the ring many times keeps the order.
        for i in 0..50 {
            m.update(&[], &v(i), 0).unwrap();
            m.update(&[], &v(i + 100), 0).unwrap();
            m.lookup_and_delete(&[], &mut out, 0).unwrap();
            assert_eq!(out, v(i));
            m.lookup_and_delete(&[], &mut out, 0).unwrap();
            assert_eq!(out, v(i + 100));
        }
    }

    #[test]
    fn stack_is_lifo() {
        let m = make(MapType::Stack, 3);
        let mut out = [0u8; 4];
        assert_eq!(code(m.lookup(&[], &mut out)), errno::ENOENT);
        for i in 1..=3 {
            m.update(&[], &v(i), 0).unwrap();
        }
        assert_eq!(code(m.update(&[], &v(9), 0)), errno::E2BIG);
        m.lookup(&[], &mut out).unwrap();
        assert_eq!(out, v(3));
        // BPF_EXIST on a full stack drops the oldest (the bottom).
        m.update(&[], &v(4), flags::BPF_EXIST).unwrap();
        for want in [4, 3, 2] {
            m.lookup_and_delete(&[], &mut out, 0).unwrap();
            assert_eq!(out, v(want));
        }
        assert_eq!(code(m.lookup_and_delete(&[], &mut out, 0)), errno::ENOENT);
        for i in 0..20 {
            m.update(&[], &v(i), flags::BPF_EXIST).unwrap();
        }
        for want in [19, 18, 17] {
            m.lookup_and_delete(&[], &mut out, 0).unwrap();
            assert_eq!(out, v(want));
        }
    }

    #[test]
    fn errors_of_other_operations() {
        for t in [MapType::Queue, MapType::Stack] {
            let m = make(t, 2);
            let mut out = [0u8; 4];
            assert_eq!(
                code(m.update(&[], &v(1), flags::BPF_NOEXIST)),
                errno::EINVAL
            );
            assert_eq!(code(m.update(&[], &v(1), 3)), errno::EINVAL);
            assert_eq!(code(m.update(&[], &v(1), 8)), errno::EINVAL);
            assert_eq!(code(m.update(&[], &v(1), flags::BPF_F_LOCK)), errno::EINVAL);
            assert_eq!(code(m.delete(&[])), errno::EINVAL);
            assert_eq!(code(m.get_next_key(None, &mut [])), errno::EINVAL);
            m.update(&[], &v(1), 0).unwrap();
            assert_eq!(
                code(m.lookup_and_delete(&[], &mut out, flags::BPF_F_LOCK)),
                errno::EINVAL
            );
            assert_eq!(
                code(m.lookup_flags(&[], &mut out, flags::BPF_F_LOCK)),
                errno::EINVAL
            );
            assert_eq!(code(m.lookup_flags(&[], &mut out, 1)), errno::EINVAL);
            assert_eq!(m.elements(), Some(1));
            // A key where there are none.
            assert_eq!(code(m.lookup(&[0; 4], &mut out)), errno::EINVAL);
            assert!(m.prog_lookup(&[], 0).is_none());
            assert_eq!(code(m.prog_update(&[], &v(1), 0, 0)), errno::EINVAL);
            assert_eq!(code(m.prog_delete(&[])), errno::EINVAL);
        }
    }

    #[test]
    fn program_face() {
        let m = make(MapType::Queue, 2);
        let q = m.imp();
        let mut out = [0x55u8; 4];
        // Programs get a zeroed buffer when there is nothing.
        assert_eq!(code(q.prog_peek(&mut out)), errno::ENOENT);
        assert_eq!(out, [0; 4]);
        out = [0x55; 4];
        assert_eq!(code(q.prog_pop(&mut out)), errno::ENOENT);
        assert_eq!(out, [0; 4]);
        q.prog_push(&v(7), 0).unwrap();
        q.prog_push(&v(8), 0).unwrap();
        assert_eq!(code(q.prog_push(&v(9), 0)), errno::E2BIG);
        assert_eq!(code(q.prog_push(&v(9), flags::BPF_NOEXIST)), errno::EINVAL);
        q.prog_peek(&mut out).unwrap();
        assert_eq!(out, v(7));
        q.prog_pop(&mut out).unwrap();
        assert_eq!(out, v(7));
        // User space sees what programs pushed.
        m.lookup_and_delete(&[], &mut out, 0).unwrap();
        assert_eq!(out, v(8));
    }

    #[test]
    fn odd_value_sizes() {
        let m = Map::create_with(&MapSpec::new("q", MapType::Queue, 0, 3, 5, 0), &opts()).unwrap();
        for i in 0..5u8 {
            m.update(&[], &[i, i + 1, i + 2], 0).unwrap();
        }
        let mut out = [0u8; 3];
        for i in 0..5u8 {
            m.lookup_and_delete(&[], &mut out, 0).unwrap();
            assert_eq!(out, [i, i + 1, i + 2]);
        }
    }

    #[test]
    fn threads_lose_nothing() {
        let m = Map::create_with(&MapSpec::new("q", MapType::Queue, 0, 8, 64, 0), &opts()).unwrap();
        let popped = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for t in 0..2u64 {
                let m = m.clone();
                s.spawn(move || {
                    for i in 0..5000u64 {
                        let x = (t << 32) | i;
                        while m.update(&[], &x.to_ne_bytes(), 0).is_err() {
                            std::thread::yield_now();
                        }
                    }
                });
            }
            for _ in 0..2 {
                let m = m.clone();
                let popped = &popped;
                s.spawn(move || {
                    let mut mine = Vec::new();
                    while mine.len() < 5000 {
                        let mut out = [0u8; 8];
                        if m.lookup_and_delete(&[], &mut out, 0).is_ok() {
                            mine.push(u64::from_ne_bytes(out));
                        } else {
                            std::thread::yield_now();
                        }
                    }
                    popped.lock().unwrap().push(mine);
                });
            }
        });
        let lists = popped.into_inner().unwrap();
        // Every value once; each consumer sees each producer's values in order.
        for list in &lists {
            for t in 0..2u64 {
                let seq: Vec<u64> = list.iter().filter(|x| *x >> 32 == t).copied().collect();
                assert!(seq.windows(2).all(|w| w[0] < w[1]), "FIFO order broken");
            }
        }
        let mut all: Vec<u64> = lists.concat();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 10_000);
    }

    #[test]
    fn pinned_queue_is_shared() {
        let o = opts();
        let path = o.pin_dir.join(format!("queue-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let s = MapSpec::new("q", MapType::Stack, 0, 4, 4, 0);
        let m = Map::create_with(&s, &o).unwrap();
        m.update(&[], &v(1), 0).unwrap();
        m.pin(&path).unwrap();
        let other = Map::open_pinned(&path, Some(&s)).unwrap();
        other.update(&[], &v(2), 0).unwrap();
        let mut out = [0u8; 4];
        m.lookup_and_delete(&[], &mut out, 0).unwrap();
        assert_eq!(out, v(2));
        other.lookup_and_delete(&[], &mut out, 0).unwrap();
        assert_eq!(out, v(1));
        m.unpin().unwrap();
    }
}
