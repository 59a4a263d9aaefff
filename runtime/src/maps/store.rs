//! The header at the start of every map's storage block, and the block's
//! life: created unnamed and initialised, then marked ready, then (when
//! pinned) given a name. A process opening a pinned map reads the header to
//! learn the definition and checks the layout version.

use super::error::{errno, MapError, MapResult};
use super::shm::Shm;
use super::types::MapType;
use super::MapSpec;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

/// `b"BPFCMAP\0"`: the first bytes of every pinned map file.
pub const MAGIC: [u8; 8] = *b"BPFCMAP\0";
/// Version of the storage layout; files of another version are refused.
pub const LAYOUT_VERSION: u32 = 1;
/// Bytes reserved for the header; a family's own layout starts here.
pub const HEADER_SIZE: usize = 256;
const NAME_LEN: usize = 64;
const NONE: u32 = u32::MAX;

/// The header (`#[repr(C)]`, little or big endian as the host: pinned maps
/// are shared between processes of one machine).
#[repr(C)]
struct Header {
    magic: [u8; 8],
    version: u32,
    /// 0 while the creator initialises the block, 1 once it is usable.
    ready: AtomicU32,
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    ncpus: u32,
    map_extra: u64,
    spin_lock_off: u32,
    timer_off: u32,
    /// Size of the whole block in bytes.
    total_len: u64,
    name: [u8; NAME_LEN],
    inner_type: u32,
    inner_key_size: u32,
    inner_value_size: u32,
    inner_max_entries: u32,
    inner_flags: u32,
    _pad: u32,
    /// Where the key/value BTF lies in the block (0: none), its length and
    /// the key and value type ids in it.
    btf_off: u64,
    btf_len: u32,
    btf_key_type_id: u32,
    btf_value_type_id: u32,
}

const _: () = assert!(std::mem::size_of::<Header>() <= HEADER_SIZE);

/// A map's storage block with its header.
#[derive(Debug)]
pub struct Store {
    shm: Shm,
}

/// For families that take all their memory at creation, as the kernel's
/// `vmalloc` does: refuse `bytes` larger than the machine's memory up front
/// (a sparse file would take it, then fail on use). Families that fill
/// their storage lazily (the LPM trie) do not call this.
pub fn check_fits_memory(spec: &MapSpec, bytes: usize) -> MapResult<()> {
    let ram = physical_memory();
    if bytes as u64 > ram {
        return Err(MapError::with_reason(
            errno::ENOMEM,
            format!(
                "map {}: {bytes} bytes is more than the machine's memory ({ram} bytes)",
                spec.name
            ),
        ));
    }
    Ok(())
}

/// Bytes of physical memory (`u64::MAX` when unknown).
fn physical_memory() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if pages > 0 && size > 0 {
        (pages as u64).saturating_mul(size as u64)
    } else {
        u64::MAX
    }
}

fn opt(v: Option<u32>) -> u32 {
    v.unwrap_or(NONE)
}

fn from_opt(v: u32) -> Option<u32> {
    (v != NONE).then_some(v)
}

impl Store {
    /// A new block with room for `body_len` bytes after the header, its
    /// header filled in from `spec` and not yet ready.
    pub fn create(
        spec: &MapSpec,
        ncpus: u32,
        body_len: usize,
        dir: Option<&Path>,
    ) -> MapResult<Store> {
        // The BTF, if any, goes after the family's body.
        let btf = spec.btf.as_ref().filter(|b| !b.raw.is_empty());
        let body_end = HEADER_SIZE.checked_add(body_len);
        let btf_off = body_end.map(|e| e.next_multiple_of(8));
        let total = btf_off
            .and_then(|o| o.checked_add(btf.map_or(0, |b| b.raw.len())))
            .filter(|&t| t <= isize::MAX as usize / 2)
            .ok_or_else(|| {
                MapError::with_reason(errno::ENOMEM, format!("map {}: too large", spec.name))
            })?;
        let shm = Shm::create(total, dir).map_err(|e| {
            MapError::with_reason(
                errno::ENOMEM,
                format!("map {}: cannot allocate {total} bytes: {e}", spec.name),
            )
        })?;
        let store = Store { shm };
        // SAFETY: the block is at least HEADER_SIZE bytes, page aligned, and
        // not yet visible to anyone else.
        let h = unsafe { &mut *(store.shm.base() as *mut Header) };
        h.magic = MAGIC;
        h.version = LAYOUT_VERSION;
        h.map_type = spec.map_type as u32;
        h.key_size = spec.key_size;
        h.value_size = spec.value_size;
        h.max_entries = spec.max_entries;
        h.map_flags = spec.flags;
        h.ncpus = ncpus;
        h.map_extra = spec.map_extra;
        h.spin_lock_off = opt(spec.spin_lock_off);
        h.timer_off = opt(spec.timer_off);
        h.total_len = store.shm.len() as u64;
        let n = spec.name.len().min(NAME_LEN - 1);
        h.name[..n].copy_from_slice(&spec.name.as_bytes()[..n]);
        if let (Some(b), Some(off)) = (btf, btf_off) {
            h.btf_off = off as u64;
            h.btf_len = b.raw.len() as u32;
            h.btf_key_type_id = b.key_type_id;
            h.btf_value_type_id = b.value_type_id;
            // SAFETY: `off + raw.len() <= total`, inside the fresh block that
            // nobody else sees yet.
            unsafe {
                std::ptr::copy_nonoverlapping(b.raw.as_ptr(), store.shm.at(off), b.raw.len())
            };
        }
        if let Some(inner) = &spec.inner {
            h.inner_type = inner.map_type as u32;
            h.inner_key_size = inner.key_size;
            h.inner_value_size = inner.value_size;
            h.inner_max_entries = inner.max_entries;
            h.inner_flags = inner.flags;
        }
        Ok(store)
    }

