//! Perf events and shared mappings: how user space reads what the kernel's
//! ring buffers and perf event arrays deliver, for tests that compare those
//! records with bpfc's.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// A `PERF_COUNT_SW_BPF_OUTPUT` event on `cpu`, opened as libbpf's perf
/// buffer opens it (raw samples, a wakeup per sample); the errno otherwise.
pub fn bpf_output_event(cpu: i32) -> Result<OwnedFd, i32> {
    const ATTR_SIZE: usize = 136;
    let mut attr = [0u8; ATTR_SIZE];
    let mut put = |off: usize, v: &[u8]| attr[off..off + v.len()].copy_from_slice(v);
    put(0, &1u32.to_ne_bytes()); // type: PERF_TYPE_SOFTWARE
    put(4, &(ATTR_SIZE as u32).to_ne_bytes());
    put(8, &10u64.to_ne_bytes()); // config: PERF_COUNT_SW_BPF_OUTPUT
    put(16, &1u64.to_ne_bytes()); // sample_period
    put(24, &(1u64 << 10).to_ne_bytes()); // sample_type: PERF_SAMPLE_RAW
    put(48, &1u32.to_ne_bytes()); // wakeup_events
                                  // SAFETY: a complete perf_event_attr of the size it states; the result
                                  // is checked before it is used as a descriptor.
    let r = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_ptr(),
            -1i32,
            cpu,
            -1i32,
            8u64, // PERF_FLAG_FD_CLOEXEC
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    // SAFETY: a new descriptor the kernel just returned.
    Ok(unsafe { OwnedFd::from_raw_fd(r as i32) })
}

/// Run the calling thread on `cpu` only; whether that worked.
pub fn pin_to_cpu(cpu: usize) -> bool {
    // SAFETY: a zeroed cpu_set_t with one bit set, for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// A shared mapping of a kernel object (a ring buffer's pages, a perf
/// event's buffer), unmapped on drop. Accesses are checked against its
/// length and volatile: the kernel writes the memory too.
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    /// `mmap` of `len` bytes of `fd` from `offset`; the errno otherwise.
    pub fn new(
        fd: BorrowedFd<'_>,
        len: usize,
        offset: usize,
        writable: bool,
    ) -> Result<Mapping, i32> {
        let prot = libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 };
        // SAFETY: a new shared mapping chosen by the kernel; failure checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
        }
        Ok(Mapping { ptr: p.cast(), len })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn at(&self, off: usize, len: usize) -> *mut u8 {
        assert!(
            off.checked_add(len).is_some_and(|end| end <= self.len),
            "{len} bytes at {off} are outside the {}-byte mapping",
            self.len
        );
        // SAFETY: inside the mapping (checked above).
        unsafe { self.ptr.add(off) }
    }

    /// A copy of `len` bytes at `off`.
    pub fn bytes(&self, off: usize, len: usize) -> Vec<u8> {
        let p = self.at(off, len);
        // SAFETY: `len` readable bytes of the mapping.
        unsafe { std::slice::from_raw_parts(p, len) }.to_vec()
    }

    /// The aligned word at `off` (a ring buffer's positions).
    pub fn u64_at(&self, off: usize) -> u64 {
        let p = self.at(off, 8);
        // SAFETY: an aligned word inside the mapping.
        unsafe { std::ptr::read_volatile(p as *const u64) }
    }

    pub fn set_u64(&self, off: usize, v: u64) {
        let p = self.at(off, 8);
        // SAFETY: an aligned word inside the mapping, writable when mapped so
        // (the kernel refuses a write to a read-only mapping with a fault
        // the caller asked for).
        unsafe { std::ptr::write_volatile(p as *mut u64, v) }
    }

    pub fn set_u32(&self, off: usize, v: u32) {
        let p = self.at(off, 4);
        // SAFETY: as for set_u64.
        unsafe { std::ptr::write_volatile(p as *mut u32, v) }
    }

    /// Copy `bytes` to `off`.
    pub fn write(&self, off: usize, bytes: &[u8]) {
        let p = self.at(off, bytes.len());
        // SAFETY: as for set_u64, for `bytes.len()` bytes.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: our own mapping, unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}
