//! The LPM trie's edits and ordered walk, under the writer lock: insert and
//! remove with the kernel's node shapes (`trie_update_elem`,
//! `trie_delete_elem`), and `get_next_key`'s post-order.

use super::*;

impl LpmTrie {
    /// `trie_check_add_elem`: room for one more element.
    pub(super) fn add_entry(&self, flags: u64) -> MapResult<()> {
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

    pub(super) fn do_update(&self, key: &[u8], value: &[u8], flags: u64) -> MapResult<()> {
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
    pub(super) fn insert(&self, new: Node, plen: u32, kdata: &[u8], flags: u64) -> MapResult<()> {
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

    pub(super) fn do_delete(&self, key: &[u8]) -> MapResult<()> {
        let (plen, kdata) = split_key(key);
        if plen > self.l.max_plen {
            return Err(MapError::INVAL);
        }
        self.write(|t| t.remove(plen, kdata))
    }

    pub(super) fn remove(&self, plen: u32, kdata: &[u8]) -> MapResult<()> {
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
    pub(super) fn leftmost(&self, mut link: u32) -> Option<Node> {
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
    pub(super) fn next_of(&self, key: Option<&[u8]>) -> MapResult<Node> {
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
