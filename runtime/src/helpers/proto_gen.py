#!/usr/bin/env python3
"""Regenerate the helper prototype table (proto/table.rs) and the helper
sets of each program type (compiler/src/progtype/helpers.rs) from a kernel
source tree:

    python3 runtime/src/helpers/proto_gen.py /work/linux-src

Reads the `struct bpf_func_proto` definitions (argument and return kinds,
fixed sizes, gpl_only, pkt_access, might_sleep), the helper ids of
include/uapi/linux/bpf.h, and every `*_func_proto()` switch, which says which
helper a program type may call and with which prototype. The kernel runs
these switches with the program's privileges; bpfc models a privileged
loader (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN), so capability checks count as
passed and alternatives chosen at run time (`sleepable ? &a : &b`) take the
first prototype named.
"""

import os
import subprocess
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else "/work/linux-src"
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "../../.."))

SOURCES = [
    "kernel/bpf/helpers.c", "kernel/bpf/ringbuf.c", "kernel/bpf/stackmap.c",
    "kernel/bpf/bpf_iter.c", "kernel/bpf/core.c", "kernel/bpf/syscall.c",
    "kernel/bpf/cgroup.c", "kernel/bpf/task_iter.c", "kernel/bpf/bpf_lsm.c",
    "kernel/bpf/btf.c", "kernel/bpf/bpf_task_storage.c",
    "kernel/bpf/bpf_inode_storage.c", "kernel/bpf/bpf_cgrp_storage.c",
    "kernel/trace/bpf_trace.c", "net/core/filter.c", "net/core/sock_map.c",
    "net/core/bpf_sk_storage.c", "net/ipv4/bpf_tcp_ca.c",
    "net/netfilter/nf_bpf_link.c",
]

# Program type (bpfc's ProgType variant) -> the kernel's get_func_proto.
ROOTS = [
    ("SocketFilter", "sk_filter_func_proto"),
    ("Kprobe", "kprobe_prog_func_proto"),
    ("SchedCls", "tc_cls_act_func_proto"),
    ("SchedAct", "tc_cls_act_func_proto"),
    ("Tracepoint", "tp_prog_func_proto"),
    ("Xdp", "xdp_func_proto"),
    ("PerfEvent", "pe_prog_func_proto"),
    ("CgroupSkb", "cg_skb_func_proto"),
    ("CgroupSock", "sock_filter_func_proto"),
    ("LwtIn", "lwt_in_func_proto"),
    ("LwtOut", "lwt_out_func_proto"),
    ("LwtXmit", "lwt_xmit_func_proto"),
    ("LwtSeg6local", "lwt_seg6local_func_proto"),
    ("SockOps", "sock_ops_func_proto"),
    ("SkSkb", "sk_skb_func_proto"),
    ("CgroupDevice", "cgroup_dev_func_proto"),
    ("SkMsg", "sk_msg_func_proto"),
    ("RawTracepoint", "raw_tp_prog_func_proto"),
    ("CgroupSockAddr", "sock_addr_func_proto"),
    ("SkReuseport", "sk_reuseport_func_proto"),
    ("FlowDissector", "flow_dissector_func_proto"),
    ("CgroupSysctl", "sysctl_func_proto"),
    ("RawTracepointWritable", "raw_tp_prog_func_proto"),
    ("CgroupSockopt", "cg_sockopt_func_proto"),
    ("Tracing", "tracing_prog_func_proto"),
    ("Lsm", "bpf_lsm_func_proto"),
    ("SkLookup", "sk_lookup_func_proto"),
    ("Syscall", "syscall_prog_func_proto"),
    ("Netfilter", "bpf_nf_func_proto"),
]

# Which switch's choice of prototype is the canonical one for an id.
PREFERRED = ["bpf_base_func_proto", "bpf_sk_base_func_proto",
             "tc_cls_act_func_proto", "xdp_func_proto", "bpf_tracing_func_proto",
             "kprobe_prog_func_proto", "tp_prog_func_proto",
             "pe_prog_func_proto", "raw_tp_prog_func_proto"]

