//! The C library (`runtime/include/bpfc.h`): objects, programs and maps
//! through opaque handles, in libbpf's manner. Every function returns 0 or
//! a negative errno (NULL for handles) and records a message that
//! `bpfc_strerror()` returns on the calling thread. A panic never crosses
//! into C: it becomes `-EFAULT` with its message.
//!
//! The JIT library (`compiler/capi`, `libbpfc_jit`) adds
//! `bpfc_object_open_file` and `bpfc_object_open_mem`, which make their
//! handles with [`open_with`] as `bpfc_object_open` does.
//!
//! Handles: a `bpfc_object` owns its `bpfc_program`s and `bpfc_map`s,
//! which stay valid until `bpfc_object_destroy`. Loading and destroying an
//! object must not race with other calls on it; runs and map operations
//! may come from any number of threads at once (a destroy waits for runs
//! in progress).
#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

mod buffers;
mod hooks;
mod maps;

use super::desc::ObjectNative;
use super::object::{HostError, HostObject};
use crate::maps::errno;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, OnceLock, RwLock};

thread_local! {
    static LAST: RefCell<(c_int, CString)> = RefCell::new((0, CString::default()));
}

/// Record `e` for this thread; returns `-errno`.
fn set_error(e: &HostError) -> c_int {
    let msg = CString::new(e.message.replace('\0', " ")).unwrap_or_default();
    LAST.with(|l| *l.borrow_mut() = (e.errno, msg));
    -e.errno
}

/// Run `f`, turning its error or panic into `-errno` (or `fail`).
fn guard<T>(fail: impl FnOnce(c_int) -> T, f: impl FnOnce() -> Result<T, HostError>) -> T {
    let e = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => return v,
        Ok(Err(e)) => e,
        Err(p) => {
            let what = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            HostError::new(errno::EFAULT, format!("internal error: {what}"))
        }
    };
    fail(set_error(&e))
}

fn status(f: impl FnOnce() -> Result<(), HostError>) -> c_int {
    guard(|e| e, || f().map(|()| 0))
}

fn inval(msg: impl Into<String>) -> HostError {
    HostError::new(errno::EINVAL, msg)
}

/// A C string argument.
unsafe fn c_str<'a>(p: *const c_char, what: &str) -> Result<&'a str, HostError> {
    if p.is_null() {
        return Err(inval(format!("{what} is NULL")));
    }
    // SAFETY: the caller passes a NUL-terminated string.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| inval(format!("{what} is not UTF-8")))
}

/// The message of the calling thread's last failed call ("" if none).
#[no_mangle]
pub extern "C" fn bpfc_strerror() -> *const c_char {
    LAST.with(|l| l.borrow().1.as_ptr())
}

/// The calling thread's last error as a negative errno (0 if none).
#[no_mangle]
pub extern "C" fn bpfc_errno() -> c_int {
    LAST.with(|l| -l.borrow().0)
}

/// `struct bpfc_object`.
pub struct bpfc_object {
    /// Shared with the links of its programs: a hook firing one keeps the
    /// object's tables alive until the run ends.
    obj: std::sync::Arc<RwLock<HostObject>>,
    progs: Vec<bpfc_program>,
    maps: Vec<maps::bpfc_map>,
    name: CString,
}

/// `struct bpfc_program`: one program of an object.
pub struct bpfc_program {
    obj: *const bpfc_object,
    index: usize,
    name: CString,
    section: CString,
}

// SAFETY: the handle only refers to its object, which is shared.
unsafe impl Send for bpfc_program {}
// SAFETY: as above.
unsafe impl Sync for bpfc_program {}

/// Objects alive, by handle address (a double destroy is refused).
fn live() -> std::sync::MutexGuard<'static, BTreeSet<usize>> {
    static L: OnceLock<Mutex<BTreeSet<usize>>> = OnceLock::new();
    L.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn object<'a>(p: *const bpfc_object) -> Result<&'a bpfc_object, HostError> {
    if p.is_null() || !live().contains(&(p as usize)) {
        return Err(HostError::new(errno::EBADF, "not a live bpfc object"));
    }
    // SAFETY: a live handle made by `bpfc_object_open`.
    Ok(unsafe { &*p })
}

