//! Helper prototypes: for every helper id the kernel defines, the kind of
//! each argument and of the return value, as the kernel's `struct
//! bpf_func_proto` declares them, and which map types each map-taking
//! helper accepts (the kernel verifier's `check_map_func_compatibility`).
//!
//! This table is the one description of what a helper call may pass and
//! gets back: the verifier checks calls against it and the engines reject
//! calls that do not fit it. [`proto`] looks an id up. `proto/table.rs` is
//! generated from the kernel sources by `proto_gen.py` (which also writes
//! the per-program-type helper sets of `compiler/src/progtype/helpers.rs`).
//!
//! Where the kernel has several prototypes for one id (one per program
//! type family, for instance `perf_event_output` for sockets, XDP and
//! tracing), the table holds the generic one; they differ only in what
//! the context argument points to, which the verifier takes from the
//! program type.

mod table;

/// Modifier: the argument may be NULL (`PTR_MAYBE_NULL`), or the return
/// value may be NULL and must be checked.
pub const MAYBE_NULL: u32 = 1 << 0;
/// The memory is only read (`MEM_RDONLY`).
pub const RDONLY: u32 = 1 << 1;
/// The memory need not be initialised: the helper fills it (`MEM_UNINIT`).
pub const UNINIT: u32 = 1 << 2;
/// The helper writes the memory (`MEM_WRITE`).
pub const WRITE: u32 = 1 << 3;
/// The memory has the fixed size of [`HelperProto::arg_size`] instead of
/// a size argument (`MEM_FIXED_SIZE`).
pub const FIXED_SIZE: u32 = 1 << 4;
/// The memory must be aligned to its size (`MEM_ALIGNED`).
pub const ALIGNED: u32 = 1 << 5;
/// The call releases the reference the argument holds (`OBJ_RELEASE`).
pub const RELEASE: u32 = 1 << 6;
/// A local dynptr (`DYNPTR_TYPE_LOCAL`).
pub const DYNPTR_LOCAL: u32 = 1 << 7;
/// A ring buffer dynptr (`DYNPTR_TYPE_RINGBUF`).
pub const DYNPTR_RINGBUF: u32 = 1 << 8;
/// Allocated object (`MEM_ALLOC`).
pub const ALLOC: u32 = 1 << 9;
/// Ring buffer record (`MEM_RINGBUF`).
pub const RINGBUF: u32 = 1 << 10;
/// Trusted kernel pointer (`PTR_TRUSTED`).
pub const TRUSTED: u32 = 1 << 11;
/// RCU-protected pointer (`MEM_RCU`).
pub const RCU: u32 = 1 << 12;

/// Argument kinds (`enum bpf_arg_type` without its modifiers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArgTypeBase {
    /// No argument.
    DontCare,
    /// A map (`r1 = map[...] ll`).
    ConstMapPtr,
    /// Memory of the map's key size.
    PtrToMapKey,
    /// Memory of the map's value size.
    PtrToMapValue,
    /// Memory whose size the next argument gives (or [`FIXED_SIZE`]).
    PtrToMem,
    PtrToArena,
    /// The size of the previous memory argument, at least 1.
    ConstSize,
    /// The size of the previous memory argument, possibly 0.
    ConstSizeOrZero,
    /// The program's context.
    PtrToCtx,
    /// Any initialised value.
    Anything,
    /// Any initialised scalar.
    Scalar,
    /// A `struct bpf_spin_lock` in a map value.
    PtrToSpinLock,
    PtrToSockCommon,
    PtrToSocket,
    /// A kernel object of a BTF type.
    PtrToBtfId,
    /// A record reserved from a ring buffer.
    PtrToRingbufMem,
    /// The size of memory to allocate (a known constant).
    ConstAllocSizeOrZero,
    PtrToBtfIdSockCommon,
    PtrToPercpuBtfId,
    /// A function of the program (a callback).
    PtrToFunc,
    /// The stack.
    PtrToStack,
    /// A NUL-terminated string in read-only map memory.
    PtrToConstStr,
    /// A `struct bpf_timer` in a map value.
    PtrToTimer,
    KptrXchgDest,
    /// A `struct bpf_dynptr` on the stack.
    PtrToDynptr,
}

