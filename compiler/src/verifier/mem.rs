//! Loads, stores and atomics (`check_mem_access`): the bounds and
//! permissions of each pointer type (stack with spills and initialised
//! bytes, map values and keys, the context by program type, packets by
//! their proven range, helper memory, sockets), alignment, and what a load
//! puts into its destination register. Also the stack checks of helper
//! memory arguments (`check_stack_range_initialized`,
//! `check_helper_mem_access`).

use super::alu::MAX_VAR_OFF;
use super::state::{byte_of, flag, spi_of, Reg, RegType, Slot, StackSlot};
use super::{bail, fmt, Env, Region, VErr, VResult, MAX_STACK};
use crate::isa::{AtomicOp, Insn, Size};
use crate::progtype::{ctx::CtxAccess, PktAccess};

/// The largest packet offset the verifier reasons about (`MAX_PACKET_OFF`).
pub(crate) const MAX_PACKET_OFF: i64 = 0xffff;

/// Who performs a stack access (for the wording of errors).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Src {
    Insn,
    Helper,
}

/// What a store writes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value {
    /// A register (STX).
    Reg(u8),
    /// An immediate (ST).
    Imm(i32),
    /// Nothing known (atomics, helpers).
    Unknown,
}

pub(crate) fn check_load(env: &mut Env, insn: &Insn) -> VResult<()> {
    let Insn::Ldx {
        size,
        sx,
        dst,
        src,
        off,
    } = *insn
    else {
        unreachable!()
    };
    env.check_src(src)?;
    env.check_dst(dst)?;
    let src_type = env.cur.reg(src.num()).ty;
    check_mem_access(
        env,
        src.num(),
        off as i32,
        size,
        false,
        Value::Unknown,
        Some(dst.num()),
        false,
        sx,
    )?;
    save_aux_ptr_type(env, src_type)?;
    let r = env.cur.reg_mut(dst.num());
    if r.ty == RegType::Scalar {
        r.b.sanitize();
    }
    Ok(())
}

pub(crate) fn check_store(env: &mut Env, insn: &Insn) -> VResult<()> {
    let Insn::Stx {
        size,
        dst,
        src,
        off,
    } = *insn
    else {
        unreachable!()
    };
    env.check_src(src)?;
    env.check_src(dst)?;
    let dst_type = env.cur.reg(dst.num()).ty;
    check_mem_access(
        env,
        dst.num(),
        off as i32,
        size,
        true,
        Value::Reg(src.num()),
        None,
        false,
        false,
    )?;
    save_aux_ptr_type(env, dst_type)
}

pub(crate) fn check_store_imm(env: &mut Env, insn: &Insn) -> VResult<()> {
    let Insn::St {
        size,
        dst,
        off,
        imm,
    } = *insn
    else {
        unreachable!()
    };
    env.check_src(dst)?;
    let dst_type = env.cur.reg(dst.num()).ty;
    check_mem_access(
        env,
        dst.num(),
        off as i32,
        size,
        true,
        Value::Imm(imm),
        None,
        false,
        false,
    )?;
    save_aux_ptr_type(env, dst_type)
}

pub(crate) fn check_atomic(env: &mut Env, insn: &Insn) -> VResult<()> {
    let Insn::Atomic {
        size,
        op,
        fetch,
        dst,
        src,
        off,
    } = *insn
    else {
        unreachable!()
    };
    if !matches!(size, Size::W | Size::DW) {
        bail!("invalid atomic operand size");
    }
    env.check_src(src)?;
    env.check_src(dst)?;
    if op == AtomicOp::CmpXchg {
        env.check_src(crate::isa::Reg::R0)?;
    }
    let d = env.cur.reg(dst.num());
    if matches!(
        d.ty,
        RegType::Ctx
            | RegType::Packet
            | RegType::PacketMeta
            | RegType::FlowKeys
            | RegType::Socket
            | RegType::SockCommon
            | RegType::TcpSock
            | RegType::XdpSock
    ) {
        bail!(
            "BPF_ATOMIC stores into R{} {} is not allowed",
            dst.num(),
            fmt::type_str(d)
        );
    }
    let load_reg = if op == AtomicOp::CmpXchg {
        Some(0u8)
    } else if fetch || op == AtomicOp::Xchg {
        Some(src.num())
    } else {
        None
    };
    check_mem_access(
        env,
        dst.num(),
        off as i32,
        size,
        false,
        Value::Unknown,
        None,
        true,
        false,
    )?;
    if let Some(l) = load_reg {
        env.check_dst(crate::isa::Reg::new(l).expect("valid"))?;
        check_mem_access(
            env,
            dst.num(),
            off as i32,
            size,
            false,
            Value::Unknown,
            Some(l),
            true,
            false,
        )?;
    }
    let dst_type = env.cur.reg(dst.num()).ty;
    save_aux_ptr_type(env, dst_type)?;
    check_mem_access(
        env,
        dst.num(),
        off as i32,
        size,
        true,
        Value::Unknown,
        None,
        true,
        false,
    )
}

