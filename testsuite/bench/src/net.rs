//! bpfc-bench-net: nanoseconds per packet of network programs, bpfc's
//! engines beside the running kernel's `BPF_PROG_TEST_RUN` with `repeat`
//! in the same run: an XDP parser and counter (fixtures/net/xdp_parse.c:
//! header walk, array and hash map updates) and a tc program
//! (fixtures/net/tc_nat.c: address and port rewrite with
//! bpf_skb_store_bytes and l3/l4 checksum helpers), on one IPv4 TCP frame.
//!
//! Method: like the kernel's test run, one setup, then the program runs
//! `REPEAT` times on the same packet and the average is taken; that is
//! done `ROUNDS` times, alternating bpfc and the kernel, and the median of
//! the rounds is reported. The kernel column needs root (and cc with
//! libbpf); without it the column says why.
//!
//! Usage: `bpfc-bench-net` (release build: `cargo run --release -p
//! bpfc-bench --bin bpfc-bench-net`).

use bpfc_compiler::codegen::{jit::JitProgram, CodegenOptions};
use bpfc_compiler::interp;
use bpfc_compiler::progtype::convert;
use bpfc_runtime::ExecContext;
use bpfc_testsuite::net::{self, Input};
use std::path::PathBuf;

const REPEAT: u32 = 100_000;
const ROUNDS: usize = 7;

fn frame() -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    let mut ip = vec![
        0x45, 0, 0, 60, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 1, 0, 7,
    ];
    let mut s: u32 = ip
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]) as u32)
        .sum();
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    ip[10..12].copy_from_slice(&(!(s as u16)).to_be_bytes());
    f.extend(ip);
    f.extend([
        0x30, 0x39, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ]);
    f.extend([0xaa; 20]);
    f
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Nanoseconds per run of `repeat` runs of one test run in `engine`.
fn bpfc_ns(l: &net::Loaded, jit: Option<&JitProgram>, data: &[u8]) -> f64 {
    let n = convert::net_setup(l.ty, data, None)
        .expect("network type")
        .expect("frame accepted");
    let mut ctx = ExecContext::new();
    let opts = interp::Options::default();
    let out = bpfc_runtime::net::test_run(n, &mut ctx, REPEAT, |mem, ctx| match jit {
        Some(j) => j.run(mem, ctx).map_err(|e| e.to_string()),
        None => interp::run_bound(&l.bound, mem, ctx, &opts).map_err(|e| e.to_string()),
    })
    .expect("the program runs");
    out.duration as f64
}

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/net");
    let data = frame();
    let driver = net::kernel_driver("bpfc-bench-net");
    println!("| program | bpfc JIT | bpfc JIT (checked) | bpfc interpreter | kernel test_run | JIT / kernel |");
    println!("|---|---|---|---|---|---|");
    for prog in ["xdp_parse", "tc_nat"] {
        let obj = dir.join(format!("{prog}.o"));
        let l = net::load(&obj, prog).expect("fixture loads");
        let fast = JitProgram::from_bound(
            l.bound.clone(),
            &CodegenOptions {
                checked: false,
                ..Default::default()
            },
            None,
        )
        .expect("compiles");
        let checked = JitProgram::from_bound(l.bound.clone(), &CodegenOptions::default(), None)
            .expect("compiles");
        let (mut jit, mut chk, mut kern) = (Vec::new(), Vec::new(), Vec::new());
        let mut kernel_err = None;
        for round in 0..ROUNDS {
            eprintln!("{prog}: round {}/{ROUNDS}", round + 1);
            jit.push(bpfc_ns(&l, Some(&fast), &data));
            chk.push(bpfc_ns(&l, Some(&checked), &data));
            if let Some(d) = &driver {
                let inputs = [Input {
                    data: data.clone(),
                    ctx: None,
                }];
                match net::run_kernel(d, &obj, prog, &inputs, Some(REPEAT)) {
                    Ok((_, Some(ns))) => kern.push(ns as f64),
                    Ok((_, None)) => kernel_err = Some("no duration reported".to_string()),
                    Err(e) => kernel_err = Some(e),
                }
            }
        }
        // The interpreter is slower: fewer rounds of the same repeat count.
        let interp = median((0..3).map(|_| bpfc_ns(&l, None, &data)).collect());
        let (jit, chk) = (median(jit), median(chk));
        let (kcell, ratio) = if kern.is_empty() {
            let why = kernel_err.unwrap_or_else(|| "not root, or no cc/libbpf".into());
            (format!("n/a ({why})"), "n/a".to_string())
        } else {
            let k = median(kern);
            (format!("{k:.0} ns"), format!("{:.2}", jit / k))
        };
        println!("| {prog} | {jit:.0} ns | {chk:.0} ns | {interp:.0} ns | {kcell} | {ratio} |");
    }
}
