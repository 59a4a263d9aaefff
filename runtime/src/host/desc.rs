//! The descriptor `bpfc compile` embeds in a native object (`docs/abi.md`,
//! "Self-describing objects"): a `#[repr(C)]` header the object exports as
//! `NAME__object`, which points at the object's tables and at a versioned
//! byte image describing its programs, maps, global data, license and BTF.
//! The writer (the compiler) and the reader (the runtime's loader) are both
//! here, so the format is described once.

use std::fmt;

/// `struct bpfc_object_desc.magic`: "BPFCOBJ1" as a little-endian word.
pub const OBJECT_MAGIC: u64 = u64::from_le_bytes(*b"BPFCOBJ1");
/// The descriptor version this bpfc writes and reads. An object with
/// another version is refused, naming both.
pub const DESC_VERSION: u32 = 2;
/// The first 8 bytes of the image.
pub const IMAGE_MAGIC: [u8; 8] = *b"BPFCDESC";

/// `struct bpfc_object_desc`: what `NAME__object` holds. Fields are in the
/// target's byte order; the image `image` points to is little-endian on
/// every target.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ObjectNative {
    pub magic: u64,
    pub version: u32,
    /// Entries of `progs`.
    pub nprogs: u32,
    /// The descriptor image ([`Desc::encode`]).
    pub image: *const u8,
    pub image_len: u64,
    /// The map table (`NAME__maps`): one map address per map index, filled
    /// in by the runtime when it loads the object.
    pub maps: *mut *const u8,
    pub nmaps: u64,
    /// The helper table (`NAME__helpers`): one function per id of
    /// [`Desc::helpers`], in that order, filled in by the runtime.
    pub helpers: *mut *const u8,
    pub nhelpers: u64,
    /// The compiled code of each program, in [`Desc::progs`] order.
    pub progs: *const ProgCode,
}

/// `struct bpfc_prog_code`: one program's native entry points.
#[repr(C)]
#[derive(Debug)]
pub struct ProgCode {
    /// The exported entry (`docs/abi.md`, "Entry point").
    pub entry: *const u8,
    /// The first eBPF function, which tail calls jump to.
    pub main: *const u8,
}

/// The decoded image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desc {
    /// The object's name: the prefix of its symbols.
    pub name: String,
    /// The bpfc version that wrote it (for messages).
    pub bpfc_version: String,
    pub license: String,
    /// Compiled with `--checked`.
    pub checked: bool,
    /// The instruction budget compiled in (0: none).
    pub insn_limit: u64,
    /// Helper ids, in the helper table's order.
    pub helpers: Vec<u32>,
    pub progs: Vec<ProgDesc>,
    pub maps: Vec<MapDesc>,
    /// The object's raw `.BTF` section (empty without one).
    pub btf: Vec<u8>,
}

/// One compiled program.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProgDesc {
    pub name: String,
    pub section: String,
    /// `enum bpf_prog_type`.
    pub prog_type: u32,
    /// libbpf's expected attach type for the section (`BPF_XDP` ...), or
    /// empty.
    pub attach_type: String,
    /// The exported entry symbol (`NAME__PROG`).
    pub entry_symbol: String,
    /// Calls a helper that reads the host's stack.
    pub reads_stack: bool,
    /// What r1 points to: [`CTX_BYTES`], [`CTX_XDP`] or [`CTX_SKB`].
    pub ctx: u32,
    /// [`CTX_BYTES`] programs the verifier accepted: the context bytes a
    /// run must give, the end of the furthest context access (the
    /// kernel's `max_ctx_offset`); 0 otherwise.
    pub ctx_min: u32,
}

/// The program's context is the bytes the host passes.
pub const CTX_BYTES: u32 = 0;
/// The context accesses were converted to the runtime's native `xdp_md`
/// (`bpfc_runtime::net::XdpMd`): the program runs on a packet.
pub const CTX_XDP: u32 = 1;
/// ... to the native `__sk_buff` (`bpfc_runtime::net::SkBuff`).
pub const CTX_SKB: u32 = 2;

