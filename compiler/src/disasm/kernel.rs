//! The kernel's spelling of instructions, which both its verifier log and
//! `bpftool prog dump xlated` print: the opcode byte in parentheses, ALU and
//! store immediates in decimal, jump immediates in hex, memory operands as
//! `(r1 +8)`, branch targets as `pc+N`, helpers by name and id. Pseudo
//! `lddw` sources print as bpftool prints them (`map[id:N]`,
//! `map[id:N][0]+off`, `map[idx:N]+off`, `subprog[+N]`).

use super::llvm::{alu_symbol, cond_symbol, reg, stype, utype};
use crate::isa::{
    encode_insn, AluOp, AtomicOp, ByteOrder, CallTarget, Endian, Insn, LddwSrc, Size, Src,
};

/// The opcode byte of `insn`.
fn opcode(insn: &Insn) -> u8 {
    let mut bytes = Vec::with_capacity(16);
    encode_insn(insn, Endian::Little, &mut bytes);
    bytes[0]
}

fn size(size: Size, signed: bool) -> &'static str {
    if signed {
        stype(size)
    } else {
        utype(size)
    }
}

/// One instruction, opcode byte first (`insn` is never the lddw
/// placeholder here).
pub(super) fn format(insn: &Insn) -> String {
    format!("({:02x}) {}", opcode(insn), text(insn))
}

