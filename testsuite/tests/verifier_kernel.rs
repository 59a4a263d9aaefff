//! bpfc's verifier against the running kernel's: programs are loaded with
//! `BPF_PROG_LOAD` and verified by bpfc, and the verdicts compared.
//!
//! Two sources of programs:
//! - the differential generator (`bpfc_testsuite::gen`), loaded as syscall
//!   programs (their input pointer is then the context);
//! - a generator of verifier-shaped programs here (stack, map values after
//!   lookups, packet bounds, context fields, loops, loops bounded by
//!   `may_goto`, helper arguments), each
//!   also in mutated forms that break safety: out-of-range offsets, missing
//!   null checks, unbounded loops, uninitialised registers, wrong helper
//!   arguments, bad returns.
//!
//! Prints `N agree, M differ (U unsound, S too strict) of T` and one line
//! per disagreement with both messages. Fails on any unsound verdict (the
//! kernel rejects, bpfc accepts). Needs root (CAP_BPF); skips otherwise.
//!
//! Also: the programs of the verifier corpus (testsuite/fixtures/verifier)
//! both accept are compared by processed instructions, the measure of how
//! closely bpfc's search (checkpoints, pruning, precision, liveness)
//! follows the kernel's.

#![cfg(target_os = "linux")]

use bpfc_compiler::isa::{
    AluOp, CallTarget, Endian, Insn, JmpCond, LddwSrc, Reg, Size, Src, Width,
};
use bpfc_compiler::loader::{self, MapDef, MapOrigin, Object, ProgType};
use bpfc_compiler::progtype;
use bpfc_compiler::verifier::{self, Input, Options};
use bpfc_testsuite::gen::{self, Rng};
use std::os::fd::AsRawFd;

use bpfc_testsuite::kernel_verify::{
    self as kernel, KernelMap, KernelMaps, LoadSpec, F_SLEEPABLE as BPF_F_SLEEPABLE,
};

/// Load into the kernel: Ok(()) accepted, Err(its message) rejected. The
/// first attempt runs without a log (much faster); a rejection is loaded
/// again with one for its message.
fn kernel_load(insns: &[Insn], ty: ProgType, flags: u32) -> Result<(), String> {
    let mut spec = LoadSpec {
        prog_type: kernel::prog_type_number(ty).expect("a kernel program type"),
        flags,
        gpl: true,
        ..Default::default()
    };
    if kernel::prog_load(insns, &spec).accepted {
        return Ok(());
    }
    spec.log_level = 1;
    let v = kernel::prog_load(insns, &spec);
    if v.accepted {
        Ok(())
    } else {
        Err(v.message)
    }
}

/// An array map of four 64-byte values, for the kernel's copy of a program.
fn create_map() -> Option<KernelMap> {
    kernel::map_create(&bpfc_map()).ok()
}

fn bpfc_map() -> MapDef {
    map_def("values", 2, 4, 64, 4)
}

/// The maps of the differential generator's programs (`gen::MAPS`).
fn gen_maps() -> Vec<MapDef> {
    gen::MAPS
        .iter()
        .map(|&(name, kind, key, value, max)| {
            let ty = match kind {
                gen::MapKind::Array => 2,
                gen::MapKind::Hash => 1,
                gen::MapKind::ProgArray => 3,
            };
            map_def(name, ty, key, value, max)
        })
        .collect()
}

fn map_def(name: &str, map_type: u32, key_size: u32, value_size: u32, max_entries: u32) -> MapDef {
    MapDef {
        name: name.into(),
        origin: MapOrigin::Btf,
        map_type,
        key_size,
        value_size,
        max_entries,
        map_flags: 0,
        numa_node: 0,
        map_extra: 0,
        pinning: 0,
        key_type_id: None,
        value_type_id: None,
        inner: None,
        initial: Vec::new(),
        data: Vec::new(),
        legacy: None,
        struct_ops: None,
    }
}

fn bpfc_verify(insns: &[Insn], ty: ProgType, sleepable: bool) -> Result<(), String> {
    bpfc_verify_with(insns, ty, sleepable, &[bpfc_map()])
}