/// One instruction may not be used with two pointer types where either is
/// special (context, sockets, kernel objects): their accesses are
/// rewritten differently.
fn save_aux_ptr_type(env: &mut Env, ty: RegType) -> VResult<()> {
    let special = |t: RegType| {
        matches!(
            t,
            RegType::Ctx
                | RegType::Socket
                | RegType::SockCommon
                | RegType::TcpSock
                | RegType::XdpSock
                | RegType::BtfId
        )
    };
    let aux = &mut env.aux[env.insn_idx];
    match aux.ptr_type {
        None => aux.ptr_type = Some(ty),
        Some(prev) if prev != ty && (special(prev) || special(ty)) => {
            bail!("same insn cannot be used with different pointers")
        }
        _ => {}
    }
    Ok(())
}

/// `check_ptr_off_reg`: an unmodified pointer (positive fixed offset only
/// when `fixed_off_ok`).
pub(crate) fn check_ptr_off_reg(env: &Env, regno: u8, fixed_off_ok: bool) -> VResult<()> {
    let r = env.cur.reg(regno);
    if r.off < 0 {
        bail!(
            "negative offset {} ptr R{regno} off={} disallowed",
            fmt::type_str(r),
            r.off
        );
    }
    if !fixed_off_ok && r.off != 0 {
        bail!(
            "dereference of modified {} ptr R{regno} off={} disallowed",
            fmt::type_str(r),
            r.off
        );
    }
    if !r.b.var_off.is_const() || r.b.var_off.value != 0 {
        bail!(
            "variable {} access var_off={} disallowed",
            fmt::type_str(r),
            r.b.var_off
        );
    }
    Ok(())
}

pub(crate) fn check_alignment(
    env: &Env,
    reg: &Reg,
    off: i32,
    size: u32,
    strict_once: bool,
) -> VResult<()> {
    let mut strict = env.opts.strict_alignment || strict_once;
    let desc = match reg.ty {
        RegType::Packet | RegType::PacketMeta => {
            if !strict || size == 1 {
                return Ok(());
            }
            let reg_off = reg.b.var_off.add(super::tnum::Tnum::konst(
                (2 + reg.off as i64 + off as i64) as u64,
            ));
            if !reg_off.is_aligned(size as u64) {
                bail!(
                    "misaligned packet access off 2+{}+{}+{} size {size}",
                    reg.b.var_off,
                    reg.off,
                    off
                );
            }
            return Ok(());
        }
        RegType::FlowKeys => "flow keys ",
        RegType::MapKey => "key ",
        RegType::MapValue => "value ",
        RegType::Ctx => "context ",
        RegType::Stack => {
            strict = true;
            "stack "
        }
        RegType::Socket => "sock ",
        RegType::SockCommon => "sock_common ",
        RegType::TcpSock => "tcp_sock ",
        RegType::XdpSock => "xdp_sock ",
        _ => "",
    };
    if !strict || size == 1 {
        return Ok(());
    }
    let reg_off = reg.b.var_off.add(super::tnum::Tnum::konst(
        (reg.off as i64 + off as i64) as u64,
    ));
    if !reg_off.is_aligned(size as u64) {
        bail!(
            "misaligned {desc}access off {}+{}+{} size {size}",
            reg.b.var_off,
            reg.off,
            off
        );
    }
    Ok(())
}

