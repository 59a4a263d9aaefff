//! The operations of a differential run and their seeded generation. A
//! sequence depends only on the case and the seed (never on results), so a
//! failing run can be replayed and shrunk on fresh maps.

use super::{Case, Keys, Mode};
use std::fmt;

/// `BPF_ANY`, `BPF_NOEXIST`, `BPF_EXIST`, `BPF_F_LOCK`.
pub const ANY: u64 = 0;
pub const NOEXIST: u64 = 1;
pub const EXIST: u64 = 2;
pub const LOCK: u64 = 4;

/// SplitMix64: small, seedable, good enough for choosing operations.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    pub fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

/// One user-space operation, applied to both maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Update {
        key: Vec<u8>,
        value: Vec<u8>,
        flags: u64,
    },
    /// `value` is the bloom filter's value to test (other maps: none).
    Lookup {
        key: Vec<u8>,
        value: Option<Vec<u8>>,
        flags: u64,
    },
    Delete {
        key: Vec<u8>,
    },
    NextKey {
        key: Option<Vec<u8>>,
    },
    LookupAndDelete {
        key: Vec<u8>,
        flags: u64,
    },
    /// Iterate both maps whole and compare keys and values.
    Walk,
    /// Pop queue/stack until empty on both sides, comparing every value.
    Drain,
    /// Walk the whole map with lookup (and delete) batches of `chunk`.
    LookupBatch {
        chunk: u32,
        delete: bool,
        elem_flags: u64,
        flags: u64,
    },
    UpdateBatch {
        keys: Vec<Vec<u8>>,
        values: Vec<Vec<u8>>,
        elem_flags: u64,
        flags: u64,
    },
    DeleteBatch {
        keys: Vec<Vec<u8>>,
        elem_flags: u64,
        flags: u64,
    },
}

impl Op {
    /// A short name for statistics.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Update { .. } => "update",
            Op::Lookup { .. } => "lookup",
            Op::Delete { .. } => "delete",
            Op::NextKey { .. } => "get_next_key",
            Op::LookupAndDelete { .. } => "lookup_and_delete",
            Op::Walk => "walk",
            Op::Drain => "drain",
            Op::LookupBatch { delete: false, .. } => "lookup_batch",
            Op::LookupBatch { delete: true, .. } => "lookup_and_delete_batch",
            Op::UpdateBatch { .. } => "update_batch",
            Op::DeleteBatch { .. } => "delete_batch",
        }
    }
}

pub fn hex(b: &[u8]) -> String {
    if b.is_empty() {
        return "-".into();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Update { key, value, flags } => {
                write!(
                    f,
                    "update key {} value {} flags {flags:#x}",
                    hex(key),
                    hex(value)
                )
            }
            Op::Lookup { key, value, flags } => {
                write!(f, "lookup key {} flags {flags:#x}", hex(key))?;
                if let Some(v) = value {
                    write!(f, " value {}", hex(v))?;
                }
                Ok(())
            }
            Op::Delete { key } => write!(f, "delete key {}", hex(key)),
            Op::NextKey { key: None } => write!(f, "get_next_key NULL"),
            Op::NextKey { key: Some(k) } => write!(f, "get_next_key {}", hex(k)),
            Op::LookupAndDelete { key, flags } => {
                write!(f, "lookup_and_delete key {} flags {flags:#x}", hex(key))
            }
            Op::Walk => write!(f, "walk"),
            Op::Drain => write!(f, "drain"),
            Op::LookupBatch {
                chunk,
                delete,
                elem_flags,
                flags,
            } => write!(
                f,
                "{} chunk {chunk} elem_flags {elem_flags:#x} flags {flags:#x}",
                if *delete {
                    "lookup_and_delete_batch"
                } else {
                    "lookup_batch"
                }
            ),
            Op::UpdateBatch {
                keys,
                values,
                elem_flags,
                flags,
            } => {
                write!(f, "update_batch")?;
                for (k, v) in keys.iter().zip(values) {
                    write!(f, " {}={}", hex(k), hex(v))?;
                }
                write!(f, " elem_flags {elem_flags:#x} flags {flags:#x}")
            }
            Op::DeleteBatch {
                keys,
                elem_flags,
                flags,
            } => {
                write!(f, "delete_batch")?;
                for k in keys {
                    write!(f, " {}", hex(k))?;
                }
                write!(f, " elem_flags {elem_flags:#x} flags {flags:#x}")
            }
        }
    }
}

