//! `bpfc targets`: the target triples `bpfc compile` accepts.

#[derive(clap::Args)]
pub struct Args {}

pub fn main(_args: Args) -> anyhow::Result<()> {
    for t in bpfc_compiler::codegen::SUPPORTED_TARGETS {
        println!("{t}");
    }
    Ok(())
}
