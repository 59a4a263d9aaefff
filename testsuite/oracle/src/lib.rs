//! The running kernel as bpfc's test oracle: a small, safe wrapper of the
//! `bpf()` system call for tests that compare bpfc's behaviour with the
//! kernel's, the one such wrapper in the workspace (the runtime's unit tests
//! and the testsuite both use it). Beside it: [`btf`] writes raw BTF,
//! [`asm`] hand-written instructions, [`perf`] the perf events and shared
//! mappings that ring buffers and perf buffers are read through, and
//! [`skip`] is how a test that cannot ask the kernel says so.
//!
//! # For test authors
//!
//! Call [`available`] first; it returns `false` after printing a `SKIP:` line
//! when the kernel cannot be asked (not root, `bpf()` refused), and under
//! `BPFC_TEST_REQUIRE=all` (CI) it fails the test instead.
//!
//! ```no_run
//! use bpfc_oracle::{self as kernel, KernelMap, MapCreate};
//! if !kernel::available("my_test") {
//!     return;
//! }
//! let m = KernelMap::create(&MapCreate::new(1 /* hash */, 4, 8, 16)).unwrap();
//! m.update(&1u32.to_ne_bytes(), &7u64.to_ne_bytes(), 0).unwrap();
//! let mut v = [0u8; 8];
//! m.lookup(&1u32.to_ne_bytes(), &mut v, 0).unwrap();
//! ```
//!
//! - Every call returns `Result<_, Errno>`: the positive errno the syscall
//!   set, comparable with `MapError::code()` of the runtime.
//! - Maps ([`KernelMap`]): [`MapCreate`] takes the type number, sizes,
//!   flags, a name, `map_extra`, an inner map and BTF ids. Element commands
//!   take slices; an empty key (keyless maps: queue, stack, bloom filter) is
//!   passed as NULL, as libbpf does. Per-CPU maps read and write
//!   `round8(value_size) * possible CPUs` bytes ([`KernelMap::user_value_size`]).
//!   Buffer sizes are checked before the syscall (a wrong size panics: the
//!   kernel would read or write past the slice).
//! - Batch commands ([`KernelMap::lookup_batch`] and the three others) take a
//!   [`Batch`] with the in/out batch tokens; `count` is in and out.
//! - Pinning: [`obj_pin`] / [`obj_get`] on a bpffs path (`/sys/fs/bpf`),
//!   [`KernelMap::open_pinned`].
//! - BTF: [`btf_load`] loads raw BTF (build it with [`btf::BtfBuilder`]) and
//!   returns its fd for [`MapCreate::btf`] or [`ProgLoad::btf_fd`].
//! - Programs: [`ProgLoad`] (instructions, license, type, verifier log)
//!   gives a [`Prog`]; [`Prog::test_run`] runs it with `BPF_PROG_TEST_RUN`
//!   ([`TestRun`]: data and context in/out, repeat) and reports `retval`
//!   and `duration`.
//!
//! Every fd is an [`OwnedFd`], closed on drop; kernel objects go away with
//! their last fd unless pinned. Tests that pin must remove their pins.

pub mod asm;
pub mod btf;
pub mod perf;

use std::ffi::CString;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

/// `enum bpf_cmd` numbers used here.
mod cmd {
    pub const MAP_CREATE: u32 = 0;
    pub const MAP_LOOKUP_ELEM: u32 = 1;
    pub const MAP_UPDATE_ELEM: u32 = 2;
    pub const MAP_DELETE_ELEM: u32 = 3;
    pub const MAP_GET_NEXT_KEY: u32 = 4;
    pub const PROG_LOAD: u32 = 5;
    pub const OBJ_PIN: u32 = 6;
    pub const OBJ_GET: u32 = 7;
    pub const PROG_TEST_RUN: u32 = 10;
    pub const OBJ_GET_INFO_BY_FD: u32 = 15;
    pub const BTF_LOAD: u32 = 18;
    pub const MAP_LOOKUP_AND_DELETE_ELEM: u32 = 21;
    pub const MAP_FREEZE: u32 = 22;
    pub const MAP_LOOKUP_BATCH: u32 = 24;
    pub const MAP_LOOKUP_AND_DELETE_BATCH: u32 = 25;
    pub const MAP_UPDATE_BATCH: u32 = 26;
    pub const MAP_DELETE_BATCH: u32 = 27;
}

/// `BPF_OBJ_NAME_LEN`.
const OBJ_NAME_LEN: usize = 16;

