//! Random comparison trees, the shape clang gives a `switch` (and many
//! that it never writes), run in the interpreter and in JIT code on values
//! around every constant they compare with. JIT code turns most of them
//! into jump tables (`translate/switch.rs`); whether it does or not, every
//! input must reach the same leaf.

use bpfc_compiler::codegen::{jit::JitProgram, CodegenOptions, Dumps};
use bpfc_compiler::interp;
use bpfc_compiler::isa::{Endian, Insn, JmpCond, Reg, Size, Src, Width};
use bpfc_runtime::{ExecContext, HelperTable};
use bpfc_testsuite::gen::Rng;

const TREES: u64 = 400;

struct Tree {
    insns: Vec<Insn>,
    /// Every constant compared with (probes go around each).
    constants: Vec<i32>,
}

fn mov(dst: Reg, imm: i32) -> Insn {
    Insn::Alu {
        width: Width::W64,
        op: bpfc_compiler::isa::AluOp::Mov,
        dst,
        src: Src::Imm(imm),
    }
}

/// A tree as chains: each chain is a run of comparisons, each falling
/// through to the next, ending in a leaf; a comparison's jump goes to the
/// start of another chain (a subtree) or to a leaf already made.
struct Chain {
    nodes: Vec<(Width, JmpCond, Reg, i32, Target)>,
    leaf: i32,
}

#[derive(Clone, Copy)]
enum Target {
    Chain(usize),
    /// A leaf by id (0: the shared one before the tree).
    Leaf(i32),
}

struct Shape<'a> {
    rng: &'a mut Rng,
    chains: Vec<Chain>,
    leaves: Vec<i32>,
    width: Width,
    pool: Vec<i32>,
}

impl Shape<'_> {
    /// A chain (and the subtrees it jumps to), returning its index.
    fn chain(&mut self, depth: u32) -> usize {
        let at = self.chains.len();
        self.chains.push(Chain {
            nodes: Vec::new(),
            leaf: 0,
        });
        let conds: Vec<JmpCond> = JmpCond::ALL
            .into_iter()
            .filter(|c| *c != JmpCond::Set)
            .collect();
        for _ in 0..self.rng.range(1, 4) {
            // Now and then another register's or width's test, which the
            // recovery must leave to branches.
            let (w, reg) = if self.rng.chance(3) {
                (Width::W64, Reg::R3)
            } else if self.rng.chance(3) {
                (
                    match self.width {
                        Width::W64 => Width::W32,
                        Width::W32 => Width::W64,
                    },
                    Reg::R2,
                )
            } else {
                (self.width, Reg::R2)
            };
            let cond = conds[self.rng.below(conds.len() as u64) as usize];
            let k = self.pool[self.rng.below(self.pool.len() as u64) as usize];
            let target = if depth == 0 || self.rng.chance(20) {
                Target::Leaf(self.leaves[self.rng.below(self.leaves.len() as u64) as usize])
            } else {
                Target::Chain(self.chain(depth - 1))
            };
            self.chains[at].nodes.push((w, cond, reg, k, target));
        }
        let id = self.leaves.len() as i32;
        self.leaves.push(id);
        self.chains[at].leaf = id;
        at
    }
}

/// A tree: read r2 from the input, then compare it with constants. The
/// chains are laid out in random order behind a jump to the root's, so
/// inner nodes and leaves also sit before the root, and a shared leaf
/// before them all.
fn generate(rng: &mut Rng) -> Tree {
    let width = if rng.chance(30) {
        Width::W32
    } else {
        Width::W64
    };
    // Most trees test dense small constants, as a switch's do; the others
    // mix in edge values and random ones (sparse: left as branches).
    let dense = rng.chance(70);
    let pool: Vec<i32> = (0..rng.range(3, 12))
        .map(|_| match rng.below(if dense { 2 } else { 4 }) {
            0 => rng.range(-3, 3) as i32,
            1 => rng.range(0, 64) as i32,
            2 => [i32::MIN, i32::MAX, -1, 1 << 20][rng.below(4) as usize],
            _ => rng.next_u64() as i32,
        })
        .collect();
    let depth = rng.range(2, 4) as u32;
    let mut shape = Shape {
        rng,
        chains: Vec::new(),
        leaves: vec![0],
        width,
        pool,
    };
    shape.chain(depth);
    let Shape {
        rng, chains, pool, ..
    } = shape;
    let mut order: Vec<usize> = (0..chains.len()).collect();
    if rng.chance(50) {
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
    }
    // ldxdw r2, [r1]; ja <root chain>; shared leaf; chains.
    let mut insns = vec![
        Insn::Ldx {
            size: Size::DW,
            sx: false,
            dst: Reg::R2,
            src: Reg::R1,
            off: 0,
        },
        Insn::Ja {
            off: 0,
            long: false,
        },
        mov(Reg::R0, 1000),
        Insn::Exit,
    ];
    let mut chain_at = vec![0; chains.len()];
    let mut leaf_at = std::collections::BTreeMap::from([(0, 2)]);
    let mut jumps = Vec::new();
    for &c in &order {
        chain_at[c] = insns.len();
        for &(width, cond, dst, k, target) in &chains[c].nodes {
            jumps.push((insns.len(), target));
            insns.push(Insn::Jmp {
                width,
                cond,
                dst,
                src: Src::Imm(k),
                off: 0,
            });
        }
        leaf_at.insert(chains[c].leaf, insns.len());
        insns.push(mov(Reg::R0, chains[c].leaf + 1));
        insns.push(Insn::Exit);
    }
    let rel = |from: usize, to: usize| (to as i64 - from as i64 - 1) as i16;
    insns[1] = Insn::Ja {
        off: rel(1, chain_at[0]) as i32,
        long: false,
    };
    for (pc, target) in jumps {
        let to = match target {
            Target::Chain(c) => chain_at[c],
            Target::Leaf(id) => leaf_at[&id],
        };
        if let Insn::Jmp { ref mut off, .. } = insns[pc] {
            *off = rel(pc, to);
        }
    }
    Tree {
        insns,
        constants: pool,
    }
}

