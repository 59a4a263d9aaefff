//! Unit tests of decoding, encoding and validation: every [`DecodeError`]
//! variant with the instruction it names, the reserved-field checks, both
//! byte orders, and decode/encode being exact inverses on every encoding the
//! decoder accepts.

use super::*;
use proptest::prelude::*;

/// One little-endian slot from its fields.
fn slot(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = code;
    b[1] = (src << 4) | (dst & 0x0f);
    b[2..4].copy_from_slice(&off.to_le_bytes());
    b[4..8].copy_from_slice(&imm.to_le_bytes());
    b
}

fn bytes(slots: &[[u8; 8]]) -> Vec<u8> {
    slots.concat()
}

const EXIT: [u8; 8] = [0x95, 0, 0, 0, 0, 0, 0, 0];

fn decode(slots: &[[u8; 8]]) -> Result<Vec<Insn>, DecodeError> {
    decode_program(&bytes(slots), Endian::Little)
}

fn mov(dst: Reg, imm: i32) -> Insn {
    Insn::Alu {
        width: Width::W64,
        op: AluOp::Mov,
        dst,
        src: Src::Imm(imm),
    }
}

#[test]
fn empty_program() {
    assert_eq!(decode_program(&[], Endian::Little), Err(DecodeError::Empty));
    assert_eq!(validate(&[]), Err(DecodeError::Empty));
    // Decoding alone accepts it; only validation needs an instruction.
    assert_eq!(decode_unvalidated(&[], Endian::Little), Ok(vec![]));
    assert_eq!(DecodeError::Empty.to_string(), "program is empty");
    assert_eq!(DecodeError::Empty.pc(), None);
}

#[test]
fn truncated_program_names_the_partial_instruction() {
    let mut b = bytes(&[EXIT, EXIT]);
    b.truncate(12);
    let e = decode_program(&b, Endian::Little).unwrap_err();
    assert_eq!(e, DecodeError::Truncated { len: 12, pc: 1 });
    assert_eq!(e.pc(), Some(1));
    assert_eq!(
        decode_program(&b[..3], Endian::Little),
        Err(DecodeError::Truncated { len: 3, pc: 0 })
    );
}

#[test]
fn unknown_opcodes() {
    // ALU64 op 0xe0, JMP32 call and exit, LDX in IMM mode, ST in ATOMIC mode,
    // MEMSX of a double word, atomics of bytes, lddw in MEM mode of class LD,
    // neg with a register source, ALU64 `to_be`, callx of class JMP32.
    for code in [
        0xe7, 0x86, 0x96, 0x01, 0xc2, 0x99, 0xd3, 0x60, 0x8f, 0xdf, 0x8e,
    ] {
        let e = decode(&[slot(code, 0, 0, 0, 0), EXIT]).unwrap_err();
        assert_eq!(
            e,
            DecodeError::UnknownOpcode {
                pc: 0,
                opcode: code
            },
            "{code:#x}"
        );
    }
    let e = decode(&[EXIT, slot(0xff, 0, 0, 0, 0)]).unwrap_err();
    assert_eq!(e.to_string(), "instruction 1: unknown opcode 0xff");
}

#[test]
fn bad_registers() {
    let e = decode(&[slot(0xb7, 11, 0, 0, 1), EXIT]).unwrap_err();
    assert_eq!(
        e,
        DecodeError::BadRegister {
            pc: 0,
            field: "destination",
            reg: 11
        }
    );
    assert_eq!(
        e.to_string(),
        "instruction 0: invalid destination register r11"
    );
    // stxdw [r1], r15
    let e = decode(&[EXIT, slot(0x7b, 1, 15, 0, 0)]).unwrap_err();
    assert_eq!(
        e,
        DecodeError::BadRegister {
            pc: 1,
            field: "source",
            reg: 15
        }
    );
    // callx r12
    let e = decode(&[slot(0x8d, 12, 0, 0, 0), EXIT]).unwrap_err();
    assert!(matches!(e, DecodeError::BadRegister { reg: 12, .. }), "{e}");
}

