//! Host applications: AOT objects that carry their own description
//! ([`desc`]), loading them into live maps and programs ([`object`]), hook
//! points programs attach to ([`hooks`]), and the C library over that
//! (`capi`, `runtime/include/bpfc.h`).

pub mod capi;
pub mod desc;
pub mod hooks;
pub mod object;
pub mod typed;
