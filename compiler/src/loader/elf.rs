//! ELF container reading with the `object` crate: identification checks
//! (magic, ELF64, EM_BPF, byte order), then sections, symbols and REL
//! relocations copied into plain owned tables the rest of the loader uses.

use super::error::LoadError;
use crate::isa::Endian;
use object::elf::{self, FileHeader64, Rel64, SectionHeader64};
use object::read::elf::{FileHeader, SectionHeader, Sym};
use object::Endianness;

/// One relocation of a section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ElfReloc {
    /// Byte offset in the target section.
    pub offset: u64,
    pub r_type: u32,
    /// Index into [`ElfFile::symbols`].
    pub sym: usize,
}

#[derive(Clone, Debug)]
pub(crate) struct ElfSection {
    pub name: String,
    pub sh_type: u32,
    pub flags: u64,
    pub size: u64,
    /// The contents (empty for `SHT_NOBITS`, whose `size` bytes are zeroes).
    pub data: Vec<u8>,
    pub relocs: Vec<ElfReloc>,
}

impl ElfSection {
    pub fn is_exec(&self) -> bool {
        self.sh_type == elf::SHT_PROGBITS && self.flags & elf::SHF_EXECINSTR as u64 != 0
    }
}

#[derive(Clone, Debug)]
pub(crate) struct ElfSymbol {
    pub name: String,
    pub value: u64,
    pub size: u64,
    pub kind: u8,
    pub bind: u8,
    /// Index of the defining section; `None` for undefined, absolute or common.
    pub section: Option<usize>,
    /// `SHN_UNDEF`: defined elsewhere (an extern).
    pub undefined: bool,
}

impl ElfSymbol {
    pub fn is_func(&self) -> bool {
        self.kind == elf::STT_FUNC
    }
    pub fn is_global(&self) -> bool {
        self.bind == elf::STB_GLOBAL || self.bind == elf::STB_WEAK
    }
}

#[derive(Clone, Debug)]
pub(crate) struct ElfFile {
    pub endian: Endian,
    pub sections: Vec<ElfSection>,
    pub symbols: Vec<ElfSymbol>,
}

/// ELF64 header and section header sizes.
const EHDR_SIZE: u64 = 64;
const SHDR_SIZE: u64 = 64;

/// Check the file header's section header table fields and every section
/// header's file range before the `object` crate reads them, so a truncated
/// or corrupt file is reported with the exact offset at fault.
fn prevalidate(data: &[u8], endian: Endian) -> Result<(), LoadError> {
    let file_size = data.len() as u64;
    let bad = |offset: u64, reason: String| LoadError::Malformed {
        offset,
        file_size,
        reason,
    };
    if file_size < EHDR_SIZE {
        return Err(bad(
            file_size,
            format!("the ELF header needs {EHDR_SIZE} bytes, the file has {file_size}"),
        ));
    }
    let u16_at = |o: usize| endian.u16([data[o], data[o + 1]]);
    let u64_at = |d: &[u8], o: usize| {
        let b: [u8; 8] = d[o..o + 8].try_into().unwrap();
        match endian {
            Endian::Little => u64::from_le_bytes(b),
            Endian::Big => u64::from_be_bytes(b),
        }
    };
    let shoff = u64_at(data, 0x28);
    let shentsize = u16_at(0x3a) as u64;
    let mut shnum = u16_at(0x3c) as u64;
    if shoff == 0 {
        return Ok(());
    }
    if shentsize != SHDR_SIZE {
        return Err(bad(
            0x3a,
            format!("e_shentsize is {shentsize}, ELF64 section headers are {SHDR_SIZE} bytes"),
        ));
    }
    if shoff
        .checked_add(SHDR_SIZE)
        .is_none_or(|end| end > file_size)
    {
        return Err(bad(
            0x28,
            format!("section header table offset e_shoff {shoff:#x} is past the end of the file"),
        ));
    }
    if shnum == 0 {
        // More than 0xff00 sections: the count is in section 0's sh_size.
        shnum = u64_at(data, shoff as usize + 0x20);
    }
    let end = shnum
        .checked_mul(SHDR_SIZE)
        .and_then(|n| n.checked_add(shoff));
    if end.is_none_or(|end| end > file_size) {
        return Err(bad(
            shoff,
            format!(
                "section header table ({shnum} headers of {SHDR_SIZE} bytes) extends past the end of the file"
            ),
        ));
    }
    for i in 1..shnum {
        let at = (shoff + i * SHDR_SIZE) as usize;
        let sh_type = endian.u32(data[at + 4..at + 8].try_into().unwrap());
        if sh_type == elf::SHT_NOBITS || sh_type == elf::SHT_NULL {
            continue;
        }
        let off = u64_at(data, at + 0x18);
        let size = u64_at(data, at + 0x20);
        if off.checked_add(size).is_none_or(|e| e > file_size) {
            return Err(bad(
                at as u64,
                format!(
                    "section header {i}: contents at {off:#x} of {size:#x} bytes extend past the end of the file"
                ),
            ));
        }
    }
    Ok(())
}

