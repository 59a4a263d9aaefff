//! Network program contexts: the packet a run works on and the native
//! structs its context loads read, built and read back the way the
//! kernel's `BPF_PROG_TEST_RUN` does it (net/bpf/test_run.c).
//!
//! A program's `struct xdp_md` / `struct __sk_buff` accesses are rewritten
//! at binding time to single loads and stores of the native structs here
//! ([`XdpMd`], [`SkBuff`]): every field a program may touch is a field of
//! its own, pointer fields (`data`, `data_end`, `data_meta`) are 64-bit host
//! pointers. The packet bytes live in a buffer the run owns ([`Packet`]);
//! helpers that move the packet's bounds update the native struct.
//!
//! A run's state ([`NetRun`]) hangs off its [`ExecContext`](crate::ExecContext):
//! helpers find the packet there, never by trusting a pointer the program
//! passed (they only check that r1 is the run's context).

pub mod csum;
pub mod ldabs;
pub mod reshape;
pub mod skb;
pub mod xdp;

pub use skb::{SkBuff, SkbRun};
pub use xdp::{XdpMd, XdpRun};

use crate::abi::RunState;
use crate::helpers::fail;

/// Bytes of an Ethernet header (`ETH_HLEN`).
pub const ETH_HLEN: usize = 14;
/// `SKB_DATA_ALIGN(sizeof(struct skb_shared_info))` on 64-bit kernels: the
/// tailroom test runs reserve after the data.
pub const SHINFO_SIZE: usize = 320;
/// The test run's page: XDP frames are this big.
pub const PAGE_SIZE: usize = 4096;

/// Why a test run could not be set up (the kernel's `-EINVAL` and friends).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    #[error("data_in of {0} bytes: the kernel accepts {1} to {2}")]
    DataSize(usize, usize, usize),
    #[error("ctx_in: {0}")]
    Ctx(String),
    #[error("ctx_in: ifindex {0}: no such device")]
    NoDevice(u32),
}

impl SetupError {
    /// The errno the kernel's test run fails with.
    pub fn errno(&self) -> i32 {
        match self {
            SetupError::NoDevice(_) => crate::maps::errno::ENODEV,
            SetupError::Ctx(m) if m.contains("not zero") => crate::maps::errno::E2BIG,
            _ => crate::maps::errno::EINVAL,
        }
    }
}

/// The packet bytes of a run with the bounds of its data: `buf[meta..data]`
/// is metadata, `buf[data..end]` the packet.
#[derive(Debug, Clone, Default)]
pub struct Packet {
    pub buf: Vec<u8>,
    pub meta: usize,
    pub data: usize,
    pub end: usize,
}

impl Packet {
    pub fn base(&self) -> u64 {
        self.buf.as_ptr() as u64
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.data..self.end]
    }

    pub fn len(&self) -> usize {
        self.end - self.data
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.data
    }
}

/// The network state of one run.
#[derive(Debug)]
pub enum NetRun {
    Xdp(XdpRun),
    Skb(SkbRun),
}

impl NetRun {
    /// The native context's address (what r1 holds on entry).
    pub fn ctx_addr(&self) -> u64 {
        match self {
            NetRun::Xdp(x) => x.md_addr(),
            NetRun::Skb(s) => s.skb_addr(),
        }
    }

    pub fn packet(&self) -> &Packet {
        match self {
            NetRun::Xdp(x) => &x.pkt,
            NetRun::Skb(s) => &s.pkt,
        }
    }

    /// The native context's bytes: the memory r1 points to.
    pub fn ctx_bytes(&mut self) -> &mut [u8] {
        match self {
            NetRun::Xdp(x) => x.md_bytes(),
            NetRun::Skb(s) => s.skb_bytes(),
        }
    }

    /// Make the packet buffer accessible to checked code (after a setup or
    /// a helper that moved the buffer).
    pub(crate) fn region(&self) -> (usize, usize) {
        let p = self.packet();
        (p.buf.as_ptr() as usize, p.buf.len())
    }
}

/// The packet state of a test run of a program of the kernel's type
/// number `prog_type` (`enum bpf_prog_type`) on `data_in` (an Ethernet
/// frame) and an optional `ctx_in`, with the view of the skb
/// `net/bpf/test_run.c` gives each type; `None` for a type that does not
/// run on packets. The engines and the host library both set runs up here.
pub fn setup(
    prog_type: u32,
    data_in: &[u8],
    ctx_in: Option<&[u8]>,
) -> Option<Result<NetRun, SetupError>> {
    use skb::SkbKind;
    let kind = match prog_type {
        // xdp
        6 => return Some(XdpRun::new(data_in, ctx_in).map(NetRun::Xdp)),
        // sched_cls, sched_act
        3 | 4 => SkbKind {
            l2: true,
            direct: true,
        },
        // lwt_in, lwt_out, lwt_xmit
        10..=12 => SkbKind {
            l2: false,
            direct: true,
        },
        // socket_filter, cgroup_skb
        1 | 8 => SkbKind {
            l2: false,
            direct: false,
        },
        _ => return None,
    };
    Some(SkbRun::new(kind, data_in, ctx_in).map(NetRun::Skb))
}

