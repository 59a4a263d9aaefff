//! Context layouts as data: for each context struct, its fields with the
//! access each program type gets (the kernel's `*_is_valid_access` in
//! net/core/filter.c, kernel/trace/bpf_trace.c, kernel/bpf/cgroup.c).
//!
//! An access of `size` bytes at `off` is valid when one field contains the
//! whole access, `size` is in the field's read (or write) size set, the
//! offset is a multiple of the size, and the field's attach-type filter (if
//! any) admits the program's expected attach type. Regions with uniform
//! rules (a tracepoint's record, `pt_regs`) are one field each.

use crate::loader::ProgType;

/// Access sizes, as a bit set: the bit of value `n` allows `n`-byte accesses.
pub type Sizes = u8;
pub const S1: Sizes = 1;
pub const S2: Sizes = 2;
pub const S4: Sizes = 4;
pub const S8: Sizes = 8;
/// Narrow reads of a 32-bit field: 1, 2 or 4 bytes.
pub const NARROW4: Sizes = S1 | S2 | S4;
/// Any size up to 8.
pub const ANY: Sizes = S1 | S2 | S4 | S8;
pub const NONE: Sizes = 0;

/// Whether `sizes` admits an access of `size` bytes.
pub fn size_ok(sizes: Sizes, size: u32) -> bool {
    matches!(size, 1 | 2 | 4 | 8) && sizes & size as u8 != 0
}

/// What reading a field gives the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldKind {
    /// A number.
    Scalar,
    /// The start of packet data (`PTR_TO_PACKET`).
    PacketData,
    /// One past its end (`PTR_TO_PACKET_END`).
    PacketEnd,
    /// The start of packet metadata (`PTR_TO_PACKET_META`).
    PacketMeta,
    /// `struct bpf_flow_keys *` (`PTR_TO_FLOW_KEYS`).
    FlowKeys,
    /// `struct bpf_sock *` that may be NULL (`PTR_TO_SOCK_COMMON_OR_NULL`).
    SockCommonOrNull,
    /// `struct bpf_sock *` (`PTR_TO_SOCKET`).
    Socket,
    /// `struct bpf_sock *` that may be NULL (`PTR_TO_SOCKET_OR_NULL`).
    SocketOrNull,
    /// The writable buffer of a writable raw tracepoint (`PTR_TO_TP_BUFFER`).
    TpBuffer,
    /// A pointer to a kernel object bpfc does not model: any read yields a
    /// value the program cannot dereference.
    Opaque,
}

/// One field (or uniform region) of a context struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtxField {
    pub name: &'static str,
    /// Byte offset in the struct.
    pub offset: u32,
    /// Bytes the field spans (a whole array for array fields).
    pub size: u32,
    /// Sizes a read may have.
    pub read: Sizes,
    /// Sizes a write may have (`NONE`: read-only).
    pub write: Sizes,
    pub kind: FieldKind,
    /// Expected attach types that may access the field (`None`: all).
    pub attach: Option<&'static [&'static str]>,
    /// Sign-extending loads allowed (pointer fields refuse them).
    pub ldsx: bool,
}

const fn f(name: &'static str, offset: u32, size: u32, read: Sizes, write: Sizes) -> CtxField {
    CtxField {
        name,
        offset,
        size,
        read,
        write,
        kind: FieldKind::Scalar,
        attach: None,
        ldsx: true,
    }
}

const fn ptr(name: &'static str, offset: u32, size: u32, read: Sizes, kind: FieldKind) -> CtxField {
    CtxField {
        name,
        offset,
        size,
        read,
        write: NONE,
        kind,
        attach: None,
        ldsx: false,
    }
}

const fn only(mut fd: CtxField, attach: &'static [&'static str]) -> CtxField {
    fd.attach = Some(attach);
    fd
}

/// A context struct and its fields for one program type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CtxLayout {
    /// The C struct name (`__sk_buff`, `xdp_md`; for regions a description).
    pub name: &'static str,
    /// `sizeof` the struct (accesses at or beyond it are invalid).
    pub size: u32,
    pub fields: &'static [CtxField],
}

/// The result of checking one context access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtxAccess {
    Ok(&'static CtxField),
    Invalid,
}

