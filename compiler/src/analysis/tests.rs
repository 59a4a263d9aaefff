//! Unit tests of the control-flow analysis.

use super::*;
use crate::asm::assemble;
use crate::isa::{Insn, LddwSrc, Reg};

fn cfg(src: &str) -> Result<Cfg, CfgError> {
    analyze(&assemble(src).expect("test program assembles"))
}

#[test]
fn functions_blocks_and_targets() {
    let c = cfg("mov %r6, 2\n\
         loop:\n\
         jge %r6, 10, done\n\
         mov %r1, %r6\n\
         call local f\n\
         add %r6, 1\n\
         ja loop\n\
         done:\n\
         exit\n\
         f:\n\
         mov %r0, %r1\n\
         exit\n")
    .unwrap();
    assert_eq!(
        c.functions,
        vec![
            Function {
                start: 0,
                end: 7,
                kind: FuncKind::Entry
            },
            Function {
                start: 7,
                end: 9,
                kind: FuncKind::Called
            }
        ]
    );
    assert!(c.jump_target[1] && c.jump_target[6]);
    assert_eq!(c.jump_target.iter().filter(|&&t| t).count(), 2);
    let starts: Vec<usize> = c.blocks.iter().map(|b| b.start).collect();
    assert_eq!(starts, vec![0, 1, 2, 6, 7]);
    assert_eq!(
        c.blocks[1].succs,
        Succs {
            fall: Some(2),
            jump: Some(6)
        }
    );
    assert_eq!(
        c.blocks[2].succs,
        Succs {
            fall: None,
            jump: Some(1)
        }
    );
    assert_eq!(c.block_of[4], 2);
    assert_eq!(c.func_of[8], 1);
    assert!(c.reachable.iter().all(|&r| r));
    assert_eq!(c.first_unreachable(), None);
    assert_eq!(c.function_at(7).map(|(i, _)| i), Some(1));
    assert!(c.function_at(3).is_none());
}

#[test]
fn callbacks_are_functions() {
    // lddw r2 = func pc+3 (the callback at slot 5).
    let insns = vec![
        Insn::Lddw {
            dst: Reg::R2,
            src: LddwSrc::Func,
            imm: 3,
        },
        Insn::LddwHigh,
        Insn::Alu {
            width: crate::isa::Width::W64,
            op: crate::isa::AluOp::Mov,
            dst: Reg::R0,
            src: crate::isa::Src::Imm(0),
        },
        Insn::Exit,
        Insn::Exit,
        Insn::Exit,
    ];
    let c = analyze(&insns).unwrap();
    assert_eq!(c.functions.len(), 2);
    assert_eq!(c.functions[1].start, 4);
    assert_eq!(c.functions[1].kind, FuncKind::Callback);
    assert!(c.reachable[1], "second lddw slot counts as reached");
    assert!(c.reachable[4]);
    assert!(!c.reachable[5]);
    assert_eq!(c.first_unreachable(), Some(5));
}

#[test]
fn errors_in_kernel_words() {
    let e = cfg("call local f\nja +1\nexit\nf:\nexit\n").unwrap_err();
    assert_eq!(
        e,
        CfgError::JumpOutOfFunction {
            pc: 1,
            target: 3,
            func: 0
        }
    );
    assert_eq!(e.to_string(), "jump out of range from insn 1 to 3");
    let e = cfg("call local f\nmov %r0, 0\nf:\nexit\n").unwrap_err();
    assert_eq!(
        e,
        CfgError::FallsThrough {
            pc: 1,
            next: Some(2)
        }
    );
    assert_eq!(e.to_string(), "last insn is not an exit or jmp");
    let e = analyze(&[Insn::Ja {
        off: 5,
        long: false,
    }])
    .unwrap_err();
    assert_eq!(e, CfgError::JumpOutOfRange { pc: 0, target: 6 });
    let e = cfg("ja +1\nlddw %r0, 1\nexit\n").unwrap_err();
    assert_eq!(e, CfgError::IntoLddw { pc: 0, lddw: 1 });
}

#[test]
fn unreachable_after_exit() {
    let c = cfg("mov %r0, 0\nexit\nmov %r0, 1\nexit\n").unwrap();
    assert_eq!(c.first_unreachable(), Some(2));
}
