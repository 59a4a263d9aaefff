//! The main loop (`do_check`): set up the entry state, walk one path at a
//! time through the instructions, fork at undecided branches, stop a path
//! at `exit` or where it meets an equivalent explored state, and pop the
//! next pending branch; plus the instruction checks that need no module of
//! their own (`lddw`, legacy packet loads, the exit checks).

use super::state::{flag, Frame, Reg, RegType, State};
use super::*;
use crate::analysis::{analyze, CfgError};
use crate::isa::{CallTarget, Insn, LddwSrc, Reg as IReg};
use crate::progtype;
use bpfc_runtime::helpers::proto::id as hid;

/// Helpers that call a callback synchronously, possibly many times.
pub(crate) const SYNC_CALLBACK_HELPERS: &[u32] = &[
    hid::FOR_EACH_MAP_ELEM,
    hid::FIND_VMA,
    hid::LOOP,
    hid::USER_RINGBUF_DRAIN,
];

pub(super) fn run(input: &Input, opts: &Options) -> Result<Verified, Rejection> {
    let reject = |pc: Option<usize>, message: String| Rejection {
        pc,
        message,
        path: Vec::new(),
        log: String::new(),
        stats: Stats::default(),
    };
    if !progtype::supported(opts.prog_type) {
        return Err(reject(
            None,
            format!(
                "bpfc's verifier does not model program type {}",
                opts.prog_type.name()
            ),
        ));
    }
    if input.insns.is_empty() {
        return Err(reject(None, "last insn is not an exit or jmp".into()));
    }
    let cfg = match analyze(input.insns) {
        Ok(c) => c,
        Err(e) => {
            let pc = match e {
                CfgError::FallsThrough { pc, .. } => Some(pc),
                _ => Some(e.pc()),
            };
            return Err(reject(pc, e.to_string()));
        }
    };
    let mut env = Env::new(input, opts, cfg);
    if let Err(VErr(message)) = env.prepare() {
        let pc = Some(env.insn_idx);
        return Err(Rejection {
            pc,
            message,
            path: Vec::new(),
            log: std::mem::take(&mut env.log),
            stats: env.stats,
        });
    }
    let result = env.check_all();
    match result {
        Ok(()) => Ok(Verified {
            facts: Facts {
                access: env.aux.iter().map(|a| a.fact.clone()).collect(),
                reached: env.aux.iter().map(|a| a.seen).collect(),
                stack_depth: env.stack_depth.clone(),
                max_ctx_offset: env.max_ctx_offset,
            },
            stats: env.stats,
            log: std::mem::take(&mut env.log),
        }),
        Err(VErr(message)) => {
            if env.logging() {
                env.log.push_str(&message);
                env.log.push('\n');
            }
            Err(Rejection {
                pc: Some(env.insn_idx),
                message,
                path: env.path(),
                log: std::mem::take(&mut env.log),
                stats: env.stats,
            })
        }
    }
}

