//! The native ABI of compiled programs, shared by JIT code, AOT objects and
//! the hosts that call them. See `docs/abi.md` for the whole contract.
//!
//! Entry point (C):
//! `uint64_t SYM(uint64_t r1, uint64_t r2, void *exec_ctx, struct bpfc_fault *fault)`.
//! On a fault the entry writes `fault` and returns 0; otherwise it returns r0
//! and leaves `fault` untouched (callers zero it first).

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
                "pseudo lddw of maps, global data or functions is not supported by the runtime yet"
            }
            FaultCode::InsnLimit => "instruction limit reached",
            FaultCode::CoreRelocation => {
                "reached an instruction whose CO-RE relocation could not be applied"
            }
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

/// The symbol an AOT object imports for helper `id`.
pub fn helper_symbol(id: u32) -> String {
    format!("bpfc_helper_{id}")
}
