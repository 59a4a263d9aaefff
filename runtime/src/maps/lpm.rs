//! `BPF_MAP_TYPE_LPM_TRIE`: longest-prefix-match lookups over keys
//! `struct bpf_lpm_trie_key_u8 { u32 prefixlen; u8 data[]; }` (prefix length
//! in host order, data in network order), with the kernel's trie: the same
//! nodes, intermediate nodes and child slots as `kernel/bpf/lpm_trie.c`
//! builds, so `get_next_key` walks in the kernel's post-order.
//!
//! Layout after the header (links are node numbers + 1, 0 is "none"):
//! - control words: the writer lock, the root link, the element count, the
//!   number of nodes ever handed out, the recycled-node queue (head, tail,
//!   length), a "writer at work" mark and how much of the pool has memory;
//! - the node pool: `2 * max_entries + SPARE` nodes (a trie of n elements
//!   has at most n - 1 intermediate nodes, and an update holds one extra
//!   node while it replaces another), each a header (two child links,
//!   prefix length, flags, generation, recycled-queue link), the key data
//!   and the value. Memory is backed as the pool is first used, so a large
//!   `max_entries` costs address space only, as the kernel's lazy
//!   allocation does.
//!
//! Updates and deletes take the one writer lock, as the kernel's do;
//! `get_next_key`, which walks with a stack, takes it too (the kernel's walks
//! under RCU). Lookups take no lock: writers
//! publish a node only once it is complete and change the trie one link at a
//! time, so a reader always walks some consistent trie. A node's generation
//! is odd while it is free and changes whenever it is freed or reused; a
//! reader checks it around every node it reads and starts over when a node
//! on its path was recycled under it, so it never mistakes a reused node for
//! the one it followed. Freed nodes are reused in FIFO order and only once
//! `RECYCLE_DELAY` of them wait, so a value a program holds a pointer to
//! stays as it was for a while after a delete, as the kernel's RCU-delayed
//! frees make it.
//!
//! The pool's bookkeeping and crash repair are in `lpm/pool.rs`, the edits
//! and the ordered walk in `lpm/edit.rs`.

use super::error::{errno, MapError, MapResult};
use super::flags::{BPF_EXIST, BPF_F_NO_PREALLOC, BPF_NOEXIST};
use super::lock::SpinLock;
use super::store::{Store, HEADER_SIZE};
use super::{round8, values, MapImpl, MapSpec, Slab};
use std::any::Any;
use std::path::Path;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// `struct bpf_lpm_trie_key_u8`: the prefix length before the data.
const KEY_HDR: u32 = 4;
/// Key data sizes the kernel accepts (`LPM_DATA_SIZE_MIN/MAX`).
const DATA_SIZE_MIN: u32 = 1;
const DATA_SIZE_MAX: u32 = 256;
/// The largest value: `KMALLOC_MAX_SIZE` (4 MiB) less the largest key data
/// and the kernel's node header (24 bytes since Linux 6.14).
const VALUE_SIZE_MAX: u32 = (4 << 20) - DATA_SIZE_MAX - 24;
/// Nodes beyond the `2 * max_entries` a full trie may need: room for the
/// recycled-node queue to delay reuse.
const SPARE: u64 = 64;
/// Recycled nodes are reused only once this many wait (or the pool is used up).
const RECYCLE_DELAY: u32 = 32;
/// The pool is at most this many nodes and this many bytes (address space);
/// a trie that outgrows it fails updates with `ENOMEM`.
const POOL_NODES_MAX: u64 = 1 << 30;
const POOL_BYTES_MAX: u64 = 1 << 40;
/// Memory is backed in steps of at least this many bytes.
const RESERVE_STEP: usize = 64 << 10;
/// Optimistic lookups that lose this many races take the lock instead.
const OPTIMISTIC_TRIES: u32 = 64;

/// `LPM_TREE_NODE_FLAG_IM`: an intermediate node, holding no element.
const FLAG_IM: u32 = 1;

/// Control words, offsets from the start of the control area.
const C_LOCK: usize = 0;
const C_ROOT: usize = 4;
const C_ENTRIES: usize = 8;
const C_BUMP: usize = 12;
const C_FREE_HEAD: usize = 16;
const C_FREE_TAIL: usize = 20;
const C_FREE_LEN: usize = 24;
const C_DIRTY: usize = 28;
/// u64: bytes of the pool backed with memory.
const C_RESERVED: usize = 32;
const CTRL_SIZE: usize = 64;

