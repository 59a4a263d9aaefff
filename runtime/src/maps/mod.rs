//! Maps: every kernel map type bpfc can have outside a kernel, with the
//! kernel's semantics for each operation, safe to use from many threads at
//! once and, for pinned maps, from many processes (docs/maps.md).
//!
//! A [`Map`] is created from a [`MapSpec`] (what the loader's definition
//! says) and lives behind an `Arc`. It has two faces: the user-space API,
//! which behaves like the `bpf()` syscall's map commands (per-CPU values as
//! one slot per CPU, references to other objects by id, errno results), and
//! the program face the helpers use (a pointer to the value of the run's CPU
//! slot, `-errno` results). The [`abi::MapNative`](crate::abi::MapNative)
//! at the start of every `Map` is what compiled code reads directly.
//!
//! One file per family: [`array`] (array, per-CPU array), [`hash`] (hash,
//! per-CPU hash and their LRU variants), [`lpm`] (LPM trie), [`queue`]
//! (queue, stack), [`bloom`] (bloom filter), [`ringbuf`] and
//! [`user_ringbuf`] (over [`ring`]), [`perf`] (perf event array and its
//! reader), [`prog_array`]. Batch operations are in [`batch`].

pub mod array;
pub mod batch;
pub mod bloom;
pub mod cgroup;
pub mod devmap;
pub mod error;
pub mod hash;
mod hashfn;
pub mod lock;
pub mod lpm;
pub mod notify;
pub mod of_maps;
pub mod perf;
pub mod prog_array;
pub mod queue;
pub mod rcu;
pub mod ring;
pub mod ringbuf;
pub mod shm;
pub mod slots;
pub mod stack_trace;
pub mod store;
pub mod types;
pub mod user_ringbuf;
mod values;

pub use error::{errno, strerror, MapError, MapResult};
pub use types::{flags, MapType};

use crate::abi::MapNative;
use std::any::Any;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// A map definition: what a map is created from and checked against.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapSpec {
    pub name: String,
    pub map_type: MapType,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    /// `BPF_F_*` creation flags.
    pub flags: u32,
    /// Type-specific extra (the bloom filter's hash count).
    pub map_extra: u64,
    /// The template every inner map of a map-in-map must match.
    pub inner: Option<Box<MapSpec>>,
    /// Offset of a `struct bpf_spin_lock` in the value (from BTF).
    pub spin_lock_off: Option<u32>,
    /// Offset of a `struct bpf_timer` in the value (from BTF).
    pub timer_off: Option<u32>,
    /// The key and value types, kept in a pinned map's file so that tools
    /// (`bpfc map dump`) can print values by type.
    pub btf: Option<MapBtf>,
}

/// Raw BTF (a `.BTF` section's bytes) and the ids of the key and value
/// types in it (0: none, as for keyless maps).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapBtf {
    pub raw: Vec<u8>,
    pub key_type_id: u32,
    pub value_type_id: u32,
}

impl MapSpec {
    /// A spec with the five classic fields and nothing else.
    pub fn new(
        name: &str,
        map_type: MapType,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        flags: u32,
    ) -> MapSpec {
        MapSpec {
            name: name.to_string(),
            map_type,
            key_size,
            value_size,
            max_entries,
            flags,
            ..MapSpec::default()
        }
    }
}

/// How maps of one runtime instance are made.
#[derive(Clone, Debug)]
pub struct MapOptions {
    /// CPU slots of per-CPU maps (default: the host's possible CPUs).
    pub ncpus: u32,
    /// Where maps are pinned by name, and where their unnamed storage files
    /// are made (default: `$BPFC_PIN_DIR`, else `/dev/shm/bpfc`).
    pub pin_dir: PathBuf,
}

impl Default for MapOptions {
    fn default() -> Self {
        MapOptions {
            ncpus: possible_cpus(),
            pin_dir: default_pin_dir(),
        }
    }
}

/// `$BPFC_PIN_DIR`, or `/dev/shm/bpfc`.
pub fn default_pin_dir() -> PathBuf {
    std::env::var_os("BPFC_PIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/dev/shm/bpfc"))
}

