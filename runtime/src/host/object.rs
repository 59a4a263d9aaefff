//! A self-describing object, opened from its descriptor (`NAME__object`)
//! and loaded as libbpf loads an object: its maps created (pinned ones
//! reused, global data written, `.rodata` and `.kconfig` frozen), the map
//! and helper tables filled in, prog arrays and maps of maps given their
//! initial slots. Programs then run on a context from any thread. The
//! descriptor is either linked into the process (AOT, `bpfc compile`) or
//! lives in memory a JIT compiled the object into ([`HostObject::open_owned`]):
//! both are loaded, bound and run by this one code.

use super::desc::{Desc, MapDesc, MapKind, ObjectNative, ProgCode, SlotInit, OBJECT_MAGIC};
use crate::abi::{Fault, FaultCode, ProgNative};
use crate::maps::{self, errno, Map, MapBtf, MapError, MapOptions, MapSpec, MapType};
use crate::programs::{self, TailTarget};
use crate::{ExecContext, HelperTable};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// An error with the errno the C API returns for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostError {
    pub errno: i32,
    pub message: String,
}

impl HostError {
    pub fn new(errno: i32, message: impl Into<String>) -> HostError {
        HostError {
            errno,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HostError {}

impl From<MapError> for HostError {
    fn from(e: MapError) -> HostError {
        HostError::new(e.code(), e.to_string())
    }
}

type EntryFn = unsafe extern "C" fn(u64, u64, *mut ExecContext, *mut Fault) -> u64;

/// One program of a loaded object.
pub struct AotProgram {
    pub name: String,
    pub section: String,
    pub prog_type: u32,
    /// What r1 points to (`desc::CTX_*`).
    pub ctx: u32,
    /// The context bytes a run must give (`desc::ProgDesc::ctx_min`).
    pub ctx_min: u32,
    entry: EntryFn,
    native: ProgNative,
    /// The maps of the object (checked runs list their memory).
    maps: Vec<Arc<Map>>,
    checked: bool,
    reads_stack: bool,
    /// The memory the code lives in, when it is not the process's own
    /// (JIT): kept as long as the program can run.
    _code: Option<Code>,
}

/// What owns the memory of an object's code and descriptor (a JIT's
/// module); `None` for objects linked into the process.
pub type Code = Arc<dyn std::any::Any + Send + Sync>;

/// How a run of a program ended without a return value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunFault {
    pub code: u32,
    pub pc: u32,
    pub detail: u64,
    pub message: String,
}

impl AotProgram {
    /// Refuse a context of `size` bytes smaller than the program reads or
    /// writes, as the kernel's test run does (`-EINVAL`).
    pub fn check_ctx_size(&self, size: usize) -> Result<(), HostError> {
        if size < self.ctx_min as usize {
            return Err(HostError::new(
                errno::EINVAL,
                format!(
                    "program {} accesses {} bytes of its context; a context of {size} bytes is too small",
                    self.name, self.ctx_min
                ),
            ));
        }
        Ok(())
    }

    /// Run with r1 = `r1`, r2 = `r2` on CPU slot `cpu`.
    pub fn run(&self, r1: u64, r2: u64, cpu: u32) -> Result<u64, RunFault> {
        let mut ctx = self.exec_context(cpu);
        self.run_in(r1, r2, &mut ctx)
    }

    /// A fresh execution context for a run on CPU slot `cpu`.
    pub fn exec_context(&self, cpu: u32) -> ExecContext {
        let mut ctx = ExecContext::new();
        ctx.cpu = cpu;
        ctx.checked = self.checked;
        if self.checked {
            for m in &self.maps {
                ctx.regions.add_map(m);
            }
        }
        ctx
    }

    /// Run in `ctx` (a packet run's context holds its packet).
    pub fn run_in(&self, r1: u64, r2: u64, ctx: &mut ExecContext) -> Result<u64, RunFault> {
        let mut fault = Fault::default();
        let entry = self.entry;
        let (r0, fault) = crate::context::run_section(
            self.reads_stack,
            ctx,
            |ctx| {
                // SAFETY: `entry` is the object's entry function with the
                // documented ABI; it touches its frames, the context the
                // caller vouches for, map memory (the maps live as long as
                // `self`) and `fault`.
                let r0 = unsafe { entry(r1, r2, ctx, &mut fault) };
                (r0, fault)
            },
            |(_, f)| f.code != 0,
        );
        if fault.code == 0 {
            return Ok(r0);
        }
        let what = FaultCode::from_raw(fault.code).map_or("unknown fault", FaultCode::describe);
        let mut message = format!("program {}: instruction {}: {what}", self.name, fault.pc);
        if fault.detail != 0 {
            message.push_str(&format!(" ({:#x})", fault.detail));
        }
        if let Some(m) = ctx.fault.take() {
            message.push_str(&format!(": {m}"));
        }
        Err(RunFault {
            code: fault.code,
            pc: fault.pc,
            detail: fault.detail,
            message,
        })
    }
}

/// What a packet run ([`AotProgram::test_run`]) is given.
#[derive(Clone, Copy, Debug, Default)]
pub struct TestRun<'a> {
    pub data_in: &'a [u8],
    pub ctx_in: Option<&'a [u8]>,
    pub repeat: u32,
    pub cpu: u32,
}

impl AotProgram {
    /// Run as the kernel's `BPF_PROG_TEST_RUN`: network programs on a
    /// packet (`data_in`, an Ethernet frame) and their native context
    /// built from `ctx_in`; other programs on a copy of `ctx_in`.
    pub fn test_run(&self, t: &TestRun) -> Result<crate::net::TestOutput, HostError> {
        use super::desc::CTX_BYTES;
        let setup = |e: crate::net::SetupError| HostError::new(e.errno(), e.to_string());
        let fault = |f: RunFault| HostError::new(errno::EFAULT, f.message);
        let mut ctx = self.exec_context(t.cpu);
        if self.ctx == CTX_BYTES {
            if !t.data_in.is_empty() {
                return Err(HostError::new(
                    errno::EINVAL,
                    format!(
                        "program {} does not run on packets (data_in given)",
                        self.name
                    ),
                ));
            }
            self.check_ctx_size(t.ctx_in.map_or(0, <[u8]>::len))?;
            let mut mem = t.ctx_in.unwrap_or_default().to_vec();
            let start = std::time::Instant::now();
            let mut r0 = 0;
            for _ in 0..t.repeat.max(1) {
                let (r1, r2) = if mem.is_empty() {
                    (0, 0)
                } else {
                    (mem.as_mut_ptr() as u64, mem.len() as u64)
                };
                r0 = self.run_in(r1, r2, &mut ctx).map_err(fault)?;
            }
            return Ok(crate::net::TestOutput {
                retval: r0 as u32,
                r0,
                data_out: Vec::new(),
                ctx_out: mem,
                duration: (start.elapsed().as_nanos() / u128::from(t.repeat.max(1))) as u64,
                redirect: None,
            });
        }
        let net = crate::net::setup(self.prog_type, t.data_in, t.ctx_in)
            .ok_or_else(|| {
                HostError::new(
                    errno::EINVAL,
                    format!(
                        "program {} (type {}) does not run on packets",
                        self.name, self.prog_type
                    ),
                )
            })?
            .map_err(setup)?;
        crate::net::test_run(net, &mut ctx, t.repeat, |mem, ctx| {
            self.run_in(mem.as_mut_ptr() as u64, mem.len() as u64, ctx)
        })
        .map_err(fault)
    }
}

impl TailTarget for AotProgram {
    fn native(&self) -> &ProgNative {
        &self.native
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn into_any_arc(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

// SAFETY: the entry is reentrant code; the rest is owned data and maps,
// which are themselves shared between threads.
unsafe impl Send for AotProgram {}
// SAFETY: as above.
unsafe impl Sync for AotProgram {}

/// Descriptors whose objects are open: an object's tables exist once in
/// the process, so it can be open once at a time.
fn claimed() -> std::sync::MutexGuard<'static, BTreeSet<usize>> {
    static C: OnceLock<Mutex<BTreeSet<usize>>> = OnceLock::new();
    C.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// A global data map's value before the object is loaded: the host may
/// change it (skeletons' `rodata`, `data`, `bss`), load writes it.
pub struct Image {
    words: Vec<u64>,
    len: usize,
}

impl Image {
    fn new(m: &MapDesc) -> Image {
        let len = m.value_size as usize;
        let mut words = vec![0u64; len.div_ceil(8).max(1)];
        // SAFETY: `words` has at least `len` bytes; any bytes are valid u64s.
        let bytes = unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), len) };
        let n = m.data.len().min(len);
        bytes[..n].copy_from_slice(&m.data[..n]);
        Image { words, len }
    }

    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.words.as_mut_ptr().cast()
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: as in `new`.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }
}