fn bpfc_verify_with(
    insns: &[Insn],
    ty: ProgType,
    sleepable: bool,
    maps: &[MapDef],
) -> Result<(), String> {
    let mut opts = Options::new(ty);
    opts.sleepable = sleepable;
    let input = Input {
        insns,
        maps,
        btf: None,
        func_info: &[],
        endian: Endian::Little,
    };
    verifier::verify(&input, &opts)
        .map(|_| ())
        .map_err(|r| r.message.lines().last().unwrap_or("").to_string())
}

/// The kernel's copy: map references by index become the map's fd.
fn with_fd(insns: &[Insn], fd: i32) -> Vec<Insn> {
    with_fds(insns, &[fd])
}

/// The kernel's copy: a reference to map `i` becomes `fds[i]`.
fn with_fds(insns: &[Insn], fds: &[i32]) -> Vec<Insn> {
    insns
        .iter()
        .map(|i| match *i {
            Insn::Lddw {
                dst,
                src: LddwSrc::MapIdx,
                imm,
            } => Insn::Lddw {
                dst,
                src: LddwSrc::MapFd,
                imm: fds[imm as u32 as usize] as u32 as u64,
            },
            other => other,
        })
        .collect()
}

// ---- a generator of verifier-shaped programs ------------------------

fn mov(dst: Reg, src: Src) -> Insn {
    Insn::Alu {
        width: Width::W64,
        op: AluOp::Mov,
        dst,
        src,
    }
}

fn alu(op: AluOp, dst: Reg, src: Src) -> Insn {
    Insn::Alu {
        width: Width::W64,
        op,
        dst,
        src,
    }
}

fn jmp(cond: JmpCond, dst: Reg, src: Src, off: i16) -> Insn {
    Insn::Jmp {
        width: Width::W64,
        cond,
        dst,
        src,
        off,
    }
}

fn ldx(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
    Insn::Ldx {
        size,
        sx: false,
        dst,
        src,
        off,
    }
}

fn stx(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
    Insn::Stx {
        size,
        dst,
        src,
        off,
    }
}

/// What a mutation may break.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mutation {
    None,
    /// An access past its region.
    Offset,
    /// A map value used without its null check.
    NullCheck,
    /// A loop whose counter never moves.
    Unbounded,
    /// A register read before any write.
    Uninit,
    /// A bound check removed or widened.
    Bound,
    /// A helper given the wrong kind of argument.
    HelperArg,
}

const MUTATIONS: [Mutation; 7] = [
    Mutation::None,
    Mutation::Offset,
    Mutation::NullCheck,
    Mutation::Unbounded,
    Mutation::Uninit,
    Mutation::Bound,
    Mutation::HelperArg,
];

/// One program of `ty`: a prologue saving the context in r6, then random
/// blocks, each possibly broken by `m` (applied to one block only).
fn shaped(rng: &mut Rng, ty: ProgType, m: Mutation) -> Vec<Insn> {
    let mut out = vec![mov(Reg::R6, Src::Reg(Reg::R1)), mov(Reg::R7, Src::Imm(0))];
    let blocks = rng.range(1, 4) as usize;
    let broken = rng.below(blocks as u64) as usize;
    for b in 0..blocks {
        let mm = if b == broken { m } else { Mutation::None };
        let kinds: &[u8] = match ty {
            ProgType::Xdp => &[0, 1, 2, 3, 4, 5],
            _ => &[0, 1, 3, 4, 5],
        };
        match rng.pick(kinds) {
            0 => stack_block(rng, mm, &mut out),
            1 => map_block(rng, mm, &mut out),
            2 => packet_block(rng, mm, &mut out),
            3 => loop_block(rng, mm, &mut out),
            4 => ctx_block(rng, ty, mm, &mut out),
            _ => helper_block(rng, mm, &mut out),
        }
    }
    if m == Mutation::Uninit && rng.chance(30) {
        // r0 never set.
        out.push(Insn::Exit);
    } else {
        out.push(mov(Reg::R0, Src::Imm(rng.range(0, 2) as i32)));
        out.push(Insn::Exit);
    }
    out
}

