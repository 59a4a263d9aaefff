//! A seeded generator of well-formed eBPF programs for differential testing
//! (interpreter against JIT) and future fuzz targets.
//!
//! Every program passes `isa::validate` and the codegen's function partition
//! (jumps stay in their function, each function ends with `exit`), always
//! terminates (loops count a register down to 0) and only computes with
//! values whose meaning is engine-independent:
//! - r9 holds the input pointer (copied from r1 in every function prologue)
//!   and is only used as a memory base; r10 likewise; pointer values never
//!   reach data registers, memory or r0.
//! - r8 is the loop counter (written only by loops and prologues).
//! - r0-r7 are data registers; every function defines the ones an eBPF
//!   callee does not inherit, and r1-r5 are redefined after every call.
//! - The stack is read only inside a 32-byte window the prologue initialises.
//!
//! Optionally (see [`Generated::may_fault`]) a few accesses are out of bounds,
//! local calls may nest deeper than the 8-frame limit, a helper is unknown or
//! [`FAIL_HELPER`] fails (stopping the run at the call).
//!
//! Some programs use maps ([`Generated::maps`], the maps of [`MAPS`]): map
//! lookups whose value pointer (in r0, and only there) is used for loads,
//! stores and atomics inside the value and then overwritten, updates and
//! deletes whose return codes are data, and tail calls through the prog
//! array into [`Generated::tail_targets`] (programs of their own, which may
//! tail call again, themselves included: the 33-call limit is reached).
//!
//! [`generate_verifiable`] leaves out what the kernel's verifier refuses
//! whatever the values (`callx`, dead code, deliberate faults, reads of
//! the argument registers the entry does not receive), so that most of its
//! programs verify as `syscall` programs.

use bpfc_compiler::isa::{
    AluOp, AtomicOp, ByteOrder, CallTarget, Insn, JmpCond, Reg, Size, Src, Width,
};

/// Length of the generated input buffer.
pub const INPUT_LEN: usize = 64;
/// Size of the initialised stack window.
const WINDOW: i16 = 32;
/// The input pointer register.
const PTR: Reg = Reg::R9;
/// The loop counter register.
const CTR: Reg = Reg::R8;

/// The helper id of a test helper that fails when r1 is odd (and returns
/// `r1 * 3` otherwise); the test's helper table provides it.
pub const FAIL_HELPER: i32 = 6;

/// The maps of a program with [`Generated::maps`], by index (lddw
/// `BPF_PSEUDO_MAP_IDX` imm): (name, type, key size, value size, max entries).
pub const MAPS: [(&str, MapKind, u32, u32, u32); 3] = [
    ("arr", MapKind::Array, 4, 16, 8),
    ("hash", MapKind::Hash, 4, 8, 16),
    ("progs", MapKind::ProgArray, 4, 4, 3),
];

/// The map families the generator uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    Array,
    Hash,
    ProgArray,
}

const ARR: u32 = 0;
const HASH: u32 = 1;
const PROGS: u32 = 2;

/// SplitMix64: small, seedable, good enough for test generation.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// The seed of case `index` of a run seeded with `base`.
pub fn case_seed(base: u64, index: u64) -> u64 {
    Rng::new(base ^ index.wrapping_mul(0xd1b5_4a32_d192_ed03)).next_u64()
}

/// One generated test program with its input.
#[derive(Clone, Debug)]
pub struct Generated {
    pub seed: u64,
    pub insns: Vec<Insn>,
    pub input: Vec<u8>,
    /// Whether the program was allowed out-of-bounds accesses or deep call
    /// chains (an engine fault is then an expected outcome).
    pub may_fault: bool,
    /// Whether the program (and its tail targets) use the maps of [`MAPS`].
    pub maps: bool,
    /// Programs for the prog array's slots 0.. (slot 2 stays empty).
    pub tail_targets: Vec<Vec<Insn>>,
}

