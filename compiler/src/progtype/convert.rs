//! Context conversion (the kernel's `convert_ctx_access`) as a bytecode
//! rewrite: each load or store the verifier proved to touch the context
//! becomes one load or store of the runtime's native struct
//! ([`bpfc_runtime::net::XdpMd`], [`bpfc_runtime::net::SkBuff`]) at the
//! field's native offset. Pointer fields (`data`, `data_end`, `data_meta`,
//! 4 bytes in the uapi structs) become 64-bit loads of host pointers;
//! stores to 16-bit kernel fields write the low half of their widened
//! native field. One instruction stays one instruction, so jumps need no
//! fixing and every engine runs the same converted code.
//!
//! Contexts whose native layout is the uapi layout (`pt_regs`, tracepoint
//! records, raw tracepoint arguments, `bpf_perf_event_data`, syscall
//! arguments) are left as they are: the host supplies their bytes.

use super::{CtxAccess, CtxField, FieldKind};
use crate::isa::{Endian, Insn, Size};
use crate::loader::ProgType;
use crate::verifier::{Facts, Region};
use bpfc_runtime::net::{skb, XdpMd};
use std::mem::offset_of;

/// A context access that cannot be converted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("instruction {pc}: {message}")]
pub struct ConvertError {
    pub pc: usize,
    pub message: String,
}

/// How a program type's context reaches native code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtxKind {
    /// `struct xdp_md` on [`XdpMd`].
    Xdp,
    /// `struct __sk_buff` on [`bpfc_runtime::net::SkBuff`].
    Skb,
    /// The uapi layout is the native one (tracing contexts).
    Raw,
}

/// The conversion a program type needs, or `None` when bpfc cannot run
/// its context (a kernel object such as `bpf_sock_ops`).
pub fn ctx_kind(ty: ProgType) -> Option<CtxKind> {
    use ProgType::*;
    Some(match ty {
        Xdp => CtxKind::Xdp,
        SocketFilter | SchedCls | SchedAct | CgroupSkb | LwtIn | LwtOut | LwtXmit
        | LwtSeg6local | SkSkb => CtxKind::Skb,
        Kprobe | Tracepoint | RawTracepoint | RawTracepointWritable | PerfEvent | Syscall => {
            CtxKind::Raw
        }
        _ => return None,
    })
}

/// Native offset of an XDP field, by name.
fn xdp_native(name: &str) -> Option<(usize, usize)> {
    Some(match name {
        "data" => (offset_of!(XdpMd, data), 8),
        "data_end" => (offset_of!(XdpMd, data_end), 8),
        "data_meta" => (offset_of!(XdpMd, data_meta), 8),
        "ingress_ifindex" => (offset_of!(XdpMd, ingress_ifindex), 4),
        "rx_queue_index" => (offset_of!(XdpMd, rx_queue_index), 4),
        "egress_ifindex" => (offset_of!(XdpMd, egress_ifindex), 4),
        _ => return None,
    })
}

fn is_pointer(kind: FieldKind) -> bool {
    matches!(
        kind,
        FieldKind::PacketData | FieldKind::PacketEnd | FieldKind::PacketMeta
    )
}

/// Rewrite the context accesses of `insns` for program type `ty` (expected
/// attach type `attach`), using the verifier's `facts`.
pub fn convert(
    insns: &[Insn],
    facts: &Facts,
    ty: ProgType,
    attach: Option<&str>,
    endian: Endian,
) -> Result<Vec<Insn>, ConvertError> {
    let mut out = insns.to_vec();
    // Contexts that are kernel objects (bpf_sock_ops ...) stay as they
    // are: bpfc runs them on the bytes the host passes, like raw ones.
    let kind = ctx_kind(ty);
    if !matches!(kind, Some(CtxKind::Xdp | CtxKind::Skb)) {
        return Ok(out);
    }
    let layout = super::ctx::layout(ty);
    for (pc, insn) in insns.iter().enumerate() {
        let Some(Some(fact)) = facts.access.get(pc) else {
            continue;
        };
        if !fact.regions.contains(&Region::Ctx) {
            continue;
        }
        let err = |message: String| ConvertError { pc, message };
        let (Some(kind), Some(layout)) = (kind, layout) else {
            return Ok(out);
        };
        if fact.regions.len() > 1 {
            return Err(err(
                "the same instruction accesses the context and other memory".into(),
            ));
        }
        let (size, off, write, sx) = match *insn {
            Insn::Ldx { size, sx, off, .. } => (size, off, false, sx),
            Insn::St { size, off, .. } | Insn::Stx { size, off, .. } => (size, off, true, false),
            _ => {
                return Err(err(
                    "atomic operations on the context are not allowed".into()
                ))
            }
        };
        let access = layout.check(off as i64, size.bytes() as u32, write, sx, attach);
        let CtxAccess::Ok(field) = access else {
            return Err(err(describe_invalid(layout, off, size, write, sx)));
        };
        let native = match kind {
            CtxKind::Xdp => xdp_native(field.name),
            _ => skb::native_field(field.name),
        };
        let Some((base, store_size)) = native else {
            return Err(err(format!(
                "field {} of {} is not modelled outside the kernel",
                field.name, layout.name
            )));
        };
        let rel = off as usize - field.offset as usize;
        let (new_size, new_off) = if is_pointer(field.kind) {
            (Size::DW, base)
        } else if write && store_size == 2 && size == Size::W {
            let low = if endian == Endian::Big { 2 } else { 0 };
            (Size::H, base + low)
        } else {
            (size, base + rel)
        };
        let new_off = new_off as i16;
        out[pc] = insn
            .with_access(new_size, new_off)
            .expect("a context access is a load or a store");
    }
    Ok(out)
}

