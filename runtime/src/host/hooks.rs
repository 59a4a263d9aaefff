//! Hook points, one registry for the C library (`bpfc_program_attach`,
//! `bpfc_hook_fire`) and Rust skeletons (`Skel::attach`, [`fire`]): a host
//! names a place in its code (`"uprobe/handle_request"`, `"xdp"`, any
//! string) and fires it with a context; the programs attached to it run
//! in attach order. Attaching, detaching and firing may happen on any
//! threads at once: a fire runs the programs attached when it started,
//! and a detach (a dropped [`Link`], or the object's end) waits for runs
//! of that attachment in progress, so none runs after it returns.

use super::object::{AotProgram, HostError, HostObject};
use super::typed::Plain;
use crate::maps::errno;
use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

/// What an attachment runs: r1 = `ctx`, r2 = `size`, on CPU slot `cpu`.
pub trait HookTarget: Send + Sync {
    /// Whether a run on `size` context bytes would be refused (checked for
    /// every program before a fire runs any).
    fn check(&self, size: usize) -> Result<(), HostError>;
    fn run(&self, ctx: *mut c_void, size: usize, cpu: u32) -> Result<u64, HostError>;
}

struct Attached {
    id: u64,
    /// The object the program belongs to ([`HostObject::hook_owner`]).
    owner: usize,
    target: Box<dyn HookTarget>,
    /// Held for reading by a run, for writing by the detach, which then
    /// marks the attachment gone.
    live: RwLock<bool>,
}

type List = Arc<Vec<Arc<Attached>>>;

/// Hook name -> the programs attached, in order (replaced, never mutated,
/// so a fire works on the list it took).
fn hooks() -> std::sync::MutexGuard<'static, BTreeMap<String, List>> {
    static H: OnceLock<Mutex<BTreeMap<String, List>>> = OnceLock::new();
    H.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

static NEXT: AtomicU64 = AtomicU64::new(1);

/// One attachment; dropping it detaches the program.
#[derive(Debug)]
pub struct Link {
    hook: String,
    id: u64,
}

impl Link {
    /// The hook the program is attached to.
    pub fn hook(&self) -> &str {
        &self.hook
    }

    /// Detach now (as dropping the link does).
    pub fn detach(self) {}
}

impl Drop for Link {
    fn drop(&mut self) {
        remove(&self.hook, |a| a.id == self.id);
    }
}

/// Attach `target`, a program of the object `owner`, to `hook`.
pub fn attach_target(hook: &str, owner: usize, target: Box<dyn HookTarget>) -> Link {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let a = Arc::new(Attached {
        id,
        owner,
        target,
        live: RwLock::new(true),
    });
    let mut h = hooks();
    let list = h.entry(hook.to_string()).or_default();
    let mut next: Vec<Arc<Attached>> = list.as_ref().clone();
    next.push(a);
    *list = Arc::new(next);
    Link {
        hook: hook.to_string(),
        id,
    }
}

/// Take the attachments `pred` picks off `hook` and wait for their runs.
fn remove(hook: &str, pred: impl Fn(&Attached) -> bool) {
    let gone: Vec<Arc<Attached>> = {
        let mut h = hooks();
        let Some(list) = h.get_mut(hook) else {
            return;
        };
        let (gone, keep): (Vec<_>, Vec<_>) = list.iter().cloned().partition(|a| pred(a));
        if keep.is_empty() {
            h.remove(hook);
        } else {
            *list = Arc::new(keep);
        }
        gone
    };
    for a in gone {
        *a.live.write().unwrap_or_else(|e| e.into_inner()) = false;
    }
}

/// Detach every program of the object `owner` (its end), waiting for
/// their runs in progress.
pub fn detach_owner(owner: usize) {
    let names: Vec<String> = hooks().keys().cloned().collect();
    for n in names {
        remove(&n, |a| a.owner == owner);
    }
}

/// A program of a loaded object. The object detaches it when it is
/// dropped (before its tables are emptied), so the program never runs
/// without them.
struct ProgramTarget(Arc<AotProgram>);

impl HookTarget for ProgramTarget {
    fn check(&self, size: usize) -> Result<(), HostError> {
        let p = &self.0;
        if p.ctx != super::desc::CTX_BYTES {
            return Err(HostError::new(
                errno::EINVAL,
                format!(
                    "program {} runs on a packet: run it with bpfc_prog_test_run, not at a hook",
                    p.name
                ),
            ));
        }
        p.check_ctx_size(size)
    }

    fn run(&self, ctx: *mut c_void, size: usize, cpu: u32) -> Result<u64, HostError> {
        self.check(size)?;
        let p = &self.0;
        p.run(ctx as u64, size as u64, cpu)
            .map_err(|f| HostError::new(errno::EFAULT, f.message))
    }
}

/// Attach program `name` of the loaded `obj` to `hook` (its section name
/// is the hook a C skeleton's `X__attach` uses).
pub fn attach(obj: &HostObject, name: &str, hook: &str) -> Result<Link, HostError> {
    let i = obj.prog_index(name).ok_or_else(|| {
        HostError::new(
            errno::ENOENT,
            format!("object {} has no program {name}", obj.desc.name),
        )
    })?;
    attach_index(obj, i, hook)
}

/// [`attach`] by the program's index in the object.
pub fn attach_index(obj: &HostObject, i: usize, hook: &str) -> Result<Link, HostError> {
    let p = obj.progs.get(i).ok_or_else(|| {
        HostError::new(
            errno::EINVAL,
            "load the object before attaching its programs",
        )
    })?;
    Ok(attach_target(
        hook,
        obj.hook_owner(),
        Box::new(ProgramTarget(p.clone())),
    ))
}

/// Run the programs attached to `hook`, in attach order, each on `ctx`
/// (r1) of `size` bytes (r2), on CPU slot `cpu`; up to `retvals.len()`
/// return values go to `retvals`. How many programs ran (0 when none is
/// attached), or the first failure (a context some program refuses: none
/// runs).
///
/// # Safety
/// `ctx` must be `size` bytes the programs may read and write (or NULL
/// with size 0).
pub unsafe fn fire_raw(
    hook: &str,
    ctx: *mut c_void,
    size: usize,
    cpu: u32,
    retvals: &mut [u64],
) -> Result<usize, HostError> {
    let list = hooks().get(hook).cloned().unwrap_or_default();
    let ncpus = crate::maps::possible_cpus();
    if cpu >= ncpus {
        return Err(HostError::new(
            errno::EINVAL,
            format!("CPU slot {cpu} of {ncpus}"),
        ));
    }
    // A context every program accepts, or none runs.
    for a in list.iter() {
        a.target.check(size)?;
    }
    let mut ran = 0;
    for a in list.iter() {
        let live = a.live.read().unwrap_or_else(|e| e.into_inner());
        if !*live {
            // Detached after this fire took the list.
            continue;
        }
        let r0 = a.target.run(ctx, size, cpu)?;
        if let Some(slot) = retvals.get_mut(ran) {
            *slot = r0;
        }
        ran += 1;
    }
    Ok(ran)
}

/// [`fire_raw`] on a typed context (a skeleton's struct).
pub fn fire<T: Plain>(
    hook: &str,
    ctx: &mut T,
    cpu: u32,
    retvals: &mut [u64],
) -> Result<usize, HostError> {
    // SAFETY: `ctx` is `size_of::<T>()` bytes of plain data the caller
    // lends for the runs.
    unsafe { fire_raw(hook, (ctx as *mut T).cast(), size_of::<T>(), cpu, retvals) }
}