/// A structured piece of code, flattened to slots by [`flatten`].
enum Item {
    Insn(Insn),
    /// `lddw dst, imm` (two slots).
    Lddw(Reg, u64),
    /// A conditional jump over `body` (taken: skip it).
    Skip {
        width: Width,
        cond: JmpCond,
        dst: Reg,
        src: Src,
        body: Vec<Item>,
    },
    /// `ja`/`gotol` over dead code.
    Jump {
        long: bool,
        body: Vec<Item>,
    },
    /// `mov r8, n; body; sub r8, 1; jne r8, 0, <body>`.
    Loop {
        count: i32,
        width: Width,
        body: Vec<Item>,
    },
    /// Local call of function `func`.
    Call(usize),
    /// `lddw dst, map` (`BPF_PSEUDO_MAP_IDX`, two slots).
    MapRef(Reg, u32),
}

fn slots(items: &[Item]) -> usize {
    items.iter().map(item_slots).sum()
}

fn item_slots(item: &Item) -> usize {
    match item {
        Item::Insn(_) | Item::Call(_) => 1,
        Item::Lddw(..) | Item::MapRef(..) => 2,
        Item::Skip { body, .. } | Item::Jump { body, .. } => 1 + slots(body),
        Item::Loop { body, .. } => 3 + slots(body),
    }
}

fn flatten(items: &[Item], starts: &[usize], out: &mut Vec<Insn>) {
    for item in items {
        match item {
            Item::Insn(i) => out.push(*i),
            Item::Lddw(dst, imm) => {
                out.push(Insn::Lddw {
                    dst: *dst,
                    src: bpfc_compiler::isa::LddwSrc::Imm,
                    imm: *imm,
                });
                out.push(Insn::LddwHigh);
            }
            Item::MapRef(dst, idx) => {
                out.push(Insn::Lddw {
                    dst: *dst,
                    src: bpfc_compiler::isa::LddwSrc::MapIdx,
                    imm: *idx as u64,
                });
                out.push(Insn::LddwHigh);
            }
            Item::Skip {
                width,
                cond,
                dst,
                src,
                body,
            } => {
                out.push(Insn::Jmp {
                    width: *width,
                    cond: *cond,
                    dst: *dst,
                    src: *src,
                    off: slots(body) as i16,
                });
                flatten(body, starts, out);
            }
            Item::Jump { long, body } => {
                out.push(Insn::Ja {
                    off: slots(body) as i32,
                    long: *long,
                });
                flatten(body, starts, out);
            }
            Item::Loop { count, width, body } => {
                out.push(mov_imm(Width::W64, CTR, *count));
                flatten(body, starts, out);
                out.push(Insn::Alu {
                    width: *width,
                    op: AluOp::Sub,
                    dst: CTR,
                    src: Src::Imm(1),
                });
                out.push(Insn::Jmp {
                    width: *width,
                    cond: JmpCond::Ne,
                    dst: CTR,
                    src: Src::Imm(0),
                    off: -(slots(body) as i16 + 2),
                });
            }
            Item::Call(f) => {
                let pc = out.len() as i64;
                out.push(Insn::Call(CallTarget::Local(
                    (starts[*f] as i64 - pc - 1) as i32,
                )));
            }
        }
    }
}

fn mov_imm(width: Width, dst: Reg, imm: i32) -> Insn {
    Insn::Alu {
        width,
        op: AluOp::Mov,
        dst,
        src: Src::Imm(imm),
    }
}

fn reg(n: u8) -> Reg {
    Reg::new(n).unwrap_or(Reg::R0)
}

/// Generator state for one program.
struct Gen {
    rng: Rng,
    nfuncs: usize,
    /// Stack window start (negative offset from r10, multiple of 8).
    window: i16,
    may_fault: bool,
    /// Local calls emitted in the current function (at most 2, bounding the
    /// number of calls a program makes).
    calls: u32,
    /// Only constructs the verifier can accept ([`generate_verifiable`]).
    verifiable: bool,
    /// Emit map helper calls, value accesses and tail calls.
    maps: bool,
}

const IMM32: [i32; 12] = [0, 1, -1, 2, 7, 31, 32, 63, 64, i32::MIN, i32::MAX, 0x7fff];
const IMM64: [u64; 10] = [
    0,
    1,
    u64::MAX,
    i64::MIN as u64,
    i64::MAX as u64,
    0x8000_0000,
    0xffff_ffff,
    0xffff_ffff_8000_0000,
    0x1_0000_0000,
    0x0123_4567_89ab_cdef,
];

