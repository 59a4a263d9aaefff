//! Unit tests of the assembler: syntax details and every error kind with its
//! line and column.

use super::{assemble, assemble_with_locations, source_text, AsmError, AsmErrorKind, SourcePos};
use crate::isa::{AtomicOp, CallTarget, Insn, LddwSrc, Reg, Size, Src, Width};
use proptest::prelude::*;

fn err(src: &str) -> AsmError {
    match assemble(src) {
        Ok(insns) => panic!("{src:?} assembled to {insns:?}"),
        Err(e) => e,
    }
}

fn at(src: &str) -> (usize, usize, AsmErrorKind) {
    let e = err(src);
    (e.line, e.column, e.kind)
}

#[test]
fn display_has_line_and_column() {
    let e = err("exit\n\n  fooo %r1\n");
    assert_eq!(e.to_string(), "line 3, column 3: unknown mnemonic 'fooo'");
}

#[test]
fn error_kinds_with_positions() {
    use AsmErrorKind::*;
    assert_eq!(at("mov %r0, $1"), (1, 10, UnexpectedChar { ch: '$' }));
    assert_eq!(
        at("exit\nlock fooo [%r1], %r2"),
        (
            2,
            6,
            UnknownMnemonic {
                name: "lock fooo".into()
            }
        )
    );
    assert_eq!(
        at("mov %r11, 1"),
        (
            1,
            5,
            BadRegister {
                name: "%r11".into()
            }
        )
    );
    assert_eq!(at("mov %x1, 1").2, BadRegister { name: "%x1".into() });
    assert_eq!(at("mov %r01, 1").1, 5);
    assert_eq!(
        at("add %r1 5"),
        (
            1,
            9,
            Expected {
                expected: "','",
                found: "'5'".into()
            }
        )
    );
    assert_eq!(
        at("add %r1,"),
        (
            1,
            9,
            Expected {
                expected: "a number",
                found: "end of line".into()
            }
        )
    );
    assert_eq!(
        at("exit %r1"),
        (
            1,
            6,
            Expected {
                expected: "end of line",
                found: "'%r1'".into()
            }
        )
    );
    assert_eq!(
        at("mov %r1, 12ab"),
        (
            1,
            10,
            BadNumber {
                text: "12ab".into()
            }
        )
    );
    assert_eq!(
        at("mov %r1, 0x100000000"),
        (
            1,
            10,
            OutOfRange {
                what: "immediate",
                value: 1 << 32,
                min: -(1 << 31),
                max: (1 << 32) - 1
            }
        )
    );
    assert_eq!(at("mov %r1, -0x80000001").1, 10);
    assert_eq!(at("lddw %r1, 0x10000000000000000").1, 11);
    assert_eq!(
        at("ldxw %r1, [%r2+32768]"),
        (
            1,
            15,
            OutOfRange {
                what: "offset",
                value: 32768,
                min: -32768,
                max: 32767
            }
        )
    );
    assert_eq!(
        at("ja +32768").2.to_string(),
        "jump offset 32768 out of range -32768..=32767"
    );
    assert_eq!(
        at("exit\nja nowhere\n"),
        (
            2,
            4,
            UnknownLabel {
                name: "nowhere".into()
            }
        )
    );
    assert_eq!(
        at("a:\nexit\n  a: exit\n"),
        (
            3,
            3,
            DuplicateLabel {
                name: "a".into(),
                first_line: 1
            }
        )
    );
    assert_eq!(
        at("ja 5\n"),
        (
            1,
            4,
            Expected {
                expected: "a label or a +N/-N offset",
                found: "'5'".into()
            }
        )
    );
}

#[test]
fn neg_takes_one_operand() {
    assert_eq!(
        assemble("neg %r1 # comment").unwrap(),
        vec![Insn::Neg {
            width: Width::W64,
            dst: Reg::R1
        }]
    );
}

#[test]
fn label_too_far() {
    let mut src = String::from("ja far\n");
    for _ in 0..40000 {
        src.push_str("exit\n");
    }
    src.push_str("far: exit\n");
    let e = err(&src);
    assert_eq!((e.line, e.column), (1, 4));
    assert_eq!(
        e.kind,
        AsmErrorKind::LabelTooFar {
            name: "far".into(),
            offset: 40000,
            bits: 16
        }
    );
    // ja32 (gotol) has a 32-bit offset and reaches it.
    let insns = assemble(&src.replacen("ja far", "ja32 far", 1)).unwrap();
    assert_eq!(
        insns[0],
        Insn::Ja {
            off: 40000,
            long: true
        }
    );
}

#[test]
fn immediates_store_their_low_bits() {
    let insns =
        assemble("mov %r0, 0xffffffff\nmov32 %r0, -1\njeq %r1, 0x80000000, +1\nexit").unwrap();
    let imm = |i: &Insn| match i {
        Insn::Alu {
            src: Src::Imm(v), ..
        }
        | Insn::Jmp {
            src: Src::Imm(v), ..
        } => *v,
        _ => panic!(),
    };
    assert_eq!(imm(&insns[0]), -1);
    assert_eq!(imm(&insns[1]), -1);
    assert_eq!(imm(&insns[2]), i32::MIN);
    let insns = assemble("lddw %r0, -1").unwrap();
    assert_eq!(
        insns,
        vec![
            Insn::Lddw {
                dst: Reg::R0,
                src: LddwSrc::Imm,
                imm: u64::MAX
            },
            Insn::LddwHigh
        ]
    );
}

