//! Host applications on the JIT: an ELF object opened at run time becomes
//! the same [`HostObject`] a linked AOT object does. [`describe`] makes
//! the one description both paths compile (`bpfc compile` writes it to an
//! object file); [`open_file`] and [`open_bytes`] compile it into memory
//! ([`JitObject`]) in the descriptor layout, and the runtime opens that
//! descriptor as it opens a linked one, so loading, map creation, hooks
//! and every run go through the runtime's host layer alone.
//!
//! ```no_run
//! # fn main() -> Result<(), bpfc_runtime::host::object::HostError> {
//! // AOT: let mut obj = unsafe { HostObject::open(&raw const counter__object) }?;
//! let mut obj = bpfc_compiler::host::open_file("counter.bpf.o")?;
//! obj.load()?;
//! # Ok(()) }
//! ```

mod describe;

pub use describe::{
    check_bindable, describe, map_desc, map_kind, object_name, raw_btf, source_at, symbol_for,
    BindableView, DescribeError, DescribeOptions, DescribedCode, Description,
};

use crate::bind::BindError;
use crate::codegen::jit::JitObject;
use crate::loader::{self, LoadOptions};
use bpfc_runtime::host::object::{HostError, HostObject};
use bpfc_runtime::maps::errno;
use std::path::Path;
use std::sync::Arc;

/// Open the object file `path` (`X.bpf.o`, named `X` as `bpfc compile`
/// names it): load it, verify and JIT-compile every program. Errors name
/// the file, and the program, instruction and source line where one is at
/// fault; a verifier rejection is `EACCES`, as the kernel's.
pub fn open_file(path: impl AsRef<Path>) -> Result<HostObject, HostError> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        HostError::new(
            e.raw_os_error().unwrap_or(errno::EIO),
            format!("{shown}: {e}"),
        )
    })?;
    open_as(&bytes, &object_name(path), &shown)
}

/// [`open_file`] for an object's bytes, named `name` (made a C
/// identifier); errors name the object.
pub fn open_bytes(bytes: &[u8], name: &str) -> Result<HostObject, HostError> {
    let name = symbol_for(name);
    open_as(bytes, &name, &format!("object {name}"))
}

fn open_as(bytes: &[u8], name: &str, shown: &str) -> Result<HostObject, HostError> {
    let fail = |code: i32, m: String| HostError::new(code, format!("{shown}: {m}"));
    let obj = loader::load(bytes, &LoadOptions::default())
        .map_err(|e| fail(errno::EINVAL, e.to_string()))?;
    let d = describe(&obj, bytes, &DescribeOptions::new(name)).map_err(|e| match e {
        DescribeError::Bind(b @ BindError::Rejected { .. }) => fail(errno::EACCES, b.to_string()),
        e => fail(errno::EINVAL, e.to_string()),
    })?;
    open_description(&d).map_err(|e| fail(e.errno, e.message))
}

/// JIT-compile a description and open it as a host object.
pub fn open_description(d: &Description) -> Result<HostObject, HostError> {
    let jit = JitObject::compile(&d.described())
        .map_err(|e| HostError::new(errno::EINVAL, e.to_string()))?;
    let native = jit.descriptor();
    // SAFETY: `native` is the descriptor `JitObject::compile` laid out for
    // this host; `jit` owns it and its code and goes with the object.
    unsafe { HostObject::open_owned(native, Arc::new(jit)) }
}