fn read(o: &bpfc_object) -> std::sync::RwLockReadGuard<'_, HostObject> {
    o.obj.read().unwrap_or_else(|e| e.into_inner())
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}

/// Open the object `desc` describes (`&NAME__object`), without creating
/// anything yet. NULL on failure.
#[no_mangle]
pub unsafe extern "C" fn bpfc_object_open(desc: *const ObjectNative) -> *mut bpfc_object {
    open_with(|| {
        // SAFETY: the caller passes a linked descriptor or NULL.
        unsafe { HostObject::open(desc) }
    })
}

/// A handle for the object `open` gives (NULL, with its error recorded,
/// when it fails or panics): how every `bpfc_object_open*` makes one, also
/// the JIT library's (`libbpfc_jit`), whose objects are compiled in memory.
pub fn open_with(open: impl FnOnce() -> Result<HostObject, HostError>) -> *mut bpfc_object {
    guard(
        |_| std::ptr::null_mut(),
        || {
            let obj = open()?;
            let name = cstring(obj.name());
            let mut handle = Box::new(bpfc_object {
                progs: Vec::new(),
                maps: Vec::new(),
                name,
                obj: std::sync::Arc::new(RwLock::new(obj)),
            });
            let me: *const bpfc_object = &*handle;
            let (progs, maps) = {
                let o = read(&handle);
                let progs = o
                    .desc
                    .progs
                    .iter()
                    .enumerate()
                    .map(|(index, p)| bpfc_program {
                        obj: me,
                        index,
                        name: cstring(&p.name),
                        section: cstring(&p.section),
                    })
                    .collect();
                let maps = o
                    .desc
                    .maps
                    .iter()
                    .enumerate()
                    .map(|(index, m)| maps::bpfc_map::of_object(me, index, &m.name))
                    .collect();
                (progs, maps)
            };
            handle.progs = progs;
            handle.maps = maps;
            let p = Box::into_raw(handle);
            live().insert(p as usize);
            Ok(p)
        },
    )
}

/// A C string argument of a `bpfc_*` function, or an error naming `what`.
///
/// # Safety
/// `p` must be NULL or a NUL-terminated string.
pub unsafe fn c_str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str, HostError> {
    // SAFETY: the caller's promise.
    unsafe { c_str(p, what) }
}

/// Open the object called `name` from its symbol `NAME__object`, found
/// with `dlsym` (the executable must export it: link with `-rdynamic`, or
/// put the object in a shared library).
#[no_mangle]
pub unsafe extern "C" fn bpfc_object_open_linked(name: *const c_char) -> *mut bpfc_object {
    let sym = guard(
        |_| std::ptr::null(),
        || {
            // SAFETY: the caller passes a C string.
            let name = unsafe { c_str(name, "name") }?;
            let sym = cstring(&format!("{name}__object"));
            // SAFETY: dlsym with a valid C string.
            let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, sym.as_ptr()) };
            if p.is_null() {
                return Err(HostError::new(
                    errno::ENOENT,
                    format!("no linked object {name}: symbol {name}__object is not exported (link with -rdynamic)"),
                ));
            }
            Ok(p as *const ObjectNative)
        },
    );
    if sym.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: the symbol is the descriptor `bpfc compile` exported.
    unsafe { bpfc_object_open(sym) }
}

/// Where maps pinned by name live for this object (before load).
#[no_mangle]
pub unsafe extern "C" fn bpfc_object_set_pin_root(
    obj: *mut bpfc_object,
    dir: *const c_char,
) -> c_int {
    status(|| {
        let o = object(obj)?;
        // SAFETY: the caller passes a C string.
        let dir = unsafe { c_str(dir, "dir") }?;
        let mut w = o.obj.write().unwrap_or_else(|e| e.into_inner());
        if w.loaded() {
            return Err(HostError::new(errno::EBUSY, "the object is already loaded"));
        }
        w.opts.pin_root = Some(dir.into());
        Ok(())
    })
}

