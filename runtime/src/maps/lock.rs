//! Locks that live inside map storage and work between processes: a 32-bit
//! word holding the owning thread's id (0 when free). A waiter that has
//! waited long checks whether the owner still exists and takes the lock
//! over from a thread that died holding it, so a crashed process never
//! blocks the others for good (docs/maps.md says what it may leave behind).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a waiter waits on one owner before checking it is alive.
const LIVENESS_CHECK_AFTER: Duration = Duration::from_millis(50);

thread_local! {
    static TID: u32 = {
        // SAFETY: gettid has no preconditions.
        let t = unsafe { libc::gettid() };
        t as u32
    };
}

/// The calling thread's id, as stored in a held lock.
pub fn current_tid() -> u32 {
    TID.with(|t| *t)
}

/// Whether thread `tid` (of any process in this PID namespace) exists.
pub(crate) fn alive(tid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(tid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// A lock word in shared memory.
#[derive(Clone, Copy)]
pub struct SpinLock<'a> {
    word: &'a AtomicU32,
}

impl<'a> SpinLock<'a> {
    /// # Safety
    /// `word` must point to a 4-byte aligned word that stays mapped for `'a`
    /// and is only ever used as a lock word.
    pub unsafe fn from_ptr(word: *mut u32) -> SpinLock<'a> {
        // SAFETY: guaranteed by the caller; AtomicU32 has u32's layout.
        SpinLock {
            word: unsafe { AtomicU32::from_ptr(word) },
        }
    }

    pub fn new(word: &'a AtomicU32) -> SpinLock<'a> {
        SpinLock { word }
    }

    /// Take the lock, waiting as long as its owner lives.
    pub fn lock(self) -> LockGuard<'a> {
        let me = current_tid();
        let mut spins = 0u32;
        let mut watching: Option<(u32, Instant)> = None;
        loop {
            match self
                .word
                .compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return LockGuard { lock: self },
                Err(0) => continue,
                Err(owner) => {
                    spins += 1;
                    if spins < 128 {
                        std::hint::spin_loop();
                        continue;
                    }
                    std::thread::yield_now();
                    match watching {
                        Some((o, since)) if o == owner => {
                            if since.elapsed() >= LIVENESS_CHECK_AFTER {
                                if owner != me && !alive(owner) {
                                    // The owner died holding the lock: take it over.
                                    if self
                                        .word
                                        .compare_exchange(
                                            owner,
                                            me,
                                            Ordering::Acquire,
                                            Ordering::Relaxed,
                                        )
                                        .is_ok()
                                    {
                                        return LockGuard { lock: self };
                                    }
                                }
                                watching = Some((owner, Instant::now()));
                            }
                        }
                        _ => watching = Some((owner, Instant::now())),
                    }
                }
            }
        }
    }

    /// Take the lock if it is free.
    pub fn try_lock(self) -> Option<LockGuard<'a>> {
        self.word
            .compare_exchange(0, current_tid(), Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| LockGuard { lock: self })
    }

    /// The owning thread, 0 when free.
    pub fn owner(self) -> u32 {
        self.word.load(Ordering::Relaxed)
    }

    /// Release a lock taken without a guard (`bpf_spin_unlock`).
    pub fn unlock_raw(self) {
        self.word.store(0, Ordering::Release);
    }

    /// Take the lock and keep it without a guard (`bpf_spin_lock`).
    pub fn lock_raw(self) {
        std::mem::forget(self.lock());
    }
}

/// Holds a [`SpinLock`] until dropped.
pub struct LockGuard<'a> {
    lock: SpinLock<'a>,
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        self.lock.word.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn excludes_between_threads() {
        let word = Arc::new(AtomicU32::new(0));
        let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (w, c) = (word.clone(), counter.clone());
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        let _g = SpinLock::new(&w).lock();
                        // A non-atomic read-modify-write made safe by the lock.
                        let v = c.load(Ordering::Relaxed);
                        c.store(v + 1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(counter.load(Ordering::Relaxed), 40_000);
        assert_eq!(word.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn dead_owner_is_taken_over() {
        let word = AtomicU32::new(0);
        // A thread that exits holding the lock.
        let tid = std::thread::scope(|s| {
            s.spawn(|| {
                SpinLock::new(&word).lock_raw();
                current_tid()
            })
            .join()
            .unwrap()
        });
        assert_eq!(SpinLock::new(&word).owner(), tid);
        // Wait until the kernel has reaped the thread, then lock.
        let start = Instant::now();
        let g = SpinLock::new(&word).lock();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert_eq!(SpinLock::new(&word).owner(), current_tid());
        drop(g);
    }
}
