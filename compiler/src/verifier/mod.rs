//! The static verifier: the Linux kernel's safety rules for eBPF programs
//! (kernel/bpf/verifier.c, privileged mode as for a loader with CAP_BPF,
//! CAP_PERFMON and CAP_NET_ADMIN), by the kernel's method: every path is
//! simulated on an abstract machine state (register types, value ranges
//! and tnums, stack slots, call frames, held references and locks), and a
//! path is cut short when it reaches a point in a state no more permissive
//! than one already proven safe there.
//!
//! [`verify`] returns, for an accepted program, facts per instruction
//! ([`Facts`]: which memory each load and store touches, all proven in
//! bounds) and statistics; for a rejected one, the instruction, the
//! kernel's words for the reason, the branches taken to get there and the
//! log.
//!
//! Modules: [`tnum`] and [`bounds`] (value knowledge and the kernel's range
//! rules), [`state`] (the abstract machine), [`fmt`] (the kernel's
//! spelling of states), `check` (the main loop), `alu`, `mem`, `jmp`,
//! `call` (local calls, callbacks, exits), `helper` (helper calls against
//! [`bpfc_runtime::helpers::proto`]), `prune` (state equivalence),
//! `precise` (which scalars a verdict depended on) and `liveness` (which
//! registers and stack slots later code reads).
//!
//! Where the kernel the corpus comes from (6.12) and the running one the
//! tests compare with (6.18) differ, bpfc follows 6.18: stack slot
//! liveness, `BPF_NEG`/`BPF_END` on scalars, constant-key array lookups
//! that cannot fail.

mod alu;
pub mod bounds;
mod call;
mod check;
pub mod fmt;
mod helper;
mod jmp;
mod liveness;
mod mem;
mod precise;
mod prune;
pub mod report;
pub mod state;
#[cfg(test)]
mod tests;
pub mod tnum;

use crate::analysis::Cfg;
use crate::isa::Insn;
use crate::loader::{Btf, MapDef, ProgType};
use crate::progtype::ProgTypeInfo;
use state::{RegType, State};
use std::fmt::Write as _;

/// The kernel's limit on processed instructions (`BPF_COMPLEXITY_LIMIT_INSNS`).
pub const MAX_PROCESSED_INSNS: u64 = 1_000_000;
/// Pending branches the kernel keeps at most (`BPF_COMPLEXITY_LIMIT_JMP_SEQ`).
pub const MAX_PENDING_BRANCHES: usize = 8192;
/// Maps one program may use (`MAX_USED_MAPS`).
pub const MAX_USED_MAPS: usize = 64;
/// Stack of one frame and of all frames of a call chain together.
pub const MAX_STACK: usize = 512;
/// Nested tail calls at run time (`MAX_TAIL_CALL_CNT`); each call goes
/// through the helper, so the verifier only checks the prototype.
pub const MAX_TAIL_CALLS: u32 = 33;

/// How to verify.
#[derive(Clone, Debug)]
pub struct Options {
    pub prog_type: ProgType,
    /// libbpf's expected attach type (`BPF_CGROUP_INET_EGRESS` ...).
    pub attach_type: Option<String>,
    /// 0: messages only; 1: the failing path's instructions; 2: every
    /// instruction with the register state.
    pub log_level: u32,
    /// `BPF_F_STRICT_ALIGNMENT`.
    pub strict_alignment: bool,
    /// `BPF_F_TEST_STATE_FREQ`: a checkpoint at every prune point.
    pub test_state_freq: bool,
    /// `BPF_F_SLEEPABLE`.
    pub sleepable: bool,
    /// The license is GPL-compatible.
    pub gpl: bool,
    /// Stop after this many processed instructions.
    pub max_insns: u64,
    /// The loader has CAP_PERFMON (as root does): uninitialised stack may
    /// be read. Without it (a loader with only CAP_BPF and CAP_NET_ADMIN)
    /// reading uninitialised stack is an error.
    pub perfmon: bool,
    /// `.rodata` holds its final values, as at a kernel load: loads from it
    /// are constants. False for code compiled before a host may change them
    /// (self-describing objects, JIT host objects): facts must hold for
    /// any value.
    pub rodata_known: bool,
    /// Size of a kprobe's `pt_regs` (the compile target's,
    /// [`crate::progtype::ctx::pt_regs_size`]).
    pub pt_regs: u32,
}

impl Options {
    pub fn new(prog_type: ProgType) -> Options {
        Options {
            prog_type,
            attach_type: None,
            log_level: 0,
            strict_alignment: false,
            test_state_freq: false,
            sleepable: false,
            gpl: true,
            max_insns: MAX_PROCESSED_INSNS,
            perfmon: true,
            rodata_known: true,
            pt_regs: crate::progtype::ctx::HOST_PT_REGS,
        }
    }
}

