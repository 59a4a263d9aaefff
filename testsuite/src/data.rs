//! Parser of the conformance suite's `.data` test files (also used for
//! bpfc's own cases): sections start with a `-- name` line; `asm`, `raw`,
//! `mem`, `result` and `error` are read, any other section (`c`, `no register
//! offset` ...) is ignored, and `#` lines before the first section are comments.

use std::path::Path;
use thiserror::Error;

/// A malformed `.data` file, at a 1-based line.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("line {line}: {message}")]
pub struct DataError {
    pub line: usize,
    pub message: String,
}

/// The contents of one `.data` file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataFile {
    /// The `-- asm` section text, if present.
    pub asm: Option<String>,
    /// Line number (1-based) in the file of the first line of `asm`, to map
    /// assembler error lines back to the file: file line = `asm_line + line - 1`.
    pub asm_line: usize,
    /// The `-- raw` section as little-endian instruction bytes (one hex u64 per line).
    pub raw: Option<Vec<u8>>,
    /// The `-- mem` section bytes (hex bytes separated by whitespace); empty if absent.
    pub mem: Vec<u8>,
    /// The `-- result` value (hex, `0x` optional).
    pub result: Option<u64>,
    /// The `-- error` section: a substring the expected error message contains.
    pub error: Option<String>,
}

fn err(line: usize, message: impl Into<String>) -> DataError {
    DataError {
        line,
        message: message.into(),
    }
}

fn parse_hex_u64(line: usize, s: &str) -> Result<u64, DataError> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u64::from_str_radix(digits, 16).map_err(|e| err(line, format!("bad hex value '{s}': {e}")))
}

/// Strip a trailing `# comment` and surrounding whitespace.
fn content(text: &str) -> &str {
    text.split('#').next().unwrap_or("").trim()
}

/// Parse the text of a `.data` file.
pub fn parse_data(text: &str) -> Result<DataFile, DataError> {
    let mut out = DataFile::default();
    let mut section: Option<String> = None;
    let mut asm = String::new();
    let mut raw: Vec<u8> = Vec::new();
    let mut error = String::new();
    let mut seen = Vec::<String>::new();
    for (i, text) in text.lines().enumerate() {
        let line = i + 1;
        if let Some(name) = text.strip_prefix("--") {
            let name = name.trim().to_string();
            if matches!(name.as_str(), "asm" | "raw" | "mem" | "result" | "error") {
                if seen.contains(&name) {
                    return Err(err(line, format!("duplicate section '-- {name}'")));
                }
                seen.push(name.clone());
            }
            if name == "asm" {
                out.asm_line = line + 1;
            }
            section = Some(name);
            continue;
        }
        match section.as_deref() {
            None => {
                let t = text.trim();
                if !t.is_empty() && !t.starts_with('#') {
                    return Err(err(line, "text before the first '-- section' line"));
                }
            }
            Some("asm") => {
                asm.push_str(text);
                asm.push('\n');
            }
            Some("raw") => {
                let t = content(text);
                if !t.is_empty() {
                    raw.extend_from_slice(&parse_hex_u64(line, t)?.to_le_bytes());
                }
            }
            Some("mem") => {
                for byte in content(text).split_whitespace() {
                    let b = u8::from_str_radix(byte, 16)
                        .map_err(|e| err(line, format!("bad memory byte '{byte}': {e}")))?;
                    out.mem.push(b);
                }
            }
            Some("result") => {
                let t = content(text);
                if t.is_empty() {
                    continue;
                }
                if out.result.is_some() {
                    return Err(err(line, "more than one result value"));
                }
                out.result = Some(parse_hex_u64(line, t)?);
            }
            Some("error") => {
                let t = text.trim();
                if !t.is_empty() {
                    if !error.is_empty() {
                        error.push('\n');
                    }
                    error.push_str(t);
                }
            }
            Some(_) => {}
        }
    }
    if seen.iter().any(|s| s == "asm") {
        out.asm = Some(asm);
    }
    if seen.iter().any(|s| s == "raw") {
        out.raw = Some(raw);
    }
    if seen.iter().any(|s| s == "error") {
        out.error = Some(error);
    }
    Ok(out)
}

/// Read and parse a `.data` file; errors name the file.
pub fn read_data(path: &Path) -> Result<DataFile, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_data(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_sections() {
        let text = "# comment\n-- asm\nmov %r0, 1\nexit\n-- raw\n0x00000001000000b7\n\
                    0x0000000000000095\n-- mem\n00 01 # note\nff\n-- c\nint x;\n\
                    -- result\n0x2a\n-- error\nunknown mnemonic\n";
        let d = parse_data(text).unwrap();
        assert_eq!(d.asm.as_deref(), Some("mov %r0, 1\nexit\n"));
        assert_eq!(d.asm_line, 3);
        let raw = d.raw.unwrap();
        assert_eq!(raw.len(), 16);
        assert_eq!(raw[0], 0xb7);
        assert_eq!(raw[4], 1);
        assert_eq!(d.mem, vec![0, 1, 0xff]);
        assert_eq!(d.result, Some(42));
        assert_eq!(d.error.as_deref(), Some("unknown mnemonic"));
    }

    #[test]
    fn missing_sections_and_errors() {
        let d = parse_data("-- asm\nexit\n").unwrap();
        assert_eq!((d.raw, d.result, d.error), (None, None, None));
        assert!(d.mem.is_empty());
        assert_eq!(parse_data("-- mem\n0g\n").unwrap_err().line, 2);
        assert_eq!(parse_data("-- result\nzz\n").unwrap_err().line, 2);
        assert_eq!(parse_data("-- result\n1\n2\n").unwrap_err().line, 3);
        assert_eq!(parse_data("-- asm\n-- asm\n").unwrap_err().line, 2);
        assert_eq!(parse_data("junk\n").unwrap_err().line, 1);
    }
}
