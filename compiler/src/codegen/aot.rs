//! Native object files for any supported target through cranelift-object.
//! Helpers and runtime entry points stay undefined symbols for the linker;
//! map references go through the program's map table (`docs/abi.md`).

use super::{compile_program, target, CodegenError, Dumps, IsaUse, Request};
use cranelift_module::{DataDescription, Linkage, Module};
use cranelift_object::{ObjectBuilder, ObjectModule};
use target_lexicon::Triple;

/// Compile `req` into a relocatable object for `triple`, exporting
/// `req.symbol` and, when the binding names one, the map table.
pub fn compile_object(
    req: &Request,
    triple: &Triple,
    dumps: Option<&mut Dumps>,
) -> Result<Vec<u8>, CodegenError> {
    let isa = target::build_isa(triple, req.opts, IsaUse::Object)?;
    let builder = ObjectBuilder::new(isa, "bpfc", cranelift_module::default_libcall_names())?;
    let mut module = ObjectModule::new(builder);
    if let Some(table) = &req.binding.map_table {
        let id = module.declare_data(table, Linkage::Export, true, false)?;
        let mut desc = DataDescription::new();
        desc.define_zeroinit(req.binding.maps.len().max(1) * 8);
        desc.set_align(8);
        module.define_data(id, &desc)?;
    }
    compile_program(&mut module, req, dumps)?;
    module
        .finish()
        .emit()
        .map_err(|e| CodegenError::Module(format!("writing the object: {e}")))
}
