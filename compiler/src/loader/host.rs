//! `.kconfig` values of the running kernel, found where libbpf finds them:
//! the kernel configuration in `/proc/config.gz` or
//! `/boot/config-$(uname -r)`, `LINUX_KERNEL_VERSION` from the release
//! (Ubuntu's `/proc/version_signature` and Debian's version string first,
//! as libbpf reads them), `LINUX_HAS_SYSCALL_WRAPPER` from whether
//! `/proc/kallsyms` has the architecture's `__<arch>_sys_bpf` (the symbol
//! libbpf probes for), and `LINUX_HAS_BPF_COOKIE` from the version: the
//! `bpf_get_attach_cookie` helper libbpf probes for arrived in 5.15.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Why the running kernel's configuration could not be read.
#[derive(Debug, Error)]
pub enum HostError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} line {line}: {reason}")]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("the kernel release {0:?} is not MAJOR.MINOR.PATCH")]
    Release(String),
}

fn read(path: &Path) -> Result<String, HostError> {
    std::fs::read_to_string(path).map_err(|source| HostError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// `KERNEL_VERSION(a, b, c)` as bpf_helpers.h computes it (patch capped at 255).
pub fn kernel_version(major: u64, minor: u64, patch: u64) -> u64 {
    (major << 16) + (minor << 8) + patch.min(255)
}

/// The first three dot-separated numbers of `s` (`6.18.44-fc` → 6, 18, 44).
fn three_numbers(s: &str) -> Option<(u64, u64, u64)> {
    let mut parts = s.splitn(3, '.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let rest = parts.next()?;
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    Some((major, minor, rest[..end].parse().ok()?))
}

/// The running kernel's `LINUX_KERNEL_VERSION`, as libbpf computes it.
pub fn host_kernel_version() -> Result<u64, HostError> {
    if let Ok(sig) = std::fs::read_to_string("/proc/version_signature") {
        if let Some((a, b, c)) = sig.split_whitespace().nth(2).and_then(three_numbers) {
            return Ok(kernel_version(a, b, c));
        }
    }
    if let Ok(v) = std::fs::read_to_string("/proc/sys/kernel/version") {
        if let Some((a, b, c)) = v.split("Debian ").nth(1).and_then(three_numbers) {
            return Ok(kernel_version(a, b, c));
        }
    }
    let release = read(Path::new("/proc/sys/kernel/osrelease"))?;
    let release = release.trim();
    three_numbers(release)
        .map(|(a, b, c)| kernel_version(a, b, c))
        .ok_or_else(|| HostError::Release(release.to_string()))
}

/// Parse kernel configuration text: `CONFIG_X=y` (1), `=m` (2), `=n` (0)
/// or a number (decimal, `0x` hex, or octal with a leading 0, as libbpf's
/// `strtoull` reads it); string values and `# CONFIG_X is not set` lines
/// give nothing, as in libbpf for a numeric extern.
pub fn parse_config(text: &str, path: &Path) -> Result<BTreeMap<String, u64>, HostError> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if !line.starts_with("CONFIG_") {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            return Err(HostError::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                reason: format!("{line:?} is not NAME=VALUE"),
            });
        };
        let v = match value {
            "y" => Some(1),
            "m" => Some(2),
            "n" => Some(0),
            v if v.starts_with('"') => None,
            v => {
                let (digits, radix) = match v.strip_prefix("0x").or(v.strip_prefix("0X")) {
                    Some(h) => (h, 16),
                    None if v.len() > 1 && v.starts_with('0') => (&v[1..], 8),
                    None => (v, 10),
                };
                let parsed = match digits.strip_prefix('-') {
                    Some(d) => i64::from_str_radix(d, radix).map(|n| n.wrapping_neg() as u64),
                    None => u64::from_str_radix(digits, radix),
                };
                Some(parsed.map_err(|e| HostError::Parse {
                    path: path.to_path_buf(),
                    line: i + 1,
                    reason: format!("value {v:?}: {e}"),
                })?)
            }
        };
        if let Some(v) = v {
            out.insert(name.to_string(), v);
        }
    }
    Ok(out)
}

