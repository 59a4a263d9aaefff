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