/// The number of possible CPUs (`/sys/devices/system/cpu/possible`), as
/// libbpf counts them for per-CPU values; 1 when it cannot be read.
pub fn possible_cpus() -> u32 {
    static N: OnceLock<u32> = OnceLock::new();
    *N.get_or_init(|| {
        std::fs::read_to_string("/sys/devices/system/cpu/possible")
            .ok()
            .and_then(|s| parse_cpu_list(s.trim()))
            .unwrap_or(1)
    })
}

/// `0-3,5` → 6 (the highest CPU number plus one).
fn parse_cpu_list(s: &str) -> Option<u32> {
    let mut max = None;
    for part in s.split(',') {
        let last = part.rsplit('-').next()?;
        let n: u32 = last.trim().parse().ok()?;
        max = Some(max.map_or(n, |m: u32| m.max(n)));
    }
    max.map(|m| m + 1)
}

/// `value_size` rounded up to 8 bytes: the distance between per-CPU values
/// and between array values.
pub fn round8(v: u32) -> usize {
    (v as usize).div_ceil(8) * 8
}

/// A range of map memory programs may access: `count` elements of `stride`
/// bytes from `base`, of which bytes `value_off..value_off + value_len`
/// are a value. The interpreter and checked code accept accesses inside one
/// value of a slab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slab {
    pub base: usize,
    pub count: usize,
    pub stride: usize,
    pub value_off: usize,
    pub value_len: usize,
    pub writable: bool,
}

impl Slab {
    /// Whether `[addr, addr + size)` lies inside one value of the slab.
    pub fn contains(&self, addr: usize, size: usize) -> bool {
        let Some(rel) = addr.checked_sub(self.base) else {
            return false;
        };
        if self.stride == 0 || rel / self.stride >= self.count {
            return false;
        }
        let within = rel % self.stride;
        within >= self.value_off
            && within
                .checked_add(size)
                .is_some_and(|end| end <= self.value_off + self.value_len)
    }
}