fn stack_block(rng: &mut Rng, m: Mutation, out: &mut Vec<Insn>) {
    let size = rng.pick(&[Size::B, Size::H, Size::W, Size::DW]);
    let bytes = size.bytes() as i16;
    let mut off = -(rng.range(1, 64) as i16) * 8;
    if rng.chance(30) {
        off += bytes * rng.range(0, (8 / bytes as i64).max(1) - 1) as i16;
    }
    if m == Mutation::Offset {
        off = if rng.chance(50) {
            -512 - bytes * rng.range(1, 4) as i16
        } else {
            rng.range(0, 16) as i16
        };
    }
    out.push(mov(Reg::R2, Src::Imm(rng.range(-5, 500) as i32)));
    out.push(stx(size, Reg::FP, Reg::R2, off));
    let src = if m == Mutation::Uninit {
        Reg::R5
    } else {
        Reg::FP
    };
    out.push(ldx(size, Reg::R3, src, off));
    // A variable offset into the stack, bounded.
    if rng.chance(40) {
        out.push(mov(Reg::R4, Src::Reg(Reg::R3)));
        out.push(alu(
            AluOp::And,
            Reg::R4,
            Src::Imm(if m == Mutation::Bound { 0x1ff } else { 0x1f }),
        ));
        out.push(mov(Reg::R5, Src::Reg(Reg::FP)));
        out.push(alu(AluOp::Add, Reg::R5, Src::Imm(-64)));
        out.push(alu(AluOp::Add, Reg::R5, Src::Reg(Reg::R4)));
        out.push(ldx(Size::B, Reg::R3, Reg::R5, 0));
    }
}

fn map_block(rng: &mut Rng, m: Mutation, out: &mut Vec<Insn>) {
    // key = small constant on the stack
    out.push(Insn::St {
        size: Size::W,
        dst: Reg::FP,
        off: -4,
        imm: rng.range(0, 5) as i32,
    });
    out.push(Insn::Lddw {
        dst: Reg::R1,
        src: LddwSrc::MapIdx,
        imm: 0,
    });
    out.push(Insn::LddwHigh);
    out.push(mov(Reg::R2, Src::Reg(Reg::FP)));
    out.push(alu(AluOp::Add, Reg::R2, Src::Imm(-4)));
    out.push(Insn::Call(CallTarget::Helper(1)));
    let size = rng.pick(&[Size::B, Size::H, Size::W, Size::DW]);
    let bytes = size.bytes() as i16;
    let mut off = rng.range(0, (64 / bytes - 1) as i64) as i16 * bytes;
    if m == Mutation::Offset {
        off = 64 - bytes + rng.range(1, 8) as i16;
    }
    let variable = rng.chance(50);
    let mut body = Vec::new();
    if variable {
        body.push(ldx(Size::W, Reg::R3, Reg::R0, 0));
        let limit = if m == Mutation::Bound {
            64
        } else {
            64 - bytes as i32
        };
        body.push(jmp(JmpCond::Gt, Reg::R3, Src::Imm(limit), 2));
        body.push(alu(AluOp::Add, Reg::R0, Src::Reg(Reg::R3)));
        body.push(stx(size, Reg::R0, Reg::R7, 0));
    } else {
        body.push(stx(size, Reg::R0, Reg::R7, off));
        body.push(ldx(size, Reg::R7, Reg::R0, off));
    }
    if m != Mutation::NullCheck {
        out.push(jmp(JmpCond::Eq, Reg::R0, Src::Imm(0), body.len() as i16));
    }
    out.extend(body);
    out.push(mov(Reg::R7, Src::Imm(0)));
}

fn packet_block(rng: &mut Rng, m: Mutation, out: &mut Vec<Insn>) {
    // xdp: r2 = data, r3 = data_end
    out.push(ldx(Size::W, Reg::R2, Reg::R6, 0));
    out.push(ldx(Size::W, Reg::R3, Reg::R6, 4));
    let k = rng.range(1, 40) as i32;
    let size = rng.pick(&[Size::B, Size::H, Size::W, Size::DW]);
    let bytes = size.bytes() as i32;
    let off = if m == Mutation::Offset {
        k - bytes + rng.range(1, 4) as i32
    } else {
        rng.range(0, (k - bytes).max(0) as i64) as i32
    };
    out.push(mov(Reg::R4, Src::Reg(Reg::R2)));
    out.push(alu(AluOp::Add, Reg::R4, Src::Imm(k)));
    let body = [ldx(size, Reg::R5, Reg::R2, off as i16)];
    if m == Mutation::Bound {
        // Checked against the wrong end: no range learned.
        out.push(jmp(
            JmpCond::Gt,
            Reg::R4,
            Src::Reg(Reg::R2),
            body.len() as i16,
        ));
    } else {
        // Checked against data_end (a range too short when bytes > k).
        out.push(jmp(
            JmpCond::Gt,
            Reg::R4,
            Src::Reg(Reg::R3),
            body.len() as i16,
        ));
    }
    out.extend(body);
}

