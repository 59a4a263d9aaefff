//! The C API as programs use it: the C example's counter (linked or
//! opened at run time), bad use, refused objects, skeletons of the
//! fixtures and several objects in one program.

use crate::common::host::{
    build_jit_host, cc_tmpdir, compile, harness, include_dir, link_host, make_c_example, ok, run,
    valgrind, BPFC,
};
use bpfc_compiler::loader::Object;
use bpfc_testsuite::{tool_or_skip, workspace_root};
use std::path::Path;
use std::process::Command;

/// What `counter-host THREADS REQUESTS THRESHOLD` must print.
fn expected_counter_output(threads: u64, requests: u64) -> Vec<String> {
    let mut v = Vec::new();
    let per_key = |k: u64| threads * (requests / 8 + u64::from(k < requests % 8));
    for k in 0..8 {
        if per_key(k) > 0 {
            v.push(format!("count {k} {}", per_key(k)));
        }
    }
    v.push(format!("hits {}", threads * requests));
    // The host starts the total at 1000000 after load; thread t adds
    // weight t + 1 per request.
    v.push(format!(
        "total {}",
        1_000_000 + requests * threads * (threads + 1) / 2
    ));
    v
}

#[test]
fn c_example_with_skeleton_counts_across_threads() {
    counter_example("c_example_with_skeleton_counts_across_threads", false);
}

/// The same example, unchanged but for one macro: its skeleton opens
/// `counter.bpf.o` at run time and the JIT library is linked; the output
/// (hooks on threads, maps, `.rodata` set before load, `.bss`, `.data`,
/// ring buffer events) and valgrind's verdict must be the same.
#[test]
fn c_example_with_skeleton_counts_across_threads_jit() {
    counter_example("c_example_with_skeleton_counts_across_threads_jit", true);
}

