//! Map storage: one zero-filled block of memory per map, mapped shared from a
//! file, so the same bytes serve a private map and a map pinned for other
//! processes. Everything inside a block is addressed by offset from its
//! start, never by pointer, since each process maps it at its own address.
//!
//! A map's file is created unnamed (`O_TMPFILE`) in the runtime's pin
//! directory, and pinning gives it a name with `linkat`, so a map can be
//! pinned at any time and another process never sees a half-built one. Where
//! the pin directory cannot hold unnamed files the block is a `memfd`, which
//! cannot be pinned later.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::NonNull;

/// A mapped block of map storage.
#[derive(Debug)]
pub struct Shm {
    ptr: NonNull<u8>,
    len: usize,
    /// The file behind the mapping (kept open so it can be pinned).
    file: File,
    /// The file is an `O_TMPFILE` that `linkat` can name.
    linkable: bool,
}

// SAFETY: the mapping is plain shared memory; every structure placed in it
// synchronises through atomics and the locks in `lock`.
unsafe impl Send for Shm {}
// SAFETY: as above; `Shm` hands out raw addresses only.
unsafe impl Sync for Shm {}

fn cstr(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// The host page size.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

/// `len` rounded up to whole pages.
pub fn page_round(len: usize) -> usize {
    let p = page_size();
    len.div_ceil(p) * p
}

impl Shm {
    /// A new zero-filled block of `len` bytes: an unnamed file in `dir`
    /// when that works (pinnable later), else a memfd.
    pub fn create(len: usize, dir: Option<&Path>) -> io::Result<Shm> {
        if let Some(dir) = dir {
            if let Ok(file) = open_tmpfile(dir) {
                return Shm::map_file(file, len, true, true);
            }
        }
        let name = CString::new("bpfc-map").expect("no NUL");
        // SAFETY: `name` is a valid C string; the result is checked.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor we own.
        let file = unsafe { File::from_raw_fd(fd) };
        Shm::map_file(file, len, true, false)
    }

    /// Map an existing pinned file whole.
    pub fn open(path: &Path) -> io::Result<Shm> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        let len = usize::try_from(file.metadata()?.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large"))?;
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "empty file, not a bpfc map",
            ));
        }
        Shm::map_file(file, len, false, false)
    }

    fn map_file(file: File, len: usize, set_len: bool, linkable: bool) -> io::Result<Shm> {
        let len = page_round(len.max(1));
        if set_len {
            file.set_len(len as u64)?;
        }
        // SAFETY: a fresh shared mapping of a file we hold open; the result
        // is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Shm {
            ptr: NonNull::new(p.cast()).expect("mmap does not return NULL on success"),
            len,
            file,
            linkable,
        })
    }

    /// Give the block a name in the file system, atomically: fails with
    /// `AlreadyExists` when `path` exists.
    pub fn link(&self, path: &Path) -> io::Result<()> {
        if !self.linkable {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the map's memory is not in a file system that can pin it (no O_TMPFILE in the pin directory)",
            ));
        }
        let src = cstr(Path::new(&format!(
            "/proc/self/fd/{}",
            self.file.as_raw_fd()
        )))?;
        let dst = cstr(path)?;
        // SAFETY: both arguments are valid C strings.
        let r = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                src.as_ptr(),
                libc::AT_FDCWD,
                dst.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn base(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The address `off` bytes into the block. `off` must lie inside it.
    pub fn at(&self, off: usize) -> *mut u8 {
        debug_assert!(off <= self.len);
        // SAFETY: callers pass offsets of their own layout, inside the block.
        unsafe { self.ptr.as_ptr().add(off) }
    }

    /// The file behind the block.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `map_file`; nothing
        // refers to it any more (the owning map is being dropped).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

fn open_tmpfile(dir: &Path) -> io::Result<File> {
    std::fs::create_dir_all(dir)?;
    let d = cstr(dir)?;
    // SAFETY: valid C string; the result is checked.
    let fd = unsafe {
        libc::open(
            d.as_ptr(),
            libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC,
            0o600,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { File::from_raw_fd(fd) })
}
