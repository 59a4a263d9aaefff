//! Native object files for any supported target through cranelift-object.
//! [`compile_object`] writes one program behind one entry symbol (helpers
//! and runtime entry points stay undefined symbols for the linker);
//! [`compile_described`] writes every program of an object with the
//! descriptor, map table and helper table a host's runtime loads it from
//! (`docs/abi.md`, "Self-describing objects").

use super::{
    compile_program, target, Binding, CodegenError, CodegenOptions, Compiled, Dumps, IsaUse,
    Request,
};
use crate::isa::{Endian, Insn};
use bpfc_runtime::host::desc::{ObjectNative, ProgCode, DESC_VERSION, OBJECT_MAGIC};
use cranelift_codegen::ir;
use cranelift_module::{DataDescription, DataId, Linkage, Module};
use cranelift_object::{ObjectBuilder, ObjectModule};
use std::mem::{offset_of, size_of};
use target_lexicon::Triple;

/// Compile `req` into a relocatable object for `triple`, exporting
/// `req.symbol` and, when the binding names one, the map table.
pub fn compile_object(
    req: &Request,
    triple: &Triple,
    dumps: Option<&mut Dumps>,
) -> Result<Vec<u8>, CodegenError> {
    let isa = target::build_isa(
        triple,
        req.opts,
        IsaUse::Object,
        super::has_tail_calls(req.insns),
    )?;
    let builder = ObjectBuilder::new(isa, "bpfc", cranelift_module::default_libcall_names())?;
    let mut module = ObjectModule::new(builder);
    if let Some(table) = &req.binding.map_table {
        define_table(&mut module, table, Linkage::Export, req.binding.maps.len())?;
    }
    compile_program(&mut module, req, dumps)?;
    finish(module)
}

/// What [`compile_described`] puts into one object.
pub struct Described<'a> {
    /// The object's name, the prefix of every symbol it defines.
    pub name: &'a str,
    pub endian: Endian,
    /// Shared by the programs: maps by index (`NAME__maps`) and helpers
    /// (`NAME__helpers`), as [`table_symbols`] names them.
    pub binding: &'a Binding,
    pub opts: &'a CodegenOptions,
    /// The programs, in descriptor order.
    pub programs: Vec<DescribedProgram<'a>>,
    /// The descriptor image (`bpfc_runtime::host::desc::Desc::encode`).
    pub image: &'a [u8],
}

/// One program of a [`Described`] object.
pub struct DescribedProgram<'a> {
    pub insns: &'a [Insn],
    /// Its exported entry symbol (`NAME__PROG`).
    pub symbol: String,
    /// What the verifier proved about it (`None`: not verified).
    pub facts: Option<&'a crate::verifier::Facts>,
}

/// The map table's and the helper table's symbols of object `name`.
pub fn table_symbols(name: &str) -> (String, String) {
    (format!("{name}__maps"), format!("{name}__helpers"))
}

/// The descriptor's symbol of object `name` (`struct bpfc_object_desc`).
pub fn object_symbol(name: &str) -> String {
    format!("{name}__object")
}

/// Compile every program of `obj` into one relocatable object for
/// `triple` with its tables and its descriptor `NAME__object`.
pub fn compile_described(obj: &Described, triple: &Triple) -> Result<Vec<u8>, CodegenError> {
    let tail_calls = obj.programs.iter().any(|p| super::has_tail_calls(p.insns));
    let isa = target::build_isa(triple, obj.opts, IsaUse::Object, tail_calls)?;
    let builder = ObjectBuilder::new(isa, "bpfc", cranelift_module::default_libcall_names())?;
    let mut module = ObjectModule::new(builder);
    emit_described(&mut module, obj)?;
    finish(module)
}

/// What [`emit_described`] defined.
pub struct Emitted {
    /// `struct bpfc_object_desc` (`NAME__object`).
    pub header: DataId,
    /// The programs, in descriptor order.
    pub compiled: Vec<Compiled>,
}