/// Create the object's maps and make its programs runnable.
#[no_mangle]
pub unsafe extern "C" fn bpfc_object_load(obj: *mut bpfc_object) -> c_int {
    status(|| {
        let o = object(obj)?;
        let mut w = o.obj.write().unwrap_or_else(|e| e.into_inner());
        w.load()
    })
}

/// Free the object, its maps (unless pinned or held elsewhere) and its
/// program and map handles. A handle that is not a live object (already
/// destroyed, or NULL) is refused with `-EBADF`.
#[no_mangle]
pub unsafe extern "C" fn bpfc_object_destroy(obj: *mut bpfc_object) -> c_int {
    status(|| {
        if obj.is_null() || !live().remove(&(obj as usize)) {
            return Err(HostError::new(
                errno::EBADF,
                "not a live bpfc object (destroyed twice?)",
            ));
        }
        // SAFETY: made by `Box::into_raw` in `bpfc_object_open`, removed
        // from the live set just now, so freed once. Waits for runs.
        let b = unsafe { Box::from_raw(obj) };
        let owner = read(&b).hook_owner();
        crate::host::hooks::detach_owner(owner);
        drop(b.obj.write().unwrap_or_else(|e| e.into_inner()));
        drop(b);
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn bpfc_object_name(obj: *const bpfc_object) -> *const c_char {
    guard(|_| std::ptr::null(), || Ok(object(obj)?.name.as_ptr()))
}

#[no_mangle]
pub unsafe extern "C" fn bpfc_object_program_count(obj: *const bpfc_object) -> c_int {
    guard(|e| e, || Ok(object(obj)?.progs.len() as c_int))
}

/// Program `i` in the object's order, NULL when out of range.
#[no_mangle]
pub unsafe extern "C" fn bpfc_object_program(
    obj: *const bpfc_object,
    i: usize,
) -> *const bpfc_program {
    guard(
        |_| std::ptr::null(),
        || {
            let o = object(obj)?;
            o.progs
                .get(i)
                .map(|p| p as *const bpfc_program)
                .ok_or_else(|| {
                    HostError::new(
                        errno::ENOENT,
                        format!("object has {} programs", o.progs.len()),
                    )
                })
        },
    )
}

/// The program called `name`. NULL (`-ENOENT`) when there is none.
#[no_mangle]
pub unsafe extern "C" fn bpfc_object_find_program(
    obj: *const bpfc_object,
    name: *const c_char,
) -> *const bpfc_program {
    guard(
        |_| std::ptr::null(),
        || {
            let o = object(obj)?;
            // SAFETY: the caller passes a C string.
            let name = unsafe { c_str(name, "name") }?;
            let r = read(o);
            let i = r.prog_index(name).ok_or_else(|| {
                let names: Vec<&str> = r.desc.progs.iter().map(|p| p.name.as_str()).collect();
                HostError::new(
                    errno::ENOENT,
                    format!(
                        "object {} has no program {name} (programs: {})",
                        r.name(),
                        names.join(", ")
                    ),
                )
            })?;
            Ok(&o.progs[i] as *const bpfc_program)
        },
    )
}

fn program<'a>(p: *const bpfc_program) -> Result<&'a bpfc_program, HostError> {
    // SAFETY: a handle from an object; valid until it is destroyed.
    unsafe { p.as_ref() }.ok_or_else(|| inval("program is NULL"))
}

#[no_mangle]
pub unsafe extern "C" fn bpfc_program_name(prog: *const bpfc_program) -> *const c_char {
    guard(|_| std::ptr::null(), || Ok(program(prog)?.name.as_ptr()))
}

#[no_mangle]
pub unsafe extern "C" fn bpfc_program_section(prog: *const bpfc_program) -> *const c_char {
    guard(|_| std::ptr::null(), || Ok(program(prog)?.section.as_ptr()))
}

/// `enum bpf_prog_type`.
#[no_mangle]
pub unsafe extern "C" fn bpfc_program_type(prog: *const bpfc_program) -> c_int {
    guard(
        |e| e,
        || {
            let p = program(prog)?;
            Ok(read(program_object(p)).desc.progs[p.index].prog_type as c_int)
        },
    )
}

fn program_object(p: &bpfc_program) -> &bpfc_object {
    // SAFETY: the program's object outlives its handles.
    unsafe { &*p.obj }
}

/// The loaded program behind `p`, to run on CPU slot `cpu`: `-EINVAL`
/// before `bpfc_object_load` or for a CPU slot out of range.
fn loaded<'r>(
    r: &'r HostObject,
    p: &bpfc_program,
    cpu: u32,
) -> Result<&'r super::object::AotProgram, HostError> {
    let run = r.progs.get(p.index).ok_or_else(|| {
        inval(format!(
            "object {} is not loaded (call bpfc_object_load first)",
            r.name()
        ))
    })?;
    let ncpus = crate::maps::possible_cpus();
    if cpu >= ncpus {
        return Err(inval(format!("CPU slot {cpu} of {ncpus}")));
    }
    Ok(run)
}

/// Run `prog` with r1 = `ctx` and r2 = `ctx_size` on CPU slot `cpu`;
/// `*retval` gets r0. A fault is `-EFAULT` with its message.
#[no_mangle]
pub unsafe extern "C" fn bpfc_prog_run_on_cpu(
    prog: *const bpfc_program,
    ctx: *mut std::ffi::c_void,
    ctx_size: usize,
    cpu: u32,
    retval: *mut u64,
) -> c_int {
    status(|| {
        let p = program(prog)?;
        if ctx.is_null() != (ctx_size == 0) {
            return Err(inval(format!(
                "context {} with size {ctx_size}",
                if ctx.is_null() { "NULL" } else { "given" }
            )));
        }
        // Held for the run: a destroy waits until it ends.
        let r = read(program_object(p));
        let run = loaded(&r, p, cpu)?;
        if run.ctx != super::desc::CTX_BYTES {
            return Err(inval(format!(
                "program {} runs on a packet: use bpfc_prog_test_run",
                run.name
            )));
        }
        run.check_ctx_size(ctx_size)?;
        let r0 = run
            .run(ctx as u64, ctx_size as u64, cpu)
            .map_err(|f| HostError::new(errno::EFAULT, f.message))?;
        // SAFETY: the caller passes a writable u64 or NULL.
        if let Some(out) = unsafe { retval.as_mut() } {
            *out = r0;
        }
        Ok(())
    })
}

/// [`bpfc_prog_run_on_cpu`] on CPU slot 0.
#[no_mangle]
pub unsafe extern "C" fn bpfc_prog_run(
    prog: *const bpfc_program,
    ctx: *mut std::ffi::c_void,
    ctx_size: usize,
    retval: *mut u64,
) -> c_int {
    // SAFETY: forwarded.
    unsafe { bpfc_prog_run_on_cpu(prog, ctx, ctx_size, 0, retval) }
}

/// `struct bpfc_test_run_opts`, as libbpf's `bpf_test_run_opts`.
#[repr(C)]
pub struct bpfc_test_run_opts {
    /// `sizeof(struct bpfc_test_run_opts)`.
    pub sz: usize,
    pub data_in: *const std::ffi::c_void,
    pub data_size_in: usize,
    /// Room for the packet after the run (NULL: not wanted);
    /// `data_size_out` is its size on entry, the packet's on return.
    pub data_out: *mut std::ffi::c_void,
    pub data_size_out: usize,
    pub ctx_in: *const std::ffi::c_void,
    pub ctx_size_in: usize,
    pub ctx_out: *mut std::ffi::c_void,
    pub ctx_size_out: usize,
    pub repeat: u32,
    pub cpu: u32,
    /// Out: the low 32 bits of r0, and nanoseconds per run.
    pub retval: u32,
    pub duration: u32,
}

/// Copy `src` out to a caller's buffer of `*size` bytes; `-ENOSPC` (the
/// kernel's) when it does not fit, with `*size` the size needed.
unsafe fn copy_out(
    src: &[u8],
    dst: *mut std::ffi::c_void,
    size: &mut usize,
) -> Result<(), HostError> {
    if dst.is_null() {
        *size = src.len();
        return Ok(());
    }
    let room = *size;
    *size = src.len();
    let n = src.len().min(room);
    // SAFETY: the caller gives `room` writable bytes at `dst`.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.cast::<u8>(), n) };
    if src.len() > room {
        return Err(HostError::new(
            errno::ENOSPC,
            format!("output of {} bytes, room for {room}", src.len()),
        ));
    }
    Ok(())
}

/// Run `prog` as the kernel's `BPF_PROG_TEST_RUN`: network programs (xdp,
/// tc, socket filters, cgroup_skb, lwt) on the packet `data_in` with their
/// native context made from `ctx_in`; other programs on a copy of
/// `ctx_in`. Outputs as libbpf's `bpf_prog_test_run_opts`.
#[no_mangle]
pub unsafe extern "C" fn bpfc_prog_test_run(
    prog: *const bpfc_program,
    opts: *mut bpfc_test_run_opts,
) -> c_int {
    status(|| {
        let p = program(prog)?;
        // SAFETY: the caller passes its options or NULL.
        let o = unsafe { opts.as_mut() }.ok_or_else(|| inval("opts is NULL"))?;
        if o.sz < std::mem::size_of::<bpfc_test_run_opts>() {
            return Err(inval(format!(
                "opts.sz {} is not sizeof(struct bpfc_test_run_opts)",
                o.sz
            )));
        }
        let bytes =
            |ptr: *const std::ffi::c_void, len: usize, what: &str| -> Result<&[u8], HostError> {
                match (ptr.is_null(), len) {
                    (_, 0) => Ok(&[]),
                    (true, _) => Err(inval(format!("{what} is NULL with size {len}"))),
                    // SAFETY: the caller gives `len` readable bytes.
                    (false, _) => Ok(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) }),
                }
            };
        let data_in = bytes(o.data_in, o.data_size_in, "data_in")?;
        let ctx_in = bytes(o.ctx_in, o.ctx_size_in, "ctx_in")?;
        let r = read(program_object(p));
        let run = loaded(&r, p, o.cpu)?;
        // As in the kernel, asking for ctx_out without a ctx_in runs with
        // a zeroed context; with neither, the run has none.
        let ctx_given = !ctx_in.is_empty() || !o.ctx_out.is_null();
        let mut out = run.test_run(&super::object::TestRun {
            data_in,
            ctx_in: ctx_given.then_some(ctx_in),
            repeat: o.repeat,
            cpu: o.cpu,
        })?;
        if !ctx_given {
            out.ctx_out.clear();
        }
        o.retval = out.retval;
        o.duration = out.duration.min(u64::from(u32::MAX)) as u32;
        // SAFETY: the caller's output buffers of the sizes it gave.
        unsafe {
            copy_out(&out.data_out, o.data_out, &mut o.data_size_out)?;
            copy_out(&out.ctx_out, o.ctx_out, &mut o.ctx_size_out)?;
        }
        Ok(())
    })
}

