//! `BPF_MAP_TYPE_CGROUP_ARRAY`: slots holding cgroup v2 directories, which
//! programs test the calling host thread against
//! (`bpf_current_task_under_cgroup`).
//!
//! User space fills a slot with a file descriptor of a cgroup v2 directory
//! (as `bpf()` takes it) or, through [`CgroupArray::set_path`], with the
//! directory's path. A slot remembers the cgroup's identity (inode number,
//! which is the kernel's cgroup id), its level in the hierarchy and where
//! the hierarchy is mounted. A thread is under the slot's cgroup when the
//! thread's own cgroup (`/proc/thread-self/cgroup`, unified hierarchy) has,
//! at the slot's level, an ancestor with the slot's inode: the kernel's
//! `ancestors[level]` test, so a directory removed and made again (a
//! different cgroup) is answered as the kernel answers it.
//!
//! The map holds process-local references and cannot be pinned.

use super::error::{errno, MapError, MapResult};
use super::slots::{self, ArcSlots};
use super::{MapImpl, MapSpec};
use std::any::Any;
use std::cell::RefCell;
use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

/// `CGROUP2_SUPER_MAGIC`.
const CGROUP2_MAGIC: i64 = 0x6367_7270;

/// A cgroup v2 directory a slot refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupRef {
    /// The cgroup id: the directory's inode number on the cgroup file system.
    pub id: u64,
    /// The file system's device, to compare inodes of one hierarchy only.
    dev: u64,
    /// Path from the (namespace's) hierarchy root, `/` for the root.
    pub path: String,
    /// Components in `path`: the cgroup's level.
    pub level: usize,
    /// Where the hierarchy is mounted, and which of its directories the
    /// mount shows (`root` in mountinfo).
    mount_point: PathBuf,
    mount_root: String,
}

/// A cgroup2 mount: mount point and the hierarchy path it shows.
fn cgroup2_mounts() -> Vec<(PathBuf, String)> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in info.lines() {
        // id parent dev root mountpoint opts [optional...] - fstype source superopts
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        if post.split_whitespace().next() != Some("cgroup2") {
            continue;
        }
        let f: Vec<&str> = pre.split_whitespace().collect();
        if f.len() >= 5 {
            out.push((PathBuf::from(unescape(f[4])), unescape(f[3])));
        }
    }
    out
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|c| !c.is_empty())
}

/// `/a/b/c` cut to its first `level` components (`/` for 0).
fn truncate(path: &str, level: usize) -> Option<String> {
    let parts: Vec<&str> = components(path).take(level).collect();
    (parts.len() == level).then(|| format!("/{}", parts.join("/")))
}

fn os_err(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(errno::EINVAL)
}

impl CgroupRef {
    /// The cgroup v2 directory open as `fd`, with the kernel's errors:
    /// `EBADF` for a descriptor that is not open or not a cgroup v2
    /// directory, `ENOENT` for a removed cgroup.
    pub fn from_fd(fd: RawFd) -> MapResult<CgroupRef> {
        let bad = |why: &str| MapError::with_reason(errno::EBADF, format!("fd {fd}: {why}"));
        // SAFETY: an all-zero `stat` is a valid value to be overwritten.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat writes into `st` only.
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            return Err(bad("not an open file descriptor"));
        }
        // SAFETY: as for `stat`.
        let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: fstatfs writes into `sfs` only.
        if unsafe { libc::fstatfs(fd, &mut sfs) } != 0 {
            return Err(bad("not an open file descriptor"));
        }
        #[allow(clippy::unnecessary_cast)]
        let magic = sfs.f_type as i64;
        if magic != CGROUP2_MAGIC || st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(bad("not a cgroup v2 directory"));
        }
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}"))
            .map_err(|e| MapError::with_reason(os_err(&e), format!("fd {fd}: {e}")))?;
        let shown = link.to_string_lossy().into_owned();
        if shown.ends_with(" (deleted)") {
            return Err(MapError::with_reason(
                errno::ENOENT,
                format!("fd {fd}: the cgroup {shown} was removed"),
            ));
        }
        // The mount the directory is reached through: the longest mount
        // point that is a prefix of its path.
        let (mount_point, mount_root) = cgroup2_mounts()
            .into_iter()
            .filter(|(mp, _)| link.starts_with(mp))
            .max_by_key(|(mp, _)| mp.as_os_str().len())
            .ok_or_else(|| bad("no cgroup2 mount shows this directory"))?;
        let rel = link.strip_prefix(&mount_point).unwrap_or(Path::new(""));
        let mut path = mount_root.trim_end_matches('/').to_string();
        for c in rel.components() {
            path.push('/');
            path.push_str(&c.as_os_str().to_string_lossy());
        }
        if path.is_empty() {
            path.push('/');
        }
        Ok(CgroupRef {
            id: st.st_ino,
            dev: st.st_dev,
            level: components(&path).count(),
            path,
            mount_point,
            mount_root,
        })
    }

    /// The cgroup v2 directory at `path`.
    pub fn from_path(path: &Path) -> MapResult<CgroupRef> {
        let f = File::open(path).map_err(|e| {
            MapError::with_reason(os_err(&e), format!("cgroup {}: {e}", path.display()))
        })?;
        CgroupRef::from_fd(f.as_raw_fd()).map_err(|e| {
            MapError::with_reason(
                e.code(),
                format!("{}: {}", path.display(), e.reason().unwrap_or("")),
            )
        })
    }

    /// Whether the cgroup at hierarchy path `path` (as `/proc/*/cgroup`
    /// names it) is this cgroup or one of its descendants.
    pub fn contains(&self, path: &str) -> bool {
        let Some(anc) = truncate(path, self.level) else {
            return false;
        };
        let root = self.mount_root.trim_end_matches('/');
        let Some(rel) = anc.strip_prefix(root) else {
            return false;
        };
        if !rel.is_empty() && !rel.starts_with('/') {
            return false;
        }
        let dir = self.mount_point.join(rel.trim_start_matches('/'));
        match std::fs::metadata(&dir) {
            Ok(m) => m.ino() == self.id && m.dev() == self.dev,
            Err(_) => false,
        }
    }
}

