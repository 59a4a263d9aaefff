//! The fixtures run by C and Rust hosts, linked (AOT) or opened at run
//! time (JIT), against `bpfc run` and against each other.

use crate::common::host::{
    bpfc_run_to_files, build_host, build_jit_host, cc_tmpdir, check_host_output, compile, fixtures,
    harness, hex, include_dir, lcg_ctx, ok, packet_ctx, program_inputs, run, tmpdir,
};
use bpfc_compiler::loader::Object;
use bpfc_testsuite::workspace_root;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// How long a run waits for timer callbacks (AOT code's callbacks fire on
/// the runtime's timer thread): the timer fixtures' runs 100 ms.
fn wait_ms(name: &str) -> &'static str {
    if name.starts_with("timer") {
        "100"
    } else {
        "0"
    }
}

/// A host of [`build_host`] (`object` a linked object's name) or
/// [`build_jit_host`] (a `.bpf.o` path) running `prog` on `ctx` and, if
/// any, `packet`.
fn run_host(
    exe: &Path,
    object: &OsStr,
    prog: &str,
    packet: Option<&Path>,
    wait: &str,
    ctx: &[u8],
) -> Output {
    run(
        Command::new(exe)
            .arg(object)
            .arg(prog)
            .args(packet)
            .env("BPFC_HOST_WAIT_MS", wait),
        ctx,
    )
}

/// `bpfc run`'s JSON when it succeeded, and then the host must have too;
/// `None` when it failed, and then the host must have refused the run.
fn both_ran(what: &str, jit: &Output, host: &Output) -> Option<serde_json::Value> {
    let text = String::from_utf8_lossy(&host.stdout);
    if !jit.status.success() {
        // Both refuse or stop the run.
        assert!(
            text.starts_with("error "),
            "{what}: bpfc run failed ({}), the host did not: {text}",
            String::from_utf8_lossy(&jit.stderr)
        );
        eprintln!("{what}: both refuse: {}", text.trim());
        return None;
    }
    assert!(
        host.status.success(),
        "{what}: {text}{}",
        String::from_utf8_lossy(&host.stderr)
    );
    Some(serde_json::from_slice(&jit.stdout).unwrap())
}

#[test]
fn c_host_runs_fixtures_as_bpfc_run() {
    let Some(dir) = cc_tmpdir("c_host_runs_fixtures_as_bpfc_run", "fixtures") else {
        return;
    };
    let (fixtures, names) = fixtures("helpers");
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let (mut compared, mut timers) = (0, 0);
    for name in &names {
        let path = fixtures.join(format!("{name}.o"));
        let obj = Object::parse(&std::fs::read(&path).unwrap()).unwrap();
        let exe = build_host(&dir, &path, name);
        // Timer fixtures: both wait for the callbacks.
        let wait = wait_ms(name);
        for prog in &obj.programs {
            let ctx = lcg_ctx(&mut seed);
            let what = format!("{name} {}", prog.name);
            let args = ["--program", &prog.name, "--wait-ms", wait];
            let (jit, files) = bpfc_run_to_files(&dir, &path, &args, &ctx, None);
            let host = run_host(&exe, name.as_ref(), &prog.name, None, wait, &ctx);
            let Some(v) = both_ran(&what, &jit, &host) else {
                continue;
            };
            let ctx_after = std::fs::read(&files.ctx_out).unwrap();
            let want = [
                format!("retval {:#x}", v["r0"].as_u64().unwrap()),
                format!("ctx {}", hex(&ctx_after)),
            ];
            let text = String::from_utf8_lossy(&host.stdout);
            check_host_output(&what, &text, &want, &files.maps_out);
            compared += 1;
            timers += name.starts_with("timer") as usize;
        }
        let _ = std::fs::remove_file(&exe);
    }
    assert!(compared >= 20, "only {compared} runs compared");
    assert!(timers >= 2, "the timer fixtures did not run in the C host");
}

