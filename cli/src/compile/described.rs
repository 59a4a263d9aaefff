//! `bpfc compile FILE.bpf.o`: every program of an object (or the one named
//! with `--program`) in one native object, with the map table, the helper
//! table and the descriptor (`docs/abi.md`, "Self-describing objects").
//! The description is the compiler's ([`bpfc_compiler::host::describe`]),
//! the one the JIT opens objects from too.

use super::Args;
use crate::input;
use anyhow::{bail, Context as _};
use bpfc_compiler::bind::BindError;
use bpfc_compiler::codegen::aot;
use bpfc_compiler::host::{self, DescribeError, DescribeOptions};
use bpfc_compiler::loader::{GlobalKind, MapOrigin, ProgType};
use bpfc_runtime::HelperTable;
use target_lexicon::Triple;

pub use bpfc_compiler::host::{map_kind, object_name};

pub fn compile(
    args: &Args,
    bytes: &[u8],
    triple: &Triple,
    ty: Option<ProgType>,
) -> anyhow::Result<()> {
    let file = &args.file;
    let shown = file.display().to_string();
    let obj = input::load_object(file, bytes, &args.select)?;
    let name = match &args.name {
        Some(n) => {
            let s = input::symbol_for(n);
            if &s != n {
                bail!("--name {n:?}: a name must be a C identifier (letters, digits, _)");
            }
            s
        }
        None => object_name(file),
    };
    let kernel = HelperTable::kernel();
    for &id in &args.callx_helpers {
        if !kernel.contains(id) {
            bail!("--callx-helpers: helper {id} is not one bpfc's runtime provides");
        }
    }
    let hint = if args.select.program.is_none() && obj.programs.len() > 1 {
        "; choose the programs to compile with --program"
    } else {
        ""
    };
    let opts = DescribeOptions {
        program: args.select.program.clone(),
        prog_type: ty,
        no_verify: args.no_verify,
        opt_level: args.opt_level.into(),
        checked: args.checked,
        unchecked: args.unchecked,
        insn_limit: args.max_insns,
        callx_helpers: args.callx_helpers.clone(),
        hint: hint.to_string(),
        pt_regs: super::pt_regs(triple),
        ..DescribeOptions::new(&name)
    };
    let has_rodata = obj
        .maps
        .iter()
        .any(|m| m.origin == MapOrigin::Global(GlobalKind::Rodata));
    let d = host::describe(&obj, bytes, &opts).map_err(|e| match e {
        DescribeError::Bind(b @ BindError::Rejected { .. }) if has_rodata => anyhow::anyhow!(
            "{}\n  (the host may change .rodata before load, so its values are not known here: \
             the program must be safe for any)",
            input::rejected(&shown, b)
        ),
        DescribeError::Bind(b) => input::rejected(&shown, b),
        DescribeError::Other(m) => anyhow::anyhow!("{shown}: {m}"),
    })?;
    let object = aot::compile_described(&d.described(), triple).with_context(|| shown.clone())?;
    std::fs::write(&args.output, object).with_context(|| args.output.display().to_string())?;
    Ok(())
}