/// An argument kind with its modifiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ArgType {
    pub base: ArgTypeBase,
    pub flags: u32,
}

impl ArgType {
    pub const fn new(base: ArgTypeBase, flags: u32) -> ArgType {
        ArgType { base, flags }
    }

    pub const fn has(self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// The kernel's name of the kind without modifiers (`ARG_PTR_TO_MEM`).
    pub fn name(self) -> &'static str {
        use ArgTypeBase::*;
        match self.base {
            DontCare => "ARG_DONTCARE",
            ConstMapPtr => "ARG_CONST_MAP_PTR",
            PtrToMapKey => "ARG_PTR_TO_MAP_KEY",
            PtrToMapValue => "ARG_PTR_TO_MAP_VALUE",
            PtrToMem => "ARG_PTR_TO_MEM",
            PtrToArena => "ARG_PTR_TO_ARENA",
            ConstSize => "ARG_CONST_SIZE",
            ConstSizeOrZero => "ARG_CONST_SIZE_OR_ZERO",
            PtrToCtx => "ARG_PTR_TO_CTX",
            Anything => "ARG_ANYTHING",
            Scalar => "ARG_SCALAR",
            PtrToSpinLock => "ARG_PTR_TO_SPIN_LOCK",
            PtrToSockCommon => "ARG_PTR_TO_SOCK_COMMON",
            PtrToSocket => "ARG_PTR_TO_SOCKET",
            PtrToBtfId => "ARG_PTR_TO_BTF_ID",
            PtrToRingbufMem => "ARG_PTR_TO_RINGBUF_MEM",
            ConstAllocSizeOrZero => "ARG_CONST_ALLOC_SIZE_OR_ZERO",
            PtrToBtfIdSockCommon => "ARG_PTR_TO_BTF_ID_SOCK_COMMON",
            PtrToPercpuBtfId => "ARG_PTR_TO_PERCPU_BTF_ID",
            PtrToFunc => "ARG_PTR_TO_FUNC",
            PtrToStack => "ARG_PTR_TO_STACK",
            PtrToConstStr => "ARG_PTR_TO_CONST_STR",
            PtrToTimer => "ARG_PTR_TO_TIMER",
            KptrXchgDest => "ARG_KPTR_XCHG_DEST",
            PtrToDynptr => "ARG_PTR_TO_DYNPTR",
        }
    }
}

/// Return kinds (`enum bpf_return_type` without modifiers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetTypeBase {
    Integer,
    Void,
    /// A value of the map passed as the first map argument.
    PtrToMapValue,
    PtrToSocket,
    PtrToTcpSock,
    PtrToSockCommon,
    /// Memory: a ring buffer record ([`RINGBUF`]) of the size argument, or
    /// dynptr data.
    PtrToMem,
    PtrToMemOrBtfId,
    PtrToBtfId,
}

/// A return kind with its modifiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RetType {
    pub base: RetTypeBase,
    pub flags: u32,
}

impl RetType {
    pub const fn new(base: RetTypeBase, flags: u32) -> RetType {
        RetType { base, flags }
    }

    pub const fn has(self, flag: u32) -> bool {
        self.flags & flag != 0
    }
}

