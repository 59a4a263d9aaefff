//! Wakeups between producers and consumers of the event maps (ring buffers,
//! perf buffers): a sequence word and a sleeper count, in shared memory for
//! the ring buffers so a consumer in another process is woken too.
//!
//! A sleeper reads the sequence, checks for work, and sleeps on the word
//! (futex) only while it still holds that value; a waker bumps the sequence
//! and makes the futex call only when someone sleeps. A wakeup between the
//! check and the sleep therefore changes the word and the sleep returns at
//! once: none is lost.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A wakeup channel over two words that stay mapped while in use.
#[derive(Clone, Copy)]
pub struct Notify<'a> {
    seq: &'a AtomicU32,
    sleepers: &'a AtomicU32,
}

/// How a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Woken {
    /// The sequence moved: someone called [`Notify::wake`].
    Notified,
    /// The time ran out first.
    TimedOut,
}

impl<'a> Notify<'a> {
    pub fn new(seq: &'a AtomicU32, sleepers: &'a AtomicU32) -> Notify<'a> {
        Notify { seq, sleepers }
    }

    /// The current sequence: read it before checking for work.
    pub fn seq(self) -> u32 {
        self.seq.load(Ordering::SeqCst)
    }

    /// How many are asleep in [`Notify::wait`] now.
    pub fn sleepers(self) -> u32 {
        self.sleepers.load(Ordering::SeqCst)
    }

    /// Wake every sleeper (of any process).
    pub fn wake(self) {
        self.seq.fetch_add(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) != 0 {
            futex_wake_all(self.seq);
        }
    }

    /// Sleep until the sequence differs from `seen` or `deadline` passes
    /// (`None`: no deadline).
    pub fn wait(self, seen: u32, deadline: Option<Instant>) -> Woken {
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let r = loop {
            if self.seq.load(Ordering::SeqCst) != seen {
                break Woken::Notified;
            }
            let left = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => break Woken::TimedOut,
                },
                None => None,
            };
            futex_wait(self.seq, seen, left);
        };
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        r
    }
}

/// `FUTEX_WAIT` on `word` while it holds `val`, at most `timeout`. Shared
/// (not `FUTEX_PRIVATE`): the word may be in a mapping of another process.
fn futex_wait(word: &AtomicU32, val: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` is a live, aligned 32-bit word; the timespec outlives
    // the call. EINTR, EAGAIN and ETIMEDOUT all send the caller back to
    // re-check the word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            val,
            tsp,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned 32-bit word.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// A deadline `timeout` from now (`None`: none).
pub fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_a_sleeper_and_times_out() {
        let (seq, sleepers) = (AtomicU32::new(0), AtomicU32::new(0));
        let n = Notify::new(&seq, &sleepers);
        let seen = n.seq();
        let t = Instant::now();
        assert_eq!(
            n.wait(seen, deadline(Some(Duration::from_millis(30)))),
            Woken::TimedOut
        );
        assert!(t.elapsed() >= Duration::from_millis(30));
        std::thread::scope(|s| {
            let seen = n.seq();
            let h = s.spawn(move || n.wait(seen, None));
            while sleepers.load(Ordering::SeqCst) == 0 {
                std::thread::yield_now();
            }
            n.wake();
            assert_eq!(h.join().unwrap(), Woken::Notified);
        });
        // A wakeup between reading the sequence and sleeping is not lost.
        let seen = n.seq();
        n.wake();
        assert_eq!(n.wait(seen, None), Woken::Notified);
    }
}
