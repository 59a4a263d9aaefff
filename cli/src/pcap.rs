//! `bpfc run PROG --pcap IN [--pcap-out OUT]`: a network program over every
//! packet of a capture (Ethernet link type), each a test run as with
//! `--data-in`, maps kept from one packet to the next. Prints how many
//! packets got each verdict and writes the packets the program let
//! through (XDP_PASS and XDP_TX; tc's OK, UNSPEC, PIPE and RECLASSIFY; a
//! socket filter's or cgroup_skb program's non-zero return), as modified;
//! a socket filter's return value trims the packet, as when it filters a
//! socket.

use anyhow::{bail, Context as _};
use bpfc_compiler::loader::ProgType;
use bpfc_compiler::progtype::convert;
use bpfc_runtime::net::{self, xdp, TestOutput};
use bpfc_runtime::ExecContext;
use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};
use pcap_file::DataLink;
use std::collections::BTreeMap;
use std::path::Path;

/// The name of a verdict of a `ty` program.
pub fn verdict(ty: ProgType, retval: u32) -> String {
    use ProgType::*;
    match ty {
        Xdp => xdp::verdict_name(retval).map_or(format!("XDP {retval}"), str::to_string),
        SchedCls | SchedAct => match retval as i32 {
            -1 => "TC_ACT_UNSPEC".into(),
            0 => "TC_ACT_OK".into(),
            1 => "TC_ACT_RECLASSIFY".into(),
            2 => "TC_ACT_SHOT".into(),
            3 => "TC_ACT_PIPE".into(),
            4 => "TC_ACT_STOLEN".into(),
            5 => "TC_ACT_QUEUED".into(),
            6 => "TC_ACT_REPEAT".into(),
            7 => "TC_ACT_REDIRECT".into(),
            8 => "TC_ACT_TRAP".into(),
            v => format!("TC {v}"),
        },
        _ if retval == 0 => "drop".into(),
        SocketFilter => "accept".into(),
        _ => "pass".into(),
    }
}

/// The packet a passed run sends on, or `None` when the program dropped,
/// redirected or kept it.
fn passed(ty: ProgType, frame: &[u8], out: &TestOutput) -> Option<Vec<u8>> {
    use ProgType::*;
    let r = out.retval;
    match ty {
        Xdp => matches!(r, xdp::XDP_PASS | xdp::XDP_TX).then(|| out.data_out.clone()),
        SchedCls | SchedAct => matches!(r as i32, -1 | 0 | 1 | 3).then(|| out.data_out.clone()),
        _ if r == 0 => None,
        _ => {
            // data_out has the Ethernet header zeroed: put the frame's
            // back; a socket filter's return value trims the L3 packet.
            let l3 = out.data_out.get(net::ETH_HLEN..).unwrap_or(&[]);
            let keep = if ty == SocketFilter {
                l3.len().min(r as usize)
            } else {
                l3.len()
            };
            let mut v = frame[..net::ETH_HLEN].to_vec();
            v.extend_from_slice(&l3[..keep]);
            Some(v)
        }
    }
}

/// What a replay did.
pub struct Replay {
    pub packets: u64,
    pub verdicts: BTreeMap<String, u64>,
    /// Packets the test run refused (shorter than an Ethernet header ...).
    pub refused: u64,
    pub written: u64,
    /// Total time in the program, ns.
    pub ns: u128,
}

/// Run `run` (the engine) over every packet of `input`, writing passed
/// packets to `output`.
pub fn replay<E: std::fmt::Display>(
    ty: ProgType,
    input: &Path,
    output: Option<&Path>,
    ctx: &mut ExecContext,
    mut run: impl FnMut(&mut [u8], &mut ExecContext) -> Result<u64, E>,
) -> anyhow::Result<Replay> {
    let what = || format!("--pcap {}", input.display());
    let file = std::fs::File::open(input).with_context(what)?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut reader = PcapReader::new(std::io::BufReader::new(file)).with_context(what)?;
    let header = reader.header();
    if header.datalink != DataLink::ETHERNET {
        bail!(
            "{}: link type {:?}: only Ethernet captures can be replayed",
            what(),
            header.datalink
        );
    }
    let mut writer = match output {
        Some(p) => {
            let f = std::fs::File::create(p).with_context(|| p.display().to_string())?;
            Some(
                PcapWriter::with_header(std::io::BufWriter::new(f), header)
                    .with_context(|| p.display().to_string())?,
            )
        }
        None => None,
    };
    // A progress bar on captures of more than a few MiB (stderr, when a terminal).
    let bar = (total > 4 << 20).then(|| {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let mut r = Replay {
        packets: 0,
        verdicts: BTreeMap::new(),
        refused: 0,
        written: 0,
        ns: 0,
    };
    let mut read = 0u64;
    while let Some(pkt) = reader.next_packet() {
        let pkt = pkt.with_context(what)?;
        r.packets += 1;
        read += 16 + pkt.data.len() as u64;
        if let Some(b) = &bar {
            if r.packets.is_multiple_of(1024) {
                b.set_position(read);
            }
        }
        let setup = convert::net_setup(ty, &pkt.data, None).expect("a network program type");
        let net = match setup {
            Ok(n) => n,
            Err(_) => {
                r.refused += 1;
                continue;
            }
        };
        let start = std::time::Instant::now();
        let out = net::test_run(net, ctx, 1, &mut run)
            .map_err(|e| anyhow::anyhow!("{}: packet {}: {e}", what(), r.packets))?;
        r.ns += start.elapsed().as_nanos();
        *r.verdicts.entry(verdict(ty, out.retval)).or_default() += 1;
        if let (Some(w), Some(data)) = (&mut writer, passed(ty, &pkt.data, &out)) {
            let len = data.len() as u32;
            w.write_packet(&PcapPacket::new(pkt.timestamp, len, &data))
                .context("--pcap-out")?;
            r.written += 1;
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(r)
}
