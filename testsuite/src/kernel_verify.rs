//! The running kernel as an oracle for the verifier: loading bpfc's
//! programs with `BPF_PROG_LOAD` (their verdict, log and statistics) and
//! creating the maps an object's programs refer to, through the kernel
//! oracle ([`bpfc_oracle`]). Linux only; every call fails cleanly without
//! the privileges (`CAP_BPF`).

use bpfc_compiler::isa::{encode_program, Endian, Insn, LddwSrc};
use bpfc_compiler::loader::{GlobalKind, MapDef, MapOrigin, Object, ProgType};
use bpfc_oracle::{MapCreate, Prog, ProgLoad};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

/// `BPF_F_SLEEPABLE`.
pub const F_SLEEPABLE: u32 = 1 << 4;
/// `BPF_F_TEST_STATE_FREQ`.
pub const F_TEST_STATE_FREQ: u32 = 1 << 3;
/// `BPF_F_STRICT_ALIGNMENT`.
pub const F_STRICT_ALIGNMENT: u32 = 1;

/// The kernel's `enum bpf_prog_type` number of a type these tests load
/// without an attach target (tracing, LSM, extension, struct_ops and
/// sk_lookup programs need one).
pub fn prog_type_number(t: ProgType) -> Option<u32> {
    use ProgType::*;
    match t {
        Tracing | StructOps | Ext | Lsm | SkLookup | Unknown => None,
        _ => Some(t.number()),
    }
}

/// The kernel's `enum bpf_attach_type` number of libbpf's name.
pub fn attach_type_number(name: &str) -> u32 {
    const NAMES: &[&str] = &[
        "BPF_CGROUP_INET_INGRESS",
        "BPF_CGROUP_INET_EGRESS",
        "BPF_CGROUP_INET_SOCK_CREATE",
        "BPF_CGROUP_SOCK_OPS",
        "BPF_SK_SKB_STREAM_PARSER",
        "BPF_SK_SKB_STREAM_VERDICT",
        "BPF_CGROUP_DEVICE",
        "BPF_SK_MSG_VERDICT",
        "BPF_CGROUP_INET4_BIND",
        "BPF_CGROUP_INET6_BIND",
        "BPF_CGROUP_INET4_CONNECT",
        "BPF_CGROUP_INET6_CONNECT",
        "BPF_CGROUP_INET4_POST_BIND",
        "BPF_CGROUP_INET6_POST_BIND",
        "BPF_CGROUP_UDP4_SENDMSG",
        "BPF_CGROUP_UDP6_SENDMSG",
        "BPF_LIRC_MODE2",
        "BPF_FLOW_DISSECTOR",
        "BPF_CGROUP_SYSCTL",
        "BPF_CGROUP_UDP4_RECVMSG",
        "BPF_CGROUP_UDP6_RECVMSG",
        "BPF_CGROUP_GETSOCKOPT",
        "BPF_CGROUP_SETSOCKOPT",
        "BPF_TRACE_RAW_TP",
        "BPF_TRACE_FENTRY",
        "BPF_TRACE_FEXIT",
        "BPF_MODIFY_RETURN",
        "BPF_LSM_MAC",
        "BPF_TRACE_ITER",
        "BPF_CGROUP_INET4_GETPEERNAME",
        "BPF_CGROUP_INET6_GETPEERNAME",
        "BPF_CGROUP_INET4_GETSOCKNAME",
        "BPF_CGROUP_INET6_GETSOCKNAME",
        "BPF_XDP_DEVMAP",
        "BPF_CGROUP_INET_SOCK_RELEASE",
        "BPF_XDP_CPUMAP",
        "BPF_SK_LOOKUP",
        "BPF_XDP",
    ];
    NAMES.iter().position(|n| *n == name).unwrap_or(0) as u32
}

/// What the kernel said about one program.
#[derive(Clone, Debug)]
pub struct KernelVerdict {
    pub accepted: bool,
    /// The last line of the log that is not a statistic (empty when accepted).
    pub message: String,
    pub log: String,
    /// Wall time of the `BPF_PROG_LOAD` call.
    pub elapsed: Duration,
    /// `processed N insns` and `verification time N usec` of the log's
    /// statistics, when asked for (`log_level` 4).
    pub processed: Option<u64>,
    pub verification_time: Option<Duration>,
}

/// How to load a program.
#[derive(Clone, Debug, Default)]
pub struct LoadSpec {
    pub prog_type: u32,
    pub expected_attach_type: u32,
    pub flags: u32,
    /// 0 none, 1 messages, 2 every instruction, 4 statistics only.
    pub log_level: u32,
    pub gpl: bool,
}

