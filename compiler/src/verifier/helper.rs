//! Helper calls (`check_helper_call`): the helper must exist and be
//! allowed for the program type; each argument is checked against its
//! kind in [`bpfc_runtime::helpers::proto`] (maps, memory with the size
//! argument after it, context, callbacks, spin locks, timers, references
//! to release); then r0 gets the return kind, references are acquired,
//! caller-saved registers are cleared, and helpers that move packet data
//! invalidate packet pointers.

use super::mem::{self, check_helper_mem_access, Value};
use super::state::{flag, Lock, RefKind, RefState, Reg, RegType, Slot};
use super::{bail, call, fmt, Env, VResult};
use crate::isa::Size;
use crate::loader::btf::TypeKind;
use bpfc_runtime::helpers::proto::{
    self, id, map_compatible, ArgType, ArgTypeBase, HelperProto, RetTypeBase, FIXED_SIZE,
    MAYBE_NULL, RDONLY, RELEASE, RINGBUF, UNINIT, WRITE,
};

/// The kernel's name of helper `id` (`bpf_map_lookup_elem`), or `unknown`.
pub(crate) fn func_id_name(id: i64) -> String {
    match bpfc_runtime::helpers::kernel_name(id) {
        Some(n) if id > 0 => format!("bpf_{n}"),
        _ => "unknown".to_string(),
    }
}

/// Helpers whose packet access moves or resizes the packet
/// (`bpf_helper_changes_pkt_data`).
fn changes_pkt_data(h: u32) -> bool {
    matches!(
        h,
        id::CLONE_REDIRECT
            | id::L3_CSUM_REPLACE
            | id::L4_CSUM_REPLACE
            | id::LWT_PUSH_ENCAP
            | id::LWT_SEG6_ACTION
            | id::LWT_SEG6_ADJUST_SRH
            | id::LWT_SEG6_STORE_BYTES
            | id::MSG_POP_DATA
            | id::MSG_PULL_DATA
            | id::MSG_PUSH_DATA
            | id::SKB_ADJUST_ROOM
            | id::SKB_CHANGE_HEAD
            | id::SKB_CHANGE_PROTO
            | id::SKB_CHANGE_TAIL
            | id::SKB_PULL_DATA
            | id::SKB_STORE_BYTES
            | id::SKB_VLAN_POP
            | id::SKB_VLAN_PUSH
            | 143 // store_hdr_opt
            | id::XDP_ADJUST_HEAD
            | id::XDP_ADJUST_META
            | id::XDP_ADJUST_TAIL
            | id::TAIL_CALL
    )
}

/// What the argument checks found out (`bpf_call_arg_meta`).
#[derive(Default)]
struct Meta {
    map: Option<u32>,
    map_uid: u32,
    /// A stack buffer the helper fills: (register, size).
    raw: Option<(u8, i64)>,
    raw_mode: bool,
    release_regno: Option<u8>,
    ref_obj_id: u32,
    subprog: Option<u32>,
    mem_size: u64,
    msize_max: u64,
    /// The key is a known constant (`get_constant_map_key`).
    const_key: Option<u64>,
}

/// Special fields of a map value, from the map's BTF value type: `(name,
/// offset, size)` of `bpf_spin_lock`, `bpf_timer`, `bpf_wq` and kptrs.
pub(crate) fn special_fields(env: &Env, map: u32) -> Vec<(&'static str, u32, u32)> {
    map_special_fields(env.btf, &env.maps.defs[map as usize])
}

pub(crate) fn map_special_fields(
    btf: Option<&crate::loader::Btf>,
    def: &crate::loader::MapDef,
) -> Vec<(&'static str, u32, u32)> {
    let mut out = Vec::new();
    let (Some(btf), Some(vt)) = (btf, def.value_type_id) else {
        return out;
    };
    collect_fields(btf, vt, 0, &mut out, 0);
    out
}