#[test]
fn c_host_test_runs_network_programs_as_bpfc_run() {
    let test = "c_host_test_runs_network_programs_as_bpfc_run";
    let Some(dir) = cc_tmpdir(test, "net") else {
        return;
    };
    let (fixtures, names) = fixtures("net");
    let frames = bpfc_testsuite::packets::frames(0x5eed, 10);
    // The host's hex of a file: `-` for none or an empty one.
    let hex_or_dash = |p: &Path| -> String {
        let b = std::fs::read(p).unwrap_or_default();
        if b.is_empty() {
            "-".into()
        } else {
            hex(&b)
        }
    };
    let (mut compared, mut refused) = (0, 0);
    for name in &names {
        let path = fixtures.join(format!("{name}.o"));
        let obj = Object::parse(&std::fs::read(&path).unwrap()).unwrap();
        let exe = build_host(&dir, &path, name);
        for prog in &obj.programs {
            for (i, frame) in frames.iter().enumerate() {
                let what = format!("{name} {} frame {i} ({})", prog.name, frame.what);
                let pkt = dir.join("pkt.bin");
                std::fs::write(&pkt, &frame.data).unwrap();
                let ctx = packet_ctx(&prog.section, frame.data.len());
                let args = ["--program", prog.name.as_str()];
                let (jit, files) = bpfc_run_to_files(&dir, &path, &args, &ctx, Some(&pkt));
                let host = run_host(&exe, name.as_ref(), &prog.name, Some(&pkt), "0", &ctx);
                let Some(v) = both_ran(&what, &jit, &host) else {
                    refused += 1;
                    continue;
                };
                let want = [
                    format!("retval {:#x}", v["retval"].as_u64().unwrap()),
                    format!("data {}", hex_or_dash(&files.data_out)),
                    format!("ctx {}", hex_or_dash(&files.ctx_out)),
                ];
                let text = String::from_utf8_lossy(&host.stdout);
                check_host_output(&what, &text, &want, &files.maps_out);
                compared += 1;
            }
        }
        let _ = std::fs::remove_file(&exe);
    }
    assert!(
        compared >= 90 && compared > refused,
        "only {compared} runs compared, {refused} refused"
    );
}

/// Self-describing objects on the other Linux targets, where the Rust
/// runtime library cannot be built here: linked with the C stand-in
/// (`host_standin.c`: array maps and global data from the descriptor) and
/// run under qemu-user; the same as `bpfc run` on x86_64.
#[test]
fn other_targets_run_described_objects_through_a_stand_in() {
    use bpfc_testsuite::aot::{tool_available, AotTarget};
    let dir = tmpdir("standin");
    let (fixtures, _) = fixtures("helpers");
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut runs = 0;
    for target in AotTarget::LINUX {
        if let Err(why) = tool_available(&target) {
            bpfc_testsuite::skip(
                "other_targets_run_described_objects_through_a_stand_in",
                &why,
            );
            continue;
        }
        for name in ["globals", "array_ops"] {
            let path = fixtures.join(format!("{name}.o"));
            let obj = dir.join(format!("{name}-{}.o", target.triple));
            compile(&path, &["--target", target.triple], &obj);
            let exe = dir.join(format!("{name}-{}", target.triple));
            ok(
                run(
                    Command::new(target.cc)
                        .args(["-O1", "-std=c11", "-Wall", "-Werror", "-static"])
                        .arg(format!("-I{}", include_dir().display()))
                        .arg(harness("host_standin.c"))
                        .arg(&obj)
                        .arg(format!("-Wl,--defsym,bpfc_standin_object={name}__object"))
                        .arg("-o")
                        .arg(&exe),
                    b"",
                ),
                "linking the stand-in",
            );
            for _ in 0..4 {
                let ctx: Vec<u8> = (0..8)
                    .flat_map(|_| {
                        seed ^= seed << 13;
                        seed ^= seed >> 7;
                        seed ^= seed << 17;
                        seed.to_le_bytes()
                    })
                    .collect();
                let (jit, files) = bpfc_run_to_files(&dir, &path, &[], &ctx, None);
                let jit = ok(jit, "bpfc run");
                let mut cmd = match target.runner {
                    Some(q) => {
                        let mut c = Command::new(q);
                        if let Some(root) = target.sysroot {
                            c.arg("-L").arg(root);
                        }
                        c.arg(&exe);
                        c
                    }
                    None => Command::new(&exe),
                };
                let text = ok(run(cmd.arg("run"), &ctx), "the stand-in");
                let what = format!("{name} on {}", target.triple);
                let v: serde_json::Value = serde_json::from_str(&jit).unwrap();
                let want = [
                    format!("retval {:#x}", v["r0"].as_u64().unwrap()),
                    format!("ctx {}", hex(&std::fs::read(&files.ctx_out).unwrap())),
                ];
                check_host_output(&what, &text, &want, &files.maps_out);
                runs += 1;
            }
        }
    }
    assert!(
        runs >= 8 || !bpfc_testsuite::require_all(),
        "only {runs} runs"
    );
}

