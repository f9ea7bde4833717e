//! `pkgr`: a conda-compatible package manager whose package cache is safe to
//! share between any number of concurrent processes.

mod activation;
mod cache_access;
mod channels;
mod cli;
mod commands;
mod env_files;
mod environments;
mod output;
mod paths;
mod render;
mod request;
mod settings;
mod transaction;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{CacheCommand, Command, ConfigCommand};

fn main() -> ExitCode {
    let mut args = cli::Cli::parse();
    output::init_logging(args.global.verbose);
    args.global.config = match settings::Config::load() {
        Ok(config) => config,
        Err(err) => {
            output::print_error(&err);
            return ExitCode::FAILURE;
        }
    };
    for warning in &args.global.config.warnings {
        output::print_warning(warning);
    }
    if !args.global.config.network.value.ssl_verify {
        output::print_warning(&format!(
            "ssl_verify is false (from {}): TLS certificates are NOT checked, so anyone on the network path can serve you any package",
            args.global.config.ssl_origin
        ));
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            output::print_error(&anyhow::anyhow!("could not start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let json = args.global.json;
    let result = runtime.block_on(run(args));
    // Every task that works on the cache or an environment has been joined
    // by now (the cache runs each request's tasks to their end). What may be
    // left are threads blocked in a lock wait that timed out or was given up:
    // they hold nothing and do nothing, so they must not keep us from exiting.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(err) => {
            output::print_error(&err);
            if json {
                output::print_error_json(&err);
            }
            ExitCode::FAILURE
        }
    }
}

/// Runs the subcommand `args` name.
async fn run(args: cli::Cli) -> anyhow::Result<ExitCode> {
    let global = args.global;
    match args.command {
        Command::Create(create) => commands::create::run(&global, create).await?,
        Command::Install(install) => commands::install::install(&global, install).await?,
        Command::Update(update) => commands::install::update(&global, update).await?,
        Command::Remove(remove) => commands::remove::run(&global, remove).await?,
        Command::List(list) => commands::list::run(&global, &list)?,
        Command::Index(index) => commands::index::run(&global, &index)?,
        Command::Clean(clean) => commands::clean::run(&global, &clean).await?,
        Command::Cache(CacheCommand::Verify { repair }) => {
            commands::cache::verify(&global, repair).await?;
        }
        Command::Search(search) => commands::search::run(&global, &search).await?,
        Command::Info => commands::info::run(&global)?,
        Command::Env(command) => commands::env::run(&global, command).await?,
        Command::Run(run) => return commands::run::run(&global, run),
        Command::Shell(command) => commands::shell::run(&global, &command)?,
        Command::ShellBash(command) => {
            commands::shell::run_dot(&global, cli::ShellKind::Bash, &command)?
        }
        Command::ShellZsh(command) => {
            commands::shell::run_dot(&global, cli::ShellKind::Zsh, &command)?
        }
        Command::ShellFish(command) => {
            commands::shell::run_dot(&global, cli::ShellKind::Fish, &command)?
        }
        Command::ShellPosix(command) => {
            commands::shell::run_dot(&global, cli::ShellKind::Posix, &command)?;
        }
        Command::Init(init) => commands::init::run(&global, &init)?,
        Command::Config(ConfigCommand::List) => commands::config::list(&global)?,
        Command::Auth(command) => commands::auth::run(&global, &command)?,
        Command::Activate { .. } | Command::Deactivate => commands::shell::needs_hook()?,
        Command::Completion { shell } => commands::completion::run(shell),
    }
    Ok(ExitCode::SUCCESS)
}