fn collect_fields(
    btf: &crate::loader::Btf,
    id: u32,
    base: u32,
    out: &mut Vec<(&'static str, u32, u32)>,
    depth: u32,
) {
    if depth > 8 {
        return;
    }
    let id = btf.skip_mods_and_typedefs(id);
    let Some(t) = btf.get(id) else { return };
    match &t.kind {
        TypeKind::Struct { .. } if t.name == "bpf_spin_lock" => {
            out.push(("bpf_spin_lock", base, 4))
        }
        TypeKind::Struct { .. } if t.name == "bpf_timer" => out.push(("bpf_timer", base, 16)),
        TypeKind::Struct { .. } if t.name == "bpf_wq" => out.push(("bpf_wq", base, 16)),
        TypeKind::Struct { members, .. } | TypeKind::Union { members, .. } => {
            for m in members {
                collect_fields(btf, m.type_id, base + m.bit_offset / 8, out, depth + 1);
            }
        }
        TypeKind::Array { elem, nelems, .. } => {
            let esize = btf.size_of(*elem).unwrap_or(0) as u32;
            if *nelems > 0 {
                let before = out.len();
                collect_fields(btf, *elem, base, out, depth + 1);
                // The kernel accepts arrays of special fields only for kptrs;
                // a single element is what matters for spin locks and timers.
                let _ = (before, esize);
            }
        }
        _ => {}
    }
}

/// Whether a pointer into a map value may point to a `bpf_spin_lock`
/// (such pointers keep their id after a null check: the lock is tied to it).
pub(crate) fn may_point_to_spin_lock(maps: &super::Maps, r: &Reg) -> bool {
    r.ty == RegType::MapValue && maps.lock.get(r.map as usize).copied().unwrap_or(false)
}

pub(crate) fn check_helper_call(env: &mut Env, func_id: i32) -> VResult<()> {
    let pc = env.insn_idx;
    let name = func_id_name(func_id as i64);
    let Some(fn_) = u32::try_from(func_id).ok().and_then(proto::proto) else {
        bail!("invalid func {name}#{func_id}");
    };
    let h = fn_.id;
    if !env.info.allows_helper(h) {
        bail!("program of this type cannot use helper {name}#{func_id}");
    }
    if !env.opts.gpl && fn_.gpl_only {
        bail!("cannot call GPL-restricted function from non-GPL compatible program");
    }
    if !env.opts.sleepable && fn_.might_sleep {
        bail!("helper call might sleep in a non-sleepable prog");
    }
    let mut meta = Meta::default();
    for arg in 0..5 {
        check_func_arg(env, arg, &mut meta, fn_, h)?;
    }
    // Maps the program may not write through helpers.
    if let Some(m) = meta.map {
        let flags = env.map_of(m).map_flags;
        if flags & (1 << 7) != 0
            && matches!(
                h,
                id::MAP_DELETE_ELEM | id::MAP_UPDATE_ELEM | id::MAP_PUSH_ELEM | id::MAP_POP_ELEM
            )
        {
            bail!("write into map forbidden");
        }
    }
    // A buffer the helper fills is initialised afterwards.
    if let Some((regno, size)) = meta.raw {
        for i in 0..size {
            mem::check_mem_access(
                env,
                regno,
                i as i32,
                Size::B,
                true,
                Value::Unknown,
                None,
                false,
                false,
            )?;
        }
    }
    if let Some(regno) = meta.release_regno {
        let r = env.cur.reg(regno).clone();
        if meta.ref_obj_id != 0 {
            release_reference(env, meta.ref_obj_id).map_err(|_| {
                super::VErr(format!(
                    "func {name}#{func_id} reference has not been acquired before"
                ))
            })?;
        } else if !r.is_null() {
            bail!("func {name}#{func_id} reference has not been acquired before");
        }
    }
    match h {
        id::TAIL_CALL => {
            if env.cur.lock.is_some() {
                bail!("tail_call cannot be used inside bpf_spin_lock-ed region");
            }
            if let Some(r) = env.cur.refs.first() {
                bail!(
                    "Unreleased reference id={} alloc_insn={}\ntail_call would lead to reference leak",
                    r.id,
                    r.insn
                );
            }
            // A constant key selects the program at fixed time.
            let key = env.cur.reg(3).clone();
            let max = meta.map.map_or(0, |m| env.map_of(m).max_entries as u64);
            if key.is_const(false) && key.const_value(false) < max {
                env.mark_chain_precision(3);
            }
        }
        id::GET_LOCAL_STORAGE => {
            if !env.cur.reg(2).is_null() {
                bail!("get_local_storage() doesn't support non-zero flags");
            }
            env.mark_chain_precision(2);
        }
        id::FOR_EACH_MAP_ELEM | id::FIND_VMA | id::USER_RINGBUF_DRAIN => {
            call::push_callback_call(env, h, meta.subprog.unwrap_or(0) as usize, meta.map)?;
        }
        id::TIMER_SET_CALLBACK => {
            call::push_async_callback(env, meta.subprog.unwrap_or(0) as usize)?;
        }
        id::LOOP => {
            env.mark_chain_precision(1);
            let umax = env.cur.reg(1).b.umax;
            if (env.cur.cur().callback_depth as u64) < umax {
                call::push_callback_call(env, h, meta.subprog.unwrap_or(0) as usize, None)?;
            } else {
                env.cur.cur_mut().callback_depth = 0;
            }
        }
        id::DYNPTR_FROM_MEM => {
            let r1 = env.cur.reg(1);
            if r1.ty != RegType::MapValue {
                bail!(
                    "Unsupported reg type {} for bpf_dynptr_from_mem data",
                    fmt::type_str(r1)
                );
            }
        }
        _ => {}
    }
    // Caller-saved registers are clobbered.
    for r in 0..=5 {
        *env.cur.reg_mut(r) = Reg::not_init();
    }
    let ret = fn_.ret;
    let mut r0 = match ret.base {
        RetTypeBase::Integer => Reg::unknown(),
        RetTypeBase::Void => Reg::not_init(),
        RetTypeBase::PtrToMapValue => {
            let Some(m) = meta.map else {
                bail!("kernel subsystem misconfigured verifier");
            };
            let mut r = Reg::ptr(RegType::MapValue);
            r.map = m;
            r.map_uid = meta.map_uid;
            if !ret.has(MAYBE_NULL) && env.maps.lock[m as usize] {
                r.id = env.new_id();
            }
            r
        }
        RetTypeBase::PtrToSocket => Reg::ptr(RegType::Socket),
        RetTypeBase::PtrToSockCommon => Reg::ptr(RegType::SockCommon),
        RetTypeBase::PtrToTcpSock => Reg::ptr(RegType::TcpSock),
        RetTypeBase::PtrToMem => {
            let mut r = Reg::ptr(RegType::Mem);
            r.mem_size = meta.mem_size as u32;
            if ret.has(RINGBUF) {
                r.flags |= flag::RINGBUF;
            }
            r
        }
        RetTypeBase::PtrToMemOrBtfId | RetTypeBase::PtrToBtfId => {
            let mut r = Reg::ptr(RegType::BtfId);
            r.flags |= flag::TRUSTED;
            r
        }
    };
    // Since Linux 6.14 a lookup in an array with a known in-range key
    // cannot fail, and the running kernel is the oracle.
    let elide = h == id::MAP_LOOKUP_ELEM
        && meta.map.is_some_and(|m| {
            let def = env.map_of(m);
            matches!(def.map_type, 2 | 6)
                && meta.const_key.is_some_and(|k| k < def.max_entries as u64)
        });
    if ret.has(MAYBE_NULL) && !elide {
        r0.flags |= flag::MAYBE_NULL;
        r0.id = env.new_id();
    }
    // tcp_sock, sk_fullsock, skc_to_{tcp6,tcp,tcp_timewait,tcp_request,udp6,mptcp}_sock
    let cast = matches!(h, 95 | 96 | 136..=140 | 196);
    if cast {
        r0.ref_obj_id = meta.ref_obj_id;
    } else if is_acquire(h, meta.map.map(|m| env.map_of(m).map_type)) {
        let rid = env.new_id();
        let callback_frame = acquiring_callback_frame(env);
        env.cur.refs.push(RefState {
            id: rid,
            insn: pc,
            kind: RefKind::Ptr,
            callback_frame,
        });
        r0.id = rid;
        r0.ref_obj_id = rid;
    }
    // Some helpers bound their results.
    if ret.base == RetTypeBase::Integer {
        match h {
            id::GET_STACK
            | id::GET_TASK_STACK
            | id::PROBE_READ_STR
            | id::PROBE_READ_KERNEL_STR
            | id::PROBE_READ_USER_STR => {
                r0.b.smax = meta.msize_max as i64;
                r0.b.s32_max = meta.msize_max as i32;
                r0.b.smin = -4095;
                r0.b.s32_min = -4095;
                r0.b.sync();
            }
            id::GET_SMP_PROCESSOR_ID => {
                let n = (nr_cpus() - 1) as u64;
                r0.b.umax = n;
                r0.b.u32_max = n as u32;
                r0.b.smax = n as i64;
                r0.b.s32_max = n as i32;
                r0.b.umin = 0;
                r0.b.u32_min = 0;
                r0.b.smin = 0;
                r0.b.s32_min = 0;
                r0.b.sync();
            }
            _ => {}
        }
        r0.b.sanitize();
    }
    *env.cur.reg_mut(0) = r0;
    if let Some(m) = meta.map {
        let mt = env.map_of(m).map_type;
        let sockmap_ok = env.info.sockmap_update
            || (env.opts.prog_type == crate::loader::ProgType::SockOps && h == id::MAP_DELETE_ELEM);
        if !map_compatible(
            mt,
            h,
            sockmap_ok && matches!(h, id::MAP_UPDATE_ELEM | id::MAP_DELETE_ELEM),
        ) {
            if matches!(mt, 15 | 18)
                && matches!(h, id::MAP_UPDATE_ELEM | id::MAP_DELETE_ELEM)
                && !sockmap_ok
            {
                bail!(
                    "cannot update sockmap in this context\ncannot pass map_type {mt} into func {name}#{func_id}"
                );
            }
            bail!("cannot pass map_type {mt} into func {name}#{func_id}");
        }
    }
    if changes_pkt_data(h) {
        clear_all_pkt_pointers(env);
    }
    Ok(())
}

/// The number of CPUs the kernel would report (`nr_cpu_ids`).
fn nr_cpus() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

fn acquiring_callback_frame(env: &Env) -> Option<u8> {
    let f = env.cur.cur();
    f.in_callback.then_some(f.frameno)
}

fn is_acquire(h: u32, map_type: Option<u32>) -> bool {
    matches!(
        h,
        id::SK_LOOKUP_TCP
            | id::SK_LOOKUP_UDP
            | id::SKC_LOOKUP_TCP
            | id::RINGBUF_RESERVE
            | id::KPTR_XCHG
    ) || (h == id::MAP_LOOKUP_ELEM && matches!(map_type, Some(15 | 18)))
}

/// Packet pointers become unknown scalars once a helper may have moved
/// the packet (`clear_all_pkt_pointers`).
pub(crate) fn clear_all_pkt_pointers(env: &mut Env) {
    env.cur.for_each_reg(|r| {
        if r.is_pkt_any() {
            *r = Reg::unknown();
        }
    });
}

/// Release the reference `ref_obj_id` and invalidate its copies.
pub(crate) fn release_reference(env: &mut Env, ref_obj_id: u32) -> Result<(), ()> {
    let pos = env
        .cur
        .refs
        .iter()
        .position(|r| r.id == ref_obj_id)
        .ok_or(())?;
    let f = env.cur.cur();
    if f.in_callback && env.cur.refs[pos].callback_frame != Some(f.frameno) {
        return Err(());
    }
    env.cur.refs.remove(pos);
    env.cur.for_each_reg(|r| {
        if r.ref_obj_id == ref_obj_id {
            *r = Reg::unknown();
        }
    });
    Ok(())
}

/// The register types an argument kind accepts (`compatible_reg_types`),
/// as (type, required modifiers) pairs; `None` for kinds checked elsewhere.
fn compatible(base: ArgTypeBase) -> Option<&'static [(RegType, u16)]> {
    use RegType::*;
    const MEM: &[(RegType, u16)] = &[
        (Stack, 0),
        (Packet, 0),
        (PacketMeta, 0),
        (MapKey, 0),
        (MapValue, 0),
        (Mem, 0),
        (Mem, flag::RINGBUF),
        (Buf, 0),
        (BtfId, flag::TRUSTED),
    ];
    Some(match base {
        ArgTypeBase::PtrToMapKey | ArgTypeBase::PtrToMapValue | ArgTypeBase::PtrToMem => MEM,
        ArgTypeBase::ConstSize
        | ArgTypeBase::ConstSizeOrZero
        | ArgTypeBase::ConstAllocSizeOrZero
        | ArgTypeBase::Scalar => &[(Scalar, 0)],
        ArgTypeBase::ConstMapPtr => &[(MapPtr, 0)],
        ArgTypeBase::PtrToCtx => &[(Ctx, 0)],
        ArgTypeBase::PtrToSockCommon => &[(SockCommon, 0), (Socket, 0), (TcpSock, 0), (XdpSock, 0)],
        ArgTypeBase::PtrToBtfIdSockCommon => &[
            (SockCommon, 0),
            (Socket, 0),
            (TcpSock, 0),
            (XdpSock, 0),
            (BtfId, 0),
            (BtfId, flag::TRUSTED),
        ],
        ArgTypeBase::PtrToSocket => &[(Socket, 0)],
        ArgTypeBase::PtrToBtfId => &[(BtfId, 0), (BtfId, flag::TRUSTED), (BtfId, flag::RCU)],
        ArgTypeBase::PtrToSpinLock => &[(MapValue, 0), (BtfId, flag::ALLOC)],
        ArgTypeBase::PtrToRingbufMem => &[(Mem, flag::RINGBUF)],
        ArgTypeBase::PtrToPercpuBtfId => &[(BtfId, flag::PERCPU)],
        ArgTypeBase::PtrToFunc => &[(Func, 0)],
        ArgTypeBase::PtrToStack => &[(Stack, 0)],
        ArgTypeBase::PtrToConstStr => &[(MapValue, 0)],
        ArgTypeBase::PtrToTimer => &[(MapValue, 0)],
        ArgTypeBase::KptrXchgDest => &[(MapValue, 0), (BtfId, flag::ALLOC)],
        ArgTypeBase::PtrToDynptr => &[(Stack, 0), (DynptrPtr, 0)],
        ArgTypeBase::DontCare | ArgTypeBase::Anything | ArgTypeBase::PtrToArena => return None,
    })
}

