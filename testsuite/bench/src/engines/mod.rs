//! The engines the benchmark compares against native code. Each engine
//! compiles raw little-endian eBPF bytecode into something that runs on an
//! input buffer and returns r0 (r1 = buffer, r2 = its length).

#[allow(dead_code)] // used by the AOT column once bpfc's codegen is wired in
mod link;
#[cfg(feature = "rbpf")]
mod rbpf;

/// A program prepared by an engine, ready to run many times.
pub trait Compiled {
    fn run(&mut self, mem: &mut [u8]) -> Result<u64, String>;
}

pub trait Engine {
    /// Prepares `bytecode` for runs on inputs of `input_len` bytes.
    fn compile(&self, bytecode: &[u8], input_len: usize) -> Result<Box<dyn Compiled>, String>;
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
            name: "bpfc JIT",
            engine: Err("not available: bpfc_compiler::codegen::jit is not in this build".into()),
        },
        Column {
            name: "bpfc AOT",
            engine: Err("not available: bpfc_compiler::codegen::aot is not in this build".into()),
        },
        Column {
            name: "bpfc interp",
            engine: Err("not available: bpfc_compiler::interp is not in this build".into()),
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
