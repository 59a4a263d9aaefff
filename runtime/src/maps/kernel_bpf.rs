//! Test support: the running kernel as the oracle for the event maps. Raw
//! `bpf()` and `perf_event_open` calls, a small instruction encoder for
//! hand-written programs run with `BPF_PROG_TEST_RUN`, and a minimal BTF
//! for programs with callbacks.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const BPF_MAP_CREATE: i32 = 0;
const BPF_MAP_LOOKUP_ELEM: i32 = 1;
const BPF_MAP_UPDATE_ELEM: i32 = 2;
const BPF_MAP_DELETE_ELEM: i32 = 3;
const BPF_MAP_GET_NEXT_KEY: i32 = 4;
const BPF_PROG_LOAD: i32 = 5;
const BPF_PROG_TEST_RUN: i32 = 10;
const BPF_BTF_LOAD: i32 = 18;

pub const PROG_TYPE_SCHED_CLS: u32 = 3;

/// Whether tests must not skip (`BPFC_TEST_REQUIRE=all`).
fn require_all() -> bool {
    std::env::var("BPFC_TEST_REQUIRE").is_ok_and(|v| v == "all")
}

/// Skip (part of) `test` because of `why`: a SKIP line, or a failure under
/// `BPFC_TEST_REQUIRE=all`.
pub fn skip(test: &str, why: &str) {
    assert!(
        !require_all(),
        "{test}: {why} (nothing may skip with BPFC_TEST_REQUIRE=all)"
    );
    println!("SKIP: {test}: {why}");
}

/// Whether the kernel takes `bpf()` from this process; otherwise [`skip`]s.
pub fn kernel_or_skip(test: &str) -> bool {
    match map_create(2, 4, 4, 1, 0) {
        Ok(_) => true,
        Err(e) => {
            let why = format!(
                "the kernel refuses bpf() here ({})",
                std::io::Error::from_raw_os_error(e)
            );
            skip(test, &why);
            false
        }
    }
}

fn sys_bpf(cmd: i32, attr: &mut [u8; 128]) -> Result<i64, i32> {
    // SAFETY: `attr` is a zero-padded `union bpf_attr` of 128 bytes.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len() as u32) };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r)
    }
}

fn put32(a: &mut [u8], off: usize, v: u32) {
    a[off..off + 4].copy_from_slice(&v.to_ne_bytes());
}

fn put64(a: &mut [u8], off: usize, v: u64) {
    a[off..off + 8].copy_from_slice(&v.to_ne_bytes());
}

fn fd_of(r: i64) -> OwnedFd {
    // SAFETY: a fresh descriptor the kernel returned to us.
    unsafe { OwnedFd::from_raw_fd(r as i32) }
}

/// `BPF_MAP_CREATE`; the error is the errno.
pub fn map_create(t: u32, key: u32, value: u32, max: u32, flags: u32) -> Result<OwnedFd, i32> {
    let mut a = [0u8; 128];
    put32(&mut a, 0, t);
    put32(&mut a, 4, key);
    put32(&mut a, 8, value);
    put32(&mut a, 12, max);
    put32(&mut a, 16, flags);
    sys_bpf(BPF_MAP_CREATE, &mut a).map(fd_of)
}

/// A key of keyless maps is passed as NULL, as libbpf does (the kernel
/// refuses a key pointer for them with `EINVAL`).
fn key_ptr(key: &[u8]) -> *const u8 {
    if key.is_empty() {
        std::ptr::null()
    } else {
        key.as_ptr()
    }
}

fn elem_op(
    cmd: i32,
    fd: &OwnedFd,
    key: *const u8,
    value: *const u8,
    flags: u64,
) -> Result<(), i32> {
    let mut a = [0u8; 128];
    put32(&mut a, 0, fd.as_raw_fd() as u32);
    put64(&mut a, 8, key as u64);
    put64(&mut a, 16, value as u64);
    put64(&mut a, 24, flags);
    sys_bpf(cmd, &mut a).map(|_| ())
}

pub fn lookup(fd: &OwnedFd, key: &[u8], value: &mut [u8]) -> Result<(), i32> {
    elem_op(BPF_MAP_LOOKUP_ELEM, fd, key_ptr(key), value.as_mut_ptr(), 0)
}

pub fn update(fd: &OwnedFd, key: &[u8], value: &[u8], flags: u64) -> Result<(), i32> {
    elem_op(BPF_MAP_UPDATE_ELEM, fd, key_ptr(key), value.as_ptr(), flags)
}

pub fn delete(fd: &OwnedFd, key: &[u8]) -> Result<(), i32> {
    elem_op(BPF_MAP_DELETE_ELEM, fd, key_ptr(key), std::ptr::null(), 0)
}