impl CtxLayout {
    /// Check an access as the kernel's `is_valid_access` does.
    pub fn check(
        &self,
        off: i64,
        size: u32,
        write: bool,
        ldsx: bool,
        attach: Option<&str>,
    ) -> CtxAccess {
        if off < 0 || off >= self.size as i64 || size == 0 || off % size as i64 != 0 {
            return CtxAccess::Invalid;
        }
        let off = off as u32;
        let admits = |fd: &CtxField| {
            let sizes = if write { fd.write } else { fd.read };
            off >= fd.offset
                && off + size <= fd.offset + fd.size
                && size_ok(sizes, size)
                && (!ldsx || fd.ldsx)
                && fd
                    .attach
                    .is_none_or(|list| attach.is_some_and(|a| list.contains(&a)))
        };
        match self.fields.iter().find(|fd| admits(fd)) {
            Some(fd) => CtxAccess::Ok(fd),
            None => CtxAccess::Invalid,
        }
    }

    pub fn field(&self, name: &str) -> Option<&'static CtxField> {
        self.fields.iter().find(|f| f.name == name)
    }
}

// ---- struct __sk_buff -------------------------------------------------

/// Access to one `__sk_buff` field per program type family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum P {
    /// Denied.
    No,
    /// Read only.
    R,
    /// Read and write.
    W,
}

/// How the size of an access to a `__sk_buff` field is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    /// Reads of 1, 2 or 4 bytes, writes of 4 (most fields).
    Default,
    /// Exactly 4 bytes (pointers as u32, addresses).
    Exact4,
    /// Exactly 8 bytes.
    Exact8,
    /// Any size, within the field (`cb[]`).
    Any,
    /// Exactly 1 byte.
    Exact1,
}