fn loop_block(rng: &mut Rng, m: Mutation, out: &mut Vec<Insn>) {
    if rng.chance(35) {
        return may_goto_loop(rng, m, out);
    }
    let n = rng.range(1, 40) as i32;
    out.push(mov(Reg::R8, Src::Imm(n)));
    out.push(mov(Reg::R9, Src::Imm(0)));
    // loop: r9 += r8; r8 -= 1; if r8 != 0 goto loop. The unbounded
    // mutation keeps every register as it was, so both verifiers see the
    // same state come back (rather than run to their instruction limit).
    if m == Mutation::Unbounded {
        out.push(alu(AluOp::Add, Reg::R9, Src::Imm(0)));
        out.push(alu(AluOp::Add, Reg::R8, Src::Imm(0)));
    } else {
        out.push(alu(AluOp::Add, Reg::R9, Src::Reg(Reg::R8)));
        out.push(alu(AluOp::Sub, Reg::R8, Src::Imm(1)));
    }
    out.push(jmp(JmpCond::Ne, Reg::R8, Src::Imm(0), -3));
    if rng.chance(50) {
        // Use the sum as a bounded stack index.
        out.push(alu(
            AluOp::And,
            Reg::R9,
            Src::Imm(if m == Mutation::Bound { 0x3ff } else { 0x3f }),
        ));
        out.push(mov(Reg::R4, Src::Reg(Reg::FP)));
        out.push(alu(AluOp::Add, Reg::R4, Src::Imm(-64)));
        out.push(alu(AluOp::Add, Reg::R4, Src::Reg(Reg::R9)));
        out.push(Insn::St {
            size: Size::B,
            dst: Reg::R4,
            off: 0,
            imm: 1,
        });
    }
}

/// A loop bounded only by `may_goto`: each round moves a value the
/// verifier cannot bound by counting (it widens it, which lets the loop
/// converge) and stores it masked on the stack; the offset mutation moves
/// the store out of the frame. (The value is not used as an offset: that
/// makes it precise, and then neither verifier converges before its
/// instruction limit.)
fn may_goto_loop(rng: &mut Rng, m: Mutation, out: &mut Vec<Insn>) {
    let step = rng.pick(&[1, 3, 8]);
    let off = if m == Mutation::Offset { 8 } else { -64 };
    let body = [
        alu(AluOp::Add, Reg::R9, Src::Imm(step)),
        mov(Reg::R4, Src::Reg(Reg::R9)),
        alu(AluOp::And, Reg::R4, Src::Imm(0x3f)),
        stx(Size::DW, Reg::FP, Reg::R4, off),
    ];
    out.push(mov(Reg::R9, Src::Imm(rng.range(0, 3) as i32)));
    out.push(Insn::MayGoto {
        off: body.len() as i16 + 1,
    });
    out.extend(body);
    out.push(Insn::Ja {
        off: -(body.len() as i32) - 2,
        long: false,
    });
}

fn ctx_block(rng: &mut Rng, ty: ProgType, m: Mutation, out: &mut Vec<Insn>) {
    let (off, size) = match ty {
        ProgType::Xdp => (rng.pick(&[0i16, 4, 12, 16]), Size::W),
        _ => {
            let f = rng.pick(&[0i16, 4, 8, 16, 32, 36, 40, 48, 52, 68]);
            (f, rng.pick(&[Size::B, Size::H, Size::W]))
        }
    };
    let off = if m == Mutation::Offset {
        rng.pick(&[-4, 200, 1000, 76, 144, 3])
    } else {
        off
    };
    out.push(ldx(size, Reg::R2, Reg::R6, off));
    if rng.chance(30) && ty == ProgType::SocketFilter {
        // cb[] is writable.
        out.push(stx(
            Size::W,
            Reg::R6,
            Reg::R2,
            if m == Mutation::Offset { 8 } else { 48 },
        ));
    }
}

