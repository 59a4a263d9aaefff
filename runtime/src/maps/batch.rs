//! Batch operations (`BPF_MAP_LOOKUP_BATCH`, `BPF_MAP_LOOKUP_AND_DELETE_BATCH`,
//! `BPF_MAP_UPDATE_BATCH`, `BPF_MAP_DELETE_BATCH`) with the kernel's
//! arguments and results: the arguments of `bpf_attr.batch` as slices, and
//! `count` in (how many elements at most) and out (how many were done).
//!
//! Which types have which batch operations, as in the kernel:
//! - the hash family (hash, per-CPU hash, the LRU variants, hash of maps):
//!   lookup and lookup-and-delete walk whole buckets (the batch token is a
//!   4-byte bucket number; `ENOSPC` when the first bucket does not fit in
//!   `count`, `ENOENT` once the last bucket is done), update and delete
//!   go key by key;
//! - arrays (array, per-CPU array, array of maps): lookup by
//!   `get_next_key` walk (the batch token is the last key) and update;
//! - the LPM trie: lookup, update and delete as for arrays;
//! - every other type: `ENOTSUPP` (524).

use super::error::{errno, MapError, MapResult};
use super::flags::BPF_F_LOCK;
use super::{Map, MapType};

/// The result of [`MapImpl::batch_bucket`](super::MapImpl::batch_bucket).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    /// This many elements were copied (and deleted).
    Taken(u32),
    /// The bucket holds this many elements, more than there was room for;
    /// nothing was copied.
    TooMany(u32),
}

/// How a type does lookup batches.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Walk {
    Buckets,
    Keys,
    None,
}

/// The kernel's table of batch operations: (lookup, lookup-and-delete,
/// update, delete).
fn ops(t: MapType) -> (Walk, Walk, bool, bool) {
    match t {
        MapType::Hash
        | MapType::PercpuHash
        | MapType::LruHash
        | MapType::LruPercpuHash
        | MapType::HashOfMaps => (Walk::Buckets, Walk::Buckets, true, true),
        MapType::Array | MapType::PercpuArray | MapType::ArrayOfMaps => {
            (Walk::Keys, Walk::None, true, false)
        }
        MapType::LpmTrie => (Walk::Keys, Walk::None, true, true),
        _ => (Walk::None, Walk::None, false, false),
    }
}

fn short(what: &str, len: usize, need: usize, map: &Map) -> MapError {
    MapError::invalid(format!(
        "{what} of {len} bytes, map {} needs {need} for this batch",
        map.name()
    ))
}

impl Map {
    /// The size of the batch token (`in_batch`/`out_batch`) of lookup
    /// batches: a 4-byte bucket number for the hash family, a key otherwise.
    pub fn batch_token_size(&self) -> usize {
        if ops(self.map_type()).0 == Walk::Buckets {
            4
        } else {
            self.key_size()
        }
    }

    /// `elem_flags` of every batch: `BPF_F_LOCK` only, and only with a lock.
    fn check_elem_flags(&self, elem_flags: u64) -> MapResult<()> {
        if elem_flags & !BPF_F_LOCK != 0 {
            return Err(MapError::INVAL);
        }
        self.check_lock_flag(elem_flags)
    }

    /// `BPF_MAP_LOOKUP_BATCH`: copy up to `*count` elements, starting after
    /// `in_batch` (`None`: from the start), into `keys` and `values`; on
    /// return `*count` says how many and `out_batch` where to go on.
    /// `ENOENT` when the walk reached the end (the elements copied are
    /// valid).
    #[allow(clippy::too_many_arguments)]
    pub fn lookup_batch(
        &self,
        in_batch: Option<&[u8]>,
        out_batch: &mut [u8],
        keys: &mut [u8],
        values: &mut [u8],
        count: &mut u32,
        elem_flags: u64,
        flags: u64,
    ) -> MapResult<()> {
        self.can_read()?;
        let walk = ops(self.map_type()).0;
        self.lookup_walk(
            walk, false, in_batch, out_batch, keys, values, count, elem_flags, flags,
        )
    }