impl Gen {
    fn dst(&mut self) -> Reg {
        reg(self.rng.below(8) as u8)
    }

    fn src_reg(&mut self) -> Reg {
        reg(self.rng.below(9) as u8)
    }

    fn imm32(&mut self) -> i32 {
        if self.rng.chance(50) {
            self.rng.pick(&IMM32)
        } else if self.rng.chance(50) {
            self.rng.range(-300, 300) as i32
        } else {
            self.rng.next_u64() as i32
        }
    }

    fn imm64(&mut self) -> u64 {
        if self.rng.chance(50) {
            self.rng.pick(&IMM64)
        } else {
            self.rng.next_u64()
        }
    }

    fn src(&mut self) -> Src {
        if self.rng.chance(50) {
            Src::Imm(self.imm32())
        } else {
            Src::Reg(self.src_reg())
        }
    }

    fn width(&mut self) -> Width {
        if self.rng.chance(50) {
            Width::W32
        } else {
            Width::W64
        }
    }

    fn size(&mut self) -> Size {
        self.rng.pick(&[Size::B, Size::H, Size::W, Size::DW])
    }

    /// Define a data register with a random value.
    fn define(&mut self, dst: Reg, out: &mut Vec<Item>) {
        if self.rng.chance(40) {
            out.push(Item::Lddw(dst, self.imm64()));
        } else {
            let w = self.width();
            let imm = self.imm32();
            out.push(Item::Insn(mov_imm(w, dst, imm)));
        }
    }

    fn alu(&mut self) -> Item {
        let width = self.width();
        let dst = self.dst();
        Item::Insn(match self.rng.below(20) {
            0 => Insn::Neg { width, dst },
            1 => {
                let (order, bits) = match self.rng.below(3) {
                    0 => (ByteOrder::ToLe, self.rng.pick(&[16u8, 32, 64])),
                    1 => (ByteOrder::ToBe, self.rng.pick(&[16u8, 32, 64])),
                    _ => (ByteOrder::Swap, self.rng.pick(&[16u8, 32, 64])),
                };
                Insn::End { order, bits, dst }
            }
            2 => {
                let bits = match width {
                    Width::W32 => self.rng.pick(&[8u8, 16]),
                    Width::W64 => self.rng.pick(&[8u8, 16, 32]),
                };
                Insn::Alu {
                    width,
                    op: AluOp::MovSx(bits),
                    dst,
                    src: Src::Reg(self.src_reg()),
                }
            }
            3..=5 => {
                let op = self.rng.pick(&[AluOp::Lsh, AluOp::Rsh, AluOp::Arsh]);
                let src = if self.rng.chance(50) {
                    Src::Imm(self.rng.range(0, 200) as i32)
                } else {
                    Src::Reg(self.src_reg())
                };
                Insn::Alu {
                    width,
                    op,
                    dst,
                    src,
                }
            }
            6..=9 => {
                let op = self
                    .rng
                    .pick(&[AluOp::Div, AluOp::SDiv, AluOp::Mod, AluOp::SMod]);
                let src = if self.rng.chance(60) {
                    Src::Imm(self.rng.pick(&[0, -1, 1, i32::MIN, 3, -7, i32::MAX]))
                } else {
                    Src::Reg(self.src_reg())
                };
                Insn::Alu {
                    width,
                    op,
                    dst,
                    src,
                }
            }
            _ => {
                let op = self.rng.pick(&[
                    AluOp::Add,
                    AluOp::Sub,
                    AluOp::Mul,
                    AluOp::Or,
                    AluOp::And,
                    AluOp::Xor,
                    AluOp::Mov,
                ]);
                Insn::Alu {
                    width,
                    op,
                    dst,
                    src: self.src(),
                }
            }
        })
    }

