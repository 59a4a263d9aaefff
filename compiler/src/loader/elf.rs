//! ELF container reading with the `object` crate: identification checks
//! (magic, ELF64, EM_BPF, byte order), then sections, symbols and REL
//! relocations copied into plain owned tables the rest of the loader uses.

use super::error::LoadError;
use crate::isa::Endian;
use object::elf::{self, FileHeader64, Rel64, SectionHeader64};
use object::read::elf::{FileHeader, SectionHeader, Sym};
use object::Endianness;

/// Most `SHT_NOBITS` bytes (all sections together) materialised as zeroes.
const MAX_NOBITS: u64 = 1 << 28;

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
    /// The contents (zeroes for `SHT_NOBITS`).
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

fn malformed(e: object::read::Error) -> LoadError {
    LoadError::Malformed {
        reason: e.to_string(),
    }
}

impl ElfFile {
    pub fn parse(data: &[u8]) -> Result<ElfFile, LoadError> {
        if data.len() < 16 || data[..4] != elf::ELFMAG {
            return Err(LoadError::NotElf {
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
                    reason: format!("unknown data encoding {other}"),
                })
            }
        };
        let header = FileHeader64::<Endianness>::parse(data).map_err(malformed)?;
        let e = header.endian().map_err(malformed)?;
        let machine = header.e_machine(e);
        if machine != elf::EM_BPF {
            return Err(LoadError::WrongMachine { machine });
        }
        let table = header.sections(e, data).map_err(malformed)?;
        let mut sections = Vec::with_capacity(table.len());
        let mut nobits_total: u64 = 0;
        for (_, sh) in table.enumerate() {
            let name =
                String::from_utf8_lossy(table.section_name(e, sh).map_err(malformed)?).into_owned();
            let sh_type = sh.sh_type(e);
            let size = sh.sh_size(e);
            let contents = if sh_type == elf::SHT_NOBITS {
                nobits_total = nobits_total.saturating_add(size);
                if nobits_total > MAX_NOBITS {
                    return Err(LoadError::BadSection {
                        section: name,
                        reason: format!("NOBITS size {size:#x} is too large"),
                    });
                }
                vec![0; size as usize]
            } else {
                sh.data(e, data)
                    .map_err(|err| LoadError::BadSection {
                        section: name.clone(),
                        reason: err.to_string(),
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
        let symtab = table.symbols(e, data, elf::SHT_SYMTAB).map_err(malformed)?;
        let mut symbols = Vec::with_capacity(symtab.len());
        for sym in symtab.iter() {
            let name = String::from_utf8_lossy(symtab.symbol_name(e, sym).map_err(malformed)?)
                .into_owned();
            let shndx = sym.st_shndx(e);
            let section = if shndx == elf::SHN_UNDEF || shndx >= elf::SHN_LORESERVE {
                None
            } else {
                Some(shndx as usize).filter(|&i| i < sections.len())
            };
            symbols.push(ElfSymbol {
                name,
                value: sym.st_value(e),
                size: sym.st_size(e),
                kind: sym.st_type(),
                bind: sym.st_bind(),
                section,
            });
        }
        for (_, sh) in table.enumerate() {
            let sh: &SectionHeader64<Endianness> = sh;
            if sh.sh_type(e) == elf::SHT_RELA {
                let name = String::from_utf8_lossy(table.section_name(e, sh).map_err(malformed)?)
                    .into_owned();
                return Err(LoadError::BadSection {
                    section: name,
                    reason: "RELA relocations are not used by BPF objects".into(),
                });
            }
            if sh.sh_type(e) != elf::SHT_REL {
                continue;
            }
            let target = sh.sh_info(e) as usize;
            let rel_name =
                String::from_utf8_lossy(table.section_name(e, sh).map_err(malformed)?).into_owned();
            let rels: &[Rel64<Endianness>] =
                sh.data_as_array(e, data)
                    .map_err(|err| LoadError::BadSection {
                        section: rel_name.clone(),
                        reason: err.to_string(),
                    })?;
            let Some(tsec) = sections.get_mut(target) else {
                return Err(LoadError::BadSection {
                    section: rel_name,
                    reason: format!("relocates section {target}, which does not exist"),
                });
            };
            for r in rels {
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
                        symbol: format!("#{sym}"),
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

    pub fn section_by_name(&self, name: &str) -> Option<(usize, &ElfSection)> {
        self.sections
            .iter()
            .enumerate()
            .find(|(_, s)| s.name == name)
    }
}
