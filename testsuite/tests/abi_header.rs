//! `runtime/include/bpfc_abi.h` against the `#[repr(C)]` types of
//! `runtime/src/abi.rs`: a C program built from the header prints every
//! size and field offset, and each must equal Rust's `size_of`/`offset_of!`.

use bpfc_runtime::abi::{CallbackNative, Fault, MapNative, ProgNative, RunState};
use bpfc_testsuite::{aot::abi_include_dir, tool_or_skip};
use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
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
    v
}

#[test]
fn header_matches_rust_layouts() {
    if !tool_or_skip("header_matches_rust_layouts", "cc", "--version") {
        return;
    }
    let layout = rust_layout();
    let mut c = String::from(
        "#include <stddef.h>\n#include <stdio.h>\n#include \"bpfc_abi.h\"\nint main(void) {\n",
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
        "  printf(\"magic . %llu\\n\", (unsigned long long)BPFC_CALLBACK_MAGIC);\n  return 0;\n}\n",
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
}
