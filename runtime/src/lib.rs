//! bpfc's runtime: what compiled eBPF programs call at run time (helpers,
//! maps, the per-run execution context), in Rust and through a C ABI.
//!
//! The interpreter, JIT code and AOT objects all reach helpers the same way:
//! a helper is an `extern "C"` function taking r1..r5 and a pointer to the
//! [`ExecContext`] of the current run (see [`helpers::HelperFn`]), so each
//! helper is written once.

pub mod abi;
pub mod context;
#[macro_use]
pub mod helpers;
pub mod host;
pub mod maps;
pub mod net;
pub mod ports;
pub mod programs;
pub mod regions;

pub use context::{DetachedCallback, ExecContext, Invoker};
pub use helpers::{Helper, HelperFn, HelperTable};
pub use regions::Regions;