/// Make the map `m` describes (as `spec`), as loading an object does: one
/// pinned by name is opened under the pin root if it is there, else made
/// and pinned (another process pinning it first wins); a new global data
/// map gets `image` (shorter than the value: zeroes follow), and
/// `.rodata` and `.kconfig` are frozen. Shared by [`HostObject::load`]
/// and the compiler's binding step (`bpfc run`), so maps are made by one
/// rule whichever engine runs the code.
pub fn create_map(
    m: &MapDesc,
    spec: &MapSpec,
    image: Option<&[u8]>,
    opts: &LoadOptions,
) -> Result<Arc<Map>, MapError> {
    let make = || -> Result<Arc<Map>, MapError> {
        let map = Map::create_with(spec, &opts.maps)?;
        if m.kind.is_global() {
            if let Some(img) = image {
                let mut value = vec![0u8; map.user_value_size()];
                let n = img.len().min(value.len());
                value[..n].copy_from_slice(&img[..n]);
                map.update(&0u32.to_ne_bytes(), &value, 0)?;
            }
            if matches!(m.kind, MapKind::Rodata | MapKind::Kconfig) {
                map.freeze()?;
            }
        }
        Ok(map)
    };
    if m.pinning != 1 {
        return make();
    }
    let root = opts.pin_root.as_ref().unwrap_or(&opts.maps.pin_dir);
    let path = root.join(&m.name);
    if path.exists() {
        return Map::open_pinned(&path, Some(spec));
    }
    let map = make()?;
    match map.pin(&path) {
        Ok(()) => Ok(map),
        // Another process pinned it first: use theirs.
        Err(e) if e.code() == errno::EEXIST => Map::open_pinned(&path, Some(spec)),
        Err(e) => Err(e),
    }
}

