//! `bpfc run`.

#[derive(clap::Args)]
pub struct Args {}

pub fn main(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`bpfc run` is not implemented yet")
}