/// The kernel's `check_mem_access`: may `size` bytes at `regno + off` be
/// read (into `dst`) or written (with `value`)?
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_mem_access(
    env: &mut Env,
    regno: u8,
    off: i32,
    size: Size,
    write: bool,
    value: Value,
    dst: Option<u8>,
    strict_once: bool,
    ldsx: bool,
) -> VResult<()> {
    let size_b = size.bytes() as u32;
    let reg = env.cur.reg(regno).clone();
    check_alignment(env, &reg, off, size_b, strict_once)?;
    let off = off + reg.off;
    let value_reg = match value {
        Value::Reg(r) => Some(env.cur.reg(r).clone()),
        _ => None,
    };
    match reg.ty {
        RegType::MapKey => {
            if write {
                bail!("write to change key R{regno} not allowed");
            }
            let ks = env.map_of(reg.map).key_size;
            check_mem_region_access(env, regno, &reg, off, size_b as i64, ks, false)?;
            env.note_access(Region::MapKey { map: reg.map });
            if let Some(d) = dst {
                *env.cur.reg_mut(d) = Reg::unknown();
            }
        }
        RegType::MapValue if reg.flags & flag::MAYBE_NULL == 0 => {
            let map = env.map_of(reg.map).clone();
            let cap_write = map.map_flags & (1 << 7) == 0;
            let cap_read = map.map_flags & (1 << 8) == 0;
            if write && !cap_write {
                bail!(
                    "write into map forbidden, value_size={} off={off} size={size_b}",
                    map.value_size
                );
            }
            if !write && !cap_read {
                bail!(
                    "read from map forbidden, value_size={} off={off} size={size_b}",
                    map.value_size
                );
            }
            check_map_access(env, regno, &reg, off, size_b as i64, false, Src::Insn)?;
            env.note_access(Region::MapValue { map: reg.map });
            if let Some(d) = dst {
                let rdonly = map.map_flags & (1 << 7) != 0;
                let frozen = match map.origin {
                    crate::loader::MapOrigin::Global(crate::loader::GlobalKind::Rodata) => {
                        env.opts.rodata_known
                    }
                    crate::loader::MapOrigin::Kconfig => true,
                    _ => false,
                };
                let val = if reg.b.var_off.is_const() && rdonly && frozen {
                    let map_off = off as i64 + reg.b.var_off.value as i64;
                    read_rodata(env, &map, map_off, size_b, ldsx)
                } else {
                    None
                };
                *env.cur.reg_mut(d) = match val {
                    Some(v) => Reg::konst(v),
                    None => Reg::unknown(),
                };
                if val.is_some() {
                    return Ok(());
                }
            }
        }
        RegType::Mem if reg.flags & flag::MAYBE_NULL == 0 => {
            let rdonly = reg.flags & flag::RDONLY != 0;
            if write && rdonly {
                bail!("R{regno} cannot write into {}", fmt::type_str(&reg));
            }
            check_mem_region_access(env, regno, &reg, off, size_b as i64, reg.mem_size, false)?;
            env.note_access(Region::Mem);
            if let Some(d) = dst {
                *env.cur.reg_mut(d) = Reg::unknown();
            }
        }
        RegType::Ctx => {
            check_ptr_off_reg(env, regno, false)?;
            let layout = env.info.ctx.expect("supported types have a context");
            let field = match layout.check(
                off as i64,
                size_b,
                write,
                ldsx,
                env.opts.attach_type.as_deref(),
            ) {
                CtxAccess::Ok(f) => f,
                CtxAccess::Invalid => {
                    bail!("invalid bpf_context access off={off} size={size_b}")
                }
            };
            env.note_access(Region::Ctx);
            let end = (off as i64 + i64::from(size_b)).clamp(0, i64::from(u32::MAX)) as u32;
            env.max_ctx_offset = env.max_ctx_offset.max(end);
            if let Some(d) = dst {
                let r = super::check::field_reg(field.kind, env);
                let scalar = r.ty == RegType::Scalar;
                *env.cur.reg_mut(d) = r;
                if !scalar {
                    return Ok(());
                }
            }
        }
        RegType::Stack => {
            check_stack_access_within_bounds(
                env,
                regno,
                &reg,
                off as i64,
                size_b as i64,
                Src::Insn,
                write,
            )?;
            env.note_access(Region::Stack);
            if write {
                check_stack_write(env, regno, &reg, off as i64, size_b, value, value_reg)?;
            } else {
                check_stack_read(env, regno, &reg, off as i64, size_b, dst)?;
            }
        }
        RegType::Packet | RegType::PacketMeta => {
            if write && env.info.pkt != PktAccess::ReadWrite {
                bail!("cannot write into packet");
            }
            check_packet_access(env, regno, &reg, off as i64, size_b as i64, false)?;
            env.note_access(if reg.ty == RegType::Packet {
                Region::Packet
            } else {
                Region::PacketMeta
            });
            if !write {
                if let Some(d) = dst {
                    *env.cur.reg_mut(d) = Reg::unknown();
                }
            }
        }
        RegType::FlowKeys => {
            if off < 0 || off as i64 + size_b as i64 > 56 {
                bail!("invalid access to flow keys off={off} size={size_b}");
            }
            env.note_access(Region::FlowKeys);
            if !write {
                if let Some(d) = dst {
                    *env.cur.reg_mut(d) = Reg::unknown();
                }
            }
        }
        RegType::Socket | RegType::SockCommon | RegType::TcpSock | RegType::XdpSock
            if reg.flags & flag::MAYBE_NULL == 0 =>
        {
            if write {
                bail!("R{regno} cannot write into {}", fmt::type_str(&reg));
            }
            check_sock_access(env, regno, &reg, off as i64, size_b)?;
            env.note_access(Region::Socket);
            if let Some(d) = dst {
                *env.cur.reg_mut(d) = Reg::unknown();
            }
        }
        RegType::TpBuffer => {
            if off < 0 {
                bail!("R{regno} invalid tracepoint buffer access: off={off}, size={size_b}");
            }
            if !reg.b.var_off.equals_const(0) {
                bail!(
                    "R{regno} invalid variable buffer offset: off={off}, var_off={}",
                    reg.b.var_off
                );
            }
            env.note_access(Region::Other);
            if !write {
                if let Some(d) = dst {
                    *env.cur.reg_mut(d) = Reg::unknown();
                }
            }
        }
        _ => bail!("R{regno} invalid mem access '{}'", fmt::type_str(&reg)),
    }
    if let Some(d) = dst {
        if !write && size_b < 8 {
            let r = env.cur.reg_mut(d);
            if r.ty == RegType::Scalar {
                if ldsx {
                    r.b.sign_extend(size_b);
                } else {
                    r.b.truncate(size_b);
                }
            }
        }
    }
    Ok(())
}

