//! Random (validated) programs never panic the interpreter: every run ends
//! in a value or a typed error within the budget.

use super::*;
use proptest::prelude::*;

fn reg() -> impl Strategy<Value = Reg> {
    (0u8..=9).prop_map(|n| Reg::new(n).unwrap_or(Reg::R0))
}
fn any_reg() -> impl Strategy<Value = Reg> {
    (0u8..=10).prop_map(|n| Reg::new(n).unwrap_or(Reg::R0))
}
fn src() -> impl Strategy<Value = Src> {
    prop_oneof![
        any::<i32>().prop_map(Src::Imm),
        any_reg().prop_map(Src::Reg)
    ]
}
fn width() -> impl Strategy<Value = Width> {
    prop_oneof![Just(Width::W32), Just(Width::W64)]
}
fn size() -> impl Strategy<Value = Size> {
    prop_oneof![Just(Size::B), Just(Size::H), Just(Size::W), Just(Size::DW)]
}
fn off() -> impl Strategy<Value = i16> {
    prop_oneof![-520i16..24, any::<i16>()]
}
fn insn() -> impl Strategy<Value = Insn> {
    use AluOp::*;
    let op = prop_oneof![
        Just(Add),
        Just(Sub),
        Just(Mul),
        Just(Div),
        Just(SDiv),
        Just(Mod),
        Just(SMod),
        Just(Or),
        Just(And),
        Just(Xor),
        Just(Lsh),
        Just(Rsh),
        Just(Arsh),
        Just(Mov),
        Just(MovSx(8)),
        Just(MovSx(16)),
        Just(MovSx(32)),
    ];
    let cond = proptest::sample::select(JmpCond::ALL.to_vec());
    let aop = prop_oneof![
        Just(AtomicOp::Add),
        Just(AtomicOp::Or),
        Just(AtomicOp::And),
        Just(AtomicOp::Xor),
        Just(AtomicOp::Xchg),
        Just(AtomicOp::CmpXchg),
    ];
    prop_oneof![
        (width(), op, reg(), src()).prop_map(|(width, op, dst, src)| Insn::Alu {
            width,
            op,
            dst,
            src
        }),
        (width(), reg()).prop_map(|(width, dst)| Insn::Neg { width, dst }),
        (width(), cond, reg(), src(), -3i16..4).prop_map(|(width, cond, dst, src, off)| {
            Insn::Jmp {
                width,
                cond,
                dst,
                src,
                off,
            }
        }),
        (-3i32..4).prop_map(|off| Insn::Ja { off, long: false }),
        (size(), any::<bool>(), reg(), any_reg(), off()).prop_map(|(size, sx, dst, src, off)| {
            Insn::Ldx {
                size,
                sx: sx && size != Size::DW,
                dst,
                src,
                off,
            }
        }),
        (size(), any_reg(), off(), any::<i32>()).prop_map(|(size, dst, off, imm)| Insn::St {
            size,
            dst,
            off,
            imm
        }),
        (size(), any_reg(), any_reg(), off()).prop_map(|(size, dst, src, off)| Insn::Stx {
            size,
            dst,
            src,
            off
        }),
        (
            prop_oneof![Just(Size::W), Just(Size::DW)],
            aop,
            any::<bool>(),
            any_reg(),
            reg(),
            off()
        )
            .prop_map(|(size, op, fetch, dst, src, off)| Insn::Atomic {
                size,
                op,
                fetch: fetch || matches!(op, AtomicOp::Xchg | AtomicOp::CmpXchg),
                dst,
                src,
                off,
            }),
        (-3i32..4).prop_map(|off| Insn::Call(CallTarget::Local(off))),
        (0i32..8).prop_map(|id| Insn::Call(CallTarget::Helper(id))),
        reg().prop_map(|reg| Insn::Callx { reg }),
        Just(Insn::Exit),
    ]
}

proptest! {
    #[test]
    fn never_panics(mut prog in proptest::collection::vec(insn(), 1..24), mem in proptest::collection::vec(any::<u8>(), 0..32)) {
        prog.push(Insn::Exit);
        prop_assume!(crate::isa::validate(&prog).is_ok());
        let mut mem = mem;
        let opts = Options { max_insns: Some(2_000), ..Default::default() };
        match exec(&prog, &mut mem, &opts) {
            Ok(_) => {}
            Err(e) => prop_assert!(!matches!(e, RunError::NotExecutable { .. } | RunError::Invalid { .. }), "{e}"),
        }
    }
}