/// A failed `bpf()` call: the errno it set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // ENOTSUPP (524) is the kernel's own; libc has no text for it.
        if self.0 == 524 {
            return write!(f, "operation not supported (errno 524, ENOTSUPP)");
        }
        let text = std::io::Error::from_raw_os_error(self.0).to_string();
        let text = text.split(" (os error").next().unwrap_or_default();
        write!(f, "{text} (errno {})", self.0)
    }
}

impl std::error::Error for Errno {}

impl From<Errno> for i32 {
    fn from(e: Errno) -> i32 {
        e.0
    }
}

pub type KResult<T> = Result<T, Errno>;

// ---- attribute structs: prefixes of `union bpf_attr`, no implicit padding ----

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; OBJ_NAME_LEN],
    map_ifindex: u32,
    btf_fd: u32,
    btf_key_type_id: u32,
    btf_value_type_id: u32,
    btf_vmlinux_value_type_id: u32,
    map_extra: u64,
    value_type_btf_obj_fd: i32,
    map_token_fd: i32,
}

#[repr(C)]
#[derive(Default)]
struct ElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; OBJ_NAME_LEN],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_prog_fd: u32,
    core_relo_cnt: u32,
    fd_array: u64,
    core_relos: u64,
    core_relo_rec_size: u32,
    log_true_size: u32,
    prog_token_fd: i32,
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct ObjAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
    path_fd: i32,
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

#[repr(C)]
#[derive(Default)]
struct BtfLoadAttr {
    btf: u64,
    btf_log_buf: u64,
    btf_size: u32,
    btf_log_size: u32,
    btf_log_level: u32,
    btf_log_true_size: u32,
    btf_flags: u32,
    btf_token_fd: i32,
}

/// `struct bpf_map_info`, as `BPF_OBJ_GET_INFO_BY_FD` fills it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct MapInfo {
    pub map_type: u32,
    pub id: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub map_flags: u32,
    pub name: [u8; OBJ_NAME_LEN],
    pub ifindex: u32,
    pub btf_vmlinux_value_type_id: u32,
    pub netns_dev: u64,
    pub netns_ino: u64,
    pub btf_id: u32,
    pub btf_key_type_id: u32,
    pub btf_value_type_id: u32,
    pub btf_vmlinux_id: u32,
    pub map_extra: u64,
}

impl MapInfo {
    pub fn name(&self) -> String {
        let end = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(OBJ_NAME_LEN);
        String::from_utf8_lossy(&self.name[..end]).into_owned()
    }
}

/// The address of a slice for an attribute field; NULL for an empty one.
fn addr(s: &[u8]) -> u64 {
    if s.is_empty() {
        0
    } else {
        s.as_ptr() as u64
    }
}

fn addr_mut(s: &mut [u8]) -> u64 {
    if s.is_empty() {
        0
    } else {
        s.as_mut_ptr() as u64
    }
}

/// Issue `bpf(cmd, attr, size_of(A))`.
///
/// # Safety
/// Every address inside `attr` must point to memory valid for the access the
/// command makes through it (reads of the stated input sizes, writes of the
/// sizes the kernel writes for the map or program).
unsafe fn sys_bpf<A>(cmd: u32, attr: &mut A) -> KResult<i64> {
    // SAFETY: `attr` is a live, initialised #[repr(C)] struct of the given
    // size; the caller vouches for the addresses inside it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_int,
            attr as *mut A as *mut libc::c_void,
            std::mem::size_of::<A>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(Errno(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL),
        ))
    } else {
        Ok(r as i64)
    }
}

fn owned(fd: i64) -> OwnedFd {
    // SAFETY: the kernel just returned this new descriptor to us.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

fn name_bytes(name: &str) -> [u8; OBJ_NAME_LEN] {
    let mut out = [0u8; OBJ_NAME_LEN];
    let n = name.len().min(OBJ_NAME_LEN - 1);
    out[..n].copy_from_slice(&name.as_bytes()[..n]);
    out
}

/// The number of possible CPUs, as per-CPU values count them: one more
/// than the highest CPU in `/sys/devices/system/cpu/possible` (a list of
/// ranges such as `0-3,8`).
pub fn possible_cpus() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        let list = std::fs::read_to_string("/sys/devices/system/cpu/possible").unwrap_or_default();
        list.trim()
            .split(',')
            .filter_map(|r| r.rsplit('-').next()?.parse::<usize>().ok())
            .max()
            .map_or(1, |last| last + 1)
    })
}