    /// A memory operand: base register and offset for an access of `size`
    /// bytes; `align` forces natural alignment relative to the base.
    fn addr(&mut self, size: usize, align: bool) -> (Reg, i16) {
        let size_i = size as i16;
        let oob = self.may_fault && self.rng.chance(4);
        if self.rng.chance(50) {
            let off = if oob {
                if self.rng.chance(50) {
                    INPUT_LEN as i16 - size_i + self.rng.range(1, 16) as i16
                } else {
                    -(self.rng.range(1, 16) as i16)
                }
            } else {
                self.rng.range(0, (INPUT_LEN - size) as i64) as i16
            };
            let off = if align && !oob {
                off - off % size_i
            } else {
                off
            };
            (PTR, off)
        } else {
            let off = if oob {
                -512 - self.rng.range(1, 16) as i16
            } else {
                self.window + self.rng.range(0, (WINDOW - size_i) as i64) as i16
            };
            let off = if align && !oob {
                off - off.rem_euclid(size_i)
            } else {
                off
            };
            (Reg::FP, off)
        }
    }

    fn mem(&mut self) -> Item {
        let size = self.size();
        let align = self.rng.chance(50);
        match self.rng.below(4) {
            0 => {
                let (src, off) = self.addr(size.bytes(), align);
                let sx = size != Size::DW && self.rng.chance(30);
                Item::Insn(Insn::Ldx {
                    size,
                    sx,
                    dst: self.dst(),
                    src,
                    off,
                })
            }
            1 => {
                let (dst, off) = self.addr(size.bytes(), align);
                Item::Insn(Insn::St {
                    size,
                    dst,
                    off,
                    imm: self.imm32(),
                })
            }
            2 => {
                let (dst, off) = self.addr(size.bytes(), align);
                Item::Insn(Insn::Stx {
                    size,
                    dst,
                    src: self.src_reg(),
                    off,
                })
            }
            _ => {
                let size = if self.rng.chance(50) {
                    Size::W
                } else {
                    Size::DW
                };
                let (dst, off) = self.addr(size.bytes(), true);
                let op = self.rng.pick(&[
                    AtomicOp::Add,
                    AtomicOp::Or,
                    AtomicOp::And,
                    AtomicOp::Xor,
                    AtomicOp::Xchg,
                    AtomicOp::CmpXchg,
                ]);
                let fetch = matches!(op, AtomicOp::Xchg | AtomicOp::CmpXchg) || self.rng.chance(50);
                Item::Insn(Insn::Atomic {
                    size,
                    op,
                    fetch,
                    dst,
                    src: self.dst(),
                    off,
                })
            }
        }
    }

    /// After a call r1-r5 are undefined in eBPF: give them values again.
    fn redefine_args(&mut self, out: &mut Vec<Item>) {
        for r in 1..=5 {
            let (w, imm) = (self.width(), self.imm32());
            out.push(Item::Insn(mov_imm(w, reg(r), imm)));
        }
    }

    fn helper_call(&mut self, out: &mut Vec<Item>) {
        if self.may_fault && self.rng.chance(5) {
            let id = self.rng.pick(&[0, 7, 1000, -1]);
            out.push(Item::Insn(Insn::Call(CallTarget::Helper(id))));
        } else if !self.verifiable && self.rng.chance(15) {
            // The failing helper: fails only for an odd r1, which only
            // programs allowed to fault pass.
            let mut arg = self.imm32() & !1;
            if self.may_fault && self.rng.chance(30) {
                arg |= 1;
            }
            out.push(Item::Insn(mov_imm(Width::W64, Reg::R1, arg)));
            out.push(Item::Insn(Insn::Call(CallTarget::Helper(FAIL_HELPER))));
        } else if self.verifiable || self.rng.chance(50) {
            out.push(Item::Insn(Insn::Call(CallTarget::Helper(5))));
        } else {
            let r = self.dst();
            out.push(Item::Insn(mov_imm(Width::W64, r, 5)));
            out.push(Item::Insn(Insn::Callx { reg: r }));
        }
        self.redefine_args(out);
    }

    /// `*(u32 *)(r10 + window + 24) = key; r2 = r10 + window + 24`, the key
    /// of a map call (in the stack window).
    fn key_arg(&mut self, max: u32, out: &mut Vec<Item>) {
        let off = self.window + 24;
        let key = if self.rng.chance(80) {
            self.rng.below(max as u64) as i32
        } else {
            self.rng.pick(&[max as i32, max as i32 + 1, -1, i32::MAX])
        };
        out.push(Item::Insn(Insn::St {
            size: Size::W,
            dst: Reg::FP,
            off,
            imm: key,
        }));
        out.push(Item::Insn(Insn::Alu {
            width: Width::W64,
            op: AluOp::Mov,
            dst: Reg::R2,
            src: Src::Reg(Reg::FP),
        }));
        out.push(Item::Insn(Insn::Alu {
            width: Width::W64,
            op: AluOp::Add,
            dst: Reg::R2,
            src: Src::Imm(off as i32),
        }));
    }