/// What the verifier needs to know of a program.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    pub insns: &'a [Insn],
    /// The object's maps (`LddwSrc::MapIdx` indexes them).
    pub maps: &'a [MapDef],
    /// The object's BTF, for global functions' argument types.
    pub btf: Option<&'a Btf>,
    /// `(pc, BTF FUNC type id)` of each function, sorted by pc.
    pub func_info: &'a [(usize, u32)],
    /// Byte order of the program (for read-only map contents).
    pub endian: crate::isa::Endian,
}

/// The region a memory access touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Region {
    Stack,
    Ctx,
    /// A value of map `map` (an index into [`Input::maps`]).
    MapValue {
        map: u32,
    },
    MapKey {
        map: u32,
    },
    Packet,
    PacketMeta,
    /// Memory a helper returned (ring buffer records ...).
    Mem,
    FlowKeys,
    Socket,
    Other,
}

/// What the verifier proved about one memory access instruction, over
/// every path that reaches it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessFact {
    /// Every region the instruction touches on some path (usually one).
    pub regions: Vec<Region>,
    /// The access stays in bounds on every path (always true for an
    /// accepted program; kept explicit for consumers).
    pub in_bounds: bool,
}

/// Facts per instruction of an accepted program.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// `access[pc]` for loads, stores and atomics reached by some path.
    pub access: Vec<Option<AccessFact>>,
    /// Instructions reached by some path (dead code is not).
    pub reached: Vec<bool>,
    /// Maximum stack depth of each function (by function index).
    pub stack_depth: Vec<u32>,
    /// The end of the furthest context access (offset plus size), as the
    /// kernel's `max_ctx_offset`: a test run with a smaller context is
    /// refused.
    pub max_ctx_offset: u32,
}

/// Counters of one verification, as the kernel reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub insns_processed: u64,
    pub total_states: u64,
    pub peak_states: u64,
    pub max_states_per_insn: u64,
}

/// An accepted program.
#[derive(Clone, Debug)]
pub struct Verified {
    pub facts: Facts,
    pub stats: Stats,
    pub log: String,
}

/// A rejected program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The instruction (slot index) the reason is about, when it is about one.
    pub pc: Option<usize>,
    /// The kernel verifier's words.
    pub message: String,
    /// Branches taken from the entry to the instruction: `(from, to)`.
    pub path: Vec<(usize, usize)>,
    pub log: String,
    pub stats: Stats,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pc {
            Some(pc) => write!(f, "instruction {pc}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Verify a program.
pub fn verify(input: &Input, opts: &Options) -> Result<Verified, Rejection> {
    check::run(input, opts)
}

/// An error inside the verifier: the kernel's message.
#[derive(Debug)]
pub(crate) struct VErr(pub String);

pub(crate) type VResult<T> = Result<T, VErr>;

/// `Err(VErr(format!(...)))`.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::verifier::VErr(format!($($arg)*)))
    };
}
pub(crate) use bail;

/// Per-instruction data gathered across paths (`bpf_insn_aux_data`).
#[derive(Clone, Debug, Default)]
pub(crate) struct InsnAux {
    /// The pointer type a load or store used first (`ptr_type`).
    pub ptr_type: Option<RegType>,
    pub fact: Option<AccessFact>,
    pub seen: bool,
}

/// A saved state the search compares later arrivals against.
#[derive(Clone, Debug)]
pub(crate) struct Checkpoint {
    /// `None` once evicted from its instruction's list.
    pub state: Option<State>,
    /// The checkpoint the saved state descends from.
    pub parent: Option<usize>,
    /// The instruction it was saved at.
    pub insn: usize,
    /// The path from the parent checkpoint to it.
    pub hist: Vec<precise::Hist>,
    /// Paths from this state still being explored (the kernel's
    /// `branches`); 0 once everything below it is verified.
    pub branches: u32,
    pub hit: u32,
    pub miss: u32,
}

/// A branch waiting to be explored.
#[derive(Clone, Debug)]
pub(crate) struct Pending {
    pub state: State,
    pub insn: usize,
    pub prev: usize,
    pub log_len: usize,
    /// Index into the path arena of the branch decision.
    pub path: u32,
}

/// The program's maps, plus the inner map templates of maps of maps
/// (appended, so registers can refer to them by index too).
pub(crate) struct Maps {
    pub defs: Vec<MapDef>,
    /// How many of `defs` are the program's own (instructions refer to these).
    pub own: usize,
    /// `inner[i]`: the index of map `i`'s inner map template.
    pub inner: Vec<Option<u32>>,
    /// `lock[i]`: map `i`'s value holds a `bpf_spin_lock`.
    pub lock: Vec<bool>,
}

