//! The abstract machine state the verifier tracks: registers with their
//! types and value knowledge, stack slots, call frames, held references and
//! locks (the kernel's `bpf_reg_state`, `bpf_stack_state`,
//! `bpf_func_state` and `bpf_verifier_state`).

use super::bounds::Bounds;

/// Register types (`enum bpf_reg_type` without modifiers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RegType {
    NotInit,
    Scalar,
    Ctx,
    /// A map (`CONST_PTR_TO_MAP`).
    MapPtr,
    MapValue,
    MapKey,
    Stack,
    PacketMeta,
    Packet,
    PacketEnd,
    FlowKeys,
    Socket,
    SockCommon,
    TcpSock,
    XdpSock,
    TpBuffer,
    /// Memory of known size (ring buffer records, helper-returned memory).
    Mem,
    Buf,
    /// A function of the program (callback).
    Func,
    /// A pointer to a kernel object bpfc does not model further.
    BtfId,
    /// A pointer to a `struct bpf_dynptr` passed to a callback.
    DynptrPtr,
}

/// Type modifiers (`enum bpf_type_flag`), bits of [`Reg::flags`].
pub mod flag {
    pub const MAYBE_NULL: u16 = 1 << 0;
    pub const RDONLY: u16 = 1 << 1;
    pub const RINGBUF: u16 = 1 << 2;
    pub const ALLOC: u16 = 1 << 3;
    pub const PERCPU: u16 = 1 << 4;
    pub const TRUSTED: u16 = 1 << 5;
    pub const UNTRUSTED: u16 = 1 << 6;
    pub const RCU: u16 = 1 << 7;
    pub const USER: u16 = 1 << 8;
}

/// The packet range markers for comparisons against the end that proved
/// the pointer lies at or beyond it.
pub const BEYOND_PKT_END: i32 = -1;
pub const AT_PKT_END: i32 = -2;

/// `BPF_ADD_CONST`: a scalar id flag saying the register is another
/// (same id) plus [`Reg::off`].
pub const ADD_CONST: u32 = 1 << 31;

/// One register.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reg {
    pub ty: RegType,
    pub flags: u16,
    /// Fixed offset of a pointer; for linked scalars the constant delta.
    pub off: i32,
    /// Value (scalars) or variable offset (pointers).
    pub b: Bounds,
    /// Identity shared by copies: null checks and range learning on one
    /// copy apply to all.
    pub id: u32,
    /// The reference this pointer holds (ring buffer record, socket).
    pub ref_obj_id: u32,
    /// Whether pruning must compare this scalar's value.
    pub precise: bool,
    /// Index into the program's maps (map pointers, values, keys).
    pub map: u32,
    /// Identity of an inner map looked up from a map of maps.
    pub map_uid: u32,
    /// Packet: bytes proven readable past the pointer (or a marker).
    pub range: i32,
    /// Memory and buffer: size in bytes.
    pub mem_size: u32,
    /// Stack: the frame the pointer points into.
    pub frameno: u8,
    /// Function: the function index in the program.
    pub subprog: u32,
}

impl Default for Reg {
    fn default() -> Self {
        Reg::not_init()
    }
}

impl Reg {
    pub fn not_init() -> Reg {
        Reg {
            ty: RegType::NotInit,
            flags: 0,
            off: 0,
            b: Bounds::unknown(),
            id: 0,
            ref_obj_id: 0,
            precise: false,
            map: 0,
            map_uid: 0,
            range: 0,
            mem_size: 0,
            frameno: 0,
            subprog: 0,
        }
    }

    /// An unknown scalar.
    pub fn unknown() -> Reg {
        Reg {
            ty: RegType::Scalar,
            ..Reg::not_init()
        }
    }

    /// The scalar `v`.
    pub fn konst(v: u64) -> Reg {
        Reg {
            ty: RegType::Scalar,
            b: Bounds::konst(v),
            ..Reg::not_init()
        }
    }

