//! `bpfc verify`: run the static verifier (the kernel's rules for a
//! privileged loader) on every program of an object, or one, and say why a
//! program is rejected: the instruction, its source line, the kernel's
//! words and the branches taken to get there. Exit status 0 when every
//! program is accepted, 1 when one is rejected, 2 for usage and load errors.

use crate::{input, output};
use anyhow::{bail, Context as _};
use bpfc_compiler::isa::{decode_program, Endian, Insn};
use bpfc_compiler::loader::{LineInfo, MapDef, ProgType};
use bpfc_compiler::progtype;
use bpfc_compiler::verifier::{self, report, Input, Options, Rejection, Verified};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Program file: an ELF object (clang -target bpf) or raw 8-byte instructions.
    file: PathBuf,
    #[command(flatten)]
    select: input::Select,
    /// The program type, overriding the one the section name gives
    /// (`xdp`, `sched_cls`, `socket_filter` ... or a section name such as
    /// `classifier`); raw instruction files default to socket_filter.
    #[arg(long = "type", value_name = "TYPE")]
    prog_type: Option<String>,
    /// 1: print the instructions of the rejected path; 2: every
    /// instruction with the register and stack state, as the kernel's log.
    #[arg(long, value_name = "1|2", value_parser = clap::value_parser!(u32).range(0..=2))]
    log_level: Option<u32>,
    /// Print one JSON object per program.
    #[arg(long)]
    json: bool,
}

/// One program to verify, whatever file it came from.
struct Target {
    name: String,
    ty: ProgType,
    attach: Option<String>,
    sleepable: bool,
    insns: Vec<Insn>,
    line_info: Vec<LineInfo>,
    func_info: Vec<(usize, u32)>,
}

/// Verify; the exit status (0 accepted, 1 rejected) or an error (status 2).
pub fn main(args: Args) -> anyhow::Result<i32> {
    let file = args.file.display().to_string();
    let bytes = std::fs::read(&args.file).with_context(|| file.clone())?;
    let forced = match &args.prog_type {
        Some(t) => Some(progtype::by_name(t).with_context(|| {
            format!(
                "--type {t}: not a program type (try xdp, sched_cls, socket_filter, kprobe ...)"
            )
        })?),
        None => None,
    };
    let (targets, maps, btf, endian, gpl) = if input::is_elf(&bytes) {
        let obj = input::load_object(&args.file, &bytes, &args.select)?;
        let progs: Vec<_> = match &args.select.program {
            Some(p) => vec![obj.program(p).with_context(|| file.clone())?.clone()],
            None => obj.programs.clone(),
        };
        if progs.is_empty() {
            bail!("{file}: the object holds no programs");
        }
        let targets = progs
            .into_iter()
            .map(|p| {
                let kind = bpfc_compiler::loader::classify(p.section.trim_start_matches('?'));
                Target {
                    name: p.name.clone(),
                    ty: forced.unwrap_or(kind.prog_type),
                    attach: kind.attach_type.map(str::to_string),
                    sleepable: kind.sleepable || kind.prog_type == ProgType::Syscall,
                    insns: p.insns,
                    line_info: p.line_info,
                    func_info: p.func_info.iter().map(|f| (f.pc, f.type_id)).collect(),
                }
            })
            .collect();
        let gpl = bpfc_compiler::bind::license_gpl(obj.license.as_deref());
        (targets, obj.maps, obj.btf, obj.endian, gpl)
    } else {
        if args.select.program.is_some() {
            bail!("{file}: --program applies to ELF objects; this is a raw instruction file");
        }
        let insns = decode_program(&bytes, Endian::Little).with_context(|| file.clone())?;
        let name = args
            .file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "prog".into());
        let target = Target {
            name,
            ty: forced.unwrap_or(ProgType::SocketFilter),
            attach: None,
            sleepable: false,
            insns,
            line_info: Vec::new(),
            func_info: Vec::new(),
        };
        (
            vec![target],
            Vec::<MapDef>::new(),
            None,
            Endian::Little,
            true,
        )
    };
    for t in &targets {
        if !progtype::supported(t.ty) {
            bail!(
                "{file}: program {}: bpfc's verifier does not model program type {} (use --type)",
                t.name,
                t.ty.name()
            );
        }
    }
    let mut status = 0;
    let mut out = String::new();
    for t in &targets {
        let mut opts = Options::new(t.ty);
        opts.attach_type = t.attach.clone();
        opts.log_level = args.log_level.unwrap_or(0);
        opts.sleepable = t.sleepable;
        opts.gpl = gpl;
        let input = Input {
            insns: &t.insns,
            maps: &maps,
            btf: btf.as_ref(),
            func_info: &t.func_info,
            endian,
        };
        let result = verifier::verify(&input, &opts);
        if result.is_err() {
            status = 1;
        }
        if args.json {
            out.push_str(&json(&file, t, &result).to_string());
            out.push('\n');
        } else {
            out.push_str(&text(&file, t, &result, args.log_level.unwrap_or(0)));
        }
    }
    output::print(out)?;
    Ok(status)
}

fn insn_text(t: &Target, pc: usize) -> String {
    report::insn_text(&t.insns, pc)
}

fn line_of(t: &Target, pc: usize) -> Option<&LineInfo> {
    report::line_of(&t.line_info, pc)
}

fn text(file: &str, t: &Target, r: &Result<Verified, Rejection>, log_level: u32) -> String {
    let head = format!("{file}: program {} ({})", t.name, t.ty.name());
    match r {
        Ok(v) => {
            let mut s = String::new();
            if log_level > 0 && !v.log.is_empty() {
                s.push_str(&v.log);
                if !v.log.ends_with('\n') {
                    s.push('\n');
                }
            }
            s.push_str(&format!(
                "{head}: accepted ({} instructions processed, {} states, peak {})\n",
                v.stats.insns_processed, v.stats.total_states, v.stats.peak_states
            ));
            s
        }
        Err(e) => {
            let mut s = String::new();
            if log_level > 0 && !e.log.is_empty() {
                s.push_str(&e.log);
                if !e.log.ends_with('\n') {
                    s.push('\n');
                }
            }
            s.push_str(&format!(
                "{file}: {}",
                report::rejection_text(&t.name, t.ty, &t.insns, &t.line_info, e)
            ));
            s
        }
    }
}

fn json(file: &str, t: &Target, r: &Result<Verified, Rejection>) -> serde_json::Value {
    use serde_json::json;
    match r {
        Ok(v) => json!({
            "file": file,
            "program": t.name,
            "type": t.ty.name(),
            "verdict": "accepted",
            "insns_processed": v.stats.insns_processed,
            "total_states": v.stats.total_states,
            "peak_states": v.stats.peak_states,
            "log": v.log,
        }),
        Err(e) => {
            let line =
                e.pc.and_then(|pc| line_of(t, pc))
                    .map(|l| json!({"file": l.file, "line": l.line, "text": l.text.trim()}));
            json!({
                "file": file,
                "program": t.name,
                "type": t.ty.name(),
                "verdict": "rejected",
                "pc": e.pc,
                "insn": e.pc.map(|pc| insn_text(t, pc)),
                "source": line,
                "message": e.message,
                // The last branches (a path that hit the instruction
                // budget holds up to a million), and how many came before.
                "path": &e.path[e.path.len().saturating_sub(report::MAX_PATH_SHOWN)..],
                "path_earlier": e.path.len().saturating_sub(report::MAX_PATH_SHOWN),
                "insns_processed": e.stats.insns_processed,
                "log": e.log,
            })
        }
    }
}