/// `examples/c-host`'s counter built with `make` against this build's
/// bpfc and runtime library. With `jit`, the skeleton opens
/// `counter.bpf.o` at run time (`BPFC_SKEL_COUNTER_JIT_FILE`) and the JIT
/// library is linked.
fn counter_example(test: &str, jit: bool) {
    let Some(dir) = cc_tmpdir(test, if jit { "example-jit" } else { "example" }) else {
        return;
    };
    if !tool_or_skip(test, "make", "--version") {
        return;
    }
    let cflags: Vec<String> = jit
        .then(|| {
            format!(
                "CFLAGS=-O2 -Wall -Werror -std=c11 -DBPFC_SKEL_COUNTER_JIT_FILE='\"{}\"'",
                dir.join("counter.bpf.o").display()
            )
        })
        .into_iter()
        .collect();
    // `make` would rebuild the committed object with clang if the copy
    // looked newer than it; keep the committed one.
    let exe = make_c_example(&dir, "counter-host", &["counter.bpf.o"], jit, &cflags);
    let threads = u64::from(bpfc_runtime::maps::possible_cpus().clamp(1, 4));
    let (requests, threshold) = (3000u64, 5u64);
    let out = ok(
        run(
            Command::new(&exe).args([
                threads.to_string(),
                requests.to_string(),
                threshold.to_string(),
            ]),
            b"",
        ),
        "counter-host",
    );
    let lines: Vec<&str> = out.lines().collect();
    let want = expected_counter_output(threads, requests);
    assert_eq!(&lines[..want.len()], want.as_slice(), "{out}");
    // .data: the last key some thread wrote.
    let last: u32 = lines[want.len()]
        .strip_prefix("last_key ")
        .unwrap()
        .parse()
        .unwrap();
    assert!(last < 8, "{out}");
    // One event per key, from the run that took its count to the
    // threshold set through .rodata before load.
    let mut events: Vec<&str> = lines[want.len() + 1..].to_vec();
    events.sort();
    let want_events: Vec<String> = (0..8)
        .map(|k| format!("event key {k} count {threshold}"))
        .collect();
    assert_eq!(events, want_events, "{out}");
    // Under valgrind: no invalid access and nothing leaked after destroy.
    if tool_or_skip(test, "valgrind", "--version") {
        let out = run(valgrind().arg(&exe).args(["2", "200", "3"]), b"");
        assert!(
            out.status.success(),
            "valgrind: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn bad_use_is_an_error_never_a_crash() {
    misuse("bad_use_is_an_error_never_a_crash", false);
}

/// The same harness linked with the JIT library, which adds the JIT's
/// opens (NULL and empty input, a file open twice at once, destroy).
#[test]
fn bad_use_is_an_error_never_a_crash_jit() {
    misuse("bad_use_is_an_error_never_a_crash_jit", true);
}

fn misuse(test: &str, jit: bool) {
    let Some(dir) = cc_tmpdir(test, if jit { "misuse-jit" } else { "misuse" }) else {
        return;
    };
    let counter = workspace_root().join("examples/c-host/counter.bpf.o");
    let obj = dir.join("counter.o");
    compile(&counter, &[], &obj);
    let exe = dir.join("misuse");
    link_host(&exe, jit, [harness("host_misuse.c"), obj], "linking");
    let out = run(Command::new(&exe).env("BPFC_HOST_OBJECT", &counter), b"");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("FAIL"), "{text}");
    // The same under valgrind: no invalid access, nothing leaked.
    if tool_or_skip(test, "valgrind", "--version") {
        let out = run(valgrind().arg(&exe).env("BPFC_HOST_OBJECT", &counter), b"");
        assert!(
            out.status.success(),
            "valgrind: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        text.lines().filter(|l| l.starts_with("ok ")).count() >= 25,
        "{text}"
    );
    let jit_checks = text.lines().filter(|l| l.starts_with("ok JIT:")).count();
    assert_eq!(jit_checks, if jit { 12 } else { 0 }, "{text}");
}

/// `bpfc_object_open_file` on bad input: NULL and a negative errno with
/// a message naming the file (and the program, instruction and source
/// line the verifier rejects), never a crash; and open, load, runs and
/// destroy of a JIT object leak nothing under valgrind.
#[test]
fn c_host_jit_open_file_refuses_bad_objects() {
    let test = "c_host_jit_open_file_refuses_bad_objects";
    let Some(dir) = cc_tmpdir(test, "jit-bad") else {
        return;
    };
    let jit = build_jit_host(&dir);
    let counter = workspace_root().join("examples/c-host/counter.bpf.o");
    let bytes = std::fs::read(&counter).unwrap();
    let corrupt = dir.join("corrupt.bpf.o");
    let mut c = bytes[..64].to_vec();
    c.extend(std::iter::repeat_n(0xa5u8, 200));
    std::fs::write(&corrupt, &c).unwrap();
    let truncated = dir.join("truncated.bpf.o");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let missing = dir.join("missing.bpf.o");
    let rejected = workspace_root().join("testsuite/fixtures/elf/core_vmlinux.o");
    let cases: [(&Path, i32, &[&str]); 4] = [
        (&missing, -2, &["missing.bpf.o", "No such file"]),
        (&corrupt, -22, &["corrupt.bpf.o: "]),
        (&truncated, -22, &["truncated.bpf.o: "]),
        (
            &rejected,
            -13,
            &[
                "core_vmlinux.o: program on_switch",
                "rejected at instruction 1",
                "core_vmlinux.c:22",
            ],
        ),
    ];
    for (path, errno, needles) in cases {
        let out = run(Command::new(&jit).arg(path).arg("any"), b"");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}: {text}{}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let want = format!("error {errno} ");
        assert!(text.starts_with(&want), "{}: {text}", path.display());
        for n in needles {
            assert!(text.contains(n), "{}: {n:?} not in {text}", path.display());
        }
    }
    if tool_or_skip(test, "valgrind", "--version") {
        let globals = workspace_root().join("testsuite/fixtures/helpers/globals.o");
        let obj = Object::parse(&std::fs::read(&globals).unwrap()).unwrap();
        for (path, prog) in [
            (counter.as_path(), "count"),
            (globals.as_path(), obj.programs[0].name.as_str()),
            (rejected.as_path(), "on_switch"),
        ] {
            let out = run(valgrind().arg(&jit).arg(path).arg(prog), &[0u8; 16]);
            assert_ne!(
                out.status.code(),
                Some(9),
                "valgrind, {}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                out.status.code().is_some(),
                "valgrind, {}: killed",
                path.display()
            );
        }
    }
}

#[test]
fn skeletons_of_fixtures_compile_as_c11() {
    let test = "skeletons_of_fixtures_compile_as_c11";
    let Some(dir) = cc_tmpdir(test, "skeletons") else {
        return;
    };
    let mut n = 0;
    for sub in [
        "testsuite/fixtures/helpers",
        "testsuite/fixtures/elf",
        "examples/c-host",
    ] {
        let fixtures = workspace_root().join(sub);
        for e in std::fs::read_dir(&fixtures).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_none_or(|x| x != "o") {
                continue;
            }
            let Ok(obj) = Object::parse(&std::fs::read(&path).unwrap()) else {
                continue;
            };
            if obj.btf.is_none() || obj.endian != bpfc_compiler::isa::Endian::Little {
                continue;
            }
            let out = run(
                Command::new(BPFC).arg("gen").arg("skeleton").arg(&path),
                b"",
            );
            let header = ok(out, &format!("gen skeleton {}", path.display()));
            let stem = path
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .replace('.', "_");
            let h = dir.join(format!("{stem}.skel.h"));
            std::fs::write(&h, &header).unwrap();
            let c = dir.join(format!("{stem}.c"));
            std::fs::write(&c, format!("#include \"{stem}.skel.h\"\n")).unwrap();
            ok(
                run(
                    Command::new("cc")
                        .args(["-std=c11", "-Wall", "-Werror", "-c"])
                        .arg(format!("-I{}", include_dir().display()))
                        .arg(format!("-I{}", dir.display()))
                        .arg(&c)
                        .arg("-o")
                        .arg(dir.join(format!("{stem}.o"))),
                    b"",
                ),
                &format!("compiling the skeleton of {}:\n{header}", path.display()),
            );
            n += 1;
        }
    }
    assert!(n >= 30, "only {n} skeletons");
}

