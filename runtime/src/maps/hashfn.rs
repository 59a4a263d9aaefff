//! The hash functions of hash maps and bloom filters: the kernel's own
//! (Bob Jenkins' lookup3 as `jhash`/`jhash2`), so that a map created with
//! `BPF_F_ZERO_SEED` puts every key in the bucket the kernel's would, and
//! iteration order, batch boundaries and bloom filter false positives equal
//! the kernel's.

/// A 32-bit hash of `key` under `seed`: the kernel's `htab_map_hash`.
pub fn hash(key: &[u8], seed: u32) -> u32 {
    kernel_hash(key, seed)
}

/// `JHASH_INITVAL`: the starting state of Bob Jenkins' lookup3 hash.
const JHASH_INIT: u32 = 0xdead_beef;

/// lookup3's mixing of three words of state.
#[inline]
fn jmix(mut a: u32, mut b: u32, mut c: u32) -> (u32, u32, u32) {
    for (r1, r2, r3) in [(4, 6, 8), (16, 19, 4)] {
        a = a.wrapping_sub(c) ^ c.rotate_left(r1);
        c = c.wrapping_add(b);
        b = b.wrapping_sub(a) ^ a.rotate_left(r2);
        a = a.wrapping_add(c);
        c = c.wrapping_sub(b) ^ b.rotate_left(r3);
        b = b.wrapping_add(a);
    }
    (a, b, c)
}

/// lookup3's final avalanche; the result is the last `c`.
#[inline]
fn jfinal(mut a: u32, mut b: u32, mut c: u32) -> u32 {
    for (x, y, r) in [
        (2, 1, 14),
        (0, 2, 11),
        (1, 0, 25),
        (2, 1, 16),
        (0, 2, 4),
        (1, 0, 14),
        (2, 1, 24),
    ] {
        let mut s = [a, b, c];
        s[x] = (s[x] ^ s[y]).wrapping_sub(s[y].rotate_left(r));
        [a, b, c] = s;
    }
    c
}

fn word(b: &[u8]) -> u32 {
    u32::from_ne_bytes(b[..4].try_into().expect("4 bytes"))
}

/// The kernel's `jhash` of `key` with `seed`: whole 12-byte blocks as
/// native-endian words, the tail bytes little-endian.
pub fn jhash(key: &[u8], seed: u32) -> u32 {
    let init = JHASH_INIT.wrapping_add(key.len() as u32).wrapping_add(seed);
    let (mut a, mut b, mut c) = (init, init, init);
    let mut k = key;
    while k.len() > 12 {
        (a, b, c) = jmix(
            a.wrapping_add(word(k)),
            b.wrapping_add(word(&k[4..])),
            c.wrapping_add(word(&k[8..])),
        );
        k = &k[12..];
    }
    if k.is_empty() {
        return c;
    }
    let mut t = [0u8; 12];
    t[..k.len()].copy_from_slice(k);
    let le = |i: usize| u32::from_le_bytes(t[i..i + 4].try_into().expect("4 bytes"));
    jfinal(
        a.wrapping_add(le(0)),
        b.wrapping_add(le(4)),
        c.wrapping_add(le(8)),
    )
}

/// The kernel's `jhash2` of `key` read as native-endian 32-bit words
/// (`key.len()` a multiple of 4).
pub fn jhash_words(key: &[u8], seed: u32) -> u32 {
    let init = JHASH_INIT
        .wrapping_add(key.len() as u32 & !3)
        .wrapping_add(seed);
    let (mut a, mut b, mut c) = (init, init, init);
    let mut k = &key[..key.len() & !3];
    while k.len() > 12 {
        (a, b, c) = jmix(
            a.wrapping_add(word(k)),
            b.wrapping_add(word(&k[4..])),
            c.wrapping_add(word(&k[8..])),
        );
        k = &k[12..];
    }
    if k.is_empty() {
        return c;
    }
    let w = |i: usize| if k.len() > i { word(&k[i..]) } else { 0 };
    jfinal(
        a.wrapping_add(w(0)),
        b.wrapping_add(w(4)),
        c.wrapping_add(w(8)),
    )
}

/// The hash the kernel's hash maps and bloom filters use: `jhash2` for keys
/// of whole words, `jhash` otherwise.
pub fn kernel_hash(key: &[u8], seed: u32) -> u32 {
    if key.len().is_multiple_of(4) {
        jhash_words(key, seed)
    } else {
        jhash(key, seed)
    }
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