/// How an object is loaded.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    pub maps: MapOptions,
    /// Where maps with `pinning = LIBBPF_PIN_BY_NAME` live (default: the
    /// maps' pin directory).
    pub pin_root: Option<PathBuf>,
}

/// An opened (and maybe loaded) object.
pub struct HostObject {
    native: *const ObjectNative,
    pub desc: Desc,
    /// Global data images until load, by map index.
    pub images: Vec<Option<Image>>,
    pub maps: Vec<Option<Arc<Map>>>,
    pub progs: Vec<Arc<AotProgram>>,
    pub opts: LoadOptions,
    loaded: bool,
    /// Owns `native` and the code when they are not static (JIT).
    code: Option<Code>,
}

// SAFETY: `native` points at the object's static data, which is only
// written (its tables) under `&mut self`.
unsafe impl Send for HostObject {}
// SAFETY: as above.
unsafe impl Sync for HostObject {}

impl HostObject {
    /// Open the object `native` describes (checks its version and image).
    ///
    /// # Safety
    /// `native` must be NULL or point at a `struct bpfc_object_desc` as
    /// `bpfc compile` wrote it, linked into this process.
    pub unsafe fn open(native: *const ObjectNative) -> Result<HostObject, HostError> {
        // SAFETY: the caller's promise.
        unsafe { Self::open_with(native, None) }
    }

    /// Open a descriptor that `code` owns (with the code and tables it
    /// points at), as a JIT leaves it: `code` lives as long as the object
    /// or any of its programs does.
    ///
    /// # Safety
    /// `native` must point at a descriptor in the layout `bpfc compile`
    /// writes for this host, valid while `code` lives.
    pub unsafe fn open_owned(
        native: *const ObjectNative,
        code: Code,
    ) -> Result<HostObject, HostError> {
        // SAFETY: the caller's promise.
        unsafe { Self::open_with(native, Some(code)) }
    }

