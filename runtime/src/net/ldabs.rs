//! The legacy packet loads `ldabs`/`ldind` of socket filters and tc
//! programs: a 1-, 2- or 4-byte big-endian read of the skb at an offset
//! from its data, or (negative offsets, `SKF_NET_OFF`/`SKF_LL_OFF`) from
//! its network or link-layer header. A read outside the packet ends the
//! program with return value 0, as in the kernel; every engine calls
//! [`load_packet`] (compiled code through [`LOAD_PACKET_SYMBOL`]).

use super::NetRun;
use crate::abi::RunState;

/// `SKF_NET_OFF`: offsets from the network header start here.
pub const SKF_NET_OFF: i32 = -0x10_0000;
/// `SKF_LL_OFF`: offsets from the link-layer header start here.
pub const SKF_LL_OFF: i32 = -0x20_0000;

/// The symbol compiled code imports for [`load_packet`].
pub const LOAD_PACKET_SYMBOL: &str = "bpfc_load_packet";

/// Read `size` bytes at packet offset `offset` of the run's skb, big-endian;
/// negative when the bytes are not in the packet (or the run has none).
pub fn read(net: &NetRun, offset: i32, size: usize) -> i64 {
    let NetRun::Skb(s) = net else {
        return -1;
    };
    let p = &s.pkt;
    let start = if offset >= 0 {
        p.data.checked_add(offset as usize)
    } else if offset >= SKF_NET_OFF {
        s.network.checked_add((offset - SKF_NET_OFF) as usize)
    } else if offset >= SKF_LL_OFF {
        s.mac.checked_add((offset - SKF_LL_OFF) as usize)
    } else {
        None
    };
    let Some(start) = start else { return -1 };
    // Negative offsets may reach anywhere from the buffer's head to the
    // data's end; positive ones only the data.
    if start + size > p.end || (offset >= 0 && start < p.data) {
        return -1;
    }
    let b = &p.buf[start..start + size];
    match size {
        1 => b[0] as i64,
        2 => u16::from_be_bytes([b[0], b[1]]) as i64,
        _ => u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as i64,
    }
}

/// What [`load_packet`] returns when the run has no packet (a legacy load
/// outside a packet program type): compiled code faults with
/// `FaultCode::PacketLoad`.
pub const NO_PACKET: u64 = i64::MIN as u64;

/// `bpfc_load_packet(st, offset, size)`: the value, a negative number when
/// the program must end with 0, or [`NO_PACKET`].
///
/// # Safety
/// `st` must be the live run state of the calling program.
pub unsafe extern "C" fn load_packet(st: *mut RunState, offset: u64, size: u64) -> u64 {
    // SAFETY: guaranteed by the caller.
    let net = unsafe { (*st).ctx.as_ref() }.and_then(|c| c.net.as_deref());
    match net {
        Some(n) => read(n, offset as u32 as i32, size as usize) as u64,
        None => NO_PACKET,
    }
}
