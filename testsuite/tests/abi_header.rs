//! `runtime/include/bpfc_abi.h` against the `#[repr(C)]` types of
//! `runtime/src/abi.rs`: a C program built from the header prints every
//! size and field offset, and each must equal Rust's `size_of`/`offset_of!`.

use bpfc_runtime::abi::{CallbackNative, Fault, MapNative, ProgNative, RunState};
use bpfc_runtime::host::capi::bpfc_test_run_opts;
use bpfc_runtime::host::desc::{ObjectNative, ProgCode, DESC_VERSION, OBJECT_MAGIC};
use bpfc_runtime::net::{SkBuff, XdpMd};
use bpfc_testsuite::{aot::abi_include_dir, tool_or_skip};
use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::path::Path;
use std::process::Command;

/// (C struct, C field or "" for the size, Rust value).
fn rust_layout() -> Vec<(&'static str, &'static str, usize)> {
    macro_rules! fields {
        ($c:literal, $t:ty, [$($f:ident),*]) => {{
            let mut v = vec![($c, "", size_of::<$t>())];
            $(v.push(($c, stringify!($f), offset_of!($t, $f)));)*
            v
        }};
    }
    let mut v = Vec::new();
    v.extend(fields!("bpfc_fault", Fault, [code, pc, detail]));
    v.extend(fields!(
        "bpfc_run_state",
        RunState,
        [fault, ctx, stack_base, stack_top, input_lo, input_hi, budget, cb_fp, cpu, tail_calls]
    ));
    v.extend(fields!(
        "bpfc_map_native",
        MapNative,
        [
            map_type,
            max_entries,
            key_size,
            value_size,
            elem_size,
            ncpus,
            values,
            cpu_stride
        ]
    ));
    v.extend(fields!(
        "bpfc_callback",
        CallbackNative,
        [magic, pc, func, prog]
    ));
    v.extend(fields!(
        "bpfc_prog_native",
        ProgNative,
        [func, prog, id, prog_type]
    ));
    v.extend(fields!("bpfc_prog_code", ProgCode, [entry, main]));
    v.extend(fields!(
        "bpfc_test_run_opts",
        bpfc_test_run_opts,
        [
            sz,
            data_in,
            data_size_in,
            data_out,
            data_size_out,
            ctx_in,
            ctx_size_in,
            ctx_out,
            ctx_size_out,
            repeat,
            cpu,
            retval,
            duration
        ]
    ));
    v.extend(fields!(
        "bpfc_xdp_md",
        XdpMd,
        [
            data,
            data_end,
            data_meta,
            ingress_ifindex,
            rx_queue_index,
            egress_ifindex,
            pad
        ]
    ));
    v.extend(fields!(
        "bpfc_sk_buff",
        SkBuff,
        [
            data,
            data_end,
            data_meta,
            tstamp,
            hwtstamp,
            len,
            pkt_type,
            mark,
            queue_mapping,
            protocol,
            vlan_present,
            vlan_tci,
            vlan_proto,
            priority,
            ingress_ifindex,
            ifindex,
            tc_index,
            cb,
            hash,
            tc_classid,
            napi_id,
            family,
            remote_ip4,
            local_ip4,
            remote_ip6,
            local_ip6,
            remote_port,
            local_port,
            wire_len,
            gso_segs,
            gso_size,
            tstamp_type,
            pad
        ]
    ));
    v.extend(fields!(
        "bpfc_object_desc",
        ObjectNative,
        [magic, version, nprogs, image, image_len, maps, nmaps, helpers, nhelpers, progs]
    ));
    v
}