/// Node header fields.
const N_CHILD: usize = 0;
const N_PLEN: usize = 8;
const N_FLAGS: usize = 12;
const N_GEN: usize = 16;
const N_FREE_NEXT: usize = 20;
const NODE_HDR: usize = 24;

#[derive(Clone, Copy, Debug)]
struct Layout {
    data_size: usize,
    max_plen: u32,
    pool: u32,
    stride: usize,
    value_off: usize,
    ctrl: usize,
    nodes: usize,
    total: usize,
}

fn layout(spec: &MapSpec) -> MapResult<Layout> {
    let name = &spec.name;
    if spec.max_entries == 0 {
        return Err(MapError::invalid(format!(
            "map {name}: an LPM trie needs max_entries > 0"
        )));
    }
    if spec.flags & BPF_F_NO_PREALLOC == 0 {
        return Err(MapError::invalid(format!(
            "map {name}: an LPM trie needs BPF_F_NO_PREALLOC (map_flags 1)"
        )));
    }
    if spec.key_size < KEY_HDR + DATA_SIZE_MIN || spec.key_size > KEY_HDR + DATA_SIZE_MAX {
        return Err(MapError::invalid(format!(
            "map {name}: an LPM trie key is a 4-byte prefix length and 1 to 256 bytes of data (key_size 5 to 260, has {})",
            spec.key_size
        )));
    }
    if spec.value_size == 0 || spec.value_size > VALUE_SIZE_MAX {
        return Err(MapError::invalid(format!(
            "map {name}: LPM trie values are 1 to {VALUE_SIZE_MAX} bytes (has {})",
            spec.value_size
        )));
    }
    let data_size = (spec.key_size - KEY_HDR) as usize;
    let value_off = NODE_HDR + round8(data_size as u32);
    let stride = value_off + round8(spec.value_size);
    let pool = (2 * spec.max_entries as u64 + SPARE)
        .min(POOL_NODES_MAX)
        .min(POOL_BYTES_MAX / stride as u64);
    let ctrl = HEADER_SIZE;
    let nodes = (ctrl + CTRL_SIZE).next_multiple_of(64);
    let total = nodes + pool as usize * stride;
    Ok(Layout {
        data_size,
        max_plen: data_size as u32 * 8,
        pool: pool as u32,
        stride,
        value_off,
        ctrl,
        nodes,
        total,
    })
}

/// Bit `index` of big-endian `data` (bit 0 is the top bit of byte 0).
fn bit(data: &[u8], index: u32) -> usize {
    ((data[index as usize / 8] >> (7 - index % 8)) & 1) as usize
}

/// How many leading bits `a` and `b` share, at most `limit`.
fn common_prefix(a: &[u8], b: &[u8], limit: u32) -> u32 {
    let mut n = 0u32;
    let mut i = 0;
    while n < limit && i < a.len() {
        let take = (a.len() - i).min(8);
        let mut x = [0u8; 8];
        let mut y = [0u8; 8];
        x[..take].copy_from_slice(&a[i..i + take]);
        y[..take].copy_from_slice(&b[i..i + take]);
        let diff = u64::from_be_bytes(x) ^ u64::from_be_bytes(y);
        if diff != 0 {
            return (n + diff.leading_zeros()).min(limit);
        }
        n += 8 * take as u32;
        i += take;
    }
    n.min(limit)
}

/// A key's data as `W` big-endian 64-bit words (the last one zero-padded),
/// what lookups compare node data against. `W` is the fewest words that
/// hold the trie's data (1 for IPv4, 2 for IPv6), so a lookup builds and
/// walks with no more than it needs.
struct KeyWords<const W: usize>([u64; W]);

impl<const W: usize> KeyWords<W> {
    /// `data` is at most `8 * W` bytes.
    fn new(data: &[u8]) -> KeyWords<W> {
        let mut w = [0u64; W];
        for (word, chunk) in w.iter_mut().zip(data.chunks(8)) {
            *word = match chunk.len() {
                8 => u64::from_be_bytes(chunk.try_into().expect("8 bytes")),
                n if n >= 4 => {
                    let hi = u32::from_be_bytes(chunk[..4].try_into().expect("4 bytes"));
                    let lo = chunk[4..].iter().fold(0u64, |w, &b| (w << 8) | b as u64);
                    ((hi as u64) << 32) | (lo << (8 * (8 - n)))
                }
                n => chunk.iter().fold(0u64, |w, &b| (w << 8) | b as u64) << (8 * (8 - n)),
            };
        }
        KeyWords(w)
    }