    /// Open a pinned map file: its block, definition and CPU slot count.
    pub fn open(path: &Path) -> MapResult<(Store, MapSpec, u32)> {
        let shown = path.display();
        let shm = Shm::open(path).map_err(|e| {
            let code = e.raw_os_error().unwrap_or(errno::EINVAL);
            MapError::with_reason(code, format!("cannot open pinned map {shown}: {e}"))
        })?;
        if shm.len() < HEADER_SIZE {
            return Err(MapError::invalid(format!(
                "{shown} is not a bpfc map (too short)"
            )));
        }
        let store = Store { shm };
        let h = store.header();
        if h.magic != MAGIC {
            return Err(MapError::invalid(format!("{shown} is not a bpfc map")));
        }
        if h.version != LAYOUT_VERSION {
            return Err(MapError::invalid(format!(
                "{shown} is a bpfc map of layout version {}, this bpfc reads version {LAYOUT_VERSION}",
                h.version
            )));
        }
        if h.ready.load(Ordering::Acquire) != 1 {
            return Err(MapError::with_reason(
                errno::EAGAIN,
                format!("{shown} is still being created"),
            ));
        }
        if h.total_len != store.shm.len() as u64 {
            return Err(MapError::invalid(format!(
                "{shown} is {} bytes, its header says {}",
                store.shm.len(),
                h.total_len
            )));
        }
        let map_type = MapType::from_raw(h.map_type).ok_or_else(|| {
            MapError::invalid(format!("{shown}: unknown map type {}", h.map_type))
        })?;
        let name_end = h.name.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
        let inner = MapType::from_raw(h.inner_type)
            .filter(|_| h.inner_type != 0)
            .map(|t| {
                Box::new(MapSpec {
                    name: String::new(),
                    map_type: t,
                    key_size: h.inner_key_size,
                    value_size: h.inner_value_size,
                    max_entries: h.inner_max_entries,
                    flags: h.inner_flags,
                    ..MapSpec::default()
                })
            });
        let btf = if h.btf_off != 0 {
            let (off, len) = (h.btf_off as usize, h.btf_len as usize);
            if off < HEADER_SIZE || off.checked_add(len).is_none_or(|e| e > store.shm.len()) {
                return Err(MapError::invalid(format!(
                    "{shown}: its BTF ({len} bytes at {off}) lies outside the file"
                )));
            }
            let mut raw = vec![0u8; len];
            // SAFETY: checked to lie inside the mapping; the creator wrote
            // it before marking the block ready and nobody changes it.
            unsafe { std::ptr::copy_nonoverlapping(store.shm.at(off), raw.as_mut_ptr(), len) };
            Some(super::MapBtf {
                raw,
                key_type_id: h.btf_key_type_id,
                value_type_id: h.btf_value_type_id,
            })
        } else {
            None
        };
        let spec = MapSpec {
            name: String::from_utf8_lossy(&h.name[..name_end]).into_owned(),
            map_type,
            key_size: h.key_size,
            value_size: h.value_size,
            max_entries: h.max_entries,
            flags: h.map_flags,
            map_extra: h.map_extra,
            inner,
            spin_lock_off: from_opt(h.spin_lock_off),
            timer_off: from_opt(h.timer_off),
            btf,
        };
        let ncpus = h.ncpus;
        Ok((store, spec, ncpus))
    }

    fn header(&self) -> &Header {
        // SAFETY: the block starts with a header (checked length); its
        // fields are plain integers and one atomic.
        unsafe { &*(self.shm.base() as *const Header) }
    }

    /// Mark the block initialised.
    pub fn mark_ready(&self) {
        self.header().ready.store(1, Ordering::Release);
    }

    /// The first byte after the header.
    pub fn body(&self) -> *mut u8 {
        self.shm.at(HEADER_SIZE)
    }

    /// Bytes available after the header (up to the BTF, if the map has it).
    pub fn body_len(&self) -> usize {
        match self.header().btf_off as usize {
            0 => self.shm.len() - HEADER_SIZE,
            off => off - HEADER_SIZE,
        }
    }

    pub fn shm(&self) -> &Shm {
        &self.shm
    }

    /// Back bytes `off..off + len` of the block with memory now, as the
    /// kernel allocates map memory up front: touching them later cannot
    /// fault for want of space in the file system. `ENOMEM` when there is
    /// no room.
    pub fn reserve(&self, off: usize, len: usize) -> MapResult<()> {
        let end = off.saturating_add(len).min(self.shm.len());
        if end <= off {
            return Ok(());
        }
        let fd = std::os::fd::AsRawFd::as_raw_fd(self.shm.file());
        // SAFETY: fallocate on a descriptor we own, inside the file's length
        // (mode 0 only allocates, it never changes the contents).
        let r = unsafe { libc::fallocate(fd, 0, off as libc::off_t, (end - off) as libc::off_t) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            // A file system without fallocate keeps the lazy behaviour.
            if e.raw_os_error() == Some(libc::EOPNOTSUPP) {
                return Ok(());
            }
            return Err(MapError::with_reason(
                errno::ENOMEM,
                format!("cannot back {} bytes of map memory: {e}", end - off),
            ));
        }
        Ok(())
    }
}