/// The same C host opens each fixture twice, once linked (AOT, `bpfc
/// compile`) and once as the `.bpf.o` file at run time (JIT,
/// `bpfc_object_open_file`), and runs every program on the same input:
/// return values, contexts, packets and map contents must be identical,
/// and so must the refusals.
#[test]
fn c_host_jit_open_file_runs_as_the_linked_object() {
    let test = "c_host_jit_open_file_runs_as_the_linked_object";
    let Some(dir) = cc_tmpdir(test, "jit") else {
        return;
    };
    let jit = build_jit_host(&dir);
    let frames = bpfc_testsuite::packets::frames(0x7a11, 3);
    let mut seed = 0x51ed_2701_aa3c_0f6bu64;
    let (mut same, mut refused) = (0, 0);
    for sub in ["helpers", "net"] {
        let (fixtures, names) = fixtures(sub);
        for name in &names {
            let path = fixtures.join(format!("{name}.o"));
            let obj = Object::parse(&std::fs::read(&path).unwrap()).unwrap();
            let aot = build_host(&dir, &path, name);
            let wait = wait_ms(name);
            for prog in &obj.programs {
                // Network programs run on packets, others on a context.
                let packets = (sub == "net").then_some(&frames[..]);
                let inputs = program_inputs(packets, &prog.section, &mut seed);
                for (i, (frame, ctx)) in inputs.iter().enumerate() {
                    let what = format!("{sub}/{name} {} input {i}", prog.name);
                    let pkt = frame.map(|f| {
                        let p = dir.join("pkt.bin");
                        std::fs::write(&p, &f.data).unwrap();
                        p
                    });
                    let pkt = pkt.as_deref();
                    let a = run_host(&aot, name.as_ref(), &prog.name, pkt, wait, ctx);
                    let j = run_host(&jit, path.as_ref(), &prog.name, pkt, wait, ctx);
                    let (at, jt) = (
                        String::from_utf8_lossy(&a.stdout),
                        String::from_utf8_lossy(&j.stdout),
                    );
                    // Map lines in key order per map, except hash maps,
                    // whose order is the process's own: compare sorted.
                    let sorted = |t: &str| {
                        let mut l: Vec<String> = t.lines().map(str::to_string).collect();
                        l.sort();
                        l
                    };
                    assert_eq!(
                        (a.status.code(), sorted(&at)),
                        (j.status.code(), sorted(&jt)),
                        "{what}: AOT, then JIT{}",
                        String::from_utf8_lossy(&j.stderr)
                    );
                    if a.status.success() {
                        assert!(at.starts_with("retval "), "{what}: {at}");
                        same += 1;
                    } else {
                        assert!(at.starts_with("error "), "{what}: {at}");
                        refused += 1;
                    }
                }
            }
            let _ = std::fs::remove_file(&aot);
        }
    }
    eprintln!("{same} runs identical, {refused} refused by both");
    assert!(
        same >= 40 && same > refused,
        "{same} runs, {refused} refused"
    );
}