fn host_config() -> Result<BTreeMap<String, u64>, HostError> {
    let gz = Path::new("/proc/config.gz");
    if gz.exists() {
        let bytes = std::fs::read(gz).map_err(|source| HostError::Io {
            path: gz.to_path_buf(),
            source,
        })?;
        let mut text = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .map_err(|source| HostError::Io {
                path: gz.to_path_buf(),
                source,
            })?;
        return parse_config(&text, gz);
    }
    let release = read(Path::new("/proc/sys/kernel/osrelease"))?;
    let boot = PathBuf::from(format!("/boot/config-{}", release.trim()));
    if boot.exists() {
        return parse_config(&read(&boot)?, &boot);
    }
    // No configuration to read: libbpf fails the `CONFIG_*` externs then,
    // and so do strong ones here; weak ones read 0.
    Ok(BTreeMap::new())
}

/// The prefix of the architecture's syscall wrappers, as libbpf names it.
fn syscall_prefix() -> Option<&'static str> {
    Some(match std::env::consts::ARCH {
        "x86_64" => "x64",
        "x86" => "ia32",
        "s390x" => "s390x",
        "arm" => "arm",
        "aarch64" => "arm64",
        "mips" | "mips64" => "mips",
        "riscv64" | "riscv32" => "riscv",
        "powerpc" => "powerpc",
        "powerpc64" => "powerpc64",
        _ => return None,
    })
}

fn has_syscall_wrapper() -> Result<bool, HostError> {
    let Some(pfx) = syscall_prefix() else {
        return Ok(false);
    };
    let want = format!("__{pfx}_sys_bpf");
    let path = Path::new("/proc/kallsyms");
    let text = read(path)?;
    Ok(text
        .lines()
        .any(|l| l.split_whitespace().nth(2) == Some(want.as_str())))
}

/// The running kernel's `.kconfig` values: its configuration plus
/// `LINUX_KERNEL_VERSION`, `LINUX_HAS_BPF_COOKIE` and
/// `LINUX_HAS_SYSCALL_WRAPPER` (see the module documentation).
pub fn host_kconfig() -> Result<BTreeMap<String, u64>, HostError> {
    let mut out = host_config()?;
    let version = host_kernel_version()?;
    out.insert("LINUX_KERNEL_VERSION".into(), version);
    out.insert(
        "LINUX_HAS_BPF_COOKIE".into(),
        (version >= kernel_version(5, 15, 0)) as u64,
    );
    out.insert(
        "LINUX_HAS_SYSCALL_WRAPPER".into(),
        has_syscall_wrapper()? as u64,
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lines_as_libbpf_reads_them() {
        let text = "# comment\nCONFIG_A=y\nCONFIG_B=m\n# CONFIG_C is not set\nCONFIG_D=250\nCONFIG_E=0x10\nCONFIG_F=\"str\"\nCONFIG_G=010\nCONFIG_H=-1\n";
        let c = parse_config(text, Path::new("cfg")).unwrap();
        assert_eq!(c["CONFIG_A"], 1);
        assert_eq!(c["CONFIG_B"], 2);
        assert!(!c.contains_key("CONFIG_C"));
        assert_eq!(c["CONFIG_D"], 250);
        assert_eq!(c["CONFIG_E"], 16);
        assert!(!c.contains_key("CONFIG_F"));
        assert_eq!(c["CONFIG_G"], 8);
        assert_eq!(c["CONFIG_H"], u64::MAX);
        let e = parse_config("CONFIG_X=zz\n", Path::new("cfg")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cfg line 1: value \"zz\": invalid digit found in string"
        );
    }

    #[test]
    fn versions() {
        assert_eq!(three_numbers("6.18.44-fc-v1045"), Some((6, 18, 44)));
        assert_eq!(three_numbers("5.15.0"), Some((5, 15, 0)));
        assert_eq!(three_numbers("6.8"), None);
        assert_eq!(kernel_version(4, 19, 260), 0x0413ff);
    }
}