# Prototypes returned through a function call rather than `&var`.
CALLED = {
    "bpf_get_trace_printk_proto": "bpf_trace_printk_proto",
    "bpf_get_trace_vprintk_proto": "bpf_trace_vprintk_proto",
    "bpf_get_probe_write_proto": "bpf_probe_write_user_proto",
}
# Helpers whose prototype a function chooses by id (`bpf_get_skb_set_tunnel_proto(func_id)`).
BY_ID = {
    "skb_set_tunnel_key": "bpf_skb_set_tunnel_key_proto",
    "skb_set_tunnel_opt": "bpf_skb_set_tunnel_opt_proto",
}


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8", errors="replace") as f:
        return f.read()


def strip_comments(s):
    s = re.sub(r"/\*.*?\*/", " ", s, flags=re.S)
    return re.sub(r"//[^\n]*", " ", s)


def helper_ids():
    text = read("include/uapi/linux/bpf.h")
    ids = {}
    for m in re.finditer(r"FN\((\w+),\s*(\d+),", text):
        ids[m.group(1)] = int(m.group(2))
    return ids


def protos(texts):
    out = {}
    pat = re.compile(r"struct\s+bpf_func_proto\s+(\w+)(?:\s+__weak)?\s*=\s*\{(.*?)\};", re.S)
    for text in texts:
        for m in pat.finditer(text):
            name, body = m.group(1), m.group(2)
            fields = {}
            for f in re.finditer(r"\.(\w+)\s*=\s*([^,]+(?:\([^)]*\))?[^,]*),", body + ","):
                fields[f.group(1)] = " ".join(f.group(2).split())
            out[name] = fields
    return out


def functions(texts):
    """Bodies of every *_func_proto(...) function, by name."""
    out = {}
    pat = re.compile(r"\n(?:static\s+)?(?:const\s+)?struct\s+bpf_func_proto\s*\*\s*\n?(\w+)\s*\(enum bpf_func_id func_id,[^)]*\)\s*\{", re.S)
    for text in texts:
        for m in pat.finditer(text):
            name = m.group(1)
            i = m.end()
            depth = 1
            while depth and i < len(text):
                if text[i] == "{":
                    depth += 1
                elif text[i] == "}":
                    depth -= 1
                i += 1
            out.setdefault(name, text[m.end():i - 1])
    return out


def parse_switches(body):
    """(cases: {helper: [proto vars] or []}, fallbacks: [function names])."""
    cases = {}
    parts = re.split(r"(case\s+BPF_FUNC_\w+\s*:|default\s*:)", body)
    pending = []
    fallbacks = []
    for p in parts:
        m = re.match(r"case\s+BPF_FUNC_(\w+)\s*:", p)
        if m:
            pending.append(m.group(1))
            continue
        if re.match(r"default\s*:", p):
            pending = []
            continue
        if pending:
            stmt = p
            protos_named = re.findall(r"&(\w+)", stmt)
            for call, var in CALLED.items():
                if call in stmt:
                    protos_named.append(var)
            if "bpf_get_skb_set_tunnel_proto" in stmt:
                protos_named += [BY_ID[h] for h in pending if h in BY_ID]
            chained = re.findall(r"(\w+_func_proto)\(func_id", stmt)
            # `sleepable ? &a_sleepable : &a`: bpfc's default is not sleepable.
            protos_named.sort(key=lambda n: "sleepable" in n)
            for h in pending:
                if h in cases:
                    continue
                if protos_named:
                    cases[h] = protos_named
                elif chained:
                    cases[h] = ["->" + c for c in chained]
                elif "return" in stmt or "break" in stmt:
                    cases[h] = []
            if "return" in stmt or "break" in stmt:
                pending = []
        fallbacks += re.findall(r"(\w+_func_proto)\(func_id", p if not pending else "")
    seen = []
    for f in fallbacks:
        if f not in seen:
            seen.append(f)
    return cases, seen