    /// `BPF_MAP_LOOKUP_AND_DELETE_BATCH`: as [`Map::lookup_batch`], and the
    /// elements copied are deleted.
    #[allow(clippy::too_many_arguments)]
    pub fn lookup_and_delete_batch(
        &self,
        in_batch: Option<&[u8]>,
        out_batch: &mut [u8],
        keys: &mut [u8],
        values: &mut [u8],
        count: &mut u32,
        elem_flags: u64,
        flags: u64,
    ) -> MapResult<()> {
        self.can_read()?;
        self.can_write()?;
        let walk = ops(self.map_type()).1;
        self.lookup_walk(
            walk, true, in_batch, out_batch, keys, values, count, elem_flags, flags,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn lookup_walk(
        &self,
        walk: Walk,
        delete: bool,
        in_batch: Option<&[u8]>,
        out_batch: &mut [u8],
        keys: &mut [u8],
        values: &mut [u8],
        count: &mut u32,
        elem_flags: u64,
        flags: u64,
    ) -> MapResult<()> {
        if walk == Walk::None {
            return Err(MapError::NOTSUPP);
        }
        self.check_elem_flags(elem_flags)?;
        if walk == Walk::Buckets && flags != 0 {
            return Err(MapError::INVAL);
        }
        let max = *count;
        if max == 0 {
            return Ok(());
        }
        let (ks, vs) = (self.key_size(), self.user_value_size());
        let token = self.batch_token_size();
        let n = max as usize;
        if let Some(b) = in_batch.filter(|b| b.len() < token) {
            return Err(short("in_batch", b.len(), token, self));
        }
        if out_batch.len() < token {
            return Err(short("out_batch", out_batch.len(), token, self));
        }
        if keys.len() < n.saturating_mul(ks) {
            return Err(short("keys", keys.len(), n.saturating_mul(ks), self));
        }
        if values.len() < n.saturating_mul(vs) {
            return Err(short("values", values.len(), n.saturating_mul(vs), self));
        }
        *count = 0;
        if walk == Walk::Buckets {
            self.bucket_walk(
                delete, in_batch, out_batch, keys, values, max, count, elem_flags,
            )
        } else {
            self.key_walk(in_batch, out_batch, keys, values, max, count, elem_flags)
        }
    }

    /// The hash family's walk over whole buckets.
    #[allow(clippy::too_many_arguments)]
    fn bucket_walk(
        &self,
        delete: bool,
        in_batch: Option<&[u8]>,
        out_batch: &mut [u8],
        keys: &mut [u8],
        values: &mut [u8],
        max: u32,
        count: &mut u32,
        elem_flags: u64,
    ) -> MapResult<()> {
        let buckets = self.imp.batch_buckets().ok_or(MapError::NOTSUPP)?;
        let mut bucket = in_batch.map_or(0, |b| {
            u32::from_ne_bytes(b[..4].try_into().expect("4 bytes"))
        });
        if bucket >= buckets {
            return Err(MapError::NOENT);
        }
        let (ks, vs) = (self.key_size(), self.user_value_size());
        let lock = elem_flags & BPF_F_LOCK != 0;
        let mut total = 0u32;
        let result = loop {
            let at = total as usize;
            match self.imp.batch_bucket(
                bucket,
                max - total,
                delete,
                lock,
                &mut keys[at * ks..],
                &mut values[at * vs..],
            )? {
                Bucket::TooMany(_) if total == 0 => break Err(MapError::errno(errno::ENOSPC)),
                Bucket::TooMany(_) => break Ok(()),
                Bucket::Taken(n) => {
                    total += n;
                    bucket += 1;
                    if bucket >= buckets {
                        break Err(MapError::NOENT);
                    }
                }
            }
        };
        out_batch[..4].copy_from_slice(&bucket.to_ne_bytes());
        *count = total;
        result
    }

    /// `generic_map_lookup_batch`: `get_next_key` from the token on, a
    /// lookup of each key; keys gone between the two are skipped.
    #[allow(clippy::too_many_arguments)]
    fn key_walk(
        &self,
        in_batch: Option<&[u8]>,
        out_batch: &mut [u8],
        keys: &mut [u8],
        values: &mut [u8],
        max: u32,
        count: &mut u32,
        elem_flags: u64,
    ) -> MapResult<()> {
        let (ks, vs) = (self.key_size(), self.user_value_size());
        let max = max as usize;
        let mut prev: Option<Vec<u8>> = in_batch.map(|b| b[..ks].to_vec());
        let mut key = vec![0u8; ks];
        let mut value = vec![0u8; vs];
        let mut done = 0usize;
        let mut result = Ok(());
        while done < max {
            if let Err(e) = self.imp.get_next_key(prev.as_deref(), &mut key) {
                result = Err(e);
                break;
            }
            match self.imp.lookup(self.key_opt(&key), &mut value, elem_flags) {
                Ok(()) => {
                    keys[done * ks..(done + 1) * ks].copy_from_slice(&key);
                    values[done * vs..(done + 1) * vs].copy_from_slice(&value);
                    done += 1;
                }
                Err(e) if e.code() == errno::ENOENT => {}
                // The kernel returns at once, leaving the count at 0.
                Err(e) => return Err(e),
            }
            prev = Some(key.clone());
        }
        *count = done as u32;
        if done > 0 {
            if let Some(p) = &prev {
                out_batch[..ks].copy_from_slice(p);
            }
        }
        result
    }

    /// `BPF_MAP_UPDATE_BATCH`: update `*count` elements from `keys` and
    /// `values` in order with `elem_flags` (`BPF_ANY`, or `BPF_F_LOCK`),
    /// stopping at the first failure; `*count` says how many succeeded.
    pub fn update_batch(
        &self,
        keys: &[u8],
        values: &[u8],
        count: &mut u32,
        elem_flags: u64,
        flags: u64,
    ) -> MapResult<()> {
        let _ = flags;
        self.can_write()?;
        if !ops(self.map_type()).2 {
            return Err(MapError::NOTSUPP);
        }
        self.check_elem_flags(elem_flags)?;
        let max = *count as usize;
        if max == 0 {
            return Ok(());
        }
        let (ks, vs) = (self.key_size(), self.user_value_size());
        if keys.len() < max.saturating_mul(ks) {
            return Err(short("keys", keys.len(), max.saturating_mul(ks), self));
        }
        if values.len() < max.saturating_mul(vs) {
            return Err(short("values", values.len(), max.saturating_mul(vs), self));
        }
        *count = 0;
        for i in 0..max {
            let key = &keys[i * ks..(i + 1) * ks];
            let value = &values[i * vs..(i + 1) * vs];
            self.imp.update(self.key_opt(key), value, elem_flags)?;
            *count = i as u32 + 1;
        }
        Ok(())
    }

    /// `BPF_MAP_DELETE_BATCH`: delete `*count` keys from `keys` in order,
    /// stopping at the first failure (`ENOENT` for a key not there);
    /// `*count` says how many were deleted.
    pub fn delete_batch(
        &self,
        keys: &[u8],
        count: &mut u32,
        elem_flags: u64,
        flags: u64,
    ) -> MapResult<()> {
        let _ = flags;
        self.can_write()?;
        if !ops(self.map_type()).3 {
            return Err(MapError::NOTSUPP);
        }
        self.check_elem_flags(elem_flags)?;
        let max = *count as usize;
        if max == 0 {
            return Ok(());
        }
        let ks = self.key_size();
        if keys.len() < max.saturating_mul(ks) {
            return Err(short("keys", keys.len(), max.saturating_mul(ks), self));
        }
        *count = 0;
        for i in 0..max {
            self.imp.delete(&keys[i * ks..(i + 1) * ks])?;
            *count = i as u32 + 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
