//! Hook points: a host names a place in its code (`"uprobe/handle_request"`,
//! `"xdp"`, any string) and fires it with a context; programs attached to
//! it run in attach order. `bpfc_program_attach` attaches a program to the
//! hook named by its section. Attaching, detaching and firing may happen
//! on any threads at once: a fire runs the programs attached when it
//! started, and a detached program's object stays alive until runs that
//! started before the detach have ended.

use super::{guard, inval, program, status, HostError};
use crate::host::object::HostObject;
use crate::maps::errno;
use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, c_void};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

struct Attached {
    id: u64,
    obj: Arc<RwLock<HostObject>>,
    index: usize,
}

type Hooks = Mutex<BTreeMap<String, Arc<Vec<Arc<Attached>>>>>;

/// Hook name -> the programs attached, in order (replaced, never mutated,
/// so a fire works on the list it took).
fn hooks() -> std::sync::MutexGuard<'static, BTreeMap<String, Arc<Vec<Arc<Attached>>>>> {
    static H: OnceLock<Hooks> = OnceLock::new();
    H.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// `struct bpfc_link`: one attachment.
pub struct bpfc_link {
    hook: String,
    id: u64,
}

fn attach(prog: *const super::bpfc_program, hook: &str) -> Result<*mut bpfc_link, HostError> {
    let p = program(prog)?;
    // SAFETY: the program's object outlives its handles.
    let o = unsafe { &*p.obj };
    if !super::read(o).loaded() {
        return Err(inval("load the object before attaching its programs"));
    }
    let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let a = Arc::new(Attached {
        id,
        obj: o.obj.clone(),
        index: p.index,
    });
    let mut h = hooks();
    let list = h.entry(hook.to_string()).or_default();
    let mut next: Vec<Arc<Attached>> = list.as_ref().clone();
    next.push(a);
    *list = Arc::new(next);
    Ok(Box::into_raw(Box::new(bpfc_link {
        hook: hook.to_string(),
        id,
    })))
}

fn remove(hook: &str, pred: impl Fn(&Attached) -> bool) -> usize {
    let mut h = hooks();
    let Some(list) = h.get_mut(hook) else {
        return 0;
    };
    let next: Vec<Arc<Attached>> = list.iter().filter(|a| !pred(a)).cloned().collect();
    let removed = list.len() - next.len();
    if next.is_empty() {
        h.remove(hook);
    } else {
        *list = Arc::new(next);
    }
    removed
}

/// Detach every program of an object being destroyed.
pub(super) fn detach_object(obj: &Arc<RwLock<HostObject>>) {
    let names: Vec<String> = hooks().keys().cloned().collect();
    for n in names {
        remove(&n, |a| Arc::ptr_eq(&a.obj, obj));
    }
}

/// Attach `prog` to the hook its section names.
#[no_mangle]
pub unsafe extern "C" fn bpfc_program_attach(prog: *const super::bpfc_program) -> *mut bpfc_link {
    guard(
        |_| std::ptr::null_mut(),
        || {
            let p = program(prog)?;
            let hook = p.section.to_string_lossy().into_owned();
            attach(prog, &hook)
        },
    )
}

/// Attach `prog` to the hook `hook`.
#[no_mangle]
pub unsafe extern "C" fn bpfc_program_attach_hook(
    prog: *const super::bpfc_program,
    hook: *const c_char,
) -> *mut bpfc_link {
    guard(
        |_| std::ptr::null_mut(),
        || {
            // SAFETY: the caller passes a C string.
            let hook = unsafe { super::c_str(hook, "hook") }?;
            attach(prog, hook)
        },
    )
}

/// Detach and free a link (its program may still be running a fire that
/// began before: that run completes).
#[no_mangle]
pub unsafe extern "C" fn bpfc_link_destroy(link: *mut bpfc_link) -> c_int {
    status(|| {
        if link.is_null() {
            return Err(inval("link is NULL"));
        }
        // SAFETY: made by `Box::into_raw` in an attach.
        let l = unsafe { Box::from_raw(link) };
        // A link whose object was destroyed is already detached.
        remove(&l.hook, |a| a.id == l.id);
        Ok(())
    })
}

/// Run the programs attached to `hook`, in attach order, each on `ctx`
/// (r1) of `ctx_size` bytes (r2), on CPU slot `cpu`; up to `max` return
/// values go to `retvals` (may be NULL). Returns how many programs ran
/// (0 when none is attached) or the first failure's negative errno.
#[no_mangle]
pub unsafe extern "C" fn bpfc_hook_fire(
    hook: *const c_char,
    ctx: *mut c_void,
    ctx_size: usize,
    cpu: u32,
    retvals: *mut u64,
    max: usize,
) -> c_int {
    guard(
        |e| e,
        || {
            // SAFETY: the caller passes a C string.
            let hook = unsafe { super::c_str(hook, "hook") }?;
            let list = hooks().get(hook).cloned().unwrap_or_default();
            let ncpus = crate::maps::possible_cpus();
            if cpu >= ncpus {
                return Err(inval(format!("CPU slot {cpu} of {ncpus}")));
            }
            for (i, a) in list.iter().enumerate() {
                let o = a.obj.read().unwrap_or_else(|e| e.into_inner());
                let prog = o.progs.get(a.index).ok_or_else(|| {
                    HostError::new(errno::ENOENT, format!("object {} was unloaded", o.name()))
                })?;
                if prog.ctx != crate::host::desc::CTX_BYTES {
                    return Err(inval(format!(
                        "program {} runs on a packet: fire its hook with bpfc_prog_test_run",
                        prog.name
                    )));
                }
                prog.check_ctx_size(ctx_size)?;
                let r0 = prog
                    .run(ctx as u64, ctx_size as u64, cpu)
                    .map_err(|f| HostError::new(errno::EFAULT, f.message))?;
                if i < max && !retvals.is_null() {
                    // SAFETY: the caller gives room for `max` values.
                    unsafe { *retvals.add(i) = r0 };
                }
            }
            Ok(list.len().min(c_int::MAX as usize) as c_int)
        },
    )
}