/// One helper's prototype.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HelperProto {
    pub id: u32,
    /// The kernel's name without `bpf_` (`map_lookup_elem`).
    pub name: &'static str,
    pub ret: RetType,
    /// Arguments r1..r5; unused ones are [`ArgTypeBase::DontCare`].
    pub args: [ArgType; 5],
    /// Byte size of a [`FIXED_SIZE`] memory argument.
    pub arg_size: [u32; 5],
    /// Whether a BTF-typed argument names a specific kernel struct.
    pub arg_btf_id: [bool; 5],
    /// Callable only from GPL-compatible programs.
    pub gpl_only: bool,
    /// May be given packet pointers.
    pub pkt_access: bool,
    /// May sleep: only for sleepable programs.
    pub might_sleep: bool,
}

impl HelperProto {
    /// The number of arguments (the position of the last one used).
    pub fn arg_count(&self) -> usize {
        self.args
            .iter()
            .rposition(|a| a.base != ArgTypeBase::DontCare)
            .map_or(0, |i| i + 1)
    }
}

/// The prototype of helper `id`, for the ids the kernel defines and some
/// program type can call.
pub fn proto(id: u32) -> Option<&'static HelperProto> {
    table::TABLE.get(id as usize).and_then(Option::as_ref)
}

/// Helper ids by name (for the map compatibility tables below).
pub mod id {
    pub const MAP_LOOKUP_ELEM: u32 = 1;
    pub const MAP_UPDATE_ELEM: u32 = 2;
    pub const MAP_DELETE_ELEM: u32 = 3;
    pub const PROBE_READ: u32 = 4;
    pub const KTIME_GET_NS: u32 = 5;
    pub const TRACE_PRINTK: u32 = 6;
    pub const GET_PRANDOM_U32: u32 = 7;
    pub const GET_SMP_PROCESSOR_ID: u32 = 8;
    pub const SKB_STORE_BYTES: u32 = 9;
    pub const L3_CSUM_REPLACE: u32 = 10;
    pub const L4_CSUM_REPLACE: u32 = 11;
    pub const TAIL_CALL: u32 = 12;
    pub const CLONE_REDIRECT: u32 = 13;
    pub const GET_CURRENT_PID_TGID: u32 = 14;
    pub const GET_CURRENT_UID_GID: u32 = 15;
    pub const GET_CURRENT_COMM: u32 = 16;
    pub const SKB_VLAN_PUSH: u32 = 18;
    pub const SKB_VLAN_POP: u32 = 19;
    pub const PERF_EVENT_READ: u32 = 22;
    pub const REDIRECT: u32 = 23;
    pub const PERF_EVENT_OUTPUT: u32 = 25;
    pub const SKB_LOAD_BYTES: u32 = 26;
    pub const GET_STACKID: u32 = 27;
    pub const CSUM_DIFF: u32 = 28;
    pub const SKB_CHANGE_PROTO: u32 = 31;
    pub const SKB_CHANGE_TYPE: u32 = 32;
    pub const SKB_UNDER_CGROUP: u32 = 33;
    pub const GET_HASH_RECALC: u32 = 34;
    pub const GET_CURRENT_TASK: u32 = 35;
    pub const CURRENT_TASK_UNDER_CGROUP: u32 = 37;
    pub const SKB_CHANGE_TAIL: u32 = 38;
    pub const SKB_PULL_DATA: u32 = 39;
    pub const CSUM_UPDATE: u32 = 40;
    pub const SET_HASH_INVALID: u32 = 41;
    pub const GET_NUMA_NODE_ID: u32 = 42;
    pub const SKB_CHANGE_HEAD: u32 = 43;
    pub const XDP_ADJUST_HEAD: u32 = 44;
    pub const PROBE_READ_STR: u32 = 45;
    pub const SET_HASH: u32 = 48;
    pub const SKB_ADJUST_ROOM: u32 = 50;
    pub const REDIRECT_MAP: u32 = 51;
    pub const SK_REDIRECT_MAP: u32 = 52;
    pub const SOCK_MAP_UPDATE: u32 = 53;
    pub const XDP_ADJUST_META: u32 = 54;
    pub const PERF_EVENT_READ_VALUE: u32 = 55;
    pub const MSG_REDIRECT_MAP: u32 = 60;
    pub const MSG_PULL_DATA: u32 = 63;
    pub const XDP_ADJUST_TAIL: u32 = 65;
    pub const SKB_GET_XFRM_STATE: u32 = 66;
    pub const GET_STACK: u32 = 67;
    pub const SKB_LOAD_BYTES_RELATIVE: u32 = 68;
    pub const SOCK_HASH_UPDATE: u32 = 70;
    pub const MSG_REDIRECT_HASH: u32 = 71;
    pub const SK_REDIRECT_HASH: u32 = 72;
    pub const LWT_PUSH_ENCAP: u32 = 73;
    pub const LWT_SEG6_STORE_BYTES: u32 = 74;
    pub const LWT_SEG6_ADJUST_SRH: u32 = 75;
    pub const LWT_SEG6_ACTION: u32 = 76;
    pub const GET_CURRENT_CGROUP_ID: u32 = 80;
    pub const GET_LOCAL_STORAGE: u32 = 81;
    pub const SK_SELECT_REUSEPORT: u32 = 82;
    pub const SK_LOOKUP_TCP: u32 = 84;
    pub const SK_LOOKUP_UDP: u32 = 85;
    pub const SK_RELEASE: u32 = 86;
    pub const MAP_PUSH_ELEM: u32 = 87;
    pub const MAP_POP_ELEM: u32 = 88;
    pub const MAP_PEEK_ELEM: u32 = 89;
    pub const MSG_PUSH_DATA: u32 = 90;
    pub const MSG_POP_DATA: u32 = 91;
    pub const SPIN_LOCK: u32 = 93;
    pub const SPIN_UNLOCK: u32 = 94;
    pub const SK_FULLSOCK: u32 = 95;
    pub const TCP_SOCK: u32 = 96;
    pub const GET_LISTENER_SOCK: u32 = 98;
    pub const SKC_LOOKUP_TCP: u32 = 99;
    pub const STRTOL: u32 = 105;
    pub const STRTOUL: u32 = 106;
    pub const SK_STORAGE_GET: u32 = 107;
    pub const SK_STORAGE_DELETE: u32 = 108;
    pub const PROBE_READ_USER: u32 = 112;
    pub const PROBE_READ_KERNEL: u32 = 113;
    pub const PROBE_READ_USER_STR: u32 = 114;
    pub const PROBE_READ_KERNEL_STR: u32 = 115;
    pub const JIFFIES64: u32 = 118;
    pub const XDP_OUTPUT: u32 = 121;
    pub const SK_ASSIGN: u32 = 124;
    pub const KTIME_GET_BOOT_NS: u32 = 125;
    pub const RINGBUF_OUTPUT: u32 = 130;
    pub const RINGBUF_RESERVE: u32 = 131;
    pub const RINGBUF_SUBMIT: u32 = 132;
    pub const RINGBUF_DISCARD: u32 = 133;
    pub const RINGBUF_QUERY: u32 = 134;
    pub const CSUM_LEVEL: u32 = 135;
    pub const SKB_OUTPUT: u32 = 111;
    pub const GET_TASK_STACK: u32 = 141;
    pub const INODE_STORAGE_GET: u32 = 145;
    pub const INODE_STORAGE_DELETE: u32 = 146;
    pub const PER_CPU_PTR: u32 = 153;
    pub const THIS_CPU_PTR: u32 = 154;
    pub const TASK_STORAGE_GET: u32 = 156;
    pub const TASK_STORAGE_DELETE: u32 = 157;
    pub const SNPRINTF_BTF: u32 = 149;
    pub const FOR_EACH_MAP_ELEM: u32 = 164;
    pub const SNPRINTF: u32 = 165;
    pub const TIMER_INIT: u32 = 169;
    pub const TIMER_SET_CALLBACK: u32 = 170;
    pub const TIMER_START: u32 = 171;
    pub const TIMER_CANCEL: u32 = 172;
    pub const GET_FUNC_IP: u32 = 173;
    pub const TRACE_VPRINTK: u32 = 177;
    pub const FIND_VMA: u32 = 180;
    pub const LOOP: u32 = 181;
    pub const STRNCMP: u32 = 182;
    pub const KPTR_XCHG: u32 = 194;
    pub const MAP_LOOKUP_PERCPU_ELEM: u32 = 195;
    pub const DYNPTR_FROM_MEM: u32 = 197;
    pub const RINGBUF_RESERVE_DYNPTR: u32 = 198;
    pub const RINGBUF_SUBMIT_DYNPTR: u32 = 199;
    pub const RINGBUF_DISCARD_DYNPTR: u32 = 200;
    pub const DYNPTR_READ: u32 = 201;
    pub const DYNPTR_WRITE: u32 = 202;
    pub const DYNPTR_DATA: u32 = 203;
    pub const KTIME_GET_TAI_NS: u32 = 208;
    pub const USER_RINGBUF_DRAIN: u32 = 209;
    pub const CGRP_STORAGE_GET: u32 = 210;
    pub const CGRP_STORAGE_DELETE: u32 = 211;
}