/// Whether tests must not skip (`BPFC_TEST_REQUIRE=all`, as in CI).
pub fn require_all() -> bool {
    std::env::var("BPFC_TEST_REQUIRE").is_ok_and(|v| v == "all")
}

/// Skip `test` because of `why`: writes `SKIP: test: why` to standard
/// error, or fails the test under `BPFC_TEST_REQUIRE=all`, where nothing may
/// skip.
///
/// The line goes to the process's standard error directly, not through
/// `println!`/`eprintln!`, whose output the test harness captures and shows
/// only for failed tests: written this way it appears among the results of
/// a plain `cargo test`, where a skipped test otherwise counts as passed.
pub fn skip(test: &str, why: &str) {
    assert!(
        !require_all(),
        "{test}: {why} (nothing may skip with BPFC_TEST_REQUIRE=all)"
    );
    use std::io::Write as _;
    // One write, so that lines of tests running in parallel do not mix; a
    // closed standard error is no reason to fail the test.
    let _ = std::io::stderr().write_all(format!("SKIP: {test}: {why}\n").as_bytes());
}

/// Whether the kernel oracle can be used: running as root and `bpf()`
/// creates a map. Otherwise prints a `SKIP:` line for `test` (or fails it
/// under `BPFC_TEST_REQUIRE=all`) and returns `false`.
pub fn available(test: &str) -> bool {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    let probe = PROBE.get_or_init(|| {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not running as root (the kernel oracle needs bpf())".into());
        }
        KernelMap::create(&MapCreate::new(2, 4, 4, 1))
            .map(drop)
            .map_err(|e| format!("bpf(BPF_MAP_CREATE) fails: {e}"))
    });
    match probe {
        Ok(()) => true,
        Err(why) => {
            skip(test, why);
            false
        }
    }
}

// ---- maps ----

/// What `BPF_MAP_CREATE` is given.
#[derive(Clone, Debug, Default)]
pub struct MapCreate<'a> {
    /// `enum bpf_map_type` number.
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    pub name: &'a str,
    pub map_extra: u64,
    pub numa_node: u32,
    /// The inner map template of a map-in-map.
    pub inner_map: Option<BorrowedFd<'a>>,
    /// BTF object and the key and value type ids in it.
    pub btf: Option<(BorrowedFd<'a>, u32, u32)>,
}

impl<'a> MapCreate<'a> {
    pub fn new(map_type: u32, key_size: u32, value_size: u32, max_entries: u32) -> Self {
        MapCreate {
            map_type,
            key_size,
            value_size,
            max_entries,
            ..MapCreate::default()
        }
    }

    pub fn flags(mut self, flags: u32) -> Self {
        self.flags = flags;
        self
    }

    pub fn name(mut self, name: &'a str) -> Self {
        self.name = name;
        self
    }

    pub fn map_extra(mut self, extra: u64) -> Self {
        self.map_extra = extra;
        self
    }

    pub fn inner_map(mut self, fd: BorrowedFd<'a>) -> Self {
        self.inner_map = Some(fd);
        self
    }

    pub fn btf(mut self, fd: BorrowedFd<'a>, key_type_id: u32, value_type_id: u32) -> Self {
        self.btf = Some((fd, key_type_id, value_type_id));
        self
    }
}

/// A kernel map, by fd, with the sizes it was created with.
#[derive(Debug)]
pub struct KernelMap {
    fd: OwnedFd,
    pub map_type: u32,
    pub key_size: usize,
    pub value_size: usize,
    pub max_entries: u32,
    pub flags: u32,
}

impl AsFd for KernelMap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Batch command arguments: the resume token going in (`None`: from the
/// start) and coming out, and the element count (in: room in the buffers;
/// out: elements done).
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub in_batch: Option<Vec<u8>>,
    pub out_batch: Vec<u8>,
    pub count: u32,
    pub elem_flags: u64,
    pub flags: u64,
}

/// Per-CPU map types: values are one 8-byte aligned slot per possible CPU.
fn percpu_type(t: u32) -> bool {
    // PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH, PERCPU_CGROUP_STORAGE
    matches!(t, 5 | 6 | 10 | 21)
}

