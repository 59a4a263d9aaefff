//! Time, randomness, identity of the current task (the host thread and its
//! process), and reading host memory without faulting ([`read_host`], for
//! `bpf_probe_read*` in `probe` and checks of callbacks).

use super::args;
use super::{context, neg, HelperFn};
use crate::maps::errno;

/// The helpers of this module by kernel name.
pub const HELPERS: &[(&str, HelperFn)] = &[
    ("ktime_get_ns", ktime_get_ns),
    ("ktime_get_boot_ns", ktime_get_boot_ns),
    ("ktime_get_coarse_ns", ktime_get_coarse_ns),
    ("ktime_get_tai_ns", ktime_get_tai_ns),
    ("jiffies64", jiffies64),
    ("get_prandom_u32", get_prandom_u32),
    ("get_smp_processor_id", get_smp_processor_id),
    ("get_numa_node_id", get_numa_node_id),
    ("get_current_pid_tgid", get_current_pid_tgid),
    ("get_current_uid_gid", get_current_uid_gid),
    ("get_current_comm", get_current_comm),
    ("get_current_cgroup_id", get_current_cgroup_id),
];

/// `CONFIG_HZ` as the `.kconfig` defaults give it (docs/design.md).
pub const HZ: u64 = 250;

pub(crate) fn clock(id: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-parameter.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

helper!(
    /// `u64 bpf_ktime_get_ns(void)`: CLOCK_MONOTONIC.
    ktime_get_ns() |st| { Ok(clock(libc::CLOCK_MONOTONIC)) }
);
helper!(
    /// `u64 bpf_ktime_get_boot_ns(void)`: CLOCK_BOOTTIME.
    ktime_get_boot_ns() |st| { Ok(clock(libc::CLOCK_BOOTTIME)) }
);
helper!(
    /// `u64 bpf_ktime_get_coarse_ns(void)`: CLOCK_MONOTONIC_COARSE.
    ktime_get_coarse_ns() |st| { Ok(clock(libc::CLOCK_MONOTONIC_COARSE)) }
);
helper!(
    /// `u64 bpf_ktime_get_tai_ns(void)`: CLOCK_TAI.
    ktime_get_tai_ns() |st| { Ok(clock(libc::CLOCK_TAI)) }
);
helper!(
    /// `u64 bpf_jiffies64(void)`: boot time in ticks of [`HZ`].
    jiffies64() |st| { Ok(clock(libc::CLOCK_BOOTTIME) / (1_000_000_000 / HZ)) }
);
helper!(
    /// `u32 bpf_get_prandom_u32(void)`: a per-run xorshift stream.
    get_prandom_u32() |st| {
        Ok({
            match context(st) {
                Some(ctx) => next_random(&mut ctx.prandom) as u64,
                None => next_random(&mut seed()) as u64,
            }
        })
    }
);
helper!(
    /// `u32 bpf_get_smp_processor_id(void)`: the run's CPU slot.
    get_smp_processor_id() |st| { Ok(st.cpu as u64) }
);
helper!(
    /// `long bpf_get_numa_node_id(void)`: node 0.
    get_numa_node_id() |st| { Ok(0) }
);
helper!(
    /// `u64 bpf_get_current_pid_tgid(void)`: the host process id (tgid)
    /// in the high half, the calling thread's id in the low half.
    get_current_pid_tgid() |st| {
        Ok({
            // SAFETY: getpid/gettid have no preconditions.
            let (tgid, tid) = unsafe { (libc::getpid() as u64, libc::gettid() as u64) };
            tgid << 32 | tid
        })
    }
);
helper!(
    /// `u64 bpf_get_current_uid_gid(void)`: gid high, uid low.
    get_current_uid_gid() |st| {
        Ok({
            // SAFETY: getuid/getgid have no preconditions.
            let (uid, gid) = unsafe { (libc::getuid() as u64, libc::getgid() as u64) };
            gid << 32 | uid
        })
    }
);
helper!(
    /// `u64 bpf_get_current_cgroup_id(void)`: the id (inode number) of the
    /// calling thread's cgroup v2 directory; 0 without a v2 hierarchy.
    get_current_cgroup_id() |st| { Ok(current_cgroup_id().unwrap_or(0)) }
);

/// The calling thread's cgroup v2 directory.
pub fn current_cgroup_path() -> Option<std::path::PathBuf> {
    let text = std::fs::read_to_string("/proc/thread-self/cgroup").ok()?;
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(std::path::Path::new("/sys/fs/cgroup").join(rel.trim_start_matches('/')))
}

fn current_cgroup_id() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    Some(std::fs::metadata(current_cgroup_path()?).ok()?.ino())
}

/// A fresh seed for a run's random stream.
pub fn seed() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom writes at most 8 bytes into `b`.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), 8, 0) };
    let s = if n == 8 {
        u64::from_ne_bytes(b)
    } else {
        0x2545_f491_4f6c_dd1d
    };
    s | 1
}

fn next_random(s: &mut u64) -> u32 {
    let mut x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
}

helper!(
    /// `long bpf_get_current_comm(char *buf, u32 size)`: the thread's name,
    /// NUL-terminated and truncated to `size`.
    get_current_comm(buf, size) |st| {
        // SAFETY: arguments of the program (verified, or checked here).
        let out = unsafe { args::bytes_mut(st, "buf", buf, size)? };
        if out.is_empty() {
            return Ok(neg(errno::EINVAL));
        }
        let mut name = [0u8; 16];
        // SAFETY: PR_GET_NAME writes at most 16 bytes.
        unsafe { libc::prctl(libc::PR_GET_NAME, name.as_mut_ptr()) };
        let len = name.iter().position(|&b| b == 0).unwrap_or(15);
        let n = len.min(out.len() - 1);
        out[..n].copy_from_slice(&name[..n]);
        out[n..].fill(0);
        Ok(0)
    }
);

/// Host memory that could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unreadable;

/// Copy `dst.len()` bytes of host memory at `src` into `dst` without ever
/// faulting: unmapped addresses give `Err`.
pub fn read_host(src: u64, dst: &mut [u8]) -> Result<(), Unreadable> {
    if dst.is_empty() {
        return Ok(());
    }
    let local = libc::iovec {
        iov_base: dst.as_mut_ptr().cast(),
        iov_len: dst.len(),
    };
    let remote = libc::iovec {
        iov_base: src as *mut libc::c_void,
        iov_len: dst.len(),
    };
    // SAFETY: process_vm_readv on our own process reads through the kernel,
    // which reports an unmapped source as an error instead of faulting.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n == dst.len() as isize {
        Ok(())
    } else {
        Err(Unreadable)
    }
}