/// The region name of packet memory in error messages.
pub const PACKET_REGION: &str = "packet";

/// Install `net` as the run's network state and make its packet buffer an
/// accessible region of `ctx`. Returns the previous state.
pub fn install(ctx: &mut crate::ExecContext, net: NetRun) -> Option<Box<NetRun>> {
    let old = ctx.net.take();
    if let Some(o) = &old {
        ctx.regions.remove(o.region().0);
    }
    let (base, len) = net.region();
    ctx.regions.add(PACKET_REGION, base, len, true);
    ctx.net = Some(Box::new(net));
    old
}

/// Remove the run's network state (and its packet region) from `ctx`.
pub fn uninstall(ctx: &mut crate::ExecContext) -> Option<Box<NetRun>> {
    let old = ctx.net.take();
    if let Some(o) = &old {
        ctx.regions.remove(o.region().0);
    }
    old
}

/// The run's network state, when the helper's r1 is its context; otherwise
/// the run stops (a helper of a packet program called without its context).
pub(crate) fn current<'a>(st: &mut RunState, r1: u64, what: &str) -> Option<&'a mut NetRun> {
    // SAFETY: a non-null ctx in a run state is the run's live context; the
    // network state it holds lives until the run ends.
    let net = unsafe { st.ctx.as_mut() }.and_then(|c| c.net.as_deref_mut());
    match net {
        Some(n) if n.ctx_addr() == r1 => {
            // SAFETY: as above; the reference does not outlive the helper call.
            Some(unsafe { &mut *(n as *mut NetRun) })
        }
        Some(_) => {
            fail(st, format!("{what}: r1 is not the program's context"));
            None
        }
        None => {
            fail(st, format!("{what}: the run has no packet"));
            None
        }
    }
}

/// What a test run gives back, as `BPF_PROG_TEST_RUN` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestOutput {
    /// The low 32 bits of r0 (the kernel's `retval`).
    pub retval: u32,
    pub r0: u64,
    pub data_out: Vec<u8>,
    pub ctx_out: Vec<u8>,
    /// Nanoseconds per run, averaged over the repetitions.
    pub duration: u64,
    /// The ifindex a redirect helper sent the packet to.
    pub redirect: Option<u32>,
}

/// Run a network program `repeat` times on `net` as the kernel's test run
/// does (every repetition sees the packet as the previous one left it):
/// `run` is the engine, called with the native context's bytes (r1) and
/// `ctx`, which holds the packet while it runs.
pub fn test_run<E>(
    net: NetRun,
    ctx: &mut crate::ExecContext,
    repeat: u32,
    mut run: impl FnMut(&mut [u8], &mut crate::ExecContext) -> Result<u64, E>,
) -> Result<TestOutput, E> {
    install(ctx, net);
    let (addr, len) = {
        let n = ctx.net.as_deref_mut().expect("installed above");
        let b = n.ctx_bytes();
        (b.as_mut_ptr(), b.len())
    };
    // SAFETY: the native context is a heap allocation of the installed
    // network state, which stays in `ctx` (and alive) until `uninstall`
    // below; the engine and the helpers reach it only during `run`.
    let mem = unsafe { std::slice::from_raw_parts_mut(addr, len) };
    // One read-side section over all repetitions, as the kernel's test run
    // holds rcu_read_lock around its loop: each run's own section nests.
    let section = crate::maps::rcu::read_lock();
    let start = std::time::Instant::now();
    let mut r0 = 0;
    let mut result = Ok(());
    for _ in 0..repeat.max(1) {
        match run(mem, ctx) {
            Ok(v) => r0 = v,
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    let duration = (start.elapsed().as_nanos() / repeat.max(1) as u128) as u64;
    drop(section);
    let net = uninstall(ctx).expect("installed above");
    result?;
    let (data_out, ctx_out, redirect) = match *net {
        NetRun::Xdp(x) => (x.data_out().to_vec(), x.ctx_out(), x.redirect),
        NetRun::Skb(mut s) => (s.data_out(), s.ctx_out(), s.redirect),
    };
    Ok(TestOutput {
        retval: r0 as u32,
        r0,
        data_out,
        ctx_out,
        duration,
        redirect,
    })
}