/// Define every program of `obj`, its map and helper tables, its image,
/// its code table and its descriptor in `module`: one layout, written to
/// an object file by [`compile_described`] and into memory by the JIT
/// ([`super::jit::JitObject`]).
pub fn emit_described<M: Module>(module: &mut M, obj: &Described) -> Result<Emitted, CodegenError> {
    let isa = module.isa();
    if isa.pointer_bytes() != 8 {
        return Err(CodegenError::Isa(format!(
            "{}: descriptors need 64-bit pointers",
            isa.triple()
        )));
    }
    let big = isa.endianness() == ir::Endianness::Big;
    let (maps_sym, helpers_sym) = table_symbols(obj.name);
    let nmaps = obj.binding.maps.len();
    let nhelpers = obj.binding.helpers.len();
    let maps = define_table(module, &maps_sym, Linkage::Export, nmaps)?;
    let helpers = define_table(module, &helpers_sym, Linkage::Local, nhelpers)?;
    let mut compiled = Vec::with_capacity(obj.programs.len());
    for p in &obj.programs {
        let req = Request {
            insns: p.insns,
            endian: obj.endian,
            binding: obj.binding,
            opts: obj.opts,
            symbol: &p.symbol,
            facts: p.facts,
        };
        compiled.push(compile_program(module, &req, None)?);
    }
    // The image, and the code table.
    let image = module.declare_data(
        &format!("{}__image", obj.name),
        Linkage::Local,
        false,
        false,
    )?;
    let mut desc = DataDescription::new();
    desc.define(obj.image.to_vec().into_boxed_slice());
    desc.set_align(8);
    module.define_data(image, &desc)?;
    let progs = module.declare_data(
        &format!("{}__progs", obj.name),
        Linkage::Local,
        false,
        false,
    )?;
    let mut desc = DataDescription::new();
    // Explicit zeroes, not zero-init: the entries are relocated.
    let len = (size_of::<ProgCode>() * compiled.len()).max(8);
    desc.define(vec![0u8; len].into_boxed_slice());
    desc.set_align(8);
    for (i, c) in compiled.iter().enumerate() {
        let at = (i * size_of::<ProgCode>()) as u32;
        let entry = module.declare_func_in_data(c.entry, &mut desc);
        desc.write_function_addr(at + offset_of!(ProgCode, entry) as u32, entry);
        let main = module.declare_func_in_data(c.main, &mut desc);
        desc.write_function_addr(at + offset_of!(ProgCode, main) as u32, main);
    }
    module.define_data(progs, &desc)?;
    // `struct bpfc_object_desc`, in the target's byte order.
    let mut bytes = vec![0u8; size_of::<ObjectNative>()];
    let mut put = |off: usize, v: u64, n: usize| {
        let b = if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        let b = if big { &b[8 - n..] } else { &b[..n] };
        bytes[off..off + n].copy_from_slice(b);
    };
    put(offset_of!(ObjectNative, magic), OBJECT_MAGIC, 8);
    put(offset_of!(ObjectNative, version), DESC_VERSION.into(), 4);
    put(offset_of!(ObjectNative, nprogs), compiled.len() as u64, 4);
    put(
        offset_of!(ObjectNative, image_len),
        obj.image.len() as u64,
        8,
    );
    put(offset_of!(ObjectNative, nmaps), nmaps as u64, 8);
    put(offset_of!(ObjectNative, nhelpers), nhelpers as u64, 8);
    let header = module.declare_data(&object_symbol(obj.name), Linkage::Export, false, false)?;
    let mut desc = DataDescription::new();
    desc.define(bytes.into_boxed_slice());
    desc.set_align(8);
    for (field, data) in [
        (offset_of!(ObjectNative, image), image),
        (offset_of!(ObjectNative, maps), maps),
        (offset_of!(ObjectNative, helpers), helpers),
        (offset_of!(ObjectNative, progs), progs),
    ] {
        let gv = module.declare_data_in_data(data, &mut desc);
        desc.write_data_addr(field as u32, gv, 0);
    }
    module.define_data(header, &desc)?;
    Ok(Emitted { header, compiled })
}

/// A zeroed, writable table of `n` pointers (at least one, so it has an
/// address) that the host fills in.
fn define_table<M: Module>(
    module: &mut M,
    symbol: &str,
    linkage: Linkage,
    n: usize,
) -> Result<DataId, CodegenError> {
    let id = module.declare_data(symbol, linkage, true, false)?;
    let mut desc = DataDescription::new();
    desc.define_zeroinit(n.max(1) * 8);
    desc.set_align(8);
    module.define_data(id, &desc)?;
    Ok(id)
}

fn finish(module: ObjectModule) -> Result<Vec<u8>, CodegenError> {
    module
        .finish()
        .emit()
        .map_err(|e| CodegenError::Module(format!("writing the object: {e}")))
}
