//! bpfc-bench: runs each benchmark program natively (C built by `cc -O2`),
//! in bpfc's engines and in rbpf, checks every engine's r0 against the
//! native result (a mismatch aborts), and prints markdown tables of run
//! times, ratios to native and JIT compile times; then checked against
//! unchecked code on programs the verifier accepts (`verified`).
//!
//! Usage: `bpfc-bench [PROGRAM...]` (default: all programs).

mod buffer;
mod engines;
mod gen;
mod measure;
mod programs;
mod report;
mod verified;

use engines::{Column, Compiled, Source};
use measure::{measure, Sample, Timings, ROUNDS};
use report::{Cell, CompileRow, Row};
use std::process::ExitCode;
use std::time::Instant;

/// Sizes of the generated programs used for compile-time measurement (the
/// issue asks for 4,000; 400 also fits rbpf's one-page x86 JIT buffer).
const GENERATED_INSNS: [usize; 2] = [4000, 400];

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("bpfc-bench: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let filter: Vec<String> = std::env::args().skip(1).collect();
    let columns = engines::columns();
    let mut rows = Vec::new();
    let mut compile_rows = Vec::new();
    for program in programs::all() {
        if !filter.is_empty() && !filter.iter().any(|f| program.name.contains(f.as_str())) {
            continue;
        }
        eprintln!("== {}", program.name);
        let (row, compile_row) = bench_program(&program, &columns)?;
        rows.push(row);
        compile_rows.push(compile_row);
    }
    for n in GENERATED_INSNS {
        eprintln!("== generated {n}-instruction program (compile time)");
        compile_rows.push(bench_generated(&columns, n)?);
    }
    report::print(&columns, &rows, &compile_rows);
    verified::bench(&filter)
}

fn bench_program(
    program: &programs::Program,
    columns: &[Column],
) -> Result<(Row, CompileRow), String> {
    let insns = program.bytecode.len() / 8;
    let mut buf = (program.input)();
    let len = buf.len();
    let native = program.native;
    let call_native = |buf: &mut buffer::Buffer| -> Result<u64, String> {
        // SAFETY: the native build reads and writes only inside the buffer it
        // is given (len bytes, 8-byte aligned), per its C source.
        Ok(unsafe { native(buf.bytes_mut().as_mut_ptr(), len as u64) })
    };
    let expected = call_native(&mut buf)?;
    let source = Source {
        bytecode: program.bytecode,
        input_len: len,
        clang_native: program.clang_native,
    };
    eprintln!("   native: r0 = {expected:#x}");

    // Compile and check every engine first; cells stay None for those that run.
    let mut compiled: Vec<Option<Box<dyn Compiled>>> = Vec::new();
    let mut cells: Vec<Option<Cell>> = Vec::new();
    let mut compile_cells = Vec::new();
    for column in columns {
        let engine = match &column.engine {
            Ok(e) => e,
            Err(why) => {
                compiled.push(None);
                cells.push(Some(Cell::Missing(why.clone())));
                compile_cells.push(Cell::Missing(why.clone()));
                continue;
            }
        };
        let refuse = |e: String| -> Result<Cell, String> {
            let msg = format!("{} on {}: {e}", column.name, program.name);
            if engine.may_refuse() {
                eprintln!("   {msg}");
                Ok(Cell::Missing(msg))
            } else {
                Err(msg)
            }
        };
        let mut c: Box<dyn Compiled> = match engine.compile(&source) {
            Ok(c) => c,
            Err(e) => {
                let cell = refuse(format!("cannot compile: {e}"))?;
                compiled.push(None);
                cells.push(Some(cell.clone()));
                compile_cells.push(cell);
                continue;
            }
        };
        compile_cells.push(if engine.is_jit() {
            Cell::Time(measure(|| engine.compile(&source))?)
        } else {
            Cell::NotJit
        });
        match c.run(buf.bytes_mut()) {
            Ok(got) if got == expected => {
                compiled.push(Some(c));
                cells.push(None);
            }
            Ok(got) => {
                // A wrong result from bpfc aborts; one from a comparison
                // engine (rbpf) is reported in its cell and not timed.
                let cell = refuse(format!(
                    "wrong result r0 = {got:#x}, native gives {expected:#x}"
                ))?;
                compiled.push(None);
                cells.push(Some(cell));
            }
            Err(e) => {
                let cell = refuse(format!("cannot run: {e}"))?;
                compiled.push(None);
                cells.push(Some(cell));
            }
        }
    }

    // Interleaved rounds: native, then every engine, ROUNDS times.
    let mut native_t = Timings::default();
    let mut engine_t: Vec<Timings> = columns.iter().map(|_| Timings::default()).collect();
    for _ in 0..ROUNDS {
        native_t.round(|| call_native(&mut buf))?;
        for (c, t) in compiled.iter_mut().zip(engine_t.iter_mut()) {
            if let Some(c) = c {
                t.round(|| c.run(buf.bytes_mut()))?;
            }
        }
    }
    let native_sample = native_t.sample();
    eprintln!("   native: {:.0} ns", native_sample.median_ns);
    let cells = cells
        .into_iter()
        .zip(engine_t.iter())
        .zip(columns)
        .map(|((cell, t), column)| {
            cell.unwrap_or_else(|| {
                let s = t.sample();
                eprintln!(
                    "   {}: {:.0} ns ({:.2}x native)",
                    column.name,
                    s.median_ns,
                    s.median_ns / native_sample.median_ns
                );
                Cell::Time(s)
            })
        })
        .collect();
    Ok((
        Row {
            name: program.name,
            insns,
            native: native_sample,
            cells,
        },
        CompileRow {
            name: program.name.to_string(),
            insns,
            cells: compile_cells,
        },
    ))
}