/// The operations of one map family. User-space operations have `bpf()`
/// semantics; `prog_*` ones are what helpers do for programs.
pub trait MapImpl: Send + Sync + 'static {
    /// `BPF_MAP_LOOKUP_ELEM` (queue, stack, bloom: peek / test, key `None`).
    fn lookup(&self, key: Option<&[u8]>, value: &mut [u8], flags: u64) -> MapResult<()>;
    /// `BPF_MAP_UPDATE_ELEM` (queue, stack, bloom: push, key `None`).
    fn update(&self, key: Option<&[u8]>, value: &[u8], flags: u64) -> MapResult<()>;
    /// `BPF_MAP_DELETE_ELEM`.
    fn delete(&self, key: &[u8]) -> MapResult<()>;
    /// `BPF_MAP_GET_NEXT_KEY`.
    fn get_next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> MapResult<()>;
    /// `BPF_MAP_LOOKUP_AND_DELETE_ELEM` (queue, stack: pop).
    fn lookup_and_delete(
        &self,
        _key: Option<&[u8]>,
        _value: &mut [u8],
        _flags: u64,
    ) -> MapResult<()> {
        Err(MapError::NOTSUPP)
    }

    /// `bpf_map_lookup_elem` from a program: the value of CPU slot `cpu`.
    fn prog_lookup(&self, _key: &[u8], _cpu: u32) -> Option<*mut u8> {
        None
    }
    /// `bpf_map_update_elem` from a program (one CPU slot's value).
    fn prog_update(&self, key: &[u8], value: &[u8], flags: u64, _cpu: u32) -> MapResult<()> {
        self.update(Some(key), value, flags)
    }
    /// `bpf_map_delete_elem` from a program.
    fn prog_delete(&self, key: &[u8]) -> MapResult<()> {
        self.delete(key)
    }
    /// `bpf_map_push_elem`.
    fn prog_push(&self, value: &[u8], flags: u64) -> MapResult<()> {
        let _ = (value, flags);
        Err(MapError::NOTSUPP)
    }
    /// `bpf_map_pop_elem`.
    fn prog_pop(&self, value: &mut [u8]) -> MapResult<()> {
        let _ = value;
        Err(MapError::NOTSUPP)
    }
    /// `bpf_map_peek_elem`.
    fn prog_peek(&self, value: &mut [u8]) -> MapResult<()> {
        let _ = value;
        Err(MapError::NOTSUPP)
    }
    /// `bpf_map_lookup_percpu_elem`: the value of another CPU slot.
    fn prog_lookup_percpu(&self, _key: &[u8], _cpu: u32) -> Option<*mut u8> {
        None
    }

    /// The memory programs may access through pointers this map hands out.
    fn slabs(&self) -> Vec<Slab> {
        Vec::new()
    }
    /// What compiled code may read directly (arrays' value memory).
    fn native(&self) -> NativeLayout {
        NativeLayout::default()
    }
    /// The key of the value starting at `value` (an address in this map's
    /// memory), for a timer's callback: `None` when `value` is not the
    /// start of one of this map's values (or the family has no timers).
    fn key_of_value(&self, value: usize) -> Option<KeyOf> {
        let _ = value;
        None
    }
    /// The storage block, for maps that can be pinned.
    fn store(&self) -> Option<&store::Store> {
        None
    }
    /// Number of elements, where the family counts them.
    fn elements(&self) -> Option<usize> {
        None
    }
    /// Bucket-granular batches (the hash family): the number of buckets.
    fn batch_buckets(&self) -> Option<u32> {
        None
    }
    /// Copy the elements of bucket `bucket` to `keys` and `values` (user
    /// layout, one after another) and, with `delete`, remove them, all
    /// under the bucket's lock; [`batch::Bucket::TooMany`] without copying
    /// when the bucket holds more than `room`. `lock`: `BPF_F_LOCK` copies.
    fn batch_bucket(
        &self,
        bucket: u32,
        room: u32,
        delete: bool,
        lock: bool,
        keys: &mut [u8],
        values: &mut [u8],
    ) -> MapResult<batch::Bucket> {
        let _ = (bucket, room, delete, lock, keys, values);
        Err(MapError::NOTSUPP)
    }
    /// Downcasting to family-specific APIs (ring buffer consumers, prog arrays).
    fn as_any(&self) -> &dyn Any;
}

/// Array value memory, as [`MapNative`] exposes it to compiled code.
#[derive(Clone, Copy, Debug, Default)]
pub struct NativeLayout {
    pub values: usize,
    pub elem_size: u32,
    pub cpu_stride: u64,
}

/// A map. Always behind an `Arc`; its address is what programs hold.
#[repr(C)]
pub struct Map {
    /// First, at offset 0: what compiled code reads (`struct bpfc_map`).
    native: MapNative,
    spec: MapSpec,
    id: u32,
    ncpus: u32,
    imp: Box<dyn MapImpl>,
    frozen: AtomicBool,
    pinned: Mutex<Option<PathBuf>>,
}

impl std::fmt::Debug for Map {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Map")
            .field("id", &self.id)
            .field("spec", &self.spec)
            .finish()
    }
}

/// Every live map by id (ids are never reused within a process) and by
/// address.
#[derive(Default)]
struct Registry {
    by_id: BTreeMap<u32, Weak<Map>>,
    by_addr: BTreeMap<usize, u32>,
}

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    static R: OnceLock<Mutex<Registry>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(Registry::default()))
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

static NEXT_ID: AtomicU32 = AtomicU32::new(1);

/// The flags a map type accepts at creation beyond the access flags.
fn allowed_flags(t: MapType) -> u32 {
    use flags::*;
    let common = ACCESS_MASK | BPF_F_NUMA_NODE;
    common
        | match t {
            MapType::Hash | MapType::PercpuHash | MapType::HashOfMaps => {
                BPF_F_NO_PREALLOC | BPF_F_ZERO_SEED
            }
            MapType::LruHash | MapType::LruPercpuHash => {
                BPF_F_NO_COMMON_LRU | BPF_F_NO_PREALLOC | BPF_F_ZERO_SEED
            }
            MapType::Array => BPF_F_MMAPABLE | BPF_F_INNER_MAP,
            MapType::PercpuArray => 0,
            MapType::PerfEventArray => BPF_F_PRESERVE_ELEMS,
            MapType::LpmTrie => BPF_F_NO_PREALLOC,
            MapType::BloomFilter => BPF_F_ZERO_SEED,
            MapType::StackTrace => BPF_F_STACK_BUILD_ID,
            MapType::Devmap | MapType::DevmapHash => 0,
            _ => 0,
        }
}

