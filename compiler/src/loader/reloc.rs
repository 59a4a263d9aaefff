//! Program linking: decode each program's entry function, append every
//! function it calls (local calls and `BPF_PSEUDO_FUNC` callbacks) once, fix
//! call offsets for the new layout, turn map and global-data `lddw`
//! relocations into map-index references, and attach line/func info and
//! CO-RE results per placed function. A program that cannot be linked keeps
//! its error ([`Program::error`]); the others are unaffected.
//!
//! Objects from GCC: binutils 2.40's assembler stores the symbol's value
//! plus the addend in the instruction for a relocation against a named
//! symbol (REL relocations should store the addend alone: `call` of a
//! function at byte 0x28 holds 0x27, not -1, and `lddw` of a variable at
//! 0x10 holds 0x10, not 0). For those the symbol's value is subtracted to
//! get the addend back.

use super::btf::Btf;
use super::btf_ext::{BtfExt, ExecSection};
use super::core::{self, Outcomes};
use super::elf::{ElfFile, ElfSection};
use super::error::LoadError;
use super::externs::{Extern, Externs};
use super::funcs::Func;
use super::maps::{Layout, SectionTarget};
use super::{sections, ExternKind, ExternRef, FuncInfo, Function, LineInfo, PoisonedInsn, Program};
use crate::isa::{decode_one, CallTarget, Insn, LddwSrc, INSN_SIZE};
use object::elf as E;
use std::collections::BTreeMap;

const R_BPF_NONE: u32 = 0;
const R_BPF_64_64: u32 = 1;
const R_BPF_64_32: u32 = 10;

/// What every program's linking reads.
pub(crate) struct Context<'a> {
    pub elf: &'a ElfFile,
    pub layout: &'a Layout,
    pub btf: Option<&'a Btf>,
    pub ext: Option<&'a BtfExt>,
    pub core: &'a Outcomes,
    pub externs: &'a Externs,
    /// GCC wrote the object (see the module documentation).
    pub gcc: bool,
}

pub(crate) fn link_all(cx: &Context<'_>) -> Result<Vec<Program>, LoadError> {
    let elf = cx.elf;
    let funcs = super::funcs::discover(elf);
    if let Some(ext) = cx.ext {
        let sections: Vec<ExecSection<'_>> = elf
            .sections
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_exec())
            .map(|(i, s)| ExecSection {
                name: &s.name,
                size: s.size,
                func_starts: funcs
                    .get(&i)
                    .map(|v| v.iter().map(|f| f.start).collect())
                    .unwrap_or_default(),
            })
            .collect();
        ext.check(&sections)?;
    }
    let mut programs = Vec::new();
    for (idx, sec) in elf.sections.iter().enumerate() {
        if !sec.is_exec() || sec.name == ".text" {
            continue;
        }
        for f in funcs.get(&idx).into_iter().flatten().filter(|f| f.global) {
            let linker = Linker { cx, funcs: &funcs };
            programs.push(linker.link(f).unwrap_or_else(|e| Program {
                name: f.name.clone(),
                section: sec.name.clone(),
                kind: sections::classify(&sec.name),
                insns: Vec::new(),
                functions: Vec::new(),
                line_info: Vec::new(),
                func_info: Vec::new(),
                core_relos: 0,
                poisoned: Vec::new(),
                externs: Vec::new(),
                error: Some(e),
            }));
        }
    }
    Ok(programs)
}

struct Linker<'a> {
    cx: &'a Context<'a>,
    funcs: &'a BTreeMap<usize, Vec<Func>>,
}

struct Placed {
    func: Func,
    base: usize,
}