    unsafe fn open_with(
        native: *const ObjectNative,
        code: Option<Code>,
    ) -> Result<HostObject, HostError> {
        let bad = |m: String| HostError::new(errno::EINVAL, m);
        // SAFETY: the caller's promise; NULL is refused.
        let n = unsafe { native.as_ref() }.ok_or_else(|| bad("no object descriptor".into()))?;
        if n.magic != OBJECT_MAGIC {
            return Err(bad(
                "not a bpfc object descriptor (bad magic): is the object compiled for this target?"
                    .into(),
            ));
        }
        if n.version != super::desc::DESC_VERSION {
            return Err(bad(format!(
                "object descriptor version {} (this runtime reads version {}): recompile the object with this bpfc",
                n.version,
                super::desc::DESC_VERSION
            )));
        }
        if n.image.is_null() || n.image_len > (64 << 20) {
            return Err(bad("corrupt object descriptor: bad image".into()));
        }
        // SAFETY: the image the descriptor points at, of its length.
        let image = unsafe { std::slice::from_raw_parts(n.image, n.image_len as usize) };
        let desc =
            Desc::decode(image).map_err(|e| bad(format!("corrupt object descriptor: {e}")))?;
        if desc.progs.len() != n.nprogs as usize
            || desc.maps.len() as u64 != n.nmaps
            || desc.helpers.len() as u64 != n.nhelpers
            || n.maps.is_null()
            || n.helpers.is_null()
            || (n.progs.is_null() && n.nprogs > 0)
        {
            return Err(bad(format!(
                "corrupt object descriptor of {}: its tables do not match its image",
                desc.name
            )));
        }
        if !claimed().insert(native as usize) {
            return Err(HostError::new(
                errno::EBUSY,
                format!(
                    "object {} is already open in this process; destroy it first",
                    desc.name
                ),
            ));
        }
        let images = desc
            .maps
            .iter()
            .map(|m| m.kind.is_global().then(|| Image::new(m)))
            .collect();
        Ok(HostObject {
            native,
            images,
            maps: vec![None; desc.maps.len()],
            progs: Vec::new(),
            desc,
            opts: LoadOptions::default(),
            loaded: false,
            code,
        })
    }

    pub fn name(&self) -> &str {
        &self.desc.name
    }

    pub fn loaded(&self) -> bool {
        self.loaded
    }

    fn native(&self) -> &ObjectNative {
        // SAFETY: checked non-null in `open`; static data of the process,
        // or memory `self.code` keeps.
        unsafe { &*self.native }
    }

    /// Create the maps, fill the tables, make the programs.
    pub fn load(&mut self) -> Result<(), HostError> {
        if self.loaded() {
            return Err(HostError::new(
                errno::EBUSY,
                format!("object {} is already loaded", self.desc.name),
            ));
        }
        let r = self.load_inner();
        match r {
            Ok(()) => self.loaded = true,
            Err(_) => self.unload(),
        }
        r
    }