fn helper_block(rng: &mut Rng, m: Mutation, out: &mut Vec<Insn>) {
    match rng.below(3) {
        0 => {
            out.push(Insn::Call(CallTarget::Helper(7))); // get_prandom_u32
            out.push(alu(AluOp::Add, Reg::R7, Src::Reg(Reg::R0)));
        }
        1 => {
            // probe-free helper with a stack buffer: strtol-less trace_printk
            out.push(mov(Reg::R1, Src::Reg(Reg::FP)));
            out.push(alu(AluOp::Add, Reg::R1, Src::Imm(-16)));
            out.push(Insn::St {
                size: Size::DW,
                dst: Reg::FP,
                off: -16,
                imm: 0x0a_6968,
            });
            let n = if m == Mutation::Offset { 24 } else { 8 };
            out.push(mov(Reg::R2, Src::Imm(n)));
            out.push(Insn::Call(CallTarget::Helper(6)));
        }
        _ => {
            // map_update_elem(map, key, value, 0)
            out.push(Insn::St {
                size: Size::W,
                dst: Reg::FP,
                off: -8,
                imm: 1,
            });
            out.push(Insn::Lddw {
                dst: Reg::R1,
                src: LddwSrc::MapIdx,
                imm: 0,
            });
            out.push(Insn::LddwHigh);
            out.push(mov(Reg::R2, Src::Reg(Reg::FP)));
            out.push(alu(AluOp::Add, Reg::R2, Src::Imm(-8)));
            if m == Mutation::HelperArg {
                out.push(mov(Reg::R3, Src::Imm(8)));
            } else {
                out.push(mov(Reg::R3, Src::Reg(Reg::FP)));
                out.push(alu(AluOp::Add, Reg::R3, Src::Imm(-128)));
            }
            out.push(mov(Reg::R4, Src::Imm(0)));
            out.push(Insn::Call(CallTarget::Helper(2)));
        }
    }
}

// ---- the comparison ---------------------------------------------------

#[derive(Default)]
struct Tally {
    kernel_time: std::time::Duration,
    bpfc_time: std::time::Duration,
    total: u32,
    agree: u32,
    both_accept: u32,
    unsound: Vec<String>,
    strict: Vec<String>,
}

impl Tally {
    fn compare(&mut self, what: &str, kernel: Result<(), String>, bpfc: Result<(), String>) {
        self.total += 1;
        match (&kernel, &bpfc) {
            (Ok(()), Ok(())) => {
                self.agree += 1;
                self.both_accept += 1;
            }
            (Err(_), Err(_)) => self.agree += 1,
            (Err(k), Ok(())) => self.unsound.push(format!("  UNSOUND {what}: kernel: {k}")),
            (Ok(()), Err(b)) => self.strict.push(format!("  STRICT  {what}: bpfc: {b}")),
        }
    }
}

fn kernel_available() -> bool {
    kernel::available()
}

#[test]
fn verdicts_match_the_running_kernel() {
    if !kernel_available() {
        bpfc_testsuite::skip(
            "verifier_kernel",
            "cannot load BPF programs (needs root with CAP_BPF)",
        );
        return;
    }
    let map = create_map().expect("an array map");
    let fd = map.fd().as_raw_fd();
    let mut t = Tally::default();
    let base: u64 = std::env::var("BPFC_VERIFIER_KERNEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let n: u64 = std::env::var("BPFC_VERIFIER_KERNEL_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150);
    // The differential generator's programs, as syscall programs, with
    // its maps.
    let defs = gen_maps();
    let gen_maps: Vec<KernelMap> = defs
        .iter()
        .map(|d| kernel::map_create(d).expect("the generator's maps"))
        .collect();
    let gen_fds: Vec<i32> = gen_maps.iter().map(|m| m.fd().as_raw_fd()).collect();
    for i in 0..n {
        let g = gen::generate(gen::case_seed(base, i));
        let t0 = std::time::Instant::now();
        let k = kernel_load(
            &with_fds(&g.insns, &gen_fds),
            ProgType::Syscall,
            BPF_F_SLEEPABLE,
        );
        let t1 = std::time::Instant::now();
        let b = bpfc_verify_with(&g.insns, ProgType::Syscall, true, &defs);
        t.kernel_time += t1 - t0;
        t.bpfc_time += t1.elapsed();
        t.compare(&format!("gen seed {:#x}", g.seed), k, b);
    }
    // Verifier-shaped programs and their mutations.
    let mut rng = Rng::new(base);
    for i in 0..n * 3 {
        let ty = rng.pick(&[ProgType::SocketFilter, ProgType::Xdp, ProgType::SchedCls]);
        let m = MUTATIONS[(i % MUTATIONS.len() as u64) as usize];
        let seed = rng.next_u64();
        let mut r = Rng::new(seed);
        let insns = shaped(&mut r, ty, m);
        let t0 = std::time::Instant::now();
        let k = kernel_load(&with_fd(&insns, fd), ty, 0);
        let t1 = std::time::Instant::now();
        let b = bpfc_verify(&insns, ty, false);
        t.kernel_time += t1 - t0;
        t.bpfc_time += t1.elapsed();
        t.compare(&format!("shaped {} {m:?} seed {seed:#x}", ty.name()), k, b);
    }
    drop(map);
    for l in t.unsound.iter().chain(&t.strict) {
        println!("{l}");
    }
    let differ = t.total - t.agree;
    println!(
        "{} agree ({} accepted, {} rejected by both), {differ} differ ({} unsound, {} too strict) of {}",
        t.agree,
        t.both_accept,
        t.agree - t.both_accept,
        t.unsound.len(),
        t.strict.len(),
        t.total
    );
    println!(
        "time: kernel BPF_PROG_LOAD {:.1} ms, bpfc {:.1} ms",
        t.kernel_time.as_secs_f64() * 1e3,
        t.bpfc_time.as_secs_f64() * 1e3
    );
    assert!(
        t.unsound.is_empty(),
        "bpfc accepted programs the kernel rejects"
    );
}

