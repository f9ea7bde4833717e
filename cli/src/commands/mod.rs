//! One module per subcommand. A command parses nothing itself (clap did)
//! and never imports another command: what two commands share lives in the
//! modules beside `commands/` (`transaction`, `render`, `environments`,
//! `channels`, `request`, `cache_access`, `output`, ...).

pub mod auth;
pub mod cache;
pub mod clean;
pub mod completion;
pub mod config;
pub mod create;
pub mod env;
pub mod index;
pub mod info;
pub mod init;
pub mod install;
pub mod list;
pub mod remove;
pub mod run;
pub mod search;
pub mod shell;