    fn load_inner(&mut self) -> Result<(), HostError> {
        let obj = self.desc.name.clone();
        let ctx = |m: &MapDesc| {
            let what = format!("object {obj}: map {}", m.name);
            move |e: MapError| HostError::new(e.code(), format!("{what}: {e}"))
        };
        for i in 0..self.desc.maps.len() {
            let m = &self.desc.maps[i];
            if m.kind == MapKind::Absent {
                continue;
            }
            let spec = self.spec(m)?;
            let image = self.images[i].as_ref().map(Image::bytes);
            let map = create_map(m, &spec, image, &self.opts).map_err(ctx(m))?;
            self.maps[i] = Some(map);
        }
        let n = *self.native();
        // The helper table.
        let table = HelperTable::kernel();
        for (slot, &id) in self.desc.helpers.iter().enumerate() {
            let h = table.get(id).ok_or_else(|| {
                HostError::new(
                    errno::ENOTSUP,
                    format!(
                        "object {}: helper {id}{} is not provided by this runtime",
                        self.desc.name,
                        crate::helpers::kernel_name(id.into())
                            .map(|n| format!(" (bpf_{n})"))
                            .unwrap_or_default()
                    ),
                )
            })?;
            // SAFETY: the helper table has `nhelpers` slots (checked in
            // `open`); nothing runs the object's code before load returns.
            unsafe { *n.helpers.add(slot) = h.func as *const u8 };
        }
        for (i, m) in self.maps.iter().enumerate() {
            let p = m
                .as_ref()
                .map_or(std::ptr::null(), |m| m.as_ptr().cast::<u8>());
            // SAFETY: the map table has `nmaps` slots (checked in `open`).
            unsafe { *n.maps.add(i) = p };
        }
        let all: Vec<Arc<Map>> = self.maps.iter().flatten().cloned().collect();
        for (i, p) in self.desc.progs.iter().enumerate() {
            // SAFETY: `progs` has `nprogs` entries (checked in `open`).
            let code: &ProgCode = unsafe { &*n.progs.add(i) };
            if code.entry.is_null() || code.main.is_null() {
                return Err(HostError::new(
                    errno::EINVAL,
                    format!("corrupt object descriptor: program {} has no code", p.name),
                ));
            }
            // SAFETY: the entry `bpfc compile` wrote, with the entry ABI.
            let entry = unsafe { std::mem::transmute::<*const u8, EntryFn>(code.entry) };
            let prog = Arc::new(AotProgram {
                name: p.name.clone(),
                section: p.section.clone(),
                prog_type: p.prog_type,
                ctx: p.ctx,
                ctx_min: p.ctx_min,
                entry,
                native: ProgNative {
                    func: code.main,
                    prog: std::ptr::null(),
                    id: programs::next_id(),
                    prog_type: p.prog_type,
                },
                maps: all.clone(),
                checked: self.desc.checked,
                reads_stack: p.reads_stack,
                _code: self.code.clone(),
            });
            let t: Arc<dyn TailTarget> = prog.clone();
            programs::register(&t);
            self.progs.push(prog);
        }
        self.fill_slots()?;
        for img in &mut self.images {
            *img = None;
        }
        Ok(())
    }

    /// The runtime definition of map `m`.
    fn spec(&self, m: &MapDesc) -> Result<MapSpec, HostError> {
        let map_type = MapType::from_raw(m.map_type).ok_or_else(|| {
            HostError::new(
                errno::EINVAL,
                format!(
                    "object {}: map {}: type {} is not a map bpfc can create",
                    self.desc.name, m.name, m.map_type
                ),
            )
        })?;
        let inner = match &m.inner {
            Some(i) => Some(Box::new(self.spec(i)?)),
            None => None,
        };
        let mut max_entries = m.max_entries;
        if map_type == MapType::PerfEventArray && max_entries == 0 {
            max_entries = maps::possible_cpus();
        }
        let btf = (!self.desc.btf.is_empty() && m.value_type_id != 0).then(|| MapBtf {
            raw: self.desc.btf.clone(),
            key_type_id: m.key_type_id,
            value_type_id: m.value_type_id,
        });
        Ok(MapSpec {
            name: m.name.clone(),
            map_type,
            key_size: m.key_size,
            value_size: m.value_size,
            max_entries,
            flags: m.flags,
            map_extra: m.map_extra,
            inner,
            spin_lock_off: m.spin_lock_off,
            timer_off: m.timer_off,
            btf,
        })
    }

