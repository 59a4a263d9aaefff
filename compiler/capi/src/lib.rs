//! The JIT's C functions (`runtime/include/bpfc.h`, "JIT"): open an ELF
//! object at run time, verify and JIT-compile its programs
//! ([`bpfc_compiler::host::open_file`]), and hand back the same
//! `struct bpfc_object` the AOT path's `bpfc_object_open` does, so every
//! other `bpfc_*` function (load, runs, maps, buffers, hooks, destroy)
//! is the runtime's own. This crate's static and shared libraries
//! (`libbpfc_jit.a`, `.so`) hold the whole runtime too.
#![allow(clippy::missing_safety_doc)]

use bpfc_runtime::host::capi::{bpfc_object, c_str_arg, open_with};
use bpfc_runtime::host::object::HostError;
use bpfc_runtime::maps::errno;
use std::ffi::{c_char, c_void};

// The runtime's C functions are this library's too: keep its object code
// (and so its `#[no_mangle]` symbols) linked in.
pub use bpfc_runtime::host::capi as runtime_capi;

/// Open the ELF object file `path` (`X.bpf.o`, named `X`): every program
/// verified and JIT-compiled; load it with `bpfc_object_load`. NULL on
/// failure (`bpfc_strerror()` names the file, and the program, instruction
/// and source line at fault; a verifier rejection is `-EACCES`).
#[no_mangle]
pub unsafe extern "C" fn bpfc_object_open_file(path: *const c_char) -> *mut bpfc_object {
    open_with(|| {
        // SAFETY: the caller passes a C string.
        let path = unsafe { c_str_arg(path, "path") }?;
        bpfc_compiler::host::open_file(path)
    })
}

/// `bpfc_object_open_file` for an object's `size` bytes at `buf`, named
/// `name` (the file name's stem, as `bpfc compile` names objects).
#[no_mangle]
pub unsafe extern "C" fn bpfc_object_open_mem(
    buf: *const c_void,
    size: usize,
    name: *const c_char,
) -> *mut bpfc_object {
    open_with(|| {
        // SAFETY: the caller passes a C string.
        let name = unsafe { c_str_arg(name, "name") }?;
        if buf.is_null() {
            return Err(HostError::new(errno::EINVAL, "buf is NULL"));
        }
        // SAFETY: the caller passes `size` readable bytes at `buf`.
        let bytes = unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), size) };
        bpfc_compiler::host::open_bytes(bytes, name)
    })
}