/// Every corpus program of a modelled type that both verifiers accept,
/// loaded without BTF (programs with BTF-typed global functions or
/// callbacks then fail in the kernel and are left out): bpfc must process
/// the same number of instructions as the kernel for nearly all of them.
#[test]
fn processed_instructions_match_the_kernel() {
    if !kernel_available() {
        bpfc_testsuite::skip(
            "verifier_kernel",
            "cannot load BPF programs (needs root with CAP_BPF)",
        );
        return;
    }
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/verifier");
    let mut objects: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "o"))
        .collect();
    objects.sort();
    let (mut same, mut differ) = (0u32, Vec::new());
    for path in &objects {
        let bytes = std::fs::read(path).unwrap();
        let Ok(obj) = Object::parse(&bytes) else {
            continue;
        };
        for p in &obj.programs {
            let kind = loader::classify(p.section.trim_start_matches('?'));
            let ty = kind.prog_type;
            let Some(kty) = kernel::prog_type_number(ty) else {
                continue;
            };
            if !progtype::supported(ty) {
                continue;
            }
            let mut opts = Options::new(ty);
            opts.attach_type = kind.attach_type.map(str::to_string);
            opts.sleepable = kind.sleepable || ty == ProgType::Syscall;
            let fi: Vec<(usize, u32)> = p.func_info.iter().map(|f| (f.pc, f.type_id)).collect();
            let input = Input {
                insns: &p.insns,
                maps: &obj.maps,
                btf: obj.btf.as_ref(),
                func_info: &fi,
                endian: obj.endian,
            };
            let Ok(v) = verifier::verify(&input, &opts) else {
                continue;
            };
            let Ok(maps) = KernelMaps::for_program(&obj, &p.insns) else {
                continue;
            };
            let spec = LoadSpec {
                prog_type: kty,
                expected_attach_type: kind.attach_type.map_or(0, kernel::attach_type_number),
                flags: if opts.sleepable { BPF_F_SLEEPABLE } else { 0 },
                log_level: 4,
                gpl: true,
            };
            let k = kernel::prog_load(&maps.patch(&p.insns), &spec);
            let (true, Some(kp)) = (k.accepted, k.processed) else {
                continue;
            };
            if kp == v.stats.insns_processed {
                same += 1;
            } else {
                differ.push(format!(
                    "  {}:{}: bpfc {}, kernel {kp}",
                    path.file_name().unwrap().to_string_lossy(),
                    p.name,
                    v.stats.insns_processed
                ));
            }
        }
    }
    for l in &differ {
        println!("{l}");
    }
    let total = same as usize + differ.len();
    println!(
        "processed instructions equal the kernel's for {same} of {total} programs both accept"
    );
    assert!(total > 0);
    assert!(
        same as f64 >= 0.98 * total as f64,
        "processed counts differ from the kernel's for {} of {total}",
        differ.len()
    );
}