pub fn get_next_key(fd: &OwnedFd, key: Option<&[u8]>, next: &mut [u8]) -> Result<(), i32> {
    let k = key.map_or(std::ptr::null(), key_ptr);
    elem_op(BPF_MAP_GET_NEXT_KEY, fd, k, next.as_mut_ptr(), 0)
}

/// A loaded BTF object (for programs with callbacks).
pub fn btf_load(blob: &[u8]) -> Result<OwnedFd, String> {
    let mut log = vec![0u8; 1 << 16];
    let mut a = [0u8; 128];
    put64(&mut a, 0, blob.as_ptr() as u64);
    put64(&mut a, 8, log.as_mut_ptr() as u64);
    put32(&mut a, 16, blob.len() as u32);
    put32(&mut a, 20, log.len() as u32);
    put32(&mut a, 24, 1);
    sys_bpf(BPF_BTF_LOAD, &mut a).map(fd_of).map_err(|e| {
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        format!(
            "BTF_LOAD: errno {e}: {}",
            String::from_utf8_lossy(&log[..end])
        )
    })
}

/// `BPF_PROG_LOAD` of a GPL program; `funcs` are (instruction, BTF FUNC
/// id) pairs for `btf`. The error carries the verifier log.
pub fn prog_load(
    prog_type: u32,
    insns: &[Insn],
    btf: Option<(&OwnedFd, &[(u32, u32)])>,
) -> Result<OwnedFd, String> {
    let code: Vec<u8> = insns.iter().flat_map(|i| i.bytes()).collect();
    let license = b"GPL\0";
    let mut log = vec![0u8; 1 << 20];
    let func_info: Vec<u8> = btf
        .map(|(_, f)| {
            f.iter()
                .flat_map(|&(insn, id)| [insn.to_ne_bytes(), id.to_ne_bytes()].concat())
                .collect()
        })
        .unwrap_or_default();
    let mut a = [0u8; 128];
    put32(&mut a, 0, prog_type);
    put32(&mut a, 4, insns.len() as u32);
    put64(&mut a, 8, code.as_ptr() as u64);
    put64(&mut a, 16, license.as_ptr() as u64);
    put32(&mut a, 24, 1);
    put32(&mut a, 28, log.len() as u32);
    put64(&mut a, 32, log.as_mut_ptr() as u64);
    if let Some((fd, funcs)) = btf {
        put32(&mut a, 72, fd.as_raw_fd() as u32);
        put32(&mut a, 76, 8);
        put64(&mut a, 80, func_info.as_ptr() as u64);
        put32(&mut a, 88, funcs.len() as u32);
    }
    sys_bpf(BPF_PROG_LOAD, &mut a).map(fd_of).map_err(|e| {
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        format!(
            "PROG_LOAD: errno {e}: {}",
            String::from_utf8_lossy(&log[..end])
        )
    })
}

/// `BPF_PROG_TEST_RUN` once on a 64-byte packet; the program's r0 (32 bits).
pub fn test_run(prog: &OwnedFd) -> u32 {
    let pkt = [0u8; 64];
    let mut a = [0u8; 128];
    put32(&mut a, 0, prog.as_raw_fd() as u32);
    put32(&mut a, 8, pkt.len() as u32);
    put64(&mut a, 16, pkt.as_ptr() as u64);
    put32(&mut a, 32, 1);
    sys_bpf(BPF_PROG_TEST_RUN, &mut a).expect("BPF_PROG_TEST_RUN");
    u32::from_ne_bytes(a[4..8].try_into().unwrap())
}

/// A `PERF_COUNT_SW_BPF_OUTPUT` event on `cpu`, as libbpf's perf buffer
/// opens it (raw samples, a wakeup per sample).
pub fn perf_event_open_bpf_output(cpu: i32) -> Result<OwnedFd, i32> {
    let mut attr = [0u8; 136];
    put32(&mut attr, 0, 1); // PERF_TYPE_SOFTWARE
    put32(&mut attr, 4, 136);
    put64(&mut attr, 8, 10); // PERF_COUNT_SW_BPF_OUTPUT
    put64(&mut attr, 16, 1); // sample_period
    put64(&mut attr, 24, 1 << 10); // PERF_SAMPLE_RAW
    put32(&mut attr, 48, 1); // wakeup_events
                             // SAFETY: a complete perf_event_attr; the result is checked.
    let r = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_ptr(),
            -1i32,
            cpu,
            -1i32,
            8u64, // PERF_FLAG_FD_CLOEXEC
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    Ok(fd_of(r))
}

