//! Writing small raw BTF blobs for tests: the key and value types of a map
//! (given to the kernel with `BPF_BTF_LOAD` and to bpfc's map specs), built
//! type by type. Host byte order; ids are returned in creation order from 1.

/// `BTF_KIND_*` numbers.
const INT: u32 = 1;
const PTR: u32 = 2;
const ARRAY: u32 = 3;
const STRUCT: u32 = 4;
const UNION: u32 = 5;
const ENUM: u32 = 6;
const TYPEDEF: u32 = 8;
const FUNC: u32 = 12;
const FUNC_PROTO: u32 = 13;
const FLOAT: u32 = 16;

/// `BTF_INT_SIGNED`, `BTF_INT_CHAR`, `BTF_INT_BOOL`.
pub const INT_SIGNED: u32 = 1;
pub const INT_CHAR: u32 = 2;
pub const INT_BOOL: u32 = 4;

/// A BTF type section and string table being built.
#[derive(Clone, Debug)]
pub struct BtfBuilder {
    types: Vec<u8>,
    strings: Vec<u8>,
    next_id: u32,
}

impl Default for BtfBuilder {
    fn default() -> Self {
        BtfBuilder::new()
    }
}

impl BtfBuilder {
    pub fn new() -> BtfBuilder {
        BtfBuilder {
            types: Vec::new(),
            strings: vec![0],
            next_id: 1,
        }
    }

    fn name(&mut self, s: &str) -> u32 {
        if s.is_empty() {
            return 0;
        }
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(s.as_bytes());
        self.strings.push(0);
        off
    }

    fn word(&mut self, w: u32) {
        self.types.extend_from_slice(&w.to_ne_bytes());
    }

    fn head(&mut self, name: &str, kind: u32, vlen: u32, size_or_type: u32) -> u32 {
        let n = self.name(name);
        self.word(n);
        self.word((kind << 24) | vlen);
        self.word(size_or_type);
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// An integer type of `size` bytes (`encoding`: [`INT_SIGNED`] ...).
    pub fn int(&mut self, name: &str, size: u32, encoding: u32) -> u32 {
        let id = self.head(name, INT, 0, size);
        self.word((encoding << 24) | (size * 8));
        id
    }

    pub fn ptr(&mut self, to: u32) -> u32 {
        self.head("", PTR, 0, to)
    }

    /// `elem[n]`, indexed by `index` (an int type).
    pub fn array(&mut self, elem: u32, index: u32, n: u32) -> u32 {
        let id = self.head("", ARRAY, 0, 0);
        self.word(elem);
        self.word(index);
        self.word(n);
        id
    }

    fn aggregate(&mut self, kind: u32, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        let id = self.head(name, kind, members.len() as u32, size);
        for &(m, ty, bit_off) in members {
            let n = self.name(m);
            self.word(n);
            self.word(ty);
            self.word(bit_off);
        }
        id
    }

    /// A struct with bitfields (`kind_flag` set): members are (name, type,
    /// bit offset, bitfield size in bits, 0 for a whole member).
    pub fn struct_bitfields(
        &mut self,
        name: &str,
        size: u32,
        members: &[(&str, u32, u32, u32)],
    ) -> u32 {
        let n = self.name(name);
        self.word(n);
        self.word((1 << 31) | (STRUCT << 24) | members.len() as u32);
        self.word(size);
        let id = self.next_id;
        self.next_id += 1;
        for &(m, ty, bit_off, bits) in members {
            let n = self.name(m);
            self.word(n);
            self.word(ty);
            self.word((bits << 24) | bit_off);
        }
        id
    }

    /// A floating-point type of `size` bytes.
    pub fn float(&mut self, name: &str, size: u32) -> u32 {
        self.head(name, FLOAT, 0, size)
    }

    /// A struct of `size` bytes; members are (name, type, bit offset).
    pub fn struct_(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        self.aggregate(STRUCT, name, size, members)
    }

    pub fn union(&mut self, name: &str, size: u32, members: &[(&str, u32, u32)]) -> u32 {
        self.aggregate(UNION, name, size, members)
    }

    /// A 4-byte enum.
    pub fn enum_(&mut self, name: &str, values: &[(&str, i32)]) -> u32 {
        let id = self.head(name, ENUM, values.len() as u32, 4);
        for &(n, v) in values {
            let off = self.name(n);
            self.word(off);
            self.word(v as u32);
        }
        id
    }

    pub fn typedef(&mut self, name: &str, to: u32) -> u32 {
        self.head(name, TYPEDEF, 0, to)
    }

    /// A function type returning `ret`; parameters are (name, type).
    pub fn func_proto(&mut self, ret: u32, params: &[(&str, u32)]) -> u32 {
        let id = self.head("", FUNC_PROTO, params.len() as u32, ret);
        for &(n, ty) in params {
            let off = self.name(n);
            self.word(off);
            self.word(ty);
        }
        id
    }

    /// A function of type `proto` (`global`: linkage global, else static),
    /// what `func_info` records name.
    pub fn func(&mut self, name: &str, proto: u32, global: bool) -> u32 {
        self.head(name, FUNC, u32::from(global), proto)
    }

    /// The raw BTF: header, types, strings.
    pub fn build(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0xeb9fu16.to_ne_bytes());
        out.push(1); // version
        out.push(0); // flags
        for w in [
            24u32,
            0,
            self.types.len() as u32,
            self.types.len() as u32,
            self.strings.len() as u32,
        ] {
            out.extend_from_slice(&w.to_ne_bytes());
        }
        out.extend_from_slice(&self.types);
        out.extend_from_slice(&self.strings);
        out
    }
}