/// `enum bpf_map_type` numbers used in the compatibility tables.
pub mod map_type {
    pub const HASH: u32 = 1;
    pub const ARRAY: u32 = 2;
    pub const PROG_ARRAY: u32 = 3;
    pub const PERF_EVENT_ARRAY: u32 = 4;
    pub const PERCPU_HASH: u32 = 5;
    pub const PERCPU_ARRAY: u32 = 6;
    pub const STACK_TRACE: u32 = 7;
    pub const CGROUP_ARRAY: u32 = 8;
    pub const LRU_HASH: u32 = 9;
    pub const LRU_PERCPU_HASH: u32 = 10;
    pub const LPM_TRIE: u32 = 11;
    pub const ARRAY_OF_MAPS: u32 = 12;
    pub const HASH_OF_MAPS: u32 = 13;
    pub const DEVMAP: u32 = 14;
    pub const SOCKMAP: u32 = 15;
    pub const CPUMAP: u32 = 16;
    pub const XSKMAP: u32 = 17;
    pub const SOCKHASH: u32 = 18;
    pub const CGROUP_STORAGE: u32 = 19;
    pub const REUSEPORT_SOCKARRAY: u32 = 20;
    pub const PERCPU_CGROUP_STORAGE: u32 = 21;
    pub const QUEUE: u32 = 22;
    pub const STACK: u32 = 23;
    pub const SK_STORAGE: u32 = 24;
    pub const DEVMAP_HASH: u32 = 25;
    pub const STRUCT_OPS: u32 = 26;
    pub const RINGBUF: u32 = 27;
    pub const INODE_STORAGE: u32 = 28;
    pub const TASK_STORAGE: u32 = 29;
    pub const BLOOM_FILTER: u32 = 30;
    pub const USER_RINGBUF: u32 = 31;
    pub const CGRP_STORAGE: u32 = 32;
    pub const ARENA: u32 = 33;
}

