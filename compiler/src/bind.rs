//! Binding: a loaded program plus a runtime instance's objects (its maps,
//! helper table and prog arrays) becomes a [`BoundProgram`], the one input
//! of the interpreter, the JIT and the AOT writer. [`Instance`] creates the
//! maps of an object as libbpf does (definitions checked, pinned maps
//! reused, global data filled in, `.rodata` frozen), and [`Instance::bind`]
//! checks that everything a program refers to exists and runs the verifier
//! (program types it models; [`Verify`]): a rejected program is not bound,
//! an accepted one carries the verifier's [`Facts`] to the engines.

use crate::codegen::{Binding, MapSlot};
use crate::isa::{CallTarget, Endian, Insn, LddwSrc};
use crate::loader::btf::{Btf, TypeKind};
use crate::loader::{classify, LineInfo, MapDef, MapInit, MapOrigin, Object, ProgType, Program};
use crate::progtype;
use crate::verifier::{self, report, Facts};
use bpfc_runtime::host::object::{create_map, LoadOptions};
use bpfc_runtime::maps::{self, Map, MapError, MapOptions, MapSpec, MapType};
use bpfc_runtime::HelperTable;
use std::path::PathBuf;
use std::sync::Arc;
use thiserror::Error;

/// Why an object's maps could not be made, or a program not bound.
#[derive(Debug, Error)]
pub enum BindError {
    #[error("map {map}: {error}")]
    Map { map: String, error: MapError },
    #[error("map {map}: type {type_name} ({number}) is not a map bpfc can create")]
    UnknownMapType {
        map: String,
        type_name: &'static str,
        number: u32,
    },
    #[error("program {program} instruction {pc}: uses map {map}, which {why}")]
    MissingMap {
        program: String,
        pc: usize,
        map: String,
        why: String,
    },
    #[error(
        "program {program} instruction {pc}: offset {off} is outside map {map}'s {size}-byte value"
    )]
    ValueOffset {
        program: String,
        pc: usize,
        map: String,
        off: u32,
        size: u32,
    },
    #[error("program {program} instruction {pc}: calls helper {id}{}, which bpfc does not provide", name.map(|n| format!(" (bpf_{n})")).unwrap_or_default())]
    UnknownHelper {
        program: String,
        pc: usize,
        id: i32,
        name: Option<&'static str>,
    },
    #[error("program {program} instruction {pc}: {what} cannot be resolved outside the kernel")]
    Unresolvable {
        program: String,
        pc: usize,
        what: String,
    },
    /// The verifier rejected the program: `text` is the rejection as
    /// `bpfc verify` prints it (program, instruction, source line, reason).
    #[error("{}", text.trim_end())]
    Rejected {
        program: String,
        pc: Option<usize>,
        text: String,
    },
    #[error("program {program} instruction {pc}: {message}")]
    Context {
        program: String,
        pc: usize,
        message: String,
    },
    #[error("map {map}: initial slot {slot} names {what} {name}, which {why}")]
    BadInitial {
        map: String,
        slot: u32,
        what: &'static str,
        name: String,
        why: String,
    },
}

/// A program ready for an engine.
#[derive(Clone, Debug)]
pub struct BoundProgram {
    pub name: String,
    pub insns: Vec<Insn>,
    pub endian: Endian,
    pub helpers: HelperTable,
    /// The object's maps by index (`None`: not created, never referenced).
    pub maps: Vec<Option<Arc<Map>>>,
    /// `enum bpf_prog_type` number (0 for raw bytecode of no given type).
    pub prog_type: u32,
    /// What the verifier proved, per instruction slot; `None`: not verified
    /// (skipped, or a program type the verifier does not model), so the
    /// engines must check every access.
    pub facts: Option<Facts>,
    /// The context conversion the instructions went through
    /// ([`progtype::convert`]): `Some(Xdp | Skb)`: r1 must point at the
    /// runtime's native `xdp_md` / `__sk_buff` of a packet run; `None`: the
    /// context is the bytes the host passes.
    pub ctx: Option<progtype::convert::CtxKind>,
}