#[test]
fn labels_count_lddw_slots_and_exit_is_implicit() {
    let insns = assemble("ja l\nlddw %r0, 1\nl: jeq %r0, 1, exit # c\nexit\n").unwrap();
    assert_eq!(
        insns[0],
        Insn::Ja {
            off: 2,
            long: false
        }
    );
    assert!(matches!(insns[3], Insn::Jmp { off: 0, .. }));
    // An explicit `exit:` label wins over the implicit one.
    let insns = assemble("ja exit\nexit\nexit: exit\n").unwrap();
    assert_eq!(
        insns[0],
        Insn::Ja {
            off: 1,
            long: false
        }
    );
    // Backward references and call local.
    let insns = assemble("f: mov %r0, 1\ncall local f\ncall local -3\nexit").unwrap();
    assert_eq!(insns[1], Insn::Call(CallTarget::Local(-2)));
    assert_eq!(insns[2], Insn::Call(CallTarget::Local(-3)));
}

#[test]
fn extensions() {
    let insns = assemble(
        "lddw %r1, map_value 3, 8\nlddw %r2, func f\ncall kfunc 123, 2\ncall helper 7\n\
         ldabsh 12\nldindb %r2, -4\nlock fetch_add32 [%r1+2], %r3\nlock xchg [%r1], %r2\n\
         swap16 %r3\nf: exit",
    )
    .unwrap();
    assert_eq!(
        insns[0],
        Insn::Lddw {
            dst: Reg::R1,
            src: LddwSrc::MapValue,
            imm: 8 << 32 | 3
        }
    );
    assert_eq!(
        insns[2],
        Insn::Lddw {
            dst: Reg::R2,
            src: LddwSrc::Func,
            imm: 8
        }
    );
    assert_eq!(
        insns[4],
        Insn::Call(CallTarget::Kfunc {
            btf_id: 123,
            off: 2
        })
    );
    assert_eq!(insns[5], Insn::Call(CallTarget::Helper(7)));
    assert_eq!(
        insns[6],
        Insn::LdAbs {
            size: Size::H,
            imm: 12
        }
    );
    assert_eq!(
        insns[7],
        Insn::LdInd {
            size: Size::B,
            src: Reg::R2,
            imm: -4
        }
    );
    assert_eq!(
        insns[8],
        Insn::Atomic {
            size: Size::W,
            op: AtomicOp::Add,
            fetch: true,
            dst: Reg::R1,
            src: Reg::R3,
            off: 2
        }
    );
    assert!(matches!(
        insns[9],
        Insn::Atomic {
            op: AtomicOp::Xchg,
            fetch: true,
            ..
        }
    ));
}

#[test]
fn empty_and_comment_only_input() {
    assert_eq!(assemble("").unwrap(), vec![]);
    assert_eq!(assemble("# only\n\n   \n").unwrap(), vec![]);
    assert_eq!(assemble("l:\n").unwrap(), vec![]);
}

#[test]
fn invalid_utf8_is_reported_at_its_line_and_column() {
    let at = |b: &[u8]| {
        let e = source_text(b).unwrap_err();
        (e.line, e.column, e.kind)
    };
    let bad = |byte| AsmErrorKind::InvalidUtf8 { byte };
    assert_eq!(at(b"\xff"), (1, 1, bad(0xff)));
    assert_eq!(at(b"mov %r0, 1\nexit \xfe\n"), (2, 6, bad(0xfe)));
    // Columns count characters: 'é' (c3 a9) is two bytes, one column.
    assert_eq!(at(b"# \xc3\xa9\n\n# \xc3\xa9\x80"), (3, 4, bad(0x80)));
    // A truncated multi-byte sequence at the end points at its first byte.
    assert_eq!(at(b"exit\n  \xc3"), (2, 3, bad(0xc3)));
    assert_eq!(
        source_text(b"\xff").unwrap_err().to_string(),
        "line 1, column 1: invalid UTF-8 (byte 0xff)"
    );
    assert_eq!(source_text("exit # ü\n".as_bytes()).unwrap(), "exit # ü\n");
}

#[test]
fn every_slot_has_the_position_of_its_mnemonic() {
    let a =
        assemble_with_locations("# c\nstart:\n  mov %r0, 1\nl: lddw %r1, 2\n\n\texit\n").unwrap();
    let pos = |line, column| SourcePos { line, column };
    assert_eq!(a.insns.len(), 4);
    assert_eq!(
        a.locations,
        vec![pos(3, 3), pos(4, 4), pos(4, 4), pos(6, 2)]
    );
    assert_eq!(a.location(3), Some(pos(6, 2)));
    assert_eq!(a.location(4), None);
    assert_eq!(a.insns, assemble("mov %r0, 1\nlddw %r1, 2\nexit").unwrap());
}

proptest! {
    #[test]
    fn never_panics_on_random_text(s in "\\PC{0,200}") {
        let _ = assemble(&s);
    }

    #[test]
    fn never_panics_on_random_bytes(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = assemble(&String::from_utf8_lossy(&b));
    }

    #[test]
    fn never_panics_on_assembly_like_text(
        lines in proptest::collection::vec(
            "(lock |fetch |[a-z]{1,6}(32|64|16)? )?(%r[0-9]{1,2}|\\[%r1[+-][0-9]{1,6}\\]|[+-]?(0x)?[0-9a-f]{1,20}|[a-z]{1,3}:?)(, ?(%r[0-9]{1,2}|[+-]?[0-9]{1,12}|[a-z]{1,3})){0,3}( #.*)?",
            0..10,
        )
    ) {
        let _ = assemble(&lines.join("\n"));
    }
}