use id::*;
use map_type::*;

/// Map types that only some helpers may take: (map type, those helpers).
/// `map_lookup_elem` et al. on a map type not listed here are fine.
/// Sock maps additionally accept updates and deletes from the program
/// types the kernel's `may_update_sockmap` allows; the verifier decides
/// that.
pub const MAP_TYPE_HELPERS: &[(u32, &[u32])] = &[
    (PROG_ARRAY, &[TAIL_CALL]),
    (
        PERF_EVENT_ARRAY,
        &[
            PERF_EVENT_READ,
            PERF_EVENT_OUTPUT,
            SKB_OUTPUT,
            PERF_EVENT_READ_VALUE,
            XDP_OUTPUT,
        ],
    ),
    (
        map_type::RINGBUF,
        &[
            RINGBUF_OUTPUT,
            RINGBUF_RESERVE,
            RINGBUF_QUERY,
            RINGBUF_RESERVE_DYNPTR,
            RINGBUF_SUBMIT_DYNPTR,
            RINGBUF_DISCARD_DYNPTR,
        ],
    ),
    (USER_RINGBUF, &[USER_RINGBUF_DRAIN]),
    (STACK_TRACE, &[GET_STACKID]),
    (CGROUP_ARRAY, &[SKB_UNDER_CGROUP, CURRENT_TASK_UNDER_CGROUP]),
    (CGROUP_STORAGE, &[GET_LOCAL_STORAGE]),
    (PERCPU_CGROUP_STORAGE, &[GET_LOCAL_STORAGE]),
    (DEVMAP, &[REDIRECT_MAP, MAP_LOOKUP_ELEM]),
    (DEVMAP_HASH, &[REDIRECT_MAP, MAP_LOOKUP_ELEM]),
    (CPUMAP, &[REDIRECT_MAP]),
    (XSKMAP, &[REDIRECT_MAP, MAP_LOOKUP_ELEM]),
    (ARRAY_OF_MAPS, &[MAP_LOOKUP_ELEM]),
    (HASH_OF_MAPS, &[MAP_LOOKUP_ELEM]),
    (
        SOCKMAP,
        &[
            SK_REDIRECT_MAP,
            SOCK_MAP_UPDATE,
            MSG_REDIRECT_MAP,
            SK_SELECT_REUSEPORT,
            MAP_LOOKUP_ELEM,
        ],
    ),
    (
        SOCKHASH,
        &[
            SK_REDIRECT_HASH,
            SOCK_HASH_UPDATE,
            MSG_REDIRECT_HASH,
            SK_SELECT_REUSEPORT,
            MAP_LOOKUP_ELEM,
        ],
    ),
    (REUSEPORT_SOCKARRAY, &[SK_SELECT_REUSEPORT]),
    (QUEUE, &[MAP_PEEK_ELEM, MAP_POP_ELEM, MAP_PUSH_ELEM]),
    (STACK, &[MAP_PEEK_ELEM, MAP_POP_ELEM, MAP_PUSH_ELEM]),
    (SK_STORAGE, &[SK_STORAGE_GET, SK_STORAGE_DELETE, KPTR_XCHG]),
    (
        INODE_STORAGE,
        &[INODE_STORAGE_GET, INODE_STORAGE_DELETE, KPTR_XCHG],
    ),
    (
        TASK_STORAGE,
        &[TASK_STORAGE_GET, TASK_STORAGE_DELETE, KPTR_XCHG],
    ),
    (
        CGRP_STORAGE,
        &[CGRP_STORAGE_GET, CGRP_STORAGE_DELETE, KPTR_XCHG],
    ),
    (BLOOM_FILTER, &[MAP_PEEK_ELEM, MAP_PUSH_ELEM]),
];