impl KernelMap {
    /// `BPF_MAP_CREATE`.
    pub fn create(c: &MapCreate) -> KResult<KernelMap> {
        let mut a = MapCreateAttr {
            map_type: c.map_type,
            key_size: c.key_size,
            value_size: c.value_size,
            max_entries: c.max_entries,
            map_flags: c.flags,
            inner_map_fd: c.inner_map.map_or(0, |f| f.as_raw_fd() as u32),
            numa_node: c.numa_node,
            map_name: name_bytes(c.name),
            map_extra: c.map_extra,
            ..MapCreateAttr::default()
        };
        if let Some((fd, k, v)) = c.btf {
            a.btf_fd = fd.as_raw_fd() as u32;
            a.btf_key_type_id = k;
            a.btf_value_type_id = v;
        }
        // SAFETY: no addresses in the attribute.
        let fd = unsafe { sys_bpf(cmd::MAP_CREATE, &mut a) }?;
        Ok(KernelMap {
            fd: owned(fd),
            map_type: c.map_type,
            key_size: c.key_size as usize,
            value_size: c.value_size as usize,
            max_entries: c.max_entries,
            flags: c.flags,
        })
    }

    /// Open a map pinned on bpffs (`BPF_OBJ_GET`), sizes from its info.
    pub fn open_pinned(path: &Path) -> KResult<KernelMap> {
        let fd = obj_get(path, 0)?;
        let info = map_info(fd.as_fd())?;
        Ok(KernelMap {
            fd,
            map_type: info.map_type,
            key_size: info.key_size as usize,
            value_size: info.value_size as usize,
            max_entries: info.max_entries,
            flags: info.map_flags,
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The bytes of a value as user space reads and writes it.
    pub fn user_value_size(&self) -> usize {
        if percpu_type(self.map_type) {
            self.value_size.div_ceil(8) * 8 * possible_cpus()
        } else {
            self.value_size
        }
    }

    fn check_key(&self, key: &[u8]) {
        assert!(
            key.len() == self.key_size,
            "key of {} bytes for a map with {}-byte keys",
            key.len(),
            self.key_size
        );
    }

    fn check_value(&self, value: &[u8]) {
        assert!(
            value.len() == self.user_value_size(),
            "value of {} bytes for a map taking {}",
            value.len(),
            self.user_value_size()
        );
    }

    fn elem(&self, key: u64, value: u64, flags: u64) -> ElemAttr {
        ElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key,
            value,
            flags,
            ..ElemAttr::default()
        }
    }

    /// `BPF_MAP_LOOKUP_ELEM` (queue/stack: peek; bloom filter: test).
    pub fn lookup(&self, key: &[u8], value: &mut [u8], flags: u64) -> KResult<()> {
        self.check_key(key);
        self.check_value(value);
        let mut a = self.elem(addr(key), addr_mut(value), flags);
        // SAFETY: key and value buffers have the map's sizes (checked).
        unsafe { sys_bpf(cmd::MAP_LOOKUP_ELEM, &mut a) }.map(drop)
    }

    /// `BPF_MAP_UPDATE_ELEM` (queue/stack: push; bloom filter: add).
    pub fn update(&self, key: &[u8], value: &[u8], flags: u64) -> KResult<()> {
        self.check_key(key);
        self.check_value(value);
        let mut a = self.elem(addr(key), addr(value), flags);
        // SAFETY: as above; the kernel only reads both.
        unsafe { sys_bpf(cmd::MAP_UPDATE_ELEM, &mut a) }.map(drop)
    }

    /// `BPF_MAP_DELETE_ELEM`.
    pub fn delete(&self, key: &[u8]) -> KResult<()> {
        self.check_key(key);
        let mut a = self.elem(addr(key), 0, 0);
        // SAFETY: the key has the map's key size.
        unsafe { sys_bpf(cmd::MAP_DELETE_ELEM, &mut a) }.map(drop)
    }

    /// `BPF_MAP_GET_NEXT_KEY` (`None`: the first key).
    pub fn get_next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> KResult<()> {
        if let Some(k) = key {
            self.check_key(k);
        }
        self.check_key(next);
        let mut a = self.elem(key.map_or(0, addr), addr_mut(next), 0);
        // SAFETY: both buffers have the map's key size.
        unsafe { sys_bpf(cmd::MAP_GET_NEXT_KEY, &mut a) }.map(drop)
    }

    /// `BPF_MAP_LOOKUP_AND_DELETE_ELEM` (queue/stack: pop).
    pub fn lookup_and_delete(&self, key: &[u8], value: &mut [u8], flags: u64) -> KResult<()> {
        self.check_key(key);
        self.check_value(value);
        let mut a = self.elem(addr(key), addr_mut(value), flags);
        // SAFETY: key and value buffers have the map's sizes.
        unsafe { sys_bpf(cmd::MAP_LOOKUP_AND_DELETE_ELEM, &mut a) }.map(drop)
    }

    /// `BPF_MAP_FREEZE`.
    pub fn freeze(&self) -> KResult<()> {
        let mut a = self.elem(0, 0, 0);
        // SAFETY: no addresses.
        unsafe { sys_bpf(cmd::MAP_FREEZE, &mut a) }.map(drop)
    }

    /// The token size batch commands write: the kernel's hash maps use a
    /// u32 bucket number, the generic implementation a key.
    fn batch_token_size(&self) -> usize {
        self.key_size.max(4)
    }

    fn batch_cmd(
        &self,
        cmd: u32,
        b: &mut Batch,
        keys: u64,
        keys_len: usize,
        values: u64,
        values_len: usize,
    ) -> KResult<()> {
        let n = b.count as usize;
        assert!(
            keys_len >= n * self.key_size && values_len >= n * self.user_value_size(),
            "batch buffers too small for {n} elements"
        );
        let tok = self.batch_token_size();
        if let Some(i) = &b.in_batch {
            assert!(i.len() >= tok, "in_batch shorter than {tok} bytes");
        }
        b.out_batch.resize(tok.max(b.out_batch.len()), 0);
        let mut a = BatchAttr {
            in_batch: b.in_batch.as_deref().map_or(0, addr),
            out_batch: addr_mut(&mut b.out_batch),
            keys,
            values,
            count: b.count,
            map_fd: self.fd.as_raw_fd() as u32,
            elem_flags: b.elem_flags,
            flags: b.flags,
        };
        // SAFETY: keys and values have room for `count` elements (checked),
        // the tokens for the largest token the kernel uses.
        let r = unsafe { sys_bpf(cmd, &mut a) };
        b.count = a.count;
        r.map(drop)
    }

    /// `BPF_MAP_LOOKUP_BATCH`: up to `b.count` elements into `keys` and
    /// `values`; `b.count` becomes the number copied. `ENOENT` with a count
    /// means the walk is over.
    pub fn lookup_batch(&self, b: &mut Batch, keys: &mut [u8], values: &mut [u8]) -> KResult<()> {
        let (kl, vl) = (keys.len(), values.len());
        self.batch_cmd(
            cmd::MAP_LOOKUP_BATCH,
            b,
            addr_mut(keys),
            kl,
            addr_mut(values),
            vl,
        )
    }

    /// `BPF_MAP_LOOKUP_AND_DELETE_BATCH`.
    pub fn lookup_and_delete_batch(
        &self,
        b: &mut Batch,
        keys: &mut [u8],
        values: &mut [u8],
    ) -> KResult<()> {
        let (kl, vl) = (keys.len(), values.len());
        self.batch_cmd(
            cmd::MAP_LOOKUP_AND_DELETE_BATCH,
            b,
            addr_mut(keys),
            kl,
            addr_mut(values),
            vl,
        )
    }

    /// `BPF_MAP_UPDATE_BATCH`: `b.count` elements from `keys` and `values`;
    /// `b.count` becomes the number updated before an error.
    pub fn update_batch(&self, b: &mut Batch, keys: &[u8], values: &[u8]) -> KResult<()> {
        self.batch_cmd(
            cmd::MAP_UPDATE_BATCH,
            b,
            addr(keys),
            keys.len(),
            addr(values),
            values.len(),
        )
    }

    /// `BPF_MAP_DELETE_BATCH`.
    pub fn delete_batch(&self, b: &mut Batch, keys: &[u8]) -> KResult<()> {
        let n = b.count as usize;
        assert!(keys.len() >= n * self.key_size, "keys too small");
        let mut a = BatchAttr {
            keys: addr(keys),
            count: b.count,
            map_fd: self.fd.as_raw_fd() as u32,
            elem_flags: b.elem_flags,
            flags: b.flags,
            ..BatchAttr::default()
        };
        // SAFETY: `keys` holds `count` keys; no values or tokens are used.
        let r = unsafe { sys_bpf(cmd::MAP_DELETE_BATCH, &mut a) };
        b.count = a.count;
        r.map(drop)
    }

    /// The value under `key`, as user space reads it.
    pub fn get(&self, key: &[u8]) -> KResult<Vec<u8>> {
        let mut v = vec![0u8; self.user_value_size()];
        self.lookup(key, &mut v, 0)?;
        Ok(v)
    }

    /// The key after `key` (the first key for `None`).
    pub fn next_key(&self, key: Option<&[u8]>) -> KResult<Vec<u8>> {
        let mut next = vec![0u8; self.key_size];
        self.get_next_key(key, &mut next)?;
        Ok(next)
    }

    /// The map's id.
    pub fn id(&self) -> KResult<u32> {
        self.info().map(|i| i.id)
    }

    /// `BPF_OBJ_GET_INFO_BY_FD`.
    pub fn info(&self) -> KResult<MapInfo> {
        map_info(self.fd())
    }

    /// Pin on bpffs.
    pub fn pin(&self, path: &Path) -> KResult<()> {
        obj_pin(self.fd(), path)
    }

    /// Every key in `get_next_key` order.
    pub fn keys(&self) -> KResult<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut next = vec![0u8; self.key_size];
        let mut cur: Option<Vec<u8>> = None;
        loop {
            match self.get_next_key(cur.as_deref(), &mut next) {
                Ok(()) => {
                    out.push(next.clone());
                    cur = Some(next.clone());
                }
                Err(Errno(libc::ENOENT)) => return Ok(out),
                Err(e) => return Err(e),
            }
            if out.len() > self.max_entries as usize + 1 {
                return Ok(out);
            }
        }
    }
}

/// `struct bpf_map_info` of a map fd.
pub fn map_info(fd: BorrowedFd<'_>) -> KResult<MapInfo> {
    let mut info = MapInfo::default();
    let mut a = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<MapInfo>() as u32,
        info: &mut info as *mut MapInfo as u64,
    };
    // SAFETY: `info` is a writable MapInfo of the stated length.
    unsafe { sys_bpf(cmd::OBJ_GET_INFO_BY_FD, &mut a) }?;
    Ok(info)
}