    /// A scalar with these bounds.
    pub fn scalar(b: Bounds) -> Reg {
        Reg {
            ty: RegType::Scalar,
            b,
            ..Reg::not_init()
        }
    }

    /// A pointer of type `ty` at offset zero.
    pub fn ptr(ty: RegType) -> Reg {
        Reg {
            ty,
            b: Bounds::konst(0),
            ..Reg::not_init()
        }
    }

    pub fn is_scalar(&self) -> bool {
        self.ty == RegType::Scalar
    }

    pub fn is_pointer(&self) -> bool {
        !matches!(self.ty, RegType::Scalar | RegType::NotInit)
    }

    pub fn maybe_null(&self) -> bool {
        self.flags & flag::MAYBE_NULL != 0
    }

    pub fn is_pkt(&self) -> bool {
        matches!(self.ty, RegType::Packet | RegType::PacketMeta)
    }

    pub fn is_pkt_any(&self) -> bool {
        self.is_pkt() || self.ty == RegType::PacketEnd
    }

    /// A known scalar (in the low 32 bits when `sub32`).
    pub fn is_const(&self, sub32: bool) -> bool {
        self.ty == RegType::Scalar && self.b.is_const_w(sub32)
    }

    pub fn const_value(&self, sub32: bool) -> u64 {
        self.b.const_w(sub32)
    }

    /// The scalar known to be zero.
    pub fn is_null(&self) -> bool {
        self.ty == RegType::Scalar && self.b.var_off.equals_const(0)
    }

    /// A pointer with no variable offset and fixed offset 0 unmodified
    /// since it was produced (`reg_is_init_pkt_pointer` and friends).
    pub fn is_unmodified(&self) -> bool {
        self.off == 0 && self.b.var_off.equals_const(0)
    }

    /// Forget everything but that this is a scalar.
    pub fn mark_unknown(&mut self) {
        *self = Reg::unknown();
    }

    /// Set to the known scalar `v` (ids dropped).
    pub fn mark_known(&mut self, v: u64) {
        *self = Reg::konst(v);
    }
}

/// What a byte of the stack holds (`STACK_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    /// Never written.
    Invalid,
    /// Part of a spilled register (see [`StackSlot::spilled`]).
    Spill,
    /// Some data.
    Misc,
    /// Known zero.
    Zero,
    /// Part of a `struct bpf_dynptr`.
    Dynptr,
    /// Part of an open-coded iterator.
    Iter,
}

/// Eight bytes of stack.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StackSlot {
    /// `types[i]` is the byte at offset `-8 * spi - 1 - i` (see [`byte_of`]).
    pub types: [Slot; 8],
    pub spilled: Reg,
}

impl Default for StackSlot {
    fn default() -> Self {
        StackSlot {
            types: [Slot::Invalid; 8],
            spilled: Reg::not_init(),
        }
    }
}

impl StackSlot {
    /// A register was spilled here (at least its last byte is a spill).
    pub fn is_spill(&self) -> bool {
        self.types[7] == Slot::Spill
    }

    /// A spilled scalar.
    pub fn is_spilled_scalar(&self) -> bool {
        self.is_spill() && self.spilled.ty == RegType::Scalar
    }

    /// A full 64-bit scalar spill.
    pub fn is_spilled_scalar64(&self) -> bool {
        self.types.iter().all(|&t| t == Slot::Spill) && self.spilled.ty == RegType::Scalar
    }

    /// Holds a spilled register, a dynptr or an iterator
    /// (`is_stack_slot_special`): a plain write scrubs it to data.
    pub fn is_special(&self) -> bool {
        matches!(self.types[7], Slot::Spill | Slot::Dynptr | Slot::Iter)
    }
}