    /// A map helper call: a lookup whose value is accessed, an update or a
    /// delete (return codes are data), on the array or the hash map.
    fn map_call(&mut self, out: &mut Vec<Item>) {
        let map = if self.rng.chance(50) { ARR } else { HASH };
        let (_, _, _, value_size, max) = MAPS[map as usize];
        out.push(Item::MapRef(Reg::R1, map));
        let key_max = if map == HASH { max + 4 } else { max };
        self.key_arg(key_max, out);
        match self.rng.below(4) {
            0 | 1 => {
                out.push(Item::Insn(Insn::Call(CallTarget::Helper(1))));
                self.redefine_args(out);
                let mut body = Vec::new();
                for _ in 0..self.rng.range(1, 3) {
                    body.push(self.value_access(value_size));
                }
                out.push(Item::Skip {
                    width: Width::W64,
                    cond: JmpCond::Eq,
                    dst: Reg::R0,
                    src: Src::Imm(0),
                    body,
                });
                // The pointer goes: r0 is data again.
                let imm = self.imm32();
                out.push(Item::Insn(mov_imm(Width::W64, Reg::R0, imm)));
            }
            2 => {
                out.push(Item::Insn(Insn::Alu {
                    width: Width::W64,
                    op: AluOp::Mov,
                    dst: Reg::R3,
                    src: Src::Reg(Reg::FP),
                }));
                out.push(Item::Insn(Insn::Alu {
                    width: Width::W64,
                    op: AluOp::Add,
                    dst: Reg::R3,
                    src: Src::Imm(self.window as i32),
                }));
                let flags = self.rng.pick(&[0, 0, 1, 2, 4]);
                out.push(Item::Insn(mov_imm(Width::W64, Reg::R4, flags)));
                out.push(Item::Insn(Insn::Call(CallTarget::Helper(2))));
                self.redefine_args(out);
            }
            _ => {
                out.push(Item::Insn(Insn::Call(CallTarget::Helper(3))));
                self.redefine_args(out);
            }
        }
    }

    /// A load, store or atomic at `r0 + off` inside a map value (past its
    /// end, rarely, in programs allowed to fault); data in r1-r7.
    fn value_access(&mut self, value_size: u32) -> Item {
        let kind = self.rng.below(4);
        let size = if kind < 3 {
            self.size()
        } else if value_size.is_multiple_of(8) && self.rng.chance(50) {
            Size::DW
        } else {
            Size::W
        };
        let n = size.bytes() as i16;
        let vs = value_size as i16;
        let off = if self.may_fault && self.rng.chance(5) {
            vs - n + self.rng.range(1, 8) as i16
        } else {
            let o = self.rng.range(0, (vs - n) as i64) as i16;
            o - o % n
        };
        let data = reg(self.rng.range(1, 7) as u8);
        Item::Insn(match kind {
            0 => Insn::Ldx {
                size,
                sx: false,
                dst: data,
                src: Reg::R0,
                off,
            },
            1 => Insn::St {
                size,
                dst: Reg::R0,
                off,
                imm: self.imm32(),
            },
            2 => Insn::Stx {
                size,
                dst: Reg::R0,
                src: data,
                off,
            },
            _ => Insn::Atomic {
                size,
                op: self
                    .rng
                    .pick(&[AtomicOp::Add, AtomicOp::Xor, AtomicOp::Xchg]),
                fetch: true,
                dst: Reg::R0,
                src: data,
                off,
            },
        })
    }

