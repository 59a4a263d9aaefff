//! What compiled code is bound to, described once for the code generator:
//! which helpers exist, and for each map reference of the program the map's
//! definition and where its address comes from. The JIT fills in addresses
//! of live runtime objects; the AOT writer names a table of map pointers
//! that the host's runtime fills in when it loads the object
//! (`docs/abi.md`, "Maps").

use bpfc_runtime::maps::{MapSpec, MapType};
use std::collections::BTreeSet;

/// One map a program refers to (by the loader's map index).
#[derive(Clone, Debug)]
pub struct MapSlot {
    /// The map's definition: type and sizes decide what can be inlined.
    pub spec: MapSpec,
    /// JIT: the live map's address (what a program holds). `None` in
    /// objects: the address is read from the map table.
    pub addr: Option<u64>,
    /// JIT: the map's array value memory (`MapNative::values`), if any.
    pub values: Option<u64>,
    /// The CPU slots of per-CPU maps (JIT; objects read it at run time).
    pub ncpus: Option<u32>,
}

impl MapSlot {
    /// Array lookups that compiled code does itself (`map_gen_lookup`).
    pub fn inlinable_array(&self) -> bool {
        matches!(self.spec.map_type, MapType::Array | MapType::PercpuArray)
    }
}

/// Everything outside the instructions that code generation binds.
#[derive(Clone, Debug, Default)]
pub struct Binding {
    /// Helper ids known to exist: `callx` dispatches over these, and a
    /// direct call of any other id faults unless `import_any_helper`.
    pub helpers: BTreeSet<u32>,
    /// Import a symbol for every directly called helper id, known or not
    /// (objects: the linker decides).
    pub import_any_helper: bool,
    /// The maps by the loader's map index (`None`: not bound; a reference
    /// faults).
    pub maps: Vec<Option<MapSlot>>,
    /// Objects: the symbol of the table of map pointers (`void *[N]`, by map
    /// index) that the host fills in. `None`: addresses are embedded (JIT).
    pub map_table: Option<String>,
    /// Objects with a descriptor: the symbol of the table of helper
    /// functions (`void *[N]`, one per id of `helpers` in id order) that
    /// the host fills in. `None`: helpers are bound by symbol.
    pub helper_table: Option<String>,
}

impl Binding {
    /// A binding with the helpers `ids` and no maps.
    pub fn helpers(ids: impl IntoIterator<Item = u32>) -> Binding {
        Binding {
            helpers: ids.into_iter().collect(),
            ..Binding::default()
        }
    }

    /// An object's binding for raw code: helpers are symbols the linker
    /// resolves, `callx` dispatches over `callx_ids`, no maps.
    pub fn object(callx_ids: &[u32]) -> Binding {
        Binding {
            import_any_helper: true,
            ..Binding::helpers(callx_ids.iter().copied())
        }
    }

    pub fn map(&self, idx: usize) -> Option<&MapSlot> {
        self.maps.get(idx).and_then(Option::as_ref)
    }
}