#[test]
fn reserved_and_invalid_fields() {
    let field = |s: [u8; 8]| match decode(&[s, EXIT]).unwrap_err() {
        DecodeError::BadField {
            pc: 0,
            field,
            value,
            opcode,
        } => {
            assert_eq!(opcode, s[0]);
            (field, value)
        }
        e => panic!("{e:?}"),
    };
    assert_eq!(field(slot(0x95, 0, 0, 0, 1)), ("immediate", 1)); // exit with imm
    assert_eq!(field(slot(0x95, 1, 0, 0, 0)), ("destination register", 1));
    assert_eq!(field(slot(0x95, 0, 0, -1, 0)), ("offset", -1));
    assert_eq!(field(slot(0x07, 1, 2, 0, 0)), ("source register", 2)); // add imm with src
    assert_eq!(field(slot(0x0f, 1, 2, 0, 3)), ("immediate", 3)); // add reg with imm
    assert_eq!(field(slot(0x37, 1, 0, 2, 3)), ("offset", 2)); // div, offset not 0/1
    assert_eq!(field(slot(0xbc, 1, 2, 32, 0)), ("offset", 32)); // movsx32 of class ALU
    assert_eq!(field(slot(0xb7, 1, 0, 8, 0)), ("offset", 8)); // movsx needs a register
    assert_eq!(field(slot(0xd4, 1, 0, 0, 8)), ("byte-swap width", 8));
    assert_eq!(field(slot(0xdb, 1, 2, 0, 0x10)), ("atomic operation", 0x10));
    assert_eq!(field(slot(0x18, 1, 7, 0, 0)), ("lddw source", 7));
    assert_eq!(
        field(slot(0x85, 0, 3, 0, 1)),
        ("call kind (source register)", 3)
    );
    assert_eq!(field(slot(0x85, 0, 0, 4, 1)), ("offset", 4)); // helper call with offset
    assert_eq!(field(slot(0x05, 0, 0, 1, 1)), ("immediate", 1)); // ja with imm
    assert_eq!(field(slot(0x06, 0, 0, 1, 1)), ("offset", 1)); // gotol with offset
    assert_eq!(field(slot(0x20, 1, 0, 0, 0)), ("destination register", 1)); // ldabs dst
    assert_eq!(field(slot(0x61, 0, 1, 0, 5)), ("immediate", 5)); // ldxw imm
    assert_eq!(field(slot(0x62, 1, 2, 0, 5)), ("source register", 2)); // stw src
    let e = decode(&[slot(0x95, 0, 0, 0, 1), EXIT]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "instruction 0: invalid immediate 1 for opcode 0x95"
    );
}

#[test]
fn movsx32_exists_only_in_class_alu64() {
    let insns = decode(&[slot(0xbf, 1, 2, 32, 0), EXIT]).unwrap();
    assert_eq!(
        insns[0],
        Insn::Alu {
            width: Width::W64,
            op: AluOp::MovSx(32),
            dst: Reg::R1,
            src: Src::Reg(Reg::R2)
        }
    );
    assert!(decode(&[slot(0xbc, 1, 2, 32, 0), EXIT]).is_err());
}

#[test]
fn lddw_without_second_slot() {
    let e = decode(&[EXIT, slot(0x18, 1, 0, 0, 5)]).unwrap_err();
    assert_eq!(e, DecodeError::IncompleteLddw { pc: 1 });
    assert_eq!(e.to_string(), "instruction 1: lddw without its second slot");
    // A hand-built vector whose lddw lacks its placeholder.
    let lddw = Insn::Lddw {
        dst: Reg::R1,
        src: LddwSrc::Imm,
        imm: 5,
    };
    assert_eq!(
        validate(&[lddw, Insn::Exit]),
        Err(DecodeError::IncompleteLddw { pc: 0 })
    );
}

#[test]
fn lddw_second_slot_with_reserved_fields_set() {
    let lddw = slot(0x18, 1, 0, 0, 5);
    let cases: [([u8; 8], &str, u32); 4] = [
        (slot(0x95, 0, 0, 0, 7), "opcode", 0x95),
        (slot(0, 3, 0, 0, 7), "destination register", 3),
        (slot(0, 0, 2, 0, 7), "source register", 2),
        (slot(0, 0, 0, -1, 7), "offset", 0xffff),
    ];
    for (hi, field, value) in cases {
        let e = decode(&[EXIT, lddw, hi, EXIT]).unwrap_err();
        assert_eq!(
            e,
            DecodeError::LddwSecondSlot {
                pc: 1,
                field,
                value
            },
            "{field}"
        );
        assert_eq!(e.pc(), Some(1));
    }
    let e = decode(&[EXIT, lddw, slot(0, 0, 0, 0x10, 0), EXIT]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "instruction 1: the second slot of this lddw (instruction 2) has offset 0x10; it must be 0"
    );
    // The immediate of the second slot is the high half, any value is fine.
    let insns = decode(&[lddw, slot(0, 0, 0, 0, -1), EXIT]).unwrap();
    assert_eq!(
        insns[0],
        Insn::Lddw {
            dst: Reg::R1,
            src: LddwSrc::Imm,
            imm: 0xffff_ffff_0000_0005
        }
    );
    assert_eq!(insns[1], Insn::LddwHigh);
}