def resolve(fname, funcs, helper, stack=()):
    """The prototype var the kernel returns for `helper` from `fname`."""
    if fname not in funcs or fname in stack:
        return None
    cases, fallbacks = funcs[fname]
    if helper in cases:
        c = cases[helper]
        if not c:
            return None
        if c[0].startswith("->"):
            for ch in c:
                r = resolve(ch[2:], funcs, helper, stack + (fname,))
                if r:
                    return r
            return None
        return c[0]
    for f in fallbacks:
        r = resolve(f, funcs, helper, stack + (fname,))
        if r:
            return r
    return None


ARG_BASES = {
    "ARG_DONTCARE": "DontCare", "ARG_CONST_MAP_PTR": "ConstMapPtr",
    "ARG_PTR_TO_MAP_KEY": "PtrToMapKey", "ARG_PTR_TO_MAP_VALUE": "PtrToMapValue",
    "ARG_PTR_TO_MEM": "PtrToMem", "ARG_PTR_TO_ARENA": "PtrToArena",
    "ARG_CONST_SIZE": "ConstSize", "ARG_CONST_SIZE_OR_ZERO": "ConstSizeOrZero",
    "ARG_PTR_TO_CTX": "PtrToCtx", "ARG_ANYTHING": "Anything",
    "ARG_SCALAR": "Scalar", "ARG_PTR_TO_SPIN_LOCK": "PtrToSpinLock",
    "ARG_PTR_TO_SOCK_COMMON": "PtrToSockCommon", "ARG_PTR_TO_SOCKET": "PtrToSocket",
    "ARG_PTR_TO_BTF_ID": "PtrToBtfId", "ARG_PTR_TO_RINGBUF_MEM": "PtrToRingbufMem",
    "ARG_CONST_ALLOC_SIZE_OR_ZERO": "ConstAllocSizeOrZero",
    "ARG_PTR_TO_BTF_ID_SOCK_COMMON": "PtrToBtfIdSockCommon",
    "ARG_PTR_TO_PERCPU_BTF_ID": "PtrToPercpuBtfId", "ARG_PTR_TO_FUNC": "PtrToFunc",
    "ARG_PTR_TO_STACK": "PtrToStack", "ARG_PTR_TO_CONST_STR": "PtrToConstStr",
    "ARG_PTR_TO_TIMER": "PtrToTimer", "ARG_KPTR_XCHG_DEST": "KptrXchgDest",
    "ARG_PTR_TO_DYNPTR": "PtrToDynptr",
}
ARG_COMBOS = {
    "ARG_PTR_TO_MAP_VALUE_OR_NULL": ("PtrToMapValue", ["MAYBE_NULL"]),
    "ARG_PTR_TO_MEM_OR_NULL": ("PtrToMem", ["MAYBE_NULL"]),
    "ARG_PTR_TO_CTX_OR_NULL": ("PtrToCtx", ["MAYBE_NULL"]),
    "ARG_PTR_TO_SOCKET_OR_NULL": ("PtrToSocket", ["MAYBE_NULL"]),
    "ARG_PTR_TO_STACK_OR_NULL": ("PtrToStack", ["MAYBE_NULL"]),
    "ARG_PTR_TO_BTF_ID_OR_NULL": ("PtrToBtfId", ["MAYBE_NULL"]),
    "ARG_PTR_TO_UNINIT_MEM": ("PtrToMem", ["UNINIT", "WRITE"]),
    "ARG_PTR_TO_FIXED_SIZE_MEM": ("PtrToMem", ["FIXED_SIZE"]),
}
FLAGS = {
    "PTR_MAYBE_NULL": "MAYBE_NULL", "MEM_RDONLY": "RDONLY", "MEM_UNINIT": "UNINIT",
    "MEM_WRITE": "WRITE", "MEM_FIXED_SIZE": "FIXED_SIZE", "MEM_ALIGNED": "ALIGNED",
    "OBJ_RELEASE": "RELEASE", "DYNPTR_TYPE_LOCAL": "DYNPTR_LOCAL",
    "DYNPTR_TYPE_RINGBUF": "DYNPTR_RINGBUF", "MEM_ALLOC": "ALLOC",
    "MEM_RINGBUF": "RINGBUF", "PTR_TRUSTED": "TRUSTED", "MEM_RCU": "RCU",
}
RET_BASES = {
    "RET_INTEGER": "Integer", "RET_VOID": "Void", "RET_PTR_TO_MAP_VALUE": "PtrToMapValue",
    "RET_PTR_TO_SOCKET": "PtrToSocket", "RET_PTR_TO_TCP_SOCK": "PtrToTcpSock",
    "RET_PTR_TO_SOCK_COMMON": "PtrToSockCommon", "RET_PTR_TO_MEM": "PtrToMem",
    "RET_PTR_TO_MEM_OR_BTF_ID": "PtrToMemOrBtfId", "RET_PTR_TO_BTF_ID": "PtrToBtfId",
}
RET_COMBOS = {
    "RET_PTR_TO_MAP_VALUE_OR_NULL": ("PtrToMapValue", ["MAYBE_NULL"]),
    "RET_PTR_TO_SOCKET_OR_NULL": ("PtrToSocket", ["MAYBE_NULL"]),
    "RET_PTR_TO_TCP_SOCK_OR_NULL": ("PtrToTcpSock", ["MAYBE_NULL"]),
    "RET_PTR_TO_SOCK_COMMON_OR_NULL": ("PtrToSockCommon", ["MAYBE_NULL"]),
    "RET_PTR_TO_RINGBUF_MEM_OR_NULL": ("PtrToMem", ["MAYBE_NULL", "RINGBUF"]),
    "RET_PTR_TO_DYNPTR_MEM_OR_NULL": ("PtrToMem", ["MAYBE_NULL"]),
    "RET_PTR_TO_BTF_ID_OR_NULL": ("PtrToBtfId", ["MAYBE_NULL"]),
    "RET_PTR_TO_BTF_ID_TRUSTED": ("PtrToBtfId", ["TRUSTED"]),
}


