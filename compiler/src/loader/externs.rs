//! Extern symbols (undefined, global or weak, untyped, named), classified as
//! libbpf classifies them: by the BTF `VAR` or `FUNC` of that name (extern
//! linkage) and the datasec that holds it. `.kconfig` variables get values
//! from [`crate::loader::LoadOptions::kconfig`] by libbpf's rules; `.ksyms`
//! variables and functions need the kernel's BTF ids; a symbol with no such
//! BTF (an inline-assembly constant, or an object built without BTF) cannot
//! be resolved. Each failure belongs to the programs that use the symbol.

use super::btf::{Btf, TypeKind};
use super::elf::ElfFile;
use object::elf as E;
use std::collections::BTreeMap;

/// `BTF_VAR_GLOBAL_EXTERN` and `BTF_FUNC_EXTERN`.
const EXTERN_LINKAGE: u32 = 2;

/// What an extern symbol is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Extern {
    /// A `__kconfig` variable of `size` bytes.
    Kconfig { size: u64, weak: bool },
    /// A `__ksym` variable: the address of a kernel variable.
    Ksym,
    /// A `__ksym` function: a kfunc.
    Kfunc,
    /// Not usable, and why.
    Unusable(String),
}

/// Every extern of the object, by name.
pub(crate) type Externs = BTreeMap<String, Extern>;

/// Whether symbol `s` is an extern in libbpf's sense.
fn is_extern(s: &super::elf::ElfSymbol) -> bool {
    s.section.is_none()
        && s.undefined
        && s.is_global()
        && s.kind == E::STT_NOTYPE
        && !s.name.is_empty()
}

/// Classify every extern. `gcc`: GCC 12's BTF marks extern variables
/// global and extern functions static, and puts no function in `.ksyms`;
/// for its objects the undefined ELF symbol says the name is an extern, a
/// variable's datasec says which kind, and a function in no datasec is a
/// kfunc.
pub(crate) fn classify(elf: &ElfFile, btf: Option<&Btf>, gcc: bool) -> Externs {
    let mut out = Externs::new();
    for s in elf.symbols.iter().filter(|s| is_extern(s)) {
        let weak = s.bind == E::STB_WEAK;
        out.insert(s.name.clone(), classify_one(btf, &s.name, weak, gcc));
    }
    out
}

fn classify_one(btf: Option<&Btf>, name: &str, weak: bool, gcc: bool) -> Extern {
    let Some(btf) = btf else {
        return Extern::Unusable(
            "the object has no BTF to declare it (clang needs -g, GCC -gbtf); libbpf refuses such externs".into(),
        );
    };
    let found = btf.types.iter().enumerate().find(|(_, t)| {
        t.name == name && matches!(t.kind, TypeKind::Var { .. } | TypeKind::Func { .. })
    });
    let Some((id, t)) = found else {
        return Extern::Unusable(
            "no BTF variable or function declares it (not a __kconfig or __ksym extern, e.g. an inline-assembly constant); libbpf refuses it".into(),
        );
    };
    let linkage = match t.kind {
        TypeKind::Var { linkage, .. } => linkage,
        TypeKind::Func { linkage, .. } => linkage as u32,
        _ => unreachable!("filtered above"),
    };
    if linkage != EXTERN_LINKAGE && !gcc {
        return Extern::Unusable(format!(
            "its BTF {} is not declared extern",
            t.kind.kind_name()
        ));
    }
    let datasec = btf.types.iter().find(|d| match &d.kind {
        TypeKind::Datasec { vars, .. } => vars.iter().any(|v| v.type_id as usize == id),
        _ => false,
    });
    match (datasec.map(|d| d.name.as_str()), &t.kind) {
        (Some(".kconfig"), TypeKind::Var { type_id, .. }) => match btf.size_of(*type_id) {
            Some(size) => Extern::Kconfig { size, weak },
            None => Extern::Unusable("its .kconfig type has no size".into()),
        },
        (Some(".kconfig"), _) => Extern::Unusable("a function cannot be a .kconfig extern".into()),
        (Some(".ksyms"), TypeKind::Var { .. }) => Extern::Ksym,
        (Some(".ksyms"), _) => Extern::Kfunc,
        (Some(other), _) => Extern::Unusable(format!("extern in unknown section {other}")),
        (None, TypeKind::Func { .. }) if gcc => Extern::Kfunc,
        (None, _) => Extern::Unusable("its BTF declaration is in no datasec".into()),
    }
}

/// The value of `.kconfig` extern `name`, by libbpf's rules: the configured
/// value if there is one; otherwise 0 for a `__weak` `CONFIG_*` or `LINUX_*`
/// extern, and an error for a strong one or any other name.
pub(crate) fn kconfig_value(
    name: &str,
    weak: bool,
    values: &BTreeMap<String, u64>,
) -> Result<u64, String> {
    if let Some(&v) = values.get(name) {
        return Ok(v);
    }
    let known = name.starts_with("CONFIG_") || name.starts_with("LINUX_");
    match (known, weak) {
        (true, true) => Ok(0),
        (true, false) if name.starts_with("CONFIG_") => Err(
            "no value for this .kconfig extern (not in the configuration; --kconfig-host reads the running kernel's, --kconfig NAME=VALUE sets one, __weak makes it 0)".into(),
        ),
        (true, false) => Err(
            "unknown virtual .kconfig extern (libbpf provides LINUX_KERNEL_VERSION, LINUX_HAS_BPF_COOKIE and LINUX_HAS_SYSCALL_WRAPPER; __weak makes it 0)".into(),
        ),
        (false, _) => Err(
            "a .kconfig extern's name must start with CONFIG_ or LINUX_ (or be given with --kconfig NAME=VALUE)".into(),
        ),
    }
}
