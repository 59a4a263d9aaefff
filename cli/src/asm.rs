//! `bpfc asm`.

#[derive(clap::Args)]
pub struct Args {}

pub fn main(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`bpfc asm` is not implemented yet")
}