def kind(expr, bases, combos, what):
    base, flags = None, []
    for tok in [t.strip() for t in expr.replace("(", "").replace(")", "").split("|")]:
        if tok in combos:
            b, f = combos[tok]
            base, flags = b, flags + f
        elif tok in bases:
            base = bases[tok]
        elif tok in FLAGS:
            flags.append(FLAGS[tok])
        elif tok in ("PTR_TO_STACK", "CONST_PTR_TO_MAP"):
            # bpf_get_func_arg_cnt-style typos in the kernel source: the
            # numeric values coincide with ARG_PTR_TO_MAP_KEY / ARG_CONST_MAP_PTR.
            base = {"PTR_TO_STACK": "PtrToMapKey", "CONST_PTR_TO_MAP": "ConstMapPtr"}[tok]
        else:
            raise SystemExit(f"unknown {what} token {tok!r} in {expr!r}")
    flags = sorted(set(flags))
    return base, flags


def rust_kind(ty, base, flags):
    if not flags:
        return f"{ty}::new({ty}Base::{base}, 0)"
    return f"{ty}::new({ty}Base::{base}, {' | '.join(flags)})"


def size_expr(e):
    sizes = {"sizeof(u64)": 8, "sizeof(u32)": 4, "sizeof(struct bpf_timer)": 16,
             "sizeof(struct bpf_wq)": 16, "sizeof(long)": 8, "sizeof(s64)": 8,
             "sizeof(__u64)": 8, "sizeof(int)": 4, "sizeof(unsigned long)": 8,
             "sizeof(struct bpf_dynptr)": 16, "sizeof(struct bpf_spin_lock)": 4,
             "sizeof(struct bpf_sock_tuple)": 36}
    e = e.strip()
    if e in sizes:
        return sizes[e]
    if re.fullmatch(r"\d+", e):
        return int(e)
    return None