impl BoundProgram {
    /// Raw bytecode with no maps.
    pub fn raw(insns: &[Insn], endian: Endian, helpers: &HelperTable) -> BoundProgram {
        BoundProgram {
            name: "prog".to_string(),
            insns: insns.to_vec(),
            endian,
            helpers: helpers.clone(),
            maps: Vec::new(),
            prog_type: 0,
            facts: None,
            ctx: None,
        }
    }

    /// Verify raw bytecode (no maps, BTF or line info) as a program of type
    /// `ty` and record the facts; the type becomes the program's.
    pub fn verify_as(&mut self, ty: ProgType) -> Result<(), BindError> {
        self.verify_for(ty, progtype::ctx::HOST_PT_REGS)
    }

    /// [`BoundProgram::verify_as`] for a target whose kprobe `pt_regs` is
    /// `pt_regs` bytes ([`progtype::ctx::pt_regs_size`]).
    pub fn verify_for(&mut self, ty: ProgType, pt_regs: u32) -> Result<(), BindError> {
        let input = verifier::Input {
            insns: &self.insns,
            maps: &[],
            btf: None,
            func_info: &[],
            endian: self.endian,
        };
        let mut opts = verifier::Options::new(ty);
        opts.sleepable = ty == ProgType::Syscall;
        opts.pt_regs = pt_regs;
        let facts = run_verifier(&self.name, &input, &opts, &[])?;
        self.facts = Some(facts);
        self.prog_type = ty.number();
        Ok(())
    }

    /// Convert the context accesses of a verified program of type `ty`
    /// (expected attach type `attach`) to the runtime's native context, as
    /// the kernel's `convert_ctx_access` does; programs whose context needs
    /// no conversion are left as they are.
    pub fn convert_context(&mut self, ty: ProgType, attach: Option<&str>) -> Result<(), BindError> {
        use progtype::convert::{self, CtxKind};
        let Some(facts) = &self.facts else {
            return Ok(());
        };
        let kind = convert::ctx_kind(ty);
        if !matches!(kind, Some(CtxKind::Xdp | CtxKind::Skb)) {
            return Ok(());
        }
        self.insns =
            convert::convert(&self.insns, facts, ty, attach, self.endian).map_err(|e| {
                BindError::Context {
                    program: self.name.clone(),
                    pc: e.pc,
                    message: e.message,
                }
            })?;
        self.ctx = kind;
        Ok(())
    }

    /// The code generator's view for JIT code: live addresses embedded.
    pub fn binding(&self) -> Binding {
        Binding {
            helpers: self.helpers.iter().map(|h| h.id).collect(),
            import_any_helper: false,
            maps: self
                .maps
                .iter()
                .map(|m| {
                    m.as_ref().map(|m| {
                        let n = m.native();
                        MapSlot {
                            spec: m.spec().clone(),
                            addr: Some(m.as_ptr() as u64),
                            values: (!n.values.is_null()).then_some(n.values as u64),
                            ncpus: Some(m.ncpus()),
                        }
                    })
                })
                .collect(),
            map_table: None,
            helper_table: None,
        }
    }

    /// The memory of every map the program uses, for checked runs.
    pub fn regions(&self) -> bpfc_runtime::Regions {
        let mut r = bpfc_runtime::Regions::new();
        for m in self.maps.iter().flatten() {
            r.add_map(m);
        }
        r
    }

    /// Whether the program calls a helper that reads the host's stack.
    pub fn reads_stack(&self) -> bool {
        self.insns.iter().any(|i| {
            matches!(i, Insn::Call(CallTarget::Helper(id))
                if u32::try_from(*id).is_ok_and(bpfc_runtime::helpers::reads_stack))
        })
    }

    /// The maps the program's instructions refer to, by index.
    pub fn referenced_maps(&self) -> Vec<usize> {
        referenced_maps(&self.insns)
    }
}

