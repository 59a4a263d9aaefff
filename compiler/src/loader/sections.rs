//! Program section names (`SEC("...")`) to program type and attach point,
//! following libbpf's conventions. Unknown names are kept as
//! [`ProgType::Unknown`], never an error.

/// The kernel program type (`enum bpf_prog_type`) a section name selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProgType {
    SocketFilter,
    Kprobe,
    SchedCls,
    SchedAct,
    Tracepoint,
    Xdp,
    PerfEvent,
    CgroupSkb,
    CgroupSock,
    LwtIn,
    LwtOut,
    LwtXmit,
    LwtSeg6local,
    SockOps,
    SkSkb,
    CgroupDevice,
    SkMsg,
    RawTracepoint,
    CgroupSockAddr,
    SkReuseport,
    FlowDissector,
    CgroupSysctl,
    RawTracepointWritable,
    CgroupSockopt,
    Tracing,
    StructOps,
    Ext,
    Lsm,
    SkLookup,
    Syscall,
    Netfilter,
    /// A section name libbpf does not know.
    Unknown,
}

impl ProgType {
    /// Every type the kernel has, in `enum bpf_prog_type` order.
    pub const ALL: &'static [ProgType] = &[
        ProgType::SocketFilter,
        ProgType::Kprobe,
        ProgType::SchedCls,
        ProgType::SchedAct,
        ProgType::Tracepoint,
        ProgType::Xdp,
        ProgType::PerfEvent,
        ProgType::CgroupSkb,
        ProgType::CgroupSock,
        ProgType::LwtIn,
        ProgType::LwtOut,
        ProgType::LwtXmit,
        ProgType::SockOps,
        ProgType::SkSkb,
        ProgType::CgroupDevice,
        ProgType::SkMsg,
        ProgType::RawTracepoint,
        ProgType::CgroupSockAddr,
        ProgType::LwtSeg6local,
        ProgType::SkReuseport,
        ProgType::FlowDissector,
        ProgType::CgroupSysctl,
        ProgType::RawTracepointWritable,
        ProgType::CgroupSockopt,
        ProgType::Tracing,
        ProgType::StructOps,
        ProgType::Ext,
        ProgType::Lsm,
        ProgType::SkLookup,
        ProgType::Syscall,
        ProgType::Netfilter,
    ];

    /// The kernel's `enum bpf_prog_type` number (0 for [`ProgType::Unknown`]).
    pub fn number(self) -> u32 {
        use ProgType::*;
        match self {
            SocketFilter => 1,
            Kprobe => 2,
            SchedCls => 3,
            SchedAct => 4,
            Tracepoint => 5,
            Xdp => 6,
            PerfEvent => 7,
            CgroupSkb => 8,
            CgroupSock => 9,
            LwtIn => 10,
            LwtOut => 11,
            LwtXmit => 12,
            SockOps => 13,
            SkSkb => 14,
            CgroupDevice => 15,
            SkMsg => 16,
            RawTracepoint => 17,
            CgroupSockAddr => 18,
            LwtSeg6local => 19,
            SkReuseport => 21,
            FlowDissector => 22,
            CgroupSysctl => 23,
            RawTracepointWritable => 24,
            CgroupSockopt => 25,
            Tracing => 26,
            StructOps => 27,
            Ext => 28,
            Lsm => 29,
            SkLookup => 30,
            Syscall => 31,
            Netfilter => 32,
            Unknown => 0,
        }
    }

    /// libbpf's name of the type (`bpftool prog` prints these).
    pub fn name(self) -> &'static str {
        use ProgType::*;
        match self {
            SocketFilter => "socket_filter",
            Kprobe => "kprobe",
            SchedCls => "sched_cls",
            SchedAct => "sched_act",
            Tracepoint => "tracepoint",
            Xdp => "xdp",
            PerfEvent => "perf_event",
            CgroupSkb => "cgroup_skb",
            CgroupSock => "cgroup_sock",
            LwtIn => "lwt_in",
            LwtOut => "lwt_out",
            LwtXmit => "lwt_xmit",
            LwtSeg6local => "lwt_seg6local",
            SockOps => "sock_ops",
            SkSkb => "sk_skb",
            CgroupDevice => "cgroup_device",
            SkMsg => "sk_msg",
            RawTracepoint => "raw_tracepoint",
            CgroupSockAddr => "cgroup_sock_addr",
            SkReuseport => "sk_reuseport",
            FlowDissector => "flow_dissector",
            CgroupSysctl => "cgroup_sysctl",
            RawTracepointWritable => "raw_tracepoint_writable",
            CgroupSockopt => "cgroup_sockopt",
            Tracing => "tracing",
            StructOps => "struct_ops",
            Ext => "ext",
            Lsm => "lsm",
            SkLookup => "sk_lookup",
            Syscall => "syscall",
            Netfilter => "netfilter",
            Unknown => "unknown",
        }
    }
}

