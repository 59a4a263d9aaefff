//! `BPF_MAP_TYPE_BLOOM_FILTER`: a keyless set of values that answers "maybe
//! present" or "certainly absent", as `kernel/bpf/bloom_filter.c` does.
//! Push (`update` from user space, `bpf_map_push_elem`) sets the value's
//! bits; peek (`lookup` from user space, where the value buffer is the
//! input, and `bpf_map_peek_elem`) tests them: 0 when all are set, `ENOENT`
//! otherwise. Nothing can be removed or listed.
//!
//! The bit array is sized as the kernel sizes it (`max_entries * hashes *
//! 7 / 5` bits rounded up to a power of two, at least 64, at most 2^32), and
//! the hash is the kernel's (`jhash2` over the value's 32-bit words, `jhash`
//! for other sizes, seeded with `seed + i` for the i-th of `map_extra & 0xf`
//! hashes, default 5). With `BPF_F_ZERO_SEED` the filter therefore sets the
//! same bits as the kernel's and gives the same false positives; with a
//! random seed, like the kernel's, false positives differ between any two
//! filters.
//!
//! Layout after the header: the seed, the hash count and the bit mask, then
//! the bit array as 64-bit words. Bits are set with atomic ORs and never
//! cleared, so there is no lock and nothing a dying process can leave half
//! done. The memory is backed at creation, as the kernel allocates it.

use super::error::{errno, MapError, MapResult};
use super::flags::{BPF_ANY, BPF_F_ZERO_SEED};
use super::hash::random_u32;
use super::hashfn::kernel_hash;
use super::lpm::check_no_special_fields;
use super::store::{Store, HEADER_SIZE};
use super::{MapImpl, MapSpec};
use std::any::Any;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// `KMALLOC_MAX_SIZE`: the largest value.
const VALUE_SIZE_MAX: u32 = 4 << 20;
/// Hashes when `map_extra` asks for none.
const DEFAULT_HASHES: u32 = 5;

const C_SEED: usize = 0;
const C_HASHES: usize = 4;
const C_MASK: usize = 8;
const CTRL_SIZE: usize = 64;
const BITS_OFF: usize = HEADER_SIZE + CTRL_SIZE;

pub struct BloomFilter {
    store: Store,
    spec: MapSpec,
    seed: u32,
    hashes: u32,
    mask: u32,
}

/// The hash count and bit mask of a definition, or why it is invalid.
fn shape(spec: &MapSpec) -> MapResult<(u32, u32)> {
    let name = &spec.name;
    if spec.value_size > VALUE_SIZE_MAX {
        return Err(MapError::with_reason(
            errno::E2BIG,
            format!("map {name}: values are at most {VALUE_SIZE_MAX} bytes"),
        ));
    }
    if spec.key_size != 0 || spec.value_size == 0 || spec.max_entries == 0 {
        return Err(MapError::invalid(format!(
            "map {name}: a bloom filter needs key_size 0 and non-zero value_size and max_entries (has {}, {}, {})",
            spec.key_size, spec.value_size, spec.max_entries
        )));
    }
    if spec.map_extra & !0xf != 0 {
        return Err(MapError::invalid(format!(
            "map {name}: a bloom filter's map_extra is its hash count, 0 to 15 (has {})",
            spec.map_extra
        )));
    }
    let hashes = match spec.map_extra as u32 {
        0 => DEFAULT_HASHES,
        k => k,
    };
    // n * k / ln 2 bits, with 7/5 for 1/ln 2, computed in 32 bits as the
    // kernel does; on overflow, or beyond 2^31, the whole 2^32 bits.
    let bits = spec
        .max_entries
        .checked_mul(hashes)
        .and_then(|b| (b / 5).checked_mul(7))
        .filter(|&b| b <= 1 << 31);
    let mask = match bits {
        None => u32::MAX,
        Some(b) if b <= 64 => 63,
        Some(b) => b.next_power_of_two() - 1,
    };
    Ok((hashes, mask))
}

fn bitset_bytes(mask: u32) -> usize {
    (mask as usize + 1).div_ceil(64) * 8
}