fn check_reg_type(env: &Env, regno: u8, arg: ArgType) -> VResult<()> {
    let r = env.cur.reg(regno);
    let Some(list) = compatible(arg.base) else {
        return Ok(());
    };
    let mut flags = r.flags;
    if arg.has(RDONLY) {
        flags &= !flag::RDONLY;
    }
    if arg.has(MAYBE_NULL) {
        flags &= !flag::MAYBE_NULL;
    }
    if list.iter().any(|&(t, f)| t == r.ty && f == flags) {
        if r.ty == RegType::BtfId && arg.base == ArgTypeBase::PtrToMem && !arg.has(RDONLY) {
            bail!(
                "{}() may write into memory pointed by R{regno} type={}",
                "helper",
                fmt::type_str(r)
            );
        }
        return Ok(());
    }
    let expected: Vec<String> = list.iter().map(|&(t, f)| fmt::type_str_of(t, f)).collect();
    bail!(
        "R{regno} type={} expected={}",
        fmt::type_str(r),
        expected.join(", ")
    )
}

/// `check_func_arg_reg_off`: which pointers may carry offsets.
fn check_func_arg_reg_off(env: &Env, regno: u8, arg: ArgType) -> VResult<()> {
    let r = env.cur.reg(regno);
    if arg.has(RELEASE) {
        if arg.base == ArgTypeBase::PtrToDynptr && r.ty == RegType::Stack {
            return Ok(());
        }
        if r.off != 0 {
            bail!("R{regno} must have zero offset when passed to release func or trusted arg to kfunc");
        }
        return mem::check_ptr_off_reg(env, regno, false);
    }
    match r.ty {
        RegType::Stack
        | RegType::Packet
        | RegType::PacketMeta
        | RegType::MapKey
        | RegType::MapValue
        | RegType::Buf
        | RegType::Scalar => Ok(()),
        RegType::Mem if r.flags & !(flag::RDONLY | flag::RINGBUF) == 0 => Ok(()),
        RegType::BtfId => mem::check_ptr_off_reg(env, regno, true),
        _ => mem::check_ptr_off_reg(env, regno, false),
    }
}