    /// Initial slots of maps of maps and prog arrays.
    fn fill_slots(&self) -> Result<(), HostError> {
        for (i, m) in self.desc.maps.iter().enumerate() {
            let Some(outer) = &self.maps[i] else { continue };
            for (slot, init) in &m.initial {
                let bad = |what: String, why: String| {
                    HostError::new(
                        errno::EINVAL,
                        format!(
                            "object {}: map {}: initial slot {slot} names {what}, which {why}",
                            self.desc.name, m.name
                        ),
                    )
                };
                match init {
                    SlotInit::Map(idx) => {
                        let inner = self
                            .maps
                            .get(*idx as usize)
                            .and_then(Option::as_ref)
                            .ok_or_else(|| bad(format!("map #{idx}"), "was not created".into()))?;
                        outer
                            .update(&slot.to_ne_bytes(), &inner.id().to_ne_bytes(), 0)
                            .map_err(|e| bad(format!("map {}", inner.name()), e.to_string()))?;
                    }
                    SlotInit::Program(name) => {
                        let prog =
                            self.progs.iter().find(|p| &p.name == name).ok_or_else(|| {
                                bad(format!("program {name}"), "is not in this object".into())
                            })?;
                        outer
                            .update(&slot.to_ne_bytes(), &prog.native.id.to_ne_bytes(), 0)
                            .map_err(|e| bad(format!("program {name}"), e.to_string()))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Empty the tables, drop the maps and programs.
    fn unload(&mut self) {
        let n = *self.native();
        for i in 0..self.desc.maps.len() {
            // SAFETY: `nmaps` slots, checked in `open`.
            unsafe { *n.maps.add(i) = std::ptr::null() };
        }
        for i in 0..self.desc.helpers.len() {
            // SAFETY: `nhelpers` slots, checked in `open`.
            unsafe { *n.helpers.add(i) = std::ptr::null() };
        }
        self.progs.clear();
        for m in &mut self.maps {
            *m = None;
        }
    }

    pub fn map_index(&self, name: &str) -> Option<usize> {
        self.desc.map_index(name)
    }

    /// The live map called `name` (after load).
    pub fn map(&self, name: &str) -> Result<Arc<Map>, HostError> {
        let i = self.map_index(name).ok_or_else(|| {
            HostError::new(
                errno::ENOENT,
                format!("object {} has no map {name}", self.desc.name),
            )
        })?;
        self.maps[i].clone().ok_or_else(|| {
            HostError::new(
                errno::EINVAL,
                format!(
                    "map {name} of object {} does not exist yet: load the object first",
                    self.desc.name
                ),
            )
        })
    }

    /// The program called `name` (after load).
    pub fn program(&self, name: &str) -> Result<&AotProgram, HostError> {
        let i = self.prog_index(name).ok_or_else(|| {
            HostError::new(
                errno::ENOENT,
                format!("object {} has no program {name}", self.desc.name),
            )
        })?;
        self.progs.get(i).map(|p| &**p).ok_or_else(|| {
            HostError::new(
                errno::EINVAL,
                format!("object {} is not loaded", self.desc.name),
            )
        })
    }

    /// [`HostObject::global_ptr`] for reading.
    pub fn global_ptr_const(&self, name: &str) -> Option<*const u8> {
        let i = self.map_index(name)?;
        if let Some(img) = self.images.get(i).and_then(Option::as_ref) {
            return Some(img.bytes().as_ptr());
        }
        let m = self.maps.get(i)?.as_ref()?;
        let v = m.native().values;
        (!v.is_null() && !m.map_type().is_percpu()).then_some(v.cast_const())
    }

    /// Global data `name` (`.bss` ...): the image load will write, before
    /// load; the map's value memory after.
    pub fn global_ptr(&mut self, name: &str) -> Option<*mut u8> {
        let i = self.map_index(name)?;
        if let Some(img) = self.images.get_mut(i).and_then(Option::as_mut) {
            return Some(img.as_mut_ptr());
        }
        let m = self.maps.get(i)?.as_ref()?;
        let v = m.native().values;
        (!v.is_null() && !m.map_type().is_percpu()).then_some(v)
    }

    /// The key hooks know this object's attachments by.
    pub fn hook_owner(&self) -> usize {
        self.native as usize
    }

    pub fn prog_index(&self, name: &str) -> Option<usize> {
        self.desc.progs.iter().position(|p| p.name == name)
    }
}

impl Drop for HostObject {
    fn drop(&mut self) {
        // No hook runs a program of this object once its tables are empty.
        super::hooks::detach_owner(self.hook_owner());
        self.unload();
        claimed().remove(&(self.native as usize));
    }
}
