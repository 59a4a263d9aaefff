//! The same C source compiled natively by clang-19 -O2 (when build.rs found
//! clang-19): a second native reference next to the `cc -O2` baseline, with
//! the same optimizer as the eBPF side, so the gap between the two native
//! columns shows what the C compiler alone changes.

use super::{Compiled, Engine, Source};
use crate::programs::NativeFn;

pub struct ClangNative;

impl ClangNative {
    pub fn new() -> Result<ClangNative, String> {
        if cfg!(bench_clang_native) {
            Ok(ClangNative)
        } else {
            Err("not built: clang-19 was not found when building bpfc-bench".into())
        }
    }
}

struct Prepared(NativeFn);

impl Engine for ClangNative {
    fn compile(&self, source: &Source) -> Result<Box<dyn Compiled>, String> {
        let f = source
            .clang_native
            .ok_or("no clang-19 build of this program")?;
        Ok(Box::new(Prepared(f)))
    }

    fn is_jit(&self) -> bool {
        false
    }

    fn may_refuse(&self) -> bool {
        true
    }
}

impl Compiled for Prepared {
    fn run(&mut self, mem: &mut [u8]) -> Result<u64, String> {
        // SAFETY: the native build reads and writes only inside the buffer it
        // is given (mem.len() bytes, page-aligned), per its C source.
        Ok(unsafe { (self.0)(mem.as_mut_ptr(), mem.len() as u64) })
    }
}