impl Maps {
    pub fn new(maps: &[MapDef], btf: Option<&Btf>) -> Maps {
        let mut defs = maps.to_vec();
        let mut inner = vec![None; maps.len()];
        for (i, m) in maps.iter().enumerate() {
            if let Some(def) = &m.inner {
                inner[i] = Some(defs.len() as u32);
                defs.push((**def).clone());
                inner.push(None);
            }
        }
        let lock = defs
            .iter()
            .map(|d| {
                helper::map_special_fields(btf, d)
                    .iter()
                    .any(|f| f.0 == "bpf_spin_lock")
            })
            .collect();
        Maps {
            defs,
            own: maps.len(),
            inner,
            lock,
        }
    }
}

/// The verifier's environment (`bpf_verifier_env`).
pub(crate) struct Env<'a> {
    pub insns: &'a [Insn],
    pub maps: Maps,
    pub btf: Option<&'a Btf>,
    pub func_info: &'a [(usize, u32)],
    pub endian: crate::isa::Endian,
    pub opts: &'a Options,
    pub info: ProgTypeInfo,
    pub cfg: Cfg,
    /// Registers read before written from each pc on (bit per register).
    pub live: Vec<u16>,
    /// Stack slots read before written from each pc on, by the reads
    /// recorded so far.
    pub stack_live: liveness::StackLive,
    pub prune_point: Vec<bool>,
    pub force_checkpoint: Vec<bool>,
    /// Call instructions whose helper calls a callback (`bpf_loop` ...).
    pub calls_callback: Vec<bool>,
    pub aux: Vec<InsnAux>,
    pub cur: State,
    pub insn_idx: usize,
    pub prev_insn_idx: usize,
    pub pending: Vec<Pending>,
    pub checkpoints: Vec<Checkpoint>,
    /// Checkpoint indices per instruction.
    pub explored: Vec<Vec<u32>>,
    pub id_gen: u32,
    pub stats: Stats,
    /// Checkpoints currently in the explored lists.
    pub states_live: u64,
    pub jmps_processed: u64,
    pub prev_jmps_processed: u64,
    pub prev_insn_processed: u64,
    pub log: String,
    /// Branch decisions: `(from, to, previous decision)`, a tree shared by
    /// all paths; `cur_path` is the current path's last decision.
    pub path_arena: Vec<(u32, u32, u32)>,
    pub cur_path: u32,
    /// Deepest stack per function.
    pub stack_depth: Vec<u32>,
    /// Functions verified on their own (global functions).
    pub global_funcs: Vec<bool>,
    /// Functions found to be global and called, still to verify.
    pub globals_to_check: Vec<usize>,
    /// Maps referenced by the program.
    pub used_maps: Vec<u32>,
    /// The end of the furthest context access so far.
    pub max_ctx_offset: u32,
}

impl Env<'_> {
    pub fn new_id(&mut self) -> u32 {
        self.id_gen += 1;
        self.id_gen
    }

    pub fn logging(&self) -> bool {
        self.opts.log_level > 0
    }

    pub fn log_line(&mut self, line: &str) {
        if self.logging() {
            self.log.push_str(line);
            self.log.push('\n');
        }
    }

    /// The path to the current instruction as `(from, to)` branch decisions.
    pub fn path(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut i = self.cur_path;
        while i != 0 {
            let (from, to, prev) = self.path_arena[i as usize];
            out.push((from as usize, to as usize));
            i = prev;
        }
        out.reverse();
        out
    }

    pub fn push_path(&mut self, from: usize, to: usize, prev: u32) -> u32 {
        self.path_arena.push((from as u32, to as u32, prev));
        (self.path_arena.len() - 1) as u32
    }

    /// The map definition a register refers to.
    pub fn map_of(&self, map: u32) -> &MapDef {
        &self.maps.defs[map as usize]
    }

    /// Record the region a memory instruction touched.
    pub fn note_access(&mut self, region: Region) {
        let fact = self.aux[self.insn_idx].fact.get_or_insert(AccessFact {
            regions: Vec::new(),
            in_bounds: true,
        });
        if !fact.regions.contains(&region) {
            fact.regions.push(region);
        }
    }

    /// Record a read of the bytes `lo..hi` of frame `frame`'s stack: at the
    /// current instruction for the current frame, at the call a caller's
    /// frame waits in for a caller's.
    pub fn note_stack_read(&mut self, frame: usize, lo: i64, hi: i64) {
        let pc = match self.cur.frames.get(frame + 1) {
            None => self.insn_idx,
            Some(callee) => match callee.callsite {
                Some(site) => site,
                None => return,
            },
        };
        self.stack_live.add_read(pc, liveness::slot_mask(lo, hi));
    }

    /// Append the current frame's state in the log's notation.
    pub fn log_state(&mut self) {
        if self.logging() {
            let s = fmt::frame_str(self.cur.cur(), &self.maps.defs);
            let _ = writeln!(self.log, "{s}");
        }
    }
}
