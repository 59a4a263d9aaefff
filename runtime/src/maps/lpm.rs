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
//! Writers (update, delete, and `get_next_key`, which walks with a stack)
//! take the one lock, as the kernel does. Lookups take no lock: writers
//! publish a node only once it is complete and change the trie one link at a
//! time, so a reader always walks some consistent trie. A node's generation
//! is odd while it is free and changes whenever it is freed or reused; a
//! reader checks it around every node it reads and starts over when a node
//! on its path was recycled under it, so it never mistakes a reused node for
//! the one it followed. Freed nodes are reused in FIFO order and only once
//! [`RECYCLE_DELAY`] of them wait, so a value a program holds a pointer to
//! stays as it was for a while after a delete, as the kernel's RCU-delayed
//! frees make it.

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
        if plen > self.l.max_plen {
            return None;
        }
        let mut tries = 0;
        loop {
            if !locked && tries == OPTIMISTIC_TRIES {
                let _g = self.lock().lock();
                return self.longest_match(key, true);
            }
            tries += 1;
            if let Some(found) = self.walk(plen, kdata, locked) {
                return found;
            }
        }
    }

    /// One walk down the trie: `None` when a node on the way was recycled
    /// (start over), else the result.
    #[allow(clippy::option_option)]
    fn walk(&self, plen: u32, kdata: &[u8], locked: bool) -> Option<Option<(Node, u32)>> {
        let ds = self.l.data_size;
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
            let v = self.view(n);
            if !locked {
                fence(Ordering::Acquire);
                if self.gen(n).load(Ordering::Relaxed) != g {
                    return None;
                }
            }
            if v.plen > self.l.max_plen {
                return if locked { Some(found) } else { None };
            }
            let m = common_prefix(&v.data[..ds], kdata, v.plen.min(plen));
            if m == self.l.max_plen {
                return Some(Some((n, g)));
            }
            if m < v.plen {
                break;
            }
            if v.flags & FLAG_IM == 0 {
                found = Some((n, g));
            }
            slot = self.child_slot(n, bit(kdata, v.plen));
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

    // ---- the pool (writer lock held) ----

    /// Run `f` under the writer lock, first repairing what a writer that died
    /// holding it may have left.
    fn write<T>(&self, f: impl FnOnce(&Self) -> MapResult<T>) -> MapResult<T> {
        let _g = self.lock().lock();
        let dirty = self.ctrl(C_DIRTY);
        if dirty.load(Ordering::Relaxed) != 0 {
            self.recover();
        }
        dirty.store(1, Ordering::Relaxed);
        let r = f(self);
        dirty.store(0, Ordering::Release);
        r
    }

    /// A node for `plen`/`data` with `value` (`None`: an intermediate node),
    /// no children; recycled once enough freed nodes wait, else never used.
    fn alloc(&self, plen: u32, flags: u32, data: &[u8], value: Option<&[u8]>) -> MapResult<Node> {
        let bump = self.ctrl(C_BUMP);
        let free_len = self.ctrl(C_FREE_LEN).load(Ordering::Relaxed);
        let fresh = bump.load(Ordering::Relaxed);
        let n = if free_len > 0 && (free_len >= RECYCLE_DELAY || fresh >= self.l.pool) {
            let n = self.ctrl(C_FREE_HEAD).load(Ordering::Relaxed) - 1;
            let next = self.field(n, N_FREE_NEXT).load(Ordering::Relaxed);
            self.ctrl(C_FREE_HEAD).store(next, Ordering::Relaxed);
            if next == 0 {
                self.ctrl(C_FREE_TAIL).store(0, Ordering::Relaxed);
            }
            self.ctrl(C_FREE_LEN).store(free_len - 1, Ordering::Relaxed);
            // Odd (free) to even (in use): readers that saw the old node notice.
            self.gen(n).fetch_add(1, Ordering::Relaxed);
            fence(Ordering::Release);
            n
        } else if fresh < self.l.pool {
            let end = self.node_off(fresh) + self.l.stride;
            let have = self.reserved().load(Ordering::Relaxed) as usize;
            if end > have {
                let start = have.max(self.l.nodes);
                let upto = end.max(start + RESERVE_STEP).min(self.l.total);
                self.store.reserve(start, upto - start)?;
                self.reserved().store(upto as u64, Ordering::Relaxed);
            }
            bump.store(fresh + 1, Ordering::Relaxed);
            fresh
        } else {
            return Err(MapError::NOMEM);
        };
        self.word(self.child_slot(n, 0)).store(0, Ordering::Relaxed);
        self.word(self.child_slot(n, 1)).store(0, Ordering::Relaxed);
        self.field(n, N_PLEN).store(plen, Ordering::Relaxed);
        self.field(n, N_FLAGS).store(flags, Ordering::Relaxed);
        // SAFETY: the data and value fields of a node nobody else can reach.
        unsafe {
            values::write(self.data_ptr(n), &data[..self.l.data_size]);
            if let Some(v) = value {
                values::write(self.value_ptr(n), v);
            }
        }
        Ok(n)
    }

    /// Give a node back: unreachable from now on, reused later.
    fn free(&self, n: Node) {
        self.gen(n).fetch_add(1, Ordering::Release);
        self.field(n, N_FREE_NEXT).store(0, Ordering::Relaxed);
        let tail = self.ctrl(C_FREE_TAIL);
        match tail.load(Ordering::Relaxed) {
            0 => self.ctrl(C_FREE_HEAD).store(n + 1, Ordering::Relaxed),
            t => self
                .field(t - 1, N_FREE_NEXT)
                .store(n + 1, Ordering::Relaxed),
        }
        tail.store(n + 1, Ordering::Relaxed);
        self.ctrl(C_FREE_LEN).fetch_add(1, Ordering::Relaxed);
    }

    /// Give back a node that was never published: the last fresh node
    /// goes back to the untouched part of the pool, any other is freed.
    fn unused(&self, n: Node) {
        let bump = self.ctrl(C_BUMP);
        if bump.load(Ordering::Relaxed) == n + 1 && self.gen(n).load(Ordering::Relaxed) == 0 {
            bump.store(n, Ordering::Relaxed);
        } else {
            self.free(n);
        }
    }

    /// After a writer died mid-operation: the trie itself is consistent
    /// (every change is one published link), but the pool's books may not
    /// be. Recount the elements and rebuild the recycled-node queue from the
    /// nodes the trie does not reach.
    fn recover(&self) {
        let bump = self.ctrl(C_BUMP).load(Ordering::Relaxed).min(self.l.pool);
        let mut reached = vec![false; bump as usize];
        let mut entries = 0u32;
        let mut stack = vec![self.load(self.root_slot())];
        while let Some(link) = stack.pop() {
            if link == 0 || link > bump || reached[link as usize - 1] {
                continue;
            }
            let n = link - 1;
            reached[n as usize] = true;
            if self.field(n, N_FLAGS).load(Ordering::Relaxed) & FLAG_IM == 0 {
                entries += 1;
            }
            stack.push(self.child(n, 0));
            stack.push(self.child(n, 1));
        }
        self.ctrl(C_ENTRIES).store(entries, Ordering::Relaxed);
        self.ctrl(C_FREE_HEAD).store(0, Ordering::Relaxed);
        self.ctrl(C_FREE_TAIL).store(0, Ordering::Relaxed);
        self.ctrl(C_FREE_LEN).store(0, Ordering::Relaxed);
        for n in 0..bump {
            if !reached[n as usize] {
                // `free` makes the generation odd; a node already free is
                // made even first so that it ends up odd again.
                if self.gen(n).load(Ordering::Relaxed) & 1 != 0 {
                    self.gen(n).fetch_add(1, Ordering::Relaxed);
                }
                self.free(n);
            }
        }
    }

    /// `trie_check_add_elem`: room for one more element.
    fn add_entry(&self, flags: u64) -> MapResult<()> {
        if flags == BPF_EXIST {
            return Err(MapError::NOENT);
        }
        let entries = self.ctrl(C_ENTRIES);
        let n = entries.load(Ordering::Relaxed);
        if n >= self.spec.max_entries {
            return Err(MapError::errno(errno::ENOSPC));
        }
        entries.store(n + 1, Ordering::Relaxed);
        Ok(())
    }

    fn do_update(&self, key: &[u8], value: &[u8], flags: u64) -> MapResult<()> {
        if flags > BPF_EXIST {
            return Err(MapError::INVAL);
        }
        let (plen, kdata) = split_key(key);
        if plen > self.l.max_plen {
            return Err(MapError::INVAL);
        }
        self.write(|t| {
            let new = t.alloc(plen, 0, kdata, Some(value))?;
            let r = t.insert(new, plen, kdata, flags);
            if r.is_err() {
                t.unused(new);
            }
            r
        })
    }

    /// Attach the complete node `new` (prefix `plen` of `kdata`) to the trie.
    fn insert(&self, new: Node, plen: u32, kdata: &[u8], flags: u64) -> MapResult<()> {
        let ds = self.l.data_size;
        let mut slot = self.root_slot();
        let mut found = None;
        while self.is_node(self.load(slot)) {
            let n = self.load(slot) - 1;
            let v = self.view(n);
            let m = common_prefix(&v.data[..ds], kdata, v.plen.min(plen));
            if v.plen != m || v.plen == plen || v.plen == self.l.max_plen {
                found = Some((n, v, m));
                break;
            }
            slot = self.child_slot(n, bit(kdata, v.plen));
        }
        let Some((n, v, m)) = found else {
            // An empty slot: the new node goes there.
            self.add_entry(flags)?;
            self.set(slot, new + 1);
            return Ok(());
        };
        if v.plen == m {
            // The same prefix: the new node takes the old one's place.
            if v.flags & FLAG_IM == 0 {
                if flags == BPF_NOEXIST {
                    return Err(MapError::EXIST);
                }
            } else {
                self.add_entry(flags)?;
            }
            for b in 0..2 {
                let c = self.child(n, b);
                self.word(self.child_slot(new, b))
                    .store(c, Ordering::Relaxed);
            }
            self.set(slot, new + 1);
            self.free(n);
            return Ok(());
        }
        self.add_entry(flags)?;
        if m == plen {
            // The new prefix covers the node: it becomes the node's parent.
            let b = bit(&v.data, m);
            self.set(self.child_slot(new, b), n + 1);
            self.set(slot, new + 1);
            return Ok(());
        }
        // The two part ways after `m` bits: an intermediate node parents both.
        let im = match self.alloc(m, FLAG_IM, &v.data[..ds], None) {
            Ok(im) => im,
            Err(e) => {
                self.ctrl(C_ENTRIES).fetch_sub(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        let (left, right) = if bit(kdata, m) == 1 {
            (n, new)
        } else {
            (new, n)
        };
        self.set(self.child_slot(im, 0), left + 1);
        self.set(self.child_slot(im, 1), right + 1);
        self.set(slot, im + 1);
        Ok(())
    }

    fn do_delete(&self, key: &[u8]) -> MapResult<()> {
        let (plen, kdata) = split_key(key);
        if plen > self.l.max_plen {
            return Err(MapError::INVAL);
        }
        self.write(|t| t.remove(plen, kdata))
    }

    fn remove(&self, plen: u32, kdata: &[u8]) -> MapResult<()> {
        let ds = self.l.data_size;
        let mut trim = self.root_slot();
        let mut trim2 = trim;
        let mut parent: Option<Node> = None;
        let mut hit = None;
        while self.is_node(self.load(trim)) {
            let n = self.load(trim) - 1;
            let v = self.view(n);
            let m = common_prefix(&v.data[..ds], kdata, v.plen.min(plen));
            if v.plen != m || v.plen == plen {
                hit = Some((n, v, m));
                break;
            }
            parent = Some(n);
            trim2 = trim;
            trim = self.child_slot(n, bit(kdata, v.plen));
        }
        let Some((n, v, m)) = hit else {
            return Err(MapError::NOENT);
        };
        if v.plen != plen || v.plen != m || v.flags & FLAG_IM != 0 {
            return Err(MapError::NOENT);
        }
        self.ctrl(C_ENTRIES).fetch_sub(1, Ordering::Relaxed);
        let (c0, c1) = (self.child(n, 0), self.child(n, 1));
        if c0 != 0 && c1 != 0 {
            // Still needed to part its children: it becomes intermediate.
            self.field(n, N_FLAGS).fetch_or(FLAG_IM, Ordering::Release);
            return Ok(());
        }
        if let Some(p) = parent {
            let p_im = self.field(p, N_FLAGS).load(Ordering::Relaxed) & FLAG_IM != 0;
            if p_im && c0 == 0 && c1 == 0 {
                // An intermediate parent left with one child goes too.
                let sibling = if self.child(p, 0) == n + 1 {
                    self.child(p, 1)
                } else {
                    self.child(p, 0)
                };
                self.set(trim2, sibling);
                self.free(p);
                self.free(n);
                return Ok(());
            }
        }
        self.set(trim, if c0 != 0 { c0 } else { c1 });
        self.free(n);
        Ok(())
    }

    /// The first element in post-order at or below `link`: follow left
    /// children, then right ones, down to the last element on the way.
    fn leftmost(&self, mut link: u32) -> Option<Node> {
        let mut last = None;
        let mut steps = 0;
        while self.is_node(link) && steps <= self.l.max_plen + 1 {
            steps += 1;
            let n = link - 1;
            if self.field(n, N_FLAGS).load(Ordering::Relaxed) & FLAG_IM != 0 {
                link = self.child(n, 0);
            } else {
                last = Some(n);
                link = self.child(n, 0);
                if link == 0 {
                    link = self.child(n, 1);
                }
            }
        }
        last
    }

    /// `trie_get_next_key` (under the lock): the element after `key` in
    /// post-order, more specific prefixes before less specific ones; the
    /// first one when `key` is absent, not an element, or too long.
    fn next_of(&self, key: Option<&[u8]>) -> MapResult<Node> {
        let root = self.load(self.root_slot());
        if !self.is_node(root) {
            return Err(MapError::NOENT);
        }
        let first = || self.leftmost(root).ok_or(MapError::NOENT);
        let Some(key) = key else {
            return first();
        };
        let (plen, kdata) = split_key(key);
        if plen > self.l.max_plen {
            return first();
        }
        let ds = self.l.data_size;
        let mut stack: Vec<Node> = Vec::new();
        let mut link = root;
        let mut exact = false;
        while self.is_node(link) && stack.len() <= self.l.max_plen as usize {
            let n = link - 1;
            stack.push(n);
            let v = self.view(n);
            let m = common_prefix(&v.data[..ds], kdata, v.plen.min(plen));
            if v.plen != m || v.plen == plen {
                exact = v.plen == m && v.flags & FLAG_IM == 0;
                break;
            }
            link = self.child(n, bit(kdata, v.plen));
        }
        if !exact {
            return first();
        }
        // Climb: the next element is the leftmost one of the right sibling
        // subtree, else the first element among the ancestors.
        let mut node = stack.pop().expect("the exact node");
        while let Some(&parent) = stack.last() {
            if self.child(parent, 0) == node + 1 {
                let right = self.child(parent, 1);
                if right != 0 {
                    return self.leftmost(right).ok_or(MapError::NOENT);
                }
            }
            if self.field(parent, N_FLAGS).load(Ordering::Relaxed) & FLAG_IM == 0 {
                return Ok(parent);
            }
            node = parent;
            stack.pop();
        }
        Err(MapError::NOENT)
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

#[cfg(test)]
mod tests;
