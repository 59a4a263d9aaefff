//! Reading the program a subcommand works on: raw instructions or an ELF
//! object (one program chosen with `--program`). Every subcommand goes
//! through [`load`], so each accepts the same inputs and names errors the
//! same way (file, program, instruction, source line).

use anyhow::{bail, Context as _};
use bpfc_compiler::bind::{BindError, BoundProgram};
use bpfc_compiler::isa::{decode_program, Endian, Insn};
use bpfc_compiler::loader::{
    self, Btf, LineInfo, LoadOptions, MapDef, Object, PoisonedInsn, ProgType,
};
use bpfc_compiler::progtype;
use std::path::{Path, PathBuf};

/// Flags that choose what to load from a file.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Select {
    /// ELF objects: the program to use (its name, or a section holding one program).
    #[arg(long, value_name = "NAME")]
    pub program: Option<String>,
    /// ELF objects: resolve CO-RE relocations against this BTF: raw BTF
    /// (e.g. /sys/kernel/btf/vmlinux) or an ELF file with a .BTF section.
    #[arg(long, value_name = "FILE")]
    pub btf: Option<PathBuf>,
    /// ELF objects: the value of a `.kconfig` extern, overriding the
    /// defaults (repeatable; VALUE is decimal, 0x hex, or y/n/m).
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse_kconfig)]
    pub kconfig: Vec<(String, u64)>,
    /// ELF objects: take `.kconfig` values from the running kernel (its
    /// /proc/config.gz or /boot/config-$(uname -r), its version and
    /// features) instead of bpfc's defaults; --kconfig still overrides.
    #[arg(long)]
    pub kconfig_host: bool,
}

/// `NAME=VALUE` of `--kconfig`: tristates as the kernel's config reads them
/// (`y` 1, `m` 2, `n` 0), or a number.
fn parse_kconfig(s: &str) -> Result<(String, u64), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=VALUE"))?;
    if name.is_empty() {
        return Err(format!("{s:?} has an empty name"));
    }
    let v = match value {
        "y" => 1,
        "m" => 2,
        "n" => 0,
        v => match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => v.parse(),
        }
        .map_err(|e| format!("{s:?}: value {v:?}: {e}"))?,
    };
    Ok((name.to_string(), v))
}

/// A program ready for an engine or the code generator.
pub struct Program {
    pub insns: Vec<Insn>,
    pub endian: Endian,
    /// A name for symbols and messages (the program's, or the raw file's stem).
    pub name: String,
    /// Where each instruction comes from, when the object has line info.
    pub line_info: Vec<LineInfo>,
    /// The object's maps (`MapIdx` lddw sources index them).
    pub maps: Vec<MapDef>,
    /// Instructions poisoned because their CO-RE relocation failed.
    pub poisoned: Vec<PoisonedInsn>,
    /// The object the program came from (`None` for raw instructions).
    pub object: Option<Object>,
}

impl Program {
    /// ` (file.c:12: source text)` for messages about `pc`, or nothing; at
    /// a poisoned instruction, also the CO-RE relocation that failed there.
    pub fn source_at(&self, pc: usize) -> String {
        bpfc_compiler::host::source_at(&self.line_info, &self.poisoned, pc)
    }
}

/// Whether `bytes` are an ELF file.
pub fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x7fELF")
}

/// Load and link an ELF object. A bad `--btf` file is named as such, not
/// blamed on the object.
pub fn load_object(path: &Path, bytes: &[u8], sel: &Select) -> anyhow::Result<Object> {
    let mut opts = LoadOptions::default();
    if sel.kconfig_host {
        opts.kconfig = loader::host_kconfig().context("--kconfig-host")?;
    }
    if let Some(b) = &sel.btf {
        let what = || format!("--btf {}", b.display());
        let raw = std::fs::read(b).with_context(what)?;
        opts.target_btf = Some(Btf::parse_target(&raw).with_context(what)?);
    }
    for (name, value) in &sel.kconfig {
        opts.kconfig.insert(name.clone(), *value);
    }
    loader::load(bytes, &opts).with_context(|| path.display().to_string())
}

