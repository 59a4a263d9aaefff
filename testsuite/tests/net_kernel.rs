//! Kernel-differential test of network program types: every program of
//! testsuite/fixtures/net runs in the running kernel (`BPF_PROG_TEST_RUN`)
//! and in each bpfc engine on the same generated packets, in the same
//! order; return values, data_out, ctx_out and the maps afterwards must
//! agree. A difference prints the program, the engine and the packet.

use bpfc_testsuite::net::{self, Engine, Input};
use bpfc_testsuite::packets;
use std::path::PathBuf;

/// Packets per program.
const PACKETS: usize = 220;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/net")
}

/// A context for some packets: `__sk_buff` fields a test run accepts, or
/// an `xdp_md` with metadata, for the program's type.
fn ctx_for(ty: &str, i: usize, len: usize) -> Option<Vec<u8>> {
    if i % 5 != 4 {
        return None;
    }
    let put =
        |c: &mut Vec<u8>, off: usize, v: u32| c[off..off + 4].copy_from_slice(&v.to_ne_bytes());
    if ty == "xdp" {
        let mut c = vec![0u8; 24];
        let meta = [0u32, 4, 8, 32][(i / 5) % 4].min(len as u32);
        put(&mut c, 0, meta - meta % 4);
        put(&mut c, 4, len as u32);
        if i % 10 == 9 {
            put(&mut c, 12, 1);
        }
        return Some(c);
    }
    let mut c = vec![0u8; 192];
    put(&mut c, 8, 0x1234_5678 ^ i as u32);
    put(&mut c, 32, i as u32);
    put(&mut c, 48, 0xdead_beef);
    put(&mut c, 64, i as u32 * 7);
    c[152..160].copy_from_slice(&(1_000_000u64 * i as u64).to_ne_bytes());
    if i % 10 == 9 {
        put(&mut c, 160, len as u32 + 100);
        put(&mut c, 164, 3);
        put(&mut c, 176, 1400);
    }
    Some(c)
}

fn inputs(ty: &str, seed: u64) -> (Vec<Input>, Vec<String>) {
    let frames = packets::frames(seed, PACKETS);
    let mut inputs = Vec::new();
    let mut what = Vec::new();
    for (i, f) in frames.into_iter().enumerate() {
        inputs.push(Input {
            ctx: ctx_for(ty, i, f.data.len()),
            data: f.data,
        });
        what.push(f.what);
    }
    // Inputs a test run refuses: too short, a bad context.
    inputs.push(Input {
        data: vec![0; 13],
        ctx: None,
    });
    what.push("13-byte frame".into());
    let bad = if ty == "xdp" {
        let mut c = vec![0u8; 24];
        c[4] = 60;
        c[20] = 1;
        c
    } else {
        let mut c = vec![0u8; 192];
        c[0] = 1;
        c
    };
    inputs.push(Input {
        data: vec![0xff; 60],
        ctx: Some(bad),
    });
    what.push("context with a field the test run refuses".into());
    (inputs, what)
}

/// (object, program, type family) of every fixture program.
const PROGRAMS: &[(&str, &str, &str)] = &[
    ("xdp_parse", "xdp_parse", "xdp"),
    ("xdp_adjust_head", "xdp_adjust_head", "xdp"),
    ("xdp_adjust_tail", "xdp_adjust_tail", "xdp"),
    ("xdp_meta", "xdp_meta", "xdp"),
    ("xdp_tx_swap", "xdp_tx_swap", "xdp"),
    ("xdp_load_store", "xdp_load_store", "xdp"),
    ("xdp_ctx", "xdp_ctx", "xdp"),
    ("xdp_lpm", "xdp_lpm", "xdp"),
    ("tc_fields", "tc_fields", "skb"),
    ("tc_nat", "tc_nat", "skb"),
    ("tc_load_bytes", "tc_load_bytes", "skb"),
    ("tc_direct", "tc_direct", "skb"),
    ("tc_ldabs", "tc_ldabs", "skb"),
    ("tc_hash", "tc_hash", "skb"),
    ("tc_csum_diff", "tc_csum_diff", "skb"),
    ("sf_ldabs", "sf_ldabs", "skb"),
    ("sf_load_bytes", "sf_load_bytes", "skb"),
    ("sf_ctx", "sf_ctx", "skb"),
    ("cg_skb", "cg_skb", "skb"),
    ("tc_reshape", "tc_reshape", "skb"),
    ("tc_vlan", "tc_vlan", "skb"),
    ("tc_adjust_room", "tc_adjust_room", "skb"),
    ("xdp_redirect", "xdp_redirect", "xdp"),
    ("tc_redirect", "tc_redirect", "skb"),
    ("lwt", "lwt_in_prog", "skb"),
    ("lwt", "lwt_out_prog", "skb"),
    ("lwt", "lwt_xmit_prog", "skb"),
];

/// Map elements written before the packets, by program: xdp_redirect's
/// device map gets the loopback port in some slots.
fn fills(prog: &str) -> Vec<net::Fill> {
    match prog {
        "xdp_redirect" => [0u32, 2, 5]
            .iter()
            .map(|k| {
                (
                    "ports".to_string(),
                    k.to_ne_bytes().to_vec(),
                    1u32.to_ne_bytes().to_vec(),
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn network_programs_agree_with_the_kernel() {
    let test = "network_programs_agree_with_the_kernel";
    let Some(driver) = net::kernel_driver(test) else {
        return;
    };
    let mut failures = Vec::new();
    for (seed, &(file, prog, ty)) in PROGRAMS.iter().enumerate() {
        let obj = fixtures().join(format!("{file}.o"));
        let (inputs, what) = inputs(ty, seed as u64 + 1);
        let (kernel, _) =
            match net::run_kernel_with(&driver, &obj, prog, &fills(prog), &inputs, None) {
                Ok(k) => k,
                Err(e) => {
                    failures.push(format!("{file}/{prog}: kernel: {e}"));
                    continue;
                }
            };
        for engine in Engine::ALL {
            let loaded = match net::load(&obj, prog) {
                Ok(l) => l,
                Err(e) => {
                    failures.push(format!("{file}/{prog}: {e}"));
                    break;
                }
            };
            match net::run_bpfc_with(&loaded, engine, &fills(prog), &inputs) {
                Ok(r) => {
                    if let Some(d) = net::diff(&inputs, &what, &kernel, &r) {
                        failures.push(format!("{file}/{prog} ({}): {d}", engine.name()));
                    }
                }
                Err(e) => failures.push(format!("{file}/{prog} ({}): {e}", engine.name())),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
