//! The LLVM dialect with what a loaded object knows: map names for map
//! loads, function names for local calls and callbacks, kernel symbol names
//! for kfunc calls and `__ksym` loads (see the syntax table in [`super`]).

use super::llvm;
use crate::isa::{CallTarget, Insn, LddwSrc};

/// Names a disassembly can show instead of numbers. Every method may answer
/// `None`, and the number is printed.
pub trait Names {
    /// The name of map `index` of the object (`LddwSrc::MapIdx`/`MapIdxValue`).
    fn map(&self, index: u32) -> Option<String> {
        let _ = index;
        None
    }
    /// The name of the function that starts at program pc `pc`.
    fn function(&self, pc: usize) -> Option<String> {
        let _ = pc;
        None
    }
    /// The kernel symbol the instruction at `pc` refers to (kfunc, `__ksym`).
    fn kernel_symbol(&self, pc: usize) -> Option<String> {
        let _ = pc;
        None
    }
}

/// No names: the numeric forms.
pub struct NoNames;

impl Names for NoNames {}

/// `pc+5`, `pc-3`: a pc-relative offset.
fn rel(off: i64) -> String {
    if off < 0 {
        format!("pc{off}")
    } else {
        format!("pc+{off}")
    }
}

fn value_off(off: u32) -> String {
    format!("+{off}")
}

/// One instruction at slot `pc` in the LLVM dialect, with names from `names`.
pub fn format_named(pc: usize, insn: &Insn, names: &dyn Names) -> String {
    let target = |off: i64| -> String {
        let t = pc as i64 + 1 + off;
        let name = usize::try_from(t).ok().and_then(|t| names.function(t));
        match name {
            Some(n) => format!("{} <{n}>", rel(off)),
            None => rel(off),
        }
    };
    match *insn {
        Insn::Call(CallTarget::Local(imm)) => format!("call {}", target(imm as i64)),
        Insn::Call(CallTarget::Kfunc { btf_id, .. }) => match names.kernel_symbol(pc) {
            Some(n) => format!("call kfunc[{n}]"),
            None => format!("call kfunc[{btf_id}]"),
        },
        Insn::Lddw { dst, src, imm } if src != LddwSrc::Imm => {
            let (lo, hi) = Insn::lddw_halves(imm);
            let lo = lo as u32;
            let hi = hi as u32;
            let map = |i: u32| names.map(i).unwrap_or_else(|| format!("#{i}"));
            let what = match src {
                LddwSrc::MapFd => format!("map_fd[{lo}]"),
                LddwSrc::MapValue => format!("map_value_fd[{lo}]{}", value_off(hi)),
                LddwSrc::BtfId => match names.kernel_symbol(pc) {
                    Some(n) => format!("ksym[{n}]"),
                    None => format!("btf_id[{lo}]"),
                },
                LddwSrc::Func => format!("func {}", target(lo as i32 as i64)),
                LddwSrc::MapIdx => format!("map[{}]", map(lo)),
                LddwSrc::MapIdxValue => format!("map_value[{}]{}", map(lo), value_off(hi)),
                LddwSrc::Imm => unreachable!("excluded above"),
            };
            format!("r{} = {what} ll", dst.num())
        }
        _ => llvm::format(insn),
    }
}
