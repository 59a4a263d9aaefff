//! `bpfc run` executes CO-RE results: the programs of core_run.o return what
//! their relocations resolved to (or read their input through the relocated
//! layout). Both engines must agree, and `--btf core_run_target.o` must give
//! the target's values, worked out here from `bpftool btf dump` of the two
//! objects rather than written into the test.

use bpfc_testsuite::bpftool::{self, RawBtf};
use bpfc_testsuite::elf_fixture_dir;
use std::path::PathBuf;
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    elf_fixture_dir().join(name)
}

/// `retval` of `bpfc run --json` with these extra arguments.
fn run(engine: &str, program: &str, extra: &[&str]) -> u64 {
    let out = Command::new(env!("CARGO_BIN_EXE_bpfc"))
        .args(["run", "--json", "--engine", engine, "--program", program])
        .args(extra)
        .arg(fixture("core_run.o"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{program} {extra:?}: {err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["retval"].as_u64().unwrap()
}

/// The same result from the interpreter and the JIT.
fn run_both(program: &str, extra: &[&str]) -> u64 {
    let i = run("interp", program, extra);
    let j = run("jit", program, extra);
    assert_eq!(i, j, "{program} {extra:?}: interp and jit differ");
    i
}

/// (offset, size) of member `m` of struct run_ctx, or None.
fn field(b: &RawBtf, m: &str) -> Option<(u64, u64)> {
    let ctx = b.find("STRUCT", "run_ctx").unwrap();
    b.member(ctx, m).map(|(t, bits)| (bits / 8, b.size_of(t)))
}

/// Whether every member of local struct `name` is in the target's struct of
/// that name with the same size (how core_run.c's two structs differ).
fn members_agree(local: &RawBtf, target: &RawBtf, name: &str) -> bool {
    let (Some(l), Some(t)) = (local.find("STRUCT", name), target.find("STRUCT", name)) else {
        return false;
    };
    local.get(l).members.iter().all(|(m, a)| {
        let lsize = local.size_of(a["type_id"].parse().unwrap());
        target
            .member(t, m)
            .is_some_and(|(tt, _)| target.size_of(tt) == lsize)
    })
}

/// What core_values returns for a view of the types (see core_run.c).
fn values(view: &RawBtf, local: &RawBtf) -> u64 {
    let (off_flags, size_flags) = field(view, "flags").unwrap();
    let (off_b, _) = field(view, "b").unwrap();
    let mode = view.find("ENUM", "run_mode").unwrap();
    let mode_b = view.enum_value(mode, "MODE_B").unwrap() as u64;
    let bits = field(view, "p").is_some() as u64
        | (members_agree(local, view, "run_shape") as u64) << 1
        | (members_agree(local, view, "run_nomatch") as u64) << 2
        | (view.find("STRUCT", "run_local_only").is_some() as u64) << 3
        | mode_b << 4;
    off_flags | size_flags << 8 | off_b << 16 | bits << 24
}

fn le(mem: &[u8], off: u64, size: u64) -> u64 {
    (0..size).fold(0, |v, i| v | (mem[(off + i) as usize] as u64) << (8 * i))
}

#[test]
fn core_results_run_in_both_engines_and_follow_the_target_btf() {
    if !bpftool::available("core_results_run_in_both_engines_and_follow_the_target_btf") {
        return;
    }
    let local = bpftool::dump(&fixture("core_run.o"));
    let target = bpftool::dump(&fixture("core_run_target.o"));
    let btf = fixture("core_run_target.o");
    let btf_arg = ["--btf", btf.to_str().unwrap()];

    let own = run_both("core_values", &[]);
    let moved = run_both("core_values", &btf_arg);
    assert_eq!(own, values(&local, &local), "as compiled");
    assert_eq!(moved, values(&target, &local), "against core_run_target.o");
    assert_ne!(own, moved);

    let lid = local.find("STRUCT", "run_ctx").unwrap() as u64;
    let tid = target.find("STRUCT", "run_ctx").unwrap() as u64;
    assert_eq!(run_both("core_ids", &[]), lid | lid << 16);
    assert_eq!(run_both("core_ids", &btf_arg), lid | tid << 16);

    // core_read returns ctx->flags + ctx->b read from --mem.
    let mem: Vec<u8> = (0..64u32).map(|i| (i * 37 + 11) as u8).collect();
    let mem_path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("core_run.mem");
    std::fs::write(&mem_path, &mem).unwrap();
    let mem_arg = ["--mem", mem_path.to_str().unwrap()];
    let expect = |view: &RawBtf| {
        let (fo, fs) = field(view, "flags").unwrap();
        let (bo, bs) = field(view, "b").unwrap();
        le(&mem, fo, fs).wrapping_add(le(&mem, bo, bs)) & 0xffff_ffff
    };
    assert_eq!(run_both("core_read", &mem_arg), expect(&local));
    let with_target: Vec<&str> = mem_arg.iter().chain(&btf_arg).copied().collect();
    assert_eq!(run_both("core_read", &with_target), expect(&target));
}