/// A known value from a read-only map's initial image (`.rodata`), as the
/// kernel reads frozen maps.
fn read_rodata(
    env: &Env,
    map: &crate::loader::MapDef,
    off: i64,
    size: u32,
    ldsx: bool,
) -> Option<u64> {
    if off < 0 || off as u64 + size as u64 > map.value_size as u64 || map.max_entries != 1 {
        return None;
    }
    let off = off as usize;
    let mut bytes = [0u8; 8];
    for (i, b) in bytes.iter_mut().enumerate().take(size as usize) {
        *b = map.data.get(off + i).copied().unwrap_or(0);
    }
    let endian = env.endian;
    let raw = match endian {
        crate::isa::Endian::Little => u64::from_le_bytes(bytes),
        crate::isa::Endian::Big => u64::from_be_bytes(bytes) >> (64 - 8 * size),
    };
    let v = match (size, ldsx) {
        (1, true) => raw as u8 as i8 as i64 as u64,
        (2, true) => raw as u16 as i16 as i64 as u64,
        (4, true) => raw as u32 as i32 as i64 as u64,
        (1, false) => raw as u8 as u64,
        (2, false) => raw as u16 as u64,
        (4, false) => raw as u32 as u64,
        _ => raw,
    };
    Some(v)
}

/// `__check_mem_access`: the message for an access outside `mem_size`.
fn mem_access_error(reg: &Reg, regno: u8, off: i64, size: i64, mem_size: u32) -> VErr {
    VErr(match reg.ty {
        RegType::MapKey => format!(
            "invalid access to map key, key_size={mem_size} off={off} size={size}"
        ),
        RegType::MapValue => format!(
            "invalid access to map value, value_size={mem_size} off={off} size={size}"
        ),
        RegType::Packet | RegType::PacketMeta | RegType::PacketEnd => format!(
            "invalid access to packet, off={off} size={size}, R{regno}(id={},off={off},r={mem_size})",
            reg.id
        ),
        _ => format!("invalid access to memory, mem_size={mem_size} off={off} size={size}"),
    })
}

fn mem_ok(off: i64, size: i64, mem_size: u32, zero_ok: bool) -> bool {
    let size_ok = size > 0 || (size == 0 && zero_ok);
    off >= 0 && size_ok && (off as u64).saturating_add(size as u64) <= mem_size as u64
}

/// An access into a region of `mem_size` bytes through a pointer with a
/// variable offset (`check_mem_region_access`).
pub(crate) fn check_mem_region_access(
    env: &mut Env,
    regno: u8,
    reg: &Reg,
    off: i32,
    size: i64,
    mem_size: u32,
    zero_ok: bool,
) -> VResult<()> {
    let _ = env;
    let off = off as i64;
    let smin = reg.b.smin;
    if smin < 0
        && (smin == i64::MIN
            || off.checked_add(smin).is_none_or(|s| s != s as i32 as i64)
            || smin + off < 0)
    {
        bail!("R{regno} min value is negative, either use unsigned index or do a if (index >=0) check.");
    }
    if !mem_ok(smin.wrapping_add(off), size, mem_size, zero_ok) {
        let e = mem_access_error(reg, regno, smin.wrapping_add(off), size, mem_size);
        return Err(VErr(format!(
            "{}\nR{regno} min value is outside of the allowed memory range",
            e.0
        )));
    }
    if reg.b.umax >= MAX_VAR_OFF as u64 {
        bail!("R{regno} unbounded memory access, make sure to bounds check any such access");
    }
    let max_off = reg.b.umax as i64 + off;
    if !mem_ok(max_off, size, mem_size, zero_ok) {
        let e = mem_access_error(reg, regno, max_off, size, mem_size);
        return Err(VErr(format!(
            "{}\nR{regno} max value is outside of the allowed memory range",
            e.0
        )));
    }
    Ok(())
}

