//! Register and frame states printed as the kernel's verifier log prints
//! them (`R1=map_value(map=counts,ks=4,vs=8,off=4)`, `fp-8=mmmmmmmm`), for
//! messages and `--log-level 2`.

use super::state::{flag, Frame, Reg, RegType, Slot, ADD_CONST};
use crate::loader::MapDef;
use std::fmt::Write as _;

/// The kernel's name of a register type with its modifiers
/// (`map_value_or_null`, `rdonly_mem`, `ringbuf_mem_or_null`).
pub fn type_str(r: &Reg) -> String {
    type_str_of(r.ty, r.flags)
}

/// [`type_str`] for a type and modifiers.
pub fn type_str_of(ty: RegType, flags: u16) -> String {
    let base = match ty {
        RegType::NotInit => "?",
        RegType::Scalar => "scalar",
        RegType::Ctx => "ctx",
        RegType::MapPtr => "map_ptr",
        RegType::MapValue => "map_value",
        RegType::MapKey => "map_key",
        RegType::Stack => "fp",
        RegType::PacketMeta => "pkt_meta",
        RegType::Packet => "pkt",
        RegType::PacketEnd => "pkt_end",
        RegType::FlowKeys => "flow_keys",
        RegType::Socket => "sock",
        RegType::SockCommon => "sock_common",
        RegType::TcpSock => "tcp_sock",
        RegType::XdpSock => "xdp_sock",
        RegType::TpBuffer => "tp_buffer",
        RegType::Mem => "mem",
        RegType::Buf => "buf",
        RegType::Func => "func",
        RegType::BtfId => "ptr_",
        RegType::DynptrPtr => "dynptr_ptr",
    };
    let mut s = String::new();
    for (bit, name) in [
        (flag::RDONLY, "rdonly_"),
        (flag::RINGBUF, "ringbuf_"),
        (flag::USER, "user_"),
        (flag::PERCPU, "percpu_"),
        (flag::RCU, "rcu_"),
        (flag::UNTRUSTED, "untrusted_"),
        (flag::TRUSTED, "trusted_"),
    ] {
        if flags & bit != 0 {
            s.push_str(name);
        }
    }
    s.push_str(base);
    if flags & flag::MAYBE_NULL != 0 {
        s.push_str(if ty == RegType::BtfId {
            "or_null_"
        } else {
            "_or_null"
        });
    }
    s
}

/// A signed number as the kernel prints it: decimal within i16, else hex.
pub fn snum(v: i64) -> String {
    if (i16::MIN as i64..=i16::MAX as i64).contains(&v) {
        v.to_string()
    } else {
        format!("{:#x}", v as u64)
    }
}

/// An unsigned number: decimal up to u16::MAX, else hex.
pub fn unum(v: u64) -> String {
    if v <= u16::MAX as u64 {
        v.to_string()
    } else {
        format!("{v:#x}")
    }
}

fn scalar_ranges(r: &Reg, out: &mut String, sep: &mut &'static str) {
    let b = &r.b;
    let s32 = |v: i32| -> u64 {
        let v = v as i64;
        if (i16::MIN as i64..=i16::MAX as i64).contains(&v) {
            v as u64
        } else {
            v as u32 as u64
        }
    };
    let mut items: [(&str, u64, bool); 8] = [
        ("smin", b.smin as u64, b.smin == i64::MIN),
        ("smax", b.smax as u64, b.smax == i64::MAX),
        ("umin", b.umin, b.umin == 0),
        ("umax", b.umax, b.umax == u64::MAX),
        ("smin32", s32(b.s32_min), b.s32_min == i32::MIN),
        ("smax32", s32(b.s32_max), b.s32_max == i32::MAX),
        ("umin32", b.u32_min as u64, b.u32_min == 0),
        ("umax32", b.u32_max as u64, b.u32_max == u32::MAX),
    ];
    for i in 0..items.len() {
        let (name, val, omit) = items[i];
        if omit {
            continue;
        }
        let neg1 = name.starts_with('s') && (val as i64) < 0;
        let _ = write!(out, "{sep}{name}=");
        *sep = ",";
        let mut j = i + 2;
        while j < items.len() {
            let (n2, v2, o2) = items[j];
            let neg2 = n2.starts_with('s') && (v2 as i64) < 0;
            if !o2 && v2 == val && neg1 == neg2 {
                items[j].2 = true;
                let _ = write!(out, "{n2}=");
            }
            j += 2;
        }
        if name.starts_with('s') {
            out.push_str(&snum(val as i64));
        } else {
            out.push_str(&unum(val));
        }
    }
}

