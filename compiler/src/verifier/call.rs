//! Calls between the program's functions: local calls get a new frame
//! (at most 8), global functions are checked against their BTF signature
//! and verified on their own, callbacks handed to helpers are entered as
//! often as the helper may call them until their states converge, and
//! exits return to the caller. Also the combined stack depth of call
//! chains (`check_max_stack_depth`).

use super::state::{flag, Frame, Reg, RegType};
use super::{bail, fmt, mem, Env, VResult, MAX_STACK};
use crate::isa::{CallTarget, Insn, MAX_CALL_FRAMES};
use crate::loader::btf::TypeKind;
use crate::loader::ProgType;
use bpfc_runtime::helpers::proto::id;

/// What a global function's argument is (`bpf_subprog_arg_info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GlobalArg {
    Scalar,
    Ctx,
    /// Memory of this many bytes; `nullable` unless tagged non-null.
    Mem {
        size: u32,
        nullable: bool,
    },
    /// A kernel object (`arg:trusted`).
    Trusted {
        nullable: bool,
    },
}

/// The C struct a program type's context is, as BTF names it (global
/// function arguments of this type are the context).
fn ctx_struct_name(ty: ProgType) -> &'static str {
    use ProgType::*;
    match ty {
        SocketFilter | SchedCls | SchedAct | CgroupSkb | LwtIn | LwtOut | LwtXmit
        | LwtSeg6local | SkSkb | FlowDissector => "__sk_buff",
        Xdp => "xdp_md",
        CgroupSockAddr => "bpf_sock_addr",
        CgroupSock => "bpf_sock",
        SockOps => "bpf_sock_ops",
        SkMsg => "sk_msg_md",
        SkReuseport => "sk_reuseport_md",
        SkLookup => "bpf_sk_lookup",
        CgroupSysctl => "bpf_sysctl",
        CgroupDevice => "bpf_cgroup_dev_ctx",
        CgroupSockopt => "bpf_sockopt",
        Kprobe => "pt_regs",
        PerfEvent => "bpf_perf_event_data",
        RawTracepoint | RawTracepointWritable => "bpf_raw_tracepoint_args",
        Netfilter => "bpf_nf_ctx",
        _ => "",
    }
}

