//! Host applications: AOT objects that carry their own description
//! ([`desc`]), loading them into live maps and programs ([`object`]), hook
//! points programs attach to ([`hooks`]), and the C library over that
//! (`capi`, `runtime/include/bpfc.h`). The compiler's JIT lays objects out
//! in memory in the same description (`bpfc_compiler::host::open_file`,
//! `libbpfc_jit`), and they load here alike.

pub mod capi;
pub mod desc;
pub mod hooks;
pub mod object;
pub mod typed;