fn probes(constants: &[i32], rng: &mut Rng) -> Vec<u64> {
    let mut v = vec![
        0,
        1,
        u64::MAX,
        1 << 63,
        (1 << 63) - 1,
        1 << 31,
        u32::MAX as u64,
    ];
    for &k in constants {
        for d in [-1i64, 0, 1] {
            v.push((k as i64).wrapping_add(d) as u64);
            v.push((k as u32 as i64 + d) as u64);
            v.push(0xdead_0000_0000_0000 | (k as u32 as i64 + d) as u64);
        }
    }
    v.extend((0..8).map(|_| rng.next_u64()));
    v
}

#[test]
fn interpreter_and_jit_agree_on_random_trees() {
    let helpers = HelperTable::new();
    let mut rng = Rng::new(0x5717c4);
    let mut recovered = 0;
    for case in 0..TREES {
        let tree = generate(&mut rng);
        bpfc_compiler::isa::validate(&tree.insns).expect("generated trees are valid");
        let mut dumps = Dumps {
            clif: Some(String::new()),
            native: None,
        };
        let opts = CodegenOptions::default();
        let jit = JitProgram::compile(
            &tree.insns,
            Endian::Little,
            &helpers,
            &opts,
            Some(&mut dumps),
        )
        .unwrap_or_else(|e| panic!("case {case}: {e}"));
        recovered += usize::from(dumps.clif.unwrap_or_default().contains("br_table"));
        let listing = bpfc_compiler::disasm::disassemble(&tree.insns, Default::default());
        for value in probes(&tree.constants, &mut rng) {
            let mut mem = value.to_le_bytes();
            let want = interp::run(
                &tree.insns,
                &mut mem.clone(),
                &helpers,
                &mut ExecContext::new(),
                &interp::Options::default(),
            )
            .expect("trees always reach a leaf");
            let got = jit.run(&mut mem, &mut ExecContext::new());
            assert_eq!(got, Ok(want), "case {case}, r2 = {value:#x}:\n{listing}");
        }
    }
    println!("{recovered} of {TREES} trees became jump tables");
    // Most trees qualify; if none did the test would prove little.
    assert!(recovered as u64 > TREES / 5, "only {recovered} recovered");
}

/// A tree whose root jumps back to inner nodes laid out before it: their
/// leaves are translated (and could be sealed) before the root's table
/// branches to them.
#[test]
fn nodes_before_the_root() {
    let src = "ldxdw %r2, [%r1+0]\nja root\n\
               n:\njeq %r2, 5, a\njeq %r2, 6, b\nmov %r0, 0\nexit\n\
               a:\nmov %r0, 50\nexit\nb:\nmov %r0, 60\nexit\n\
               root:\njeq %r2, 1, c\njeq %r2, 2, d\njgt %r2, 4, n\nmov %r0, 7\nexit\n\
               c:\nmov %r0, 10\nexit\nd:\nmov %r0, 20\nexit";
    let insns = bpfc_compiler::asm::assemble(src).expect("assembles");
    let helpers = HelperTable::new();
    let mut dumps = Dumps {
        clif: Some(String::new()),
        native: None,
    };
    let jit = JitProgram::compile(
        &insns,
        Endian::Little,
        &helpers,
        &CodegenOptions::default(),
        Some(&mut dumps),
    )
    .expect("compiles");
    assert!(dumps.clif.unwrap_or_default().contains("br_table"));
    let cases = [
        (1u64, 10),
        (2, 20),
        (3, 7),
        (4, 7),
        (0, 7),
        (5, 50),
        (6, 60),
        (7, 0),
        (u64::MAX, 0),
    ];
    for (value, want) in cases {
        let mut mem = value.to_le_bytes();
        assert_eq!(
            jit.run(&mut mem, &mut ExecContext::new()),
            Ok(want),
            "r2 = {value}"
        );
    }
}
