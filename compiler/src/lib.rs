//! bpfc's compiler: the eBPF instruction set, text in and out, the reference
//! interpreter, the ELF loader and the Cranelift lowering to JIT code and
//! native objects.

pub mod analysis;
pub mod asm;
pub mod bind;
pub mod codegen;
pub mod disasm;
pub mod host;
pub mod interp;
pub mod isa;
pub mod loader;
pub mod progtype;
pub mod verifier;