/// `BPF_PROG_LOAD` of `insns` (map references must be file descriptors).
pub fn prog_load(insns: &[Insn], spec: &LoadSpec) -> KernelVerdict {
    let code = encode_program(insns, Endian::Little);
    let mut load = ProgLoad::new(spec.prog_type, &code);
    load.license = if spec.gpl { "GPL" } else { "Proprietary" };
    load.log_level = spec.log_level;
    // Level 0: no log and no second load for the reason (the time is the
    // kernel's for the one load).
    load.log_size = if spec.log_level > 0 { 1 << 24 } else { 0 };
    load.prog_flags = spec.flags;
    load.expected_attach_type = spec.expected_attach_type;
    let t0 = Instant::now();
    let result = Prog::load(&load);
    let elapsed = t0.elapsed();
    let (accepted, text, errno) = match result {
        Ok(p) => (true, p.log, None),
        Err(e) => (false, e.log, Some(e.errno)),
    };
    let stat = |prefix: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    };
    let message = if accepted {
        String::new()
    } else {
        text.lines()
            .rev()
            .find(|l| {
                !l.is_empty()
                    && !l.starts_with("processed ")
                    && !l.starts_with("verification time")
                    && !l.starts_with("stack depth")
            })
            .map(str::to_string)
            .unwrap_or_else(|| format!("errno: {}", errno.map_or(0, |e| e.0)))
    };
    KernelVerdict {
        accepted,
        message,
        processed: stat("processed "),
        verification_time: stat("verification time ").map(Duration::from_micros),
        log: text,
        elapsed,
    }
}

/// Whether this process can load BPF programs at all.
pub fn available() -> bool {
    let prog = [
        Insn::Alu {
            width: bpfc_compiler::isa::Width::W64,
            op: bpfc_compiler::isa::AluOp::Mov,
            dst: bpfc_compiler::isa::Reg::R0,
            src: bpfc_compiler::isa::Src::Imm(0),
        },
        Insn::Exit,
    ];
    prog_load(
        &prog,
        &LoadSpec {
            prog_type: 1,
            gpl: true,
            ..Default::default()
        },
    )
    .accepted
}

pub use bpfc_oracle::KernelMap;

/// Create a map of this definition; global data maps get their image,
/// read-only ones are frozen, as libbpf does. Maps that need BTF in the
/// kernel (spin locks, timers, struct_ops ...) fail.
pub fn map_create(def: &MapDef) -> Result<KernelMap, String> {
    let create = MapCreate::new(def.map_type, def.key_size, def.value_size, def.max_entries);
    let map = KernelMap::create(&create.flags(def.map_flags))
        .map_err(|e| format!("map {}: {e}", def.name))?;
    if matches!(def.origin, MapOrigin::Global(_) | MapOrigin::Kconfig) {
        let mut value = def.data.clone();
        value.resize(def.value_size as usize, 0);
        map.update(&0u32.to_ne_bytes(), &value, 0)
            .map_err(|e| format!("map {} image: {e}", def.name))?;
        if matches!(
            def.origin,
            MapOrigin::Global(GlobalKind::Rodata) | MapOrigin::Kconfig
        ) {
            map.freeze()
                .map_err(|e| format!("map {} freeze: {e}", def.name))?;
        }
    }
    Ok(map)
}

/// The maps of an object, created in the kernel, indexed as the object's.
pub struct KernelMaps {
    pub maps: Vec<Option<KernelMap>>,
}

impl KernelMaps {
    /// Create the maps `insns` refer to.
    pub fn for_program(obj: &Object, insns: &[Insn]) -> Result<KernelMaps, String> {
        let mut maps: Vec<Option<KernelMap>> = (0..obj.maps.len()).map(|_| None).collect();
        for i in insns {
            if let Insn::Lddw {
                src: LddwSrc::MapIdx | LddwSrc::MapIdxValue,
                imm,
                ..
            } = *i
            {
                let idx = imm as u32 as usize;
                if maps.get(idx).is_some_and(Option::is_none) {
                    maps[idx] = Some(map_create(&obj.maps[idx])?);
                }
            }
        }
        Ok(KernelMaps { maps })
    }

    /// `insns` with map references as the kernel maps' descriptors.
    pub fn patch(&self, insns: &[Insn]) -> Vec<Insn> {
        insns
            .iter()
            .map(|i| match *i {
                Insn::Lddw { dst, src, imm }
                    if matches!(src, LddwSrc::MapIdx | LddwSrc::MapIdxValue) =>
                {
                    let (lo, hi) = Insn::lddw_halves(imm);
                    let fd = self.maps[lo as u32 as usize]
                        .as_ref()
                        .map_or(-1, |m| m.as_fd().as_raw_fd());
                    Insn::Lddw {
                        dst,
                        src: if src == LddwSrc::MapIdx {
                            LddwSrc::MapFd
                        } else {
                            LddwSrc::MapValue
                        },
                        imm: ((hi as u32 as u64) << 32) | fd as u32 as u64,
                    }
                }
                other => other,
            })
            .collect()
    }
}
