//! Map errors: the kernel's errno for every failing operation, so callers
//! (programs through helpers, the C API, `bpfc map`) see what the kernel's
//! `bpf()` would return, plus an explanation where the kernel has none to give.

use std::fmt;

/// errno values the map operations return (Linux numbering, as the kernel's
/// helpers and `bpf()` use them on every architecture bpfc targets).
pub mod errno {
    pub const EPERM: i32 = 1;
    pub const ENOENT: i32 = 2;
    pub const ESRCH: i32 = 3;
    pub const EINTR: i32 = 4;
    pub const EIO: i32 = 5;
    pub const E2BIG: i32 = 7;
    pub const EBADF: i32 = 9;
    pub const EAGAIN: i32 = 11;
    pub const ENOMEM: i32 = 12;
    pub const EACCES: i32 = 13;
    pub const EFAULT: i32 = 14;
    pub const EBUSY: i32 = 16;
    pub const EEXIST: i32 = 17;
    pub const ENODEV: i32 = 19;
    pub const EINVAL: i32 = 22;
    pub const ENOSPC: i32 = 28;
    pub const ERANGE: i32 = 34;
    pub const EDEADLK: i32 = 35;
    pub const ENAMETOOLONG: i32 = 36;
    pub const ENOTSUP: i32 = 95;
    pub const EOPNOTSUPP: i32 = 95;
    pub const ELOOP: i32 = 40;
    /// The kernel-internal `ENOTSUPP` (524) that map operations of some
    /// types return to user space.
    pub const ENOTSUPP: i32 = 524;
}

/// The text `strerror` gives for the errno values above (glibc's wording,
/// which bpftool prints after `Error: ... failed:`).
pub fn strerror(errno: i32) -> String {
    let s = match errno {
        errno::EPERM => "Operation not permitted",
        errno::ENOENT => "No such file or directory",
        errno::ESRCH => "No such process",
        errno::EINTR => "Interrupted system call",
        errno::EIO => "Input/output error",
        errno::E2BIG => "Argument list too long",
        errno::EBADF => "Bad file descriptor",
        errno::EAGAIN => "Resource temporarily unavailable",
        errno::ENOMEM => "Cannot allocate memory",
        errno::EACCES => "Permission denied",
        errno::EFAULT => "Bad address",
        errno::EBUSY => "Device or resource busy",
        errno::EEXIST => "File exists",
        errno::ENODEV => "No such device",
        errno::EINVAL => "Invalid argument",
        errno::ENOSPC => "No space left on device",
        errno::ERANGE => "Numerical result out of range",
        errno::EDEADLK => "Resource deadlock avoided",
        errno::ENAMETOOLONG => "File name too long",
        errno::ELOOP => "Too many levels of symbolic links",
        errno::EOPNOTSUPP => "Operation not supported",
        errno::ENOTSUPP => "Unknown error 524",
        _ => return format!("Unknown error {errno}"),
    };
    s.to_string()
}

/// A failed map operation: the errno the kernel returns for it, and for
/// definition and pinning errors a sentence saying what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapError {
    errno: i32,
    reason: Option<String>,
}

impl MapError {
    /// A plain errno result, as the kernel gives it.
    pub const fn errno(errno: i32) -> MapError {
        MapError {
            errno,
            reason: None,
        }
    }

    /// An errno with an explanation (definition and pinning errors).
    pub fn with_reason(errno: i32, reason: impl Into<String>) -> MapError {
        MapError {
            errno,
            reason: Some(reason.into()),
        }
    }

    /// An invalid definition (`EINVAL`) and why.
    pub fn invalid(reason: impl Into<String>) -> MapError {
        MapError::with_reason(errno::EINVAL, reason)
    }

    pub const NOENT: MapError = MapError::errno(errno::ENOENT);
    pub const EXIST: MapError = MapError::errno(errno::EEXIST);
    pub const INVAL: MapError = MapError::errno(errno::EINVAL);
    pub const TOO_BIG: MapError = MapError::errno(errno::E2BIG);
    pub const NOMEM: MapError = MapError::errno(errno::ENOMEM);
    pub const NOTSUPP: MapError = MapError::errno(errno::ENOTSUPP);
    pub const OPNOTSUPP: MapError = MapError::errno(errno::EOPNOTSUPP);
    pub const PERM: MapError = MapError::errno(errno::EPERM);
    pub const BUSY: MapError = MapError::errno(errno::EBUSY);

    /// The positive errno value.
    pub fn code(&self) -> i32 {
        self.errno
    }

    /// The explanation, if the error has one beyond its errno.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// The value a helper returns for this error: `-errno`.
    pub fn as_helper_ret(&self) -> u64 {
        (-(self.errno as i64)) as u64
    }
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            Some(r) => write!(f, "{r} ({})", strerror(self.errno)),
            None => f.write_str(&strerror(self.errno)),
        }
    }
}

impl std::error::Error for MapError {}

/// Result of a map operation.
pub type MapResult<T> = Result<T, MapError>;
