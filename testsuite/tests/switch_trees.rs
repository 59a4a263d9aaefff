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

/// `r0 = id; exit`, returning the slot of its first instruction.
fn leaf(insns: &mut Vec<Insn>, id: i32) -> usize {
    insns.push(mov(Reg::R0, id));
    insns.push(Insn::Exit);
    insns.len() - 2
}

/// A tree: read r2 from the input, then compare it with constants. A
/// shared leaf sits before the tree so that nodes can also jump back.
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
    let mut insns = vec![
        Insn::Ldx {
            size: Size::DW,
            sx: false,
            dst: Reg::R2,
            src: Reg::R1,
            off: 0,
        },
        Insn::Ja {
            off: 2,
            long: false,
        },
    ];
    let shared = leaf(&mut insns, 1000);
    let mut leaves = vec![shared];
    let mut patches = Vec::new();
    let mut next_id = 0;
    let depth = rng.range(3, 7) as u32;
    build(
        rng,
        &mut insns,
        &mut leaves,
        &mut patches,
        &mut next_id,
        width,
        &pool,
        depth,
    );
    for (pc, target) in patches {
        if let Insn::Jmp { ref mut off, .. } = insns[pc] {
            *off = (target as i64 - pc as i64 - 1) as i16;
        }
    }
    Tree {
        insns,
        constants: pool,
    }
}

#[allow(clippy::too_many_arguments)]
fn build(
    rng: &mut Rng,
    insns: &mut Vec<Insn>,
    leaves: &mut Vec<usize>,
    patches: &mut Vec<(usize, usize)>,
    next_id: &mut i32,
    width: Width,
    pool: &[i32],
    depth: u32,
) {
    if depth == 0 || rng.chance(15) {
        *next_id += 1;
        let at = leaf(insns, *next_id);
        leaves.push(at);
        return;
    }
    let conds: Vec<JmpCond> = JmpCond::ALL
        .into_iter()
        .filter(|c| *c != JmpCond::Set)
        .collect();
    // One tree in ten mixes in another register's or width's test, which
    // the recovery must leave to branches.
    let (w, reg) = if rng.chance(3) {
        (Width::W64, Reg::R3)
    } else if rng.chance(3) {
        (
            match width {
                Width::W64 => Width::W32,
                Width::W32 => Width::W64,
            },
            Reg::R2,
        )
    } else {
        (width, Reg::R2)
    };
    let pc = insns.len();
    insns.push(Insn::Jmp {
        width: w,
        cond: conds[rng.below(conds.len() as u64) as usize],
        dst: reg,
        src: Src::Imm(pool[rng.below(pool.len() as u64) as usize]),
        off: 0,
    });
    build(rng, insns, leaves, patches, next_id, width, pool, depth - 1);
    if rng.chance(20) {
        // Jump to an existing leaf (possibly the shared one, backwards).
        let target = leaves[rng.below(leaves.len() as u64) as usize];
        patches.push((pc, target));
    } else {
        patches.push((pc, insns.len()));
        build(rng, insns, leaves, patches, next_id, width, pool, depth - 1);
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