fn malformed(data: &[u8], offset: u64) -> impl Fn(object::read::Error) -> LoadError {
    let file_size = data.len() as u64;
    move |e| LoadError::Malformed {
        offset,
        file_size,
        reason: e.to_string(),
    }
}

impl ElfFile {
    pub fn parse(data: &[u8]) -> Result<ElfFile, LoadError> {
        if data.len() < 16 || data[..4] != elf::ELFMAG {
            return Err(LoadError::NotElf {
                file_size: data.len() as u64,
                reason: if data.len() < 16 {
                    format!("only {} bytes", data.len())
                } else {
                    "bad magic".into()
                },
            });
        }
        if data[4] != elf::ELFCLASS64 {
            return Err(LoadError::WrongClass { class: data[4] });
        }
        let endian = match data[5] {
            elf::ELFDATA2LSB => Endian::Little,
            elf::ELFDATA2MSB => Endian::Big,
            other => {
                return Err(LoadError::NotElf {
                    file_size: data.len() as u64,
                    reason: format!("unknown data encoding {other}"),
                })
            }
        };
        prevalidate(data, endian)?;
        let header = FileHeader64::<Endianness>::parse(data).map_err(malformed(data, 0))?;
        let e = header.endian().map_err(malformed(data, 0))?;
        let machine = header.e_machine(e);
        if machine != elf::EM_BPF {
            return Err(LoadError::WrongMachine { machine });
        }
        let shoff = header.e_shoff(e);
        let table = header.sections(e, data).map_err(malformed(data, shoff))?;
        let shdr_at = |i: usize| shoff + (i as u64) * SHDR_SIZE;
        let shstr_at = shdr_at(header.e_shstrndx(e) as usize);
        let mut sections = Vec::with_capacity(table.len());
        for (i, sh) in table.enumerate() {
            let name = String::from_utf8_lossy(
                table
                    .section_name(e, sh)
                    .map_err(malformed(data, shstr_at))?,
            )
            .into_owned();
            let sh_type = sh.sh_type(e);
            let size = sh.sh_size(e);
            // NOBITS sections keep only their size: a huge `.bss` costs nothing.
            let contents = if sh_type == elf::SHT_NOBITS {
                Vec::new()
            } else {
                sh.data(e, data)
                    .map_err(|err| LoadError::Malformed {
                        offset: shdr_at(i.0),
                        file_size: data.len() as u64,
                        reason: format!("section {name}: {err}"),
                    })?
                    .to_vec()
            };
            sections.push(ElfSection {
                name,
                sh_type,
                flags: sh.sh_flags(e),
                size,
                data: contents,
                relocs: Vec::new(),
            });
        }
        let symtab_at = table
            .iter()
            .position(|sh| sh.sh_type(e) == elf::SHT_SYMTAB)
            .map_or(shoff, shdr_at);
        let symtab = table
            .symbols(e, data, elf::SHT_SYMTAB)
            .map_err(malformed(data, symtab_at))?;
        let mut symbols = Vec::with_capacity(symtab.len());
        for sym in symtab.iter() {
            let name = String::from_utf8_lossy(
                symtab
                    .symbol_name(e, sym)
                    .map_err(malformed(data, symtab_at))?,
            )
            .into_owned();
            let shndx = sym.st_shndx(e);
            let section = if shndx == elf::SHN_UNDEF || shndx >= elf::SHN_LORESERVE {
                None
            } else {
                Some(shndx as usize).filter(|&i| i < sections.len())
            };
            // Section symbols have no name of their own: use the section's.
            let name = match (sym.st_type(), section) {
                (elf::STT_SECTION, Some(i)) if name.is_empty() => sections[i].name.clone(),
                _ => name,
            };
            symbols.push(ElfSymbol {
                name,
                value: sym.st_value(e),
                size: sym.st_size(e),
                kind: sym.st_type(),
                bind: sym.st_bind(),
                section,
                undefined: shndx == elf::SHN_UNDEF,
            });
        }
        for (i, sh) in table.enumerate() {
            let sh: &SectionHeader64<Endianness> = sh;
            let rel_name = sections[i.0].name.clone();
            let target = sh.sh_info(e) as usize;
            let is_rel = matches!(sh.sh_type(e), elf::SHT_REL | elf::SHT_RELA);
            // Like libbpf, only relocations of code, `.maps` and the
            // struct_ops sections matter; those of DWARF, `.BTF` and
            // `.BTF.ext` are ignored, so a broken one cannot stop the load.
            let ignored = match sections.get(target) {
                Some(t) => {
                    !(t.is_exec()
                        || t.name == ".maps"
                        || t.name == ".struct_ops"
                        || t.name == ".struct_ops.link")
                }
                None => rel_name.starts_with(".rel.debug") || rel_name.starts_with(".rel.BTF"),
            };
            if !is_rel || ignored {
                continue;
            }
            if sh.sh_type(e) == elf::SHT_RELA {
                return Err(LoadError::BadSection {
                    section: rel_name,
                    offset: 0,
                    reason: "RELA relocations are not used by BPF objects".into(),
                });
            }
            let rels: &[Rel64<Endianness>] =
                sh.data_as_array(e, data)
                    .map_err(|err| LoadError::BadSection {
                        section: rel_name.clone(),
                        offset: 0,
                        reason: format!("{err} (size {:#x})", sh.sh_size(e)),
                    })?;
            let Some(tsec) = sections.get_mut(target) else {
                return Err(LoadError::BadSection {
                    section: rel_name,
                    offset: 0,
                    reason: format!("relocates section {target}, which does not exist"),
                });
            };
            for (n, r) in rels.iter().enumerate() {
                let rel_off = (n * std::mem::size_of::<Rel64<Endianness>>()) as u64;
                let sym = r.r_sym(e) as usize;
                let offset = r.r_offset.get(e);
                if tsec.sh_type != elf::SHT_NOBITS && offset >= tsec.size {
                    return Err(LoadError::RelocationOutOfRange {
                        section: tsec.name.clone(),
                        offset,
                        size: tsec.size,
                    });
                }
                if sym >= symbols.len() {
                    return Err(LoadError::MissingSymbol {
                        section: tsec.name.clone(),
                        offset,
                        symbol: format!("#{sym} (relocation at {rel_name} offset {rel_off:#x})"),
                    });
                }
                tsec.relocs.push(ElfReloc {
                    offset,
                    r_type: r.r_type(e),
                    sym,
                });
            }
        }
        for s in &mut sections {
            s.relocs.sort_by_key(|r| r.offset);
        }
        Ok(ElfFile {
            endian,
            sections,
            symbols,
        })
    }

    /// Whether GCC wrote the object: its `.comment` names GCC and not clang.
    /// GCC's BPF output (with binutils' assembler) differs in ways the
    /// loader must know: see `reloc` and `core`.
    pub fn written_by_gcc(&self) -> bool {
        self.section_by_name(".comment").is_some_and(|(_, s)| {
            let text = String::from_utf8_lossy(&s.data);
            text.contains("GCC:") && !text.contains("clang")
        })
    }

    pub fn section_by_name(&self, name: &str) -> Option<(usize, &ElfSection)> {
        self.sections
            .iter()
            .enumerate()
            .find(|(_, s)| s.name == name)
    }
}
