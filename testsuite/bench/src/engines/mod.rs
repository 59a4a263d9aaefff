//! The engines the benchmark compares against native code. Each engine
//! compiles raw little-endian eBPF bytecode into something that runs on an
//! input buffer and returns r0 (r1 = buffer, r2 = its length).

mod aot;
mod jit;
mod link;
#[cfg(feature = "rbpf")]
mod rbpf;

use crate::programs::NativeFn;
use bpfc_compiler::codegen::OptLevel;

mod interp;
mod native;

/// What an engine is given to prepare.
#[cfg_attr(not(feature = "rbpf"), allow(dead_code))]
pub struct Source<'a> {
    /// Raw little-endian eBPF bytecode.
    pub bytecode: &'a [u8],
    /// Length of the input buffer the program will run on.
    pub input_len: usize,
    /// The program's C source compiled natively by clang-19, if any.
    pub clang_native: Option<NativeFn>,
}

/// A program prepared by an engine, ready to run many times.
pub trait Compiled {
    fn run(&mut self, mem: &mut [u8]) -> Result<u64, String>;
}

pub trait Engine {
    /// Prepares a program for runs on inputs of `source.input_len` bytes.
    fn compile(&self, source: &Source) -> Result<Box<dyn Compiled>, String>;
    /// True if compiling is the engine's JIT compile step (timed separately).
    fn is_jit(&self) -> bool;
    /// True for comparison engines (rbpf): when one refuses a program or
    /// returns a wrong r0, its cell reads "n/a" with the reason. For bpfc's
    /// own engines any error or wrong result aborts the bench.
    fn may_refuse(&self) -> bool;
}

/// One column of the table: an engine, or why it is not in this build.
pub struct Column {
    pub name: &'static str,
    pub engine: Result<Box<dyn Engine>, String>,
}

pub fn columns() -> Vec<Column> {
    vec![
        Column {
            name: "native clang-19",
            engine: native::ClangNative::new().map(|e| Box::new(e) as Box<dyn Engine>),
        },
        Column {
            name: "bpfc JIT",
            engine: Ok(Box::new(jit::BpfcJit::new(OptLevel::Speed))),
        },
        Column {
            name: "bpfc JIT (opt none)",
            engine: Ok(Box::new(jit::BpfcJit::new(OptLevel::None))),
        },
        Column {
            name: "bpfc AOT",
            engine: Ok(Box::new(aot::BpfcAot)),
        },
        Column {
            name: "bpfc interp",
            engine: Ok(Box::new(interp::BpfcInterp)),
        },
        Column {
            name: "rbpf x86 JIT",
            engine: rbpf_engine(false),
        },
        Column {
            name: "rbpf Cranelift JIT",
            engine: rbpf_engine(true),
        },
    ]
}

#[cfg(feature = "rbpf")]
fn rbpf_engine(cranelift: bool) -> Result<Box<dyn Engine>, String> {
    rbpf::RbpfJit::new(cranelift).map(|e| Box::new(e) as Box<dyn Engine>)
}

#[cfg(not(feature = "rbpf"))]
fn rbpf_engine(_cranelift: bool) -> Result<Box<dyn Engine>, String> {
    Err("not built: run with --features rbpf (or rbpf-cranelift)".into())
}
