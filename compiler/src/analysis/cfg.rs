//! The control-flow graph: functions, jump targets, successors, basic
//! blocks and reachability.

use crate::isa::{CallTarget, Insn, LddwSrc};
use thiserror::Error;

/// How a function is entered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FuncKind {
    /// Slot 0, the program's entry.
    Entry,
    /// The target of at least one local call (`call pc+N`).
    Called,
    /// Only the target of `BPF_PSEUDO_FUNC` lddw instructions: a callback
    /// handed to a helper such as `bpf_loop`.
    Callback,
}

/// One function: the slots `start..end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Function {
    pub start: usize,
    pub end: usize,
    pub kind: FuncKind,
}

impl Function {
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start..self.end
    }
}

/// Successors of one instruction inside its function: at most two. Local
/// calls have only their fall-through here (the callee is another function).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Succs {
    /// The next instruction when control falls through.
    pub fall: Option<usize>,
    /// The target of a taken jump.
    pub jump: Option<usize>,
}

impl Succs {
    pub fn iter(self) -> impl Iterator<Item = usize> {
        self.fall.into_iter().chain(self.jump)
    }
}

/// A basic block: slots `start..end`, entered only at `start`, left only
/// at its last instruction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub start: usize,
    pub end: usize,
    pub succs: Succs,
}

/// Structural errors, worded as the kernel verifier words them.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum CfgError {
    #[error("jump out of range from insn {pc} to {target}")]
    JumpOutOfRange { pc: usize, target: i64 },
    /// A jump leaves the function starting at `func`.
    #[error("jump out of range from insn {pc} to {target}")]
    JumpOutOfFunction {
        pc: usize,
        target: usize,
        func: usize,
    },
    /// The last slot of a function is not `exit` or `ja`: control could
    /// fall into `next` (the next function) or off the program's end.
    #[error("last insn is not an exit or jmp")]
    FallsThrough { pc: usize, next: Option<usize> },
    #[error("jump into the middle of ldimm64 insn {lddw}")]
    IntoLddw { pc: usize, lddw: usize },
}

impl CfgError {
    /// The instruction the error is about.
    pub fn pc(&self) -> usize {
        match *self {
            CfgError::JumpOutOfRange { pc, .. }
            | CfgError::JumpOutOfFunction { pc, .. }
            | CfgError::FallsThrough { pc, .. }
            | CfgError::IntoLddw { pc, .. } => pc,
        }
    }
}

/// Control-flow facts of one program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cfg {
    /// Functions in slot order; the entry first.
    pub functions: Vec<Function>,
    /// Index into `functions` of each slot.
    pub func_of: Vec<u32>,
    /// Slots that are the target of a jump (`ja` or a conditional jump).
    pub jump_target: Vec<bool>,
    /// Basic blocks in slot order (the second slot of an lddw belongs to
    /// the lddw's block).
    pub blocks: Vec<Block>,
    /// Index into `blocks` of each slot.
    pub block_of: Vec<u32>,
    /// Slots reached from the entry by following fall-through, jumps,
    /// local calls and callback references (the kernel's `check_cfg`
    /// walk). The second slot of a reached lddw counts as reached.
    pub reachable: Vec<bool>,
}

/// Where a jump, local call or callback reference at `pc` leads.
fn target(insn: &Insn, pc: usize) -> Option<i64> {
    match *insn {
        Insn::Lddw {
            src: LddwSrc::Func,
            imm,
            ..
        } => Some(pc as i64 + 1 + Insn::lddw_halves(imm).0 as i64),
        _ => insn.branch_target(pc),
    }
}

/// The successors of the instruction at `pc` within its function.
pub fn succs(insns: &[Insn], pc: usize) -> Succs {
    let next = pc + insns[pc].slots().max(1);
    let fall = (next < insns.len()).then_some(next);
    match insns[pc] {
        Insn::Exit => Succs::default(),
        Insn::Ja { .. } => Succs {
            fall: None,
            jump: target(&insns[pc], pc).map(|t| t as usize),
        },
        Insn::Jmp { .. } | Insn::MayGoto { .. } => Succs {
            fall,
            jump: target(&insns[pc], pc).map(|t| t as usize),
        },
        Insn::LddwHigh => Succs::default(),
        _ => Succs { fall, jump: None },
    }
}