fn referenced_maps(insns: &[Insn]) -> Vec<usize> {
    let mut v: Vec<usize> = insns
        .iter()
        .filter_map(|i| match *i {
            Insn::Lddw {
                src: LddwSrc::MapIdx | LddwSrc::MapIdxValue,
                imm,
                ..
            } => Some(imm as u32 as usize),
            _ => None,
        })
        .collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// How an object's maps are made.
#[derive(Clone, Debug, Default)]
pub struct InstanceOptions {
    pub maps: MapOptions,
    /// Where maps with `pinning = LIBBPF_PIN_BY_NAME` live (default: the
    /// runtime's pin directory).
    pub pin_root: Option<PathBuf>,
    /// Raw bytecode and the conformance suite: calls of helpers the table
    /// lacks fault when reached instead of failing the binding.
    pub allow_unknown_helpers: bool,
    /// Whether [`Instance::bind`] runs the verifier.
    pub verify: Verify,
    /// The program type to bind (and verify) every program as, instead of
    /// the one its section name gives.
    pub prog_type: Option<ProgType>,
}

/// Whether binding runs the verifier.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Verify {
    /// Verify programs of the types the verifier models and refuse the
    /// rejected ones; programs of other types are bound unverified.
    #[default]
    Yes,
    /// Bind without verifying (`--no-verify`): the engines check every access.
    No,
}

/// Run the verifier; a rejection becomes [`BindError::Rejected`].
fn run_verifier(
    name: &str,
    input: &verifier::Input,
    opts: &verifier::Options,
    line_info: &[LineInfo],
) -> Result<Facts, BindError> {
    verifier::verify(input, opts).map(|v| v.facts).map_err(|r| {
        let mut text = report::rejection_text(name, opts.prog_type, input.insns, line_info, &r);
        if let Some(note) = ctx_field_note(opts.prog_type, input.insns, &r) {
            text = format!("{}\n  ({note})", text.trim_end());
        }
        BindError::Rejected {
            program: name.to_string(),
            pc: r.pc,
            text,
        }
    })
}

/// For a rejected context access, which field of the context it names.
fn ctx_field_note(ty: ProgType, insns: &[Insn], r: &verifier::Rejection) -> Option<String> {
    r.message.strip_prefix("invalid bpf_context access")?;
    let layout = progtype::ctx::layout(ty)?;
    let (size, off, write, sx) = match insns.get(r.pc?)? {
        Insn::Ldx { size, sx, off, .. } => (*size, *off, false, *sx),
        Insn::St { size, off, .. } | Insn::Stx { size, off, .. } => (*size, *off, true, false),
        _ => return None,
    };
    Some(progtype::convert::describe_invalid(
        layout, off, size, write, sx,
    ))
}

/// Verify `prog` of `obj` as type `ty` (default: the one its section name
/// gives): its facts, `None` when the verifier does not model the type.
pub fn verify_program(
    obj: &Object,
    prog: &Program,
    ty: Option<ProgType>,
) -> Result<Option<Facts>, BindError> {
    verify_program_with(obj, prog, ty, true, progtype::ctx::HOST_PT_REGS)
}

/// [`verify_program`]; `rodata_known: false` for code a host may run with
/// other `.rodata` values than the object's (their loads are not
/// constants then); `pt_regs`: the size of a kprobe's registers on the
/// target ([`progtype::ctx::pt_regs_size`]).
pub fn verify_program_with(
    obj: &Object,
    prog: &Program,
    ty: Option<ProgType>,
    rodata_known: bool,
    pt_regs: u32,
) -> Result<Option<Facts>, BindError> {
    let kind = classify(prog.section.trim_start_matches('?'));
    let ty = ty.unwrap_or(kind.prog_type);
    if !progtype::supported(ty) {
        return Ok(None);
    }
    let mut opts = verifier::Options::new(ty);
    opts.attach_type = kind.attach_type.map(str::to_string);
    opts.sleepable = kind.sleepable || ty == ProgType::Syscall;
    opts.gpl = license_gpl(obj.license.as_deref());
    opts.rodata_known = rodata_known;
    opts.pt_regs = pt_regs;
    let func_info: Vec<(usize, u32)> = prog.func_info.iter().map(|f| (f.pc, f.type_id)).collect();
    let input = verifier::Input {
        insns: &prog.insns,
        maps: &obj.maps,
        btf: obj.btf.as_ref(),
        func_info: &func_info,
        endian: obj.endian,
    };
    run_verifier(&prog.name, &input, &opts, &prog.line_info).map(Some)
}