impl BloomFilter {
    pub fn create(spec: &MapSpec, dir: Option<&Path>) -> MapResult<BloomFilter> {
        let (hashes, mask) = shape(spec)?;
        check_no_special_fields(spec)?;
        let body = CTRL_SIZE + bitset_bytes(mask);
        let store = Store::create(spec, 1, body, dir)?;
        store.reserve(0, HEADER_SIZE + body)?;
        let seed = if spec.flags & BPF_F_ZERO_SEED != 0 {
            0
        } else {
            random_u32()
        };
        let f = BloomFilter {
            store,
            spec: spec.clone(),
            seed,
            hashes,
            mask,
        };
        f.ctrl(C_SEED).store(seed, Ordering::Relaxed);
        f.ctrl(C_HASHES).store(hashes, Ordering::Relaxed);
        f.ctrl(C_MASK).store(mask, Ordering::Relaxed);
        f.store.mark_ready();
        Ok(f)
    }

    pub fn attach(store: Store, spec: &MapSpec) -> MapResult<BloomFilter> {
        let (hashes, mask) = shape(spec)?;
        if store.body_len() < CTRL_SIZE + bitset_bytes(mask) {
            return Err(MapError::invalid(format!(
                "pinned bloom filter {} is shorter than its definition",
                spec.name
            )));
        }
        // SAFETY: the seed word of the block's control area.
        let seed = unsafe { AtomicU32::from_ptr(store.shm().at(HEADER_SIZE + C_SEED) as *mut u32) }
            .load(Ordering::Relaxed);
        Ok(BloomFilter {
            store,
            spec: spec.clone(),
            seed,
            hashes,
            mask,
        })
    }

    fn ctrl(&self, off: usize) -> &AtomicU32 {
        // SAFETY: a 4-aligned control word inside the block, which lives as
        // long as `self`.
        unsafe { AtomicU32::from_ptr(self.store.shm().at(HEADER_SIZE + off) as *mut u32) }
    }

    /// The word holding bit `h` and the bit's mask in it.
    fn bit(&self, h: u32) -> (&AtomicU64, u64) {
        let off = BITS_OFF + (h as usize / 64) * 8;
        // SAFETY: `h <= mask`, so the word lies inside the bit array.
        let w = unsafe { AtomicU64::from_ptr(self.store.shm().at(off) as *mut u64) };
        (w, 1u64 << (h % 64))
    }

    /// The bits of `value`, one per hash.
    fn bits<'a>(&'a self, value: &'a [u8]) -> impl Iterator<Item = u32> + 'a {
        let v = &value[..self.spec.value_size as usize];
        (0..self.hashes).map(move |i| kernel_hash(v, self.seed.wrapping_add(i)) & self.mask)
    }