#[test]
fn stray_lddw_placeholder() {
    assert_eq!(
        validate(&[Insn::LddwHigh, Insn::Exit]),
        Err(DecodeError::StrayLddwSlot { pc: 0 })
    );
    assert_eq!(
        validate(&[Insn::Exit, Insn::LddwHigh]),
        Err(DecodeError::StrayLddwSlot { pc: 1 })
    );
}

#[test]
fn jumps_and_calls_out_of_range() {
    let ja = |off: i16| slot(0x05, 0, 0, off, 0);
    // ja +1 at the last slot targets one past the end.
    assert_eq!(
        decode(&[EXIT, ja(1)]),
        Err(DecodeError::JumpOutOfRange {
            pc: 1,
            target: 3,
            len: 2
        })
    );
    assert_eq!(
        decode(&[ja(-2), EXIT]),
        Err(DecodeError::JumpOutOfRange {
            pc: 0,
            target: -1,
            len: 2
        })
    );
    // The last slot itself and the first are fine targets.
    assert!(decode(&[ja(0), EXIT]).is_ok());
    assert!(decode(&[EXIT, ja(-2)]).is_ok());
    // jeq r1, 0, +5; gotol -10
    assert!(matches!(
        decode(&[slot(0x15, 1, 0, 5, 0), EXIT]),
        Err(DecodeError::JumpOutOfRange {
            pc: 0,
            target: 6,
            ..
        })
    ));
    assert!(matches!(
        decode(&[EXIT, slot(0x06, 0, 0, 0, -10)]),
        Err(DecodeError::JumpOutOfRange {
            pc: 1,
            target: -8,
            ..
        })
    ));
    let e = decode(&[slot(0x85, 0, 1, 0, 1), EXIT]).unwrap_err();
    assert_eq!(
        e,
        DecodeError::CallOutOfRange {
            pc: 0,
            target: 2,
            len: 2
        }
    );
    assert_eq!(
        e.to_string(),
        "instruction 0: local call to 2 is out of range (program has 2 slots)"
    );
    // A helper call's immediate is no target.
    assert!(decode(&[slot(0x85, 0, 0, 0, 1000), EXIT]).is_ok());
}

#[test]
fn jump_into_lddw() {
    let lddw = [slot(0x18, 1, 0, 0, 5), slot(0, 0, 0, 0, 0)];
    let e = decode(&[slot(0x05, 0, 0, 1, 0), lddw[0], lddw[1], EXIT]).unwrap_err();
    assert_eq!(e, DecodeError::JumpIntoLddw { pc: 0, target: 2 });
    assert_eq!(
        e.to_string(),
        "instruction 0: jump into the middle of the lddw at 1"
    );
    // A local call into it too.
    assert!(matches!(
        decode(&[slot(0x85, 0, 1, 0, 1), lddw[0], lddw[1], EXIT]),
        Err(DecodeError::JumpIntoLddw { pc: 0, target: 2 })
    ));
    // Jumping onto the lddw itself is fine.
    assert!(decode(&[slot(0x05, 0, 0, 0, 0), lddw[0], lddw[1], EXIT]).is_ok());
}

#[test]
fn writes_to_the_frame_pointer() {
    let writes = |s: [u8; 8]| decode(&[EXIT, s, EXIT]);
    for s in [
        slot(0xb7, 10, 0, 0, 1),    // mov r10, 1
        slot(0x87, 10, 0, 0, 0),    // neg r10
        slot(0xd4, 10, 0, 0, 16),   // le16 r10
        slot(0x79, 10, 1, 0, 0),    // ldxdw r10, [r1]
        slot(0xdb, 1, 10, 0, 1),    // lock fetch add [r1], r10
        slot(0xdb, 1, 10, 0, 0xe1), // xchg [r1], r10
    ] {
        assert_eq!(
            writes(s),
            Err(DecodeError::WritesFramePointer { pc: 1 }),
            "{s:x?}"
        );
    }
    let e = decode(&[slot(0xb7, 10, 0, 0, 1), EXIT]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "instruction 0: writes r10, the read-only frame pointer"
    );
    // Reading r10, storing through it and atomics that do not write their
    // source register are fine.
    for s in [
        slot(0xbf, 1, 10, 0, 0),    // mov r1, r10
        slot(0x7b, 10, 1, -8, 0),   // stxdw [r10-8], r1
        slot(0xdb, 1, 10, 0, 0),    // lock add [r1], r10
        slot(0xdb, 1, 10, 0, 0xf1), // cmpxchg [r1], r10 (writes r0)
    ] {
        assert!(writes(s).is_ok(), "{s:x?}");
    }
    let lddw = [slot(0x18, 10, 0, 0, 5), slot(0, 0, 0, 0, 0)];
    assert_eq!(
        decode(&[lddw[0], lddw[1], EXIT]),
        Err(DecodeError::WritesFramePointer { pc: 0 })
    );
}