/// One register's state (`map_value(map=m,ks=4,vs=8)`, `P5`, `fp-8`).
pub fn reg_str(r: &Reg, frameno: u8, maps: &[MapDef]) -> String {
    let mut out = String::new();
    if r.ty == RegType::Scalar && r.precise {
        out.push('P');
    }
    if r.ty == RegType::Scalar && r.b.var_off.is_const() {
        out.push_str(&snum(r.b.var_off.value as i64));
        return out;
    }
    out.push_str(&type_str(r));
    if r.ty == RegType::Stack {
        if r.frameno != frameno {
            let _ = write!(out, "[{}]", r.frameno);
        }
        if r.b.var_off.is_const() {
            out.push_str(&snum((r.b.var_off.value as i64).wrapping_add(r.off as i64)));
            return out;
        }
    }
    out.push('(');
    let mut sep = "";
    let item = |out: &mut String, sep: &mut &'static str, s: String| {
        let _ = write!(out, "{sep}{s}");
        *sep = ",";
    };
    if r.id != 0 {
        item(&mut out, &mut sep, format!("id={}", r.id & !ADD_CONST));
    }
    if r.id & ADD_CONST != 0 {
        let _ = write!(out, "{:+}", r.off);
    }
    if r.ref_obj_id != 0 {
        item(&mut out, &mut sep, format!("ref_obj_id={}", r.ref_obj_id));
    }
    if matches!(r.ty, RegType::MapPtr | RegType::MapKey | RegType::MapValue) {
        if let Some(m) = maps.get(r.map as usize) {
            if !m.name.is_empty() {
                item(&mut out, &mut sep, format!("map={}", m.name));
            }
            item(
                &mut out,
                &mut sep,
                format!("ks={},vs={}", m.key_size, m.value_size),
            );
        }
    }
    if r.ty != RegType::Scalar && r.off != 0 {
        item(&mut out, &mut sep, format!("off={}", snum(r.off as i64)));
    }
    if r.is_pkt() {
        item(
            &mut out,
            &mut sep,
            format!("r={}", unum(r.range as i64 as u64)),
        );
    }
    if r.ty == RegType::Mem {
        item(
            &mut out,
            &mut sep,
            format!("sz={}", unum(r.mem_size as u64)),
        );
    }
    if r.b.var_off.is_const() {
        if r.b.var_off.value != 0 {
            item(
                &mut out,
                &mut sep,
                format!("imm={}", snum(r.b.var_off.value as i64)),
            );
        }
    } else {
        scalar_ranges(r, &mut out, &mut sep);
        if !r.b.var_off.is_unknown() {
            item(&mut out, &mut sep, format!("var_off={}", r.b.var_off));
        }
    }
    out.push(')');
    out
}

fn slot_char(s: Slot) -> char {
    match s {
        Slot::Invalid => '?',
        Slot::Spill => 'r',
        Slot::Misc => 'm',
        Slot::Zero => '0',
        Slot::Dynptr => 'd',
        Slot::Iter => 'i',
    }
}

/// A frame as the log's state line prints it: ` R1=ctx() R10=fp0 fp-8=mmmmmmmm`.
pub fn frame_str(f: &Frame, maps: &[MapDef]) -> String {
    let mut out = String::new();
    if f.frameno != 0 {
        let _ = write!(out, " frame{}:", f.frameno);
    }
    for (i, r) in f.regs.iter().enumerate() {
        if r.ty == RegType::NotInit {
            continue;
        }
        let _ = write!(out, " R{i}={}", reg_str(r, f.frameno, maps));
    }
    for (spi, s) in f.stack.iter().enumerate() {
        if s.types.iter().all(|&t| t == Slot::Invalid) {
            continue;
        }
        let off = -8 * (spi as i64 + 1);
        let chars: String = s.types.iter().map(|&t| slot_char(t)).collect();
        if s.is_spill() {
            let first_spill = s.types.iter().position(|&t| t == Slot::Spill).unwrap_or(8);
            let _ = write!(
                out,
                " fp{off}={}{}",
                &chars[..first_spill],
                reg_str(&s.spilled, f.frameno, maps)
            );
        } else {
            let _ = write!(out, " fp{off}={chars}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verifier::bounds::Bounds;

    #[test]
    fn kernel_spellings() {
        assert_eq!(
            type_str_of(RegType::MapValue, flag::MAYBE_NULL),
            "map_value_or_null"
        );
        assert_eq!(
            type_str_of(RegType::Mem, flag::RINGBUF | flag::MAYBE_NULL),
            "ringbuf_mem_or_null"
        );
        assert_eq!(type_str_of(RegType::Mem, flag::RDONLY), "rdonly_mem");
        assert_eq!(reg_str(&Reg::konst(5), 0, &[]), "5");
        assert_eq!(reg_str(&Reg::konst(u64::MAX), 0, &[]), "-1");
        assert_eq!(reg_str(&Reg::unknown(), 0, &[]), "scalar()");
        let r = Reg::scalar(Bounds::urange(0, 255));
        assert_eq!(
            reg_str(&r, 0, &[]),
            "scalar(smin=smin32=0,smax=umax=smax32=umax32=255,var_off=(0x0; 0xff))"
        );
        let mut fp = Reg::ptr(RegType::Stack);
        fp.off = -8;
        assert_eq!(reg_str(&fp, 0, &[]), "fp-8");
        let mut p = Reg::ptr(RegType::Packet);
        p.off = 14;
        p.range = 20;
        assert_eq!(reg_str(&p, 0, &[]), "pkt(off=14,r=20)");
    }
}