/// What a map is for, as libbpf distinguishes them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(u8)]
pub enum MapKind {
    /// A map the program declared (`.maps`, legacy `maps`).
    #[default]
    Plain = 0,
    Data = 1,
    /// `.rodata`: frozen after its image is written.
    Rodata = 2,
    Bss = 3,
    /// `.kconfig` values: frozen.
    Kconfig = 4,
    /// Not created by the runtime (inner map templates, struct_ops): its
    /// table slot stays NULL.
    Absent = 5,
}

impl MapKind {
    fn from_raw(v: u8) -> Option<MapKind> {
        Some(match v {
            0 => MapKind::Plain,
            1 => MapKind::Data,
            2 => MapKind::Rodata,
            3 => MapKind::Bss,
            4 => MapKind::Kconfig,
            5 => MapKind::Absent,
            _ => return None,
        })
    }

    /// Global data: one value that holds a section's variables.
    pub fn is_global(self) -> bool {
        matches!(
            self,
            MapKind::Data | MapKind::Rodata | MapKind::Bss | MapKind::Kconfig
        )
    }
}

/// An initial slot of a prog array or a map of maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotInit {
    /// The map with this index.
    Map(u32),
    /// The program with this name.
    Program(String),
}

/// One map of the object, by map index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapDesc {
    pub name: String,
    pub kind: MapKind,
    /// For global data: the section (`.data`, `.rodata.str`, `.bss` ...).
    pub section: String,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
    pub map_extra: u64,
    /// libbpf's `pinning`: 0 none, 1 by name.
    pub pinning: u32,
    pub spin_lock_off: Option<u32>,
    pub timer_off: Option<u32>,
    /// BTF ids of the key and value types (0: none).
    pub key_type_id: u32,
    pub value_type_id: u32,
    /// The template of a map of maps' inner maps.
    pub inner: Option<Box<MapDesc>>,
    pub initial: Vec<(u32, SlotInit)>,
    /// The initial value image of global data (shorter: zero-filled).
    pub data: Vec<u8>,
}

/// Why an image could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DescError {
    BadMagic,
    Version { found: u32, writer: String },
    Truncated { at: usize },
    Invalid { at: usize, what: &'static str },
}

impl fmt::Display for DescError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DescError::BadMagic => write!(f, "not a bpfc object descriptor (bad magic)"),
            DescError::Version { found, writer } => write!(
                f,
                "descriptor version {found} (written by bpfc {writer}); this runtime (bpfc {}) reads version {DESC_VERSION}: recompile the object with this bpfc",
                env!("CARGO_PKG_VERSION")
            ),
            DescError::Truncated { at } => write!(f, "descriptor truncated at byte {at}"),
            DescError::Invalid { at, what } => write!(f, "descriptor byte {at}: invalid {what}"),
        }
    }
}

