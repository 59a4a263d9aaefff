//! Native object files for any supported target through cranelift-object.
//! Helpers stay undefined symbols (`bpfc_helper_<id>`) for the linker.

use super::{compile_program, target, CodegenError, CodegenOptions, Dumps, HelperSet, IsaUse};
use crate::isa::{Endian, Insn};
use cranelift_object::{ObjectBuilder, ObjectModule};
use target_lexicon::Triple;

/// Compile `insns` into a relocatable object for `triple` exporting `symbol`.
/// `callx_ids` are the helper ids `callx` may dispatch to.
pub fn compile_object(
    insns: &[Insn],
    endian: Endian,
    triple: &Triple,
    opts: &CodegenOptions,
    symbol: &str,
    callx_ids: &[u32],
    dumps: Option<&mut Dumps>,
) -> Result<Vec<u8>, CodegenError> {
    let isa = target::build_isa(triple, opts, IsaUse::Object)?;
    let builder = ObjectBuilder::new(isa, "bpfc", cranelift_module::default_libcall_names())?;
    let mut module = ObjectModule::new(builder);
    let helpers = HelperSet {
        ids: callx_ids.iter().copied().collect(),
        import_any: true,
    };
    compile_program(&mut module, insns, endian, &helpers, opts, symbol, dumps)?;
    module
        .finish()
        .emit()
        .map_err(|e| CodegenError::Module(format!("writing the object: {e}")))
}

/// Cranelift IR of every function of `insns` as compiled for `triple`.
pub fn dump_clif(
    insns: &[Insn],
    endian: Endian,
    triple: &Triple,
    opts: &CodegenOptions,
) -> Result<String, CodegenError> {
    let mut dumps = Dumps {
        clif: Some(String::new()),
        asm: None,
    };
    compile_object(
        insns,
        endian,
        triple,
        opts,
        "bpf_prog",
        &[],
        Some(&mut dumps),
    )?;
    Ok(dumps.clif.unwrap_or_default())
}

/// Native code listing (Cranelift's VCode disassembly) of every function of
/// `insns` as compiled for `triple`.
pub fn dump_asm(
    insns: &[Insn],
    endian: Endian,
    triple: &Triple,
    opts: &CodegenOptions,
) -> Result<String, CodegenError> {
    let mut dumps = Dumps {
        clif: None,
        asm: Some(String::new()),
    };
    compile_object(
        insns,
        endian,
        triple,
        opts,
        "bpf_prog",
        &[],
        Some(&mut dumps),
    )?;
    Ok(dumps.asm.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codegen::parse_triple;
    use crate::isa::decode_program;

    const PROG: [u8; 24] = [
        0xb7, 0, 0, 0, 42, 0, 0, 0, 0x07, 0, 0, 0, 1, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn dumps_are_not_empty() {
        let insns = decode_program(&PROG, Endian::Little).unwrap();
        let t = parse_triple("x86_64-unknown-linux-gnu").unwrap();
        let clif = dump_clif(&insns, Endian::Little, &t, &CodegenOptions::default()).unwrap();
        assert!(clif.contains("function"), "{clif}");
        let asm = dump_asm(&insns, Endian::Little, &t, &CodegenOptions::default()).unwrap();
        assert!(asm.contains("ret"), "{asm}");
    }
}