    /// `bloom_map_push_elem`.
    fn push(&self, value: &[u8], flags: u64) -> MapResult<()> {
        if flags != BPF_ANY {
            return Err(MapError::INVAL);
        }
        for h in self.bits(value) {
            let (w, b) = self.bit(h);
            if w.load(Ordering::Relaxed) & b == 0 {
                w.fetch_or(b, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// `bloom_map_peek_elem`: whether `value` may have been pushed.
    fn test(&self, value: &[u8]) -> MapResult<()> {
        for h in self.bits(value) {
            let (w, b) = self.bit(h);
            if w.load(Ordering::Relaxed) & b == 0 {
                return Err(MapError::NOENT);
            }
        }
        Ok(())
    }

    /// Bits in the array (for tests and `bpfc map show`).
    pub fn bit_count(&self) -> u64 {
        self.mask as u64 + 1
    }

    /// Hash functions per value.
    pub fn hash_count(&self) -> u32 {
        self.hashes
    }
}

impl MapImpl for BloomFilter {
    /// The value buffer is the value to test; it is not written.
    fn lookup(&self, _key: Option<&[u8]>, value: &mut [u8], _flags: u64) -> MapResult<()> {
        self.test(value)
    }

    fn update(&self, _key: Option<&[u8]>, value: &[u8], flags: u64) -> MapResult<()> {
        self.push(value, flags)
    }

    fn delete(&self, _key: &[u8]) -> MapResult<()> {
        Err(MapError::OPNOTSUPP)
    }

    fn get_next_key(&self, _key: Option<&[u8]>, _next: &mut [u8]) -> MapResult<()> {
        Err(MapError::OPNOTSUPP)
    }

    fn prog_update(&self, _key: &[u8], _value: &[u8], _flags: u64, _cpu: u32) -> MapResult<()> {
        Err(MapError::INVAL)
    }

    fn prog_delete(&self, _key: &[u8]) -> MapResult<()> {
        Err(MapError::OPNOTSUPP)
    }

    fn prog_push(&self, value: &[u8], flags: u64) -> MapResult<()> {
        if value.len() < self.spec.value_size as usize {
            return Err(MapError::INVAL);
        }
        self.push(value, flags)
    }

    fn prog_pop(&self, _value: &mut [u8]) -> MapResult<()> {
        Err(MapError::OPNOTSUPP)
    }

    /// The buffer is the value to test (programs pass it in).
    fn prog_peek(&self, value: &mut [u8]) -> MapResult<()> {
        if value.len() < self.spec.value_size as usize {
            return Err(MapError::INVAL);
        }
        self.test(value)
    }

    fn store(&self) -> Option<&Store> {
        Some(&self.store)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::super::{errno, flags, Map, MapOptions, MapSpec, MapType};
    use super::BloomFilter;
    use std::sync::Arc;

    fn opts() -> MapOptions {
        MapOptions {
            ncpus: 2,
            pin_dir: std::env::temp_dir().join("bpfc-test-pins"),
        }
    }

    fn bloom(value: u32, entries: u32, f: u32, extra: u64) -> MapSpec {
        MapSpec {
            map_extra: extra,
            ..MapSpec::new("b", MapType::BloomFilter, 0, value, entries, f)
        }
    }

    fn make(s: &MapSpec) -> Arc<Map> {
        Map::create_with(s, &opts()).unwrap()
    }

    fn shape(m: &Map) -> (u64, u32) {
        let f = m.imp().as_any().downcast_ref::<BloomFilter>().unwrap();
        (f.bit_count(), f.hash_count())
    }

    fn code<T: std::fmt::Debug>(r: super::MapResult<T>) -> i32 {
        r.unwrap_err().code()
    }

    #[test]
    fn bad_definitions() {
        let o = opts();
        for (s, want) in [
            (bloom(4, 10, 0, 16), errno::EINVAL),
            (bloom(0, 10, 0, 0), errno::EINVAL),
            (bloom(4, 0, 0, 0), errno::EINVAL),
            (
                MapSpec::new("b", MapType::BloomFilter, 4, 4, 10, 0),
                errno::EINVAL,
            ),
            (bloom(4, 10, flags::BPF_F_NO_PREALLOC, 0), errno::EINVAL),
            (bloom((4 << 20) + 1, 10, 0, 0), errno::E2BIG),
        ] {
            let e = Map::create_with(&s, &o).unwrap_err();
            assert_eq!(e.code(), want, "{s:?}: {e}");
        }
        let mut s = bloom(8, 10, 0, 0);
        s.timer_off = Some(0);
        assert_eq!(code(Map::create_with(&s, &o)), errno::EOPNOTSUPP);
    }

    #[test]
    fn sizes_as_the_kernel() {
        // (max_entries, map_extra) -> (bits, hashes)
        for (n, k, bits, hashes) in [
            (1, 0, 64, 5),
            (9, 0, 64, 5),    // 9 * 5 / 5 * 7 = 63
            (10, 0, 128, 5),  // 70 -> 128
            (100, 3, 512, 3), // 300 / 5 * 7 = 420
            (1000, 15, 32768, 15),
            (1 << 28, 1, 1 << 29, 1),  // 2^28 / 5 * 7 just under 2^29
            (1 << 30, 2, 1 << 32, 2),  // beyond 2^31 bits
            (u32::MAX, 5, 1 << 32, 5), // overflow
        ] {
            let s = bloom(4, n, flags::BPF_F_ZERO_SEED, k);
            let (h, mask) = super::shape(&s).unwrap();
            assert_eq!(
                (mask as u64 + 1, h),
                (bits, hashes),
                "max_entries {n}, map_extra {k}"
            );
            if bits <= 1 << 20 {
                assert_eq!(shape(&make(&s)), (bits, hashes));
            }
        }
    }

    #[test]
    fn push_and_test() {
        for vs in [4u32, 5, 12, 13, 64] {
            let m = make(&bloom(vs, 1000, 0, 0));
            let val = |i: u32| {
                let mut v = vec![0u8; vs as usize];
                v[..4].copy_from_slice(&i.to_ne_bytes());
                v
            };
            for i in 0..500 {
                m.update(&[], &val(i), flags::BPF_ANY).unwrap();
            }
            for i in 0..500 {
                let mut v = val(i);
                m.lookup(&[], &mut v).unwrap();
                // The buffer is an input only.
                assert_eq!(v, val(i));
            }
            // False positives stay rare at half the expected load.
            let fp = (1000..11_000)
                .filter(|&i| m.lookup(&[], &mut val(i)).is_ok())
                .count();
            assert!(fp < 300, "value_size {vs}: {fp} false positives in 10000");
            let mut absent = val(99_999);
            if m.lookup(&[], &mut absent).is_err() {
                assert_eq!(code(m.lookup(&[], &mut absent)), errno::ENOENT);
            }
        }
    }

    #[test]
    fn errors_of_other_operations() {
        let m = make(&bloom(4, 16, 0, 0));
        let mut v = [1u8; 4];
        for f in [flags::BPF_NOEXIST, flags::BPF_EXIST, 3] {
            assert_eq!(code(m.update(&[], &v, f)), errno::EINVAL);
        }
        assert_eq!(code(m.update(&[], &v, flags::BPF_F_LOCK)), errno::EINVAL);
        assert_eq!(code(m.delete(&[])), errno::EOPNOTSUPP);
        assert_eq!(code(m.get_next_key(None, &mut [])), errno::EOPNOTSUPP);
        assert_eq!(code(m.lookup_and_delete(&[], &mut v, 0)), errno::ENOTSUPP);
        assert_eq!(
            code(m.lookup_flags(&[], &mut v, flags::BPF_F_LOCK)),
            errno::EINVAL
        );
        assert_eq!(code(m.lookup(&[0; 4], &mut v)), errno::EINVAL);
        assert_eq!(m.elements(), None);
        let b = m.imp();
        assert!(b.prog_lookup(&[], 0).is_none());
        assert_eq!(code(b.prog_update(&[], &v, 0, 0)), errno::EINVAL);
        assert_eq!(code(b.prog_delete(&[])), errno::EOPNOTSUPP);
        assert_eq!(code(b.prog_pop(&mut v)), errno::EOPNOTSUPP);
        assert_eq!(code(b.prog_push(&v, flags::BPF_EXIST)), errno::EINVAL);
        // Programs push and peek too; peek reads the buffer.
        assert_eq!(code(b.prog_peek(&mut [7; 4])), errno::ENOENT);
        b.prog_push(&[7; 4], 0).unwrap();
        let mut probe = [7u8; 4];
        b.prog_peek(&mut probe).unwrap();
        assert_eq!(probe, [7; 4]);
        m.lookup(&[], &mut [7; 4]).unwrap();
    }

    #[test]
    fn zero_seed_filters_agree() {
        // Two filters with a zero seed set the same bits: a value one of
        // them reports present, the other does too.
        let s = bloom(8, 64, flags::BPF_F_ZERO_SEED, 3);
        let (a, b) = (make(&s), make(&s));
        for i in 0..64u64 {
            a.update(&[], &i.to_ne_bytes(), 0).unwrap();
            b.update(&[], &i.to_ne_bytes(), 0).unwrap();
        }
        for i in 0..5000u64 {
            let mut v = i.to_ne_bytes();
            let ra = a.lookup(&[], &mut v).is_ok();
            assert_eq!(ra, b.lookup(&[], &mut v).is_ok(), "value {i}");
        }
    }

    #[test]
    fn pinned_filter_keeps_its_seed() {
        let o = opts();
        let path = o.pin_dir.join(format!("bloom-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let s = bloom(4, 100, 0, 0);
        let m = Map::create_with(&s, &o).unwrap();
        for i in 0..100u32 {
            m.update(&[], &i.to_ne_bytes(), 0).unwrap();
        }
        m.pin(&path).unwrap();
        let other = Map::open_pinned(&path, Some(&s)).unwrap();
        for i in 0..100u32 {
            other.lookup(&[], &mut i.to_ne_bytes()).unwrap();
        }
        other.update(&[], &1000u32.to_ne_bytes(), 0).unwrap();
        m.lookup(&[], &mut 1000u32.to_ne_bytes()).unwrap();
        m.unpin().unwrap();
    }
}