/// Print one shaped program and both verdicts:
/// `BPFC_SHAPED=socket_filter:NullCheck:0x1234 cargo test --test verifier_kernel -- --ignored show_shaped`.
#[test]
#[ignore]
fn show_shaped() {
    let Ok(spec) = std::env::var("BPFC_SHAPED") else {
        return;
    };
    let mut parts = spec.split(':');
    let ty = bpfc_compiler::progtype::by_name(parts.next().unwrap()).unwrap();
    let m = match parts.next().unwrap() {
        "Offset" => Mutation::Offset,
        "NullCheck" => Mutation::NullCheck,
        "Unbounded" => Mutation::Unbounded,
        "Uninit" => Mutation::Uninit,
        "Bound" => Mutation::Bound,
        "HelperArg" => Mutation::HelperArg,
        _ => Mutation::None,
    };
    let seed = u64::from_str_radix(parts.next().unwrap().trim_start_matches("0x"), 16).unwrap();
    let insns = shaped(&mut Rng::new(seed), ty, m);
    print!(
        "{}",
        bpfc_compiler::disasm::disassemble(&insns, bpfc_compiler::disasm::Syntax::Kernel)
    );
    let map = create_map().unwrap();
    println!(
        "kernel: {:?}",
        kernel_load(&with_fd(&insns, map.fd().as_raw_fd()), ty, 0)
    );
    let maps = [bpfc_map()];
    let mut opts = Options::new(ty);
    opts.log_level = 2;
    let input = Input {
        insns: &insns,
        maps: &maps,
        btf: None,
        func_info: &[],
        endian: Endian::Little,
    };
    match verifier::verify(&input, &opts) {
        Ok(v) => println!("bpfc: accepted\n{}", v.log),
        Err(r) => println!("bpfc: {}\n{}", r.message, r.log),
    }
}

/// Direct packet access of each `__sk_buff` program type: read a byte of
/// data..data_end, write one, or load data at all; the kernel and bpfc
/// must give the same verdict and the same message (lwt_in/lwt_out and
/// cgroup_skb read only, lwt_xmit and tc also write, socket filters have
/// no data pointer).
#[test]
fn packet_access_by_skb_program_type_matches_the_kernel() {
    if !kernel_available() {
        bpfc_testsuite::skip(
            "verifier_kernel",
            "cannot load BPF programs (needs root with CAP_BPF)",
        );
        return;
    }
    let mut differ = Vec::new();
    let mut verdicts = Vec::new();
    for ty in [
        ProgType::LwtIn,
        ProgType::LwtOut,
        ProgType::LwtXmit,
        ProgType::SchedCls,
        ProgType::CgroupSkb,
        ProgType::SocketFilter,
    ] {
        for write in [false, true] {
            // r2 = skb->data; r3 = skb->data_end; if r2 + 1 > r3 goto out;
            // read or write *(u8 *)r2; out: r0 = 0; exit
            let access = if write {
                Insn::St {
                    size: Size::B,
                    dst: Reg::R2,
                    off: 0,
                    imm: 7,
                }
            } else {
                ldx(Size::B, Reg::R0, Reg::R2, 0)
            };
            let insns = vec![
                ldx(Size::W, Reg::R2, Reg::R1, 76),
                ldx(Size::W, Reg::R3, Reg::R1, 80),
                mov(Reg::R4, Src::Reg(Reg::R2)),
                alu(AluOp::Add, Reg::R4, Src::Imm(1)),
                jmp(JmpCond::Gt, Reg::R4, Src::Reg(Reg::R3), 1),
                access,
                mov(Reg::R0, Src::Imm(0)),
                Insn::Exit,
            ];
            let k = kernel_load(&insns, ty, 0);
            let b = bpfc_verify(&insns, ty, false);
            verdicts.push((ty, write, k.is_ok()));
            if k != b {
                differ.push(format!(
                    "{} {}: kernel {k:?}, bpfc {b:?}",
                    ty.name(),
                    if write { "write" } else { "read" }
                ));
            }
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n"));
    // The cases tell the types apart (a read-only type and a writable one).
    assert!(verdicts.contains(&(ProgType::LwtIn, true, false)));
    assert!(verdicts.contains(&(ProgType::LwtXmit, true, true)));
}
