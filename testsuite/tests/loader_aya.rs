//! Map definitions of every fixture compared with aya-obj 0.3.0's parse of the
//! same object, for the objects aya-obj can parse.
#![cfg(target_os = "linux")]

use bpfc_compiler::loader::{MapOrigin, Object};
use bpfc_testsuite::elf_fixtures;

/// `BPF_F_MMAPABLE`: bpfc sets it on global data maps as libbpf does; aya does not.
const F_MMAPABLE: u32 = 1 << 10;

#[test]
fn map_definitions_match_aya_obj() {
    let mut compared = 0;
    let mut parsed = Vec::new();
    for path in elf_fixtures() {
        let bytes = std::fs::read(&path).unwrap();
        let ours = Object::parse(&bytes).unwrap();
        let aya = match aya_obj::Object::parse(&bytes) {
            Ok(o) => o,
            Err(e) => {
                println!("NOTE: aya-obj 0.3.0 cannot parse {}: {e:?}", path.display());
                continue;
            }
        };
        parsed.push(path.file_name().unwrap().to_string_lossy().into_owned());
        let mut names: Vec<&String> = aya.maps.keys().collect();
        names.sort();
        for name in names {
            let a = &aya.maps[name];
            let what = format!("{} map {name}", path.display());
            let i = ours
                .map_index(name)
                .unwrap_or_else(|| panic!("{what}: missing from bpfc's maps"));
            let m = &ours.maps[i];
            let flags = match m.origin {
                MapOrigin::Global(_) | MapOrigin::Kconfig => m.map_flags & !F_MMAPABLE,
                _ => m.map_flags,
            };
            assert_eq!(
                (m.map_type, m.key_size, m.value_size, m.max_entries, flags),
                (
                    a.map_type(),
                    a.key_size(),
                    a.value_size(),
                    a.max_entries(),
                    a.map_flags()
                ),
                "{what}"
            );
            assert_eq!(m.map_extra, a.map_extra(), "{what}");
            assert_eq!(m.pinning, a.pinning() as u32, "{what}");
            if let MapOrigin::Global(_) = m.origin {
                // bpfc keeps no bytes for .bss: its value is value_size zeroes.
                let mut image = m.data.clone();
                image.resize(m.value_size as usize, 0);
                assert_eq!(image, a.data(), "{what}");
            }
            match (&m.inner, a.inner()) {
                (Some(mi), Some(ai)) => assert_eq!(
                    (mi.map_type, mi.key_size, mi.value_size, mi.max_entries),
                    (
                        ai.map_type(),
                        ai.key_size(),
                        ai.value_size(),
                        ai.max_entries()
                    ),
                    "{what} inner"
                ),
                (None, None) => {}
                (x, y) => panic!("{what}: inner {x:?} vs {:?}", y.is_some()),
            }
            compared += 1;
        }
    }
    println!("compared {compared} maps with aya-obj");
    // The fixtures written so that aya-obj 0.3.0 reads them must be compared.
    for must in ["globals.o", "maps_common.o"] {
        assert!(
            parsed.iter().any(|p| p == must),
            "aya-obj did not parse {must}"
        );
    }
    assert!(compared >= 10, "only {compared} maps compared");
}
