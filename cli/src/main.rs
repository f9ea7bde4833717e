//! `pkgr`: a conda-compatible package manager whose package cache is safe to
//! share between any number of concurrent processes.

mod activate;
mod auth;
mod cache;
mod cli;
mod config;
mod create;
mod envs;
mod files;
mod index;
mod info;
mod list;
mod modify;
mod output;
mod paths;
mod search;
mod transact;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

fn main() -> ExitCode {
    let mut args = cli::Cli::parse();
    output::init_logging(args.global.verbose);
    args.global.config = match config::Config::load() {
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

async fn run(args: cli::Cli) -> anyhow::Result<ExitCode> {
    let global = args.global;
    match args.command {
        cli::Command::Create(create) => create::run(&global, create).await?,
        cli::Command::Install(install) => modify::install(&global, install, false).await?,
        cli::Command::Update(update) => modify::install(&global, update, true).await?,
        cli::Command::Remove(remove) => modify::remove(&global, remove).await?,
        cli::Command::List(list) => list::run(&global, &list)?,
        cli::Command::Index(index) => index::run(&global, &index)?,
        cli::Command::Clean(clean) => cache::clean(&global, &clean).await?,
        cli::Command::Cache(cli::CacheCommand::Verify { repair }) => {
            cache::verify(&global, repair).await?;
        }
        cli::Command::Search(search) => search::run(&global, &search).await?,
        cli::Command::Info => info::info(&global)?,
        cli::Command::Env(command) => envs::run(&global, command).await?,
        cli::Command::Run(run) => return activate::run(&global, run),
        cli::Command::Shell(command) => activate::shell(&global, &command)?,
        cli::Command::Config(cli::ConfigCommand::List) => info::config_list(&global)?,
        cli::Command::Auth(command) => auth::run(&global, &command)?,
        cli::Command::Activate { .. } | cli::Command::Deactivate => {
            // Only the shell function the hook defines can change the shell.
            anyhow::bail!(
                "`pkgr activate` and `pkgr deactivate` change the calling shell, which needs pkgr's shell function: run `eval \"$(pkgr shell hook)\"` first (fish: `pkgr shell hook -s fish | source`), or use `pkgr run -n ENV COMMAND`"
            );
        }
        cli::Command::Completion { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cli::Cli::command(), "pkgr", &mut out);
            output::print_stdout(&String::from_utf8_lossy(&out));
        }
    }
    Ok(ExitCode::SUCCESS)
}
