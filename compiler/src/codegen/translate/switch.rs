//! Switch recovery: eBPF has no indirect jump, so clang lowers a dense
//! `switch` to a binary tree of compare-and-branch on one register, whose
//! every level can mispredict on unpredictable input. A tree whose inner
//! nodes hold nothing but their comparison becomes one jump table
//! (`br_table`) over the values it tells apart, with a short chain of range
//! checks for the values outside the table.
//!
//! The tree is read by following the set of values the register can hold
//! down each edge: every leaf ends up with the values that reach it, and
//! together they partition all 2^64 (or 2^32) values, so the table and the
//! range checks send every value where the tree would.

use super::Translator;
use crate::isa::{Insn, JmpCond, Reg, Src, Width};
use cranelift_codegen::ir::{condcodes::IntCC, InstBuilder};
use cranelift_frontend::Switch;
use cranelift_module::Module;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

/// Fewest leaves for a tree to be worth a table.
const MIN_LEAVES: usize = 5;
/// Most table entries (and most inner nodes of one tree).
const MAX_TABLE: u64 = 1024;
/// Most ranges outside the table, each costing a compare and branch.
const MAX_OUTSIDE: usize = 4;

/// An inclusive range of register values (unsigned, at the comparison width).
type Span = (u64, u64);

/// A recovered switch: the register it tests, the table's values
/// `lo..lo + table.len()` and the leaf of each, and the ranges outside the
/// table with their leaves (the last one needs no check).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct SwitchTree {
    reg: Reg,
    width: Width,
    lo: u64,
    table: Vec<usize>,
    outside: Vec<(Span, usize)>,
    /// The inner nodes' slots, which are not translated.
    pub(super) nodes: Vec<usize>,
}

/// The values of a `width` register for which `cond` against the
/// immediate `k` holds, as sorted unsigned spans (`None` for `jset`, which
/// no span list describes briefly).
fn holds(width: Width, cond: JmpCond, k: i32) -> Option<Vec<Span>> {
    let (max, k) = match width {
        Width::W64 => (u64::MAX, k as i64 as u64),
        Width::W32 => (u32::MAX as u64, k as u32 as u64),
    };
    let smin = max / 2 + 1;
    // In signed order a value's position is the value with its sign bit
    // flipped; a range of positions is one or two ranges of values.
    let signed = |pa: u64, pb: u64| -> Vec<Span> {
        if pb < smin || pa >= smin {
            vec![(pa ^ smin, pb ^ smin)]
        } else {
            vec![(0, pb ^ smin), (pa ^ smin, max)]
        }
    };
    let ks = k ^ smin;
    let mut spans = Vec::new();
    match cond {
        JmpCond::Eq => spans.push((k, k)),
        JmpCond::Ne => {
            if k > 0 {
                spans.push((0, k - 1));
            }
            if k < max {
                spans.push((k + 1, max));
            }
        }
        JmpCond::Gt if k < max => spans.push((k + 1, max)),
        JmpCond::Ge => spans.push((k, max)),
        JmpCond::Lt if k > 0 => spans.push((0, k - 1)),
        JmpCond::Le => spans.push((0, k)),
        JmpCond::Sgt if ks < max => spans = signed(ks + 1, max),
        JmpCond::Sge => spans = signed(ks, max),
        JmpCond::Slt if ks > 0 => spans = signed(0, ks - 1),
        JmpCond::Sle => spans = signed(0, ks),
        JmpCond::Gt | JmpCond::Lt | JmpCond::Sgt | JmpCond::Slt => {}
        JmpCond::Set => return None,
    }
    Some(spans)
}

/// `a ∩ b` and `a \ b` for sorted, disjoint span lists.
fn split(a: &[Span], b: &[Span]) -> (Vec<Span>, Vec<Span>) {
    let mut inside = Vec::new();
    let mut outside = Vec::new();
    for &(lo, hi) in a {
        let mut cur = lo;
        let mut done = false;
        for &(blo, bhi) in b {
            if bhi < cur || blo > hi {
                continue;
            }
            if blo > cur {
                outside.push((cur, blo - 1));
            }
            let (ilo, ihi) = (blo.max(cur), bhi.min(hi));
            inside.push((ilo, ihi));
            if ihi == hi {
                done = true;
                break;
            }
            cur = ihi + 1;
        }
        if !done {
            outside.push((cur, hi));
        }
    }
    (inside, outside)
}