/// A map value access (`check_map_access`): the region check plus the
/// special fields bpfc knows of (a `bpf_spin_lock` or `bpf_timer` at the
/// offsets the map's BTF value type gives).
pub(crate) fn check_map_access(
    env: &mut Env,
    regno: u8,
    reg: &Reg,
    off: i32,
    size: i64,
    zero_ok: bool,
    src: Src,
) -> VResult<()> {
    let vs = env.map_of(reg.map).value_size;
    check_mem_region_access(env, regno, reg, off, size, vs, zero_ok)?;
    for (name, foff, fsize) in super::helper::special_fields(env, reg.map) {
        let lo = reg.b.smin + off as i64;
        let hi = reg.b.umax as i64 + off as i64 + size;
        if lo < (foff + fsize) as i64 && (foff as i64) < hi {
            let _ = src;
            bail!("{name} cannot be accessed directly by load/store");
        }
    }
    Ok(())
}

/// A packet access: within the range proven by comparisons with the end.
pub(crate) fn check_packet_access(
    env: &mut Env,
    regno: u8,
    reg: &Reg,
    off: i64,
    size: i64,
    zero_ok: bool,
) -> VResult<()> {
    let _ = env;
    if reg.b.smin < 0 {
        bail!("R{regno} min value is negative, either use unsigned index or do a if (index >=0) check.");
    }
    if reg.range < 0 || !mem_ok(off, size, reg.range as u32, zero_ok) {
        let first = if reg.range < 0 {
            String::new()
        } else {
            format!(
                "{}\n",
                mem_access_error(reg, regno, off, size, reg.range as u32).0
            )
        };
        bail!("{first}R{regno} offset is outside of the packet");
    }
    Ok(())
}

fn check_sock_access(env: &Env, regno: u8, reg: &Reg, off: i64, size: u32) -> VResult<()> {
    if reg.b.smin < 0 {
        bail!("R{regno} min value is negative, either use unsigned index or do a if (index >=0) check.");
    }
    let ok = match reg.ty {
        RegType::Socket => sock_ok(off, size, false),
        RegType::SockCommon => sock_ok(off, size, true),
        RegType::TcpSock => {
            (0..112).contains(&off)
                && off % size as i64 == 0
                && if off == 80 || off == 88 {
                    size == 8
                } else {
                    size == 4
                }
        }
        RegType::XdpSock => off == 0 && size == 4,
        _ => false,
    };
    let _ = env;
    if !ok {
        bail!(
            "R{regno} invalid {} access off={off} size={size}",
            fmt::type_str(reg)
        );
    }
    Ok(())
}

/// `bpf_sock_is_valid_access` (and the sock_common subset).
fn sock_ok(off: i64, size: u32, common: bool) -> bool {
    if !(0..80).contains(&off) || off % size as i64 != 0 {
        return false;
    }
    if common && (8..24).contains(&off) {
        return false;
    }
    let narrow = |field_size: u32| size <= field_size && size.is_power_of_two();
    match off {
        4..=15 | 24..=47 | 52..=79 => narrow(4),
        48 | 49 => {
            if size == 4 {
                true
            } else {
                narrow(2)
            }
        }
        50 | 51 => false,
        _ => size == 4,
    }
}

/// The bounds of a stack access (`check_stack_access_within_bounds`),
/// growing the frame's stack to cover it.
pub(crate) fn check_stack_access_within_bounds(
    env: &mut Env,
    regno: u8,
    reg: &Reg,
    off: i64,
    size: i64,
    src: Src,
    write: bool,
) -> VResult<()> {
    let extra = match (src, write) {
        (Src::Helper, _) => " indirect access to",
        (Src::Insn, false) => " read from",
        (Src::Insn, true) => " write to",
    };
    let (min_off, max_off) = if reg.b.var_off.is_const() {
        let m = reg.b.var_off.value as i64 + off;
        (m, m + size)
    } else {
        if reg.b.smax >= MAX_VAR_OFF || reg.b.smin <= -MAX_VAR_OFF {
            bail!("invalid unbounded variable-offset{extra} stack R{regno}");
        }
        (reg.b.smin + off, reg.b.smax + off + size)
    };
    let bad = min_off < -(MAX_STACK as i64) || min_off > -1 || max_off > 0 || size < 0;
    if bad {
        if reg.b.var_off.is_const() {
            bail!("invalid{extra} stack R{regno} off={off} size={size}");
        } else {
            bail!(
                "invalid variable-offset{extra} stack R{regno} var_off={} off={off} size={size}",
                reg.b.var_off
            );
        }
    }
    let frame = reg.frameno as usize;
    env.cur.frames[frame].grow((-min_off) as usize);
    let sub = env.cur.frames[frame].subprog;
    let depth = env.cur.frames[frame].allocated() as u32;
    if env.stack_depth[sub] < depth {
        env.stack_depth[sub] = depth;
    }
    Ok(())
}

fn is_spillable(t: RegType) -> bool {
    !matches!(t, RegType::Scalar | RegType::NotInit)
}

fn scrub_special_slot(slot: &mut StackSlot) {
    slot.spilled = Reg::not_init();
    if slot.is_special() {
        for t in &mut slot.types {
            if *t != Slot::Invalid {
                *t = Slot::Misc;
            }
        }
    }
}