/// Compute the control-flow facts of `insns` and check the function
/// structure. The instructions should have passed [`crate::isa::validate`]
/// or at least decoding; targets out of range are reported, not assumed.
pub fn analyze(insns: &[Insn]) -> Result<Cfg, CfgError> {
    let len = insns.len();
    let mut starts: Vec<(usize, FuncKind)> = vec![(0, FuncKind::Entry)];
    let mut jump_target = vec![false; len];
    for (pc, insn) in insns.iter().enumerate() {
        let Some(t) = target(insn, pc) else { continue };
        if t < 0 || t >= len as i64 {
            return Err(CfgError::JumpOutOfRange { pc, target: t });
        }
        let t = t as usize;
        if insns[t] == Insn::LddwHigh {
            return Err(CfgError::IntoLddw { pc, lddw: t - 1 });
        }
        match insn {
            Insn::Call(CallTarget::Local(_)) => starts.push((t, FuncKind::Called)),
            Insn::Lddw { .. } => starts.push((t, FuncKind::Callback)),
            _ => jump_target[t] = true,
        }
    }
    // One entry per start; a slot that is both called and a callback is Called.
    starts.sort_by_key(|&(s, k)| (s, k != FuncKind::Entry, k != FuncKind::Called));
    starts.dedup_by_key(|&mut (s, _)| s);

    let mut functions = Vec::with_capacity(starts.len());
    let mut func_of = vec![0u32; len];
    for (i, &(start, kind)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map(|s| s.0).unwrap_or(len);
        for f in &mut func_of[start..end] {
            *f = i as u32;
        }
        functions.push(Function { start, end, kind });
    }
    for (pc, insn) in insns.iter().enumerate() {
        if matches!(
            insn,
            Insn::Ja { .. } | Insn::Jmp { .. } | Insn::MayGoto { .. }
        ) {
            let t = target(insn, pc).expect("jumps have targets") as usize;
            let f = functions[func_of[pc] as usize];
            if !f.range().contains(&t) {
                return Err(CfgError::JumpOutOfFunction {
                    pc,
                    target: t,
                    func: f.start,
                });
            }
        }
    }
    for (i, f) in functions.iter().enumerate() {
        let last = f.end - 1;
        if !insns[last].is_terminator() {
            let pc = if insns[last] == Insn::LddwHigh && last > f.start {
                last - 1
            } else {
                last
            };
            return Err(CfgError::FallsThrough {
                pc,
                next: functions.get(i + 1).map(|n| n.start),
            });
        }
    }

    // Basic blocks: a new block at every function start, jump target and
    // after every jump or exit.
    let mut leader = vec![false; len];
    for f in &functions {
        leader[f.start] = true;
    }
    for pc in 0..len {
        if jump_target[pc] {
            leader[pc] = true;
        }
        if insns[pc].is_jump_or_exit() && pc + 1 < len {
            leader[pc + 1] = true;
        }
    }
    let mut blocks: Vec<Block> = Vec::new();
    let mut block_of = vec![0u32; len];
    let mut start = 0;
    for pc in 0..len {
        let last = pc + 1 == len || leader[pc + 1];
        block_of[pc] = blocks.len() as u32;
        if last {
            let tail = if insns[pc] == Insn::LddwHigh && pc > start {
                pc - 1
            } else {
                pc
            };
            blocks.push(Block {
                start,
                end: pc + 1,
                succs: succs(insns, tail),
            });
            start = pc + 1;
        }
    }

    let reachable = walk(insns);
    Ok(Cfg {
        functions,
        func_of,
        jump_target,
        blocks,
        block_of,
        reachable,
    })
}

/// Depth-first walk from slot 0 along every edge the kernel's `check_cfg`
/// follows.
fn walk(insns: &[Insn]) -> Vec<bool> {
    let mut seen = vec![false; insns.len()];
    let mut stack = vec![0usize];
    while let Some(pc) = stack.pop() {
        if pc >= insns.len() || seen[pc] {
            continue;
        }
        seen[pc] = true;
        if matches!(insns[pc], Insn::Lddw { .. }) && pc + 1 < insns.len() {
            seen[pc + 1] = true;
        }
        let s = succs(insns, pc);
        stack.extend(s.iter());
        if matches!(
            insns[pc],
            Insn::Call(CallTarget::Local(_))
                | Insn::Lddw {
                    src: LddwSrc::Func,
                    ..
                }
        ) {
            if let Some(t) = target(&insns[pc], pc) {
                stack.push(t as usize);
            }
        }
    }
    seen
}

impl Cfg {
    /// The function containing slot `pc`.
    pub fn function_of(&self, pc: usize) -> &Function {
        &self.functions[self.func_of[pc] as usize]
    }

    /// The function starting at `start`, if one does.
    pub fn function_at(&self, start: usize) -> Option<(usize, &Function)> {
        self.functions
            .binary_search_by_key(&start, |f| f.start)
            .ok()
            .map(|i| (i, &self.functions[i]))
    }

    /// The first unreachable instruction slot (the kernel's
    /// `unreachable insn N`), if any.
    pub fn first_unreachable(&self) -> Option<usize> {
        self.reachable.iter().position(|&r| !r)
    }
}
