//! The two sides of a differential run behind one interface: a kernel map
//! through `bpf()` and a bpfc [`Map`], each operation returning the bytes it
//! produced or the errno, exactly as user space sees them.

use crate::kernel::{Batch, KernelMap};
use bpfc_runtime::maps::{Map, MapResult};
use std::sync::Arc;

/// The result of one operation: the bytes it returned (a value, a next key;
/// empty for updates and deletes) or the errno.
pub type Out = Result<Vec<u8>, i32>;

/// The result of one batch call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchOut {
    pub res: Result<(), i32>,
    /// Elements done (the kernel's `count` out).
    pub count: u32,
    /// `count` keys and values (lookup batches).
    pub keys: Vec<u8>,
    pub values: Vec<u8>,
    /// The resume token (`out_batch`).
    pub token: Vec<u8>,
}

/// A map as user space drives it.
pub trait Subject {
    /// `kernel` or `bpfc`, for reports.
    fn side(&self) -> &'static str;
    fn key_size(&self) -> usize;
    /// Bytes of a value as user space reads and writes it.
    fn value_size(&self) -> usize;
    /// `value_in`: what the value buffer holds on entry (the bloom filter
    /// reads the value to test from it); zeroes otherwise.
    fn lookup(&self, key: &[u8], value_in: Option<&[u8]>, flags: u64) -> Out;
    fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Out;
    fn delete(&self, key: &[u8]) -> Out;
    fn next_key(&self, key: Option<&[u8]>) -> Out;
    fn lookup_and_delete(&self, key: &[u8], flags: u64) -> Out;
    /// The batch commands, where this side has them.
    fn batch(&self) -> Option<&dyn BatchSubject>;
}

/// The four batch commands.
pub trait BatchSubject {
    /// `BPF_MAP_LOOKUP_BATCH` (or `..._AND_DELETE_BATCH` with `delete`) for
    /// up to `count` elements from `token` (`None`: the start).
    fn lookup_batch(
        &self,
        token: Option<&[u8]>,
        count: u32,
        delete: bool,
        elem_flags: u64,
        flags: u64,
    ) -> BatchOut;
    /// `BPF_MAP_UPDATE_BATCH` of `count` keys and values.
    fn update_batch(
        &self,
        keys: &[u8],
        values: &[u8],
        count: u32,
        elem_flags: u64,
        flags: u64,
    ) -> BatchOut;
    /// `BPF_MAP_DELETE_BATCH` of `count` keys.
    fn delete_batch(&self, keys: &[u8], count: u32, elem_flags: u64, flags: u64) -> BatchOut;
}

fn value_buf(size: usize, init: Option<&[u8]>) -> Vec<u8> {
    let mut v = vec![0u8; size];
    if let Some(i) = init {
        let n = i.len().min(size);
        v[..n].copy_from_slice(&i[..n]);
    }
    v
}

fn errno<T>(r: crate::kernel::KResult<T>) -> Result<T, i32> {
    r.map_err(|e| e.0)
}

impl Subject for KernelMap {
    fn side(&self) -> &'static str {
        "kernel"
    }
    fn key_size(&self) -> usize {
        self.key_size
    }
    fn value_size(&self) -> usize {
        self.user_value_size()
    }
    fn lookup(&self, key: &[u8], value_in: Option<&[u8]>, flags: u64) -> Out {
        let mut v = value_buf(self.user_value_size(), value_in);
        errno(KernelMap::lookup(self, key, &mut v, flags)).map(|()| v)
    }
    fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Out {
        errno(KernelMap::update(self, key, value, flags)).map(|()| Vec::new())
    }
    fn delete(&self, key: &[u8]) -> Out {
        errno(KernelMap::delete(self, key)).map(|()| Vec::new())
    }
    fn next_key(&self, key: Option<&[u8]>) -> Out {
        let mut n = vec![0u8; self.key_size];
        errno(self.get_next_key(key, &mut n)).map(|()| n)
    }
    fn lookup_and_delete(&self, key: &[u8], flags: u64) -> Out {
        let mut v = vec![0u8; self.user_value_size()];
        errno(KernelMap::lookup_and_delete(self, key, &mut v, flags)).map(|()| v)
    }
    fn batch(&self) -> Option<&dyn BatchSubject> {
        Some(self)
    }
}

impl BatchSubject for KernelMap {
    fn lookup_batch(
        &self,
        token: Option<&[u8]>,
        count: u32,
        delete: bool,
        elem_flags: u64,
        flags: u64,
    ) -> BatchOut {
        let mut keys = vec![0u8; count as usize * self.key_size];
        let mut values = vec![0u8; count as usize * self.user_value_size()];
        let mut b = Batch {
            in_batch: token.map(|t| t.to_vec()),
            count,
            elem_flags,
            flags,
            ..Batch::default()
        };
        let res = if delete {
            self.lookup_and_delete_batch(&mut b, &mut keys, &mut values)
        } else {
            KernelMap::lookup_batch(self, &mut b, &mut keys, &mut values)
        };
        keys.truncate(b.count as usize * self.key_size);
        values.truncate(b.count as usize * self.user_value_size());
        BatchOut {
            res: errno(res),
            count: b.count,
            keys,
            values,
            token: b.out_batch,
        }
    }

