//! The one place a Cranelift `TargetIsa` is built: from a target triple and
//! the code generation options, for the JIT (the host, native features) and
//! for object files (any supported triple, position-independent).

use super::{CodegenError, CodegenOptions, OptLevel};
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use std::str::FromStr;
use target_lexicon::Triple;

/// Triples bpfc compiles objects for.
pub const SUPPORTED_TARGETS: [&str; 7] = [
    "x86_64-unknown-linux-gnu",
    "aarch64-unknown-linux-gnu",
    "riscv64gc-unknown-linux-gnu",
    "s390x-unknown-linux-gnu",
    "x86_64-apple-darwin",
    "aarch64-apple-darwin",
    "x86_64-pc-windows-msvc",
];

/// Parse a triple and check that bpfc supports it.
pub fn parse_triple(name: &str) -> Result<Triple, CodegenError> {
    let unsupported = || CodegenError::UnsupportedTarget {
        triple: name.to_string(),
        supported: SUPPORTED_TARGETS.join(", "),
    };
    if !SUPPORTED_TARGETS.contains(&name) {
        return Err(unsupported());
    }
    Triple::from_str(name).map_err(|_| unsupported())
}

/// Where the ISA is used: objects must be position-independent, JIT code is
/// tuned for the features of the host it runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsaUse {
    Jit,
    Object,
}

/// Build the target ISA for `triple` (the host for [`IsaUse::Jit`]).
/// `tail_calls`: the program takes tail calls, whose code Cranelift emits
/// only in functions that keep frame pointers.
pub fn build_isa(
    triple: &Triple,
    opts: &CodegenOptions,
    usage: IsaUse,
    tail_calls: bool,
) -> Result<OwnedTargetIsa, CodegenError> {
    let mut flags = settings::builder();
    let set = |flags: &mut settings::Builder, name: &str, value: &str| {
        flags
            .set(name, value)
            .map_err(|e| CodegenError::Isa(format!("setting {name}={value}: {e}")))
    };
    set(
        &mut flags,
        "opt_level",
        match opts.opt_level {
            OptLevel::None => "none",
            OptLevel::Speed => "speed",
        },
    )?;
    // `none` is the compile-fast tier: no e-graph pass and the single-pass
    // register allocator, about half the compile time of `speed`, for code
    // that spills more.
    set(
        &mut flags,
        "regalloc_algorithm",
        match opts.opt_level {
            OptLevel::None => "single_pass",
            OptLevel::Speed => "backtracking",
        },
    )?;
    set(
        &mut flags,
        "is_pic",
        if usage == IsaUse::Object {
            "true"
        } else {
            "false"
        },
    )?;
    set(
        &mut flags,
        "enable_verifier",
        if cfg!(debug_assertions) {
            "true"
        } else {
            "false"
        },
    )?;
    if tail_calls {
        set(&mut flags, "preserve_frame_pointers", "true")?;
    }
    let flags = settings::Flags::new(flags);
    let builder = match usage {
        IsaUse::Jit => cranelift_native::builder_with_options(true)
            .map_err(|e| CodegenError::Isa(format!("host: {e}")))?,
        IsaUse::Object => cranelift_codegen::isa::lookup(triple.clone())
            .map_err(|e| CodegenError::Isa(format!("{triple}: {e}")))?,
    };
    builder
        .finish(flags)
        .map_err(|e| CodegenError::Isa(format!("{triple}: {e}")))
}