/// Load a program: an ELF object's (see [`Select`]) or raw little-endian instructions.
pub fn load(path: &Path, sel: &Select) -> anyhow::Result<Program> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).with_context(|| file.clone())?;
    if !is_elf(&bytes) {
        if sel.program.is_some() || sel.btf.is_some() || !sel.kconfig.is_empty() || sel.kconfig_host
        {
            bail!(
                "{file}: --program, --btf, --kconfig and --kconfig-host apply to ELF objects; this is a raw instruction file"
            );
        }
        let insns = decode_program(&bytes, Endian::Little).with_context(|| file.clone())?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "prog".into());
        return Ok(Program {
            insns,
            endian: Endian::Little,
            name,
            line_info: Vec::new(),
            maps: Vec::new(),
            poisoned: Vec::new(),
            object: None,
        });
    }
    let obj = load_object(path, &bytes, sel)?;
    let prog = match (&sel.program, obj.programs.as_slice()) {
        (Some(name), _) => obj.program(name).with_context(|| file.clone())?,
        (None, [only]) => only,
        (None, []) => bail!("{file}: the object holds no programs"),
        (None, many) => {
            let names: Vec<&str> = many.iter().map(|p| p.name.as_str()).collect();
            bail!(
                "{file}: the object holds {} programs ({}); choose one with --program",
                many.len(),
                names.join(", ")
            )
        }
    };
    prog.check_loaded()
        .with_context(|| format!("{file}: program {}", prog.name))?;
    prog.check_externs().with_context(|| file.clone())?;
    Ok(Program {
        insns: prog.insns.clone(),
        endian: obj.endian,
        name: prog.name.clone(),
        line_info: prog.line_info.clone(),
        maps: obj.maps.clone(),
        poisoned: prog.poisoned.clone(),
        object: Some(obj.clone()),
    })
}

/// Read an optional input-memory file.
pub fn read_mem(path: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    match path {
        Some(p) => std::fs::read(p).with_context(|| p.display().to_string()),
        None => Ok(Vec::new()),
    }
}

/// A C identifier made from `name`, for the exported symbol.
pub fn symbol_for(name: &str) -> String {
    bpfc_compiler::host::symbol_for(name)
}

/// The program type `--type NAME` names.
pub fn prog_type_arg(name: Option<&str>) -> anyhow::Result<Option<ProgType>> {
    let Some(t) = name else { return Ok(None) };
    match progtype::by_name(t) {
        Some(ty) => Ok(Some(ty)),
        None => {
            bail!("--type {t}: not a program type (try xdp, sched_cls, socket_filter, kprobe ...)")
        }
    }
}

/// A binding error as `run` and `compile` report it: a rejection ends with
/// what to do about it.
pub fn bind_message(e: &BindError) -> String {
    match e {
        BindError::Rejected { .. } => format!(
            "{e}\n  (--no-verify skips the verifier and checks every memory access at run time)"
        ),
        _ => e.to_string(),
    }
}

/// A binding error of `file`.
pub fn rejected(file: &str, e: BindError) -> anyhow::Error {
    anyhow::anyhow!("{file}: {}", bind_message(&e))
}

/// Verify raw instructions before a run or a compilation: as `ty` when
/// given (a rejection is an error); otherwise as socket_filter, the
/// default type, and a program that type rejects stays unverified (its
/// accesses are checked at run time). Nothing with `no_verify`.
pub fn verify_raw(
    bound: &mut BoundProgram,
    ty: Option<ProgType>,
    no_verify: bool,
) -> Result<(), BindError> {
    verify_raw_for(bound, ty, no_verify, progtype::ctx::HOST_PT_REGS)
}

/// [`verify_raw`] for a target whose kprobe registers are `pt_regs` bytes.
pub fn verify_raw_for(
    bound: &mut BoundProgram,
    ty: Option<ProgType>,
    no_verify: bool,
    pt_regs: u32,
) -> Result<(), BindError> {
    if no_verify {
        return Ok(());
    }
    match ty {
        Some(ty) => {
            if !progtype::supported(ty) {
                bound.prog_type = ty.number();
                return Ok(());
            }
            bound.verify_for(ty, pt_regs)?;
            bound.convert_context(ty, None)
        }
        None => {
            let _ = bound.verify_as(ProgType::SocketFilter);
            Ok(())
        }
    }
}

/// The verifier's facts for a loaded program, as `run` binds it: an
/// object's program as its section's type (or `ty`), raw instructions as
/// [`verify_raw`] does; `None` when not verified.
pub fn verify(
    prog: &Program,
    ty: Option<ProgType>,
    no_verify: bool,
) -> Result<Option<bpfc_compiler::verifier::Facts>, BindError> {
    verify_for(prog, ty, no_verify, progtype::ctx::HOST_PT_REGS)
}

/// [`verify`] for a target whose kprobe registers are `pt_regs` bytes.
pub fn verify_for(
    prog: &Program,
    ty: Option<ProgType>,
    no_verify: bool,
    pt_regs: u32,
) -> Result<Option<bpfc_compiler::verifier::Facts>, BindError> {
    if no_verify {
        return Ok(None);
    }
    match &prog.object {
        Some(obj) => {
            let p = obj
                .programs
                .iter()
                .find(|p| p.name == prog.name)
                .expect("load picked a program of this object");
            bpfc_compiler::bind::verify_program_with(obj, p, ty, true, pt_regs)
        }
        None => {
            let mut bound = BoundProgram::raw(&prog.insns, prog.endian, &Default::default());
            bound.name = prog.name.clone();
            verify_raw_for(&mut bound, ty, false, pt_regs)?;
            Ok(bound.facts)
        }
    }
}
