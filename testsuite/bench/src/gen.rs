//! A generated straight-line-and-branchy program of exactly N instructions,
//! for JIT compile-time measurement: register inits, then random 64/32-bit
//! ALU operations (immediate and register operands, no division, immediate
//! shifts only) and forward conditional jumps over 1-8 instructions, then
//! `exit`. Every engine accepts it, and its result is cross-checked.

use crate::programs::Rng;

fn insn(op: u8, dst: u8, src: u8, off: i16, imm: i32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = op;
    b[1] = (src << 4) | dst;
    b[2..4].copy_from_slice(&off.to_le_bytes());
    b[4..8].copy_from_slice(&imm.to_le_bytes());
    b
}

/// `n` (>= 12) instructions as little-endian bytecode.
pub fn branchy_program(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n * 8);
    // mov64 rK, imm for r0..r9
    for r in 0..10u8 {
        out.extend(insn(0xb7, r, 0, 0, rng.next_u64() as i32));
    }
    // ALU op codes (upper nibble) without div/mod/neg/end: add sub mul or and lsh rsh xor mov arsh.
    const ALU: [u8; 10] = [0x00, 0x10, 0x20, 0x40, 0x50, 0x60, 0x70, 0xa0, 0xb0, 0xc0];
    // Conditional jump codes: jeq jgt jge jset jne jsgt jsge jlt jle jslt jsle.
    const JMP: [u8; 11] = [
        0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xa0, 0xb0, 0xc0, 0xd0,
    ];
    let body_end = n - 1; // the last slot is exit
    let mut pc = 10;
    while pc < body_end {
        let remaining = body_end - pc;
        let dst = rng.below(10) as u8;
        let src = rng.below(10) as u8;
        if rng.below(5) == 0 && remaining > 1 {
            let skip = 1 + rng.below(8.min(remaining as u64 - 1)) as i16;
            let code = JMP[rng.below(JMP.len() as u64) as usize];
            if rng.below(2) == 0 {
                out.extend(insn(0x05 | code, dst, 0, skip, rng.next_u64() as i32));
            } else {
                out.extend(insn(0x0d | code, dst, src, skip, 0));
            }
        } else {
            let code = ALU[rng.below(ALU.len() as u64) as usize];
            let class = if rng.below(3) == 0 { 0x04 } else { 0x07 }; // alu32 / alu64
            let is_shift = matches!(code, 0x60 | 0x70 | 0xc0);
            if is_shift {
                let bits = if class == 0x04 { 32 } else { 64 };
                out.extend(insn(class | code, dst, 0, 0, rng.below(bits) as i32));
            } else if rng.below(2) == 0 {
                out.extend(insn(class | code, dst, 0, 0, rng.next_u64() as i32));
            } else {
                out.extend(insn(class | 0x08 | code, dst, src, 0, 0));
            }
        }
        pc += 1;
    }
    out.extend(insn(0x95, 0, 0, 0, 0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_exact_length_and_decodes() {
        let p = branchy_program(4000, 9);
        assert_eq!(p.len(), 4000 * 8);
        let insns =
            bpfc_compiler::isa::decode_program(&p, bpfc_compiler::isa::Endian::Little).unwrap();
        assert_eq!(insns.len(), 4000);
    }
}