    /// `bpf_tail_call(ctx, progs, index)`: slots 0 and 1 hold programs (when
    /// generated), 2 is empty, 3 and up are out of range. On a fall
    /// through r0-r5 are data again.
    fn tail_call(&mut self, out: &mut Vec<Item>) {
        out.push(Item::Insn(Insn::Alu {
            width: Width::W64,
            op: AluOp::Mov,
            dst: Reg::R1,
            src: Src::Reg(PTR),
        }));
        out.push(Item::MapRef(Reg::R2, PROGS));
        let index = self.rng.pick(&[0, 0, 1, 1, 2, 3, -1]);
        out.push(Item::Insn(mov_imm(Width::W64, Reg::R3, index)));
        out.push(Item::Insn(Insn::Call(CallTarget::Helper(12))));
        let imm = self.imm32();
        out.push(Item::Insn(mov_imm(Width::W64, Reg::R0, imm)));
        self.redefine_args(out);
    }

    /// A block of `n` items in function `func`; `in_loop` forbids loops and
    /// local calls (keeps run time bounded).
    fn block(&mut self, func: usize, n: usize, depth: u32, in_loop: bool, out: &mut Vec<Item>) {
        for _ in 0..n {
            match self.rng.below(100) {
                0..=39 => out.push(self.alu()),
                40..=41 => {
                    let r = self.dst();
                    self.define(r, out)
                }
                42..=61 => out.push(self.mem()),
                62..=71 if depth < 3 => {
                    let mut body = Vec::new();
                    let len = self.rng.range(0, 6) as usize;
                    self.block(func, len, depth + 1, in_loop, &mut body);
                    if self.rng.chance(5) {
                        body.push(Item::Insn(Insn::Exit));
                    }
                    let src = self.src();
                    out.push(Item::Skip {
                        width: self.width(),
                        cond: self.rng.pick(&JmpCond::ALL),
                        dst: self.src_reg(),
                        src,
                        body,
                    });
                }
                72..=73 if depth < 3 && !self.verifiable => {
                    let mut body = Vec::new();
                    let len = self.rng.range(0, 3) as usize;
                    self.block(func, len, depth + 1, in_loop, &mut body);
                    out.push(Item::Jump {
                        long: self.rng.chance(30),
                        body,
                    });
                }
                74..=78 if !in_loop && depth < 2 => {
                    let mut body = Vec::new();
                    let len = self.rng.range(1, 8) as usize;
                    self.block(func, len, depth + 1, true, &mut body);
                    out.push(Item::Loop {
                        count: self.rng.range(1, 12) as i32,
                        width: self.width(),
                        body,
                    });
                }
                79..=83 => {
                    if self.maps && self.rng.chance(60) {
                        self.map_call(out)
                    } else {
                        self.helper_call(out)
                    }
                }
                90..=92 if self.maps && func == 0 && !in_loop => self.tail_call(out),
                93..=98 if self.maps => self.map_call(out),
                84..=89 if !in_loop && func + 1 < self.nfuncs && self.calls < 2 => {
                    self.calls += 1;
                    let target = if self.rng.chance(60) {
                        func + 1
                    } else {
                        self.rng.range(func as i64 + 1, self.nfuncs as i64 - 1) as usize
                    };
                    out.push(Item::Insn(Insn::Alu {
                        width: Width::W64,
                        op: AluOp::Mov,
                        dst: Reg::R1,
                        src: Src::Reg(PTR),
                    }));
                    out.push(Item::Call(target));
                    self.redefine_args(out);
                }
                _ => out.push(self.alu()),
            }
        }
    }