/// Update flags: mostly valid, some with `BPF_F_LOCK`, some invalid.
fn update_flags(rng: &mut Rng) -> u64 {
    match rng.below(100) {
        0..=34 => ANY,
        35..=54 => NOEXIST,
        55..=74 => EXIST,
        75..=82 => LOCK | rng.below(3),
        _ => *rng.pick(&[3, 8, 16, LOCK | 3, 1 << 32, u64::MAX]),
    }
}

/// Lookup / lookup-and-delete flags: mostly none.
fn read_flags(rng: &mut Rng) -> u64 {
    match rng.below(100) {
        0..=84 => 0,
        85..=91 => LOCK,
        _ => *rng.pick(&[NOEXIST, EXIST, 8, 1 << 40]),
    }
}

/// Batch `elem_flags` and `flags`.
fn batch_flags(rng: &mut Rng) -> (u64, u64) {
    match rng.below(100) {
        0..=79 => (0, 0),
        80..=87 => (LOCK, 0),
        88..=93 => (8, 0),
        _ => (0, 1),
    }
}

/// Keys of a case: a fixed pool (so that operations hit each other) and,
/// now and then, a fresh one.
pub struct KeyPool {
    pool: Vec<Vec<u8>>,
}

impl KeyPool {
    pub fn new(case: &Case, rng: &mut Rng) -> KeyPool {
        let n = match case.keys {
            Keys::None => 0,
            Keys::Index { extra } => (case.spec.max_entries + extra) as usize,
            Keys::Random { pool } | Keys::Bounded { pool } | Keys::Lpm { pool } => pool,
        };
        let mut pool: Vec<Vec<u8>> = Vec::new();
        for i in 0..n {
            let k = match case.keys {
                Keys::Index { .. } => (i as u32).to_ne_bytes().to_vec(),
                _ => fresh_key(case, rng),
            };
            if !pool.contains(&k) {
                pool.push(k);
            }
        }
        KeyPool { pool }
    }

    fn key(&mut self, case: &Case, rng: &mut Rng) -> Vec<u8> {
        if self.pool.is_empty() {
            return Vec::new();
        }
        if rng.percent(5) && !matches!(case.keys, Keys::Bounded { .. }) {
            fresh_key(case, rng)
        } else {
            rng.pick(&self.pool).clone()
        }
    }
}

/// A key outside the pool's choice: random bytes, a random index, or a
/// random prefix.
fn fresh_key(case: &Case, rng: &mut Rng) -> Vec<u8> {
    let ks = case.spec.key_size as usize;
    match case.keys {
        Keys::None => Vec::new(),
        Keys::Index { .. } => (rng.next_u64() as u32).to_ne_bytes().to_vec(),
        Keys::Random { .. } | Keys::Bounded { .. } => rng.bytes(ks),
        Keys::Lpm { .. } => {
            let data_bits = (ks as u64 - 4) * 8;
            // Mostly valid prefix lengths, a few beyond the data.
            let plen = if rng.percent(4) {
                data_bits + 1 + rng.below(8)
            } else {
                rng.below(data_bits + 1)
            };
            let mut k = (plen as u32).to_ne_bytes().to_vec();
            // Few distinct leading bytes so that prefixes nest and overlap.
            let mut data = rng.bytes(ks - 4);
            data[0] = *rng.pick(&[10, 172, 192]);
            if data.len() > 1 && rng.percent(70) {
                data[1] = *rng.pick(&[0, 16, 168]);
            }
            k.extend_from_slice(&data);
            k
        }
    }
}

