//! Hook points in the C library, over the runtime's one registry
//! ([`crate::host::hooks`]): `bpfc_program_attach` attaches a program to
//! the hook named by its section, `bpfc_program_attach_hook` to any name,
//! `bpfc_hook_fire` runs them in attach order. Attaching, detaching and
//! firing may happen on any threads at once.

use super::{guard, inval, program, status, HostError};
use crate::host::hooks::{self, Link};
use std::ffi::{c_char, c_int, c_void};

/// `struct bpfc_link`: one attachment.
pub struct bpfc_link(#[allow(dead_code)] Link);

fn attach(prog: *const super::bpfc_program, hook: &str) -> Result<*mut bpfc_link, HostError> {
    let p = program(prog)?;
    // SAFETY: the program's object outlives its handles.
    let o = unsafe { &*p.obj };
    let r = super::read(o);
    if !r.loaded() {
        return Err(inval("load the object before attaching its programs"));
    }
    let link = hooks::attach_index(&r, p.index, hook)?;
    Ok(Box::into_raw(Box::new(bpfc_link(link))))
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

/// Detach and free a link (a run of its program in progress on another
/// thread completes first).
#[no_mangle]
pub unsafe extern "C" fn bpfc_link_destroy(link: *mut bpfc_link) -> c_int {
    status(|| {
        if link.is_null() {
            return Err(inval("link is NULL"));
        }
        // SAFETY: made by `Box::into_raw` in an attach. A link whose object
        // was destroyed is already detached.
        drop(unsafe { Box::from_raw(link) });
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
            if ctx.is_null() && ctx_size != 0 {
                return Err(inval(format!("context NULL with size {ctx_size}")));
            }
            let out: &mut [u64] = if retvals.is_null() {
                &mut []
            } else {
                // SAFETY: the caller gives room for `max` values.
                unsafe { std::slice::from_raw_parts_mut(retvals, max) }
            };
            // SAFETY: the caller lends `ctx_size` bytes at `ctx`.
            let n = unsafe { hooks::fire_raw(hook, ctx, ctx_size, cpu, out) }?;
            Ok(n.min(c_int::MAX as usize) as c_int)
        },
    )
}
