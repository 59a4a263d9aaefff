//! Loading a native object into the bench process: the object (bytes, as
//! an AOT compiler writes them) is written to a temporary directory, linked
//! into a shared object with `cc -shared`, and opened with libloading. The
//! AOT column uses this at bench time, so the AOT code it times is exactly
//! what `compile_object` produced in the same run.

use libloading::Library;
use std::path::PathBuf;
use std::process::Command;

/// A shared object built from one object file, removed when dropped.
pub struct Linked {
    lib: Library,
    dir: PathBuf,
}

impl Linked {
    /// Links `object` (a relocatable object for the host) with `cc -shared`
    /// and loads the result. `tag` names the temporary files.
    pub fn new(object: &[u8], tag: &str) -> Result<Linked, String> {
        let dir = std::env::temp_dir().join(format!("bpfc-bench-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let obj = dir.join("prog.o");
        let so = dir.join("prog.so");
        std::fs::write(&obj, object).map_err(|e| format!("{}: {e}", obj.display()))?;
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let out = Command::new(&cc)
            .arg("-shared")
            .arg("-o")
            .arg(&so)
            .arg(&obj)
            .output()
            .map_err(|e| format!("running {cc}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{cc} -shared failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        // SAFETY: the library is the object we just linked; loading it runs
        // no initialisers beyond the C runtime's, and it stays loaded while
        // any symbol taken from it is in use (the `Linked` owns it).
        let lib = unsafe { Library::new(&so) }.map_err(|e| format!("{}: {e}", so.display()))?;
        Ok(Linked { lib, dir })
    }

    /// The address of an exported symbol.
    pub fn symbol(&self, name: &str) -> Result<*const u8, String> {
        // SAFETY: the symbol is only read as an address here; the caller
        // gives it the type the AOT calling convention documents.
        let sym = unsafe { self.lib.get::<*const u8>(name.as_bytes()) }
            .map_err(|e| format!("symbol {name}: {e}"))?;
        Ok(*sym)
    }
}

impl Drop for Linked {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_calls_a_c_object() {
        let dir = std::env::temp_dir().join(format!("bpfc-bench-linktest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("f.c");
        let obj = dir.join("f.o");
        std::fs::write(
            &src,
            "unsigned long long f(unsigned long long x) { return x * 3 + 1; }\n",
        )
        .unwrap();
        let ok = Command::new("cc")
            .args(["-O2", "-fPIC", "-c", "-o"])
            .arg(&obj)
            .arg(&src)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            if std::env::var("BPFC_TEST_REQUIRE").as_deref() == Ok("all") {
                panic!("cc is required");
            }
            println!("SKIP: cc not available");
            return;
        }
        let linked = Linked::new(&std::fs::read(&obj).unwrap(), "test").unwrap();
        let addr = linked.symbol("f").unwrap();
        // SAFETY: `f` is the C function above: u64 -> u64, C ABI.
        let f: extern "C" fn(u64) -> u64 = unsafe { std::mem::transmute(addr) };
        assert_eq!(f(14), 43);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