fn check_func_arg(
    env: &mut Env,
    arg: usize,
    meta: &mut Meta,
    fn_: &HelperProto,
    h: u32,
) -> VResult<()> {
    let regno = arg as u8 + 1;
    let mut at = fn_.args[arg];
    if at.base == ArgTypeBase::DontCare {
        return Ok(());
    }
    env.check_src(crate::isa::Reg::new(regno).expect("valid"))?;
    if at.base == ArgTypeBase::Anything {
        return Ok(());
    }
    let reg = env.cur.reg(regno).clone();
    if reg.is_pkt() {
        let ok = env.info.pkt != crate::progtype::PktAccess::None && fn_.pkt_access;
        if !ok {
            bail!("helper access to the packet is not allowed");
        }
    }
    if at.base == ArgTypeBase::PtrToMapValue {
        let Some(m) = meta.map else {
            bail!("invalid map_ptr to access map->type");
        };
        match env.map_of(m).map_type {
            15 | 18 => {
                if at.flags == 0 {
                    at = ArgType::new(ArgTypeBase::PtrToBtfIdSockCommon, 0);
                } else {
                    bail!("invalid arg_type for sockmap/sockhash");
                }
            }
            30 if h == id::MAP_PEEK_ELEM => at = ArgType::new(ArgTypeBase::PtrToMapValue, 0),
            _ => {}
        }
    }
    let skip_type_check = reg.is_null() && at.has(MAYBE_NULL);
    if skip_type_check {
        env.mark_chain_precision(regno);
    } else {
        check_reg_type(env, regno, at)?;
        check_func_arg_reg_off(env, regno, at)?;
    }
    if at.has(RELEASE) {
        if reg.ref_obj_id == 0 && !reg.is_null() {
            bail!("R{regno} must be referenced when passed to release function");
        }
        meta.release_regno = Some(regno);
    }
    if reg.ref_obj_id != 0 && at.base != ArgTypeBase::KptrXchgDest {
        meta.ref_obj_id = reg.ref_obj_id;
    }
    match at.base {
        ArgTypeBase::ConstMapPtr => {
            if let Some(m) = meta.map {
                if m != reg.map || meta.map_uid != reg.map_uid {
                    bail!(
                        "timer pointer in R1 map_uid={} doesn't match map pointer in R2 map_uid={}",
                        meta.map_uid,
                        reg.map_uid
                    );
                }
            }
            meta.map = Some(reg.map);
            meta.map_uid = reg.map_uid;
        }
        ArgTypeBase::PtrToMapKey => {
            let Some(m) = meta.map else {
                bail!("invalid map_ptr to access map->key");
            };
            let ks = env.map_of(m).key_size as i64;
            // Read before the access check marks the key's bytes as data.
            let key = constant_map_key(env, &reg, ks as u32);
            if key.is_some() && matches!(env.map_of(m).map_type, 2 | 6) {
                // A spilled constant key must stay that constant.
                let off = reg.off as i64 + reg.b.var_off.value as i64;
                let spi = ((-off - 1) / 8) as usize;
                let fr = reg.frameno as usize;
                if env.cur.frames[fr].stack[spi].is_spilled_scalar() {
                    env.mark_slot_precision(fr, spi);
                }
            }
            check_helper_mem_access(env, regno, ks, false, false, false)?;
            meta.const_key = key;
        }
        ArgTypeBase::PtrToMapValue => {
            if at.has(MAYBE_NULL) && reg.is_null() {
                return Ok(());
            }
            let Some(m) = meta.map else {
                bail!("invalid map_ptr to access map->value");
            };
            let vs = env.map_of(m).value_size as i64;
            let raw = at.has(UNINIT);
            check_helper_mem_access(env, regno, vs, at.has(WRITE), false, raw)?;
            if raw && reg.ty == RegType::Stack && reg.b.var_off.is_const() {
                meta.raw = Some((regno, vs));
            }
        }
        ArgTypeBase::PtrToSpinLock => process_spin_lock(env, regno, h == id::SPIN_LOCK)?,
        ArgTypeBase::PtrToTimer => {
            if !reg.b.var_off.is_const() {
                bail!("R{regno} doesn't have constant offset. bpf_timer has to be at the constant offset");
            }
            let fields = special_fields(env, reg.map);
            let map_name = env.map_of(reg.map).name.clone();
            if env.map_of(reg.map).value_type_id.is_none() {
                bail!("map '{map_name}' has to have BTF in order to use bpf_timer");
            }
            let Some(&(_, toff, _)) = fields.iter().find(|f| f.0 == "bpf_timer") else {
                bail!("map '{map_name}' has no valid bpf_timer");
            };
            let off = reg.b.var_off.value as i64 + reg.off as i64;
            if off != toff as i64 {
                bail!("off {off} doesn't point to 'struct bpf_timer' that is at {toff}");
            }
            meta.map = Some(reg.map);
            meta.map_uid = reg.map_uid;
        }
        ArgTypeBase::PtrToFunc => meta.subprog = Some(reg.subprog),
        ArgTypeBase::PtrToMem => {
            meta.raw_mode = at.has(UNINIT);
            if at.has(FIXED_SIZE) {
                let size = fn_.arg_size[arg] as i64;
                if !(reg.is_null() && at.has(MAYBE_NULL)) {
                    check_helper_mem_access(env, regno, size, at.has(WRITE), false, meta.raw_mode)?;
                    if at.has(proto::ALIGNED) {
                        mem::check_alignment(env, &reg, 0, size as u32, true)?;
                    }
                    if meta.raw_mode && reg.ty == RegType::Stack && reg.b.var_off.is_const() {
                        meta.raw = Some((regno, size));
                    }
                }
            }
        }
        ArgTypeBase::ConstSize | ArgTypeBase::ConstSizeOrZero => {
            let zero_ok = at.base == ArgTypeBase::ConstSizeOrZero;
            let prev = fn_.args[arg - 1];
            check_mem_size_reg(env, regno, prev, zero_ok, meta)?;
        }
        ArgTypeBase::ConstAllocSizeOrZero => {
            if !reg.b.var_off.is_const() {
                bail!("R{regno} is not a known constant'");
            }
            meta.mem_size = reg.b.var_off.value;
            env.mark_chain_precision(regno);
        }
        ArgTypeBase::PtrToConstStr => check_reg_const_str(env, regno)?,
        ArgTypeBase::PtrToStack | ArgTypeBase::PtrToCtx => {}
        ArgTypeBase::PtrToDynptr => bail!("dynptr arguments are not supported by bpfc's verifier"),
        _ => {}
    }
    Ok(())
}