/// The argument kinds of global function `func` from its BTF
/// (`btf_prepare_func_args`), or the kernel's complaint.
fn global_args(env: &Env, func: usize) -> VResult<Vec<GlobalArg>> {
    let start = env.cfg.functions[func].start;
    let (Some(btf), Some(&(_, tid))) = (env.btf, env.func_info.iter().find(|(pc, _)| *pc == start))
    else {
        bail!("Global functions need valid BTF");
    };
    let Some(fn_t) = btf.get(tid) else {
        bail!("BTF of func#{func} doesn't point to KIND_FUNC");
    };
    let name = fn_t.name.clone();
    let TypeKind::Func { proto, .. } = fn_t.kind else {
        bail!("BTF of func#{func} doesn't point to KIND_FUNC");
    };
    let Some(TypeKind::FuncProto { ret, params }) = btf.get(proto).map(|t| t.kind.clone()) else {
        bail!("Invalid type of function {name}()");
    };
    if params.len() > 5 {
        bail!(
            "Global function {name}() with {} > 5 args. Buggy compiler.",
            params.len()
        );
    }
    let ret = btf.skip_mods_and_typedefs(ret);
    if !matches!(
        btf.get(ret).map(|t| &t.kind),
        Some(TypeKind::Int { .. } | TypeKind::Enum { .. } | TypeKind::Enum64 { .. })
    ) {
        bail!("Global function {name}() doesn't return scalar. Only those are supported.");
    }
    let ctx_name = ctx_struct_name(env.opts.prog_type);
    let mut out = Vec::new();
    for (i, p) in params.iter().enumerate() {
        let mut tags = Vec::new();
        for t in &btf.types {
            if let TypeKind::DeclTag {
                type_id,
                component_idx,
            } = t.kind
            {
                if type_id == tid && component_idx == i as i32 {
                    if let Some(tag) = t.name.strip_prefix("arg:") {
                        tags.push(tag.to_string());
                    }
                }
            }
        }
        for t in &tags {
            if !matches!(
                t.as_str(),
                "ctx" | "trusted" | "nonnull" | "nullable" | "arena"
            ) {
                bail!("arg#{i} has unsupported set of tags");
            }
        }
        let has = |t: &str| tags.iter().any(|x| x == t);
        let ty = btf.skip_mods_and_typedefs(p.type_id);
        let is_ptr = matches!(btf.get(ty).map(|t| &t.kind), Some(TypeKind::Ptr { .. }));
        if !is_ptr {
            if !tags.is_empty() {
                bail!("arg#{i} has pointer tag, but is not a pointer type");
            }
            match btf.get(ty).map(|t| &t.kind) {
                Some(TypeKind::Int { .. } | TypeKind::Enum { .. } | TypeKind::Enum64 { .. }) => {
                    out.push(GlobalArg::Scalar);
                    continue;
                }
                Some(k) => bail!(
                    "Arg#{i} type {} in {name}() is not supported yet.",
                    k.kind_name().to_uppercase()
                ),
                None => bail!("Arg#{i} type VOID in {name}() is not supported yet."),
            }
        }
        let Some(TypeKind::Ptr { type_id: pointee }) = btf.get(ty).map(|t| t.kind.clone()) else {
            unreachable!()
        };
        let target = btf.skip_mods_and_typedefs(pointee);
        let target_name = btf.get(target).map(|t| t.name.clone()).unwrap_or_default();
        let is_struct = matches!(
            btf.get(target).map(|t| &t.kind),
            Some(TypeKind::Struct { .. })
        );
        let typedef_regs = env.opts.prog_type == ProgType::Kprobe
            && btf.get(pointee).map(|t| t.name.as_str()) == Some("bpf_user_pt_regs_t");
        let is_ctx = has("ctx")
            || typedef_regs
            || (is_struct && !ctx_name.is_empty() && target_name == ctx_name);
        if is_ctx {
            if tags.iter().any(|t| t != "ctx") {
                bail!("arg#{i} has invalid combination of tags");
            }
            out.push(GlobalArg::Ctx);
            continue;
        }
        if has("trusted") {
            if has("nonnull") {
                bail!("arg#{i} has invalid combination of tags");
            }
            out.push(GlobalArg::Trusted {
                nullable: has("nullable"),
            });
            continue;
        }
        if has("arena") {
            out.push(GlobalArg::Scalar);
            continue;
        }
        if has("nullable") {
            bail!("arg#{i} has invalid combination of tags");
        }
        let Some(size) = btf.size_of(target) else {
            let kind = btf
                .get(target)
                .map(|t| t.kind.kind_name().to_uppercase())
                .unwrap_or_else(|| "VOID".into());
            bail!("arg#{i} reference type('{kind} {target_name}') size cannot be determined: -22");
        };
        out.push(GlobalArg::Mem {
            size: size as u32,
            nullable: !has("nonnull"),
        });
    }
    Ok(out)
}

/// Set up the registers of a global function verified on its own.
pub(crate) fn init_global_args(env: &mut Env, func: usize) -> VResult<()> {
    let args = global_args(env, func)?;
    for (i, a) in args.iter().enumerate() {
        let r = match *a {
            GlobalArg::Scalar => Reg::unknown(),
            GlobalArg::Ctx => Reg::ptr(RegType::Ctx),
            GlobalArg::Mem { size, nullable } => {
                let mut r = Reg::ptr(RegType::Mem);
                r.mem_size = size;
                if nullable {
                    r.flags |= flag::MAYBE_NULL;
                }
                r.id = env.new_id();
                r
            }
            GlobalArg::Trusted { nullable } => {
                let mut r = Reg::ptr(RegType::BtfId);
                r.flags |= flag::TRUSTED;
                if nullable {
                    r.flags |= flag::MAYBE_NULL;
                }
                r.id = env.new_id();
                r
            }
        };
        *env.cur.reg_mut(i as u8 + 1) = r;
    }
    Ok(())
}

