//! Standard output of every subcommand. Text goes out through [`print`];
//! when the reader has gone away (`bpfc disasm big.bin | head`), the write
//! fails with [`Closed`], which `main` turns into a quiet exit with status 0:
//! the command did its work, nobody wanted the rest of the output.

use std::io::{ErrorKind, Write};
use thiserror::Error;

/// Standard output was closed by its reader (a broken pipe).
#[derive(Debug, Error)]
#[error("standard output closed")]
pub struct Closed;

/// Write `text` to standard output and flush it.
pub fn print(text: impl AsRef<str>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_ref().as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| match e.kind() {
            ErrorKind::BrokenPipe => anyhow::Error::new(Closed),
            _ => anyhow::Error::new(e).context("writing to standard output"),
        })
}
