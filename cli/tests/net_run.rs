//! `bpfc run` of network programs with the kernel's test-run semantics
//! (data_in/data_out/ctx_in/ctx_out), and context accesses a program type
//! forbids refused at load in every engine and by `bpfc compile`, naming
//! the instruction and the field.

mod common;

use common::{bpfc, raw, scratch, scratch_file as tmp, stderr as err, success};

/// Ethernet + IPv4 + UDP to port 53.
fn frame() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend([0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    f.extend([
        0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ]);
    f.extend([0x30, 0x39, 0, 53, 0, 8, 0, 0]);
    f
}

#[test]
fn forbidden_context_accesses_are_load_errors_naming_the_field() {
    let data = tmp("frame", &frame());
    let cases = [
        (
            "write-len",
            "stw [%r1+0], 5\nmov %r0, 0\nexit\n",
            "write of field len of __sk_buff",
        ),
        (
            "narrow-data",
            "ldxh %r2, [%r1+76]\nmov %r0, 0\nexit\n",
            "2-byte read of field data of __sk_buff",
        ),
        (
            "past-end",
            "ldxw %r2, [%r1+196]\nmov %r0, 0\nexit\n",
            "__sk_buff at offset 196: no field there",
        ),
    ];
    for (name, src, field) in cases {
        let p = raw(name, src);
        for engine in ["jit", "interp"] {
            let o = bpfc(&[
                "run",
                &p,
                "--type",
                "sched_cls",
                "--engine",
                engine,
                "--data-in",
                &data,
            ]);
            assert_eq!(o.status.code(), Some(1), "{name} {engine}");
            let e = err(&o);
            assert!(
                e.contains("instruction 0") && e.contains(field),
                "{name} {engine}: {e}"
            );
        }
        let out = tmp(&format!("{name}.o"), b"");
        let o = bpfc(&["compile", &p, "--type", "sched_cls", "-o", &out]);
        assert_eq!(o.status.code(), Some(1), "{name} compile");
        assert!(err(&o).contains(field), "{name} compile: {}", err(&o));
    }
}

#[test]
fn xdp_run_reports_data_out_and_refuses_what_the_kernel_refuses() {
    // Pop the Ethernet header, then XDP_TX: data_out is the IP packet.
    let p = raw("pop", "mov %r2, 14\ncall 44\nmov %r0, 3\nexit\n");
    let data = tmp("frame2", &frame());
    let out_file = scratch("out");
    // `bpfc run PROG --type xdp --json` on the frame, then `more`.
    let xdp_json = |prog: &str, engine: &str, more: &[&str]| -> serde_json::Value {
        let args = ["run", prog, "--type", "xdp", "--engine", engine];
        let o = bpfc(&[&args[..], &["--data-in", &data, "--json"], more].concat());
        serde_json::from_str(&success(&o)).unwrap()
    };
    for engine in ["jit", "interp"] {
        let v = xdp_json(&p, engine, &["--data-out", &out_file]);
        assert_eq!(v["retval"], 3);
        let want: String = frame()[14..].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(v["data_out"], want.as_str());
        assert_eq!(std::fs::read(&out_file).unwrap(), frame()[14..].to_vec());
    }
    // bpf_redirect: XDP_REDIRECT, the target port in the JSON.
    let r = raw("redir", "mov %r1, 1\nmov %r2, 0\ncall 23\nexit\n");
    for engine in ["jit", "interp"] {
        let v = xdp_json(&r, engine, &[]);
        assert_eq!(
            (v["retval"].as_u64(), v["redirect"].as_u64()),
            (Some(4), Some(1))
        );
    }
    // Shorter than an Ethernet header: refused, as by the kernel.
    let short = tmp("short", &[0; 13]);
    let o = bpfc(&["run", &p, "--type", "xdp", "--data-in", &short]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("data_in of 13 bytes"), "{}", err(&o));
    // A network program without a packet.
    let o = bpfc(&["run", &p, "--type", "xdp"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("--data-in"), "{}", err(&o));
}