impl Map {
    /// Create a map with default options.
    pub fn create(spec: &MapSpec) -> MapResult<Arc<Map>> {
        Map::create_with(spec, &MapOptions::default())
    }

    /// Create a map: check the definition as the kernel does, allocate it.
    pub fn create_with(spec: &MapSpec, opts: &MapOptions) -> MapResult<Arc<Map>> {
        let t = spec.map_type;
        if !t.supported() {
            return Err(MapError::with_reason(
                errno::EINVAL,
                format!(
                    "map {}: type {} needs kernel objects that do not exist outside the kernel",
                    spec.name, t
                ),
            ));
        }
        if spec.map_extra != 0 && t != MapType::BloomFilter {
            return Err(MapError::invalid(format!(
                "map {}: map_extra is only for bloom filters",
                spec.name
            )));
        }
        let extra = spec.flags & !allowed_flags(t);
        if extra != 0 {
            return Err(MapError::invalid(format!(
                "map {}: flags {:#x} are not valid for a {} map",
                spec.name, extra, t
            )));
        }
        let rw = flags::BPF_F_RDONLY | flags::BPF_F_WRONLY;
        let rw_prog = flags::BPF_F_RDONLY_PROG | flags::BPF_F_WRONLY_PROG;
        if spec.flags & rw == rw || spec.flags & rw_prog == rw_prog {
            return Err(MapError::invalid(format!(
                "map {}: read-only and write-only at once",
                spec.name
            )));
        }
        let ncpus = opts.ncpus.max(1);
        let dir = Some(opts.pin_dir.as_path());
        let defaulted;
        let spec = if t == MapType::PerfEventArray {
            defaulted = perf::default_entries(spec, ncpus);
            &defaulted
        } else {
            spec
        };
        let imp: Box<dyn MapImpl> = match t {
            MapType::Array | MapType::PercpuArray => {
                Box::new(array::ArrayMap::create(spec, ncpus, dir)?)
            }
            MapType::Hash | MapType::PercpuHash | MapType::LruHash | MapType::LruPercpuHash => {
                Box::new(hash::HashMap::create(spec, ncpus, dir)?)
            }
            MapType::ProgArray => Box::new(prog_array::ProgArray::create(spec)?),
            MapType::LpmTrie => Box::new(lpm::LpmTrie::create(spec, dir)?),
            MapType::Queue | MapType::Stack => Box::new(queue::QueueMap::create(spec, dir)?),
            MapType::BloomFilter => Box::new(bloom::BloomFilter::create(spec, dir)?),
            MapType::Ringbuf => Box::new(ringbuf::RingBuf::create(spec, dir)?),
            MapType::UserRingbuf => Box::new(user_ringbuf::UserRingBuf::create(spec, dir)?),
            MapType::PerfEventArray => Box::new(perf::PerfEventArray::create(spec)?),
            MapType::StackTrace => Box::new(stack_trace::StackTraceMap::create(spec, dir)?),
            MapType::CgroupArray => Box::new(cgroup::CgroupArray::create(spec)?),
            MapType::ArrayOfMaps | MapType::HashOfMaps => {
                Box::new(of_maps::MapInMap::create(spec, opts)?)
            }
            MapType::Devmap | MapType::DevmapHash => Box::new(devmap::DevMap::create(spec, dir)?),
            _ => {
                return Err(MapError::with_reason(
                    errno::EINVAL,
                    format!("map {}: type {} is not implemented yet", spec.name, t),
                ))
            }
        };
        check_special_fields(spec)?;
        Ok(Map::wrap(spec.clone(), ncpus, imp))
    }

