//! Host applications through the C library: every helper fixture is
//! compiled with `bpfc compile` into a self-describing object, linked with
//! a C host (`testsuite/harness/host_run.c`) and `libbpfc_runtime.a`, and
//! run; its return value, context and map contents must equal `bpfc run`'s
//! (the JIT) on the same object and context. The same host linked with
//! `libbpfc_jit.a` opens the `.bpf.o` files at run time and must give what
//! the linked objects give, as must a Rust host's `HostObject` from either
//! path ([`fixtures`]). The C example, bad use of the API, skeletons of the
//! fixtures and several objects in one program: [`api`].

#[path = "../common/mod.rs"]
mod common;

mod api;
mod fixtures;