fn save_register_state(slot: &mut StackSlot, reg: &Reg, size: u32) {
    slot.spilled = reg.clone();
    for i in (8 - size as usize)..8 {
        slot.types[i] = Slot::Spill;
    }
    for i in 0..(8 - size as usize) {
        if !matches!(slot.types[i], Slot::Zero | Slot::Invalid) {
            slot.types[i] = Slot::Misc;
        }
    }
}

fn check_stack_write(
    env: &mut Env,
    regno: u8,
    reg: &Reg,
    off: i64,
    size: u32,
    value: Value,
    value_reg: Option<Reg>,
) -> VResult<()> {
    let frame = reg.frameno as usize;
    if !reg.b.var_off.is_const() {
        return check_stack_write_var_off(env, frame, reg, off, size, value, value_reg);
    }
    let _ = regno;
    let off = off + reg.b.var_off.value as i64;
    let spi = spi_of(off);
    let cur_frame = env.cur.curframe();
    if let Some(vr) = &value_reg {
        if vr.ty == RegType::Scalar && off % 8 == 0 {
            let fits = vr.b.width() <= 8 * size;
            let Value::Reg(vregno) = value else {
                unreachable!()
            };
            if fits {
                super::alu::assign_scalar_id_before_mov(env, vregno);
            }
            let vr = env.cur.reg(vregno).clone();
            let slot = &mut env.cur.frames[frame].stack[spi];
            destroy_dynptr_check(slot)?;
            save_register_state(slot, &vr, size);
            if !fits {
                slot.spilled.id = 0;
            }
            note_spill(env, frame, spi);
            return Ok(());
        }
    }
    if let (None, Value::Imm(imm)) = (&value_reg, value) {
        if off % 8 == 0 {
            let slot = &mut env.cur.frames[frame].stack[spi];
            destroy_dynptr_check(slot)?;
            save_register_state(slot, &Reg::konst(imm as i64 as u64), size);
            note_spill(env, frame, spi);
            return Ok(());
        }
    }
    if let Some(vr) = &value_reg {
        if is_spillable(vr.ty) {
            if size != 8 {
                bail!("invalid size of register spill");
            }
            if frame != cur_frame && vr.ty == RegType::Stack {
                bail!("cannot spill pointers to stack into stack frame of the caller");
            }
            let slot = &mut env.cur.frames[frame].stack[spi];
            destroy_dynptr_check(slot)?;
            save_register_state(slot, vr, size);
            note_spill(env, frame, spi);
            return Ok(());
        }
    }
    let zero = match (&value_reg, value) {
        (Some(vr), _) => vr.is_null(),
        (None, Value::Imm(0)) => true,
        _ => false,
    };
    if zero {
        // The slots are known zero only as long as the register is.
        if let Value::Reg(r) = value {
            env.mark_chain_precision(r);
        }
    }
    let slot = &mut env.cur.frames[frame].stack[spi];
    destroy_dynptr_check(slot)?;
    scrub_special_slot(slot);
    let ty = if zero { Slot::Zero } else { Slot::Misc };
    for i in 0..size as i64 {
        let b = byte_of(off + i);
        let s = &mut env.cur.frames[frame].stack[spi_of(off + i)];
        s.types[b] = ty;
    }
    Ok(())
}

/// Record a register spill or fill of stack slot `spi` of `frame` in the
/// path's history (for precision tracking).
fn note_spill(env: &mut Env, frame: usize, spi: usize) {
    if let Some(h) = env.cur_hist() {
        h.stack = Some((frame as u8, spi as u16));
    }
}

/// Writing over a dynptr's slots: bpfc does not model dynptrs on the
/// stack, so there are none to destroy.
fn destroy_dynptr_check(_slot: &StackSlot) -> VResult<()> {
    Ok(())
}

fn check_stack_write_var_off(
    env: &mut Env,
    frame: usize,
    reg: &Reg,
    off: i64,
    size: u32,
    value: Value,
    value_reg: Option<Reg>,
) -> VResult<()> {
    let min_off = reg.b.smin + off;
    let max_off = reg.b.smax + off + size as i64;
    let writing_zero = match (&value_reg, value) {
        (Some(vr), _) => vr.is_null(),
        (None, Value::Imm(0)) => true,
        _ => false,
    };
    for i in min_off..max_off {
        let spi = spi_of(i);
        let b = byte_of(i);
        let st = &mut env.cur.frames[frame].stack[spi];
        let ty = st.types[b];
        if writing_zero
            && ty == Slot::Spill
            && st.is_spilled_scalar()
            && st.spilled.b.var_off.equals_const(0)
        {
            continue;
        }
        scrub_special_slot(st);
        let new = if writing_zero && st.types[b] == Slot::Zero {
            Slot::Zero
        } else {
            Slot::Misc
        };
        st.types[b] = new;
    }
    Ok(())
}