impl std::error::Error for DescError {}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn opt(&mut self, v: Option<u32>) {
        self.u32(v.map_or(u32::MAX, |v| v));
    }
    fn map(&mut self, m: &MapDesc) {
        self.str(&m.name);
        self.u8(m.kind as u8);
        self.str(&m.section);
        for v in [m.map_type, m.key_size, m.value_size, m.max_entries, m.flags] {
            self.u32(v);
        }
        self.u64(m.map_extra);
        self.u32(m.pinning);
        self.opt(m.spin_lock_off);
        self.opt(m.timer_off);
        self.u32(m.key_type_id);
        self.u32(m.value_type_id);
        match &m.inner {
            Some(i) => {
                self.u8(1);
                self.map(i);
            }
            None => self.u8(0),
        }
        self.u32(m.initial.len() as u32);
        for (slot, init) in &m.initial {
            self.u32(*slot);
            match init {
                SlotInit::Map(i) => {
                    self.u8(0);
                    self.u32(*i);
                }
                SlotInit::Program(p) => {
                    self.u8(1);
                    self.str(p);
                }
            }
        }
        self.bytes(&m.data);
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DescError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or(DescError::Truncated { at: self.at })?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DescError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, DescError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }
    fn u64(&mut self) -> Result<u64, DescError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().unwrap_or_default(),
        ))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, DescError> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    fn str(&mut self) -> Result<String, DescError> {
        let at = self.at;
        String::from_utf8(self.bytes()?).map_err(|_| DescError::Invalid { at, what: "string" })
    }
    fn opt(&mut self) -> Result<Option<u32>, DescError> {
        Ok(Some(self.u32()?).filter(|&v| v != u32::MAX))
    }
    fn count(&mut self, min_each: usize) -> Result<usize, DescError> {
        let at = self.at;
        let n = self.u32()? as usize;
        // A count the rest of the image cannot hold is corrupt.
        if n.saturating_mul(min_each) > self.b.len() - self.at {
            return Err(DescError::Invalid { at, what: "count" });
        }
        Ok(n)
    }
    fn map(&mut self, depth: u32) -> Result<MapDesc, DescError> {
        let name = self.str()?;
        let at = self.at;
        let kind = MapKind::from_raw(self.u8()?).ok_or(DescError::Invalid {
            at,
            what: "map kind",
        })?;
        let section = self.str()?;
        let mut m = MapDesc {
            name,
            kind,
            section,
            map_type: self.u32()?,
            key_size: self.u32()?,
            value_size: self.u32()?,
            max_entries: self.u32()?,
            flags: self.u32()?,
            map_extra: self.u64()?,
            pinning: self.u32()?,
            spin_lock_off: self.opt()?,
            timer_off: self.opt()?,
            key_type_id: self.u32()?,
            value_type_id: self.u32()?,
            ..MapDesc::default()
        };
        let at = self.at;
        m.inner = match self.u8()? {
            0 => None,
            1 if depth < 4 => Some(Box::new(self.map(depth + 1)?)),
            _ => {
                return Err(DescError::Invalid {
                    at,
                    what: "inner map",
                })
            }
        };
        for _ in 0..self.count(9)? {
            let slot = self.u32()?;
            let at = self.at;
            let init = match self.u8()? {
                0 => SlotInit::Map(self.u32()?),
                1 => SlotInit::Program(self.str()?),
                _ => {
                    return Err(DescError::Invalid {
                        at,
                        what: "initial slot",
                    })
                }
            };
            m.initial.push((slot, init));
        }
        m.data = self.bytes()?;
        Ok(m)
    }
}