/// `__sk_buff` fields: name, offset, size, size rule, kind, and the access
/// of socket filters, tc (sched_cls/sched_act), cgroup_skb, lwt_*, sk_skb
/// and flow_dissector programs, in that order.
/// One `__sk_buff` row of [`SKB`].
type SkbRow = (&'static str, u32, u32, Rule, FieldKind, [P; 6]);

const SKB: &[SkbRow] = {
    use FieldKind::*;
    use Rule::*;
    use P::*;
    &[
        ("len", 0, 4, Default, Scalar, [R, R, R, R, R, No]),
        ("pkt_type", 4, 4, Default, Scalar, [R, R, R, R, R, No]),
        ("mark", 8, 4, Default, Scalar, [R, W, W, W, No, No]),
        ("queue_mapping", 12, 4, Default, Scalar, [R, W, R, R, R, No]),
        ("protocol", 16, 4, Default, Scalar, [R, R, R, R, R, No]),
        ("vlan_present", 20, 4, Default, Scalar, [R, R, R, R, R, No]),
        ("vlan_tci", 24, 4, Default, Scalar, [R, R, R, R, R, No]),
        ("vlan_proto", 28, 4, Default, Scalar, [R, R, R, R, R, No]),
        ("priority", 32, 4, Default, Scalar, [R, W, W, W, W, No]),
        (
            "ingress_ifindex",
            36,
            4,
            Default,
            Scalar,
            [R, R, R, R, R, No],
        ),
        ("ifindex", 40, 4, Default, Scalar, [R, R, R, R, R, No]),
        ("tc_index", 44, 4, Default, Scalar, [R, W, R, R, W, No]),
        ("cb", 48, 20, Any, Scalar, [W, W, W, W, R, No]),
        ("hash", 68, 4, Default, Scalar, [R, R, R, R, R, No]),
        (
            "tc_classid",
            72,
            4,
            Default,
            Scalar,
            [No, W, No, No, No, No],
        ),
        ("data", 76, 4, Exact4, PacketData, [No, R, R, R, R, R]),
        ("data_end", 80, 4, Exact4, PacketEnd, [No, R, R, R, R, R]),
        ("napi_id", 84, 4, Default, Scalar, [R, R, R, R, R, No]),
        ("family", 88, 4, Default, Scalar, [No, No, R, No, R, No]),
        ("remote_ip4", 92, 4, Exact4, Scalar, [No, No, R, No, R, No]),
        ("local_ip4", 96, 4, Exact4, Scalar, [No, No, R, No, R, No]),
        (
            "remote_ip6",
            100,
            16,
            Exact4,
            Scalar,
            [No, No, R, No, R, No],
        ),
        ("local_ip6", 116, 16, Exact4, Scalar, [No, No, R, No, R, No]),
        (
            "remote_port",
            132,
            4,
            Default,
            Scalar,
            [No, No, R, No, R, No],
        ),
        (
            "local_port",
            136,
            4,
            Default,
            Scalar,
            [No, No, R, No, R, No],
        ),
        (
            "data_meta",
            140,
            4,
            Exact4,
            PacketMeta,
            [No, R, No, No, No, No],
        ),
        (
            "flow_keys",
            144,
            8,
            Exact8,
            FlowKeys,
            [No, No, No, No, No, R],
        ),
        ("tstamp", 152, 8, Exact8, Scalar, [No, W, W, No, No, No]),
        ("wire_len", 160, 4, Default, Scalar, [No, R, No, No, No, No]),
        ("gso_segs", 164, 4, Default, Scalar, [R, R, R, R, R, No]),
        ("sk", 168, 8, Exact8, SockCommonOrNull, [R, R, R, R, R, No]),
        ("gso_size", 176, 4, Default, Scalar, [R, R, R, R, R, No]),
        (
            "tstamp_type",
            180,
            1,
            Exact1,
            Scalar,
            [No, R, No, No, No, No],
        ),
        ("hwtstamp", 184, 8, Exact8, Scalar, [No, R, R, No, No, No]),
    ]
};

/// Column of [`SKB`] for a program type.
fn skb_column(ty: ProgType) -> Option<usize> {
    use ProgType::*;
    Some(match ty {
        SocketFilter => 0,
        SchedCls | SchedAct => 1,
        CgroupSkb => 2,
        LwtIn | LwtOut | LwtXmit | LwtSeg6local => 3,
        SkSkb => 4,
        FlowDissector => 5,
        _ => return None,
    })
}

const fn skb_fields(col: usize) -> [CtxField; SKB.len()] {
    let mut out = [f("", 0, 0, NONE, NONE); SKB.len()];
    let mut i = 0;
    while i < SKB.len() {
        let (name, offset, size, rule, kind, perms) = SKB[i];
        let p = perms[col];
        let (read, write) = match rule {
            Rule::Default => (NARROW4, S4),
            Rule::Exact4 => (S4, S4),
            Rule::Exact8 => (S8, S8),
            Rule::Any => (ANY, ANY),
            Rule::Exact1 => (S1, S1),
        };
        let (read, write) = match p {
            P::No => (NONE, NONE),
            P::R => (read, NONE),
            P::W => (read, write),
        };
        let ldsx = matches!(kind, FieldKind::Scalar);
        out[i] = CtxField {
            name,
            offset,
            size,
            read,
            write,
            kind,
            attach: None,
            ldsx,
        };
        i += 1;
    }
    out
}

static SKB_FIELDS: [[CtxField; SKB.len()]; 6] = [
    skb_fields(0),
    skb_fields(1),
    skb_fields(2),
    skb_fields(3),
    skb_fields(4),
    skb_fields(5),
];

// ---- other structs ---------------------------------------------------

static XDP_MD: &[CtxField] = &[
    ptr("data", 0, 4, S4, FieldKind::PacketData),
    ptr("data_end", 4, 4, S4, FieldKind::PacketEnd),
    ptr("data_meta", 8, 4, S4, FieldKind::PacketMeta),
    f("ingress_ifindex", 12, 4, S4, NONE),
    f("rx_queue_index", 16, 4, S4, NONE),
    only(f("egress_ifindex", 20, 4, S4, NONE), &["BPF_XDP_DEVMAP"]),
];

const INET4_ADDR: &[&str] = &[
    "BPF_CGROUP_INET4_BIND",
    "BPF_CGROUP_INET4_CONNECT",
    "BPF_CGROUP_INET4_GETPEERNAME",
    "BPF_CGROUP_INET4_GETSOCKNAME",
    "BPF_CGROUP_UDP4_SENDMSG",
    "BPF_CGROUP_UDP4_RECVMSG",
];
const INET6_ADDR: &[&str] = &[
    "BPF_CGROUP_INET6_BIND",
    "BPF_CGROUP_INET6_CONNECT",
    "BPF_CGROUP_INET6_GETPEERNAME",
    "BPF_CGROUP_INET6_GETSOCKNAME",
    "BPF_CGROUP_UDP6_SENDMSG",
    "BPF_CGROUP_UDP6_RECVMSG",
];

static BPF_SOCK_ADDR: &[CtxField] = &[
    f("user_family", 0, 4, S4, NONE),
    only(f("user_ip4", 4, 4, NARROW4, S4), INET4_ADDR),
    only(f("user_ip6", 8, 16, ANY, S4 | S8), INET6_ADDR),
    f("user_port", 24, 4, NARROW4, S4),
    f("family", 28, 4, S4, NONE),
    f("type", 32, 4, S4, NONE),
    f("protocol", 36, 4, S4, NONE),
    only(
        f("msg_src_ip4", 40, 4, NARROW4, S4),
        &["BPF_CGROUP_UDP4_SENDMSG"],
    ),
    only(
        f("msg_src_ip6", 44, 16, ANY, S4 | S8),
        &["BPF_CGROUP_UDP6_SENDMSG"],
    ),
    ptr("sk", 64, 8, S8, FieldKind::Socket),
];

const SOCK_CREATE: &[&str] = &[
    "BPF_CGROUP_INET_SOCK_CREATE",
    "BPF_CGROUP_INET_SOCK_RELEASE",
];

/// `struct bpf_sock` as the context of cgroup/sock programs.
static BPF_SOCK: &[CtxField] = &[
    only(f("bound_dev_if", 0, 4, S4, S4), SOCK_CREATE),
    f("family", 4, 4, NARROW4, NONE),
    f("type", 8, 4, NARROW4, NONE),
    f("protocol", 12, 4, NARROW4, NONE),
    only(f("mark", 16, 4, S4, S4), SOCK_CREATE),
    only(f("priority", 20, 4, S4, S4), SOCK_CREATE),
    only(
        f("src_ip4", 24, 4, NARROW4, NONE),
        &["BPF_CGROUP_INET4_POST_BIND"],
    ),
    only(
        f("src_ip6", 28, 16, NARROW4, NONE),
        &["BPF_CGROUP_INET6_POST_BIND"],
    ),
    only(
        f("src_port", 44, 4, NARROW4, NONE),
        &["BPF_CGROUP_INET4_POST_BIND", "BPF_CGROUP_INET6_POST_BIND"],
    ),
    f("dst_port", 48, 4, S4, NONE),
    f("dst_port", 48, 2, S1 | S2, NONE),
    f("dst_ip4", 52, 4, NARROW4, NONE),
    f("dst_ip6", 56, 16, NARROW4, NONE),
    f("state", 72, 4, NARROW4, NONE),
    f("rx_queue_mapping", 76, 4, NARROW4, NONE),
];

static BPF_SOCK_OPS: &[CtxField] = &[
    f("op", 0, 4, S4, NONE),
    f("reply", 4, 4, S4, S4),
    f("args", 4, 16, S4, NONE),
    f("family", 20, 4, S4, NONE),
    f("remote_ip4", 24, 4, S4, NONE),
    f("local_ip4", 28, 4, S4, NONE),
    f("remote_ip6", 32, 16, S4, NONE),
    f("local_ip6", 48, 16, S4, NONE),
    f("remote_port", 64, 4, S4, NONE),
    f("local_port", 68, 4, S4, NONE),
    f("is_fullsock", 72, 4, S4, NONE),
    f("snd_cwnd..sacked_out", 76, 88, S4, NONE),
    f("sk_txhash", 164, 4, S4, S4),
    f("bytes_received", 168, 8, S8, NONE),
    f("bytes_acked", 176, 8, S8, NONE),
    ptr("sk", 184, 8, S8, FieldKind::SocketOrNull),
    ptr("skb_data", 192, 8, S8, FieldKind::PacketData),
    ptr("skb_data_end", 200, 8, S8, FieldKind::PacketEnd),
    f("skb_len", 208, 4, S4, NONE),
    f("skb_tcp_flags", 212, 4, NARROW4, NONE),
    f("skb_hwtstamp", 216, 8, S8, NONE),
];

static SK_MSG_MD: &[CtxField] = &[
    ptr("data", 0, 8, S8, FieldKind::PacketData),
    ptr("data_end", 8, 8, S8, FieldKind::PacketEnd),
    f("family", 16, 4, S4, NONE),
    f("remote_ip4", 20, 4, S4, NONE),
    f("local_ip4", 24, 4, S4, NONE),
    f("remote_ip6", 28, 16, S4, NONE),
    f("local_ip6", 44, 16, S4, NONE),
    f("remote_port", 60, 4, S4, NONE),
    f("local_port", 64, 4, S4, NONE),
    f("size", 68, 4, S4, NONE),
    ptr("sk", 72, 8, S8, FieldKind::Socket),
];

static SK_REUSEPORT_MD: &[CtxField] = &[
    ptr("data", 0, 8, S8, FieldKind::PacketData),
    ptr("data_end", 8, 8, S8, FieldKind::PacketEnd),
    f("len", 16, 4, S4, NONE),
    f("eth_protocol", 20, 4, NARROW4, NONE),
    f("ip_protocol", 24, 4, NARROW4, NONE),
    f("bind_inany", 28, 4, NARROW4, NONE),
    f("hash", 32, 4, NARROW4, NONE),
    ptr("sk", 40, 8, S8, FieldKind::Opaque),
    ptr("migrating_sk", 48, 8, S8, FieldKind::Opaque),
];

static BPF_SK_LOOKUP: &[CtxField] = &[
    ptr("sk", 0, 8, S8, FieldKind::SocketOrNull),
    f("family", 8, 4, NARROW4, NONE),
    f("protocol", 12, 4, NARROW4, NONE),
    f("remote_ip4", 16, 4, NARROW4, NONE),
    f("remote_ip6", 20, 16, NARROW4, NONE),
    f("remote_port", 36, 4, S4, NONE),
    f("remote_port", 36, 2, S1 | S2, NONE),
    f("(padding)", 38, 2, S1 | S2, NONE),
    f("local_ip4", 40, 4, NARROW4, NONE),
    f("local_ip6", 44, 16, NARROW4, NONE),
    f("local_port", 60, 4, NARROW4, NONE),
    f("ingress_ifindex", 64, 4, NARROW4, NONE),
];

static BPF_SYSCTL: &[CtxField] = &[
    f("write", 0, 4, NARROW4, NONE),
    f("file_pos", 4, 4, NARROW4, S4),
];

static BPF_CGROUP_DEV_CTX: &[CtxField] = &[
    f("access_type", 0, 4, NARROW4, NONE),
    f("major", 4, 4, S4, NONE),
    f("minor", 8, 4, S4, NONE),
];

static BPF_SOCKOPT: &[CtxField] = &[
    ptr("sk", 0, 8, S8, FieldKind::Socket),
    ptr("optval", 8, 8, S8, FieldKind::PacketData),
    ptr("optval_end", 16, 8, S8, FieldKind::PacketEnd),
    f("level", 24, 4, S4, NONE),
    only(f("level", 24, 4, NONE, S4), &["BPF_CGROUP_SETSOCKOPT"]),
    f("optname", 28, 4, S4, NONE),
    only(f("optname", 28, 4, NONE, S4), &["BPF_CGROUP_SETSOCKOPT"]),
    f("optlen", 32, 4, S4, S4),
    only(f("retval", 36, 4, S4, S4), &["BPF_CGROUP_GETSOCKOPT"]),
];

/// The size of the registers a kprobe/uprobe program gets (and that start
/// `struct bpf_perf_event_data`) on a target architecture: its uapi
/// `bpf_user_pt_regs_t` (x86_64 `struct pt_regs`, aarch64 `struct
/// user_pt_regs`, riscv64 `struct user_regs_struct`, s390x `user_pt_regs`),
/// the struct a host fills for a uprobe. `None` for other architectures.
/// The kernel bounds a kprobe's reads by its own `struct pt_regs`, which on
/// aarch64 (336 bytes) runs on past the user part; bpfc cannot, since a
/// host only has the user part.
pub fn pt_regs_size(arch: target_lexicon::Architecture) -> Option<u32> {
    use target_lexicon::Architecture as A;
    match arch {
        A::X86_64 | A::X86_64h => Some(168),
        A::Aarch64(_) => Some(272),
        A::Riscv64(_) => Some(256),
        A::S390x => Some(152),
        _ => None,
    }
}

/// [`pt_regs_size`] of the architecture bpfc runs on (x86_64's for others).
pub const HOST_PT_REGS: u32 = if cfg!(target_arch = "aarch64") {
    272
} else if cfg!(target_arch = "riscv64") {
    256
} else if cfg!(target_arch = "s390x") {
    152
} else {
    168
};

/// The register layouts of [`pt_regs_size`]: any aligned read of `pt_regs`,
/// and `struct bpf_perf_event_data` (the registers as longs, then two u64).
const fn regs_layouts(size: u32) -> (u32, [CtxField; 1], [CtxField; 3]) {
    (
        size,
        [f("regs", 0, size, ANY, NONE)],
        [
            f("regs", 0, size, S8, NONE),
            f("sample_period", size, 8, ANY, NONE),
            f("addr", size + 8, 8, ANY, NONE),
        ],
    )
}

static REGS: [(u32, [CtxField; 1], [CtxField; 3]); 4] = [
    regs_layouts(168),
    regs_layouts(272),
    regs_layouts(256),
    regs_layouts(152),
];

/// A tracepoint's record after its 8-byte common header (PERF_MAX_TRACE_SIZE 2048).
static TRACEPOINT: &[CtxField] = &[f("args", 8, 2040, ANY, NONE)];

/// A raw tracepoint's arguments: 12 u64 (MAX_BPF_FUNC_ARGS).
static RAW_TP: &[CtxField] = &[f("args", 0, 96, ANY, NONE)];

/// A writable raw tracepoint: the first argument is the writable buffer.
static RAW_TP_WRITABLE: &[CtxField] = &[
    ptr("buffer", 0, 8, S8, FieldKind::TpBuffer),
    f("args", 8, 88, ANY, NONE),
];

/// A syscall program's context: user memory of up to 64 KiB.
static SYSCALL: &[CtxField] = &[f("ctx", 0, 65535, ANY, ANY)];

/// `struct bpf_nf_ctx`: two kernel pointers.
static NF_CTX: &[CtxField] = &[
    ptr("state", 0, 8, S8, FieldKind::Opaque),
    ptr("skb", 8, 8, S8, FieldKind::Opaque),
];

/// The context layout of `ty`, if bpfc models it, with the registers of
/// the architecture bpfc runs on.
pub fn layout(ty: ProgType) -> Option<CtxLayout> {
    layout_for(ty, HOST_PT_REGS)
}

/// [`layout`] with kprobe and perf_event registers of `pt_regs` bytes (a
/// size [`pt_regs_size`] gives; x86_64's for any other).
pub fn layout_for(ty: ProgType, pt_regs: u32) -> Option<CtxLayout> {
    use ProgType::*;
    let regs = REGS.iter().find(|r| r.0 == pt_regs).unwrap_or(&REGS[0]);
    if let Some(col) = skb_column(ty) {
        return Some(CtxLayout {
            name: "__sk_buff",
            size: 192,
            fields: &SKB_FIELDS[col],
        });
    }
    let (name, size, fields): (&str, u32, &'static [CtxField]) = match ty {
        Xdp => ("xdp_md", 24, XDP_MD),
        CgroupSockAddr => ("bpf_sock_addr", 72, BPF_SOCK_ADDR),
        CgroupSock => ("bpf_sock", 80, BPF_SOCK),
        SockOps => ("bpf_sock_ops", 224, BPF_SOCK_OPS),
        SkMsg => ("sk_msg_md", 80, SK_MSG_MD),
        SkReuseport => ("sk_reuseport_md", 56, SK_REUSEPORT_MD),
        SkLookup => ("bpf_sk_lookup", 72, BPF_SK_LOOKUP),
        CgroupSysctl => ("bpf_sysctl", 8, BPF_SYSCTL),
        CgroupDevice => ("bpf_cgroup_dev_ctx", 12, BPF_CGROUP_DEV_CTX),
        CgroupSockopt => ("bpf_sockopt", 40, BPF_SOCKOPT),
        Kprobe => ("pt_regs", regs.0, &regs.1),
        PerfEvent => ("bpf_perf_event_data", regs.0 + 16, &regs.2),
        Tracepoint => ("tracepoint record", 2048, TRACEPOINT),
        RawTracepoint => ("raw tracepoint args", 96, RAW_TP),
        RawTracepointWritable => ("raw tracepoint args", 96, RAW_TP_WRITABLE),
        Syscall => ("syscall ctx", 65535, SYSCALL),
        Netfilter => ("bpf_nf_ctx", 16, NF_CTX),
        _ => return None,
    };
    Some(CtxLayout { name, size, fields })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(ty: ProgType, off: i64, size: u32, write: bool) -> bool {
        matches!(
            layout_for(ty, 168)
                .unwrap()
                .check(off, size, write, false, None),
            CtxAccess::Ok(_)
        )
    }

    #[test]
    fn sk_buff_rules() {
        use ProgType::*;
        // Narrow reads of len; writes only whole.
        assert!(ok(SocketFilter, 0, 1, false));
        assert!(ok(SocketFilter, 3, 1, false));
        assert!(!ok(SocketFilter, 0, 8, false));
        assert!(!ok(SocketFilter, 0, 4, true));
        // cb: any aligned size, writable by socket filters.
        assert!(ok(SocketFilter, 48, 8, true));
        assert!(ok(SocketFilter, 64, 4, true));
        assert!(!ok(SocketFilter, 64, 8, true), "crosses the end of cb");
        assert!(!ok(SocketFilter, 49, 2, false), "misaligned");
        // data: tc reads it as a packet pointer, socket filters cannot.
        assert!(!ok(SocketFilter, 76, 4, false));
        let l = layout(SchedCls).unwrap();
        match l.check(76, 4, false, false, None) {
            CtxAccess::Ok(f) => assert_eq!(f.kind, FieldKind::PacketData),
            e => panic!("{e:?}"),
        }
        assert_eq!(
            l.check(76, 4, false, true, None),
            CtxAccess::Invalid,
            "ldsx of data"
        );
        assert!(!ok(SchedCls, 76, 2, false));
        // tc may write mark; sk_skb may not even read it.
        assert!(ok(SchedCls, 8, 4, true));
        assert!(!ok(SkSkb, 8, 4, false));
        // padding after tstamp_type.
        assert!(!ok(SchedCls, 181, 1, false));
        assert!(ok(SchedCls, 180, 1, false));
        assert!(!ok(SchedCls, 192, 4, false));
        assert!(!ok(SchedCls, -4, 4, false));
        // flow dissector: only data, data_end and flow_keys.
        assert!(ok(FlowDissector, 144, 8, false));
        assert!(!ok(FlowDissector, 0, 4, false));
    }

    #[test]
    fn other_layouts() {
        use ProgType::*;
        assert!(ok(Xdp, 0, 4, false));
        assert!(!ok(Xdp, 0, 8, false));
        assert!(!ok(Xdp, 12, 4, true));
        assert!(
            !ok(Xdp, 20, 4, false),
            "egress_ifindex needs a devmap program"
        );
        let x = layout(Xdp).unwrap();
        assert!(matches!(
            x.check(20, 4, false, false, Some("BPF_XDP_DEVMAP")),
            CtxAccess::Ok(_)
        ));
        assert!(ok(Tracepoint, 8, 8, false));
        assert!(!ok(Tracepoint, 0, 8, false));
        assert!(!ok(Tracepoint, 8, 8, true));
        assert!(ok(Kprobe, 160, 8, false));
        assert!(!ok(Kprobe, 168, 1, false));
        assert!(ok(RawTracepoint, 88, 8, false));
        assert!(!ok(RawTracepoint, 96, 8, false));
        assert!(ok(Syscall, 1000, 8, true));
        assert!(!ok(PerfEvent, 0, 4, false));
        assert!(ok(PerfEvent, 168, 4, false));
        assert!(layout(Tracing).is_none());
    }

    #[test]
    fn registers_by_architecture() {
        use target_lexicon::Triple;
        let arch = |t: &str| t.parse::<Triple>().unwrap().architecture;
        let aarch64 = pt_regs_size(arch("aarch64-unknown-linux-gnu")).unwrap();
        assert_eq!(aarch64, 272);
        assert_eq!(pt_regs_size(arch("x86_64-unknown-linux-gnu")), Some(168));
        let ok_on = |ty, regs, off, size| {
            matches!(
                layout_for(ty, regs)
                    .unwrap()
                    .check(off, size, false, false, None),
                CtxAccess::Ok(_)
            )
        };
        assert!(ok_on(ProgType::Kprobe, aarch64, 264, 8));
        assert!(!ok_on(ProgType::Kprobe, aarch64, 272, 8));
        // bpf_perf_event_data: sample_period and addr follow the registers.
        assert!(ok_on(ProgType::PerfEvent, aarch64, 168, 8), "a register");
        assert!(
            !ok_on(ProgType::PerfEvent, aarch64, 168, 4),
            "a narrow register"
        );
        assert!(ok_on(ProgType::PerfEvent, aarch64, 272, 4), "sample_period");
        assert!(ok_on(ProgType::PerfEvent, aarch64, 280, 8), "addr");
        assert!(!ok_on(ProgType::PerfEvent, aarch64, 288, 8));
    }
}
