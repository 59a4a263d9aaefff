//! Many AOT objects in one executable, run in one process
//! (`harness/aot_batch.c`): for runners that are slow to start (wine).

use super::{abi_include_dir, fresh_dir, missing, AotRunError, AotTarget, TempDir};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// One program's run in a batch: r0, or how it ended badly.
pub type BatchResult = Result<u64, AotRunError>;

/// Link many objects (`(object, entry symbol)`) into one executable with
/// the batch driver `harness/aot_batch.c` and run `runs` (`(program index,
/// input memory)`) in one process: for runners that are slow to start
/// (wine). Each run's result is in `runs` order.
pub fn link_and_run_batch(
    target: &AotTarget,
    objects: &[(Vec<u8>, String)],
    runs: &[(usize, Vec<u8>)],
) -> Result<Vec<BatchResult>, AotRunError> {
    let dir = TempDir(fresh_dir("batch")?);
    let write = |name: &str, bytes: &[u8]| -> Result<PathBuf, AotRunError> {
        let p = dir.0.join(name);
        std::fs::write(&p, bytes).map_err(|source| AotRunError::Io {
            context: format!("writing {}", p.display()),
            source,
        })?;
        Ok(p)
    };
    let mut table = String::from("#include \"bpfc_abi.h\"\n");
    for (_, sym) in objects {
        table.push_str(&format!(
            "extern uint64_t {sym}(uint64_t, uint64_t, void *, struct bpfc_fault *);\n"
        ));
    }
    table.push_str("const bpfc_entry_fn bpfc_batch[] = {\n");
    for (_, sym) in objects {
        table.push_str(&format!("    {sym},\n"));
    }
    table.push_str(&format!(
        "}};\nconst unsigned bpfc_batch_len = {};\n",
        objects.len()
    ));
    let table = write("table.c", table.as_bytes())?;
    let exe = dir.0.join(if target.is_windows() {
        "batch.exe"
    } else {
        "batch"
    });
    let mut cmd = Command::new(target.cc);
    cmd.args(["-O1", "-std=c99", "-Wall", "-static"])
        .arg(format!("-I{}", abi_include_dir().display()))
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("harness/aot_batch.c"))
        .arg(&table);
    for (i, (bytes, _)) in objects.iter().enumerate() {
        cmd.arg(write(&format!("p{i}.o"), bytes)?);
    }
    cmd.arg("-o").arg(&exe);
    let out = cmd.output().map_err(|e| missing(target.cc, e))?;
    if !out.status.success() {
        return Err(AotRunError::Link {
            tool: target.cc.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let mut input = Vec::new();
    for (i, mem) in runs {
        input.extend_from_slice(&(*i as u32).to_le_bytes());
        input.extend_from_slice(&(mem.len() as u32).to_le_bytes());
        input.extend_from_slice(mem);
    }
    let mut cmd = match target.runner {
        Some(runner) => {
            let mut c = Command::new(runner);
            if let Some(root) = target.sysroot {
                c.arg("-L").arg(root);
            }
            if target.is_windows() {
                c.env("WINEPREFIX", std::env::temp_dir().join("bpfc-wine"))
                    .env("WINEDEBUG", "-all");
            }
            c.arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    let program = target.runner.unwrap_or("the batch driver").to_string();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| missing(&program, e))?;
    // Feed stdin from a thread: the driver writes results while reading.
    let mut stdin = child.stdin.take().expect("piped");
    let feeder = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().map_err(|source| AotRunError::Io {
        context: format!("waiting for {program}"),
        source,
    })?;
    let _ = feeder.join();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(AotRunError::Run {
            program,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let mut results: Vec<BatchResult> = (0..runs.len())
        .map(|_| {
            Err(AotRunError::BadOutput {
                stdout: "no line for this run".into(),
            })
        })
        .collect();
    for line in stdout.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let Some(rec) = w.first().and_then(|r| r.parse::<usize>().ok()) else {
            continue;
        };
        let Some(slot) = results.get_mut(rec) else {
            continue;
        };
        *slot = match w[1..] {
            [hex] => hex
                .strip_prefix("0x")
                .and_then(|h| u64::from_str_radix(h, 16).ok())
                .ok_or(AotRunError::BadOutput {
                    stdout: line.to_string(),
                }),
            ["fault", code, pc, detail] => Err(AotRunError::Fault {
                code: code.parse().unwrap_or(0),
                pc: pc.parse().unwrap_or(0),
                detail: detail
                    .strip_prefix("0x")
                    .and_then(|h| u64::from_str_radix(h, 16).ok())
                    .unwrap_or(0),
            }),
            _ => Err(AotRunError::BadOutput {
                stdout: line.to_string(),
            }),
        };
    }
    Ok(results)
}