#[test]
fn falling_off_the_end() {
    let mov1 = slot(0xb7, 0, 0, 0, 1);
    assert_eq!(decode(&[mov1]), Err(DecodeError::FallsOffEnd { pc: 0 }));
    // A conditional jump may fall through.
    assert_eq!(
        decode(&[EXIT, slot(0x15, 1, 0, -2, 0)]),
        Err(DecodeError::FallsOffEnd { pc: 1 })
    );
    // An lddw at the end is reported at its first slot.
    let e = decode(&[EXIT, slot(0x18, 1, 0, 0, 5), slot(0, 0, 0, 0, 0)]).unwrap_err();
    assert_eq!(e, DecodeError::FallsOffEnd { pc: 1 });
    assert_eq!(
        e.to_string(),
        "instruction 1: last instruction can fall off the end of the program"
    );
    // Ending in an unconditional jump (or gotol) is fine.
    assert!(decode(&[EXIT, slot(0x05, 0, 0, -2, 0)]).is_ok());
    assert!(decode(&[EXIT, slot(0x06, 0, 0, 0, -2)]).is_ok());
}

#[test]
fn every_variant_names_its_instruction() {
    let all = [
        DecodeError::Truncated { len: 3, pc: 4 },
        DecodeError::UnknownOpcode { pc: 4, opcode: 1 },
        DecodeError::BadRegister {
            pc: 4,
            field: "source",
            reg: 11,
        },
        DecodeError::BadField {
            pc: 4,
            opcode: 0x95,
            field: "offset",
            value: 1,
        },
        DecodeError::IncompleteLddw { pc: 4 },
        DecodeError::LddwSecondSlot {
            pc: 4,
            field: "opcode",
            value: 1,
        },
        DecodeError::StrayLddwSlot { pc: 4 },
        DecodeError::JumpOutOfRange {
            pc: 4,
            target: 9,
            len: 5,
        },
        DecodeError::JumpIntoLddw { pc: 4, target: 2 },
        DecodeError::CallOutOfRange {
            pc: 4,
            target: 9,
            len: 5,
        },
        DecodeError::WritesFramePointer { pc: 4 },
        DecodeError::FallsOffEnd { pc: 4 },
    ];
    for e in all {
        assert_eq!(e.pc(), Some(4), "{e:?}");
        let text = e.to_string();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains('4'), "{text}");
    }
}

#[test]
fn big_endian_swaps_register_nibbles_and_fields() {
    // mov r1, 0x01020304 (big-endian: dst in the high nibble)
    let be = [0xb7, 0x10, 0, 0, 1, 2, 3, 4];
    let insns = decode_program(&[be, EXIT].concat(), Endian::Big).unwrap();
    assert_eq!(insns[0], mov(Reg::R1, 0x0102_0304));
    assert_eq!(encode_program(&insns, Endian::Big), [be, EXIT].concat());
    // Read as little-endian, the same byte names register r0 and source r1.
    assert!(matches!(
        decode_program(&[be, EXIT].concat(), Endian::Little),
        Err(DecodeError::BadField {
            field: "source register",
            value: 1,
            ..
        })
    ));
    // ldxh r2, [r3-2]
    let be = [0x69, 0x23, 0xff, 0xfe, 0, 0, 0, 0];
    assert_eq!(
        decode_program(&[be, EXIT].concat(), Endian::Big).unwrap()[0],
        Insn::Ldx {
            size: Size::H,
            sx: false,
            dst: Reg::R2,
            src: Reg::R3,
            off: -2
        }
    );
}