/// What a program section name says about the program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramKind {
    pub prog_type: ProgType,
    /// libbpf's expected attach type name (`BPF_XDP`, `BPF_CGROUP_INET_INGRESS` ...), if any.
    pub attach_type: Option<&'static str>,
    /// The target after the prefix (`do_sys_open` in `kprobe/do_sys_open`), if any.
    pub attach_to: Option<String>,
    /// A `.s` sleepable variant.
    pub sleepable: bool,
}

/// (prefix, type, attach type); a prefix ending in '/' takes an attach target,
/// the others must match the whole name or be followed by '/'.
const TABLE: &[(&str, ProgType, Option<&str>)] = {
    use ProgType::*;
    &[
        ("socket", SocketFilter, None),
        (
            "sk_reuseport/migrate",
            SkReuseport,
            Some("BPF_SK_REUSEPORT_SELECT_OR_MIGRATE"),
        ),
        ("sk_reuseport", SkReuseport, Some("BPF_SK_REUSEPORT_SELECT")),
        ("kprobe.multi", Kprobe, Some("BPF_TRACE_KPROBE_MULTI")),
        ("kretprobe.multi", Kprobe, Some("BPF_TRACE_KPROBE_MULTI")),
        ("uprobe.multi", Kprobe, Some("BPF_TRACE_UPROBE_MULTI")),
        ("uretprobe.multi", Kprobe, Some("BPF_TRACE_UPROBE_MULTI")),
        ("kprobe", Kprobe, None),
        ("kretprobe", Kprobe, None),
        ("uprobe", Kprobe, None),
        ("uretprobe", Kprobe, None),
        ("ksyscall", Kprobe, None),
        ("kretsyscall", Kprobe, None),
        ("usdt", Kprobe, None),
        ("tc/ingress", SchedCls, Some("BPF_TCX_INGRESS")),
        ("tc/egress", SchedCls, Some("BPF_TCX_EGRESS")),
        ("tcx/ingress", SchedCls, Some("BPF_TCX_INGRESS")),
        ("tcx/egress", SchedCls, Some("BPF_TCX_EGRESS")),
        ("netkit/primary", SchedCls, Some("BPF_NETKIT_PRIMARY")),
        ("netkit/peer", SchedCls, Some("BPF_NETKIT_PEER")),
        ("tc", SchedCls, None),
        ("classifier", SchedCls, None),
        ("action", SchedAct, None),
        ("tracepoint", Tracepoint, None),
        ("tp", Tracepoint, None),
        ("raw_tracepoint.w", RawTracepointWritable, None),
        ("raw_tp.w", RawTracepointWritable, None),
        ("raw_tracepoint", RawTracepoint, None),
        ("raw_tp", RawTracepoint, None),
        ("tp_btf", Tracing, Some("BPF_TRACE_RAW_TP")),
        ("fentry", Tracing, Some("BPF_TRACE_FENTRY")),
        ("fmod_ret", Tracing, Some("BPF_MODIFY_RETURN")),
        ("fexit", Tracing, Some("BPF_TRACE_FEXIT")),
        ("freplace", Ext, None),
        ("lsm_cgroup", Lsm, Some("BPF_LSM_CGROUP")),
        ("lsm", Lsm, Some("BPF_LSM_MAC")),
        ("iter", Tracing, Some("BPF_TRACE_ITER")),
        ("syscall", Syscall, None),
        ("xdp.frags/devmap", Xdp, Some("BPF_XDP_DEVMAP")),
        ("xdp/devmap", Xdp, Some("BPF_XDP_DEVMAP")),
        ("xdp.frags/cpumap", Xdp, Some("BPF_XDP_CPUMAP")),
        ("xdp/cpumap", Xdp, Some("BPF_XDP_CPUMAP")),
        ("xdp.frags", Xdp, Some("BPF_XDP")),
        ("xdp", Xdp, Some("BPF_XDP")),
        ("perf_event", PerfEvent, None),
        ("lwt_in", LwtIn, None),
        ("lwt_out", LwtOut, None),
        ("lwt_xmit", LwtXmit, None),
        ("lwt_seg6local", LwtSeg6local, None),
        ("sockops", SockOps, Some("BPF_CGROUP_SOCK_OPS")),
        (
            "sk_skb/stream_parser",
            SkSkb,
            Some("BPF_SK_SKB_STREAM_PARSER"),
        ),
        (
            "sk_skb/stream_verdict",
            SkSkb,
            Some("BPF_SK_SKB_STREAM_VERDICT"),
        ),
        ("sk_skb/verdict", SkSkb, Some("BPF_SK_SKB_VERDICT")),
        ("sk_skb", SkSkb, None),
        ("sk_msg", SkMsg, Some("BPF_SK_MSG_VERDICT")),
        ("sk_lookup", SkLookup, Some("BPF_SK_LOOKUP")),
        ("flow_dissector", FlowDissector, Some("BPF_FLOW_DISSECTOR")),
        (
            "cgroup_skb/ingress",
            CgroupSkb,
            Some("BPF_CGROUP_INET_INGRESS"),
        ),
        (
            "cgroup_skb/egress",
            CgroupSkb,
            Some("BPF_CGROUP_INET_EGRESS"),
        ),
        ("cgroup/skb", CgroupSkb, None),
        (
            "cgroup/sock_create",
            CgroupSock,
            Some("BPF_CGROUP_INET_SOCK_CREATE"),
        ),
        (
            "cgroup/sock_release",
            CgroupSock,
            Some("BPF_CGROUP_INET_SOCK_RELEASE"),
        ),
        (
            "cgroup/sock",
            CgroupSock,
            Some("BPF_CGROUP_INET_SOCK_CREATE"),
        ),
        (
            "cgroup/post_bind4",
            CgroupSock,
            Some("BPF_CGROUP_INET4_POST_BIND"),
        ),
        (
            "cgroup/post_bind6",
            CgroupSock,
            Some("BPF_CGROUP_INET6_POST_BIND"),
        ),
        ("cgroup/dev", CgroupDevice, Some("BPF_CGROUP_DEVICE")),
        (
            "cgroup/bind4",
            CgroupSockAddr,
            Some("BPF_CGROUP_INET4_BIND"),
        ),
        (
            "cgroup/bind6",
            CgroupSockAddr,
            Some("BPF_CGROUP_INET6_BIND"),
        ),
        (
            "cgroup/connect4",
            CgroupSockAddr,
            Some("BPF_CGROUP_INET4_CONNECT"),
        ),
        (
            "cgroup/connect6",
            CgroupSockAddr,
            Some("BPF_CGROUP_INET6_CONNECT"),
        ),
        (
            "cgroup/connect_unix",
            CgroupSockAddr,
            Some("BPF_CGROUP_UNIX_CONNECT"),
        ),
        (
            "cgroup/sendmsg4",
            CgroupSockAddr,
            Some("BPF_CGROUP_UDP4_SENDMSG"),
        ),
        (
            "cgroup/sendmsg6",
            CgroupSockAddr,
            Some("BPF_CGROUP_UDP6_SENDMSG"),
        ),
        (
            "cgroup/sendmsg_unix",
            CgroupSockAddr,
            Some("BPF_CGROUP_UNIX_SENDMSG"),
        ),
        (
            "cgroup/recvmsg4",
            CgroupSockAddr,
            Some("BPF_CGROUP_UDP4_RECVMSG"),
        ),
        (
            "cgroup/recvmsg6",
            CgroupSockAddr,
            Some("BPF_CGROUP_UDP6_RECVMSG"),
        ),
        (
            "cgroup/recvmsg_unix",
            CgroupSockAddr,
            Some("BPF_CGROUP_UNIX_RECVMSG"),
        ),
        (
            "cgroup/getpeername4",
            CgroupSockAddr,
            Some("BPF_CGROUP_INET4_GETPEERNAME"),
        ),
        (
            "cgroup/getpeername6",
            CgroupSockAddr,
            Some("BPF_CGROUP_INET6_GETPEERNAME"),
        ),
        (
            "cgroup/getsockname4",
            CgroupSockAddr,
            Some("BPF_CGROUP_INET4_GETSOCKNAME"),
        ),
        (
            "cgroup/getsockname6",
            CgroupSockAddr,
            Some("BPF_CGROUP_INET6_GETSOCKNAME"),
        ),
        ("cgroup/sysctl", CgroupSysctl, Some("BPF_CGROUP_SYSCTL")),
        (
            "cgroup/getsockopt",
            CgroupSockopt,
            Some("BPF_CGROUP_GETSOCKOPT"),
        ),
        (
            "cgroup/setsockopt",
            CgroupSockopt,
            Some("BPF_CGROUP_SETSOCKOPT"),
        ),
        ("struct_ops", StructOps, None),
        ("netfilter", Netfilter, Some("BPF_NETFILTER")),
    ]
};