/// Whether a license string is one the kernel treats as GPL-compatible.
pub fn license_gpl(l: Option<&str>) -> bool {
    matches!(
        l,
        Some(
            "GPL"
                | "GPL v2"
                | "GPL and additional rights"
                | "Dual BSD/GPL"
                | "Dual MIT/GPL"
                | "Dual MPL/GPL"
        )
    )
}

/// The runtime objects of one loaded object: its maps.
#[derive(Debug)]
pub struct Instance {
    pub maps: Vec<Option<Arc<Map>>>,
    /// The definitions the maps came from, by index.
    pub defs: Vec<MapDef>,
    opts: InstanceOptions,
}

/// Offsets of `struct bpf_spin_lock` and `struct bpf_timer` in a value type.
fn special_fields(btf: &Btf, type_id: u32) -> (Option<u32>, Option<u32>) {
    let mut lock = None;
    let mut timer = None;
    fn walk(
        btf: &Btf,
        id: u32,
        base: u32,
        depth: u32,
        lock: &mut Option<u32>,
        timer: &mut Option<u32>,
    ) {
        if depth > 8 {
            return;
        }
        let id = btf.skip_mods_and_typedefs(id);
        let Some(t) = btf.get(id) else { return };
        if let TypeKind::Struct { members, .. } = &t.kind {
            match t.name.as_str() {
                "bpf_spin_lock" => *lock = lock.or(Some(base)),
                "bpf_timer" => *timer = timer.or(Some(base)),
                _ => {
                    for m in members {
                        walk(
                            btf,
                            m.type_id,
                            base + m.bit_offset / 8,
                            depth + 1,
                            lock,
                            timer,
                        );
                    }
                }
            }
        }
    }
    walk(btf, type_id, 0, 0, &mut lock, &mut timer);
    (lock, timer)
}

/// The runtime definition of a loader map definition.
pub fn map_spec(def: &MapDef, btf: Option<&Btf>) -> Result<MapSpec, BindError> {
    let map_type = MapType::from_raw(def.map_type).ok_or(BindError::UnknownMapType {
        map: def.name.clone(),
        type_name: def.type_name(),
        number: def.map_type,
    })?;
    let (spin_lock_off, timer_off) = match (btf, def.value_type_id) {
        (Some(btf), Some(id)) => special_fields(btf, id),
        _ => (None, None),
    };
    let inner = match &def.inner {
        Some(i) => Some(Box::new(map_spec(i, btf)?)),
        None => None,
    };
    let mut max_entries = def.max_entries;
    // libbpf sizes perf event arrays and ring buffers it is not told about.
    if map_type == MapType::PerfEventArray && max_entries == 0 {
        max_entries = maps::possible_cpus();
    }
    Ok(MapSpec {
        name: def.name.clone(),
        map_type,
        key_size: def.key_size,
        value_size: def.value_size,
        max_entries,
        flags: def.map_flags,
        map_extra: def.map_extra,
        inner,
        spin_lock_off,
        timer_off,
        // The key/value BTF kept with pinned maps (`bpfc map dump` prints
        // values by type from it) needs the object's raw `.BTF` bytes, which
        // the loader does not keep yet.
        btf: None,
    })
}