fn text(insn: &Insn) -> String {
    match *insn {
        Insn::Alu {
            width,
            op,
            dst,
            src,
        } => {
            // ALU immediates are decimal here, jump immediates hex.
            let s = match src {
                Src::Reg(r) => reg(r, width),
                Src::Imm(i) => i.to_string(),
            };
            match op {
                AluOp::MovSx(bits) => format!("{} = (s{bits}){s}", reg(dst, width)),
                _ => format!("{} {} {s}", reg(dst, width), alu_symbol(op)),
            }
        }
        Insn::Neg { width, dst } => format!("{0} = -{0}", reg(dst, width)),
        Insn::End { order, bits, dst } => {
            let name = match order {
                ByteOrder::ToLe => "le",
                ByteOrder::ToBe => "be",
                ByteOrder::Swap => "bswap",
            };
            format!("r{0} = {name}{bits} r{0}", dst.num())
        }
        Insn::Ja { off, long: false } => format!("goto pc{off:+}"),
        Insn::Ja { off, long: true } => format!("gotol pc{off:+}"),
        Insn::MayGoto { off } => format!("may_goto pc{off:+}"),
        Insn::Jmp {
            width,
            cond: c,
            dst,
            src,
            off,
        } => {
            let s = match src {
                Src::Reg(r) => reg(r, width),
                Src::Imm(i) => format!("{:#x}", i as u32),
            };
            format!(
                "if {} {} {s} goto pc{off:+}",
                reg(dst, width),
                cond_symbol(c)
            )
        }
        Insn::Call(CallTarget::Helper(id)) => match super::helper_name(id) {
            Some(name) => format!("call {name}#{id}"),
            None => format!("call unknown#{id}"),
        },
        Insn::Call(CallTarget::Local(imm)) => format!("call pc{imm:+}"),
        Insn::Call(CallTarget::Kfunc { btf_id, .. }) => format!("call kernel-function#{btf_id}"),
        Insn::Callx { reg } => format!("callx r{}", reg.num()),
        Insn::Exit => "exit".to_string(),
        Insn::Lddw { dst, src, imm } => {
            let (lo, hi) = Insn::lddw_halves(imm);
            let what = match src {
                LddwSrc::MapFd => format!("map[id:{}]", lo as u32),
                LddwSrc::MapValue => format!("map[id:{}][0]+{}", lo as u32, hi as u32),
                LddwSrc::MapIdxValue => format!("map[idx:{}]+{}", lo as u32, hi as u32),
                LddwSrc::Func => format!("subprog[{lo:+}]"),
                LddwSrc::Imm | LddwSrc::BtfId | LddwSrc::MapIdx => format!("{imm:#x}"),
            };
            format!("r{} = {what}", dst.num())
        }
        Insn::LddwHigh => String::new(),
        Insn::Ldx {
            size: sz,
            sx,
            dst,
            src,
            off,
        } => format!(
            "r{} = *({} *)(r{} {off:+})",
            dst.num(),
            size(sz, sx),
            src.num()
        ),
        Insn::St {
            size: sz,
            dst,
            off,
            imm,
        } => format!("*({} *)(r{} {off:+}) = {imm}", size(sz, false), dst.num()),
        Insn::Stx {
            size: sz,
            dst,
            src,
            off,
        } => format!(
            "*({} *)(r{} {off:+}) = r{}",
            size(sz, false),
            dst.num(),
            src.num()
        ),
        Insn::Atomic {
            size: sz,
            op,
            fetch,
            dst,
            src,
            off,
        } => {
            let mem = format!("({} *)(r{} {off:+})", size(sz, false), dst.num());
            let bits = if sz == Size::DW { "64" } else { "" };
            let s = src.num();
            match op {
                AtomicOp::Xchg => format!("r{s} = atomic{bits}_xchg({mem}, r{s})"),
                AtomicOp::CmpXchg => format!("r0 = atomic{bits}_cmpxchg({mem}, r0, r{s})"),
                _ if fetch => format!("r{s} = atomic{bits}_fetch_{}({mem}, r{s})", op.name()),
                _ => {
                    let sym = match op {
                        AtomicOp::Add => "+=",
                        AtomicOp::And => "&=",
                        AtomicOp::Or => "|=",
                        _ => "^=",
                    };
                    format!("lock *{mem} {sym} r{s}")
                }
            }
        }
        Insn::LdAbs { size: sz, imm } => format!("r0 = *({} *)skb[{imm}]", size(sz, false)),
        Insn::LdInd { size: sz, src, imm } => {
            format!("r0 = *({} *)skb[r{} + {imm}]", size(sz, false), src.num())
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::asm::assemble;
    use crate::disasm::{format_insn, Syntax};

    fn kernel(src: &str) -> Vec<String> {
        let insns = assemble(src).expect("assembles");
        insns
            .iter()
            .enumerate()
            .filter(|(_, i)| **i != crate::isa::Insn::LddwHigh)
            .map(|(pc, i)| format_insn(pc, i, Syntax::Kernel))
            .collect()
    }

    /// The spellings the load test (`tests/disasm_kernel.rs`) cannot reach:
    /// v4 encodings (newer than the bpftool it compares with), calls and the
    /// packet loads, written out from the kernel's printer's formats.
    #[test]
    fn spells_what_the_load_test_cannot_reach() {
        let src = "bswap16 %r1\nle32 %r2\nbe64 %r3\nmovsx832 %r4, %r5\nmovsx3264 %r1, %r2\n\
                   sdiv %r1, -3\nsmod32 %r2, %r3\nldxsb %r0, [%r1-2]\nja32 +3\ncall 1\ncall 999\n\
                   call local +2\nlddw %r1, 0x100000002\nldabsh 12\nldindw %r2, 4\nneg32 %r6\n\
                   lock add32 [%r1+4], %r2\nlock fetch xor [%r10-8], %r3\njsle32 %r1, -1, +1\nexit";
        assert_eq!(
            kernel(src),
            [
                "(d7) r1 = bswap16 r1",
                "(d4) r2 = le32 r2",
                "(dc) r3 = be64 r3",
                "(bc) w4 = (s8)w5",
                "(bf) r1 = (s32)r2",
                "(37) r1 s/= -3",
                "(9c) w2 s%= w3",
                "(91) r0 = *(s8 *)(r1 -2)",
                "(06) gotol pc+3",
                "(85) call bpf_map_lookup_elem#1",
                "(85) call unknown#999",
                "(85) call pc+2",
                "(18) r1 = 0x100000002",
                "(28) r0 = *(u16 *)skb[12]",
                "(40) r0 = *(u32 *)skb[r2 + 4]",
                "(84) w6 = -w6",
                "(c3) lock *(u32 *)(r1 +4) += r2",
                "(db) r3 = atomic64_fetch_xor((u64 *)(r10 -8), r3)",
                "(d6) if w1 s<= 0xffffffff goto pc+1",
                "(95) exit",
            ]
        );
    }
}