/// Predecessor counts of every slot of `range`: jumps to it plus the
/// fall-through from the instruction before, and the function's entry for
/// its first slot.
fn predecessors(insns: &[Insn], range: &Range<usize>) -> BTreeMap<usize, usize> {
    let mut preds = BTreeMap::from([(range.start, 1)]);
    let mut last_real = None;
    for pc in range.clone() {
        let insn = insns[pc];
        if insn == Insn::LddwHigh {
            continue;
        }
        if let Some(prev) = last_real {
            if !matches!(insns[prev], Insn::Ja { .. } | Insn::Exit) {
                *preds.entry(pc).or_insert(0) += 1;
            }
        }
        if matches!(
            insn,
            Insn::Ja { .. } | Insn::Jmp { .. } | Insn::MayGoto { .. }
        ) {
            if let Some(t) = insn.branch_target(pc) {
                *preds.entry(t as usize).or_insert(0) += 1;
            }
        }
        last_real = Some(pc);
    }
    preds
}

/// The comparison of a tree node: a conditional jump against an immediate.
fn comparison(insn: &Insn) -> Option<(Width, JmpCond, Reg, i32)> {
    match *insn {
        Insn::Jmp {
            width,
            cond,
            dst,
            src: Src::Imm(k),
            ..
        } if cond != JmpCond::Set => Some((width, cond, dst, k)),
        _ => None,
    }
}

/// The switch trees of the function in `range`, by the slot of their root
/// jump. The root may end a block with other instructions; every inner
/// node is a block of its own holding one comparison on the same register
/// at the same width, reached only from its parent.
/// The search reads a tree from every comparison; a rejected tree's nodes
/// are read again as roots of their subtrees. So that chains of rejected
/// comparisons cannot make compilation quadratic, the search stops after
/// visiting this many slots per slot of the function.
const VISITS_PER_SLOT: usize = 16;

pub(super) fn find(insns: &[Insn], range: &Range<usize>) -> BTreeMap<usize, SwitchTree> {
    let preds = predecessors(insns, range);
    let mut trees = BTreeMap::new();
    let mut used = BTreeSet::new();
    let mut visits = VISITS_PER_SLOT * range.len();
    for pc in range.clone() {
        if used.contains(&pc) {
            continue;
        }
        if visits == 0 {
            break;
        }
        if let Some(tree) = read_tree(insns, range, &preds, pc, &mut visits) {
            used.extend(tree.nodes.iter().copied());
            trees.insert(pc, tree);
        }
    }
    trees
}

fn read_tree(
    insns: &[Insn],
    range: &Range<usize>,
    preds: &BTreeMap<usize, usize>,
    root: usize,
    visits: &mut usize,
) -> Option<SwitchTree> {
    let (width, _, reg, _) = comparison(&insns[root])?;
    let max = match width {
        Width::W64 => u64::MAX,
        Width::W32 => u32::MAX as u64,
    };
    let mut leaves: BTreeMap<usize, Vec<Span>> = BTreeMap::new();
    let mut nodes = BTreeSet::new();
    // Slots still to read, with the values that reach them.
    let mut work = vec![(root, vec![(0, max)])];
    while let Some((pc, values)) = work.pop() {
        let Some(left) = visits.checked_sub(1 + values.len()) else {
            *visits = 0;
            return None;
        };
        *visits = left;
        let is_node = (pc == root && nodes.is_empty() && leaves.is_empty())
            || (pc != root
                && range.contains(&pc)
                && preds.get(&pc) == Some(&1)
                && comparison(&insns[pc]).is_some_and(|(w, _, r, _)| w == width && r == reg));
        if !is_node {
            leaves.entry(pc).or_default().extend(values);
            continue;
        }
        if pc != root {
            // A node has one predecessor, so meeting it twice means a cycle.
            if !nodes.insert(pc) {
                return None;
            }
        }
        if nodes.len() > MAX_TABLE as usize {
            return None;
        }
        let (_, cond, _, k) = comparison(&insns[pc])?;
        let target = insns[pc].branch_target(pc)? as usize;
        // Both edges to one place is no decision.
        if target == pc + 1 {
            return None;
        }
        let (taken, fall) = split(&values, &holds(width, cond, k)?);
        // An edge no value takes adds nothing to its successor.
        for (next, vals) in [(target, taken), (pc + 1, fall)] {
            if !vals.is_empty() {
                work.push((next, vals));
            }
        }
    }
    // A leaf may be any block, even one before the root (its block is
    // sealed only after the last jump to it, which is a node's), but not the
    // root: a jump back to the root is a loop, not a switch.
    if leaves.len() < MIN_LEAVES
        || leaves.contains_key(&root)
        || nodes.iter().any(|n| leaves.contains_key(n))
    {
        return None;
    }
    // Every value reaches exactly one leaf; sort the pieces by value.
    let mut parts: Vec<(Span, usize)> = leaves
        .iter()
        .flat_map(|(&leaf, spans)| spans.iter().map(move |&s| (s, leaf)))
        .collect();
    parts.sort_unstable();
    // The table spans the narrow pieces (the cases); the wide ones around
    // them (values the switch treats alike) become range checks. Values
    // are a circle (the index is `value - lo`, wrapping), so a table may
    // run from negative cases to positive ones: it starts after the widest
    // gap between narrow pieces.
    let narrow: Vec<Span> = parts
        .iter()
        .map(|&(span, _)| span)
        .filter(|(lo, hi)| hi - lo < 16)
        .collect();
    let count = narrow.len();
    let after_gap = (0..count).max_by_key(|&i| {
        let prev_end = narrow[(i + count - 1) % count].1;
        (
            narrow[i].0.wrapping_sub(prev_end) & max,
            std::cmp::Reverse(i),
        )
    })?;
    let lo = narrow[after_gap].0;
    let hi = narrow[(after_gap + count - 1) % count].1;
    let len = (hi.wrapping_sub(lo) & max) + 1;
    if len > MAX_TABLE {
        return None;
    }
    let leaf_of = |v: u64| {
        let i = parts.partition_point(|&((start, _), _)| start <= v);
        parts[i - 1].1
    };
    let table: Vec<usize> = (0..len)
        .map(|i| leaf_of(lo.wrapping_add(i) & max))
        .collect();
    // The rest of the circle, from hi + 1 round to lo - 1, as plain spans.
    let (rest_lo, rest_hi) = (hi.wrapping_add(1) & max, lo.wrapping_sub(1) & max);
    let rest: Vec<Span> = if len == max.wrapping_add(1) {
        vec![]
    } else if rest_lo <= rest_hi {
        vec![(rest_lo, rest_hi)]
    } else {
        vec![(rest_lo, max), (0, rest_hi)]
    };
    let mut outside = Vec::new();
    for &(a, b) in &rest {
        for &((plo, phi), leaf) in &parts {
            let (olo, ohi) = (plo.max(a), phi.min(b));
            if olo <= ohi {
                outside.push(((olo, ohi), leaf));
            }
        }
    }
    if outside.len() > MAX_OUTSIDE {
        return None;
    }
    Some(SwitchTree {
        reg,
        width,
        lo,
        table,
        outside,
        nodes: nodes.into_iter().collect(),
    })
}

