//! Deferred release of objects that running programs may still reach: the
//! kernel's RCU grace period, in miniature (epoch-based reclamation).
//!
//! A program run is a read-side section: the engine holds a [`read_lock`]
//! guard for the whole run. A map that unlinks an object a program may hold
//! a pointer to (an inner map replaced in a map-in-map, a cgroup replaced in
//! a cgroup array) hands it to [`retire`], which drops it only once every
//! run that was in progress when it was unlinked has ended. Runs that start
//! later cannot reach the object, so they do not hold it back.
//!
//! How it works: a global epoch counter; each thread publishes the epoch it
//! saw when its outermost section began (0 outside sections). Retiring bumps
//! the epoch and tags the object with the old value `r`; the object is
//! dropped when no thread publishes an epoch `<= r`. Reclamation is tried
//! at every retirement and when a section ends while objects are pending.

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

static EPOCH: AtomicU64 = AtomicU64::new(1);
/// Objects waiting for their grace period (a hint for `read_unlock`).
static PENDING: AtomicUsize = AtomicUsize::new(0);

type Garbage = Vec<(u64, Box<dyn Send>)>;

fn readers() -> &'static Mutex<Vec<Arc<AtomicU64>>> {
    static R: OnceLock<Mutex<Vec<Arc<AtomicU64>>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(Vec::new()))
}

fn garbage() -> &'static Mutex<Garbage> {
    static G: OnceLock<Mutex<Garbage>> = OnceLock::new();
    G.get_or_init(|| Mutex::new(Vec::new()))
}

/// This thread's published epoch, registered with [`readers`] while the
/// thread lives.
struct Slot {
    epoch: Arc<AtomicU64>,
    depth: Cell<u32>,
}

impl Slot {
    fn new() -> Slot {
        let epoch = Arc::new(AtomicU64::new(0));
        readers()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(epoch.clone());
        Slot {
            epoch,
            depth: Cell::new(0),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.epoch.store(0, Ordering::SeqCst);
        let mut r = readers().lock().unwrap_or_else(|e| e.into_inner());
        r.retain(|s| !Arc::ptr_eq(s, &self.epoch));
    }
}

thread_local! {
    static SLOT: Slot = Slot::new();
}

/// A read-side section (one program run); see [`read_lock`].
#[must_use = "the section ends when the guard is dropped"]
pub struct ReadGuard {
    /// Sections belong to one thread.
    _not_send: PhantomData<*const ()>,
}

/// Begin a read-side section on this thread. Sections nest; objects that
/// were reachable when the outermost one began stay alive until it ends.
pub fn read_lock() -> ReadGuard {
    SLOT.with(|s| {
        let d = s.depth.get();
        if d == 0 {
            s.epoch
                .store(EPOCH.load(Ordering::SeqCst), Ordering::SeqCst);
            // Order the publication before every pointer the run loads.
            fence(Ordering::SeqCst);
        }
        s.depth.set(d + 1);
    });
    ReadGuard {
        _not_send: PhantomData,
    }
}

impl Drop for ReadGuard {
    fn drop(&mut self) {
        let outermost = SLOT
            .try_with(|s| {
                let d = s.depth.get().saturating_sub(1);
                s.depth.set(d);
                if d == 0 {
                    s.epoch.store(0, Ordering::SeqCst);
                }
                d == 0
            })
            .unwrap_or(false);
        if outermost && PENDING.load(Ordering::Relaxed) != 0 {
            collect();
        }
    }
}

/// Whether this thread is inside a read-side section.
pub fn in_read_section() -> bool {
    SLOT.try_with(|s| s.depth.get() > 0).unwrap_or(false)
}

/// Drop `obj` once every read-side section in progress now has ended. The
/// caller must already have made `obj` unreachable for new sections.
pub fn retire<T: Send + 'static>(obj: T) {
    // Order the caller's unlinking before the epoch bump and the scan.
    fence(Ordering::SeqCst);
    let r = EPOCH.fetch_add(1, Ordering::SeqCst);
    garbage()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((r, Box::new(obj)));
    PENDING.fetch_add(1, Ordering::Relaxed);
    collect();
}

/// The smallest epoch a thread in a section published (`u64::MAX` if none).
fn oldest_reader() -> u64 {
    fence(Ordering::SeqCst);
    readers()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|s| s.load(Ordering::SeqCst))
        .filter(|&e| e != 0)
        .min()
        .unwrap_or(u64::MAX)
}

/// Drop every retired object whose grace period has passed. Returns how
/// many are still waiting.
pub fn collect() -> usize {
    let ready: Garbage = {
        let mut g = garbage().lock().unwrap_or_else(|e| e.into_inner());
        // Scanned under the garbage lock: an object retired after the scan
        // must not be judged by it (its reader may have published since).
        let oldest = oldest_reader();
        let (ready, keep): (Garbage, Garbage) = g.drain(..).partition(|(r, _)| *r < oldest);
        *g = keep;
        PENDING.store(g.len(), Ordering::Relaxed);
        ready
    };
    // Dropped outside the lock: dropping a map may retire more objects.
    drop(ready);
    PENDING.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    struct Flag(Arc<AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn waits_for_sections_in_progress_only() {
        let dropped = Arc::new(AtomicBool::new(false));
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (end_tx, end_rx) = std::sync::mpsc::channel::<()>();
        let reader = std::thread::spawn(move || {
            let _g = read_lock();
            started_tx.send(()).unwrap();
            end_rx.recv().unwrap();
        });
        started_rx.recv().unwrap();
        retire(Flag(dropped.clone()));
        assert!(
            !dropped.load(Ordering::SeqCst),
            "dropped during a section that began before the retirement"
        );
        // A section that begins after the retirement does not hold it back.
        {
            let _late = read_lock();
            let _nested = read_lock();
            collect();
            assert!(!dropped.load(Ordering::SeqCst));
        }
        end_tx.send(()).unwrap();
        reader.join().unwrap();
        // Other tests' sections may hold it back for a while.
        for _ in 0..30_000 {
            if dropped.load(Ordering::SeqCst) {
                break;
            }
            collect();
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(dropped.load(Ordering::SeqCst), "never dropped");
    }

    #[test]
    fn drops_at_once_without_readers_on_this_object() {
        let dropped = Arc::new(AtomicBool::new(false));
        retire(Flag(dropped.clone()));
        // Other tests may hold sections; those end quickly.
        for _ in 0..30_000 {
            if dropped.load(Ordering::SeqCst) {
                break;
            }
            collect();
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(dropped.load(Ordering::SeqCst));
        assert!(!in_read_section());
    }
}