impl Linker<'_> {
    fn link(&self, entry: &Func) -> Result<Program, LoadError> {
        let elf = self.cx.elf;
        let sec = &elf.sections[entry.section];
        let mut placed: Vec<Placed> = Vec::new();
        let mut next_base = 0usize;
        let mut place = |f: &Func, placed: &mut Vec<Placed>| -> Result<usize, LoadError> {
            if let Some(p) = placed
                .iter()
                .find(|p| p.func.section == f.section && p.func.start == f.start)
            {
                return Ok(p.base);
            }
            let base = next_base;
            next_base = next_base.saturating_add(slots(elf, f)?);
            placed.push(Placed {
                func: f.clone(),
                base,
            });
            Ok(base)
        };
        place(entry, &mut placed)?;
        let mut insns: Vec<Insn> = Vec::new();
        let mut externs: Vec<ExternRef> = Vec::new();
        let mut i = 0;
        while let Some(p) = placed.get(i) {
            let (func, base) = (p.func.clone(), p.base);
            let s = &elf.sections[func.section];
            let mut code = decode_func(s, &func, elf.endian)?;
            // Relocated instructions.
            let end = func.start + func.size;
            let mut relocated = vec![false; code.len()];
            for r in s
                .relocs
                .iter()
                .filter(|r| r.offset >= func.start && r.offset < end)
            {
                let rel = r.offset - func.start;
                let slot = (rel / INSN_SIZE as u64) as usize;
                let bad_target = |found: String, expected| LoadError::BadRelocationTarget {
                    section: s.name.clone(),
                    offset: r.offset,
                    symbol: elf.symbols[r.sym].name.clone(),
                    found,
                    expected,
                };
                if r.r_type == R_BPF_NONE {
                    continue;
                }
                if rel % INSN_SIZE as u64 != 0 {
                    return Err(bad_target(
                        "misaligned instruction offset".into(),
                        "an instruction",
                    ));
                }
                let sym = &elf.symbols[r.sym];
                let Some(insn) = code.get_mut(slot) else {
                    return Err(LoadError::RelocationOutOfRange {
                        section: s.name.clone(),
                        offset: r.offset,
                        size: s.size,
                    });
                };
                relocated[slot] = true;
                let pc = base + slot;
                // An extern: what libbpf makes of it (see `externs`).
                let ext = sym
                    .section
                    .is_none()
                    .then(|| self.cx.externs.get(&sym.name))
                    .flatten();
                let unusable = |why: &str| LoadError::UnresolvedExtern {
                    name: sym.name.clone(),
                    section: s.name.clone(),
                    offset: r.offset,
                    reason: why.to_string(),
                };
                let mut record = |kind| {
                    externs.push(ExternRef {
                        name: sym.name.clone(),
                        kind,
                        pc,
                        section: s.name.clone(),
                        offset: r.offset,
                    })
                };
                match (r.r_type, *insn, ext) {
                    (_, _, Some(Extern::Unusable(why))) => return Err(unusable(why)),
                    (R_BPF_64_32, Insn::Call(CallTarget::Local(_)), Some(Extern::Kfunc)) => {
                        // A kfunc: its BTF id comes from the kernel, which
                        // bpfc does not have. Only running it is an error.
                        *insn = Insn::Call(CallTarget::Kfunc { btf_id: 0, off: 0 });
                        record(ExternKind::Kfunc);
                        continue;
                    }
                    (R_BPF_64_32, _, Some(_)) => {
                        return Err(unusable("a call to an extern that is not a kfunc"))
                    }
                    (R_BPF_64_64, Insn::Lddw { dst, .. }, Some(Extern::Ksym | Extern::Kfunc)) => {
                        // A `__ksym` variable (or a kfunc's address, as
                        // `bpf_ksym_exists` takes it): the kernel's address.
                        *insn = Insn::Lddw {
                            dst,
                            src: LddwSrc::BtfId,
                            imm: 0,
                        };
                        record(ExternKind::Ksym);
                        continue;
                    }
                    (R_BPF_64_64, Insn::Lddw { dst, .. }, Some(Extern::Kconfig { .. })) => {
                        let (m, off) = self
                            .cx
                            .layout
                            .kconfig
                            .get(&sym.name)
                            .cloned()
                            .unwrap_or_else(|| Err("not in the .kconfig map".into()))
                            .map_err(|why| unusable(&why))?;
                        *insn = Insn::Lddw {
                            dst,
                            src: LddwSrc::MapIdxValue,
                            imm: (off << 32) | m as u64,
                        };
                        continue;
                    }
                    _ => {}
                }
                // The addend: GCC objects hold the symbol's value plus it.
                let named = sym.kind != E::STT_SECTION && sym.section.is_some();
                let addend = |held: i64| {
                    if self.cx.gcc && named {
                        held.wrapping_sub(sym.value as i64)
                    } else {
                        held
                    }
                };
                match (r.r_type, *insn) {
                    (R_BPF_64_32, Insn::Call(CallTarget::Local(imm))) => {
                        let tsec = self.exec_section(sym, &s.name, r.offset)?;
                        let tslot = (sym.value / INSN_SIZE as u64) as i64 + addend(imm as i64) + 1;
                        let new = self.target_pc(
                            tsec,
                            tslot,
                            &s.name,
                            r.offset,
                            &mut place,
                            &mut placed,
                        )?;
                        *insn = Insn::Call(CallTarget::Local(rel_imm(
                            new,
                            base + slot,
                            &s.name,
                            r.offset,
                        )?));
                    }
                    (R_BPF_64_32, other) => {
                        return Err(bad_target(
                            format!("{other:?}"),
                            "a local call (call with src 1)",
                        ))
                    }
                    (R_BPF_64_64, Insn::Lddw { dst, src, imm }) => {
                        let (lo, _) = Insn::lddw_halves(imm);
                        let lo = addend(lo as i64);
                        if src == LddwSrc::Func
                            || sym.section.is_some_and(|i| elf.sections[i].is_exec())
                        {
                            let tsec = self.exec_section(sym, &s.name, r.offset)?;
                            let byte = (sym.value as i64).wrapping_add(lo);
                            let new = self.target_pc(
                                tsec,
                                byte.div_euclid(8),
                                &s.name,
                                r.offset,
                                &mut place,
                                &mut placed,
                            )?;
                            let rel = rel_imm(new, base + slot, &s.name, r.offset)?;
                            *insn = Insn::Lddw {
                                dst,
                                src: LddwSrc::Func,
                                imm: rel as u32 as u64,
                            };
                        } else if let Some(sidx) = sym.section {
                            match self.cx.layout.sections.get(&sidx) {
                                Some(SectionTarget::Maps(by_off)) => {
                                    // The map at the symbol plus the addend:
                                    // a static map is referred to through the
                                    // section symbol and its offset.
                                    let at = (sym.value as i64).wrapping_add(lo) as u64;
                                    let Some(&m) = by_off.get(&at) else {
                                        return Err(bad_target(
                                            format!(
                                                "offset {at:#x}, not the start of a map definition"
                                            ),
                                            "a map",
                                        ));
                                    };
                                    *insn = Insn::Lddw {
                                        dst,
                                        src: LddwSrc::MapIdx,
                                        imm: m as u64,
                                    };
                                }
                                Some(SectionTarget::Data(m)) => {
                                    let off = (sym.value as i64).wrapping_add(lo);
                                    let off = u32::try_from(off).map_err(|_| {
                                        bad_target(
                                            format!("offset {off}"),
                                            "an offset inside the data section",
                                        )
                                    })?;
                                    *insn = Insn::Lddw {
                                        dst,
                                        src: LddwSrc::MapIdxValue,
                                        imm: ((off as u64) << 32) | *m as u64,
                                    };
                                }
                                None => {
                                    return Err(bad_target(
                                        format!("symbol in section {}", elf.sections[sidx].name),
                                        "a map, global data or a function",
                                    ))
                                }
                            }
                        } else {
                            return Err(LoadError::MissingSymbol {
                                section: s.name.clone(),
                                offset: r.offset,
                                symbol: sym.name.clone(),
                            });
                        }
                    }
                    (R_BPF_64_64, other) => return Err(bad_target(format!("{other:?}"), "lddw")),
                    (t, _) => {
                        return Err(LoadError::BadRelocationType {
                            section: s.name.clone(),
                            offset: r.offset,
                            r_type: t,
                        })
                    }
                }
            }
            // Calls already resolved by the compiler within one section.
            for (slot, insn) in code.iter_mut().enumerate() {
                if relocated[slot] {
                    continue;
                }
                let offset = func.start + (slot * INSN_SIZE) as u64;
                let in_sec = (func.start / INSN_SIZE as u64) as i64 + slot as i64;
                match *insn {
                    Insn::Call(CallTarget::Local(imm)) => {
                        let new = self.target_pc(
                            func.section,
                            in_sec + imm as i64 + 1,
                            &s.name,
                            offset,
                            &mut place,
                            &mut placed,
                        )?;
                        *insn = Insn::Call(CallTarget::Local(rel_imm(
                            new,
                            base + slot,
                            &s.name,
                            offset,
                        )?));
                    }
                    Insn::Lddw {
                        dst,
                        src: LddwSrc::Func,
                        imm,
                    } => {
                        let (lo, _) = Insn::lddw_halves(imm);
                        let new = self.target_pc(
                            func.section,
                            in_sec + lo as i64 + 1,
                            &s.name,
                            offset,
                            &mut place,
                            &mut placed,
                        )?;
                        let rel = rel_imm(new, base + slot, &s.name, offset)?;
                        *insn = Insn::Lddw {
                            dst,
                            src: LddwSrc::Func,
                            imm: rel as u32 as u64,
                        };
                    }
                    _ => {}
                }
            }
            insns.extend(code);
            i += 1;
        }
        let mut program = Program {
            name: entry.name.clone(),
            section: sec.name.clone(),
            kind: sections::classify(&sec.name),
            insns,
            functions: placed
                .iter()
                .map(|p| Function {
                    name: p.func.name.clone(),
                    section: elf.sections[p.func.section].name.clone(),
                    start: p.base,
                    len: (p.func.size / INSN_SIZE as u64) as usize,
                    section_offset: p.func.start,
                })
                .collect(),
            line_info: Vec::new(),
            func_info: Vec::new(),
            core_relos: 0,
            poisoned: Vec::new(),
            externs,
            error: None,
        };
        self.attach_ext(&mut program)?;
        Ok(program)
    }

    fn exec_section(
        &self,
        sym: &super::elf::ElfSymbol,
        section: &str,
        offset: u64,
    ) -> Result<usize, LoadError> {
        match sym.section {
            Some(i) if self.cx.elf.sections[i].is_exec() => Ok(i),
            Some(i) => Err(LoadError::BadRelocationTarget {
                section: section.to_string(),
                offset,
                symbol: sym.name.clone(),
                found: format!(
                    "symbol in non-executable section {}",
                    self.cx.elf.sections[i].name
                ),
                expected: "a function",
            }),
            None => Err(LoadError::MissingSymbol {
                section: section.to_string(),
                offset,
                symbol: sym.name.clone(),
            }),
        }
    }

    /// The program pc of section slot `tslot`, placing its function if needed.
    fn target_pc(
        &self,
        tsec: usize,
        tslot: i64,
        section: &str,
        offset: u64,
        place: &mut impl FnMut(&Func, &mut Vec<Placed>) -> Result<usize, LoadError>,
        placed: &mut Vec<Placed>,
    ) -> Result<usize, LoadError> {
        let byte = tslot.checked_mul(INSN_SIZE as i64).filter(|&b| b >= 0);
        let f = byte.and_then(|b| {
            self.funcs
                .get(&tsec)?
                .iter()
                .find(|f| (b as u64) >= f.start && (b as u64) < f.start.saturating_add(f.size))
        });
        let (Some(byte), Some(f)) = (byte, f) else {
            return Err(LoadError::BadCallTarget {
                section: section.to_string(),
                offset,
                target: tslot.wrapping_mul(INSN_SIZE as i64) as u64,
            });
        };
        let base = place(f, placed)?;
        Ok(base + ((byte as u64 - f.start) / INSN_SIZE as u64) as usize)
    }

    fn attach_ext(&self, program: &mut Program) -> Result<(), LoadError> {
        let Some(ext) = self.cx.ext else {
            return Ok(());
        };
        let mut core_count = 0;
        for f in program.functions.clone() {
            let start = f.section_offset;
            let end = start + (f.len * INSN_SIZE) as u64;
            let pc_of = |off: u32| -> Option<usize> {
                let off = off as u64;
                (off >= start && off < end && off.is_multiple_of(8))
                    .then(|| f.start + ((off - start) / INSN_SIZE as u64) as usize)
            };
            for l in ext.line_info.get(&f.section).into_iter().flatten() {
                if let Some(pc) = pc_of(l.insn_off) {
                    program.line_info.push(LineInfo {
                        pc,
                        file: l.file.clone(),
                        line: l.line,
                        col: l.col,
                        text: l.text.clone(),
                    });
                }
            }
            for fi in ext.func_info.get(&f.section).into_iter().flatten() {
                if let Some(pc) = pc_of(fi.insn_off) {
                    let name = self
                        .cx
                        .btf
                        .and_then(|b| b.get(fi.type_id))
                        .map(|t| t.name.clone())
                        .unwrap_or_default();
                    program.func_info.push(FuncInfo {
                        pc,
                        type_id: fi.type_id,
                        name,
                    });
                }
            }
            for rec in ext.core_relos.get(&f.section).into_iter().flatten() {
                let (Some(pc), Some(local)) = (pc_of(rec.insn_off), self.cx.btf) else {
                    continue;
                };
                let fail = |reason: String| core::error(local, rec, &f.section, reason);
                let outcome = self
                    .cx
                    .core
                    .get(&(f.section.clone(), rec.insn_off))
                    .ok_or_else(|| fail("the relocation was not resolved".into()))?
                    .as_ref()
                    .map_err(|e| fail(e.clone()))?;
                if let Some(reason) = core::patch(&mut program.insns, pc, outcome).map_err(fail)? {
                    let LoadError::Core {
                        kind,
                        access,
                        type_name,
                        ..
                    } = fail(String::new())
                    else {
                        unreachable!("core::error makes Core errors")
                    };
                    program.poisoned.push(PoisonedInsn {
                        pc,
                        section: f.section.clone(),
                        offset: rec.insn_off as u64,
                        kind,
                        access,
                        type_name,
                        reason,
                    });
                }
                core_count += 1;
            }
        }
        program.poisoned.sort_by_key(|p| p.pc);
        program.line_info.sort_by_key(|l| l.pc);
        program.func_info.sort_by_key(|f| f.pc);
        program.core_relos = core_count;
        Ok(())
    }
}