    fn update_batch(
        &self,
        keys: &[u8],
        values: &[u8],
        count: u32,
        elem_flags: u64,
        flags: u64,
    ) -> BatchOut {
        let mut b = Batch {
            count,
            elem_flags,
            flags,
            ..Batch::default()
        };
        let res = KernelMap::update_batch(self, &mut b, keys, values);
        BatchOut {
            res: errno(res),
            count: b.count,
            keys: Vec::new(),
            values: Vec::new(),
            token: Vec::new(),
        }
    }

    fn delete_batch(&self, keys: &[u8], count: u32, elem_flags: u64, flags: u64) -> BatchOut {
        let mut b = Batch {
            count,
            elem_flags,
            flags,
            ..Batch::default()
        };
        let res = KernelMap::delete_batch(self, &mut b, keys);
        BatchOut {
            res: errno(res),
            count: b.count,
            keys: Vec::new(),
            values: Vec::new(),
            token: Vec::new(),
        }
    }
}

/// A bpfc map as a [`Subject`].
pub struct Bpfc(pub Arc<Map>);

fn code<T>(r: MapResult<T>) -> Result<T, i32> {
    r.map_err(|e| e.code())
}

impl Subject for Bpfc {
    fn side(&self) -> &'static str {
        "bpfc"
    }
    fn key_size(&self) -> usize {
        self.0.key_size()
    }
    fn value_size(&self) -> usize {
        self.0.user_value_size()
    }
    fn lookup(&self, key: &[u8], value_in: Option<&[u8]>, flags: u64) -> Out {
        let mut v = value_buf(self.0.user_value_size(), value_in);
        code(self.0.lookup_flags(key, &mut v, flags)).map(|()| v)
    }
    fn update(&self, key: &[u8], value: &[u8], flags: u64) -> Out {
        code(self.0.update(key, value, flags)).map(|()| Vec::new())
    }
    fn delete(&self, key: &[u8]) -> Out {
        code(self.0.delete(key)).map(|()| Vec::new())
    }
    fn next_key(&self, key: Option<&[u8]>) -> Out {
        let mut n = vec![0u8; self.0.key_size()];
        code(self.0.get_next_key(key, &mut n)).map(|()| n)
    }
    fn lookup_and_delete(&self, key: &[u8], flags: u64) -> Out {
        let mut v = vec![0u8; self.0.user_value_size()];
        code(self.0.lookup_and_delete(key, &mut v, flags)).map(|()| v)
    }
    fn batch(&self) -> Option<&dyn BatchSubject> {
        Some(self)
    }
}

impl BatchSubject for Bpfc {
    fn lookup_batch(
        &self,
        token: Option<&[u8]>,
        count: u32,
        delete: bool,
        elem_flags: u64,
        flags: u64,
    ) -> BatchOut {
        let m = &self.0;
        let mut keys = vec![0u8; count as usize * m.key_size()];
        let mut values = vec![0u8; count as usize * m.user_value_size()];
        let mut out = vec![0u8; m.batch_token_size().max(4)];
        let mut n = count;
        let res = if delete {
            m.lookup_and_delete_batch(
                token,
                &mut out,
                &mut keys,
                &mut values,
                &mut n,
                elem_flags,
                flags,
            )
        } else {
            m.lookup_batch(
                token,
                &mut out,
                &mut keys,
                &mut values,
                &mut n,
                elem_flags,
                flags,
            )
        };
        keys.truncate(n as usize * m.key_size());
        values.truncate(n as usize * m.user_value_size());
        BatchOut {
            res: code(res),
            count: n,
            keys,
            values,
            token: out,
        }
    }

    fn update_batch(
        &self,
        keys: &[u8],
        values: &[u8],
        count: u32,
        elem_flags: u64,
        flags: u64,
    ) -> BatchOut {
        let mut n = count;
        let res = self.0.update_batch(keys, values, &mut n, elem_flags, flags);
        BatchOut {
            res: code(res),
            count: n,
            keys: Vec::new(),
            values: Vec::new(),
            token: Vec::new(),
        }
    }

    fn delete_batch(&self, keys: &[u8], count: u32, elem_flags: u64, flags: u64) -> BatchOut {
        let mut n = count;
        let res = self.0.delete_batch(keys, &mut n, elem_flags, flags);
        BatchOut {
            res: code(res),
            count: n,
            keys: Vec::new(),
            values: Vec::new(),
            token: Vec::new(),
        }
    }
}
