//! `pkgr completion SHELL`: the shell completion script clap generates.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::output::print_stdout;

/// Prints the completion script for `shell`.
pub fn run(shell: clap_complete::Shell) {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "pkgr", &mut out);
    print_stdout(&String::from_utf8_lossy(&out));
}
