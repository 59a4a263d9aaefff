//! The hash function of hash maps: seeded, fast on the short keys maps use,
//! and good enough that adversarial-free keys spread evenly over buckets.

const K0: u64 = 0x9e37_79b9_7f4a_7c15;
const K1: u64 = 0xbf58_476d_1ce4_e5b9;
const K2: u64 = 0x94d0_49bb_1331_11eb;

#[inline]
fn mix(a: u64, b: u64) -> u64 {
    let m = (a as u128).wrapping_mul(b as u128);
    (m as u64) ^ ((m >> 64) as u64)
}

/// A 32-bit hash of `key` under `seed`.
pub fn hash(key: &[u8], seed: u32) -> u32 {
    let mut h = (seed as u64) ^ K0 ^ (key.len() as u64).wrapping_mul(K1);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().expect("8-byte chunk"));
        h = mix(h ^ w, K1);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        h = mix(h ^ u64::from_le_bytes(b), K2);
    }
    let h = mix(h, K0);
    (h ^ (h >> 32)) as u32
}

#[cfg(test)]
mod tests {
    use super::hash;

    #[test]
    fn spreads_sequential_keys() {
        let buckets = 1024usize;
        let mut counts = vec![0u32; buckets];
        for k in 0u32..65536 {
            counts[hash(&k.to_le_bytes(), 7) as usize % buckets] += 1;
        }
        let max = *counts.iter().max().unwrap();
        // 64 per bucket on average; a poor hash piles keys up far beyond that.
        assert!(max < 128, "max bucket load {max}");
        assert_ne!(hash(b"abc", 1), hash(b"abc", 2));
        assert_ne!(hash(b"abc", 1), hash(b"abd", 1));
    }
}
