//! The native ABI of compiled programs, shared by JIT code, AOT objects and
//! the hosts that call them. See `docs/abi.md` for the whole contract.
//!
//! Entry point (C):
//! `uint64_t SYM(uint64_t r1, uint64_t r2, void *exec_ctx, struct bpfc_fault *fault)`.
//! On a fault the entry writes `fault` and returns 0; otherwise it returns r0
//! and leaves `fault` untouched (callers zero it first).
//!
//! Every layout that compiled code and the runtime share is a `#[repr(C)]`
//! type here ([`Fault`], [`RunState`], [`MapNative`], [`CallbackNative`],
//! [`ProgNative`]); the code generator takes offsets with `offset_of!`, and
//! `runtime/include/bpfc_abi.h` is checked against these types by a test.

/// Why a compiled program stopped early (`bpfc_fault.code`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultCode {
    /// A local call would exceed the 8-frame limit.
    CallDepth = 1,
    /// A load, store or atomic outside the regions the program may touch
    /// (bounds-checked mode only).
    OutOfBounds = 2,
    /// `call` or `callx` named a helper the program was not linked with.
    UnknownHelper = 3,
    /// A kfunc call (`call` with src 2): no kernel functions here.
    KfuncCall = 4,
    /// A helper reported a failure in the execution context.
    HelperFault = 5,
    /// A legacy packet load (`ldabs`/`ldind`) outside a packet program type.
    PacketLoad = 6,
    /// An lddw map or function reference that was not resolved at load time.
    UnresolvedLddw = 7,
    /// The run used up the instruction budget it was compiled with.
    InsnLimit = 8,
    /// The run reached an instruction whose CO-RE relocation could not be
    /// applied (the loader replaced it with `call` [`CORE_POISON_HELPER`]).
    CoreRelocation = 9,
    /// A callback would exceed the 8-frame limit, or a helper that calls
    /// back was given something that is not a callback.
    BadCallback = 10,
}

/// The helper id of libbpf's poison call (`0xbad2310`, "bad relo"): the
/// loader writes `call 0xbad2310` over an instruction whose CO-RE
/// relocation cannot be applied, so the program fails only if it reaches it.
pub const CORE_POISON_HELPER: i32 = 0xbad2310;

impl FaultCode {
    pub fn from_raw(code: u32) -> Option<FaultCode> {
        Some(match code {
            1 => FaultCode::CallDepth,
            2 => FaultCode::OutOfBounds,
            3 => FaultCode::UnknownHelper,
            4 => FaultCode::KfuncCall,
            5 => FaultCode::HelperFault,
            6 => FaultCode::PacketLoad,
            7 => FaultCode::UnresolvedLddw,
            8 => FaultCode::InsnLimit,
            9 => FaultCode::CoreRelocation,
            10 => FaultCode::BadCallback,
            _ => return None,
        })
    }

    pub fn describe(self) -> &'static str {
        match self {
            FaultCode::CallDepth => "call depth exceeds 8 frames",
            FaultCode::OutOfBounds => "out-of-bounds memory access",
            FaultCode::UnknownHelper => "unknown helper",
            FaultCode::KfuncCall => "kfunc calls cannot run",
            FaultCode::HelperFault => "helper failed",
            FaultCode::PacketLoad => "legacy packet load needs a packet program type",
            FaultCode::UnresolvedLddw => {
                "lddw of a map, global data or function the program was not bound to"
            }
            FaultCode::InsnLimit => "instruction limit reached",
            FaultCode::CoreRelocation => {
                "reached an instruction whose CO-RE relocation could not be applied"
            }
            FaultCode::BadCallback => "bad callback",
        }
    }
}

/// `struct bpfc_fault`: written by a compiled program when it faults.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fault {
    /// A [`FaultCode`] value; 0 means no fault.
    pub code: u32,
    /// The eBPF instruction index (slot) that faulted.
    pub pc: u32,
    /// What the fault is about, by code: the address of an out-of-bounds
    /// access, the id of an unknown helper, the BTF id of a kfunc, the
    /// budget of an instruction limit; 0 otherwise.
    pub detail: u64,
}