/// The value of a map key the program wrote as a constant on the stack:
/// known zero bytes, or a spilled constant scalar of exactly the key's size
/// (`get_constant_map_key`).
fn constant_map_key(env: &Env, key: &Reg, key_size: u32) -> Option<u64> {
    if key.ty != RegType::Stack || !key.b.var_off.is_const() {
        return None;
    }
    let off = key.off as i64 + key.b.var_off.value as i64;
    let slot = (-off - 1) as usize;
    let (spi, b) = (slot / 8, slot % 8);
    let st = env.cur.frames.get(key.frameno as usize)?.stack.get(spi)?;
    let zeros = (0..=b)
        .rev()
        .take_while(|&i| st.types[i] == Slot::Zero)
        .count() as u32;
    if zeros >= key_size {
        return Some(0);
    }
    if !st.is_spilled_scalar() {
        return None;
    }
    let spill = (0..=b)
        .rev()
        .take_while(|&i| st.types[i] == Slot::Spill)
        .count() as u32;
    if spill != key_size || !st.spilled.b.var_off.is_const() {
        return None;
    }
    Some(st.spilled.b.var_off.value)
}

/// A size argument and the memory argument before it (`check_mem_size_reg`).
fn check_mem_size_reg(
    env: &mut Env,
    regno: u8,
    mem_arg: ArgType,
    zero_ok: bool,
    meta: &mut Meta,
) -> VResult<()> {
    let reg = env.cur.reg(regno).clone();
    meta.msize_max = reg.b.umax;
    let konst = reg.b.var_off.is_const();
    if reg.b.smin < 0 {
        bail!("R{regno} min value is negative, either use unsigned or 'var &= const'");
    }
    if reg.b.umin == 0 && !zero_ok {
        bail!(
            "R{regno} invalid zero-sized read: u64=[{},{}]",
            reg.b.umin as i64,
            reg.b.umax as i64
        );
    }
    if reg.b.umax >= super::alu::MAX_VAR_OFF as u64 {
        bail!("R{regno} unbounded memory access, use 'var &= const' or 'if (var < const)'");
    }
    let mem_regno = regno - 1;
    let mem_reg = env.cur.reg(mem_regno).clone();
    if mem_reg.is_null() && mem_arg.has(MAYBE_NULL) && reg.b.umax == 0 {
        return Ok(());
    }
    let raw = meta.raw_mode && konst;
    check_helper_mem_access(
        env,
        mem_regno,
        reg.b.umax as i64,
        mem_arg.has(WRITE),
        zero_ok,
        raw,
    )?;
    env.mark_chain_precision(regno);
    if raw && mem_reg.ty == RegType::Stack && mem_reg.b.var_off.is_const() && reg.b.umax > 0 {
        meta.raw = Some((mem_regno, reg.b.umax as i64));
    }
    Ok(())
}

