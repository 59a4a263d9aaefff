//! `bpfc gen`: code generated from an object for host applications.

mod ctypes;
mod rust;
mod scalar;
mod skeleton;

use crate::input;
use anyhow::Context as _;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// A C header like `bpftool gen skeleton`'s for an object compiled with
    /// `bpfc compile` (the same name): typed maps, programs and global
    /// data, NAME__open/__load/__open_and_load/__attach/__destroy.
    Skeleton(SkeletonArgs),
}

#[derive(clap::Args)]
struct SkeletonArgs {
    /// The eBPF object (clang -target bpf).
    file: PathBuf,
    /// The object's name (default: the file name without `.o` and `.bpf`);
    /// give `bpfc compile` the same.
    #[arg(long)]
    name: Option<String>,
    /// The language: a C header, or a Rust module (what bpfc-build uses).
    #[arg(long, value_enum, default_value = "c")]
    lang: Lang,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Lang {
    C,
    Rust,
}

pub fn main(args: Args) -> anyhow::Result<()> {
    match args.what {
        What::Skeleton(a) => {
            let shown = a.file.display().to_string();
            let bytes = std::fs::read(&a.file).with_context(|| shown.clone())?;
            if !input::is_elf(&bytes) {
                anyhow::bail!("{shown}: a skeleton needs an ELF object, not raw instructions");
            }
            let obj = input::load_object(&a.file, &bytes, &input::Select::default())?;
            let name = match &a.name {
                Some(n) if &input::symbol_for(n) == n => n.clone(),
                Some(n) => anyhow::bail!("--name {n:?}: a name must be a C identifier"),
                None => crate::compile::object_name(&a.file),
            };
            let syms = skeleton::symbols(&bytes);
            crate::output::print(match a.lang {
                Lang::C => skeleton::generate(&obj, &syms, &name),
                Lang::Rust => rust::generate(&obj, &syms, &name),
            })
        }
    }
}
