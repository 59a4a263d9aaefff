//! The functions of each executable section: its `STT_FUNC` symbols, or,
//! in a section that has none (clang before 8 did not type its symbols),
//! its untyped symbols other than assembler labels (`LBB*`, `.L*`), each
//! reaching to the next one or the end of the section.

use super::elf::ElfFile;
use object::elf as E;
use std::collections::BTreeMap;

/// A function of an executable section.
#[derive(Clone, Debug)]
pub(crate) struct Func {
    pub name: String,
    pub section: usize,
    pub start: u64,
    pub size: u64,
    pub global: bool,
}

/// Functions by section index, sorted by start (one per start: a global
/// name wins over a local one).
pub(crate) fn discover(elf: &ElfFile) -> BTreeMap<usize, Vec<Func>> {
    let mut funcs: BTreeMap<usize, Vec<Func>> = BTreeMap::new();
    for (idx, sec) in elf.sections.iter().enumerate() {
        if !sec.is_exec() {
            continue;
        }
        let in_sec = || elf.symbols.iter().filter(move |s| s.section == Some(idx));
        let typed: Vec<Func> = in_sec()
            .filter(|s| s.is_func())
            .map(|s| Func {
                name: s.name.clone(),
                section: idx,
                start: s.value,
                size: s.size,
                global: s.is_global(),
            })
            .collect();
        let mut v = if typed.is_empty() {
            untyped(elf, idx)
        } else {
            typed
        };
        v.sort_by(|a, b| (a.start, !a.global, &a.name).cmp(&(b.start, !b.global, &b.name)));
        v.dedup_by_key(|f| f.start);
        if !v.is_empty() {
            funcs.insert(idx, v);
        }
    }
    funcs
}

/// Functions from untyped symbols, sized by the next symbol's start.
fn untyped(elf: &ElfFile, idx: usize) -> Vec<Func> {
    let size = elf.sections[idx].size;
    let mut v: Vec<Func> = elf
        .symbols
        .iter()
        .filter(|s| {
            s.section == Some(idx)
                && s.kind == E::STT_NOTYPE
                && !s.name.is_empty()
                && !(s.bind == E::STB_LOCAL
                    && (s.name.starts_with("LBB") || s.name.starts_with(".L")))
                && s.value < size
        })
        .map(|s| Func {
            name: s.name.clone(),
            section: idx,
            start: s.value,
            size: 0,
            global: s.is_global(),
        })
        .collect();
    v.sort_by(|a, b| (a.start, !a.global, &a.name).cmp(&(b.start, !b.global, &b.name)));
    v.dedup_by_key(|f| f.start);
    let ends: Vec<u64> = v.iter().skip(1).map(|f| f.start).chain([size]).collect();
    for (f, end) in v.iter_mut().zip(ends) {
        f.size = end - f.start;
    }
    v
}