fn map_err(def: &MapDef) -> impl Fn(MapError) -> BindError + '_ {
    move |error| BindError::Map {
        map: def.name.clone(),
        error,
    }
}

impl Instance {
    /// Create the maps of `obj`: every map a program can refer to (struct_ops
    /// maps and inner map templates are left out), pinned ones opened or
    /// created under the pin root, global data filled in and `.rodata` /
    /// `.kconfig` frozen.
    pub fn new(obj: &Object, opts: &InstanceOptions) -> Result<Instance, BindError> {
        let mut maps = Vec::with_capacity(obj.maps.len());
        let load = LoadOptions {
            maps: opts.maps.clone(),
            pin_root: opts.pin_root.clone(),
        };
        for def in &obj.maps {
            if matches!(def.origin, MapOrigin::StructOps | MapOrigin::Inner) {
                maps.push(None);
                continue;
            }
            // The runtime's rule, which hosts load objects by too.
            let spec = map_spec(def, obj.btf.as_ref())?;
            let desc = crate::host::map_desc(obj, def, obj.btf.as_ref())?;
            let image = (!desc.data.is_empty()).then_some(desc.data.as_slice());
            let map = create_map(&desc, &spec, image, &load).map_err(map_err(def))?;
            maps.push(Some(map));
        }
        let inst = Instance {
            maps,
            defs: obj.maps.clone(),
            opts: opts.clone(),
        };
        inst.fill_inner_maps()?;
        Ok(inst)
    }

    /// Slots of maps of maps named in the object's `values`.
    fn fill_inner_maps(&self) -> Result<(), BindError> {
        for (i, def) in self.defs.iter().enumerate() {
            let Some(outer) = &self.maps[i] else { continue };
            for (slot, init) in &def.initial {
                let MapInit::Map(inner_idx) = init else {
                    continue;
                };
                let bad = |why: String| BindError::BadInitial {
                    map: def.name.clone(),
                    slot: *slot,
                    what: "map",
                    name: self
                        .defs
                        .get(*inner_idx)
                        .map_or("?".into(), |d| d.name.clone()),
                    why,
                };
                let inner = self
                    .maps
                    .get(*inner_idx)
                    .and_then(Option::as_ref)
                    .ok_or_else(|| bad("was not created".into()))?;
                outer
                    .update(&slot.to_ne_bytes(), &inner.id().to_ne_bytes(), 0)
                    .map_err(|e| bad(e.to_string()))?;
            }
        }
        Ok(())
    }

    /// Put programs into the prog arrays' initial slots: `lookup` gives
    /// the program of a name (the engine's bound program).
    pub fn fill_prog_arrays(
        &self,
        mut lookup: impl FnMut(&str) -> Option<Arc<dyn bpfc_runtime::programs::TailTarget>>,
    ) -> Result<(), BindError> {
        for (i, def) in self.defs.iter().enumerate() {
            let Some(map) = &self.maps[i] else { continue };
            let Some(arr) = map
                .imp()
                .as_any()
                .downcast_ref::<bpfc_runtime::maps::prog_array::ProgArray>()
            else {
                continue;
            };
            for (slot, init) in &def.initial {
                let MapInit::Program(name) = init else {
                    continue;
                };
                let bad = |why: &str| BindError::BadInitial {
                    map: def.name.clone(),
                    slot: *slot,
                    what: "program",
                    name: name.clone(),
                    why: why.to_string(),
                };
                let prog = lookup(name).ok_or_else(|| bad("is not loaded"))?;
                arr.set(*slot, prog).map_err(|e| bad(&e.to_string()))?;
            }
        }
        Ok(())
    }

    /// The map called `name`.
    pub fn map(&self, name: &str) -> Option<&Arc<Map>> {
        let i = self.defs.iter().position(|d| d.name == name)?;
        self.maps[i].as_ref()
    }