fn path_cstr(path: &Path) -> KResult<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno(libc::EINVAL))
}

/// `BPF_OBJ_PIN`: pin a map, program or BTF fd at a bpffs path.
pub fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> KResult<()> {
    let p = path_cstr(path)?;
    let mut a = ObjAttr {
        pathname: p.as_ptr() as u64,
        bpf_fd: fd.as_raw_fd() as u32,
        ..ObjAttr::default()
    };
    // SAFETY: a NUL-terminated path that outlives the call.
    unsafe { sys_bpf(cmd::OBJ_PIN, &mut a) }.map(drop)
}

/// `BPF_OBJ_GET`: open a pinned object (`file_flags`: `BPF_F_RDONLY`/`WRONLY`).
pub fn obj_get(path: &Path, file_flags: u32) -> KResult<OwnedFd> {
    let p = path_cstr(path)?;
    let mut a = ObjAttr {
        pathname: p.as_ptr() as u64,
        file_flags,
        ..ObjAttr::default()
    };
    // SAFETY: a NUL-terminated path that outlives the call.
    unsafe { sys_bpf(cmd::OBJ_GET, &mut a) }.map(owned)
}

/// `BPF_BTF_LOAD`: load raw BTF; the error carries the kernel's BTF log.
pub fn btf_load(raw: &[u8]) -> Result<OwnedFd, (Errno, String)> {
    let mut log = vec![0u8; 64 * 1024];
    let mut a = BtfLoadAttr {
        btf: addr(raw),
        btf_size: raw.len() as u32,
        btf_log_buf: addr_mut(&mut log),
        btf_log_size: log.len() as u32,
        btf_log_level: 1,
        ..BtfLoadAttr::default()
    };
    // SAFETY: `raw` is readable for btf_size bytes, `log` writable for its length.
    match unsafe { sys_bpf(cmd::BTF_LOAD, &mut a) } {
        Ok(fd) => Ok(owned(fd)),
        Err(e) => Err((e, c_text(&log))),
    }
}