/// The state of one run of compiled code: made by the entry on its own
/// stack, passed to every eBPF function and every helper. Helpers reach the
/// run's [`ExecContext`](crate::ExecContext) through `ctx`, and report a
/// failure by setting `fault.code` to [`FaultCode::HelperFault`] (the
/// generated code fills in the pc and stops the run right after the call).
#[repr(C)]
#[derive(Debug)]
pub struct RunState {
    pub fault: Fault,
    /// The execution context the host passed to the entry (may be NULL).
    pub ctx: *mut crate::ExecContext,
    /// Lowest address of the frame stacks.
    pub stack_base: u64,
    /// One past the entry frame's top.
    pub stack_top: u64,
    /// The input region `[input_lo, input_hi)` (the context).
    pub input_lo: u64,
    pub input_hi: u64,
    /// Instructions left of the budget (code compiled with a limit).
    pub budget: u64,
    /// The frame pointer of the function that called a helper which calls
    /// back into the program (bpf_loop, for_each_map_elem, ...): callbacks
    /// run in the next frame below it.
    pub cb_fp: u64,
    /// The run's CPU slot (per-CPU maps), copied from the execution context.
    pub cpu: u32,
    /// Tail calls taken so far.
    pub tail_calls: u32,
}

impl RunState {
    /// A state for a run outside compiled code (the interpreter's helper
    /// calls), for the context `ctx` (its CPU slot is copied).
    pub fn new(ctx: &mut crate::ExecContext) -> RunState {
        let cpu = ctx.cpu;
        let ctx: *mut crate::ExecContext = ctx;
        RunState {
            fault: Fault::default(),
            ctx,
            stack_base: 0,
            stack_top: 0,
            input_lo: 0,
            input_hi: 0,
            budget: 0,
            cb_fp: 0,
            cpu,
            tail_calls: 0,
        }
    }
}

/// What a `BPF_PSEUDO_FUNC` lddw loads: the address of one of these, which
/// the bound program owns. Helpers that call back (bpf_loop,
/// for_each_map_elem, timers ...) take it as their callback argument.
#[repr(C)]
#[derive(Debug)]
pub struct CallbackNative {
    /// Magic value [`CallbackNative::MAGIC`]: helpers check it before calling.
    pub magic: u64,
    /// The eBPF pc where the callback function starts (interpreter).
    pub pc: u64,
    /// Native code: `uint64_t f(r1, r2, r3, r4, r5, uint64_t fp, struct
    /// bpfc_run_state *st)`, the callback function behind a C-ABI wrapper;
    /// NULL for the interpreter.
    pub func: *const u8,
    /// The engine's own handle of the program (interpreter: a pointer to it).
    pub prog: *const u8,
}

impl CallbackNative {
    pub const MAGIC: u64 = 0x6270_6663_5f63_6231; // "bpfc_cb1"
}

/// What a prog array slot points to: the entry function of a bound program
/// of the same engine, which a tail call jumps to.
#[repr(C)]
#[derive(Debug)]
pub struct ProgNative {
    /// Native code: the program's first eBPF function (internal signature,
    /// tail calling convention); NULL for the interpreter.
    pub func: *const u8,
    /// The engine's own handle of the program (interpreter: a pointer to it).
    pub prog: *const u8,
    /// The program's id.
    pub id: u32,
    /// `enum bpf_prog_type` number.
    pub prog_type: u32,
}

// ProgNative and CallbackNative are shared between threads through map
// slots and bound programs; their pointers refer to code and program
// objects that live as long as the structs.
// SAFETY: read-only after construction, pointing at immutable code.
unsafe impl Send for ProgNative {}
// SAFETY: as above.
unsafe impl Sync for ProgNative {}
// SAFETY: as above.
unsafe impl Send for CallbackNative {}
// SAFETY: as above.
unsafe impl Sync for CallbackNative {}

/// Bytes of one eBPF stack frame.
pub const FRAME_SIZE: u64 = 512;
/// Call frames a run may use (the entry function's included).
pub const MAX_FRAMES: u64 = 8;

/// The symbol an AOT object imports for helper `id`.
pub fn helper_symbol(id: u32) -> String {
    format!("bpfc_helper_{id}")
}

/// `struct bpfc_map`: the start of every runtime map, which compiled code
/// reads to inline array lookups. Programs hold the map's address
/// (`lddw rX, map`), which is the address of this struct.
#[repr(C)]
#[derive(Debug)]
pub struct MapNative {
    /// `enum bpf_map_type`.
    pub map_type: u32,
    pub max_entries: u32,
    pub key_size: u32,
    pub value_size: u32,
    /// Arrays: bytes from one value to the next (value_size rounded up to 8).
    pub elem_size: u32,
    /// CPU slots of per-CPU values.
    pub ncpus: u32,
    /// Arrays: the first value (per-CPU arrays: CPU slot 0's); NULL otherwise.
    pub values: *mut u8,
    /// Per-CPU arrays: bytes from one CPU slot's values to the next's.
    pub cpu_stride: u64,
}