/// Helpers that take only some map types: (helper, those map types).
pub const HELPER_MAP_TYPES: &[(u32, &[u32])] = &[
    (TAIL_CALL, &[PROG_ARRAY]),
    (PERF_EVENT_READ, &[PERF_EVENT_ARRAY]),
    (PERF_EVENT_OUTPUT, &[PERF_EVENT_ARRAY]),
    (PERF_EVENT_READ_VALUE, &[PERF_EVENT_ARRAY]),
    (SKB_OUTPUT, &[PERF_EVENT_ARRAY]),
    (XDP_OUTPUT, &[PERF_EVENT_ARRAY]),
    (RINGBUF_OUTPUT, &[map_type::RINGBUF]),
    (RINGBUF_RESERVE, &[map_type::RINGBUF]),
    (RINGBUF_QUERY, &[map_type::RINGBUF]),
    (RINGBUF_RESERVE_DYNPTR, &[map_type::RINGBUF]),
    (RINGBUF_SUBMIT_DYNPTR, &[map_type::RINGBUF]),
    (RINGBUF_DISCARD_DYNPTR, &[map_type::RINGBUF]),
    (USER_RINGBUF_DRAIN, &[USER_RINGBUF]),
    (GET_STACKID, &[STACK_TRACE]),
    (CURRENT_TASK_UNDER_CGROUP, &[CGROUP_ARRAY]),
    (SKB_UNDER_CGROUP, &[CGROUP_ARRAY]),
    (REDIRECT_MAP, &[DEVMAP, DEVMAP_HASH, CPUMAP, XSKMAP]),
    (SK_REDIRECT_MAP, &[SOCKMAP]),
    (MSG_REDIRECT_MAP, &[SOCKMAP]),
    (SOCK_MAP_UPDATE, &[SOCKMAP]),
    (SK_REDIRECT_HASH, &[SOCKHASH]),
    (MSG_REDIRECT_HASH, &[SOCKHASH]),
    (SOCK_HASH_UPDATE, &[SOCKHASH]),
    (GET_LOCAL_STORAGE, &[CGROUP_STORAGE, PERCPU_CGROUP_STORAGE]),
    (
        SK_SELECT_REUSEPORT,
        &[REUSEPORT_SOCKARRAY, SOCKMAP, SOCKHASH],
    ),
    (MAP_POP_ELEM, &[QUEUE, STACK]),
    (MAP_PEEK_ELEM, &[QUEUE, STACK, BLOOM_FILTER]),
    (MAP_PUSH_ELEM, &[QUEUE, STACK, BLOOM_FILTER]),
    (
        MAP_LOOKUP_PERCPU_ELEM,
        &[PERCPU_ARRAY, PERCPU_HASH, LRU_PERCPU_HASH],
    ),
    (SK_STORAGE_GET, &[SK_STORAGE]),
    (SK_STORAGE_DELETE, &[SK_STORAGE]),
    (INODE_STORAGE_GET, &[INODE_STORAGE]),
    (INODE_STORAGE_DELETE, &[INODE_STORAGE]),
    (TASK_STORAGE_GET, &[TASK_STORAGE]),
    (TASK_STORAGE_DELETE, &[TASK_STORAGE]),
    (CGRP_STORAGE_GET, &[CGRP_STORAGE]),
    (CGRP_STORAGE_DELETE, &[CGRP_STORAGE]),
];

