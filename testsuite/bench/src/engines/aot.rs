//! bpfc's AOT path as an engine: `compile_object` for the host triple, the
//! object linked into a shared library (see [`super::link`]) and its entry
//! called through the documented ABI (docs/abi.md). Compile time covers
//! code generation and the link.

use super::link::Linked;
use super::{Compiled, Engine, Source};
use bpfc_compiler::codegen::{aot::compile_object, parse_triple, Binding, CodegenOptions, Request};
use bpfc_compiler::isa::{decode_program, Endian};
use bpfc_runtime::abi::Fault;
use std::sync::atomic::{AtomicUsize, Ordering};

const SYMBOL: &str = "bpfc_bench_prog";

type EntryFn = unsafe extern "C" fn(u64, u64, *mut std::ffi::c_void, *mut Fault) -> u64;

pub struct BpfcAot;

struct Prepared {
    /// Keeps the code loaded while `entry` is used.
    _lib: Linked,
    entry: EntryFn,
}

impl Engine for BpfcAot {
    fn compile(&self, source: &Source) -> Result<Box<dyn Compiled>, String> {
        static SERIAL: AtomicUsize = AtomicUsize::new(0);
        let insns = decode_program(source.bytecode, Endian::Little).map_err(|e| e.to_string())?;
        let triple = parse_triple("x86_64-unknown-linux-gnu").map_err(|e| e.to_string())?;
        let object = compile_object(
            &Request {
                insns: &insns,
                endian: Endian::Little,
                binding: &Binding::object(&[]),
                opts: &CodegenOptions::default(),
                symbol: SYMBOL,
                facts: None,
            },
            &triple,
            None,
        )
        .map_err(|e| e.to_string())?;
        let lib = Linked::new(
            &object,
            &format!("aot{}", SERIAL.fetch_add(1, Ordering::Relaxed)),
        )?;
        let addr = lib.symbol(SYMBOL)?;
        // SAFETY: `SYMBOL` is the entry `compile_object` exported with the
        // signature docs/abi.md gives, which `EntryFn` spells out.
        let entry = unsafe { std::mem::transmute::<*const u8, EntryFn>(addr) };
        Ok(Box::new(Prepared { _lib: lib, entry }))
    }

    fn is_jit(&self) -> bool {
        false
    }

    fn may_refuse(&self) -> bool {
        false
    }
}

impl Compiled for Prepared {
    fn run(&mut self, mem: &mut [u8]) -> Result<u64, String> {
        let mut fault = Fault::default();
        // SAFETY: the bench programs touch only their stack and `mem` (their
        // results are checked against native code before timing).
        let r0 = unsafe {
            (self.entry)(
                mem.as_mut_ptr() as u64,
                mem.len() as u64,
                std::ptr::null_mut(),
                &mut fault,
            )
        };
        if fault.code != 0 {
            return Err(format!("fault {} at instruction {}", fault.code, fault.pc));
        }
        Ok(r0)
    }
}
