//! The LPM trie's node pool, under the writer lock: handing out nodes
//! (fresh ones first, recycled ones once enough wait), freeing them, and
//! repairing the pool's books after a writer died holding the lock.

use super::*;

impl LpmTrie {
    /// Run `f` under the writer lock, first repairing what a writer that died
    /// holding it may have left.
    pub(super) fn write<T>(&self, f: impl FnOnce(&Self) -> MapResult<T>) -> MapResult<T> {
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
    pub(super) fn alloc(
        &self,
        plen: u32,
        flags: u32,
        data: &[u8],
        value: Option<&[u8]>,
    ) -> MapResult<Node> {
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
    pub(super) fn free(&self, n: Node) {
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
    pub(super) fn unused(&self, n: Node) {
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
    pub(super) fn recover(&self) {
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
}