/// A call of a global function: arguments against its BTF signature
/// (`btf_check_func_arg_match`).
fn check_global_call_args(env: &mut Env, func: usize) -> VResult<()> {
    let args = global_args(env, func)?;
    for (i, a) in args.iter().enumerate() {
        let regno = i as u8 + 1;
        let r = env.cur.reg(regno).clone();
        match *a {
            GlobalArg::Scalar => {
                if r.ty != RegType::Scalar {
                    bail!("R{regno} is not a scalar");
                }
            }
            GlobalArg::Ctx => {
                mem::check_ptr_off_reg(env, regno, false).or_else(|e| {
                    if r.ty == RegType::Scalar {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })?;
                if r.ty != RegType::Ctx {
                    bail!("arg#{i} expects pointer to ctx");
                }
            }
            GlobalArg::Mem { size, nullable } => {
                if r.is_null() {
                    if !nullable {
                        bail!("arg#{i} is expected to be non-NULL");
                    }
                    continue;
                }
                let saved = r.clone();
                let maybe_null = r.maybe_null();
                if maybe_null {
                    env.cur.reg_mut(regno).flags &= !flag::MAYBE_NULL;
                }
                let res = mem::check_helper_mem_access(env, regno, size as i64, false, true, false)
                    .and_then(|_| {
                        mem::check_helper_mem_access(env, regno, size as i64, true, true, false)
                    });
                if maybe_null {
                    *env.cur.reg_mut(regno) = saved;
                }
                res?;
                if !nullable && maybe_null {
                    bail!("arg#{i} is expected to be non-NULL");
                }
            }
            GlobalArg::Trusted { nullable } => {
                if r.is_null() && nullable {
                    continue;
                }
                if r.ty != RegType::BtfId {
                    bail!(
                        "R{regno} type={} expected=ptr_, trusted_ptr_, rcu_ptr_",
                        fmt::type_str(&r)
                    );
                }
            }
        }
    }
    Ok(())
}

/// `call pc+N` (`check_func_call`).
pub(crate) fn check_func_call(env: &mut Env) -> VResult<()> {
    let pc = env.insn_idx;
    let Insn::Call(CallTarget::Local(imm)) = env.insns[pc] else {
        unreachable!()
    };
    let target = (pc as i64 + 1 + imm as i64) as usize;
    let Some((func, _)) = env.cfg.function_at(target) else {
        bail!("verifier bug. No program starts at insn {target}");
    };
    if env.global_funcs[func] {
        let name = env.func_name(func).unwrap_or_default();
        if env.cur.lock.is_some() {
            bail!("global function calls are not allowed while holding a lock,\nuse static function instead");
        }
        if let Err(e) = check_global_call_args(env, func) {
            bail!(
                "{}\nCaller passes invalid args into func#{func} ('{name}')",
                e.0
            );
        }
        env.log_line(&format!(
            "Func#{func} ('{name}') is global and assumed valid."
        ));
        if !env.globals_to_check.contains(&func) {
            env.globals_to_check.push(func);
        }
        if function_changes_pkt_data(env, func) {
            super::helper::clear_all_pkt_pointers(env);
        }
        for r in 1..=5 {
            *env.cur.reg_mut(r) = Reg::not_init();
        }
        *env.cur.reg_mut(0) = Reg::unknown();
        return Ok(());
    }
    setup_func_entry(env, func, pc)?;
    {
        let n = env.cur.frames.len();
        let (callers, callee) = env.cur.frames.split_at_mut(n - 1);
        let caller = callers.last_mut().expect("caller frame");
        for r in 1..=5 {
            callee[0].regs[r] = caller.regs[r].clone();
        }
        for r in 0..=5 {
            caller.regs[r] = Reg::not_init();
        }
    }
    env.insn_idx = env.cfg.functions[func].start - 1;
    if env.logging() {
        env.log_line("caller:");
        let n = env.cur.frames.len();
        let s = fmt::frame_str(&env.cur.frames[n - 2], &env.maps.defs);
        env.log_line(&s);
        env.log_line("callee:");
        env.log_state();
    }
    Ok(())
}

/// Whether a function (or one it calls) may move packet data.
fn function_changes_pkt_data(env: &Env, func: usize) -> bool {
    let mut seen = vec![false; env.cfg.functions.len()];
    let mut stack = vec![func];
    while let Some(f) = stack.pop() {
        if std::mem::replace(&mut seen[f], true) {
            continue;
        }
        for pc in env.cfg.functions[f].range() {
            match env.insns[pc] {
                Insn::Call(CallTarget::Helper(h))
                    if [9u32, 10, 11, 13, 18, 19, 31, 38, 39, 43, 44, 50, 54, 65, 12]
                        .contains(&(h as u32)) =>
                {
                    return true;
                }
                Insn::Call(CallTarget::Local(imm)) => {
                    let t = (pc as i64 + 1 + imm as i64) as usize;
                    if let Some((g, _)) = env.cfg.function_at(t) {
                        stack.push(g);
                    }
                }
                _ => {}
            }
        }
    }
    false
}

/// Push a new frame for `func` called at `callsite` (`setup_func_entry`).
fn setup_func_entry(env: &mut Env, func: usize, callsite: usize) -> VResult<()> {
    let depth = env.cur.frames.len();
    if depth >= MAX_CALL_FRAMES {
        bail!("the call stack of {} frames is too deep", depth + 1);
    }
    env.cur
        .frames
        .push(Frame::new(depth as u8, func, Some(callsite)));
    Ok(())
}

/// A helper that calls `func` back synchronously: explore a path into the
/// callback (which returns to the call instruction) and continue after
/// the call (`push_callback_call`).
pub(crate) fn push_callback_call(
    env: &mut Env,
    helper: u32,
    func: usize,
    map: Option<u32>,
) -> VResult<()> {
    let pc = env.insn_idx;
    let start = env.cfg.functions[func].start;
    if func == 0 {
        bail!("callback function cannot be the main program");
    }
    let map_def = map.map(|m| env.map_of(m).clone());
    let caller_regs = env.cur.cur().regs.clone();
    let depth = env.cur.frames.len();
    if depth >= MAX_CALL_FRAMES {
        bail!("the call stack of {} frames is too deep", depth + 1);
    }
    let branch = env.push_branch(start, pc)?;
    let mut callee = Frame::new(depth as u8, func, Some(pc));
    callee.in_callback = true;
    callee.callback_ret_range = (0, 1);
    match helper {
        id::LOOP => {
            callee.regs[1] = Reg::unknown();
            callee.regs[2] = caller_regs[3].clone();
        }
        id::FOR_EACH_MAP_ELEM => {
            let m = caller_regs[1].clone();
            let Some(def) = map_def else {
                bail!("callback function not allowed for map");
            };
            if !matches!(def.map_type, 1 | 2 | 5 | 6 | 9 | 10) {
                bail!("callback function not allowed for map");
            }
            callee.regs[1] = m.clone();
            let mut k = Reg::ptr(RegType::MapKey);
            k.map = m.map;
            k.map_uid = m.map_uid;
            callee.regs[2] = k;
            let mut v = Reg::ptr(RegType::MapValue);
            v.map = m.map;
            v.map_uid = m.map_uid;
            callee.regs[3] = v;
            callee.regs[4] = caller_regs[3].clone();
        }
        id::FIND_VMA => {
            callee.regs[1] = caller_regs[1].clone();
            let mut vma = Reg::ptr(RegType::BtfId);
            vma.flags |= flag::TRUSTED;
            callee.regs[2] = vma;
            callee.regs[3] = caller_regs[4].clone();
        }
        _ => {
            // user_ringbuf_drain: a dynptr and the context.
            callee.regs[1] = Reg::ptr(RegType::DynptrPtr);
            callee.regs[2] = caller_regs[3].clone();
        }
    }
    branch.callback_unroll_depth += 1;
    let n = branch.frames.len();
    branch.frames[n - 1].callback_depth += 1;
    branch.frames.push(callee);
    env.cur.cur_mut().callback_depth = 0;
    Ok(())
}

/// `bpf_timer_set_callback`: the callback runs later on its own, from a
/// fresh state with the map, key and value as arguments.
pub(crate) fn push_async_callback(env: &mut Env, func: usize) -> VResult<()> {
    let pc = env.insn_idx;
    let start = env.cfg.functions[func].start;
    // r1 holds the timer (a map value); r2 the callback.
    let timer = env.cur.reg(1).clone();
    let parent = env.cur.parent;
    let branch = env.push_branch(start, pc)?;
    let mut frame = Frame::new(0, func, Some(pc));
    // A fresh start: no checkpoint before it, no history.
    branch.parent = None;
    branch.hist.clear();
    frame.in_async_callback = true;
    let mut m = Reg::ptr(RegType::MapPtr);
    m.map = timer.map;
    m.map_uid = timer.map_uid;
    let mut k = Reg::ptr(RegType::MapKey);
    k.map = timer.map;
    let mut v = Reg::ptr(RegType::MapValue);
    v.map = timer.map;
    frame.regs[1] = m;
    frame.regs[2] = k;
    frame.regs[3] = v;
    branch.frames = vec![frame];
    branch.refs.clear();
    branch.lock = None;
    if let Some(p) = parent {
        env.checkpoints[p].branches -= 1;
    }
    Ok(())
}

/// `exit` from a called function (`prepare_func_exit`).
pub(crate) fn prepare_func_exit(env: &mut Env) -> VResult<()> {
    let callee = env.cur.frames.pop().expect("a callee frame");
    let r0 = callee.regs[0].clone();
    if r0.ty == RegType::Stack {
        env.cur.frames.push(callee);
        bail!("cannot return stack pointer to the caller");
    }
    if callee.in_callback {
        if r0.ty != RegType::Scalar {
            env.cur.frames.push(callee);
            bail!("R0 not a scalar value");
        }
        // The callback's return value decides what the helper does.
        env.cur.frames.push(callee.clone());
        env.mark_chain_precision(0);
        env.cur.frames.pop();
        let (lo, hi) = callee.callback_ret_range;
        if r0.b.smin < lo || r0.b.smax > hi {
            env.cur.frames.push(callee);
            let mut m = "At callback return the register R0 has".to_string();
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
            return Err(super::VErr(m));
        }
    } else {
        env.cur.cur_mut().regs[0] = r0;
    }
    let callsite = callee.callsite.expect("callees have a call site");
    // A callback returns to its helper call, which may call it again.
    env.insn_idx = if callee.in_callback {
        callsite
    } else {
        callsite + 1
    };
    if env.logging() {
        env.log_line("returning from callee:");
        let s = fmt::frame_str(&callee, &env.maps.defs);
        env.log_line(&s);
        env.log_line(&format!("to caller at {}:", env.insn_idx));
        env.log_state();
    }
    Ok(())
}

/// The largest combined stack of any call chain must fit in 512 bytes, and
/// chains are at most 8 deep (`check_max_stack_depth`). Callbacks count as
/// called by the function that references them.
pub(crate) fn check_max_stack_depth(env: &mut Env) -> VResult<()> {
    let n = env.cfg.functions.len();
    // Each function's stack, rounded up as for a JIT (16 bytes).
    let depth: Vec<u32> = env
        .stack_depth
        .iter()
        .map(|&d| d.div_ceil(16) * 16)
        .collect();
    let mut callees: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (f, func) in env.cfg.functions.iter().enumerate() {
        for pc in func.range() {
            let t = match env.insns[pc] {
                Insn::Call(CallTarget::Local(imm)) => pc as i64 + 1 + imm as i64,
                Insn::Lddw {
                    src: crate::isa::LddwSrc::Func,
                    imm,
                    ..
                } => pc as i64 + 1 + Insn::lddw_halves(imm).0 as i64,
                _ => continue,
            };
            if let Some((g, _)) = env.cfg.function_at(t as usize) {
                callees[f].push(g);
            }
        }
    }
    let mut stack: Vec<(usize, usize, u32)> = vec![(0, 0, depth[0])];
    while let Some(&mut (f, ref mut next, total)) = stack.last_mut() {
        if total as usize > MAX_STACK {
            let frames = stack.len();
            bail!("combined stack size of {frames} calls is {total}. Too large");
        }
        if *next < callees[f].len() {
            let g = callees[f][*next];
            *next += 1;
            if stack.len() >= MAX_CALL_FRAMES {
                bail!("the call stack of {} frames is too deep !", stack.len());
            }
            stack.push((g, 0, total + depth[g]));
        } else {
            stack.pop();
        }
    }
    Ok(())
}
