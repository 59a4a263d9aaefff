//! rbpf 0.4.1 (crates.io) as a comparison engine: its x86-64 JIT and, with
//! the `rbpf-cranelift` feature, its Cranelift JIT.
//!
//! rbpf's VMs set r1 to the memory area but not r2, so the bench prepends
//! one `mov64 r2, LEN` instruction to the program it hands to rbpf.
//!
//! rbpf asserts instead of returning errors in places (its x86 JIT writes
//! into a fixed one-page code buffer and panics when a program's code does
//! not fit), so compile and run calls are wrapped in `catch_unwind` and a
//! panic becomes that engine's "n/a" reason.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::{Compiled, Engine, Source};

pub struct RbpfJit {
    cranelift: bool,
}

impl RbpfJit {
    pub fn new(cranelift: bool) -> Result<RbpfJit, String> {
        if cranelift && !cfg!(feature = "rbpf-cranelift") {
            return Err("not built: run with --features rbpf-cranelift".into());
        }
        if !cranelift && !cfg!(target_arch = "x86_64") {
            return Err("rbpf's JIT only targets x86-64".into());
        }
        Ok(RbpfJit { cranelift })
    }
}

/// A compiled rbpf VM. `vm` borrows `_prog` for 'static: `vm` is declared
/// first so it is dropped before the program bytes it points into.
struct RbpfCompiled {
    vm: rbpf::EbpfVmRaw<'static>,
    cranelift: bool,
    _prog: Box<[u8]>,
}

impl Engine for RbpfJit {
    fn compile(&self, source: &Source) -> Result<Box<dyn Compiled>, String> {
        let bytecode = source.bytecode;
        let len =
            i32::try_from(source.input_len).map_err(|_| "input too large for rbpf prologue")?;
        let mut prog = Vec::with_capacity(bytecode.len() + 8);
        prog.extend([0xb7, 0x02, 0, 0]); // mov64 r2, imm
        prog.extend(len.to_le_bytes());
        prog.extend_from_slice(bytecode);
        let prog: Box<[u8]> = prog.into_boxed_slice();
        // SAFETY: the boxed bytes live on the heap at a fixed address until
        // `_prog` is dropped, which happens after `vm` (field order), and they
        // are never mutated; so the 'static borrow never dangles while used.
        let bytes: &'static [u8] = unsafe { std::slice::from_raw_parts(prog.as_ptr(), prog.len()) };
        let cranelift = self.cranelift;
        let vm = quiet_catch(|| {
            let mut vm = rbpf::EbpfVmRaw::new(Some(bytes)).map_err(|e| e.to_string())?;
            if cranelift {
                compile_cranelift(&mut vm)?;
            } else {
                vm.jit_compile().map_err(|e| e.to_string())?;
            }
            Ok(vm)
        })?;
        Ok(Box::new(RbpfCompiled {
            vm,
            cranelift: self.cranelift,
            _prog: prog,
        }))
    }

    fn is_jit(&self) -> bool {
        true
    }

    fn may_refuse(&self) -> bool {
        true
    }
}

#[cfg(feature = "rbpf-cranelift")]
fn compile_cranelift(vm: &mut rbpf::EbpfVmRaw<'static>) -> Result<(), String> {
    vm.cranelift_compile().map_err(|e| e.to_string())
}

#[cfg(not(feature = "rbpf-cranelift"))]
fn compile_cranelift(_vm: &mut rbpf::EbpfVmRaw<'static>) -> Result<(), String> {
    Err("rbpf built without its cranelift feature".into())
}

impl Compiled for RbpfCompiled {
    fn run(&mut self, mem: &mut [u8]) -> Result<u64, String> {
        // SAFETY: rbpf's API wants the memory borrowed for the VM's lifetime;
        // it only uses it during this call, and `mem` stays exclusively
        // borrowed for the whole call, so widening the lifetime is sound.
        let mem: &'static mut [u8] =
            unsafe { std::slice::from_raw_parts_mut(mem.as_mut_ptr(), mem.len()) };
        let vm = &self.vm;
        if self.cranelift {
            quiet_catch(|| run_cranelift(vm, mem))
        } else {
            // SAFETY: rbpf's x86 JIT does not check memory accesses; every
            // program is first run by the native build on the same input and
            // only touches its input buffer and stack, and the result is
            // checked against native.
            quiet_catch(|| unsafe { vm.execute_program_jit(mem) }.map_err(|e| e.to_string()))
        }
    }
}

#[cfg(feature = "rbpf-cranelift")]
fn run_cranelift(vm: &rbpf::EbpfVmRaw<'static>, mem: &'static mut [u8]) -> Result<u64, String> {
    vm.execute_program_cranelift(mem).map_err(|e| e.to_string())
}

#[cfg(not(feature = "rbpf-cranelift"))]
fn run_cranelift(_vm: &rbpf::EbpfVmRaw<'static>, _mem: &'static mut [u8]) -> Result<u64, String> {
    Err("rbpf built without its cranelift feature".into())
}

/// Runs `f`, turning a panic into an error with the panic message (the
/// default hook's report is silenced meanwhile).
fn quiet_catch<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = catch_unwind(AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    result.unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(format!("rbpf panicked: {msg}"))
    })
}