impl Desc {
    /// The image: magic, version, then the fields in declaration order
    /// (`docs/abi.md` lists the layout).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer(Vec::new());
        w.0.extend_from_slice(&IMAGE_MAGIC);
        w.u32(DESC_VERSION);
        w.str(&self.bpfc_version);
        w.str(&self.name);
        w.str(&self.license);
        w.u32(u32::from(self.checked));
        w.u64(self.insn_limit);
        w.u32(self.helpers.len() as u32);
        for &h in &self.helpers {
            w.u32(h);
        }
        w.u32(self.progs.len() as u32);
        for p in &self.progs {
            w.str(&p.name);
            w.str(&p.section);
            w.u32(p.prog_type);
            w.str(&p.attach_type);
            w.str(&p.entry_symbol);
            w.u32(u32::from(p.reads_stack));
            w.u32(p.ctx);
            w.u32(p.ctx_min);
        }
        w.u32(self.maps.len() as u32);
        for m in &self.maps {
            w.map(m);
        }
        w.bytes(&self.btf);
        w.0
    }

    /// Read an image, refusing another version with a message that names it.
    pub fn decode(bytes: &[u8]) -> Result<Desc, DescError> {
        let mut r = Reader { b: bytes, at: 0 };
        if r.take(8).ok() != Some(&IMAGE_MAGIC[..]) {
            return Err(DescError::BadMagic);
        }
        let version = r.u32()?;
        let bpfc_version = r.str()?;
        if version != DESC_VERSION {
            return Err(DescError::Version {
                found: version,
                writer: bpfc_version,
            });
        }
        let mut d = Desc {
            bpfc_version,
            name: r.str()?,
            license: r.str()?,
            checked: r.u32()? != 0,
            insn_limit: r.u64()?,
            ..Desc::default()
        };
        for _ in 0..r.count(4)? {
            d.helpers.push(r.u32()?);
        }
        for _ in 0..r.count(32)? {
            d.progs.push(ProgDesc {
                name: r.str()?,
                section: r.str()?,
                prog_type: r.u32()?,
                attach_type: r.str()?,
                entry_symbol: r.str()?,
                reads_stack: r.u32()? != 0,
                ctx: r.u32()?,
                ctx_min: r.u32()?,
            });
        }
        for _ in 0..r.count(60)? {
            d.maps.push(r.map(0)?);
        }
        d.btf = r.bytes()?;
        if r.at != bytes.len() {
            return Err(DescError::Invalid {
                at: r.at,
                what: "trailing bytes",
            });
        }
        Ok(d)
    }

    /// The map called `name`, by index.
    pub fn map_index(&self, name: &str) -> Option<usize> {
        self.maps.iter().position(|m| m.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Desc {
        Desc {
            name: "demo".into(),
            bpfc_version: "0.1.0".into(),
            license: "GPL".into(),
            checked: true,
            insn_limit: 1000,
            helpers: vec![1, 2, 130],
            progs: vec![ProgDesc {
                name: "count".into(),
                section: "xdp".into(),
                prog_type: 6,
                attach_type: "BPF_XDP".into(),
                entry_symbol: "demo__count".into(),
                reads_stack: false,
                ctx: CTX_XDP,
                ctx_min: 24,
            }],
            maps: vec![
                MapDesc {
                    name: "outer".into(),
                    map_type: 12,
                    key_size: 4,
                    value_size: 4,
                    max_entries: 2,
                    inner: Some(Box::new(MapDesc {
                        name: "inner".into(),
                        map_type: 2,
                        key_size: 4,
                        value_size: 8,
                        max_entries: 1,
                        ..MapDesc::default()
                    })),
                    initial: vec![(0, SlotInit::Map(1)), (1, SlotInit::Program("p".into()))],
                    spin_lock_off: Some(0),
                    ..MapDesc::default()
                },
                MapDesc {
                    name: "demo.rodata".into(),
                    kind: MapKind::Rodata,
                    section: ".rodata".into(),
                    map_type: 2,
                    key_size: 4,
                    value_size: 5,
                    max_entries: 1,
                    data: vec![1, 2, 3],
                    ..MapDesc::default()
                },
            ],
            btf: vec![0x9f, 0xeb, 1, 0],
        }
    }

    #[test]
    fn round_trips() {
        let d = sample();
        assert_eq!(Desc::decode(&d.encode()).unwrap(), d);
    }

    #[test]
    fn refuses_other_versions_and_corruption() {
        let mut img = sample().encode();
        img[8..12].copy_from_slice(&(DESC_VERSION + 1).to_le_bytes());
        let e = Desc::decode(&img).unwrap_err().to_string();
        assert!(
            e.contains(&format!("version {}", DESC_VERSION + 1))
                && e.contains(&format!("reads version {DESC_VERSION}")),
            "{e}"
        );
        let img = sample().encode();
        for cut in [0, 7, 12, img.len() / 2, img.len() - 1] {
            assert!(Desc::decode(&img[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = img.clone();
        bad.push(0);
        assert!(Desc::decode(&bad).is_err());
        // Every single-byte corruption is an error or a different
        // descriptor, never a panic.
        for i in 0..img.len() {
            let mut c = img.clone();
            c[i] ^= 0xff;
            let _ = Desc::decode(&c);
        }
    }
}