/// The prefixes with a sleepable `.s` variant in libbpf's section table
/// (`SEC_SLEEPABLE`): tracing attach points, LSM, iterators, uprobes and USDT,
/// struct_ops. Kprobes, tracepoints, XDP and the rest cannot sleep.
const SLEEPABLE: &[&str] = &[
    "fentry",
    "fmod_ret",
    "fexit",
    "lsm",
    "iter",
    "uprobe",
    "uretprobe",
    "uprobe.multi",
    "uretprobe.multi",
    "usdt",
    "struct_ops",
];

/// Classify a program section name.
pub fn classify(section: &str) -> ProgramKind {
    for &(prefix, prog_type, attach_type) in TABLE {
        for sleepable in [false, true] {
            if sleepable && !SLEEPABLE.contains(&prefix) {
                continue;
            }
            let p = if sleepable {
                // Sleepable variants: `fentry.s/`, `lsm.s/`, `uprobe.s/` ...
                format!("{prefix}.s")
            } else {
                prefix.to_string()
            };
            if section == p {
                return ProgramKind {
                    prog_type,
                    attach_type,
                    attach_to: None,
                    sleepable,
                };
            }
            if let Some(rest) = section.strip_prefix(&p).and_then(|r| r.strip_prefix('/')) {
                return ProgramKind {
                    prog_type,
                    attach_type,
                    attach_to: (!rest.is_empty()).then(|| rest.to_string()),
                    sleepable,
                };
            }
        }
    }
    ProgramKind {
        prog_type: ProgType::Unknown,
        attach_type: None,
        attach_to: None,
        sleepable: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libbpf_names() {
        assert_eq!(classify("xdp").prog_type, ProgType::Xdp);
        assert_eq!(classify("tc").prog_type, ProgType::SchedCls);
        assert_eq!(classify("classifier").prog_type, ProgType::SchedCls);
        let k = classify("kprobe/do_sys_open");
        assert_eq!(k.prog_type, ProgType::Kprobe);
        assert_eq!(k.attach_to.as_deref(), Some("do_sys_open"));
        let t = classify("tracepoint/syscalls/sys_enter_openat");
        assert_eq!(t.prog_type, ProgType::Tracepoint);
        assert_eq!(t.attach_to.as_deref(), Some("syscalls/sys_enter_openat"));
        let f = classify("fentry.s/do_unlinkat");
        assert_eq!(f.prog_type, ProgType::Tracing);
        assert!(f.sleepable);
        assert_eq!(
            classify("cgroup_skb/egress").attach_type,
            Some("BPF_CGROUP_INET_EGRESS")
        );
        assert_eq!(
            classify("raw_tp/sched_switch").prog_type,
            ProgType::RawTracepoint
        );
        assert_eq!(classify("xdp.frags").prog_type, ProgType::Xdp);
    }

    #[test]
    fn only_sleepable_types_take_dot_s() {
        for ok in [
            "fentry.s/f",
            "fexit.s/f",
            "fmod_ret.s/f",
            "lsm.s/file_open",
            "iter.s/task",
            "uprobe.s/bin:fn",
            "uretprobe.s",
            "uprobe.multi.s/bin:*",
            "usdt.s/bin:p:n",
            "struct_ops.s/op",
        ] {
            let k = classify(ok);
            assert!(k.sleepable && k.prog_type != ProgType::Unknown, "{ok}");
        }
        for bad in [
            "kprobe.s/f",
            "xdp.s",
            "tracepoint.s/a/b",
            "socket.s",
            "tc.s",
            "raw_tp.s/x",
        ] {
            assert_eq!(classify(bad).prog_type, ProgType::Unknown, "{bad}");
        }
    }

    #[test]
    fn unknown_is_not_an_error() {
        assert_eq!(classify("mystery").prog_type, ProgType::Unknown);
        assert_eq!(classify("xdpfoo").prog_type, ProgType::Unknown);
        assert_eq!(classify("").prog_type, ProgType::Unknown);
    }
}
