//! The running kernel as an oracle for the verifier: loading programs with
//! `BPF_PROG_LOAD` (their verdict, log and statistics) and creating the
//! maps an object's programs refer to. Linux only; every call fails
//! cleanly without the privileges (`CAP_BPF`).

use bpfc_compiler::isa::{encode_program, Endian, Insn, LddwSrc};
use bpfc_compiler::loader::{GlobalKind, MapDef, MapOrigin, Object, ProgType};
use std::time::{Duration, Instant};

const BPF_MAP_CREATE: i64 = 0;
const BPF_MAP_UPDATE_ELEM: i64 = 2;
const BPF_PROG_LOAD: i64 = 5;
const BPF_MAP_FREEZE: i64 = 22;
/// `BPF_F_SLEEPABLE`.
pub const F_SLEEPABLE: u32 = 1 << 4;
/// `BPF_F_TEST_STATE_FREQ`.
pub const F_TEST_STATE_FREQ: u32 = 1 << 3;
/// `BPF_F_STRICT_ALIGNMENT`.
pub const F_STRICT_ALIGNMENT: u32 = 1;

/// `union bpf_attr` for `BPF_PROG_LOAD`, as far as it is filled here.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    pad: [u64; 12],
}

/// `union bpf_attr` for `BPF_MAP_CREATE`.
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    pad: [u64; 14],
}

/// `union bpf_attr` for the map element and freeze commands.
#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    pad0: u32,
    key: u64,
    value: u64,
    flags: u64,
    pad: [u64; 12],
}

fn bpf<T>(cmd: i64, attr: &mut T) -> i64 {
    // SAFETY: `attr` is a live, zero-padded `repr(C)` attribute union of
    // the size passed; the kernel reads it and writes at most that many
    // bytes back (plus buffers the struct points to, owned by the caller
    // for the duration of the call).
    unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut u8,
            std::mem::size_of::<T>(),
        )
    }
}

fn close(fd: i32) {
    // SAFETY: `fd` is a descriptor this process owns and no longer uses.
    unsafe { libc::close(fd) };
}

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
    let license: &[u8] = if spec.gpl { b"GPL\0" } else { b"Proprietary\0" };
    let mut log = vec![0u8; if spec.log_level > 0 { 1 << 24 } else { 0 }];
    let mut attr = ProgLoadAttr {
        prog_type: spec.prog_type,
        insn_cnt: (code.len() / 8) as u32,
        insns: code.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: spec.log_level,
        log_size: log.len() as u32,
        log_buf: if log.is_empty() {
            0
        } else {
            log.as_mut_ptr() as u64
        },
        prog_flags: spec.flags,
        expected_attach_type: spec.expected_attach_type,
        ..Default::default()
    };
    let t0 = Instant::now();
    let fd = bpf(BPF_PROG_LOAD, &mut attr);
    let elapsed = t0.elapsed();
    let errno = std::io::Error::last_os_error();
    if fd >= 0 {
        close(fd as i32);
    }
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..end]).into_owned();
    let stat = |prefix: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    };
    let message = if fd >= 0 {
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
            .unwrap_or_else(|| format!("errno: {errno}"))
    };
    KernelVerdict {
        accepted: fd >= 0,
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

/// A map created in the kernel (closed on drop).
pub struct KernelMap(pub i32);

impl Drop for KernelMap {
    fn drop(&mut self) {
        close(self.0);
    }
}

/// Create a map of this definition; global data maps get their image,
/// read-only ones are frozen, as libbpf does. Maps that need BTF in the
/// kernel (spin locks, timers, struct_ops ...) fail.
pub fn map_create(def: &MapDef) -> Result<KernelMap, String> {
    let mut attr = MapCreateAttr {
        map_type: def.map_type,
        key_size: def.key_size,
        value_size: def.value_size,
        max_entries: def.max_entries,
        map_flags: def.map_flags,
        ..Default::default()
    };
    let fd = bpf(BPF_MAP_CREATE, &mut attr);
    if fd < 0 {
        return Err(format!(
            "map {}: {}",
            def.name,
            std::io::Error::last_os_error()
        ));
    }
    let map = KernelMap(fd as i32);
    let global = matches!(def.origin, MapOrigin::Global(_) | MapOrigin::Kconfig);
    if global {
        let mut value = def.data.clone();
        value.resize(def.value_size as usize, 0);
        let key = 0u32;
        let mut e = MapElemAttr {
            map_fd: map.0 as u32,
            key: &key as *const u32 as u64,
            value: value.as_ptr() as u64,
            ..Default::default()
        };
        if bpf(BPF_MAP_UPDATE_ELEM, &mut e) < 0 {
            return Err(format!(
                "map {} image: {}",
                def.name,
                std::io::Error::last_os_error()
            ));
        }
        let rodata = matches!(
            def.origin,
            MapOrigin::Global(GlobalKind::Rodata) | MapOrigin::Kconfig
        );
        if rodata {
            let mut f = MapElemAttr {
                map_fd: map.0 as u32,
                ..Default::default()
            };
            if bpf(BPF_MAP_FREEZE, &mut f) < 0 {
                return Err(format!(
                    "map {} freeze: {}",
                    def.name,
                    std::io::Error::last_os_error()
                ));
            }
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
                    let fd = self.maps[lo as u32 as usize].as_ref().map_or(-1, |m| m.0);
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