fn check_stack_read(
    env: &mut Env,
    regno: u8,
    reg: &Reg,
    off: i64,
    size: u32,
    dst: Option<u8>,
) -> VResult<()> {
    let frame = reg.frameno as usize;
    if reg.b.var_off.is_const() {
        let o = off + reg.b.var_off.value as i64;
        env.note_stack_read(frame, o, o + size as i64);
    } else {
        env.note_stack_read(frame, reg.b.smin + off, reg.b.smax + off + size as i64);
    }
    if !reg.b.var_off.is_const() {
        if dst.is_none() {
            bail!(
                "variable offset stack pointer cannot be passed into helper function; var_off={} off={off} size={size}",
                reg.b.var_off
            );
        }
        let min_off = reg.b.smin + off;
        let max_off = reg.b.smax + off;
        // Every byte that may be read must be initialised (or, for a
        // privileged loader, may be uninitialised stack).
        for i in min_off..max_off + size as i64 {
            let st = &env.cur.frames[frame].stack[spi_of(i)];
            let t = st.types[byte_of(i)];
            let ok = matches!(t, Slot::Misc | Slot::Zero)
                || (t == Slot::Invalid && env.opts.perfmon)
                || st.is_spill();
            if !ok {
                bail!(
                    "invalid read from stack R{regno} var_off {}+{} size {size}",
                    reg.b.var_off,
                    i - min_off
                );
            }
        }
        mark_reg_stack_read(
            env,
            frame,
            min_off,
            max_off + size as i64,
            dst.expect("checked"),
        );
        return Ok(());
    }
    let off = off + reg.b.var_off.value as i64;
    check_stack_read_fixed_off(env, frame, off, size, dst)
}

fn mark_reg_stack_read(env: &mut Env, frame: usize, min_off: i64, max_off: i64, dst: u8) {
    let mut zeros = 0;
    for i in min_off..max_off {
        let st = &env.cur.frames[frame].stack[spi_of(i)];
        if st.types[byte_of(i)] != Slot::Zero {
            break;
        }
        zeros += 1;
    }
    *env.cur.reg_mut(dst) = if zeros == max_off - min_off {
        Reg::konst(0)
    } else {
        Reg::unknown()
    };
}

fn check_stack_read_fixed_off(
    env: &mut Env,
    frame: usize,
    off: i64,
    size: u32,
    dst: Option<u8>,
) -> VResult<()> {
    let spi = spi_of(off);
    let st = env.cur.frames[frame].stack[spi].clone();
    if st.is_spill() {
        let spill_size = {
            let mut n = 1;
            let mut i = 7;
            while i > 0 && st.types[i - 1] == Slot::Spill {
                n += 1;
                i -= 1;
            }
            n
        };
        if size != 8 || spill_size != 8 {
            if st.spilled.ty != RegType::Scalar {
                bail!("invalid size of register fill");
            }
            let Some(d) = dst else {
                return Ok(());
            };
            // A narrow fill of the low bytes of a spill keeps the value
            // (little-endian: they sit at the slot's lowest address).
            let narrow_ok = size <= spill_size && off % 8 == 0;
            if narrow_ok {
                let mut r = st.spilled.clone();
                if r.b.width() > size * 8 {
                    super::alu::clear_scalar_id(&mut r);
                }
                *env.cur.reg_mut(d) = r;
                note_spill(env, frame, spi);
            } else {
                let slot_base = off;
                let mut spill_cnt = 0;
                let mut zero_cnt = 0;
                for i in 0..size as i64 {
                    let t = st.types[byte_of(slot_base + i)];
                    match t {
                        Slot::Spill => spill_cnt += 1,
                        Slot::Misc => {}
                        Slot::Invalid if env.opts.perfmon => {}
                        Slot::Zero => zero_cnt += 1,
                        _ => bail!("invalid read from stack off {off}+{i} size {size}"),
                    }
                }
                let spilled_zero = spill_cnt == size && st.spilled.b.var_off.equals_const(0);
                *env.cur.reg_mut(d) = if spilled_zero || zero_cnt == size {
                    Reg::konst(0)
                } else {
                    Reg::unknown()
                };
                if spilled_zero {
                    note_spill(env, frame, spi);
                }
            }
        } else {
            if let Some(d) = dst {
                *env.cur.reg_mut(d) = st.spilled.clone();
            }
            note_spill(env, frame, spi);
        }
        return Ok(());
    }
    for i in 0..size as i64 {
        let t = st.types[byte_of(off + i)];
        let ok = matches!(t, Slot::Misc | Slot::Zero) || (t == Slot::Invalid && env.opts.perfmon);
        if !ok {
            bail!("invalid read from stack off {off}+{i} size {size}");
        }
    }
    if let Some(d) = dst {
        mark_reg_stack_read(env, frame, off, off + size as i64, d);
    }
    Ok(())
}