fn c_text(buf: &[u8]) -> String {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

// ---- programs ----

/// What `BPF_PROG_LOAD` is given.
#[derive(Clone, Debug)]
pub struct ProgLoad<'a> {
    /// `enum bpf_prog_type` number (1: socket filter, 6: XDP ...).
    pub prog_type: u32,
    /// Raw instructions, 8 bytes each, host byte order.
    pub insns: &'a [u8],
    pub license: &'a str,
    pub name: &'a str,
    /// Verifier log level (0: a log only on failure, at level 1).
    pub log_level: u32,
    /// Size of the verifier log buffer.
    pub log_size: usize,
    pub expected_attach_type: u32,
    pub prog_flags: u32,
    pub btf_fd: Option<BorrowedFd<'a>>,
    /// Map fds the instructions refer to by index (`BPF_PSEUDO_MAP_IDX`).
    pub fd_array: &'a [i32],
    /// `(instruction, BTF FUNC id)` of each function, with `btf_fd`
    /// (needed by programs with callbacks or global functions).
    pub func_info: &'a [(u32, u32)],
}

impl<'a> ProgLoad<'a> {
    pub fn new(prog_type: u32, insns: &'a [u8]) -> Self {
        ProgLoad {
            prog_type,
            insns,
            license: "GPL",
            name: "",
            log_level: 0,
            log_size: 1 << 20,
            expected_attach_type: 0,
            prog_flags: 0,
            btf_fd: None,
            fd_array: &[],
            func_info: &[],
        }
    }
}