def main():
    texts = [strip_comments(read(p)) for p in SOURCES if os.path.exists(os.path.join(ROOT, p))]
    ids = helper_ids()
    names = {v: k for k, v in ids.items()}
    all_protos = protos(texts)
    funcs = {n: parse_switches(b) for n, b in functions(texts).items()}

    chosen = {}
    for h in ids:
        for f in PREFERRED + [r for _, r in ROOTS] + sorted(funcs):
            var = resolve(f, funcs, h)
            if var and var in all_protos:
                chosen[h] = var
                break

    lines = []
    lines.append("// Generated by proto_gen.py from the kernel sources; do not edit.")
    lines.append("// Facts only: each helper's prototype as the kernel declares it.")
    lines.append("")
    lines.append("use super::*;")
    lines.append("")
    lines.append("/// Prototypes by helper id; `None` where the kernel defines the id but")
    lines.append("/// no program type bpfc models can call it.")
    lines.append("pub(super) static TABLE: &[Option<HelperProto>] = &[")
    for i in range(max(ids.values()) + 1):
        h = names[i]
        var = chosen.get(h)
        if var is None:
            lines.append(f"    None, // {i} {h}")
            continue
        f = all_protos[var]
        ret = rust_kind("RetType", *kind(f.get("ret_type", "RET_INTEGER"), RET_BASES, RET_COMBOS, "ret"))
        args, sizes, btf = [], [], []
        for a in range(1, 6):
            expr = f.get(f"arg{a}_type", "ARG_DONTCARE")
            args.append(rust_kind("ArgType", *kind(expr, ARG_BASES, ARG_COMBOS, "arg")))
            s = f.get(f"arg{a}_size")
            sizes.append(str(size_expr(s)) if s and size_expr(s) is not None else "0")
            bid = f.get(f"arg{a}_btf_id", "")
            m = re.search(r"btf_\w*?(?:ids|id)\[?\w*\]?", bid)
            btf.append("true" if bid else "false")
        gpl = "true" if f.get("gpl_only") == "true" else "false"
        pkt = "true" if f.get("pkt_access") == "true" else "false"
        sleep = "true" if f.get("might_sleep") == "true" else "false"
        lines.append(f"    Some(HelperProto {{ // {var}")
        lines.append(f"        id: {i},")
        lines.append(f"        name: \"{h}\",")
        lines.append(f"        ret: {ret},")
        lines.append("        args: [")
        for a in args:
            lines.append(f"            {a},")
        lines.append("        ],")
        lines.append(f"        arg_size: [{', '.join(sizes)}],")
        lines.append(f"        arg_btf_id: [{', '.join(btf)}],")
        lines.append(f"        gpl_only: {gpl},")
        lines.append(f"        pkt_access: {pkt},")
        lines.append(f"        might_sleep: {sleep},")
        lines.append("    }),")
    lines.append("];")
    out = os.path.join(HERE, "proto", "table.rs")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as fh:
        fh.write("\n".join(lines) + "\n")

    sets = []
    sets.append("// Generated by runtime/src/helpers/proto_gen.py from the kernel sources;")
    sets.append("// do not edit. Which helpers each program type may call (the kernel's")
    sets.append("// get_func_proto for a privileged loader), as sorted helper ids.")
    sets.append("")
    sets.append("use crate::loader::ProgType;")
    sets.append("")
    sets.append("/// The helper ids `ty` may call; empty for types bpfc does not model.")
    sets.append("pub fn allowed(ty: ProgType) -> &'static [u32] {")
    sets.append("    match ty {")
    for ty, root in ROOTS:
        allowed = sorted(ids[h] for h in ids if resolve(root, funcs, h))
        body = ", ".join(str(x) for x in allowed)
        sets.append(f"        // {root}")
        sets.append(f"        ProgType::{ty} => &[{body}],")
    sets.append("        _ => &[],")
    sets.append("    }")
    sets.append("}")
    out = os.path.join(REPO, "compiler/src/progtype/helpers.rs")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as fh:
        fh.write("\n".join(sets) + "\n")
    # As `cargo fmt` leaves them, so a regeneration shows only real changes.
    subprocess.run(["rustfmt", "--edition", "2021", os.path.join(HERE, "proto", "table.rs"), out], check=True)
    print(f"{len(chosen)} prototypes, {len(ROOTS)} program types")


main()