/// A helper reading or writing `size` bytes of stack through `regno`
/// (`check_stack_range_initialized` with `ACCESS_HELPER`). `raw`: the
/// helper fills the memory (`MEM_UNINIT`), so it need not be initialised.
pub(crate) fn check_stack_range(
    env: &mut Env,
    regno: u8,
    size: i64,
    zero_ok: bool,
    raw: bool,
) -> VResult<()> {
    let reg = env.cur.reg(regno).clone();
    if size == 0 && !zero_ok {
        bail!("invalid zero-sized read");
    }
    check_stack_access_within_bounds(env, regno, &reg, reg.off as i64, size, Src::Helper, true)?;
    let frame = reg.frameno as usize;
    let (min_off, max_off) = if reg.b.var_off.is_const() {
        let m = reg.b.var_off.value as i64 + reg.off as i64;
        (m, m)
    } else {
        (reg.b.smin + reg.off as i64, reg.b.smax + reg.off as i64)
    };
    if !(raw && reg.b.var_off.is_const()) {
        env.note_stack_read(frame, min_off, max_off + size);
    }
    if raw && reg.b.var_off.is_const() {
        for i in min_off..max_off + size {
            let st = &env.cur.frames[frame].stack[spi_of(i)];
            if st.types[byte_of(i)] == Slot::Dynptr {
                bail!("potential write to dynptr at off={i} disallowed");
            }
        }
        return Ok(());
    }
    let perfmon = env.opts.perfmon;
    for i in min_off..max_off + size {
        let spi = spi_of(i);
        let b = byte_of(i);
        let st = &mut env.cur.frames[frame].stack[spi];
        match st.types[b] {
            Slot::Misc => {}
            Slot::Zero => st.types[b] = Slot::Misc,
            Slot::Invalid if perfmon => st.types[b] = Slot::Misc,
            Slot::Spill => {
                st.spilled = Reg::unknown();
                for t in &mut st.types {
                    if *t != Slot::Invalid {
                        *t = Slot::Misc;
                    }
                }
            }
            _ => {
                if reg.b.var_off.is_const() {
                    bail!(
                        "invalid indirect read from stack R{regno} off {min_off}+{} size {size}",
                        i - min_off
                    );
                } else {
                    bail!(
                        "invalid indirect read from stack R{regno} var_off {}+{} size {size}",
                        reg.b.var_off,
                        i - min_off
                    );
                }
            }
        }
    }
    Ok(())
}

/// Memory of `size` bytes at the pointer in `regno`, passed to a helper
/// (`check_helper_mem_access`).
pub(crate) fn check_helper_mem_access(
    env: &mut Env,
    regno: u8,
    size: i64,
    write: bool,
    zero_ok: bool,
    raw: bool,
) -> VResult<()> {
    let reg = env.cur.reg(regno).clone();
    match reg.ty {
        RegType::Packet | RegType::PacketMeta => {
            check_packet_access(env, regno, &reg, reg.off as i64, size, zero_ok)
        }
        RegType::MapKey => {
            if write {
                bail!("R{regno} cannot write into {}", fmt::type_str(&reg));
            }
            let ks = env.map_of(reg.map).key_size;
            check_mem_region_access(env, regno, &reg, reg.off, size, ks, false)
        }
        RegType::MapValue => {
            let map = env.map_of(reg.map);
            let vs = map.value_size;
            if write && map.map_flags & (1 << 7) != 0 {
                bail!(
                    "write into map forbidden, value_size={vs} off={} size={size}",
                    reg.off
                );
            }
            if !write && map.map_flags & (1 << 8) != 0 {
                bail!(
                    "read from map forbidden, value_size={vs} off={} size={size}",
                    reg.off
                );
            }
            check_map_access(env, regno, &reg, reg.off, size, zero_ok, Src::Helper)
        }
        RegType::Mem => {
            if reg.flags & flag::RDONLY != 0 && write {
                bail!("R{regno} cannot write into {}", fmt::type_str(&reg));
            }
            check_mem_region_access(env, regno, &reg, reg.off, size, reg.mem_size, zero_ok)
        }
        RegType::Stack => check_stack_range(env, regno, size, zero_ok, raw),
        RegType::Ctx if env.opts.prog_type == crate::loader::ProgType::Syscall => {
            if size == 0 {
                if zero_ok {
                    return Ok(());
                }
                bail!("R{regno} invalid zero-sized read");
            }
            check_mem_access(
                env,
                regno,
                (size - 1) as i32,
                Size::B,
                write,
                Value::Unknown,
                None,
                false,
                false,
            )
        }
        _ => {
            if zero_ok && size == 0 && reg.is_null() {
                return Ok(());
            }
            bail!("R{regno} type={} expected=fp", fmt::type_str(&reg))
        }
    }
}