/// Runtime entry point of `ldabs`/`ldind` in compiled code.
#[no_mangle]
pub unsafe extern "C" fn bpfc_load_packet(
    st: *mut crate::abi::RunState,
    offset: u64,
    size: u64,
) -> u64 {
    // SAFETY: forwarded from generated code.
    unsafe { crate::net::ldabs::load_packet(st, offset, size) }
}

/// CPU slots of per-CPU maps: a per-CPU lookup fills this many values,
/// each rounded up to 8 bytes.
#[no_mangle]
pub extern "C" fn bpfc_num_possible_cpus() -> c_int {
    crate::maps::possible_cpus() as c_int
}

/// Runtime entry point of checked code (`docs/abi.md`).
#[no_mangle]
pub unsafe extern "C" fn bpfc_check_access(
    st: *mut crate::abi::RunState,
    addr: u64,
    size: u64,
    write: u32,
) -> u32 {
    // SAFETY: forwarded from generated code.
    unsafe { crate::regions::check_access(st, addr, size, write) }
}

/// Runtime entry point of tail calls (`docs/abi.md`).
#[no_mangle]
pub unsafe extern "C" fn bpfc_tail_call_target(
    st: *mut crate::abi::RunState,
    map: u64,
    index: u64,
) -> *const u8 {
    // SAFETY: forwarded from generated code.
    unsafe { crate::programs::tail_call_target(st, map, index) }
}
