//! The interpreter's error messages: one line each, and for every fault that
//! compiled code also reports, the same words as compiled code's message
//! (`FaultCode::describe`) right after the instruction, detail after them.

use super::*;
use bpfc_runtime::abi::FaultCode;

unsafe extern "C" fn multiline_fault(
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    _: u64,
    st: *mut bpfc_runtime::abi::RunState,
) -> u64 {
    // SAFETY: the interpreter passes the live run state.
    bpfc_runtime::helpers::fail(unsafe { &mut *st }, "first line\nsecond line");
    0
}

/// The fault code compiled code reports for the same stop, if it has one.
fn fault_code(e: &RunError) -> Option<FaultCode> {
    Some(match e {
        RunError::CallDepth { .. } => FaultCode::CallDepth,
        RunError::OutOfBounds { .. } => FaultCode::OutOfBounds,
        RunError::UnknownHelper { .. } => FaultCode::UnknownHelper,
        RunError::Kfunc { .. } => FaultCode::KfuncCall,
        RunError::HelperFault { .. } => FaultCode::HelperFault,
        RunError::PacketLoad { .. } => FaultCode::PacketLoad,
        RunError::UnresolvedLddw { .. } => FaultCode::UnresolvedLddw,
        _ => return None,
    })
}

#[test]
fn faults_read_like_compiled_code_faults_and_stay_on_one_line() {
    let mut helpers = HelperTable::conformance();
    helpers.insert(Helper {
        id: 3,
        name: "multiline",
        func: multiline_fault,
    });
    let lddw_map = Insn::Lddw {
        dst: R1,
        src: LddwSrc::MapFd,
        imm: 1,
    };
    let programs: Vec<(Vec<Insn>, FaultCode)> = vec![
        (
            vec![Insn::Call(CallTarget::Local(-1)), EXIT],
            FaultCode::CallDepth,
        ),
        (vec![ldx(Size::W, R0, R0, 0), EXIT], FaultCode::OutOfBounds),
        (
            vec![Insn::Call(CallTarget::Helper(999)), EXIT],
            FaultCode::UnknownHelper,
        ),
        (
            vec![Insn::Call(CallTarget::Kfunc { btf_id: 1, off: 0 }), EXIT],
            FaultCode::KfuncCall,
        ),
        (
            vec![Insn::Call(CallTarget::Helper(3)), EXIT],
            FaultCode::HelperFault,
        ),
        (
            vec![
                Insn::LdAbs {
                    size: Size::H,
                    imm: 12,
                },
                EXIT,
            ],
            FaultCode::PacketLoad,
        ),
        (
            vec![lddw_map, Insn::LddwHigh, EXIT],
            FaultCode::UnresolvedLddw,
        ),
    ];
    for (prog, code) in programs {
        let mut ctx = ExecContext::new();
        let e = run(&prog, &mut [], &helpers, &mut ctx, &Options::default()).unwrap_err();
        assert_eq!(fault_code(&e), Some(code), "{e:?}");
        let text = e.to_string();
        assert_eq!(text.lines().count(), 1, "{text:?}");
        let rest = text
            .strip_prefix(&format!("instruction {}: ", e.pc()))
            .unwrap_or_else(|| panic!("{text:?} does not start with its instruction"));
        assert!(
            rest.starts_with(code.describe()),
            "{text:?} does not start with {:?}",
            code.describe()
        );
    }
}

#[test]
fn other_stops_are_one_line_too() {
    let limited = Options {
        max_insns: Some(100),
        ..Default::default()
    };
    let stops: Vec<RunError> = vec![
        exec(
            &[
                Insn::Ja {
                    off: -1,
                    long: false,
                },
                EXIT,
            ],
            &mut [],
            &limited,
        )
        .unwrap_err(),
        err(&[mov64(FP, 1), EXIT], &mut []),
        err(&[], &mut []),
    ];
    for e in stops {
        let text = e.to_string();
        assert_eq!(text.lines().count(), 1, "{text:?}");
    }
    // A read-only region with a newline in its name.
    let data = [0u8; 8];
    let addr = data.as_ptr() as u64;
    let mut ctx = ExecContext::new();
    ctx.regions
        .add("odd\nname", addr as usize, data.len(), false);
    let prog = [
        Insn::Lddw {
            dst: R1,
            src: LddwSrc::Imm,
            imm: addr,
        },
        Insn::LddwHigh,
        Insn::St {
            size: Size::B,
            dst: R1,
            off: 0,
            imm: 1,
        },
        EXIT,
    ];
    let e = run(
        &prog,
        &mut [],
        &HelperTable::conformance(),
        &mut ctx,
        &Options::default(),
    )
    .unwrap_err();
    assert!(matches!(e, RunError::ReadOnly { pc: 2, .. }), "{e:?}");
    assert_eq!(e.to_string().lines().count(), 1, "{e}");
    assert!(e.to_string().contains("odd\\nname"), "{e}");
}