#[test]
fn two_objects_link_into_one_program() {
    two_objects("two_objects_link_into_one_program", "host_two.c", false);
}

/// Hooks: programs of two objects attached to one hook run in attach
/// order; attach, detach and fire on threads at once lose no run.
#[test]
fn hooks_run_attached_programs_in_order_across_threads() {
    two_objects(
        "hooks_run_attached_programs_in_order_across_threads",
        "host_hooks.c",
        false,
    );
}

/// The same with `one` compiled at run time from the `.bpf.o`'s bytes
/// (`bpfc_object_open_mem`, the JIT library): a JIT object and a linked
/// one attach to one hook, run in order, detach under fire, and the JIT
/// object's destroy detaches its program.
#[test]
fn hooks_run_jit_and_linked_programs_alike() {
    two_objects(
        "hooks_run_jit_and_linked_programs_alike",
        "host_hooks.c",
        true,
    );
}

/// examples/c-host's counter compiled as `one` and `two`, linked with the
/// C program `harness/SRC`, which prints "ok". With `jit`, `one` is left
/// to the program to open at run time (`-DBPFC_HOST_JIT`, the JIT
/// library, `$BPFC_HOST_OBJECT` the `.bpf.o`).
fn two_objects(test: &str, src_c: &str, jit: bool) {
    let tag = format!(
        "{}{}",
        src_c.replace(".c", ""),
        if jit { "-jit" } else { "" }
    );
    let Some(dir) = cc_tmpdir(test, &tag) else {
        return;
    };
    let src = workspace_root().join("examples/c-host/counter.bpf.o");
    for name in ["one", "two"] {
        compile(&src, &["--name", name], &dir.join(format!("{name}.o")));
    }
    let exe = dir.join("two");
    let linked: &[&str] = if jit { &["two.o"] } else { &["one.o", "two.o"] };
    let inputs = std::iter::once(harness(src_c)).chain(linked.iter().map(|o| dir.join(o)));
    link_host(&exe, jit, inputs, "linking two objects");
    assert_eq!(
        ok(
            run(Command::new(&exe).env("BPFC_HOST_OBJECT", &src), b""),
            "two objects"
        ),
        "ok\n"
    );
}