/// A pointer to a NUL-terminated string in read-only map data.
fn check_reg_const_str(env: &mut Env, regno: u8) -> VResult<()> {
    let reg = env.cur.reg(regno).clone();
    if reg.ty != RegType::MapValue {
        bail!("R{regno} type={} expected=map_value", fmt::type_str(&reg));
    }
    let map = env.map_of(reg.map).clone();
    let frozen = map.map_flags & (1 << 7) != 0
        && matches!(
            map.origin,
            crate::loader::MapOrigin::Global(crate::loader::GlobalKind::Rodata)
                | crate::loader::MapOrigin::Kconfig
        );
    if !frozen {
        bail!("R{regno} does not point to a readonly map'");
    }
    if !reg.b.var_off.is_const() {
        bail!("R{regno} is not a constant address'");
    }
    let size = map.value_size as i64 - reg.off as i64;
    mem::check_map_access(env, regno, &reg, reg.off, size, false, mem::Src::Helper)?;
    let off = (reg.off as i64 + reg.b.var_off.value as i64) as usize;
    let end = map.value_size as usize;
    let has_nul = (off..end).any(|i| map.data.get(i).copied().unwrap_or(0) == 0);
    if !has_nul {
        bail!("string is not zero-terminated");
    }
    Ok(())
}