    /// Bit `index` of the key (bit 0 is the top bit of byte 0), taken from
    /// the words rather than the bytes (shorter for the walk's chain of loads).
    fn bit(&self, index: u32) -> usize {
        ((self.0[index as usize / 64] >> (63 - index % 64)) & 1) as usize
    }
}

/// A key split into its prefix length and data.
fn split_key(key: &[u8]) -> (u32, &[u8]) {
    let plen = u32::from_ne_bytes(key[..4].try_into().expect("4-byte prefix length"));
    (plen, &key[4..])
}

/// A node as a reader or writer sees it.
struct NodeView {
    plen: u32,
    flags: u32,
    data: [u8; DATA_SIZE_MAX as usize],
}

pub struct LpmTrie {
    store: Store,
    spec: MapSpec,
    l: Layout,
}

/// A node number (0-based).
type Node = u32;

/// Where a link lives: the root slot or a child slot of a node, as a byte
/// offset in the block.
type Slot = usize;

impl LpmTrie {
    pub fn create(spec: &MapSpec, dir: Option<&Path>) -> MapResult<LpmTrie> {
        let l = layout(spec)?;
        check_no_special_fields(spec)?;
        let store = Store::create(spec, 1, l.total - HEADER_SIZE, dir)?;
        let trie = LpmTrie {
            store,
            spec: spec.clone(),
            l,
        };
        trie.store.mark_ready();
        Ok(trie)
    }

    pub fn attach(store: Store, spec: &MapSpec) -> MapResult<LpmTrie> {
        let l = layout(spec)?;
        if store.body_len() + HEADER_SIZE < l.total {
            return Err(MapError::invalid(format!(
                "pinned LPM trie {} is shorter than its definition",
                spec.name
            )));
        }
        Ok(LpmTrie {
            store,
            spec: spec.clone(),
            l,
        })
    }

    // ---- raw layout access ----

    fn word(&self, off: usize) -> &AtomicU32 {
        // SAFETY: `off` is a 4-aligned offset of this layout inside the
        // block, which lives as long as `self`.
        unsafe { AtomicU32::from_ptr(self.store.shm().at(off) as *mut u32) }
    }

    fn ctrl(&self, off: usize) -> &AtomicU32 {
        self.word(self.l.ctrl + off)
    }

    fn reserved(&self) -> &AtomicU64 {
        // SAFETY: an 8-aligned control word inside the block.
        unsafe { AtomicU64::from_ptr(self.store.shm().at(self.l.ctrl + C_RESERVED) as *mut u64) }
    }

