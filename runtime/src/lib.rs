//! bpfc's runtime: what compiled eBPF programs call at run time (helpers,
//! maps, the per-run execution context), in Rust and through a C ABI.