impl<M: Module> Translator<'_, '_, '_, M> {
    /// Branch on the recovered switch instead of its root comparison.
    pub(super) fn emit_switch(&mut self, tree: &SwitchTree) {
        let v = self.dst_value(tree.width, tree.reg);
        let ty = self.b.func.dfg.value_type(v);
        let mask = match tree.width {
            Width::W64 => u64::MAX,
            Width::W32 => u32::MAX as u64,
        };
        let minus = |x: u64| (x.wrapping_neg() & mask) as i64;
        let index = self.b.ins().iadd_imm_s(v, minus(tree.lo));
        let chain = self.b.create_block();
        let mut switch = Switch::new();
        for (i, &leaf) in tree.table.iter().enumerate() {
            switch.set_entry(i as u128, self.block(leaf));
        }
        switch.emit(self.b, index, chain);
        self.b.seal_block(chain);
        self.b.switch_to_block(chain);
        // Values outside the table, range by range; the last range is what
        // remains, so it needs no check.
        let Some((&(_, last_leaf), checked)) = tree.outside.split_last() else {
            // The table covers every value; its default is never taken.
            let leaf = self.block(tree.table[0]);
            self.b.ins().jump(leaf, &[]);
            return;
        };
        for &((lo, hi), leaf) in checked {
            let off = self.b.ins().iadd_imm_s(v, minus(lo));
            let width = self.b.ins().iconst(ty, (hi - lo) as i64);
            let hit = self
                .b
                .ins()
                .icmp(IntCC::UnsignedLessThanOrEqual, off, width);
            let next = self.b.create_block();
            let target = self.block(leaf);
            self.b.ins().brif(hit, target, &[], next, &[]);
            self.b.seal_block(next);
            self.b.switch_to_block(next);
        }
        let leaf = self.block(last_leaf);
        self.b.ins().jump(leaf, &[]);
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn member(spans: &[Span], v: u64) -> bool {
        spans.iter().any(|&(lo, hi)| lo <= v && v <= hi)
    }

    /// `holds` against the comparison itself, on values around every
    /// boundary of both widths.
    #[test]
    fn spans_hold_exactly_where_the_comparison_does() {
        let ks: [i32; 7] = [0, 1, -1, 5, i32::MAX, i32::MIN, -7];
        for width in [Width::W64, Width::W32] {
            for cond in JmpCond::ALL.into_iter().filter(|c| *c != JmpCond::Set) {
                for k in ks {
                    let spans = holds(width, cond, k).expect("not jset");
                    assert!(spans.windows(2).all(|w| w[0].1 < w[1].0), "{spans:?}");
                    let mut probes =
                        vec![0u64, 1, 2, u64::MAX, u64::MAX - 1, 1 << 63, (1 << 63) - 1];
                    probes.extend([u32::MAX as u64, 1 << 31, (1 << 31) - 1]);
                    for d in [0i64, 1, -1, 2] {
                        probes.push((k as i64).wrapping_add(d) as u64);
                        probes.push((k as u32 as i64 + d) as u64);
                    }
                    for v in probes {
                        let (v, want) = match width {
                            Width::W64 => (v, eval64(cond, v, k as i64 as u64)),
                            Width::W32 => {
                                let v = v as u32;
                                (v as u64, eval32(cond, v, k as u32))
                            }
                        };
                        assert_eq!(member(&spans, v), want, "{width:?} {cond:?} {k} at {v:#x}");
                    }
                }
            }
        }
    }

    fn eval64(cond: JmpCond, a: u64, b: u64) -> bool {
        let (sa, sb) = (a as i64, b as i64);
        match cond {
            JmpCond::Eq => a == b,
            JmpCond::Ne => a != b,
            JmpCond::Gt => a > b,
            JmpCond::Ge => a >= b,
            JmpCond::Lt => a < b,
            JmpCond::Le => a <= b,
            JmpCond::Sgt => sa > sb,
            JmpCond::Sge => sa >= sb,
            JmpCond::Slt => sa < sb,
            JmpCond::Sle => sa <= sb,
            JmpCond::Set => a & b != 0,
        }
    }

    fn eval32(cond: JmpCond, a: u32, b: u32) -> bool {
        let s = |x: u32| x as i32 as i64 as u64;
        match cond {
            JmpCond::Sgt | JmpCond::Sge | JmpCond::Slt | JmpCond::Sle => eval64(cond, s(a), s(b)),
            _ => eval64(cond, a as u64, b as u64),
        }
    }

    #[test]
    fn split_partitions_spans() {
        let (i, o) = split(&[(0, 10), (20, 30)], &[(5, 25)]);
        assert_eq!(i, [(5, 10), (20, 25)]);
        assert_eq!(o, [(0, 4), (26, 30)]);
        let (i, o) = split(&[(0, u64::MAX)], &[(0, 0), (u64::MAX, u64::MAX)]);
        assert_eq!(i, [(0, 0), (u64::MAX, u64::MAX)]);
        assert_eq!(o, [(1, u64::MAX - 1)]);
    }

    #[test]
    fn the_function_entry_is_never_an_inner_node() {
        // The tree rooted at 2 jumps back to slot 0, which compares r2 too;
        // slot 0 is also where the function starts, so it must stay a leaf.
        let src = "e:\njeq %r2, 9, x\nja r\nr:\njeq %r2, 1, a\njeq %r2, 2, b\njeq %r2, 3, e\n\
                   jeq %r2, 4, d\nmov %r0, 0\nexit\na:\nmov %r0, 10\nexit\nb:\nmov %r0, 20\n\
                   exit\nx:\nmov %r0, 30\nexit\nd:\nmov %r0, 40\nexit";
        let insns = crate::asm::assemble(src).expect("assembles");
        let trees = find(&insns, &(0..insns.len()));
        let tree = &trees[&2];
        assert!(!tree.nodes.contains(&0), "{tree:?}");
        assert!(tree.table.contains(&0), "{tree:?}");
    }

    #[test]
    fn reads_a_chain_of_equality_tests() {
        // if r2 == 1 goto a; if r2 == 2 goto b; ... five cases and a default.
        let src = "ldxdw %r2, [%r1+0]\njeq %r2, 1, a\njeq %r2, 2, b\njeq %r2, 3, c\n\
                   jeq %r2, 4, d\nmov %r0, 0\nexit\na:\nmov %r0, 10\nexit\nb:\nmov %r0, 20\n\
                   exit\nc:\nmov %r0, 30\nexit\nd:\nmov %r0, 40\nexit";
        let insns = crate::asm::assemble(src).expect("assembles");
        let trees = find(&insns, &(0..insns.len()));
        let tree = &trees[&1];
        assert_eq!(tree.nodes, [2, 3, 4]);
        // 0 is a single value too, so the table starts there.
        assert_eq!(
            (tree.lo, tree.table.as_slice()),
            (0, &[5, 7, 9, 11, 13][..])
        );
        assert_eq!(tree.outside, [((5, u64::MAX), 5)]);
    }
}