#[test]
fn encoding_skips_placeholders_and_matches_slots() {
    let insns = vec![
        Insn::Lddw {
            dst: Reg::R0,
            src: LddwSrc::MapValue,
            imm: 0x0000_0010_0000_0003,
        },
        Insn::LddwHigh,
        Insn::Exit,
    ];
    let b = encode_program(&insns, Endian::Little);
    assert_eq!(
        b,
        bytes(&[slot(0x18, 0, 2, 0, 3), slot(0, 0, 0, 0, 0x10), EXIT])
    );
    assert_eq!(decode_program(&b, Endian::Little).unwrap(), insns);
    assert_eq!(
        insns.iter().map(Insn::slots).sum::<usize>() * INSN_SIZE,
        b.len()
    );
}

/// Decode one instruction at pc 0 from `first` and `second`; if the decoder
/// accepts it, its encoding must be the input bytes exactly (so every field
/// the decoder does not keep was checked to be zero).
fn assert_canonical(first: [u8; 8], second: [u8; 8], endian: Endian) {
    let Ok(insn) = decode_one(0, first, Some(second), endian) else {
        return;
    };
    let mut out = Vec::new();
    encode_insn(&insn, endian, &mut out);
    let input = [first, second].concat();
    assert_eq!(out, input[..out.len()], "{insn:?} ({endian:?})");
}

#[test]
fn every_accepted_encoding_round_trips() {
    // Every opcode with a spread of field values, in both byte orders.
    let regs = [0u8, 1, 10, 11, 15];
    let offs = [0i16, 1, -1, 8, 16, 32];
    let imms = [0i32, 1, -1, 16, 32, 64, 0x01, 0xe1, 0xf1, 0x40, 0x51];
    let mut accepted = 0;
    for code in 0..=255u8 {
        for &dst in &regs {
            for &src in &regs {
                for &off in &offs {
                    for &imm in &imms {
                        for endian in [Endian::Little, Endian::Big] {
                            let mut first = slot(code, dst, src, off, imm);
                            if endian == Endian::Big {
                                first[1] = (dst << 4) | src;
                                first[2..4].copy_from_slice(&off.to_be_bytes());
                                first[4..8].copy_from_slice(&imm.to_be_bytes());
                            }
                            let second = [0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78];
                            if decode_one(0, first, Some(second), endian).is_ok() {
                                accepted += 1;
                            }
                            assert_canonical(first, second, endian);
                        }
                    }
                }
            }
        }
    }
    // Sanity check that the loops reached the decoder's accepting paths.
    assert!(accepted > 10_000, "{accepted}");
}

proptest! {
    #[test]
    fn random_slots_round_trip(first: [u8; 8], second: [u8; 8], big: bool) {
        let endian = if big { Endian::Big } else { Endian::Little };
        assert_canonical(first, second, endian);
    }

    #[test]
    fn random_programs_never_panic(b in proptest::collection::vec(any::<u8>(), 0..128)) {
        for endian in [Endian::Little, Endian::Big] {
            if let Ok(insns) = decode_program(&b, endian) {
                prop_assert_eq!(encode_program(&insns, endian), b.clone());
            }
        }
    }
}

#[test]
fn may_goto_decodes_encodes_and_rejects_other_jcond_forms() {
    // `may_goto +2`: BPF_JMP | BPF_JCOND, source register 0 (BPF_MAY_GOTO).
    let insns = decode(&[slot(0xe5, 0, 0, 2, 0), EXIT, EXIT, EXIT]).unwrap();
    assert_eq!(insns[0], Insn::MayGoto { off: 2 });
    assert_eq!(insns[0].branch_target(0), Some(3));
    assert_eq!(
        crate::isa::encode_program(&insns, Endian::Little),
        bytes(&[slot(0xe5, 0, 0, 2, 0), EXIT, EXIT, EXIT])
    );
    // Another JCOND kind, a register, an immediate, the JMP32 class.
    let bad = |s: [u8; 8]| decode(&[s, EXIT, EXIT]).unwrap_err();
    assert!(matches!(
        bad(slot(0xe5, 0, 1, 1, 0)),
        DecodeError::BadField {
            field: "source register",
            ..
        }
    ));
    assert!(matches!(
        bad(slot(0xe5, 1, 0, 1, 0)),
        DecodeError::BadField {
            field: "destination register",
            ..
        }
    ));
    assert!(matches!(
        bad(slot(0xe5, 0, 0, 1, 7)),
        DecodeError::BadField {
            field: "immediate",
            ..
        }
    ));
    assert!(matches!(
        bad(slot(0xe6, 0, 0, 1, 0)),
        DecodeError::UnknownOpcode { opcode: 0xe6, .. }
    ));
}