    /// Open a map pinned at `path` (by this or another process). With
    /// `expect`, the pinned definition must match it as libbpf requires
    /// when reusing a pinned map (type, key and value size, max_entries,
    /// flags, map_extra); a mismatch names the field.
    pub fn open_pinned(path: &Path, expect: Option<&MapSpec>) -> MapResult<Arc<Map>> {
        let (store, spec, ncpus) = store::Store::open(path)?;
        if let Some(e) = expect {
            check_compatible(path, &spec, e)?;
        }
        let imp: Box<dyn MapImpl> = match spec.map_type {
            MapType::Array | MapType::PercpuArray => {
                Box::new(array::ArrayMap::attach(store, &spec, ncpus)?)
            }
            MapType::Hash | MapType::PercpuHash | MapType::LruHash | MapType::LruPercpuHash => {
                Box::new(hash::HashMap::attach(store, &spec, ncpus)?)
            }
            MapType::LpmTrie => Box::new(lpm::LpmTrie::attach(store, &spec)?),
            MapType::Queue | MapType::Stack => Box::new(queue::QueueMap::attach(store, &spec)?),
            MapType::BloomFilter => Box::new(bloom::BloomFilter::attach(store, &spec)?),
            MapType::Ringbuf => Box::new(ringbuf::RingBuf::attach(store, &spec)?),
            MapType::UserRingbuf => Box::new(user_ringbuf::UserRingBuf::attach(store, &spec)?),
            MapType::Devmap | MapType::DevmapHash => {
                Box::new(devmap::DevMap::attach(store, &spec)?)
            }
            MapType::StackTrace => Box::new(stack_trace::StackTraceMap::attach(store, &spec)?),
            t => {
                return Err(MapError::invalid(format!(
                    "{}: a pinned {t} map cannot be opened",
                    path.display()
                )))
            }
        };
        let spec = MapSpec {
            name: expect.map_or(spec.name.clone(), |e| e.name.clone()),
            ..spec
        };
        let map = Map::wrap(spec, ncpus, imp);
        *map.pinned.lock().unwrap_or_else(|e| e.into_inner()) = Some(path.to_path_buf());
        Ok(map)
    }

    fn wrap(spec: MapSpec, ncpus: u32, imp: Box<dyn MapImpl>) -> Arc<Map> {
        let spec = match spec.map_type {
            MapType::Devmap | MapType::DevmapHash => devmap::effective_spec(spec),
            _ => spec,
        };
        let n = imp.native();
        let native = MapNative {
            map_type: spec.map_type as u32,
            max_entries: spec.max_entries,
            key_size: spec.key_size,
            value_size: spec.value_size,
            elem_size: n.elem_size,
            ncpus,
            values: n.values as *mut u8,
            cpu_stride: n.cpu_stride,
        };
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let map = Arc::new(Map {
            native,
            spec,
            id,
            ncpus,
            imp,
            frozen: AtomicBool::new(false),
            pinned: Mutex::new(None),
        });
        let mut r = registry();
        r.by_id.insert(id, Arc::downgrade(&map));
        r.by_addr.insert(Arc::as_ptr(&map) as usize, id);
        drop(r);
        map
    }

    /// The live map with id `id`.
    pub fn by_id(id: u32) -> Option<Arc<Map>> {
        registry().by_id.get(&id).and_then(Weak::upgrade)
    }

    /// The live map at address `addr` (what a program holds), if any: how
    /// helpers check a map argument of an unverified program.
    pub fn at_addr(addr: usize) -> Option<Arc<Map>> {
        let r = registry();
        let id = r.by_addr.get(&addr)?;
        r.by_id.get(id).and_then(Weak::upgrade)
    }