/// A loaded program.
#[derive(Debug)]
pub struct Prog {
    fd: OwnedFd,
    /// The verifier log of the load (empty at log level 0).
    pub log: String,
}

/// A failed program load: the errno and the verifier's log.
#[derive(Clone, Debug)]
pub struct LoadError {
    pub errno: Errno,
    pub log: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BPF_PROG_LOAD: {}\n{}", self.errno, self.log)
    }
}

impl std::error::Error for LoadError {}

fn prog_load_once(p: &ProgLoad, level: u32, log: &mut [u8]) -> KResult<i64> {
    assert!(
        p.insns.len().is_multiple_of(8),
        "instructions are 8 bytes each"
    );
    let license = CString::new(p.license).map_err(|_| Errno(libc::EINVAL))?;
    let func_info: Vec<u32> = p.func_info.iter().flat_map(|&(i, id)| [i, id]).collect();
    let mut a = ProgLoadAttr {
        prog_type: p.prog_type,
        insn_cnt: (p.insns.len() / 8) as u32,
        insns: addr(p.insns),
        license: license.as_ptr() as u64,
        log_level: level,
        log_size: if level == 0 { 0 } else { log.len() as u32 },
        log_buf: if level == 0 { 0 } else { addr_mut(log) },
        prog_flags: p.prog_flags,
        prog_name: name_bytes(p.name),
        expected_attach_type: p.expected_attach_type,
        prog_btf_fd: p.btf_fd.map_or(0, |f| f.as_raw_fd() as u32),
        func_info_rec_size: if func_info.is_empty() { 0 } else { 8 },
        func_info: if func_info.is_empty() {
            0
        } else {
            func_info.as_ptr() as u64
        },
        func_info_cnt: p.func_info.len() as u32,
        fd_array: if p.fd_array.is_empty() {
            0
        } else {
            p.fd_array.as_ptr() as u64
        },
        ..ProgLoadAttr::default()
    };
    // SAFETY: the instructions, license, function records and fd array are
    // readable for the stated counts, the log writable for log_size bytes.
    unsafe { sys_bpf(cmd::PROG_LOAD, &mut a) }
}

