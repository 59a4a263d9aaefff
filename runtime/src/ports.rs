//! Redirect ports: the network interfaces a program can name as a redirect
//! target (`bpf_redirect_map` through a device map, `bpf_redirect`). A port
//! is either one of the host's real interfaces (its ifindex and name, as
//! `/sys/class/net` lists them in the runtime's network namespace) or a
//! virtual port the host application defines with a name, which gets an
//! ifindex of its own that no real interface has.
//!
//! Device maps accept only ifindexes of existing ports, as the kernel
//! accepts only existing devices; removing a virtual port removes it from
//! every device map, as the kernel does when a device goes away.

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::sync::{Mutex, OnceLock, RwLock, Weak};

/// First ifindex handed to virtual ports (far above real interfaces').
pub const VIRTUAL_BASE: u32 = 0x4000_0000;
/// `IFNAMSIZ - 1`: the longest interface name.
pub const NAME_MAX: usize = 15;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub ifindex: u32,
    pub name: String,
    /// Defined by the host application rather than a real interface.
    pub is_virtual: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PortError {
    #[error("port name {0:?} must be 1 to {NAME_MAX} bytes without '/' or whitespace")]
    BadName(String),
    #[error("a port named {0} exists already")]
    NameTaken(String),
    #[error("ifindex {0} is taken")]
    IndexTaken(u32),
    #[error("ifindex 0 names no port")]
    ZeroIndex,
}

/// Told when a port goes away (device maps drop their entries for it).
pub trait PortWatcher: Send + Sync {
    fn port_removed(&self, ifindex: u32);
}

fn virtuals() -> &'static RwLock<BTreeMap<u32, String>> {
    static V: OnceLock<RwLock<BTreeMap<u32, String>>> = OnceLock::new();
    V.get_or_init(|| RwLock::new(BTreeMap::new()))
}

fn watchers() -> &'static Mutex<Vec<Weak<dyn PortWatcher>>> {
    static W: OnceLock<Mutex<Vec<Weak<dyn PortWatcher>>>> = OnceLock::new();
    W.get_or_init(|| Mutex::new(Vec::new()))
}

/// Register `w` to hear of removed ports while it lives.
pub fn watch(w: Weak<dyn PortWatcher>) {
    let mut ws = watchers().lock().unwrap_or_else(|e| e.into_inner());
    ws.retain(|w| w.strong_count() > 0);
    ws.push(w);
}

/// The host interface with index `ifindex` (`if_indextoname`).
fn host_name(ifindex: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes if_indextoname may write.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// The host's real interfaces, by ifindex.
pub fn host_ports() -> Vec<Port> {
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/sys/class/net") {
        for ent in dir.flatten() {
            let name = ent.file_name().to_string_lossy().into_owned();
            let idx = std::fs::read_to_string(ent.path().join("ifindex"))
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok());
            if let Some(ifindex) = idx {
                out.push(Port {
                    ifindex,
                    name,
                    is_virtual: false,
                });
            }
        }
    }
    out.sort_by_key(|p| p.ifindex);
    out
}

/// Every port: the host's interfaces, then the virtual ports.
pub fn list() -> Vec<Port> {
    let mut out = host_ports();
    let v = virtuals().read().unwrap_or_else(|e| e.into_inner());
    out.extend(v.iter().map(|(&ifindex, name)| Port {
        ifindex,
        name: name.clone(),
        is_virtual: true,
    }));
    out
}

/// The port with index `ifindex`, virtual or real.
pub fn by_index(ifindex: u32) -> Option<Port> {
    if ifindex == 0 {
        return None;
    }
    if let Some(name) = virtuals()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&ifindex)
    {
        return Some(Port {
            ifindex,
            name: name.clone(),
            is_virtual: true,
        });
    }
    host_name(ifindex).map(|name| Port {
        ifindex,
        name,
        is_virtual: false,
    })
}

/// The port called `name`.
pub fn by_name(name: &str) -> Option<Port> {
    list().into_iter().find(|p| p.name == name)
}

/// Whether a port with index `ifindex` exists.
pub fn exists(ifindex: u32) -> bool {
    by_index(ifindex).is_some()
}

/// Define a virtual port called `name`, with index `ifindex` or the next
/// free one from [`VIRTUAL_BASE`]; returns its index.
pub fn add_virtual(name: &str, ifindex: Option<u32>) -> Result<u32, PortError> {
    if name.is_empty()
        || name.len() > NAME_MAX
        || name.contains('/')
        || name.chars().any(char::is_whitespace)
    {
        return Err(PortError::BadName(name.to_string()));
    }
    let hosts = host_ports();
    let mut v = virtuals().write().unwrap_or_else(|e| e.into_inner());
    if hosts.iter().any(|p| p.name == name) || v.values().any(|n| n == name) {
        return Err(PortError::NameTaken(name.to_string()));
    }
    let taken = |i: u32| v.contains_key(&i) || hosts.iter().any(|p| p.ifindex == i);
    let idx = match ifindex {
        Some(0) => return Err(PortError::ZeroIndex),
        Some(i) if taken(i) || host_name(i).is_some() => return Err(PortError::IndexTaken(i)),
        Some(i) => i,
        None => {
            let mut i = VIRTUAL_BASE;
            while taken(i) || host_name(i).is_some() {
                i += 1;
            }
            i
        }
    };
    v.insert(idx, name.to_string());
    Ok(idx)
}

/// Remove the virtual port `ifindex` and every device map entry naming it.
/// Returns whether there was such a port.
pub fn remove_virtual(ifindex: u32) -> bool {
    let removed = virtuals()
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&ifindex)
        .is_some();
    if removed {
        let ws: Vec<_> = watchers()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for w in ws {
            w.port_removed(ifindex);
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_virtual_ports() {
        // Every Linux host has a loopback interface.
        let lo = host_ports().into_iter().find(|p| p.name == "lo").unwrap();
        assert_eq!(by_index(lo.ifindex).unwrap().name, "lo");
        assert_eq!(
            add_virtual("lo", None),
            Err(PortError::NameTaken("lo".into()))
        );
        assert_eq!(
            add_virtual("x", Some(lo.ifindex)),
            Err(PortError::IndexTaken(lo.ifindex))
        );
        assert!(matches!(
            add_virtual("bad name", None),
            Err(PortError::BadName(_))
        ));
        let a = add_virtual("ports-test-a", None).unwrap();
        assert!(a >= VIRTUAL_BASE);
        let p = by_index(a).unwrap();
        assert!(p.is_virtual);
        assert_eq!(by_name("ports-test-a").unwrap().ifindex, a);
        assert!(list().iter().any(|p| p.ifindex == a));
        assert!(remove_virtual(a));
        assert!(!remove_virtual(a));
        assert!(!exists(a));
        assert!(!exists(0));
    }
}