    pub fn spec(&self) -> &MapSpec {
        &self.spec
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn map_type(&self) -> MapType {
        self.spec.map_type
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// CPU slots of per-CPU values.
    pub fn ncpus(&self) -> u32 {
        self.ncpus
    }

    pub fn key_size(&self) -> usize {
        self.spec.key_size as usize
    }

    /// The size of a value as user space reads and writes it: per-CPU maps
    /// have one 8-byte aligned slot per CPU.
    pub fn user_value_size(&self) -> usize {
        if self.spec.map_type.is_percpu() {
            round8(self.spec.value_size) * self.ncpus as usize
        } else {
            self.spec.value_size as usize
        }
    }

    /// The native view compiled code reads.
    pub fn native(&self) -> &MapNative {
        &self.native
    }

    /// The address programs hold for this map (`lddw` of the map).
    pub fn as_ptr(&self) -> *const Map {
        self as *const Map
    }

    /// The map at a program-held address.
    ///
    /// # Safety
    /// `ptr` must be the address of a live `Map` (as [`Map::as_ptr`] gave).
    pub unsafe fn from_ptr<'a>(ptr: *const Map) -> &'a Map {
        // SAFETY: guaranteed by the caller.
        unsafe { &*ptr }
    }

    pub fn imp(&self) -> &dyn MapImpl {
        self.imp.as_ref()
    }

    /// Where the map is pinned, if it is.
    pub fn pinned_path(&self) -> Option<PathBuf> {
        self.pinned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Number of elements, for the families that count them.
    pub fn elements(&self) -> Option<usize> {
        self.imp.elements()
    }

    fn check_key(&self, key: Option<&[u8]>) -> MapResult<()> {
        match key {
            Some(k) if k.len() != self.key_size() => Err(MapError::invalid(format!(
                "key of {} bytes, map {} has {}-byte keys",
                k.len(),
                self.spec.name,
                self.key_size()
            ))),
            None if self.spec.key_size != 0 => Err(MapError::invalid(format!(
                "map {} needs a key",
                self.spec.name
            ))),
            _ => Ok(()),
        }
    }

    fn check_value(&self, len: usize) -> MapResult<()> {
        if len != self.user_value_size() {
            return Err(MapError::invalid(format!(
                "value of {len} bytes, map {} takes {}",
                self.spec.name,
                self.user_value_size()
            )));
        }
        Ok(())
    }

    /// The key as the family sees it: none for keyless maps given an empty
    /// key (a key where there are none fails [`Map::check_key`], `EINVAL`).
    fn key_opt<'k>(&self, key: &'k [u8]) -> Option<&'k [u8]> {
        (self.spec.key_size != 0 || !key.is_empty()).then_some(key)
    }

    fn can_read(&self) -> MapResult<()> {
        if self.spec.flags & flags::BPF_F_WRONLY != 0 {
            return Err(MapError::PERM);
        }
        Ok(())
    }

    fn can_write(&self) -> MapResult<()> {
        if self.spec.flags & flags::BPF_F_RDONLY != 0 || self.frozen.load(Ordering::Acquire) {
            return Err(MapError::PERM);
        }
        Ok(())
    }

    fn check_lock_flag(&self, f: u64) -> MapResult<()> {
        if f & flags::BPF_F_LOCK != 0 && self.spec.spin_lock_off.is_none() {
            return Err(MapError::INVAL);
        }
        Ok(())
    }

    /// `BPF_MAP_LOOKUP_ELEM`: copy the value of `key` into `value`
    /// ([`Map::user_value_size`] bytes). Keyless maps take an empty key.
    pub fn lookup(&self, key: &[u8], value: &mut [u8]) -> MapResult<()> {
        self.lookup_flags(key, value, 0)
    }

    /// [`Map::lookup`] with flags (`BPF_F_LOCK`).
    pub fn lookup_flags(&self, key: &[u8], value: &mut [u8], f: u64) -> MapResult<()> {
        if f & !flags::BPF_F_LOCK != 0 {
            return Err(MapError::INVAL);
        }
        self.can_read()?;
        self.check_lock_flag(f)?;
        let key = self.key_opt(key);
        self.check_key(key)?;
        self.check_value(value.len())?;
        self.imp.lookup(key, value, f)
    }

    /// `BPF_MAP_UPDATE_ELEM` with `BPF_ANY`, `BPF_NOEXIST`, `BPF_EXIST`,
    /// optionally `| BPF_F_LOCK`.
    pub fn update(&self, key: &[u8], value: &[u8], f: u64) -> MapResult<()> {
        self.can_write()?;
        self.check_lock_flag(f)?;
        let key = self.key_opt(key);
        self.check_key(key)?;
        self.check_value(value.len())?;
        self.imp.update(key, value, f)
    }

    /// `BPF_MAP_DELETE_ELEM`.
    pub fn delete(&self, key: &[u8]) -> MapResult<()> {
        self.can_write()?;
        self.check_key(Some(key))?;
        self.imp.delete(key)
    }

    /// `BPF_MAP_GET_NEXT_KEY`: the key after `key` (the first with `None`
    /// or a key not in the map, as each type defines).
    pub fn get_next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> MapResult<()> {
        self.can_read()?;
        if let Some(k) = key {
            self.check_key(Some(k))?;
        }
        if next.len() != self.key_size() {
            return Err(MapError::INVAL);
        }
        self.imp.get_next_key(key, next)
    }

    /// `BPF_MAP_LOOKUP_AND_DELETE_ELEM` (queue and stack: pop, empty key).
    pub fn lookup_and_delete(&self, key: &[u8], value: &mut [u8], f: u64) -> MapResult<()> {
        if f & !flags::BPF_F_LOCK != 0 {
            return Err(MapError::INVAL);
        }
        self.can_read()?;
        self.can_write()?;
        if f != 0 && matches!(self.spec.map_type, MapType::Queue | MapType::Stack) {
            return Err(MapError::INVAL);
        }
        self.check_lock_flag(f)?;
        let key = self.key_opt(key);
        self.check_key(key)?;
        self.check_value(value.len())?;
        self.imp.lookup_and_delete(key, value, f)
    }

    /// `BPF_MAP_FREEZE`: no more writes from user space.
    pub fn freeze(&self) -> MapResult<()> {
        if self.frozen.swap(true, Ordering::AcqRel) {
            return Err(MapError::BUSY);
        }
        Ok(())
    }

    pub fn is_frozen(&self) -> bool {
        self.frozen.load(Ordering::Acquire)
    }

    /// Every key, in `get_next_key` order.
    pub fn keys(&self) -> MapResult<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        if self.spec.key_size == 0 {
            return Ok(out);
        }
        let mut cur: Option<Vec<u8>> = None;
        let mut next = vec![0u8; self.key_size()];
        // Bounded: a map changing under the walk cannot make it loop forever.
        let limit = self.spec.max_entries as usize + 1;
        while out.len() < limit {
            match self.get_next_key(cur.as_deref(), &mut next) {
                Ok(()) => {
                    out.push(next.clone());
                    cur = Some(next.clone());
                }
                Err(e) if e.code() == errno::ENOENT => break,
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Every (key, value) pair, in `get_next_key` order (keys deleted during
    /// the walk are left out).
    pub fn entries(&self) -> MapResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = Vec::new();
        for k in self.keys()? {
            let mut v = vec![0u8; self.user_value_size()];
            match self.lookup(&k, &mut v) {
                Ok(()) => out.push((k, v)),
                Err(e) if e.code() == errno::ENOENT => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Pin the map at `path` so other processes can open it. The path must
    /// be on the file system of the runtime's pin directory.
    pub fn pin(&self, path: &Path) -> MapResult<()> {
        let store = self.imp.store().ok_or_else(|| {
            MapError::with_reason(
                errno::EINVAL,
                format!(
                    "map {}: a {} map holds process-local objects and cannot be pinned",
                    self.spec.name, self.spec.map_type
                ),
            )
        })?;
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        store.shm().link(path).map_err(|e| {
            let code = e.raw_os_error().unwrap_or(errno::EINVAL);
            MapError::with_reason(
                code,
                format!(
                    "cannot pin map {} at {}: {e}",
                    self.spec.name,
                    path.display()
                ),
            )
        })?;
        *self.pinned.lock().unwrap_or_else(|e| e.into_inner()) = Some(path.to_path_buf());
        Ok(())
    }

    /// Remove the pin (the file); the map lives on while it is open.
    pub fn unpin(&self) -> MapResult<()> {
        let mut p = self.pinned.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(path) = p.take() {
            std::fs::remove_file(&path).map_err(|e| {
                MapError::with_reason(
                    e.raw_os_error().unwrap_or(errno::EINVAL),
                    format!("cannot unpin {}: {e}", path.display()),
                )
            })?;
        }
        Ok(())
    }

    // ---- program face (helpers) ----

    /// `bpf_map_lookup_elem`: the value for `key` in CPU slot `cpu`.
    pub fn prog_lookup(&self, key: &[u8], cpu: u32) -> Option<*mut u8> {
        self.imp.prog_lookup(key, cpu)
    }

    /// `bpf_map_update_elem` from a program.
    pub fn prog_update(&self, key: &[u8], value: &[u8], f: u64, cpu: u32) -> MapResult<()> {
        self.imp.prog_update(key, value, f, cpu)
    }

    /// `bpf_map_delete_elem` from a program.
    pub fn prog_delete(&self, key: &[u8]) -> MapResult<()> {
        self.imp.prog_delete(key)
    }

    /// The memory programs may reach through this map's values.
    pub fn slabs(&self) -> Vec<Slab> {
        let mut s = self.imp.slabs();
        if self.spec.flags & flags::BPF_F_RDONLY_PROG != 0 {
            for slab in &mut s {
                slab.writable = false;
            }
        }
        s
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        if self.spec.timer_off.is_some() {
            crate::helpers::timers::map_dropped(self.id);
        }
        let mut r = registry();
        r.by_id.remove(&self.id);
        r.by_addr.remove(&(self as *const Map as usize));
    }
}

// SAFETY: `native.values` points into storage the map owns; every family
// synchronises its own state.
unsafe impl Send for Map {}
// SAFETY: as above.
unsafe impl Sync for Map {}

/// Where the key of a map value is (`MapImpl::key_of_value`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyOf {
    /// An array's index (the key is a `u32` holding it).
    Index(u32),
    /// The address of the key in map memory (hash maps keep it beside the value).
    At(usize),
}

/// The kernel's `map_check_btf` rule (after the map is allocated): a
/// `struct bpf_spin_lock` only in hash and array values, a `struct
/// bpf_timer` only in hash, LRU hash and array values.
fn check_special_fields(spec: &MapSpec) -> MapResult<()> {
    let t = spec.map_type;
    let refuse = |what: &str, allowed: &str| {
        Err(MapError::with_reason(
            errno::EOPNOTSUPP,
            format!(
                "map {}: a {what} is only allowed in {allowed} values, not in a {t} map",
                spec.name
            ),
        ))
    };
    if spec.spin_lock_off.is_some() && !matches!(t, MapType::Hash | MapType::Array) {
        return refuse("struct bpf_spin_lock", "hash and array");
    }
    if spec.timer_off.is_some() && !matches!(t, MapType::Hash | MapType::LruHash | MapType::Array) {
        return refuse("struct bpf_timer", "hash, LRU hash and array");
    }
    Ok(())
}

/// libbpf's reuse check for a pinned map against the definition wanted.
fn check_compatible(path: &Path, have: &MapSpec, want: &MapSpec) -> MapResult<()> {
    let fields: [(&str, u64, u64); 6] = [
        ("type", have.map_type as u64, want.map_type as u64),
        ("key_size", have.key_size.into(), want.key_size.into()),
        ("value_size", have.value_size.into(), want.value_size.into()),
        (
            "max_entries",
            have.max_entries.into(),
            want.max_entries.into(),
        ),
        ("map_flags", have.flags.into(), want.flags.into()),
        ("map_extra", have.map_extra, want.map_extra),
    ];
    for (field, h, w) in fields {
        if h != w {
            let show = |v: u64| {
                if field == "type" {
                    MapType::name_of(v as u32).to_string()
                } else {
                    v.to_string()
                }
            };
            return Err(MapError::invalid(format!(
                "pinned map at {} does not match map {}: {field} is {}, the definition says {}",
                path.display(),
                want.name,
                show(h),
                show(w)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod kernel_bpf;
#[cfg(test)]
mod tests;
