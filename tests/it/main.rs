//! End-to-end tests of the real `pkgr` binary (one test binary for all areas,
//! so the workspace links it once).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[macro_use]
mod common;
mod archive_limits;
mod auth;
mod bench;
mod cache_trust;
mod clean;
mod cli;
mod cli_safety;
mod concurrency;
mod conda_env_vars;
mod create;
mod credentials;
mod envfiles;
mod environments;
mod faults;
mod healing;
mod hostile_links;
mod hostile_repodata;
mod index;
mod network;
mod noarch_python;
mod python_paths;
mod real_data;
mod real_solves;
mod repodata;
mod sharing;
mod shell_init;
mod solving;
mod streaming;
