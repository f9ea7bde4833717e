//! `pkgr`: a conda-compatible package manager whose package cache is safe to
//! share between any number of concurrent processes.

mod cache;
mod cli;
mod create;
mod index;
mod list;
mod modify;
mod output;
mod paths;
mod transact;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(args));
    // Every task that works on the cache or an environment has been joined
    // by now (the cache runs each request's tasks to their end). What may be
    // left are threads blocked in a lock wait that timed out or was given up:
    // they hold nothing and do nothing, so they must not keep us from exiting.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            output::print_error(&err);
            ExitCode::FAILURE
        }
    }
}

async fn run(args: cli::Cli) -> anyhow::Result<()> {
    let global = args.global;
    match args.command {
        cli::Command::Create(create) => create::run(&global, create).await,
        cli::Command::Install(install) => modify::install(&global, install, false).await,
        cli::Command::Update(update) => modify::install(&global, update, true).await,
        cli::Command::Remove(remove) => modify::remove(&global, remove).await,
        cli::Command::List(list) => list::run(&global, &list),
        cli::Command::Index(index) => index::run(&global, &index),
        cli::Command::Clean(clean) => cache::clean(&global, &clean).await,
        cli::Command::Cache(cli::CacheCommand::Verify { repair }) => {
            cache::verify(&global, repair).await
        }
    }
}
