//! Map types and map flags: the kernel's `enum bpf_map_type` numbers and
//! `BPF_F_*` flag bits as typed values, with bpftool's names.

use std::fmt;

macro_rules! map_types {
    ($($(#[$attr:meta])* $variant:ident = $num:literal, $name:literal;)*) => {
        /// A kernel map type (`enum bpf_map_type`), whether or not bpfc can
        /// create it ([`MapType::supported`]).
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u32)]
        pub enum MapType {
            $($(#[$attr])* $variant = $num,)*
        }

        impl MapType {
            /// Every type the kernel defines, in number order.
            pub const ALL: &'static [MapType] = &[$(MapType::$variant,)*];

            /// The type numbered `raw` in `enum bpf_map_type`.
            pub fn from_raw(raw: u32) -> Option<MapType> {
                match raw {
                    $($num => Some(MapType::$variant),)*
                    _ => None,
                }
            }

            /// bpftool's name (`hash`, `percpu_array`, `lpm_trie` ...).
            pub fn name(self) -> &'static str {
                match self {
                    $(MapType::$variant => $name,)*
                }
            }
        }
    };
}

map_types! {
    #[default]
    Unspec = 0, "unspec";
    Hash = 1, "hash";
    Array = 2, "array";
    ProgArray = 3, "prog_array";
    PerfEventArray = 4, "perf_event_array";
    PercpuHash = 5, "percpu_hash";
    PercpuArray = 6, "percpu_array";
    StackTrace = 7, "stack_trace";
    CgroupArray = 8, "cgroup_array";
    LruHash = 9, "lru_hash";
    LruPercpuHash = 10, "lru_percpu_hash";
    LpmTrie = 11, "lpm_trie";
    ArrayOfMaps = 12, "array_of_maps";
    HashOfMaps = 13, "hash_of_maps";
    Devmap = 14, "devmap";
    Sockmap = 15, "sockmap";
    Cpumap = 16, "cpumap";
    Xskmap = 17, "xskmap";
    Sockhash = 18, "sockhash";
    CgroupStorage = 19, "cgroup_storage";
    ReuseportSockarray = 20, "reuseport_sockarray";
    PercpuCgroupStorage = 21, "percpu_cgroup_storage";
    Queue = 22, "queue";
    Stack = 23, "stack";
    SkStorage = 24, "sk_storage";
    DevmapHash = 25, "devmap_hash";
    StructOps = 26, "struct_ops";
    Ringbuf = 27, "ringbuf";
    InodeStorage = 28, "inode_storage";
    TaskStorage = 29, "task_storage";
    BloomFilter = 30, "bloom_filter";
    UserRingbuf = 31, "user_ringbuf";
    CgrpStorage = 32, "cgrp_storage";
    Arena = 33, "arena";
}

impl MapType {
    /// bpftool's name for `raw`, or `unknown` for a number the kernel does
    /// not define.
    pub fn name_of(raw: u32) -> &'static str {
        MapType::from_raw(raw).map_or("unknown", MapType::name)
    }

    /// The type called `name` by bpftool.
    pub fn from_name(name: &str) -> Option<MapType> {
        MapType::ALL.iter().copied().find(|t| t.name() == name)
    }

    /// Whether bpfc's runtime implements this type. The others need kernel
    /// objects (sockets, tasks, inodes, XDP sockets, CPUs' network stacks,
    /// struct_ops, an arena of kernel pages) that do not exist in a user
    /// process.
    pub fn supported(self) -> bool {
        !matches!(
            self,
            MapType::Unspec
                | MapType::Sockmap
                | MapType::Cpumap
                | MapType::Xskmap
                | MapType::Sockhash
                | MapType::CgroupStorage
                | MapType::ReuseportSockarray
                | MapType::PercpuCgroupStorage
                | MapType::SkStorage
                | MapType::StructOps
                | MapType::InodeStorage
                | MapType::TaskStorage
                | MapType::CgrpStorage
                | MapType::Arena
        )
    }

    /// Per-CPU types: each element has one value per CPU slot.
    pub fn is_percpu(self) -> bool {
        matches!(
            self,
            MapType::PercpuHash | MapType::PercpuArray | MapType::LruPercpuHash
        )
    }

    /// Types whose values are references to other objects (programs, maps,
    /// cgroups, perf buffers, devices) that user space names by number.
    pub fn holds_references(self) -> bool {
        matches!(
            self,
            MapType::ProgArray
                | MapType::PerfEventArray
                | MapType::CgroupArray
                | MapType::ArrayOfMaps
                | MapType::HashOfMaps
        )
    }

    /// Types without keys (`key_size` must be 0).
    pub fn keyless(self) -> bool {
        matches!(
            self,
            MapType::Queue
                | MapType::Stack
                | MapType::BloomFilter
                | MapType::Ringbuf
                | MapType::UserRingbuf
        )
    }
}

impl fmt::Display for MapType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `BPF_F_*` map flags and update flags (`include/uapi/linux/bpf.h`).
pub mod flags {
    /// Update flags of `map_update_elem`.
    pub const BPF_ANY: u64 = 0;
    pub const BPF_NOEXIST: u64 = 1;
    pub const BPF_EXIST: u64 = 2;
    pub const BPF_F_LOCK: u64 = 4;

    /// Map creation flags (`map_flags`).
    pub const BPF_F_NO_PREALLOC: u32 = 1 << 0;
    pub const BPF_F_NO_COMMON_LRU: u32 = 1 << 1;
    pub const BPF_F_NUMA_NODE: u32 = 1 << 2;
    pub const BPF_F_RDONLY: u32 = 1 << 3;
    pub const BPF_F_WRONLY: u32 = 1 << 4;
    pub const BPF_F_STACK_BUILD_ID: u32 = 1 << 5;
    pub const BPF_F_ZERO_SEED: u32 = 1 << 6;
    pub const BPF_F_RDONLY_PROG: u32 = 1 << 7;
    pub const BPF_F_WRONLY_PROG: u32 = 1 << 8;
    pub const BPF_F_CLONE: u32 = 1 << 9;
    pub const BPF_F_MMAPABLE: u32 = 1 << 10;
    pub const BPF_F_PRESERVE_ELEMS: u32 = 1 << 11;
    pub const BPF_F_INNER_MAP: u32 = 1 << 12;
    pub const BPF_F_LINK: u32 = 1 << 13;
    pub const BPF_F_PATH_FD: u32 = 1 << 14;
    pub const BPF_F_VTYPE_BTF_OBJ_FD: u32 = 1 << 15;
    pub const BPF_F_TOKEN_FD: u32 = 1 << 16;
    pub const BPF_F_SEGV_ON_FAULT: u32 = 1 << 17;
    pub const BPF_F_NO_USER_CONV: u32 = 1 << 18;

    /// The flags user space may pass with `BPF_MAP_CREATE` to any map: access
    /// restrictions and the NUMA node.
    pub const ACCESS_MASK: u32 =
        BPF_F_RDONLY | BPF_F_WRONLY | BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG;
}