    /// Bind `prog` of `obj` with `helpers`: every map and helper it uses
    /// must exist.
    pub fn bind(
        &self,
        obj: &Object,
        prog: &Program,
        helpers: &HelperTable,
    ) -> Result<BoundProgram, BindError> {
        prog.check_externs().map_err(|e| BindError::Unresolvable {
            program: prog.name.clone(),
            pc: prog.externs.first().map_or(0, |x| x.pc),
            what: e.to_string(),
        })?;
        bind_insns(
            &prog.name,
            &prog.insns,
            &self.maps,
            &self.defs,
            helpers,
            self.opts.allow_unknown_helpers,
        )?;
        let ty = self
            .opts
            .prog_type
            .unwrap_or_else(|| classify(prog.section.trim_start_matches('?')).prog_type);
        let facts = match self.opts.verify {
            Verify::Yes => verify_program(obj, prog, Some(ty))?,
            Verify::No => None,
        };
        let mut bound = BoundProgram {
            name: prog.name.clone(),
            insns: prog.insns.clone(),
            endian: obj.endian,
            helpers: helpers.clone(),
            maps: self.maps.clone(),
            prog_type: ty.number(),
            facts,
            ctx: None,
        };
        let attach = classify(prog.section.trim_start_matches('?')).attach_type;
        bound.convert_context(ty, attach)?;
        Ok(bound)
    }
}

/// Check a program's references against the maps and helpers it is bound with.
fn bind_insns(
    name: &str,
    insns: &[Insn],
    maps: &[Option<Arc<Map>>],
    defs: &[MapDef],
    helpers: &HelperTable,
    allow_unknown_helpers: bool,
) -> Result<(), BindError> {
    for (pc, insn) in insns.iter().enumerate() {
        match *insn {
            Insn::Lddw { src, imm, .. } => {
                let idx = imm as u32 as usize;
                let missing = |why: &str| BindError::MissingMap {
                    program: name.to_string(),
                    pc,
                    map: defs.get(idx).map_or(format!("#{idx}"), |d| d.name.clone()),
                    why: why.to_string(),
                };
                match src {
                    LddwSrc::MapIdx => {
                        maps.get(idx)
                            .and_then(Option::as_ref)
                            .ok_or_else(|| missing("was not created"))?;
                    }
                    LddwSrc::MapIdxValue => {
                        let m = maps
                            .get(idx)
                            .and_then(Option::as_ref)
                            .ok_or_else(|| missing("was not created"))?;
                        if m.native().values.is_null() {
                            return Err(missing("has no directly addressable value"));
                        }
                        let off = (imm >> 32) as u32;
                        if off >= m.spec().value_size {
                            return Err(BindError::ValueOffset {
                                program: name.to_string(),
                                pc,
                                map: m.name().to_string(),
                                off,
                                size: m.spec().value_size,
                            });
                        }
                    }
                    LddwSrc::MapFd | LddwSrc::MapValue => {
                        return Err(BindError::Unresolvable {
                            program: name.to_string(),
                            pc,
                            what: "a map file descriptor".into(),
                        })
                    }
                    LddwSrc::BtfId => {
                        return Err(BindError::Unresolvable {
                            program: name.to_string(),
                            pc,
                            what: "a kernel variable (BTF id)".into(),
                        })
                    }
                    LddwSrc::Imm | LddwSrc::Func => {}
                }
            }
            Insn::Call(CallTarget::Helper(id)) if !allow_unknown_helpers => {
                // Tail calls are the engines' own; a CO-RE poison call stops
                // the run only if it is reached, as in the kernel.
                let known = id == bpfc_runtime::abi::CORE_POISON_HELPER
                    || u32::try_from(id).is_ok_and(|id| {
                        helpers.contains(id) || id == bpfc_runtime::helpers::ids::TAIL_CALL
                    });
                if !known {
                    return Err(BindError::UnknownHelper {
                        program: name.to_string(),
                        pc,
                        id,
                        name: bpfc_runtime::helpers::kernel_name(id as i64),
                    });
                }
            }
            _ => {}
        }
    }
    Ok(())
}