fn slots(elf: &ElfFile, f: &Func) -> Result<usize, LoadError> {
    let s = &elf.sections[f.section];
    if f.size == 0
        || !f.size.is_multiple_of(INSN_SIZE as u64)
        || f.start.saturating_add(f.size) > s.size
    {
        return Err(LoadError::BadSection {
            section: s.name.clone(),
            offset: f.start,
            reason: format!(
                "function {} at {:#x} has size {:#x}, not a whole number of instructions inside the section",
                f.name, f.start, f.size
            ),
        });
    }
    Ok((f.size / INSN_SIZE as u64) as usize)
}

/// Decode a function's instructions. Errors name the instruction by its
/// index in the section, as `llvm-objdump -d` numbers it.
fn decode_func(
    s: &ElfSection,
    f: &Func,
    endian: crate::isa::Endian,
) -> Result<Vec<Insn>, LoadError> {
    let first_slot = (f.start / INSN_SIZE as u64) as usize;
    let start = f.start as usize;
    let bytes = start
        .checked_add(f.size as usize)
        .and_then(|end| s.data.get(start..end))
        .ok_or_else(|| LoadError::BadSection {
            section: s.name.clone(),
            offset: f.start,
            reason: format!("function {} extends past the section data", f.name),
        })?;
    let slot = |i: usize| -> Option<[u8; 8]> {
        bytes
            .get(i * INSN_SIZE..(i + 1) * INSN_SIZE)
            .and_then(|b| b.try_into().ok())
    };
    let mut out = Vec::with_capacity(bytes.len() / INSN_SIZE);
    let mut i = 0;
    while let Some(first) = slot(i) {
        let insn = decode_one(first_slot + i, first, slot(i + 1), endian).map_err(|error| {
            LoadError::Decode {
                section: s.name.clone(),
                offset: f.start + (i * INSN_SIZE) as u64,
                error,
            }
        })?;
        out.push(insn);
        if insn.slots() == 2 {
            out.push(Insn::LddwHigh);
        }
        i += insn.slots().max(1);
    }
    Ok(out)
}

fn rel_imm(target: usize, pc: usize, section: &str, offset: u64) -> Result<i32, LoadError> {
    i32::try_from(target as i64 - pc as i64 - 1).map_err(|_| LoadError::BadCallTarget {
        section: section.to_string(),
        offset,
        target: target as u64,
    })
}
