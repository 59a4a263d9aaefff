//! Markdown output: the run-time table with ratios to native, the
//! repetition counts, the JIT compile-time table and the geometric means.

use crate::engines::Column;
use crate::measure::Sample;

#[derive(Clone, Debug)]
pub enum Cell {
    Time(Sample),
    /// Why there is no number (engine not built, or it refused the program).
    Missing(String),
    /// Compile-time cell of an engine that has no JIT compile step.
    NotJit,
}

pub struct Row {
    pub name: &'static str,
    pub insns: usize,
    pub native: Sample,
    pub cells: Vec<Cell>,
}

pub struct CompileRow {
    pub name: String,
    pub insns: usize,
    pub cells: Vec<Cell>,
}

pub(crate) fn ns(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2} ms", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1} µs", v / 1e3)
    } else {
        format!("{v:.0} ns")
    }
}

fn reps(s: &Sample) -> String {
    format!("{}×{}", s.reps, s.batch)
}

/// The CPU model (from /proc/cpuinfo) and the number of CPUs available.
fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_else(|_| "?".into());
    format!(
        "{model}, {cpus} CPUs, {}-{}",
        std::env::consts::ARCH,
        std::env::consts::OS
    )
}

pub fn print(columns: &[Column], rows: &[Row], compile_rows: &[CompileRow]) {
    println!("Machine: {}\n", machine());
    let mut notes: Vec<String> = Vec::new();
    let mut note = |msg: &str| -> usize {
        match notes.iter().position(|n| n == msg) {
            Some(i) => i + 1,
            None => {
                notes.push(msg.to_string());
                notes.len()
            }
        }
    };
    println!("### Run time (median per run, and ratio to native)\n");
    let names: Vec<&str> = columns.iter().map(|c| c.name).collect();
    println!("| program | eBPF insns | native | {} |", names.join(" | "));
    println!("|---|---:|---:|{}", "---:|".repeat(names.len()));
    for row in rows {
        let mut line = format!(
            "| {} | {} | {} |",
            row.name,
            row.insns,
            ns(row.native.median_ns)
        );
        for cell in &row.cells {
            match cell {
                Cell::Time(s) => line.push_str(&format!(
                    " {} ({:.2}×) |",
                    ns(s.median_ns),
                    s.median_ns / row.native.median_ns
                )),
                Cell::Missing(why) => line.push_str(&format!(" n/a [{}] |", note(why))),
                Cell::NotJit => line.push_str(" – |"),
            }
        }
        println!("{line}");
    }
    println!("\nGeometric mean of engine / native over the programs above:\n");
    for (i, name) in names.iter().enumerate() {
        let ratios: Vec<f64> = rows
            .iter()
            .filter_map(|r| match &r.cells[i] {
                Cell::Time(s) => Some(s.median_ns / r.native.median_ns),
                _ => None,
            })
            .collect();
        if ratios.is_empty() {
            println!("- {name}: not measured");
        } else {
            let g = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
            let of = if ratios.len() == rows.len() {
                String::new()
            } else {
                format!(" (over {} of {} programs)", ratios.len(), rows.len())
            };
            println!("- {name}: {g:.2}×{of}");
        }
    }

    println!("\n### Repetitions (N batches × calls per batch; the median is over the N batches)\n");
    println!("| program | native | {} |", names.join(" | "));
    println!("|---|---:|{}", "---:|".repeat(names.len()));
    for row in rows {
        let mut line = format!("| {} | {} |", row.name, reps(&row.native));
        for cell in &row.cells {
            match cell {
                Cell::Time(s) => line.push_str(&format!(" {} |", reps(s))),
                _ => line.push_str(" – |"),
            }
        }
        println!("{line}");
    }

    println!("\n### JIT compile time (median; µs and µs per eBPF instruction)\n");
    println!("| program | eBPF insns | {} |", names.join(" | "));
    println!("|---|---:|{}", "---:|".repeat(names.len()));
    for row in compile_rows {
        let mut line = format!("| {} | {} |", row.name, row.insns);
        for cell in &row.cells {
            match cell {
                Cell::Time(s) => {
                    let us = s.median_ns / 1e3;
                    line.push_str(&format!(
                        " {us:.1} µs ({:.3} µs/insn) |",
                        us / row.insns as f64
                    ));
                }
                Cell::Missing(why) => line.push_str(&format!(" n/a [{}] |", note(why))),
                Cell::NotJit => line.push_str(" – |"),
            }
        }
        println!("{line}");
    }
    if !notes.is_empty() {
        println!("\nNotes:\n");
        for (i, n) in notes.iter().enumerate() {
            println!("{}. {n}", i + 1);
        }
    }
}