/// Whether helper `helper` may be given a map of type `map_type`, by both
/// tables (`sockmap_update_ok`: the program type may update sock maps).
pub fn map_compatible(map_type: u32, helper: u32, sockmap_update_ok: bool) -> bool {
    if let Some((_, helpers)) = MAP_TYPE_HELPERS.iter().find(|(t, _)| *t == map_type) {
        let sock = matches!(map_type, SOCKMAP | SOCKHASH);
        if !(helpers.contains(&helper) || (sock && sockmap_update_ok)) {
            return false;
        }
    }
    if let Some((_, types)) = HELPER_MAP_TYPES.iter().find(|(h, _)| *h == helper) {
        return types.contains(&map_type);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_indexed_by_id_and_named_as_the_kernel() {
        for (i, p) in table::TABLE.iter().enumerate() {
            if let Some(p) = p {
                assert_eq!(p.id as usize, i);
                assert_eq!(Some(p.name), super::super::kernel_name(i as i64));
            }
        }
        let p = proto(id::MAP_LOOKUP_ELEM).unwrap();
        assert_eq!(p.ret, RetType::new(RetTypeBase::PtrToMapValue, MAYBE_NULL));
        assert_eq!(p.args[0].base, ArgTypeBase::ConstMapPtr);
        assert_eq!(p.args[1].base, ArgTypeBase::PtrToMapKey);
        assert_eq!(p.arg_count(), 2);
        let r = proto(id::RINGBUF_RESERVE).unwrap();
        assert_eq!(
            r.ret,
            RetType::new(RetTypeBase::PtrToMem, MAYBE_NULL | RINGBUF)
        );
        assert_eq!(r.args[1].base, ArgTypeBase::ConstAllocSizeOrZero);
        let l = proto(id::SKB_LOAD_BYTES).unwrap();
        assert_eq!(
            l.args[2],
            ArgType::new(ArgTypeBase::PtrToMem, UNINIT | WRITE)
        );
        assert_eq!(l.args[3].base, ArgTypeBase::ConstSize);
        assert_eq!(
            proto(id::LOOP).unwrap().args[1].base,
            ArgTypeBase::PtrToFunc
        );
        assert!(proto(0).is_none());
        assert!(proto(100_000).is_none());
    }

    #[test]
    fn map_compatibility_both_ways() {
        assert!(map_compatible(HASH, MAP_LOOKUP_ELEM, false));
        assert!(!map_compatible(PROG_ARRAY, MAP_LOOKUP_ELEM, false));
        assert!(map_compatible(PROG_ARRAY, TAIL_CALL, false));
        assert!(!map_compatible(HASH, TAIL_CALL, false));
        assert!(!map_compatible(map_type::RINGBUF, MAP_LOOKUP_ELEM, false));
        assert!(map_compatible(map_type::RINGBUF, RINGBUF_RESERVE, false));
        assert!(map_compatible(map_type::RINGBUF, RINGBUF_OUTPUT, false));
        assert!(map_compatible(SOCKMAP, MAP_UPDATE_ELEM, true));
        assert!(!map_compatible(SOCKMAP, MAP_UPDATE_ELEM, false));
        assert!(map_compatible(PERCPU_ARRAY, MAP_LOOKUP_PERCPU_ELEM, false));
        assert!(!map_compatible(ARRAY, MAP_LOOKUP_PERCPU_ELEM, false));
    }

    #[test]
    fn ids_match_names() {
        let checks = [
            (id::MAP_UPDATE_ELEM, "map_update_elem"),
            (id::TAIL_CALL, "tail_call"),
            (id::PERF_EVENT_OUTPUT, "perf_event_output"),
            (id::SKB_LOAD_BYTES_RELATIVE, "skb_load_bytes_relative"),
            (id::SPIN_LOCK, "spin_lock"),
            (id::RINGBUF_QUERY, "ringbuf_query"),
            (id::FOR_EACH_MAP_ELEM, "for_each_map_elem"),
            (id::TIMER_CANCEL, "timer_cancel"),
            (id::LOOP, "loop"),
            (id::STRNCMP, "strncmp"),
            (id::KPTR_XCHG, "kptr_xchg"),
            (id::MAP_LOOKUP_PERCPU_ELEM, "map_lookup_percpu_elem"),
            (id::DYNPTR_DATA, "dynptr_data"),
            (id::USER_RINGBUF_DRAIN, "user_ringbuf_drain"),
            (id::CGRP_STORAGE_DELETE, "cgrp_storage_delete"),
            (id::SKB_OUTPUT, "skb_output"),
            (id::SNPRINTF_BTF, "snprintf_btf"),
            (id::GET_TASK_STACK, "get_task_stack"),
            (id::FIND_VMA, "find_vma"),
            (id::TRACE_VPRINTK, "trace_vprintk"),
            (id::SK_ASSIGN, "sk_assign"),
            (id::CSUM_LEVEL, "csum_level"),
            (id::XDP_OUTPUT, "xdp_output"),
            (id::INODE_STORAGE_DELETE, "inode_storage_delete"),
            (id::GET_LISTENER_SOCK, "get_listener_sock"),
        ];
        for (i, n) in checks {
            assert_eq!(super::super::kernel_name(i as i64), Some(n), "id {i}");
        }
    }
}
