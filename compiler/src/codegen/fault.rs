//! Messages for the faults compiled code reports through `bpfc_fault`
//! (`docs/abi.md`), worded as the interpreter words the same stops, so a
//! fault reads the same whichever engine ran the program.

use crate::isa::{CallTarget, Insn};
use bpfc_runtime::abi::{Fault, FaultCode};

/// The message of `fault` (without the `instruction N:` prefix). `insn` is
/// the instruction at `fault.pc`, when the caller has the program: it gives
/// the size and kind of an out-of-bounds access and a helper call's id.
pub fn describe(fault: &Fault, insn: Option<&Insn>) -> String {
    let Some(code) = FaultCode::from_raw(fault.code) else {
        return format!("unknown fault code {}", fault.code);
    };
    let detail = fault.detail;
    let words = code.describe();
    match code {
        FaultCode::OutOfBounds => match insn.and_then(access_of) {
            Some((size, kind)) => format!("{words}: {size}-byte {kind} at {detail:#x}"),
            None => format!("{words} at {detail:#x}"),
        },
        FaultCode::UnknownHelper => match insn {
            Some(Insn::Call(CallTarget::Helper(id))) => format!("{words} {id}"),
            _ => format!("{words} {detail}"),
        },
        FaultCode::KfuncCall => format!("{words} (btf id {})", detail as u32 as i32),
        FaultCode::InsnLimit => format!("instruction limit of {detail} reached"),
        FaultCode::UnresolvedLddw => format!("{words} (src {detail})"),
        FaultCode::BadCallback => format!("{words} {detail:#x}"),
        FaultCode::CallDepth
        | FaultCode::HelperFault
        | FaultCode::PacketLoad
        | FaultCode::CoreRelocation => words.to_string(),
    }
}

/// Size in bytes and kind of the memory access `insn` makes.
fn access_of(insn: &Insn) -> Option<(usize, &'static str)> {
    match *insn {
        Insn::Ldx { size, .. } => Some((size.bytes(), "load")),
        Insn::St { size, .. } | Insn::Stx { size, .. } => Some((size.bytes(), "store")),
        Insn::Atomic { size, .. } => Some((size.bytes(), "atomic")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isa::{Reg, Size};

    fn fault(code: FaultCode, detail: u64) -> Fault {
        Fault {
            code: code as u32,
            pc: 3,
            detail,
        }
    }

    #[test]
    fn out_of_bounds_names_size_kind_and_address() {
        let insn = Insn::Ldx {
            size: Size::W,
            sx: false,
            dst: Reg::R0,
            src: Reg::R1,
            off: 4,
        };
        let f = fault(FaultCode::OutOfBounds, 0x1004);
        assert_eq!(
            describe(&f, Some(&insn)),
            "out-of-bounds memory access: 4-byte load at 0x1004"
        );
        assert_eq!(describe(&f, None), "out-of-bounds memory access at 0x1004");
    }

    #[test]
    fn helpers_kfuncs_and_limits_carry_their_numbers() {
        let call = Insn::Call(CallTarget::Helper(-7));
        let f = fault(FaultCode::UnknownHelper, (-7i32) as u32 as u64);
        assert_eq!(describe(&f, Some(&call)), "unknown helper -7");
        let callx = fault(FaultCode::UnknownHelper, 999);
        assert_eq!(
            describe(&callx, Some(&Insn::Callx { reg: Reg::R2 })),
            "unknown helper 999"
        );
        let k = fault(FaultCode::KfuncCall, 12);
        assert_eq!(describe(&k, None), "kfunc calls cannot run (btf id 12)");
        let l = fault(FaultCode::InsnLimit, 1000);
        assert_eq!(describe(&l, None), "instruction limit of 1000 reached");
        let bad = Fault {
            code: 99,
            pc: 0,
            detail: 0,
        };
        assert_eq!(describe(&bad, None), "unknown fault code 99");
    }
}