    fn lock(&self) -> SpinLock<'_> {
        SpinLock::new(self.ctrl(C_LOCK))
    }

    fn node_off(&self, n: Node) -> usize {
        self.l.nodes + n as usize * self.l.stride
    }

    fn field(&self, n: Node, f: usize) -> &AtomicU32 {
        self.word(self.node_off(n) + f)
    }

    fn gen(&self, n: Node) -> &AtomicU32 {
        self.field(n, N_GEN)
    }

    fn root_slot(&self) -> Slot {
        self.l.ctrl + C_ROOT
    }

    fn child_slot(&self, n: Node, b: usize) -> Slot {
        self.node_off(n) + N_CHILD + 4 * b
    }

    fn load(&self, s: Slot) -> u32 {
        self.word(s).load(Ordering::Acquire)
    }

    /// Publish `link` in slot `s` (the node it names is complete).
    fn set(&self, s: Slot, link: u32) {
        self.word(s).store(link, Ordering::Release);
    }

    fn child(&self, n: Node, b: usize) -> u32 {
        self.load(self.child_slot(n, b))
    }

    fn data_ptr(&self, n: Node) -> *mut u8 {
        self.store.shm().at(self.node_off(n) + NODE_HDR)
    }

    fn value_ptr(&self, n: Node) -> *mut u8 {
        self.store.shm().at(self.node_off(n) + self.l.value_off)
    }

    /// A node's prefix length, flags and data (not checked for recycling).
    fn view(&self, n: Node) -> NodeView {
        let mut v = NodeView {
            plen: self.field(n, N_PLEN).load(Ordering::Relaxed),
            flags: self.field(n, N_FLAGS).load(Ordering::Relaxed),
            data: [0; DATA_SIZE_MAX as usize],
        };
        // SAFETY: the data field of a node inside the block.
        unsafe { values::read(self.data_ptr(n), &mut v.data[..self.l.data_size]) };
        v
    }

    fn is_node(&self, link: u32) -> bool {
        link != 0 && link <= self.l.pool
    }

    // ---- lookups without the lock ----

    /// The node of the longest prefix matching `key`, and its generation;
    /// `locked` when the caller holds the writer lock.
    fn longest_match(&self, key: &[u8], locked: bool) -> Option<(Node, u32)> {
        let (plen, kdata) = split_key(key);
        if plen > self.l.max_plen || kdata.len() < self.l.data_size {
            return None;
        }
        match self.l.data_size.div_ceil(8) {
            1 => self.longest_match_in::<1>(key, locked),
            2 => self.longest_match_in::<2>(key, locked),
            _ => self.longest_match_in::<{ DATA_SIZE_MAX as usize / 8 }>(key, locked),
        }
    }

    /// [`longest_match`](Self::longest_match) with the key in `W` words.
    fn longest_match_in<const W: usize>(&self, key: &[u8], locked: bool) -> Option<(Node, u32)> {
        let (plen, kdata) = split_key(key);
        let words = KeyWords::<W>::new(&kdata[..self.l.data_size]);
        let mut tries = 0;
        loop {
            if !locked && tries == OPTIMISTIC_TRIES {
                let _g = self.lock().lock();
                return self.longest_match(key, true);
            }
            tries += 1;
            let walked = if locked {
                self.walk::<W, true>(plen, &words)
            } else {
                self.walk::<W, false>(plen, &words)
            };
            if let Some(found) = walked {
                return found;
            }
        }
    }

    /// How many leading bits node `n`'s data shares with the key, at most
    /// `limit` (which is at most the trie's `max_plen`). Reads the node's
    /// data in place, 8 bytes at a time (the data field is 8-aligned and
    /// padded to a multiple of 8 bytes); bits past `limit` do not count, so
    /// the padding's contents do not matter.
    fn match_len<const W: usize>(&self, n: Node, key: &KeyWords<W>, limit: u32) -> u32 {
        let p = self.data_ptr(n);
        for i in 0..limit.div_ceil(64) as usize {
            // SAFETY: word i < ceil(max_plen / 64) of the node's data field,
            // which is 8-aligned and round8(data_size) bytes long.
            let w =
                unsafe { AtomicU64::from_ptr(p.add(8 * i) as *mut u64) }.load(Ordering::Relaxed);
            let diff = u64::from_be(w) ^ key.0[i];
            if diff != 0 {
                return (64 * i as u32 + diff.leading_zeros()).min(limit);
            }
        }
        limit
    }

    /// One walk down the trie: `None` when a node on the way was recycled
    /// (start over), else the result. `LOCKED` when the caller holds the
    /// writer lock (no node can change under the walk).
    fn walk<const W: usize, const LOCKED: bool>(
        &self,
        plen: u32,
        words: &KeyWords<W>,
    ) -> Option<Option<(Node, u32)>> {
        let locked = LOCKED;
        let mut found = None;
        let mut slot = self.root_slot();
        let mut owner: Option<(Node, u32)> = None;
        let mut link = self.load(slot);
        let mut steps = 0;
        while link != 0 {
            steps += 1;
            if !self.is_node(link) || steps > self.l.max_plen + 1 {
                // Only a trie rewritten under us (or a damaged file) does this.
                return if locked { Some(found) } else { None };
            }
            let n = link - 1;
            let g = self.gen(n).load(Ordering::Acquire);
            if !locked {
                if g & 1 != 0 || self.load(slot) != link {
                    return None;
                }
                if let Some((p, gp)) = owner {
                    if self.gen(p).load(Ordering::Acquire) != gp {
                        return None;
                    }
                }
            }
            let nplen = self.field(n, N_PLEN).load(Ordering::Relaxed);
            let flags = self.field(n, N_FLAGS).load(Ordering::Relaxed);
            let m = self.match_len(n, words, nplen.min(plen));
            if !locked {
                fence(Ordering::Acquire);
                if self.gen(n).load(Ordering::Relaxed) != g {
                    return None;
                }
            }
            if nplen > self.l.max_plen {
                return if locked { Some(found) } else { None };
            }
            if m == self.l.max_plen {
                return Some(Some((n, g)));
            }
            if m < nplen {
                break;
            }
            if flags & FLAG_IM == 0 {
                found = Some((n, g));
            }
            slot = self.child_slot(n, words.bit(nplen));
            owner = Some((n, g));
            link = self.load(slot);
        }
        // The empty slot that ended the walk must still be the node's own
        // (the node not recycled since): else a longer match may be missed.
        if let (false, Some((p, gp))) = (locked, owner) {
            if self.gen(p).load(Ordering::Acquire) != gp {
                return None;
            }
        }
        Some(found)
    }

    /// Copy the value of the longest match of `key` into `out`.
    fn copy_longest(&self, key: &[u8], out: &mut [u8]) -> MapResult<()> {
        for _ in 0..OPTIMISTIC_TRIES {
            let (n, g) = self.longest_match(key, false).ok_or(MapError::NOENT)?;
            // SAFETY: the value field of a node inside the block.
            unsafe { values::read(self.value_ptr(n), out) };
            fence(Ordering::Acquire);
            if self.gen(n).load(Ordering::Relaxed) == g {
                return Ok(());
            }
        }
        let _g = self.lock().lock();
        let (n, _) = self.longest_match(key, true).ok_or(MapError::NOENT)?;
        // SAFETY: as above; the lock keeps the node in place.
        unsafe { values::read(self.value_ptr(n), out) };
        Ok(())
    }
}