impl<'a> Env<'a> {
    fn new(input: &Input<'a>, opts: &'a Options, cfg: crate::analysis::Cfg) -> Env<'a> {
        let n = input.insns.len();
        let live = liveness::compute(input.insns, &cfg);
        let stack_live = liveness::StackLive::new(input.insns, &cfg);
        let nfuncs = cfg.functions.len();
        Env {
            insns: input.insns,
            maps: Maps::new(input.maps, input.btf),
            btf: input.btf,
            func_info: input.func_info,
            endian: input.endian,
            opts,
            info: progtype::info_for(opts.prog_type, opts.pt_regs),
            cfg,
            live,
            stack_live,
            prune_point: vec![false; n],
            force_checkpoint: vec![false; n],
            calls_callback: vec![false; n],
            aux: vec![InsnAux::default(); n],
            cur: State {
                frames: vec![Frame::new(0, 0, None)],
                refs: Vec::new(),
                lock: None,
                may_goto_depth: 0,
                callback_unroll_depth: 0,
                parent: None,
                hist: Vec::new(),
            },
            insn_idx: 0,
            prev_insn_idx: 0,
            pending: Vec::new(),
            checkpoints: Vec::new(),
            explored: vec![Vec::new(); n],
            id_gen: 0,
            stats: Stats::default(),
            states_live: 0,
            jmps_processed: 0,
            prev_jmps_processed: 0,
            prev_insn_processed: 0,
            log: String::new(),
            path_arena: vec![(0, 0, 0)],
            cur_path: 0,
            stack_depth: vec![0; nfuncs],
            global_funcs: vec![false; nfuncs],
            globals_to_check: Vec::new(),
            used_maps: Vec::new(),
            max_ctx_offset: 0,
        }
    }

    /// Checks before simulation: map references, reachability, prune points.
    fn prepare(&mut self) -> VResult<()> {
        for pc in 0..self.insns.len() {
            self.insn_idx = pc;
            // The kernel checks every opcode up front, dead code included;
            // it has no indirect call.
            if let Insn::Callx { .. } = self.insns[pc] {
                bail!("unknown opcode 8d");
            }
            if let Insn::Lddw { src, imm, .. } = self.insns[pc] {
                match src {
                    LddwSrc::MapFd | LddwSrc::MapValue => {
                        // Raw file descriptors: bpfc has no open maps.
                        let (lo, _) = Insn::lddw_halves(imm);
                        bail!("fd {lo} is not pointing to valid bpf_map");
                    }
                    LddwSrc::MapIdx | LddwSrc::MapIdxValue => {
                        let (lo, hi) = Insn::lddw_halves(imm);
                        let idx = lo as u32;
                        let Some(map) = input_map(&self.maps, idx) else {
                            bail!("fd {lo} is not pointing to valid bpf_map");
                        };
                        if matches!(src, LddwSrc::MapIdxValue | LddwSrc::MapValue) {
                            if map.max_entries != 1 || !matches!(map.map_type, 2 /* array */) {
                                bail!(
                                    "map_value pointer is only supported for single-entry arrays"
                                );
                            }
                            if hi < 0 || hi as u32 >= map.value_size {
                                bail!(
                                    "invalid access to map value pointer, value_size={} off={}",
                                    map.value_size,
                                    hi
                                );
                            }
                        }
                        if !self.used_maps.contains(&idx) {
                            self.check_map_prog_compatibility(idx)?;
                            if self.used_maps.len() >= MAX_USED_MAPS {
                                bail!(
                                    "The total number of maps per program has reached the limit of {}",
                                    MAX_USED_MAPS
                                );
                            }
                            self.used_maps.push(idx);
                        }
                    }
                    LddwSrc::BtfId => bail!("kernel variables (ksym) are not supported by bpfc"),
                    LddwSrc::Func | LddwSrc::Imm => {}
                }
            }
        }
        self.check_btf_func()?;
        if let Some(pc) = self.cfg.first_unreachable() {
            self.insn_idx = pc;
            bail!("unreachable insn {pc}");
        }
        self.mark_prune_points();
        self.classify_functions();
        Ok(())
    }

    /// Maps some program types may not use (`check_map_prog_compatibility`).
    fn check_map_prog_compatibility(&self, idx: u32) -> VResult<()> {
        use crate::loader::ProgType::*;
        let fields = helper::special_fields(self, idx);
        let has = |n: &str| fields.iter().any(|f| f.0 == n);
        let ty = self.opts.prog_type;
        let tracing = matches!(ty, Kprobe | Tracepoint | PerfEvent | RawTracepoint);
        if has("bpf_spin_lock") {
            if ty == SocketFilter {
                bail!("socket filter progs cannot use bpf_spin_lock yet");
            }
            if tracing {
                bail!("tracing progs cannot use bpf_spin_lock yet");
            }
        }
        if has("bpf_timer") && tracing {
            bail!("tracing progs cannot use bpf_timer yet");
        }
        if has("bpf_wq") && tracing {
            bail!("tracing progs cannot use bpf_wq yet");
        }
        let map = &self.maps.defs[idx as usize];
        if map.map_type == 26 {
            bail!("bpf_struct_ops map cannot be used in prog");
        }
        if self.opts.sleepable
            && !matches!(
                map.map_type,
                1 | 9 | 2 | 5 | 6 | 10 | 12 | 13 | 27 | 31 | 28 | 24 | 29 | 32 | 22 | 23 | 33
            )
        {
            bail!("Sleepable programs can only use array, hash, ringbuf and local storage maps");
        }
        Ok(())
    }

    /// Functions other than the entry may use legacy packet loads and tail
    /// calls only when BTF says they return an int (`check_btf_func`).
    fn check_btf_func(&mut self) -> VResult<()> {
        for (i, f) in self.cfg.functions.iter().enumerate().skip(1) {
            let has_ld_abs = f
                .range()
                .any(|pc| matches!(self.insns[pc], Insn::LdAbs { .. } | Insn::LdInd { .. }));
            let has_tail_call = f.range().any(|pc| {
                matches!(self.insns[pc], Insn::Call(CallTarget::Helper(id)) if id as u32 == hid::TAIL_CALL)
            });
            if !has_ld_abs && !has_tail_call {
                continue;
            }
            self.insn_idx = f.start;
            let ret_int = self
                .func_info
                .iter()
                .find(|(pc, _)| *pc == f.start)
                .and_then(|&(_, tid)| {
                    let btf = self.btf?;
                    let crate::loader::btf::TypeKind::Func { proto, .. } = btf.get(tid)?.kind
                    else {
                        return None;
                    };
                    let crate::loader::btf::TypeKind::FuncProto { ret, .. } = btf.get(proto)?.kind
                    else {
                        return None;
                    };
                    let r = btf.skip_mods_and_typedefs(ret);
                    Some(matches!(
                        btf.get(r).map(|t| &t.kind),
                        Some(
                            crate::loader::btf::TypeKind::Int { size: ..=8, .. }
                                | crate::loader::btf::TypeKind::Enum { .. }
                                | crate::loader::btf::TypeKind::Enum64 { .. }
                        )
                    ))
                });
            match ret_int {
                None if self.func_info.is_empty() => {
                    if has_ld_abs {
                        bail!("LD_ABS is not allowed in subprogs without BTF");
                    }
                    bail!("tail_call is not allowed in subprogs without BTF");
                }
                Some(false) if has_ld_abs => {
                    bail!("LD_ABS is only allowed in functions that return 'int'.")
                }
                Some(false) => bail!("tail_call is only allowed in functions that return 'int'."),
                _ => {}
            }
            let _ = i;
        }
        Ok(())
    }

    fn mark_prune_points(&mut self) {
        let n = self.insns.len();
        for pc in 0..n {
            match self.insns[pc] {
                Insn::Lddw {
                    src: LddwSrc::Func,
                    imm,
                    ..
                } => {
                    // As a call (`visit_func_call_insn`): the instruction,
                    // the one after it and the callback's entry.
                    self.prune_point[pc] = true;
                    if pc + 2 < n {
                        self.prune_point[pc + 2] = true;
                    }
                    let t = pc as i64 + 1 + Insn::lddw_halves(imm).0 as i64;
                    if (0..n as i64).contains(&t) {
                        self.prune_point[t as usize] = true;
                    }
                }
                Insn::Call(target) => {
                    if let CallTarget::Helper(id) = target {
                        let id = id as u32;
                        if id == hid::TIMER_SET_CALLBACK {
                            self.prune_point[pc] = true;
                        }
                        if SYNC_CALLBACK_HELPERS.contains(&id) {
                            self.calls_callback[pc] = true;
                            self.force_checkpoint[pc] = true;
                            self.prune_point[pc] = true;
                        }
                    }
                    if pc + 1 < n {
                        self.prune_point[pc + 1] = true;
                    }
                    if let CallTarget::Local(off) = target {
                        // The call and the callee's entry (a branch edge).
                        self.prune_point[pc] = true;
                        let t = pc as i64 + 1 + off as i64;
                        if (0..n as i64).contains(&t) {
                            self.prune_point[t as usize] = true;
                        }
                    }
                }
                Insn::Callx { .. } if pc + 1 < n => {
                    self.prune_point[pc + 1] = true;
                }
                Insn::Ja { off, .. } => {
                    let t = (pc as i64 + 1 + off as i64) as usize;
                    self.prune_point[t] = true;
                }
                Insn::Jmp { off, .. } => {
                    self.prune_point[pc] = true;
                    let t = (pc as i64 + 1 + off as i64) as usize;
                    self.prune_point[t] = true;
                }
                Insn::MayGoto { off } => {
                    // A conditional jump whose every visit is a checkpoint.
                    self.prune_point[pc] = true;
                    self.force_checkpoint[pc] = true;
                    let t = (pc as i64 + 1 + off as i64) as usize;
                    self.prune_point[t] = true;
                }
                _ => {}
            }
        }
    }

    /// Mark functions whose BTF linkage is global: the kernel verifies
    /// them on their own, against their BTF signature.
    fn classify_functions(&mut self) {
        let Some(btf) = self.btf else { return };
        for &(pc, type_id) in self.func_info {
            if pc == 0 {
                continue;
            }
            if let Some((i, _)) = self.cfg.function_at(pc) {
                if let Some(t) = btf.get(type_id) {
                    if let crate::loader::btf::TypeKind::Func { linkage, .. } = t.kind {
                        self.global_funcs[i] = linkage == 1;
                    }
                }
            }
        }
    }

    /// Verify the entry function, then every global function it calls.
    fn check_all(&mut self) -> VResult<()> {
        self.check_function(0)?;
        let mut done = vec![false; self.cfg.functions.len()];
        done[0] = true;
        while let Some(f) = self.globals_to_check.pop() {
            if done[f] {
                continue;
            }
            done[f] = true;
            self.check_function(f)?;
        }
        self.insn_idx = 0;
        call::check_max_stack_depth(self)
    }

    /// `do_check_common`: one function from a fresh state.
    fn check_function(&mut self, func: usize) -> VResult<()> {
        let start = self.cfg.functions[func].start;
        self.pending.clear();
        self.checkpoints.clear();
        for e in &mut self.explored {
            e.clear();
        }
        self.cur = State {
            frames: vec![Frame::new(0, func, None)],
            refs: Vec::new(),
            lock: None,
            may_goto_depth: 0,
            callback_unroll_depth: 0,
            parent: None,
            hist: Vec::new(),
        };
        self.cur_path = 0;
        self.insn_idx = start;
        if func == 0 {
            *self.cur.reg_mut(1) = Reg::ptr(RegType::Ctx);
        } else {
            let name = self
                .func_name(func)
                .unwrap_or_else(|| format!("func#{func}"));
            self.log_line(&format!("Validating {name}() func#{func}..."));
            call::init_global_args(self, func)?;
        }
        self.do_check()
    }

    /// The BTF name of function `func`.
    pub fn func_name(&self, func: usize) -> Option<String> {
        let start = self.cfg.functions.get(func)?.start;
        let btf = self.btf?;
        let (_, tid) = self.func_info.iter().find(|(pc, _)| *pc == start)?;
        btf.get(*tid).map(|t| t.name.clone())
    }

    fn do_check(&mut self) -> VResult<()> {
        let mut print_state = false;
        loop {
            let pc = self.insn_idx;
            if pc >= self.insns.len() {
                bail!("invalid insn idx {pc} insn_cnt {}", self.insns.len());
            }
            self.stats.insns_processed += 1;

            if self.stats.insns_processed > self.opts.max_insns {
                bail!(
                    "BPF program is too large. Processed {} insn",
                    self.stats.insns_processed
                );
            }
            if self.prune_point[pc] && self.is_state_visited(pc)? {
                if self.logging() {
                    if print_state {
                        let line = format!("\nfrom {} to {pc}: safe", self.prev_insn_idx);
                        self.log_line(&line);
                    } else {
                        self.log_line(&format!("{pc}: safe"));
                    }
                }
                if self.path_done() {
                    return Ok(());
                }
                print_state = true;
                continue;
            }
            if self.logging() {
                if print_state && self.opts.log_level >= 2 {
                    let s = fmt::frame_str(self.cur.cur(), &self.maps.defs);
                    let line = format!("\nfrom {} to {pc}:{s}", self.prev_insn_idx);
                    self.log_line(&line);
                } else if self.opts.log_level >= 2 {
                    let s = fmt::frame_str(self.cur.cur(), &self.maps.defs);
                    self.log_line(&format!("{pc}:{s}"));
                }
                print_state = false;
                let text =
                    crate::disasm::format_insn(pc, &self.insns[pc], crate::disasm::Syntax::Kernel);
                self.log_line(&format!("{pc}: {text}"));
            }
            self.aux[pc].seen = true;
            let prev = self.prev_insn_idx;
            self.push_hist(pc, prev);
            self.prev_insn_idx = pc;
            let insn = self.insns[pc];
            match insn {
                Insn::Alu { .. } | Insn::Neg { .. } | Insn::End { .. } => {
                    alu::check_alu(self, &insn)?
                }
                Insn::Ldx { .. } => mem::check_load(self, &insn)?,
                Insn::Stx { .. } => mem::check_store(self, &insn)?,
                Insn::St { .. } => mem::check_store_imm(self, &insn)?,
                Insn::Atomic { .. } => mem::check_atomic(self, &insn)?,
                Insn::Call(target) => {
                    self.jmps_processed += 1;
                    if self.cur.lock.is_some() {
                        let unlock = matches!(target, CallTarget::Helper(id) if id as u32 == hid::SPIN_UNLOCK);
                        if !unlock {
                            bail!("function calls are not allowed while holding a lock");
                        }
                    }
                    match target {
                        CallTarget::Local(_) => call::check_func_call(self)?,
                        CallTarget::Helper(id) => helper::check_helper_call(self, id)?,
                        CallTarget::Kfunc { .. } => {
                            bail!("calling kernel function is not supported by bpfc's verifier")
                        }
                    }
                }
                Insn::Callx { .. } => {
                    self.jmps_processed += 1;
                    bail!("unknown opcode 8d");
                }
                Insn::Ja { off, .. } => {
                    self.jmps_processed += 1;
                    self.insn_idx = (pc as i64 + 1 + off as i64) as usize;
                    continue;
                }
                Insn::Exit => {
                    self.jmps_processed += 1;
                    if self.cur.lock.is_some() && self.cur.curframe() == 0 {
                        bail!("bpf_spin_unlock is missing");
                    }
                    self.check_reference_leak()?;
                    if self.cur.curframe() > 0 {
                        call::prepare_func_exit(self)?;
                        print_state = true;
                        continue;
                    }
                    self.check_return_code()?;
                    if self.path_done() {
                        return Ok(());
                    }
                    print_state = true;
                    continue;
                }
                Insn::Jmp { .. } => {
                    self.jmps_processed += 1;
                    jmp::check_cond_jmp(self, &insn)?;
                }
                Insn::MayGoto { off } => {
                    self.jmps_processed += 1;
                    jmp::check_may_goto(self, off)?;
                    self.insn_idx = (pc as i64 + 1 + off as i64) as usize;
                    continue;
                }
                Insn::Lddw { dst, src, imm } => {
                    self.check_ld_imm(dst, src, imm)?;
                    self.insn_idx += 1;
                    self.aux[pc + 1].seen = true;
                }
                Insn::LdAbs { .. } | Insn::LdInd { .. } => self.check_ld_abs(&insn)?,
                Insn::LddwHigh => bail!("invalid BPF_LD_IMM insn"),
            }
            self.insn_idx += 1;
        }
    }

    /// The current path ended (exit or pruned): count it off its
    /// checkpoints and pop the next pending branch. True when none is left.
    pub(crate) fn path_done(&mut self) -> bool {
        let mut p = self.cur.parent;
        while let Some(i) = p {
            let cp = &mut self.checkpoints[i];
            cp.branches = cp.branches.saturating_sub(1);
            if cp.branches > 0 {
                break;
            }
            p = cp.parent;
        }
        match self.pending.pop() {
            None => true,
            Some(b) => {
                self.cur = b.state;
                self.insn_idx = b.insn;
                self.prev_insn_idx = b.prev;
                self.cur_path = b.path;
                if self.opts.log_level == 1 {
                    self.log.truncate(b.log_len);
                }
                if self.logging() {
                    let s = fmt::frame_str(self.cur.cur(), &self.maps.defs);
                    let line = format!("from {} to {}:{s}", b.prev, b.insn);
                    self.log_line(&line);
                }
                false
            }
        }
    }

    /// Save the current state to continue at `insn` later (`push_stack`);
    /// returns a mutable reference to the saved state.
    pub(crate) fn push_branch(&mut self, insn: usize, prev: usize) -> VResult<&mut State> {
        if self.pending.len() >= MAX_PENDING_BRANCHES {
            bail!(
                "The sequence of {} jumps is too complex.",
                self.pending.len() + 1
            );
        }
        if let Some(p) = self.cur.parent {
            self.checkpoints[p].branches += 1;
        }
        let path = self.push_path(prev, insn, self.cur_path);
        self.pending.push(Pending {
            state: self.cur.clone(),
            insn,
            prev,
            log_len: self.log.len(),
            path,
        });
        Ok(&mut self.pending.last_mut().expect("just pushed").state)
    }

    /// Read of register `r` as a source operand.
    pub(crate) fn check_src(&self, r: IReg) -> VResult<()> {
        if self.cur.reg(r.num()).ty == RegType::NotInit {
            bail!("R{} !read_ok", r.num());
        }
        Ok(())
    }

    /// `r` as a destination operand.
    pub(crate) fn check_dst(&self, r: IReg) -> VResult<()> {
        if r == IReg::FP {
            bail!("frame pointer is read only");
        }
        Ok(())
    }

    fn check_ld_imm(&mut self, dst: IReg, src: LddwSrc, imm: u64) -> VResult<()> {
        self.check_dst(dst)?;
        let pc = self.insn_idx;
        let (lo, hi) = Insn::lddw_halves(imm);
        let reg = match src {
            LddwSrc::Imm => Reg::konst(imm),
            LddwSrc::Func => {
                let target = (pc as i64 + 1 + lo as i64) as usize;
                let Some((func, _)) = self.cfg.function_at(target) else {
                    bail!("invalid func pc+{lo}");
                };
                if self.func_info.is_empty() {
                    bail!("missing btf func_info");
                }
                if self.global_funcs[func] {
                    bail!("callback function not static");
                }
                if func == 0 {
                    bail!("callback function cannot be the main program");
                }
                let mut r = Reg::ptr(RegType::Func);
                r.subprog = func as u32;
                r
            }
            LddwSrc::MapIdx | LddwSrc::MapFd => {
                let mut r = Reg::ptr(RegType::MapPtr);
                r.map = lo as u32;
                r
            }
            LddwSrc::MapIdxValue | LddwSrc::MapValue => {
                let mut r = Reg::ptr(RegType::MapValue);
                r.map = lo as u32;
                r.off = hi;
                r
            }
            LddwSrc::BtfId => bail!("bpf verifier is misconfigured"),
        };
        *self.cur.reg_mut(dst.num()) = reg;
        Ok(())
    }

    fn check_ld_abs(&mut self, insn: &Insn) -> VResult<()> {
        if !self.info.ld_abs {
            bail!("BPF_LD_[ABS|IND] instructions not allowed for this program type");
        }
        if self.cur.frames.iter().skip(1).any(|f| f.in_callback) {
            bail!("cannot use BPF_LD_[ABS|IND] within callback");
        }
        if let Insn::LdAbs { size, .. } | Insn::LdInd { size, .. } = insn {
            if *size == crate::isa::Size::DW {
                bail!("BPF_LD_[ABS|IND] uses reserved fields");
            }
        }
        self.check_src(IReg::R6)?;
        if !self.cur.refs.is_empty() {
            let r = self.cur.refs[0];
            bail!(
                "Unreleased reference id={} alloc_insn={}\nBPF_LD_[ABS|IND] cannot be mixed with socket references",
                r.id,
                r.insn
            );
        }
        if self.cur.lock.is_some() {
            bail!("BPF_LD_[ABS|IND] cannot be used inside bpf_spin_lock-ed region");
        }
        if self.cur.reg(6).ty != RegType::Ctx {
            bail!("at the time of BPF_LD_ABS|IND R6 != pointer to skb");
        }
        if let Insn::LdInd { src, .. } = insn {
            self.check_src(*src)?;
        }
        mem::check_ptr_off_reg(self, 6, false)?;
        for r in 0..=5 {
            *self.cur.reg_mut(r) = Reg::not_init();
        }
        *self.cur.reg_mut(0) = Reg::unknown();
        if self.cur.curframe() > 0 {
            // The hidden exit with r0 = 0 the kernel emits on a failed load.
            let pc = self.insn_idx;
            self.push_branch(pc + 1, pc)?;
            *self.cur.reg_mut(0) = Reg::konst(0);
            call::prepare_func_exit(self)?;
            self.insn_idx -= 1;
        }
        Ok(())
    }

    fn check_reference_leak(&mut self) -> VResult<()> {
        let frame = self.cur.cur();
        if frame.frameno != 0 && !frame.in_callback {
            return Ok(());
        }
        let fno = frame.frameno;
        let in_cb = frame.in_callback;
        let mut msg = String::new();
        for r in &self.cur.refs {
            if in_cb && r.callback_frame != Some(fno) {
                continue;
            }
            if !msg.is_empty() {
                msg.push('\n');
            }
            msg.push_str(&format!(
                "Unreleased reference id={} alloc_insn={}",
                r.id, r.insn
            ));
        }
        if !msg.is_empty() {
            return Err(VErr(msg));
        }
        Ok(())
    }

    fn check_return_code(&mut self) -> VResult<()> {
        self.check_src(IReg::R0)?;
        let frame = self.cur.cur();
        let r0 = self.cur.reg(0).clone();
        let is_subprog = frame.subprog != 0;
        if frame.in_async_callback {
            return self.enforce_retval(&r0, (0, 0), "At async callback return");
        }
        if is_subprog {
            if r0.ty != RegType::Scalar {
                bail!(
                    "At subprogram exit the register R0 is not a scalar value ({})",
                    fmt::type_str(&r0)
                );
            }
            return Ok(());
        }
        match progtype::return_range(self.opts.prog_type, self.opts.attach_type.as_deref()) {
            None => Ok(()),
            Some((lo, hi)) => self.enforce_retval(&r0, (lo as i64, hi as i64), "At program exit"),
        }
    }

    fn enforce_retval(&mut self, r0: &Reg, (lo, hi): (i64, i64), ctx: &str) -> VResult<()> {
        if r0.ty != RegType::Scalar {
            bail!(
                "{ctx} the register R0 is not a known value ({})",
                fmt::type_str(r0)
            );
        }
        self.mark_chain_precision(0);
        if r0.b.smin < lo || r0.b.smax > hi {
            let mut m = format!("{ctx} the register R0 has");
            let mut unknown = true;
            if r0.b.smin > i64::MIN {
                m.push_str(&format!(" smin={}", r0.b.smin));
                unknown = false;
            }
            if r0.b.smax < i64::MAX {
                m.push_str(&format!(" smax={}", r0.b.smax));
                unknown = false;
            }
            if unknown {
                m.push_str(" unknown scalar value");
            }
            m.push_str(&format!(" should have been in [{lo}, {hi}]"));
            return Err(VErr(m));
        }
        Ok(())
    }
}