/// Run the calling thread on `cpu` only.
pub fn pin_to_cpu(cpu: usize) -> bool {
    // SAFETY: a zeroed cpu_set_t with one bit set, for the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// A shared mapping of a kernel object's fd (ring buffer, perf event).
pub struct KMap {
    pub ptr: *mut u8,
    pub len: usize,
}

impl KMap {
    pub fn new(fd: &OwnedFd, len: usize, offset: usize, writable: bool) -> KMap {
        let prot = libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 };
        // SAFETY: mapping an object the kernel lets us map; checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        assert_ne!(
            p,
            libc::MAP_FAILED,
            "mmap: {}",
            std::io::Error::last_os_error()
        );
        KMap { ptr: p.cast(), len }
    }

    pub fn bytes(&self, off: usize, len: usize) -> Vec<u8> {
        assert!(off + len <= self.len);
        // SAFETY: inside the mapping; the kernel is quiescent between runs.
        unsafe { std::slice::from_raw_parts(self.ptr.add(off), len) }.to_vec()
    }

    pub fn u64_at(&self, off: usize) -> u64 {
        // SAFETY: an aligned word inside the mapping.
        unsafe { std::ptr::read_volatile(self.ptr.add(off) as *const u64) }
    }

    pub fn set_u64(&self, off: usize, v: u64) {
        // SAFETY: an aligned word inside a writable mapping.
        unsafe { std::ptr::write_volatile(self.ptr.add(off) as *mut u64, v) }
    }

    pub fn set_u32(&self, off: usize, v: u32) {
        // SAFETY: an aligned word inside a writable mapping.
        unsafe { std::ptr::write_volatile(self.ptr.add(off) as *mut u32, v) }
    }

    pub fn write(&self, off: usize, bytes: &[u8]) {
        assert!(off + bytes.len() <= self.len);
        // SAFETY: inside a writable mapping.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.add(off), bytes.len()) }
    }
}

