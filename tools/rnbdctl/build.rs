// SPDX-License-Identifier: GPL-2.0

//! Generates the man page and the bash/zsh completions from the command
//! line's definition, into $RNBDCTL_GEN_DIR (tools/build-tools.sh sets it)
//! or OUT_DIR.

use clap::CommandFactory;
use std::path::PathBuf;

#[allow(dead_code)]
mod cli {
    include!("src/cli.rs");
}

fn main() -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=src/cli.rs");
    println!("cargo:rerun-if-env-changed=RNBDCTL_GEN_DIR");
    let dir = std::env::var_os("RNBDCTL_GEN_DIR")
        .or_else(|| std::env::var_os("OUT_DIR"))
        .map(PathBuf::from)
        .expect("OUT_DIR");
    std::fs::create_dir_all(&dir)?;
    let mut cmd = cli::Cli::command();
    let mut man = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut man)?;
    std::fs::write(dir.join("rnbdctl.1"), man)?;
    for shell in [clap_complete::Shell::Bash, clap_complete::Shell::Zsh] {
        clap_complete::generate_to(shell, &mut cmd, "rnbdctl", &dir)?;
    }
    Ok(())
}