/// The calling thread's cgroup in the unified hierarchy (`0::PATH`).
pub fn current_cgroup_path() -> Option<String> {
    thread_local! {
        static SELF_CGROUP: RefCell<Option<File>> = const { RefCell::new(None) };
    }
    SELF_CGROUP.with(|cell| {
        let mut f = cell.borrow_mut();
        if f.is_none() {
            *f = File::open("/proc/thread-self/cgroup")
                .or_else(|_| {
                    // SAFETY: gettid has no preconditions.
                    let tid = unsafe { libc::gettid() };
                    File::open(format!("/proc/self/task/{tid}/cgroup"))
                })
                .ok();
        }
        let file = f.as_ref()?;
        // Reading from offset 0 makes the kernel produce the file afresh.
        let mut buf = vec![0u8; 4096];
        let mut len = 0;
        loop {
            let n = file.read_at(&mut buf[len..], len as u64).ok()?;
            if n == 0 {
                break;
            }
            len += n;
            if len == buf.len() {
                buf.resize(buf.len() * 2, 0);
            }
        }
        let text = String::from_utf8_lossy(&buf[..len]);
        text.lines()
            .find_map(|l| l.strip_prefix("0::"))
            .map(str::to_string)
    })
}

pub struct CgroupArray {
    spec: MapSpec,
    slots: ArcSlots<CgroupRef>,
}

impl CgroupArray {
    pub fn create(spec: &MapSpec) -> MapResult<CgroupArray> {
        slots::check_fd_array(spec)?;
        Ok(CgroupArray {
            spec: spec.clone(),
            slots: slots::alloc_slots(spec)?,
        })
    }

    fn check_index(&self, index: u32) -> MapResult<()> {
        if index >= self.spec.max_entries {
            return Err(MapError::TOO_BIG);
        }
        Ok(())
    }

    /// Fill slot `index` with the cgroup v2 directory open as `fd`.
    pub fn set_fd(&self, index: u32, fd: RawFd) -> MapResult<()> {
        self.check_index(index)?;
        let c = CgroupRef::from_fd(fd)?;
        self.slots.replace(index, Some(std::sync::Arc::new(c)));
        Ok(())
    }

    /// Fill slot `index` with the cgroup v2 directory at `path`.
    pub fn set_path(&self, index: u32, path: &Path) -> MapResult<()> {
        self.check_index(index)?;
        let c = CgroupRef::from_path(path)?;
        self.slots.replace(index, Some(std::sync::Arc::new(c)));
        Ok(())
    }

    /// The cgroup in slot `index`.
    pub fn get(&self, index: u32) -> Option<std::sync::Arc<CgroupRef>> {
        self.slots.get(index)
    }

    /// `bpf_current_task_under_cgroup`: 1 if the calling host thread is in
    /// the cgroup of slot `index` or below it, 0 if not, `-E2BIG` for an
    /// index out of range, `-EAGAIN` for an empty slot.
    pub fn current_task_under_cgroup(&self, index: u32) -> i64 {
        self.under(index, current_cgroup_path)
    }

    /// The same test for the cgroup v2 directory at `path` (the check
    /// `bpf_skb_under_cgroup` makes for a socket's cgroup).
    pub fn path_under_cgroup(&self, index: u32, path: &Path) -> i64 {
        self.under(index, || CgroupRef::from_path(path).ok().map(|c| c.path))
    }

    fn under(&self, index: u32, cgroup_of: impl FnOnce() -> Option<String>) -> i64 {
        if index >= self.spec.max_entries {
            return -(errno::E2BIG as i64);
        }
        let Some(slot) = self.slots.get(index) else {
            return -(errno::EAGAIN as i64);
        };
        // A thread whose cgroup cannot be read is taken to be at the root.
        let path = cgroup_of().unwrap_or_else(|| "/".to_string());
        i64::from(slot.contains(&path))
    }
}

impl MapImpl for CgroupArray {
    fn lookup(&self, _key: Option<&[u8]>, _value: &mut [u8], _flags: u64) -> MapResult<()> {
        // The kernel has no way to name a cgroup back to user space here.
        Err(MapError::NOTSUPP)
    }

    fn update(&self, key: Option<&[u8]>, value: &[u8], flags: u64) -> MapResult<()> {
        if flags != 0 {
            return Err(MapError::INVAL);
        }
        let index = slots::index_of(key.unwrap_or(&[]));
        let fd = slots::index_of(value) as i32;
        self.set_fd(index, fd)
    }

    fn delete(&self, key: &[u8]) -> MapResult<()> {
        let index = slots::index_of(key);
        self.check_index(index)?;
        match self.slots.replace(index, None) {
            Some(true) => Ok(()),
            _ => Err(MapError::NOENT),
        }
    }

    fn get_next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> MapResult<()> {
        slots::array_next_key(self.spec.max_entries, key, next)
    }

    fn prog_update(&self, _key: &[u8], _value: &[u8], _flags: u64, _cpu: u32) -> MapResult<()> {
        // Programs reach a cgroup array through the cgroup helpers only.
        Err(MapError::OPNOTSUPP)
    }

    fn prog_delete(&self, _key: &[u8]) -> MapResult<()> {
        Err(MapError::OPNOTSUPP)
    }

    fn elements(&self) -> Option<usize> {
        Some(self.slots.count())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
#[path = "cgroup_tests.rs"]
mod tests;