    fn function(&mut self, func: usize) -> Vec<Item> {
        self.calls = 0;
        let mut out = vec![Item::Insn(Insn::Alu {
            width: Width::W64,
            op: AluOp::Mov,
            dst: PTR,
            src: Src::Reg(Reg::R1),
        })];
        // Registers a callee does not inherit, and r1 (the pointer); the
        // entry of a verifiable program receives only r1.
        let entry_args: &[u8] = if self.verifiable && func == 0 {
            &[2, 3, 4, 5]
        } else {
            &[]
        };
        for &r in [0u8, 1, 6, 7].iter().chain(entry_args) {
            self.define(reg(r), &mut out);
        }
        out.push(Item::Insn(mov_imm(Width::W64, CTR, 0)));
        // Initialise the stack window.
        for i in 0..WINDOW / 8 {
            let off = self.window + 8 * i;
            if self.rng.chance(50) {
                out.push(Item::Insn(Insn::St {
                    size: Size::DW,
                    dst: Reg::FP,
                    off,
                    imm: self.imm32(),
                }));
            } else {
                out.push(Item::Insn(Insn::Stx {
                    size: Size::DW,
                    dst: Reg::FP,
                    src: self.src_reg(),
                    off,
                }));
            }
        }
        // A first call to the next function keeps deep chains likely.
        let pct = if self.may_fault { 90 } else { 70 };
        if func + 1 < self.nfuncs && self.rng.chance(pct) {
            self.calls += 1;
            out.push(Item::Insn(Insn::Alu {
                width: Width::W64,
                op: AluOp::Mov,
                dst: Reg::R1,
                src: Src::Reg(PTR),
            }));
            out.push(Item::Call(func + 1));
            self.redefine_args(&mut out);
        }
        let n = self.rng.range(2, 9) as usize;
        self.block(func, n, 0, false, &mut out);
        if func == 0 {
            // Fold every data register into r0 so that a wrong value anywhere
            // shows in the result: r0 = r0 * K + rN.
            for r in 1..=8 {
                out.push(Item::Insn(Insn::Alu {
                    width: Width::W64,
                    op: AluOp::Mul,
                    dst: Reg::R0,
                    src: Src::Imm(0x2f0b_3a49),
                }));
                out.push(Item::Insn(Insn::Alu {
                    width: Width::W64,
                    op: AluOp::Add,
                    dst: Reg::R0,
                    src: Src::Reg(reg(r)),
                }));
            }
        }
        out.push(Item::Insn(Insn::Exit));
        out
    }
}

/// Generate the program of `seed`.
pub fn generate(seed: u64) -> Generated {
    generate_with(seed, false)
}

/// Generate the program of `seed` from constructs the verifier can accept
/// (see the module documentation): no deliberate faults.
pub fn generate_verifiable(seed: u64) -> Generated {
    generate_with(seed, true)
}

fn generate_with(seed: u64, verifiable: bool) -> Generated {
    let mut rng = Rng::new(seed);
    let may_fault = rng.chance(15) && !verifiable;
    let nfuncs = if may_fault && rng.chance(50) {
        // Deep chains: 5-10 functions reach or pass the 8-frame limit.
        rng.range(5, 10) as usize
    } else if rng.chance(60) {
        1
    } else {
        rng.range(2, 4) as usize
    };
    let window = -(WINDOW * rng.range(1, 16) as i16);
    let mut input = vec![0u8; INPUT_LEN];
    for b in input.iter_mut() {
        *b = rng.next_u64() as u8;
    }
    let maps = rng.chance(30) && !verifiable;
    let mut g = Gen {
        rng,
        nfuncs,
        window,
        may_fault,
        calls: 0,
        verifiable,
        maps,
    };
    let insns = program(&mut g);
    // Tail targets: single-function programs with the same maps.
    let mut tail_targets = Vec::new();
    if maps {
        g.nfuncs = 1;
        for _ in 0..g.rng.range(0, 2) {
            tail_targets.push(program(&mut g));
        }
    }
    Generated {
        seed,
        insns,
        input,
        may_fault,
        maps,
        tail_targets,
    }
}

/// The functions of one program, flattened.
fn program(g: &mut Gen) -> Vec<Insn> {
    let funcs: Vec<Vec<Item>> = (0..g.nfuncs).map(|f| g.function(f)).collect();
    let mut starts = Vec::with_capacity(g.nfuncs);
    let mut at = 0;
    for f in &funcs {
        starts.push(at);
        at += slots(f);
    }
    let mut insns = Vec::with_capacity(at);
    for f in &funcs {
        flatten(f, &starts, &mut insns);
    }
    insns
}

#[cfg(test)]
mod tests {
    use super::*;
    use bpfc_compiler::isa;

    #[test]
    fn generated_programs_validate() {
        for seed in 0..500 {
            let g = generate(seed);
            assert!(isa::validate(&g.insns).is_ok(), "seed {seed}");
            for t in &g.tail_targets {
                assert!(isa::validate(t).is_ok(), "seed {seed} tail target");
            }
        }
    }

    #[test]
    fn generation_is_reproducible() {
        assert_eq!(generate(42).insns, generate(42).insns);
        assert_eq!(generate(42).input, generate(42).input);
    }
}