/// The Rust side of the one-line switch: a `HostObject` opened from the
/// linked descriptor (`bpfc compile`, put into a shared library this test
/// loads) and one from `bpfc_compiler::host::open_file` on the `.bpf.o`
/// (`open_bytes` on its bytes for some) run every program on the same
/// context: return values, contexts and map contents are identical.
#[test]
fn rust_host_object_is_the_same_from_jit_and_aot() {
    use bpfc_runtime::host::object::HostObject;
    let test = "rust_host_object_is_the_same_from_jit_and_aot";
    let Some(dir) = cc_tmpdir(test, "rust-jit") else {
        return;
    };
    let (fixtures, names) = fixtures("helpers");
    let mut paths: Vec<PathBuf> = names
        .iter()
        .map(|n| fixtures.join(format!("{n}.o")))
        .collect();
    paths.push(workspace_root().join("examples/c-host/counter.bpf.o"));
    let mut seed = 0x0dd_b1a5_e5ca_1ab1u64;
    let (mut runs, mut refused, mut unlinkable) = (0, 0, Vec::new());
    for (k, path) in paths.iter().enumerate() {
        let name = bpfc_compiler::host::object_name(path);
        let obj_o = dir.join(format!("{name}.o"));
        compile(path, &[], &obj_o);
        // A shared library resolves its undefined symbols when loaded, and
        // this test exports none: objects that import the runtime's entry
        // points (tail calls) are left to the C tests.
        let elf = std::fs::read(&obj_o).unwrap();
        let parsed = object::File::parse(&*elf).unwrap();
        use object::{Object as _, ObjectSymbol as _};
        if parsed
            .symbols()
            .any(|s| s.is_undefined() && !s.name().unwrap_or("").is_empty())
        {
            unlinkable.push(name);
            continue;
        }
        let so = dir.join(format!("lib{name}.so"));
        ok(
            run(
                Command::new("cc")
                    .arg("-shared")
                    .arg(&obj_o)
                    .arg("-o")
                    .arg(&so),
                b"",
            ),
            "cc -shared",
        );
        // SAFETY: a library of one object `bpfc compile` wrote, no
        // constructors.
        let lib = unsafe { libloading::Library::new(&so) }.unwrap();
        // SAFETY: the descriptor's symbol, used as an address only.
        let desc: libloading::Symbol<*const u8> =
            unsafe { lib.get(format!("{name}__object\0").as_bytes()) }.unwrap();
        // AOT, then JIT: the one line a host changes.
        // SAFETY: the descriptor of the library loaded above, which
        // outlives the object.
        let aot = unsafe { HostObject::open((*desc).cast()) };
        let jit = if k % 2 == 0 {
            bpfc_compiler::host::open_file(path)
        } else {
            bpfc_compiler::host::open_bytes(&std::fs::read(path).unwrap(), &name)
        };
        let (mut aot, mut jit) = (aot.unwrap(), jit.unwrap());
        aot.load().unwrap();
        jit.load().unwrap();
        let wait = name.starts_with("timer");
        for i in 0..aot.desc.progs.len() {
            let pname = aot.desc.progs[i].name.clone();
            let what = format!("{name} {pname}");
            let ctx = lcg_ctx(&mut seed);
            let mut outs = Vec::new();
            for o in [&aot, &jit] {
                let p = o.program(&pname).unwrap();
                let mut c = ctx.clone();
                let r = p
                    .run(c.as_mut_ptr() as u64, c.len() as u64, 0)
                    .map_err(|f| f.message);
                if wait {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                let mut maps = Vec::new();
                for m in o.maps.iter().flatten() {
                    if m.map_type().holds_references() {
                        continue;
                    }
                    let mut e = m.entries().unwrap_or_default();
                    e.sort();
                    maps.push((m.name().to_string(), e));
                }
                outs.push((r, c, maps));
            }
            assert_eq!(outs[0], outs[1], "{what}: AOT, then JIT");
            if outs[0].0.is_ok() {
                runs += 1;
            } else {
                refused += 1;
            }
        }
        drop((aot, jit));
        drop(lib);
    }
    eprintln!(
        "{runs} runs identical, {refused} faults identical; not loadable here: {unlinkable:?}"
    );
    assert!(
        runs >= 20 && unlinkable.len() <= 2,
        "{runs} runs, {unlinkable:?}"
    );
}
