//! Tests only: the running kernel's `bpf()` as the oracle for map
//! behaviour (map commands, and tiny raw-tracepoint programs run with
//! `BPF_PROG_TEST_RUN` to call a helper). Needs root; tests skip with a
//! line when the kernel refuses.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const MAP_CREATE: i64 = 0;
const MAP_LOOKUP_ELEM: i64 = 1;
const MAP_UPDATE_ELEM: i64 = 2;
const MAP_DELETE_ELEM: i64 = 3;
const MAP_GET_NEXT_KEY: i64 = 4;
const PROG_LOAD: i64 = 5;
const PROG_TEST_RUN: i64 = 10;
const OBJ_GET_INFO_BY_FD: i64 = 15;
const PROG_TYPE_RAW_TRACEPOINT: u32 = 17;

/// A zeroed `union bpf_attr` with 32-bit fields set by byte offset.
struct Attr([u8; 160]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 160])
    }
    fn u32(mut self, off: usize, v: u32) -> Attr {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(mut self, off: usize, v: u64) -> Attr {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn get_u32(&self, off: usize) -> u32 {
        u32::from_ne_bytes(self.0[off..off + 4].try_into().unwrap())
    }
}

fn sys(cmd: i64, attr: &mut Attr) -> Result<i64, i32> {
    // SAFETY: `attr` is a 160-byte buffer the kernel reads and writes; the
    // pointers inside it point to live buffers of the sizes given.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.0.as_mut_ptr(),
            attr.0.len() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r)
    }
}

/// Whether this process may use `bpf()` (prints a SKIP line if not).
pub fn available(test: &str) -> bool {
    match map_create(2, 4, 4, 1, 0, 0) {
        Ok(_) => true,
        Err(e) => {
            if std::env::var("BPFC_TEST_REQUIRE").as_deref() == Ok("all") {
                panic!("{test}: the kernel refuses bpf() (errno {e}) and BPFC_TEST_REQUIRE=all");
            }
            println!("SKIP {test}: the kernel refuses bpf() (errno {e}; needs root)");
            false
        }
    }
}

pub fn map_create(
    map_type: u32,
    key: u32,
    value: u32,
    max: u32,
    flags: u32,
    inner_fd: u32,
) -> Result<OwnedFd, i32> {
    let mut a = Attr::new()
        .u32(0, map_type)
        .u32(4, key)
        .u32(8, value)
        .u32(12, max)
        .u32(16, flags)
        .u32(20, inner_fd);
    let fd = sys(MAP_CREATE, &mut a)?;
    // SAFETY: a new descriptor the kernel gave us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn elem_attr(fd: &OwnedFd, key: Option<&[u8]>, value: u64, flags: u64) -> Attr {
    Attr::new()
        .u32(0, fd.as_raw_fd() as u32)
        .u64(8, key.map_or(0, |k| k.as_ptr() as u64))
        .u64(16, value)
        .u64(24, flags)
}

pub fn update(fd: &OwnedFd, key: &[u8], value: &[u8], flags: u64) -> Result<(), i32> {
    let mut a = elem_attr(fd, Some(key), value.as_ptr() as u64, flags);
    sys(MAP_UPDATE_ELEM, &mut a).map(|_| ())
}

pub fn lookup(fd: &OwnedFd, key: &[u8], value_len: usize) -> Result<Vec<u8>, i32> {
    let mut v = vec![0u8; value_len];
    let mut a = elem_attr(fd, Some(key), v.as_mut_ptr() as u64, 0);
    sys(MAP_LOOKUP_ELEM, &mut a).map(|_| v)
}

pub fn delete(fd: &OwnedFd, key: &[u8]) -> Result<(), i32> {
    let mut a = elem_attr(fd, Some(key), 0, 0);
    sys(MAP_DELETE_ELEM, &mut a).map(|_| ())
}

pub fn get_next_key(fd: &OwnedFd, key: Option<&[u8]>, key_len: usize) -> Result<Vec<u8>, i32> {
    let mut next = vec![0u8; key_len];
    let mut a = elem_attr(fd, key, next.as_mut_ptr() as u64, 0);
    sys(MAP_GET_NEXT_KEY, &mut a).map(|_| next)
}

/// The kernel's id of a map or program.
pub fn obj_id(fd: &OwnedFd) -> u32 {
    let mut info = [0u8; 128];
    let mut a = Attr::new()
        .u32(0, fd.as_raw_fd() as u32)
        .u32(4, info.len() as u32)
        .u64(8, info.as_mut_ptr() as u64);
    sys(OBJ_GET_INFO_BY_FD, &mut a).expect("BPF_OBJ_GET_INFO_BY_FD");
    // bpf_map_info and bpf_prog_info both have the id at offset 4.
    u32::from_ne_bytes(info[4..8].try_into().unwrap())
}

/// The flags a kernel map reports (`bpf_map_info.map_flags`).
pub fn map_flags(fd: &OwnedFd) -> u32 {
    let mut info = [0u8; 128];
    let mut a = Attr::new()
        .u32(0, fd.as_raw_fd() as u32)
        .u32(4, info.len() as u32)
        .u64(8, info.as_mut_ptr() as u64);
    sys(OBJ_GET_INFO_BY_FD, &mut a).expect("BPF_OBJ_GET_INFO_BY_FD");
    u32::from_ne_bytes(info[20..24].try_into().unwrap())
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    let mut b = [0u8; 8];
    b[0] = code;
    b[1] = dst | (src << 4);
    b[2..4].copy_from_slice(&off.to_ne_bytes());
    b[4..].copy_from_slice(&imm.to_ne_bytes());
    u64::from_ne_bytes(b)
}

/// A raw-tracepoint program: `return helper(r1 = ctx, map, arg)` with the
/// map in r2 and `arg` in r3 (`map_first`: the map in r1, `arg` in r2).
pub fn helper_prog(
    helper: i32,
    map_fd: &OwnedFd,
    arg: i32,
    map_first: bool,
) -> Result<OwnedFd, i32> {
    let fd = map_fd.as_raw_fd();
    let (map_reg, arg_reg) = if map_first { (1, 2) } else { (2, 3) };
    let insns = [
        insn(0x18, map_reg, 1, 0, fd), // lddw map_reg, map (BPF_PSEUDO_MAP_FD)
        0,
        insn(0xb7, arg_reg, 0, 0, arg), // mov arg_reg, arg
        insn(0x85, 0, 0, 0, helper),    // call helper
        insn(0x95, 0, 0, 0, 0),         // exit
    ];
    let license = b"GPL\0";
    let mut log = vec![0u8; 4096];
    let mut a = Attr::new()
        .u32(0, PROG_TYPE_RAW_TRACEPOINT)
        .u32(4, insns.len() as u32)
        .u64(8, insns.as_ptr() as u64)
        .u64(16, license.as_ptr() as u64)
        .u32(24, 1)
        .u32(28, log.len() as u32)
        .u64(32, log.as_mut_ptr() as u64);
    match sys(PROG_LOAD, &mut a) {
        // SAFETY: a new descriptor the kernel gave us.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(0);
            eprintln!("prog load: {}", String::from_utf8_lossy(&log[..end]));
            Err(e)
        }
    }
}

/// Run a raw-tracepoint program once on this thread; its (32-bit) return
/// value, sign-extended as helpers' `-errno` results are.
pub fn test_run(prog: &OwnedFd) -> Result<i64, i32> {
    let mut a = Attr::new().u32(0, prog.as_raw_fd() as u32);
    sys(PROG_TEST_RUN, &mut a)?;
    Ok(a.get_u32(4) as i32 as i64)
}