/// Why an access is invalid, naming the field it falls in.
pub fn describe_invalid(
    layout: super::CtxLayout,
    off: i16,
    size: Size,
    write: bool,
    sx: bool,
) -> String {
    let what = if write {
        "write"
    } else if sx {
        "sign-extending read"
    } else {
        "read"
    };
    let bytes = size.bytes();
    let field: Option<&CtxField> = layout
        .fields
        .iter()
        .find(|f| off >= 0 && (off as u32) >= f.offset && (off as u32) < f.offset + f.size);
    match field {
        Some(f) => format!(
            "invalid {bytes}-byte {what} of field {} of {} (offset {off})",
            f.name, layout.name
        ),
        None => format!(
            "invalid {bytes}-byte {what} of {} at offset {off}: no field there",
            layout.name
        ),
    }
}

/// The packet state of a test run of a `ty` program on `data_in` (an
/// Ethernet frame) and an optional `ctx_in`; `None` when `ty` is not a
/// network program type bpfc can run on packets.
pub fn net_setup(
    ty: ProgType,
    data_in: &[u8],
    ctx_in: Option<&[u8]>,
) -> Option<Result<bpfc_runtime::net::NetRun, bpfc_runtime::net::SetupError>> {
    bpfc_runtime::net::setup(ty.number(), data_in, ctx_in)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asm::assemble;
    use crate::verifier::{self, Input, Options};
    use bpfc_runtime::net::SkBuff;

    fn converted(src: &str, ty: ProgType) -> Vec<Insn> {
        let insns = assemble(src).unwrap();
        let input = Input {
            insns: &insns,
            maps: &[],
            btf: None,
            func_info: &[],
            endian: Endian::Little,
        };
        let v = verifier::verify(&input, &Options::new(ty)).unwrap();
        convert(&insns, &v.facts, ty, None, Endian::Little).unwrap()
    }

    #[test]
    fn one_instruction_per_access_at_the_native_field() {
        let out = converted(
            "ldxw %r2, [%r1+76]\nldxb %r3, [%r1+17]\nstxw [%r1+12], %r3\nstxw [%r1+8], %r3\nmov %r0, 0\nexit\n",
            ProgType::SchedCls,
        );
        let native = |f: usize| f as i16;
        assert!(
            matches!(out[0], Insn::Ldx { size: Size::DW, off, .. } if off == native(offset_of!(SkBuff, data)))
        );
        assert!(
            matches!(out[1], Insn::Ldx { size: Size::B, off, .. } if off == native(offset_of!(SkBuff, protocol) + 1))
        );
        // queue_mapping is 16 bits in the kernel: the store writes the low half.
        assert!(
            matches!(out[2], Insn::Stx { size: Size::H, off, .. } if off == native(offset_of!(SkBuff, queue_mapping)))
        );
        assert!(
            matches!(out[3], Insn::Stx { size: Size::W, off, .. } if off == native(offset_of!(SkBuff, mark)))
        );
        assert_eq!(out.len(), 6);
        // XDP: data_end becomes a 64-bit load of the native pointer.
        let x = converted("ldxw %r2, [%r1+4]\nmov %r0, 2\nexit\n", ProgType::Xdp);
        assert!(
            matches!(x[0], Insn::Ldx { size: Size::DW, off, .. } if off == native(offset_of!(XdpMd, data_end)))
        );
        // Tracing contexts keep their layout.
        let k = converted("ldxdw %r2, [%r1+112]\nmov %r0, 0\nexit\n", ProgType::Kprobe);
        assert!(matches!(
            k[0],
            Insn::Ldx {
                size: Size::DW,
                off: 112,
                ..
            }
        ));
    }
}
