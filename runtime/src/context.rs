//! The per-run execution context: state one program run carries across
//! helper calls (CPU slot, tail-call count, trace output, the first fault).

/// State of one program run. Compiled code treats it as opaque and only passes
/// a pointer to it along to helpers; helpers and the engines use its methods.
#[derive(Debug, Default)]
pub struct ExecContext {
    /// The CPU slot this run executes on (indexes per-CPU maps).
    pub cpu: u32,
    /// Tail calls taken so far in this run.
    pub tail_calls: u32,
    /// Text written by trace helpers (`bpf_trace_printk` and the like).
    pub trace: Vec<u8>,
    /// The first error a helper reported; the engine stops the run with it.
    pub fault: Option<String>,
}

impl ExecContext {
    pub fn new() -> ExecContext {
        ExecContext::default()
    }

    /// Record a helper failure; the first one wins.
    pub fn set_fault(&mut self, msg: impl Into<String>) {
        if self.fault.is_none() {
            self.fault = Some(msg.into());
        }
    }
}
