//! The kernel's map commands through the `bpf()` system call, with the same
//! argument shapes as bpfc's `Map` API, for differential tests.

use bpfc_runtime::maps::MapSpec;

const BPF_MAP_CREATE: u32 = 0;
const BPF_MAP_LOOKUP_ELEM: u32 = 1;
const BPF_MAP_UPDATE_ELEM: u32 = 2;
const BPF_MAP_DELETE_ELEM: u32 = 3;
const BPF_MAP_GET_NEXT_KEY: u32 = 4;
const BPF_MAP_LOOKUP_AND_DELETE_ELEM: u32 = 21;
pub const BPF_MAP_LOOKUP_BATCH: u32 = 24;
pub const BPF_MAP_LOOKUP_AND_DELETE_BATCH: u32 = 25;
pub const BPF_MAP_UPDATE_BATCH: u32 = 26;
pub const BPF_MAP_DELETE_BATCH: u32 = 27;

/// `union bpf_attr`, as 8-byte words (zero beyond what a command uses).
type Attr = [u64; 16];

fn bpf(cmd: u32, attr: &mut Attr) -> Result<i64, i32> {
    // SAFETY: `attr` is a valid, writable buffer of the size passed; every
    // pointer inside it refers to a live buffer of the caller's.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr.as_mut_ptr(),
            std::mem::size_of::<Attr>() as libc::c_long,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r)
    }
}

fn lo_hi(lo: u32, hi: u32) -> u64 {
    lo as u64 | (hi as u64) << 32
}

fn ptr(b: Option<&[u8]>) -> u64 {
    b.map_or(0, |b| b.as_ptr() as u64)
}

/// A map of the running kernel.
pub struct KMap {
    fd: i32,
}

impl Drop for KMap {
    fn drop(&mut self) {
        // SAFETY: closing the descriptor this value owns.
        unsafe { libc::close(self.fd) };
    }
}

impl KMap {
    /// `BPF_MAP_CREATE` of `spec` (no BTF), or the errno.
    pub fn create(spec: &MapSpec) -> Result<KMap, i32> {
        let mut a: Attr = [0; 16];
        a[0] = lo_hi(spec.map_type as u32, spec.key_size);
        a[1] = lo_hi(spec.value_size, spec.max_entries);
        a[2] = lo_hi(spec.flags, 0);
        a[8] = spec.map_extra;
        let fd = bpf(BPF_MAP_CREATE, &mut a)?;
        Ok(KMap { fd: fd as i32 })
    }

    fn elem(&self, key: Option<&[u8]>, value: u64, flags: u64) -> Attr {
        let mut a: Attr = [0; 16];
        a[0] = self.fd as u64;
        a[1] = ptr(key);
        a[2] = value;
        a[3] = flags;
        a
    }

    pub fn lookup(&self, key: Option<&[u8]>, value: &mut [u8], flags: u64) -> Result<(), i32> {
        let mut a = self.elem(key, value.as_mut_ptr() as u64, flags);
        bpf(BPF_MAP_LOOKUP_ELEM, &mut a).map(drop)
    }

    pub fn update(&self, key: Option<&[u8]>, value: &[u8], flags: u64) -> Result<(), i32> {
        let mut a = self.elem(key, value.as_ptr() as u64, flags);
        bpf(BPF_MAP_UPDATE_ELEM, &mut a).map(drop)
    }

    pub fn delete(&self, key: Option<&[u8]>) -> Result<(), i32> {
        let mut a = self.elem(key, 0, 0);
        bpf(BPF_MAP_DELETE_ELEM, &mut a).map(drop)
    }

    pub fn get_next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> Result<(), i32> {
        let mut a = self.elem(key, next.as_mut_ptr() as u64, 0);
        bpf(BPF_MAP_GET_NEXT_KEY, &mut a).map(drop)
    }

    pub fn lookup_and_delete(
        &self,
        key: Option<&[u8]>,
        value: &mut [u8],
        flags: u64,
    ) -> Result<(), i32> {
        let mut a = self.elem(key, value.as_mut_ptr() as u64, flags);
        bpf(BPF_MAP_LOOKUP_AND_DELETE_ELEM, &mut a).map(drop)
    }

    /// One of the batch commands; `count` in and out.
    #[allow(clippy::too_many_arguments)]
    pub fn batch(
        &self,
        cmd: u32,
        in_batch: Option<&[u8]>,
        out_batch: &mut [u8],
        keys: &mut [u8],
        values: &mut [u8],
        count: &mut u32,
        elem_flags: u64,
        flags: u64,
    ) -> Result<(), i32> {
        let mut a: Attr = [0; 16];
        a[0] = ptr(in_batch);
        a[1] = out_batch.as_mut_ptr() as u64;
        a[2] = keys.as_mut_ptr() as u64;
        a[3] = values.as_mut_ptr() as u64;
        a[4] = lo_hi(*count, self.fd as u32);
        a[5] = elem_flags;
        a[6] = flags;
        let r = bpf(cmd, &mut a);
        *count = a[4] as u32;
        r.map(drop)
    }
}

/// Whether this process may create maps; the reason when not.
pub fn available() -> Result<(), String> {
    let spec = MapSpec::new("probe", bpfc_runtime::maps::MapType::Array, 4, 4, 1, 0);
    KMap::create(&spec).map(drop).map_err(|e| {
        format!(
            "bpf(BPF_MAP_CREATE) fails: {}",
            std::io::Error::from_raw_os_error(e)
        )
    })
}