/// Map `idx` of the program itself (not an inner template).
fn input_map(maps: &Maps, idx: u32) -> Option<&crate::loader::MapDef> {
    maps.defs[..maps.own].get(idx as usize)
}

/// The type a context field read produces.
pub(crate) fn field_reg(kind: crate::progtype::FieldKind, env: &mut Env) -> Reg {
    use crate::progtype::FieldKind::*;
    match kind {
        Scalar => Reg::unknown(),
        PacketData => Reg::ptr(RegType::Packet),
        PacketEnd => Reg::ptr(RegType::PacketEnd),
        PacketMeta => Reg::ptr(RegType::PacketMeta),
        FlowKeys => Reg::ptr(RegType::FlowKeys),
        Socket => Reg::ptr(RegType::Socket),
        TpBuffer => Reg::ptr(RegType::TpBuffer),
        SockCommonOrNull | SocketOrNull => {
            let mut r = Reg::ptr(if kind == SockCommonOrNull {
                RegType::SockCommon
            } else {
                RegType::Socket
            });
            r.flags |= flag::MAYBE_NULL;
            r.id = env.new_id();
            r
        }
        Opaque => {
            let mut r = Reg::ptr(RegType::BtfId);
            r.flags |= flag::UNTRUSTED;
            r
        }
    }
}