/// The operation sequence of `case` for `seed`: `n` operations, then a
/// final comparison of the contents. `batch`: include batch commands.
pub fn generate(case: &Case, seed: u64, n: usize, batch: bool, value_size: usize) -> Vec<Op> {
    let mut rng = Rng::new(seed);
    let mut keys = KeyPool::new(case, &mut rng);
    // Bloom filters test values, so values come from a pool too.
    let value_pool: Vec<Vec<u8>> = (0..case.spec.max_entries.clamp(4, 64) * 2)
        .map(|_| rng.bytes(value_size))
        .collect();
    let keyless = matches!(case.keys, Keys::None);
    let bloom = case.mode == Mode::Bloom;
    let value = |rng: &mut Rng| {
        if bloom {
            rng.pick(&value_pool).clone()
        } else {
            rng.bytes(value_size)
        }
    };
    let mut ops = Vec::with_capacity(n + 2);
    while ops.len() < n {
        let r = rng.below(1000);
        let op = if keyless {
            match r {
                0..=399 => Op::Update {
                    key: Vec::new(),
                    value: value(&mut rng),
                    flags: match rng.below(10) {
                        0..=4 => ANY,
                        5..=6 => EXIST,
                        7 => NOEXIST,
                        _ => *rng.pick(&[3, LOCK, 8]),
                    },
                },
                400..=649 => Op::Lookup {
                    key: Vec::new(),
                    value: bloom.then(|| value(&mut rng)),
                    flags: read_flags(&mut rng),
                },
                650..=939 => Op::LookupAndDelete {
                    key: Vec::new(),
                    flags: read_flags(&mut rng),
                },
                940..=969 => Op::Delete { key: Vec::new() },
                _ => Op::NextKey { key: None },
            }
        } else {
            match r {
                0..=349 => Op::Update {
                    key: keys.key(case, &mut rng),
                    value: value(&mut rng),
                    flags: update_flags(&mut rng),
                },
                350..=549 => Op::Lookup {
                    key: keys.key(case, &mut rng),
                    value: None,
                    flags: read_flags(&mut rng),
                },
                550..=669 => Op::Delete {
                    key: keys.key(case, &mut rng),
                },
                670..=799 => Op::NextKey {
                    key: if rng.percent(10) {
                        None
                    } else {
                        Some(keys.key(case, &mut rng))
                    },
                },
                800..=899 => Op::LookupAndDelete {
                    key: keys.key(case, &mut rng),
                    flags: read_flags(&mut rng),
                },
                900..=909 => Op::Walk,
                910..=939 if batch => {
                    let (elem_flags, flags) = batch_flags(&mut rng);
                    Op::LookupBatch {
                        chunk: *rng.pick(&[0, 1, 2, 3, 5, 8, 64, 1000]),
                        delete: rng.percent(20),
                        elem_flags,
                        flags,
                    }
                }
                940..=969 if batch => {
                    let n = rng.below(9) as usize;
                    let (elem_flags, flags) = batch_flags(&mut rng);
                    Op::UpdateBatch {
                        keys: (0..n).map(|_| keys.key(case, &mut rng)).collect(),
                        values: (0..n).map(|_| value(&mut rng)).collect(),
                        elem_flags,
                        flags,
                    }
                }
                970..=999 if batch => {
                    let n = rng.below(6) as usize;
                    let (elem_flags, flags) = batch_flags(&mut rng);
                    Op::DeleteBatch {
                        keys: (0..n).map(|_| keys.key(case, &mut rng)).collect(),
                        elem_flags,
                        flags,
                    }
                }
                _ => Op::Lookup {
                    key: keys.key(case, &mut rng),
                    value: None,
                    flags: 0,
                },
            }
        };
        ops.push(op);
    }
    ops.push(if keyless { Op::Drain } else { Op::Walk });
    ops
}