#[test]
fn header_matches_rust_layouts() {
    if !tool_or_skip("header_matches_rust_layouts", "cc", "--version") {
        return;
    }
    let layout = rust_layout();
    let mut c = String::from(
        "#include <stddef.h>\n#include <stdio.h>\n#include \"bpfc.h\"\nint main(void) {\n",
    );
    for (s, f, _) in &layout {
        if f.is_empty() {
            c.push_str(&format!(
                "  printf(\"{s} . %zu\\n\", sizeof(struct {s}));\n"
            ));
        } else {
            c.push_str(&format!(
                "  printf(\"{s} {f} %zu\\n\", offsetof(struct {s}, {f}));\n"
            ));
        }
    }
    c.push_str(
        "  printf(\"magic . %llu\\n\", (unsigned long long)BPFC_CALLBACK_MAGIC);\n  printf(\"objmagic . %llu\\n\", (unsigned long long)BPFC_OBJECT_MAGIC);\n  printf(\"version . %d\\n\", BPFC_DESC_VERSION);\n  return 0;\n}\n",
    );
    let dir = std::env::temp_dir().join(format!("bpfc-abi-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("layout.c");
    let exe = dir.join("layout");
    std::fs::write(&src, c).unwrap();
    let out = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Werror"])
        .arg(format!("-I{}", abi_include_dir().display()))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&exe).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8(out.stdout).unwrap();
    let got: BTreeMap<(String, String), u64> = text
        .lines()
        .map(|l| {
            let p: Vec<&str> = l.split(' ').collect();
            ((p[0].to_string(), p[1].to_string()), p[2].parse().unwrap())
        })
        .collect();
    for (s, f, want) in layout {
        let key = (
            s.to_string(),
            if f.is_empty() {
                ".".into()
            } else {
                f.to_string()
            },
        );
        assert_eq!(got.get(&key), Some(&(want as u64)), "{s}.{f}");
    }
    assert_eq!(
        got.get(&("magic".to_string(), ".".to_string())),
        Some(&CallbackNative::MAGIC)
    );
    assert_eq!(
        got.get(&("objmagic".to_string(), ".".to_string())),
        Some(&OBJECT_MAGIC)
    );
    assert_eq!(
        got.get(&("version".to_string(), ".".to_string())),
        Some(&u64::from(DESC_VERSION))
    );
}

/// The functions `#[no_mangle]` exports in the sources under `dir` (of
/// the workspace).
fn exported_functions(dir: &str) -> std::collections::BTreeSet<String> {
    let dir = bpfc_testsuite::workspace_root().join(dir);
    let mut names = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        let mut exported = false;
        for line in text.lines() {
            let l = line.trim();
            if l == "#[no_mangle]" {
                exported = true;
            } else if exported && l.contains("extern \"C\" fn ") {
                let rest = l.split("extern \"C\" fn ").nth(1).unwrap();
                names.insert(rest.split('(').next().unwrap().to_string());
                exported = false;
            }
        }
    }
    names
}

/// Function names the C headers declare (`name(` after a type).
fn declared_functions() -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for h in ["bpfc.h", "bpfc_abi.h"] {
        let text = std::fs::read_to_string(abi_include_dir().join(h)).unwrap();
        for stmt in text.split(';') {
            let s: String = stmt
                .lines()
                .filter(|l| {
                    !l.trim_start().starts_with('#')
                        && !l.trim_start().starts_with("/*")
                        && !l.trim_start().starts_with('*')
                })
                .collect::<Vec<_>>()
                .join(" ");
            let s = s.trim();
            if s.contains("typedef") || s.contains('{') || s.contains('}') {
                continue;
            }
            if let Some(open) = s.find('(') {
                let head = &s[..open];
                if let Some(name) = head.split([' ', '*']).next_back() {
                    if name.starts_with("bpfc_") {
                        names.insert(name.to_string());
                    }
                }
            }
        }
    }
    names
}

#[test]
fn c_library_header_declares_every_export() {
    let runtime = exported_functions("runtime/src/host/capi");
    let jit = exported_functions("compiler/capi/src");
    let declared = declared_functions();
    assert!(runtime.len() > 30, "{runtime:?}");
    assert!(jit.len() >= 2, "{jit:?}");
    assert_eq!(
        runtime
            .union(&jit)
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        declared,
        "bpfc.h and runtime/src/host/capi + compiler/capi differ"
    );
    if !tool_or_skip("c_library_header_declares_every_export", "cc", "--version") {
        return;
    }
    // Every declared function links from the static libraries: the
    // runtime's all but the JIT's, the JIT's (which holds the runtime) all.
    // A dependency's staticlib is built into `deps/`, beside this test.
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let runtime_only: std::collections::BTreeSet<String> =
        declared.difference(&jit).cloned().collect();
    link_all("runtime", &deps.join("libbpfc_runtime.a"), &runtime_only);
    link_all("jit", &deps.join("libbpfc_jit.a"), &declared);
}

/// Link a C program taking the address of each of `functions` with `lib`.
fn link_all(tag: &str, lib: &Path, functions: &std::collections::BTreeSet<String>) {
    let dir = std::env::temp_dir().join(format!("bpfc-capi-header-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut c = String::from("#include \"bpfc.h\"\n#include <stdio.h>\nint main(void) {\n");
    for f in functions {
        c.push_str(&format!("  printf(\"%p\\n\", (void *)&{f});\n"));
    }
    c.push_str("  return 0;\n}\n");
    std::fs::write(dir.join("all.c"), c).unwrap();
    let out = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Werror", "-Wno-pedantic"])
        .arg(format!("-I{}", abi_include_dir().display()))
        .arg(dir.join("all.c"))
        .arg(lib)
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(dir.join("all"))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