fn process_spin_lock(env: &mut Env, regno: u8, is_lock: bool) -> VResult<()> {
    let reg = env.cur.reg(regno).clone();
    if !reg.b.var_off.is_const() {
        bail!(
            "R{regno} doesn't have constant offset. bpf_spin_lock has to be at the constant offset"
        );
    }
    let map = env.map_of(reg.map).clone();
    if map.value_type_id.is_none() {
        bail!(
            "map '{}' has to have BTF in order to use bpf_spin_lock",
            map.name
        );
    }
    let fields = special_fields(env, reg.map);
    let Some(&(_, loff, _)) = fields.iter().find(|f| f.0 == "bpf_spin_lock") else {
        bail!("map '{}' has no valid bpf_spin_lock", map.name);
    };
    let off = reg.b.var_off.value as i64 + reg.off as i64;
    if off != loff as i64 {
        bail!("off {off} doesn't point to 'struct bpf_spin_lock' that is at {loff}");
    }
    let lock = Lock {
        map: reg.map,
        ptr_id: reg.id,
    };
    if is_lock {
        if env.cur.lock.is_some() {
            bail!("Locking two bpf_spin_locks are not allowed");
        }
        env.cur.lock = Some(lock);
    } else {
        match env.cur.lock {
            None => bail!("bpf_spin_unlock without taking a lock"),
            Some(l) if l != lock => bail!("bpf_spin_unlock of different lock"),
            Some(_) => env.cur.lock = None,
        }
    }
    Ok(())
}