/// Compile times on the generated program; its results must agree across engines.
fn bench_generated(columns: &[Column], n: usize) -> Result<CompileRow, String> {
    let bytecode = gen::branchy_program(n, 0x5eed);
    let mut mem = buffer::Buffer::zeroed(8);
    let source = Source {
        bytecode: &bytecode,
        input_len: mem.len(),
        clang_native: None,
    };
    let mut first: Option<(&str, u64)> = None;
    let mut cells = Vec::new();
    for column in columns {
        let engine = match &column.engine {
            Ok(e) if e.is_jit() => e,
            Ok(_) => {
                cells.push(Cell::NotJit);
                continue;
            }
            Err(why) => {
                cells.push(Cell::Missing(why.clone()));
                continue;
            }
        };
        let start = Instant::now();
        let compiled = engine.compile(&source);
        let once = start.elapsed();
        let mut compiled = match compiled {
            Ok(c) => c,
            Err(e) if engine.may_refuse() => {
                cells.push(Cell::Missing(format!(
                    "{} on generated ({n}): {e}",
                    column.name
                )));
                continue;
            }
            Err(e) => return Err(format!("{} on the generated program: {e}", column.name)),
        };
        let got = match compiled.run(mem.bytes_mut()) {
            Ok(v) => v,
            Err(e) if engine.may_refuse() => {
                cells.push(Cell::Missing(format!("{}: {e}", column.name)));
                continue;
            }
            Err(e) => return Err(format!("{} on the generated program: {e}", column.name)),
        };
        match first {
            Some((who, v)) if v != got => {
                return Err(format!(
                    "generated program: {} gives {got:#x}, {who} gives {v:#x}",
                    column.name
                ))
            }
            Some(_) => {}
            None => first = Some((column.name, got)),
        }
        let sample: Sample = measure(|| engine.compile(&source))?;
        eprintln!(
            "   {}: first compile {:.0} us, median {:.0} us",
            column.name,
            once.as_secs_f64() * 1e6,
            sample.median_ns / 1e3
        );
        cells.push(Cell::Time(sample));
    }
    Ok(CompileRow {
        name: format!("generated ({n} insns)"),
        insns: n,
        cells,
    })
}