impl Drop for KMap {
    fn drop(&mut self) {
        // SAFETY: our own mapping.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// One eBPF instruction (or the second half of `lddw`).
#[derive(Clone, Copy, Debug)]
pub struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    fn bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = self.regs;
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

/// Builds a program; `label`s are resolved for forward jumps.
#[derive(Default)]
pub struct Asm {
    pub insns: Vec<Insn>,
    fixups: Vec<(usize, &'static str)>,
    labels: Vec<(&'static str, usize)>,
}

impl Asm {
    pub fn mov_imm(&mut self, dst: u8, imm: i32) -> &mut Self {
        self.insns.push(insn(0xb7, dst, 0, 0, imm));
        self
    }
    pub fn mov(&mut self, dst: u8, src: u8) -> &mut Self {
        self.insns.push(insn(0xbf, dst, src, 0, 0));
        self
    }
    pub fn add_imm(&mut self, dst: u8, imm: i32) -> &mut Self {
        self.insns.push(insn(0x07, dst, 0, 0, imm));
        self
    }
    pub fn or_imm(&mut self, dst: u8, imm: i32) -> &mut Self {
        self.insns.push(insn(0x47, dst, 0, 0, imm));
        self
    }
    pub fn ld64(&mut self, dst: u8, v: u64) -> &mut Self {
        self.insns.push(insn(0x18, dst, 0, 0, v as u32 as i32));
        self.insns.push(insn(0, 0, 0, 0, (v >> 32) as u32 as i32));
        self
    }
    pub fn ld_map(&mut self, dst: u8, fd: &OwnedFd) -> &mut Self {
        self.insns.push(insn(0x18, dst, 1, 0, fd.as_raw_fd()));
        self.insns.push(insn(0, 0, 0, 0, 0));
        self
    }
    /// `dst = &value[off]` of element 0 of array map `fd`.
    pub fn ld_map_value(&mut self, dst: u8, fd: &OwnedFd, off: i32) -> &mut Self {
        self.insns.push(insn(0x18, dst, 2, 0, fd.as_raw_fd()));
        self.insns.push(insn(0, 0, 0, 0, off));
        self
    }
    pub fn ldx64(&mut self, dst: u8, src: u8, off: i16) -> &mut Self {
        self.insns.push(insn(0x79, dst, src, off, 0));
        self
    }
    pub fn add(&mut self, dst: u8, src: u8) -> &mut Self {
        self.insns.push(insn(0x0f, dst, src, 0, 0));
        self
    }
    /// `dst = &callback` (`BPF_PSEUDO_FUNC`) for a callback at `label`.
    pub fn ld_func(&mut self, dst: u8, label: &'static str) -> &mut Self {
        self.fixups.push((self.insns.len(), label));
        self.insns.push(insn(0x18, dst, 4, 0, 0));
        self.insns.push(insn(0, 0, 0, 0, 0));
        self
    }
    pub fn stx64(&mut self, dst: u8, off: i16, src: u8) -> &mut Self {
        self.insns.push(insn(0x7b, dst, src, off, 0));
        self
    }
    pub fn st8(&mut self, dst: u8, off: i16, imm: u8) -> &mut Self {
        self.insns.push(insn(0x72, dst, 0, off, imm as i32));
        self
    }
    pub fn call(&mut self, helper: i32) -> &mut Self {
        self.insns.push(insn(0x85, 0, 0, 0, helper));
        self
    }
    pub fn exit(&mut self) -> &mut Self {
        self.insns.push(insn(0x95, 0, 0, 0, 0));
        self
    }
    /// `if dst == imm goto label`.
    pub fn jeq_imm(&mut self, dst: u8, imm: i32, label: &'static str) -> &mut Self {
        self.fixups.push((self.insns.len(), label));
        self.insns.push(insn(0x15, dst, 0, 0, imm));
        self
    }
    /// `if dst != imm goto label`.
    pub fn jne_imm(&mut self, dst: u8, imm: i32, label: &'static str) -> &mut Self {
        self.fixups.push((self.insns.len(), label));
        self.insns.push(insn(0x55, dst, 0, 0, imm));
        self
    }
    pub fn label(&mut self, name: &'static str) -> &mut Self {
        self.labels.push((name, self.insns.len()));
        self
    }
    /// Store `bytes` on the stack ending at r10 - `top`, 8 at a time.
    pub fn stack_bytes(&mut self, top: i16, bytes: &[u8]) -> &mut Self {
        self.write_bytes(10, -top, bytes)
    }
    /// Store `bytes` at `reg + off`.
    pub fn write_bytes(&mut self, reg: u8, off: i16, bytes: &[u8]) -> &mut Self {
        let mut i = 0;
        while i + 8 <= bytes.len() {
            let v = u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
            self.ld64(1, v).stx64(reg, off + i as i16, 1);
            i += 8;
        }
        while i < bytes.len() {
            self.st8(reg, off + i as i16, bytes[i]);
            i += 1;
        }
        self
    }
    /// The instructions with jumps and function addresses resolved.
    pub fn finish(&self) -> Vec<Insn> {
        let mut out = self.insns.clone();
        for &(at, name) in &self.fixups {
            let target = self.labels.iter().find(|l| l.0 == name).expect("label").1;
            let rel = target as i64 - at as i64 - 1;
            if out[at].code == 0x18 {
                out[at].imm = rel as i32;
            } else {
                out[at].off = rel as i16;
            }
        }
        out
    }
    /// Where `label` is.
    pub fn at(&self, name: &str) -> u32 {
        self.labels.iter().find(|l| l.0 == name).expect("label").1 as u32
    }
}

/// BTF for a program `int prog(void *ctx)` with one static callback
/// `int cb(void *a, void *b)`: FUNC ids 4 (prog) and 6 (cb).
pub fn btf_prog_and_callback() -> Vec<u8> {
    let strings = b"\0int\0ctx\0prog\0cb\0a\0b\0";
    let name = |s: &str| -> u32 {
        let pat = format!("\0{s}\0");
        strings
            .windows(pat.len())
            .position(|w| w == pat.as_bytes())
            .unwrap() as u32
            + 1
    };
    let mut t: Vec<u32> = Vec::new();
    // 1: int
    t.extend([name("int"), 1 << 24, 4, (1 << 24) | 32]);
    // 2: void *
    t.extend([0, 2 << 24, 0]);
    // 3: int (void *ctx)
    t.extend([0, (13 << 24) | 1, 1, name("ctx"), 2]);
    // 4: FUNC prog, global
    t.extend([name("prog"), (12 << 24) | 1, 3]);
    // 5: int (void *a, void *b)
    t.extend([0, (13 << 24) | 2, 1, name("a"), 2, name("b"), 2]);
    // 6: FUNC cb, static
    t.extend([name("cb"), 12 << 24, 5]);
    let types: Vec<u8> = t.iter().flat_map(|w| w.to_ne_bytes()).collect();
    let mut blob = Vec::new();
    blob.extend(0xeb9fu16.to_ne_bytes());
    blob.extend([1u8, 0]);
    blob.extend(24u32.to_ne_bytes());
    blob.extend(0u32.to_ne_bytes());
    blob.extend((types.len() as u32).to_ne_bytes());
    blob.extend((types.len() as u32).to_ne_bytes());
    blob.extend((strings.len() as u32).to_ne_bytes());
    blob.extend(types);
    blob.extend(strings);
    blob
}

/// A small deterministic generator for operation sequences.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