/// One call frame.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Frame {
    pub regs: [Reg; 11],
    /// Slot `spi` covers offsets `-8 * (spi + 1) .. -8 * spi`.
    pub stack: Vec<StackSlot>,
    /// The call instruction in the caller (`None` for the entry frame).
    pub callsite: Option<usize>,
    pub frameno: u8,
    /// The function (index into the control-flow graph's functions).
    pub subprog: usize,
    /// A callback run by a helper (`bpf_loop` ...): its exit returns to
    /// the helper, which may call it again.
    pub in_callback: bool,
    /// A callback run asynchronously (timers): it must return 0.
    pub in_async_callback: bool,
    /// The range a callback's return value must lie in.
    pub callback_ret_range: (i64, i64),
    /// Times the callback has been entered along this path.
    pub callback_depth: u32,
}

impl Frame {
    pub fn new(frameno: u8, subprog: usize, callsite: Option<usize>) -> Frame {
        let mut regs: [Reg; 11] = Default::default();
        let mut fp = Reg::ptr(RegType::Stack);
        fp.frameno = frameno;
        regs[10] = fp;
        Frame {
            regs,
            stack: Vec::new(),
            callsite,
            frameno,
            subprog,
            in_callback: false,
            in_async_callback: false,
            callback_ret_range: (0, 0),
            callback_depth: 0,
        }
    }

    /// Bytes of stack in use (`allocated_stack`).
    pub fn allocated(&self) -> usize {
        self.stack.len() * 8
    }

    /// Make sure `size` bytes below the frame pointer exist.
    pub fn grow(&mut self, size: usize) {
        let slots = size.div_ceil(8);
        if self.stack.len() < slots {
            self.stack.resize(slots, StackSlot::default());
        }
    }
}

/// Index of the slot holding stack offset `off` (negative).
pub fn spi_of(off: i64) -> usize {
    ((-off - 1) / 8) as usize
}

/// Index within its slot's [`StackSlot::types`] of the byte at stack
/// offset `off`: 7 for the lowest address of the slot, 0 for the highest.
pub fn byte_of(off: i64) -> usize {
    ((-off - 1) % 8) as usize
}

/// Kinds of references a program must release.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefKind {
    /// A pointer that must be passed to a release helper (ring buffer
    /// record, socket).
    Ptr,
}

/// A reference the program holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RefState {
    pub id: u32,
    /// Where it was acquired.
    pub insn: usize,
    pub kind: RefKind,
    /// The callback frame that acquired it (it must release it before
    /// returning), if acquired inside a callback.
    pub callback_frame: Option<u8>,
}

/// A held `bpf_spin_lock`: which map value (map, its uid or the register
/// id of the value pointer) and the id of the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lock {
    /// Identifies the object: map index and the pointer's id (0 for a
    /// global array value).
    pub map: u32,
    pub ptr_id: u32,
}

/// The whole machine state of one path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub frames: Vec<Frame>,
    pub refs: Vec<RefState>,
    pub lock: Option<Lock>,
    /// Nesting of `may_goto` along this path.
    pub may_goto_depth: u32,
    /// Callback unrolling depth along this path.
    pub callback_unroll_depth: u32,
    /// The checkpoint this state descends from.
    pub parent: Option<usize>,
    /// The instructions executed since that checkpoint, for precision
    /// tracking.
    pub hist: Vec<super::precise::Hist>,
}

impl State {
    pub fn cur(&self) -> &Frame {
        self.frames.last().expect("a state has a frame")
    }

    pub fn cur_mut(&mut self) -> &mut Frame {
        self.frames.last_mut().expect("a state has a frame")
    }

    pub fn curframe(&self) -> usize {
        self.frames.len() - 1
    }

    pub fn reg(&self, r: u8) -> &Reg {
        &self.cur().regs[r as usize]
    }

    pub fn reg_mut(&mut self, r: u8) -> &mut Reg {
        &mut self.cur_mut().regs[r as usize]
    }

    /// Every register and spilled register of every frame.
    pub fn for_each_reg(&mut self, mut f: impl FnMut(&mut Reg)) {
        for fr in &mut self.frames {
            for r in fr.regs.iter_mut() {
                f(r);
            }
            for s in &mut fr.stack {
                if s.is_spill() {
                    f(&mut s.spilled);
                }
            }
        }
    }
}
