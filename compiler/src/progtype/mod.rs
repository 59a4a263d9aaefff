//! Program types as data: for each `enum bpf_prog_type` bpfc models, the
//! context layout ([`ctx`]), the helpers it may call ([`helpers`], from the
//! kernel's `get_func_proto`), its direct packet access, the legacy packet
//! loads, and the range its return value must be in. The verifier reads
//! these for context accesses, helper calls and exits; the names are the
//! ones `bpfc verify --type` accepts.
//!
//! A context field is an entry `(name, offset, size, read sizes, write
//! sizes, kind)` so that the conversion of each access to native code can
//! later key on the same entries.

pub mod convert;
pub mod ctx;
pub mod helpers;

pub use ctx::{CtxAccess, CtxField, CtxLayout, FieldKind};

use crate::loader::ProgType;

/// Direct packet access (`may_access_direct_pkt_data`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PktAccess {
    None,
    Read,
    ReadWrite,
}

/// What bpfc knows of a program type.
#[derive(Clone, Copy, Debug)]
pub struct ProgTypeInfo {
    pub ty: ProgType,
    /// `None`: the context is a kernel-BTF-typed struct bpfc does not model.
    pub ctx: Option<CtxLayout>,
    pub pkt: PktAccess,
    /// `BPF_LD_ABS`/`BPF_LD_IND` allowed (`may_access_skb`).
    pub ld_abs: bool,
    /// Helper ids the type may call, sorted.
    pub helpers: &'static [u32],
    /// May update and delete sock map entries (`may_update_sockmap`).
    pub sockmap_update: bool,
}

impl ProgTypeInfo {
    pub fn allows_helper(&self, id: u32) -> bool {
        self.helpers.binary_search(&id).is_ok()
    }
}

/// The program types bpfc verifies (those with a modelled context).
pub fn supported(ty: ProgType) -> bool {
    ctx::layout(ty).is_some()
}

/// The description of `ty` (registers of the architecture bpfc runs on).
pub fn info(ty: ProgType) -> ProgTypeInfo {
    info_for(ty, ctx::HOST_PT_REGS)
}

/// [`info`] with kprobe/perf_event registers of `pt_regs` bytes
/// ([`ctx::pt_regs_size`] of a compile target).
pub fn info_for(ty: ProgType, pt_regs: u32) -> ProgTypeInfo {
    use ProgType::*;
    let pkt = match ty {
        LwtIn | LwtOut | LwtSeg6local | SkReuseport | FlowDissector | CgroupSkb => PktAccess::Read,
        SchedCls | SchedAct | Xdp | LwtXmit | SkSkb | SkMsg | CgroupSockopt => PktAccess::ReadWrite,
        _ => PktAccess::None,
    };
    ProgTypeInfo {
        ty,
        ctx: ctx::layout_for(ty, pt_regs),
        pkt,
        ld_abs: matches!(ty, SocketFilter | SchedCls | SchedAct),
        helpers: helpers::allowed(ty),
        sockmap_update: matches!(
            ty,
            SocketFilter | SchedCls | SchedAct | Xdp | SkReuseport | FlowDissector | SkLookup
        ),
    }
}

/// The range the entry function's return value must lie in
/// (`check_return_code`), or `None` when any value is accepted.
pub fn return_range(ty: ProgType, attach: Option<&str>) -> Option<(i32, i32)> {
    use ProgType::*;
    let a = attach.unwrap_or("");
    match ty {
        CgroupSockAddr => {
            if a.contains("RECVMSG") || a.contains("GETPEERNAME") || a.contains("GETSOCKNAME") {
                Some((1, 1))
            } else if a == "BPF_CGROUP_INET4_BIND" || a == "BPF_CGROUP_INET6_BIND" {
                Some((0, 3))
            } else {
                Some((0, 1))
            }
        }
        CgroupSkb => Some(if a == "BPF_CGROUP_INET_EGRESS" {
            (0, 3)
        } else {
            (0, 1)
        }),
        CgroupSock | SockOps | CgroupDevice | CgroupSysctl | CgroupSockopt => Some((0, 1)),
        SkLookup | Netfilter => Some((0, 1)),
        Kprobe if a == "BPF_TRACE_KPROBE_SESSION" => Some((0, 1)),
        _ => None,
    }
}

/// The program type a `--type` name selects: the kernel's and bpftool's
/// type names (`socket_filter`, `sched_cls`, `xdp` ...) or any section name
/// libbpf knows (`socket`, `classifier`, `cgroup/skb`, `kprobe/...`).
pub fn by_name(name: &str) -> Option<ProgType> {
    if let Some(t) = ProgType::ALL.iter().find(|t| t.name() == name) {
        return Some(*t);
    }
    match crate::loader::classify(name).prog_type {
        ProgType::Unknown => None,
        t => Some(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_tables() {
        assert_eq!(by_name("xdp"), Some(ProgType::Xdp));
        assert_eq!(by_name("sched_cls"), Some(ProgType::SchedCls));
        assert_eq!(by_name("classifier"), Some(ProgType::SchedCls));
        assert_eq!(by_name("socket"), Some(ProgType::SocketFilter));
        assert_eq!(by_name("cgroup/skb"), Some(ProgType::CgroupSkb));
        assert_eq!(by_name("nonsense"), None);
        let sf = info(ProgType::SocketFilter);
        assert!(sf.allows_helper(1) && sf.allows_helper(26));
        assert!(!sf.allows_helper(9), "socket filters cannot store bytes");
        assert!(!sf.allows_helper(4), "nor probe_read");
        assert!(info(ProgType::Kprobe).allows_helper(4));
        assert!(info(ProgType::SchedCls).allows_helper(9));
        assert_eq!(info(ProgType::Xdp).pkt, PktAccess::ReadWrite);
        assert_eq!(info(ProgType::CgroupSkb).pkt, PktAccess::Read);
        assert!(info(ProgType::SocketFilter).ld_abs);
        assert!(!info(ProgType::Xdp).ld_abs);
        assert_eq!(return_range(ProgType::CgroupSkb, None), Some((0, 1)));
        assert_eq!(return_range(ProgType::Xdp, None), None);
        assert!(supported(ProgType::Tracepoint));
        assert!(!supported(ProgType::Lsm));
        for list in [
            info(ProgType::SchedCls).helpers,
            info(ProgType::Kprobe).helpers,
        ] {
            assert!(list.windows(2).all(|w| w[0] < w[1]));
        }
    }
}
