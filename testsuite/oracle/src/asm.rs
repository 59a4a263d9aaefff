//! Hand-written eBPF instructions for programs the tests load into the
//! kernel directly (no compiler between the test and the kernel): a small
//! builder with labels for forward jumps and callbacks.

use std::os::fd::{AsFd, AsRawFd};

/// One eBPF instruction (or the second slot of `lddw`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// `dst | src << 4`.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    pub fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: dst | (src << 4),
            off,
            imm,
        }
    }

    /// The 8 bytes of the instruction in host (= the kernel's) byte order.
    pub fn bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = self.regs;
        b[2..4].copy_from_slice(&self.off.to_ne_bytes());
        b[4..8].copy_from_slice(&self.imm.to_ne_bytes());
        b
    }
}

/// The bytes `BPF_PROG_LOAD` takes for `insns`.
pub fn encode(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(|i| i.bytes()).collect()
}

/// Builds a program; jumps and `BPF_PSEUDO_FUNC` loads name a [`label`]
/// that may come later.
///
/// [`label`]: Asm::label
#[derive(Default)]
pub struct Asm {
    pub insns: Vec<Insn>,
    fixups: Vec<(usize, &'static str)>,
    labels: Vec<(&'static str, usize)>,
}

impl Asm {
    fn push(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) -> &mut Self {
        self.insns.push(Insn::new(code, dst, src, off, imm));
        self
    }
    fn lddw(&mut self, dst: u8, src: u8, lo: i32, hi: i32) -> &mut Self {
        self.push(0x18, dst, src, 0, lo).push(0, 0, 0, 0, hi)
    }
    pub fn mov_imm(&mut self, dst: u8, imm: i32) -> &mut Self {
        self.push(0xb7, dst, 0, 0, imm)
    }
    pub fn mov(&mut self, dst: u8, src: u8) -> &mut Self {
        self.push(0xbf, dst, src, 0, 0)
    }
    pub fn add_imm(&mut self, dst: u8, imm: i32) -> &mut Self {
        self.push(0x07, dst, 0, 0, imm)
    }
    pub fn or_imm(&mut self, dst: u8, imm: i32) -> &mut Self {
        self.push(0x47, dst, 0, 0, imm)
    }
    pub fn add(&mut self, dst: u8, src: u8) -> &mut Self {
        self.push(0x0f, dst, src, 0, 0)
    }
    /// `dst = v` (64-bit immediate).
    pub fn ld64(&mut self, dst: u8, v: u64) -> &mut Self {
        self.lddw(dst, 0, v as u32 as i32, (v >> 32) as u32 as i32)
    }
    /// `dst = map` (`BPF_PSEUDO_MAP_FD`).
    pub fn ld_map(&mut self, dst: u8, map: &impl AsFd) -> &mut Self {
        self.lddw(dst, 1, map.as_fd().as_raw_fd(), 0)
    }
    /// `dst = &value[off]` of element 0 of an array map
    /// (`BPF_PSEUDO_MAP_VALUE`).
    pub fn ld_map_value(&mut self, dst: u8, map: &impl AsFd, off: i32) -> &mut Self {
        self.lddw(dst, 2, map.as_fd().as_raw_fd(), off)
    }
    /// `dst = &callback` (`BPF_PSEUDO_FUNC`) of the function at `label`.
    pub fn ld_func(&mut self, dst: u8, label: &'static str) -> &mut Self {
        self.fixups.push((self.insns.len(), label));
        self.lddw(dst, 4, 0, 0)
    }
    pub fn ldx64(&mut self, dst: u8, src: u8, off: i16) -> &mut Self {
        self.push(0x79, dst, src, off, 0)
    }
    pub fn stx64(&mut self, dst: u8, off: i16, src: u8) -> &mut Self {
        self.push(0x7b, dst, src, off, 0)
    }
    pub fn st8(&mut self, dst: u8, off: i16, imm: u8) -> &mut Self {
        self.push(0x72, dst, 0, off, imm as i32)
    }
    /// Call helper `id`.
    pub fn call(&mut self, id: i32) -> &mut Self {
        self.push(0x85, 0, 0, 0, id)
    }
    pub fn exit(&mut self) -> &mut Self {
        self.push(0x95, 0, 0, 0, 0)
    }
    /// `if dst == imm goto label`.
    pub fn jeq_imm(&mut self, dst: u8, imm: i32, label: &'static str) -> &mut Self {
        self.fixups.push((self.insns.len(), label));
        self.push(0x15, dst, 0, 0, imm)
    }
    /// `if dst != imm goto label`.
    pub fn jne_imm(&mut self, dst: u8, imm: i32, label: &'static str) -> &mut Self {
        self.fixups.push((self.insns.len(), label));
        self.push(0x55, dst, 0, 0, imm)
    }
    /// Name the next instruction.
    pub fn label(&mut self, name: &'static str) -> &mut Self {
        self.labels.push((name, self.insns.len()));
        self
    }
    /// Store `bytes` on the stack from `r10 - top` upwards, 8 bytes at a
    /// time (r1 is clobbered).
    pub fn stack_bytes(&mut self, top: i16, bytes: &[u8]) -> &mut Self {
        self.write_bytes(10, -top, bytes)
    }
    /// Store `bytes` at `reg + off` (r1 is clobbered).
    pub fn write_bytes(&mut self, reg: u8, off: i16, bytes: &[u8]) -> &mut Self {
        let mut words = bytes.chunks_exact(8);
        let mut at = off;
        for w in words.by_ref() {
            let v = u64::from_le_bytes(w.try_into().expect("8 bytes"));
            self.ld64(1, v).stx64(reg, at, 1);
            at += 8;
        }
        for &b in words.remainder() {
            self.st8(reg, at, b);
            at += 1;
        }
        self
    }
    /// Where `label` is (an instruction index).
    pub fn at(&self, name: &str) -> u32 {
        self.position(name) as u32
    }
    fn position(&self, name: &str) -> usize {
        self.labels
            .iter()
            .find(|l| l.0 == name)
            .unwrap_or_else(|| panic!("no label {name}"))
            .1
    }
    /// The instructions with jumps and function addresses resolved.
    pub fn finish(&self) -> Vec<Insn> {
        let mut out = self.insns.clone();
        for &(at, name) in &self.fixups {
            let rel = self.position(name) as i64 - at as i64 - 1;
            if out[at].code == 0x18 {
                out[at].imm = rel as i32;
            } else {
                out[at].off = rel as i16;
            }
        }
        out
    }
}