/// Spin locks and timers are for hash and array values only (`EOPNOTSUPP`,
/// as the kernel's BTF check says).
pub(crate) fn check_no_special_fields(spec: &MapSpec) -> MapResult<()> {
    if spec.spin_lock_off.is_some() || spec.timer_off.is_some() {
        return Err(MapError::with_reason(
            errno::EOPNOTSUPP,
            format!(
                "map {}: a {} map cannot hold a bpf_spin_lock or bpf_timer",
                spec.name, spec.map_type
            ),
        ));
    }
    Ok(())
}

impl MapImpl for LpmTrie {
    fn lookup(&self, key: Option<&[u8]>, value: &mut [u8], _flags: u64) -> MapResult<()> {
        self.copy_longest(key.unwrap_or(&[]), value)
    }

    fn update(&self, key: Option<&[u8]>, value: &[u8], flags: u64) -> MapResult<()> {
        self.do_update(key.unwrap_or(&[]), value, flags)
    }

    fn delete(&self, key: &[u8]) -> MapResult<()> {
        self.do_delete(key)
    }

    fn get_next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> MapResult<()> {
        let _g = self.lock().lock();
        let n = self.next_of(key)?;
        let v = self.view(n);
        next[..4].copy_from_slice(&v.plen.to_ne_bytes());
        next[4..].copy_from_slice(&v.data[..self.l.data_size]);
        Ok(())
    }

    fn prog_lookup(&self, key: &[u8], _cpu: u32) -> Option<*mut u8> {
        let key = key.get(..self.spec.key_size as usize)?;
        let (n, _) = self.longest_match(key, false)?;
        Some(self.value_ptr(n))
    }

    fn prog_update(&self, key: &[u8], value: &[u8], flags: u64, _cpu: u32) -> MapResult<()> {
        let (k, v) = (self.spec.key_size as usize, self.spec.value_size as usize);
        if key.len() < k || value.len() < v {
            return Err(MapError::INVAL);
        }
        self.do_update(&key[..k], &value[..v], flags)
    }

    fn prog_delete(&self, key: &[u8]) -> MapResult<()> {
        if key.len() < self.spec.key_size as usize {
            return Err(MapError::INVAL);
        }
        self.do_delete(&key[..self.spec.key_size as usize])
    }

    fn slabs(&self) -> Vec<Slab> {
        vec![Slab {
            base: self.store.shm().at(self.l.nodes) as usize,
            count: self.l.pool as usize,
            stride: self.l.stride,
            value_off: self.l.value_off,
            value_len: self.spec.value_size as usize,
            writable: true,
        }]
    }

    fn store(&self) -> Option<&Store> {
        Some(&self.store)
    }

    fn elements(&self) -> Option<usize> {
        Some(self.ctrl(C_ENTRIES).load(Ordering::Relaxed) as usize)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

mod edit;
mod pool;
#[cfg(test)]
mod tests;