impl Prog {
    /// `BPF_PROG_LOAD`. At log level 0 a failed load is retried at level 1
    /// to get the verifier's reason, as libbpf does.
    pub fn load(p: &ProgLoad) -> Result<Prog, LoadError> {
        let mut log = vec![0u8; p.log_size.max(1)];
        match prog_load_once(p, p.log_level, &mut log) {
            Ok(fd) => Ok(Prog {
                fd: owned(fd),
                log: c_text(&log),
            }),
            Err(errno) if p.log_level == 0 && p.log_size > 0 => {
                let again = prog_load_once(p, 1, &mut log);
                if let Ok(fd) = again {
                    // Loaded on the second try: keep it rather than leak it.
                    return Ok(Prog {
                        fd: owned(fd),
                        log: c_text(&log),
                    });
                }
                Err(LoadError {
                    errno,
                    log: c_text(&log),
                })
            }
            Err(errno) => Err(LoadError {
                errno,
                log: c_text(&log),
            }),
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// `BPF_PROG_TEST_RUN`.
    pub fn test_run(&self, t: &TestRun) -> KResult<TestRunResult> {
        let mut data_out = vec![0u8; t.data_out_size];
        let mut ctx_out = vec![0u8; t.ctx_out_size];
        let mut a = TestRunAttr {
            prog_fd: self.fd.as_raw_fd() as u32,
            data_size_in: t.data_in.len() as u32,
            data_size_out: data_out.len() as u32,
            data_in: addr(t.data_in),
            data_out: addr_mut(&mut data_out),
            repeat: t.repeat,
            ctx_size_in: t.ctx_in.len() as u32,
            ctx_size_out: ctx_out.len() as u32,
            ctx_in: addr(t.ctx_in),
            ctx_out: addr_mut(&mut ctx_out),
            flags: t.flags,
            cpu: t.cpu,
            batch_size: t.batch_size,
            ..TestRunAttr::default()
        };
        // SAFETY: inputs are readable and outputs writable for the sizes
        // stated; the kernel writes at most data_size_out/ctx_size_out bytes.
        unsafe { sys_bpf(cmd::PROG_TEST_RUN, &mut a) }?;
        data_out.truncate((a.data_size_out as usize).min(data_out.len()));
        ctx_out.truncate((a.ctx_size_out as usize).min(ctx_out.len()));
        Ok(TestRunResult {
            retval: a.retval,
            duration: a.duration,
            data_out,
            data_size_out: a.data_size_out,
            ctx_out,
        })
    }

    /// Pin on bpffs.
    pub fn pin(&self, path: &Path) -> KResult<()> {
        obj_pin(self.fd(), path)
    }
}

/// A raw-tracepoint program that returns `helper(map, arg)` (`map_first`)
/// or `helper(ctx, map, arg)`: how a test asks the kernel what one helper
/// answers on the calling thread ([`Prog::run_once`]).
pub fn helper_call(
    helper: i32,
    map: BorrowedFd<'_>,
    arg: i32,
    map_first: bool,
) -> Result<Prog, LoadError> {
    const RAW_TRACEPOINT: u32 = 17;
    let (map_reg, arg_reg) = if map_first { (1, 2) } else { (2, 3) };
    let mut a = asm::Asm::default();
    a.ld_map(map_reg, &map)
        .mov_imm(arg_reg, arg)
        .call(helper)
        .exit();
    Prog::load(&ProgLoad::new(RAW_TRACEPOINT, &asm::encode(&a.finish())))
}

impl Prog {
    /// One `BPF_PROG_TEST_RUN` without data or context (raw tracepoints,
    /// syscall programs); the 32-bit return value sign-extended, as a
    /// helper's `-errno` reads.
    pub fn run_once(&self) -> KResult<i64> {
        self.test_run(&TestRun::default())
            .map(|r| r.retval as i32 as i64)
    }
}

/// What `BPF_PROG_TEST_RUN` is given.
#[derive(Clone, Debug, Default)]
pub struct TestRun<'a> {
    pub data_in: &'a [u8],
    /// Room for the output data (0: none wanted).
    pub data_out_size: usize,
    pub ctx_in: &'a [u8],
    pub ctx_out_size: usize,
    /// Runs (0 and 1 both mean once); `duration` is the mean per run in ns.
    pub repeat: u32,
    pub flags: u32,
    pub cpu: u32,
    pub batch_size: u32,
}

/// What `BPF_PROG_TEST_RUN` reports.
#[derive(Clone, Debug)]
pub struct TestRunResult {
    pub retval: u32,
    /// Mean run time in ns.
    pub duration: u32,
    pub data_out: Vec<u8>,
    /// The output size the kernel reported (may exceed the room given).
    pub data_size_out: u32,
    pub ctx_out: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_layouts_match_the_uapi() {
        // Offsets of the last fields in `union bpf_attr` (include/uapi/linux/bpf.h).
        assert_eq!(std::mem::offset_of!(MapCreateAttr, map_extra), 64);
        assert_eq!(std::mem::offset_of!(MapCreateAttr, map_token_fd), 76);
        assert_eq!(std::mem::offset_of!(ElemAttr, flags), 24);
        assert_eq!(std::mem::offset_of!(BatchAttr, flags), 48);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, prog_name), 48);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, fd_array), 120);
        assert_eq!(std::mem::offset_of!(ProgLoadAttr, log_true_size), 140);
        assert_eq!(std::mem::offset_of!(TestRunAttr, ctx_out), 56);
        assert_eq!(std::mem::offset_of!(TestRunAttr, batch_size), 72);
        assert_eq!(std::mem::offset_of!(BtfLoadAttr, btf_token_fd), 36);
        assert_eq!(std::mem::offset_of!(MapInfo, map_extra), 80);
        assert_eq!(std::mem::size_of::<MapInfo>(), 88);
    }
}

/// A small deterministic generator (xorshift) for operation sequences that
/// a test replays on the kernel and on bpfc alike.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
