//! The kernel syntax of `bpfc disasm` against the kernel itself:
//! `fixtures/disasm/kernel.o` is loaded into the running kernel with
//! bpftool, bpftool prints the instructions the kernel kept (`prog dump
//! xlated`, the kernel's own instruction printer) and writes them raw to a
//! file, and bpfc's kernel syntax must print that file line for line the
//! same. Needs root, bpftool and bpffs at /sys/fs/bpf (`.ci/run`
//! mounts it); the pinned program is removed again.

use bpfc_testsuite::{skip, tool_or_skip, workspace_root};
use std::path::{Path, PathBuf};
use std::process::Command;

const TEST: &str = "disasm_kernel";

/// A pinned program, unpinned (and so unloaded) on drop.
struct Pinned(PathBuf);

impl Drop for Pinned {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn bpffs_mounted() -> bool {
    std::fs::read_to_string("/proc/mounts").is_ok_and(|m| {
        m.lines()
            .any(|l| l.split(' ').nth(1) == Some("/sys/fs/bpf") && l.contains(" bpf "))
    })
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command starts");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The instruction lines of a listing (`  12: (b7) r0 = 0`), without the
/// source and function lines bpftool adds from BTF.
fn insn_lines(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter(|l| {
            l.trim_start()
                .split_once(": ")
                .is_some_and(|(pc, _)| pc.parse::<usize>().is_ok())
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn kernel_syntax_matches_bpftool_on_what_the_kernel_kept() {
    if !tool_or_skip(TEST, "bpftool", "version") {
        return;
    }
    if !bpffs_mounted() {
        return skip(TEST, "bpffs is not mounted at /sys/fs/bpf");
    }
    let obj = workspace_root().join("testsuite/fixtures/disasm/kernel.o");
    let pin = Pinned(PathBuf::from(format!(
        "/sys/fs/bpf/bpfc-test-{}",
        std::process::id()
    )));
    let load = Command::new("bpftool")
        .args(["prog", "load"])
        .arg(&obj)
        .arg(&pin.0)
        .output()
        .expect("bpftool starts");
    if !load.status.success() {
        // Not root, or no bpf() syscall here.
        let why = String::from_utf8_lossy(&load.stderr);
        return skip(
            TEST,
            &format!("the kernel refused the program: {}", why.trim()),
        );
    }
    let raw = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("kernel-xlated-{}.bin", std::process::id()));
    let pinned = pin.0.to_str().expect("utf-8 path");
    run(Command::new("bpftool")
        .args(["prog", "dump", "xlated", "pinned", pinned, "file"])
        .arg(&raw));
    let want = insn_lines(&run(
        Command::new("bpftool").args(["prog", "dump", "xlated", "pinned", pinned])
    ));
    drop(pin);
    let got = insn_lines(&disasm(&raw));
    let _ = std::fs::remove_file(&raw);
    assert!(
        want.len() > 40,
        "bpftool printed {} instructions",
        want.len()
    );
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(g, w);
    }
    assert_eq!(got.len(), want.len());
}

fn disasm(raw: &Path) -> String {
    let bytes = std::fs::read(raw).expect("bpftool wrote the dump");
    let insns = bpfc_compiler::isa::decode_unvalidated(&bytes, bpfc_compiler::isa::Endian::Little)
        .expect("the kernel's instructions decode");
    bpfc_compiler::disasm::disassemble(&insns, bpfc_compiler::disasm::Syntax::Kernel)
}
