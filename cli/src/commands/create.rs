//! `pkgr create`: a new environment (the flow is
//! [`transaction::create_environment`], which `pkgr env create` runs too).

use crate::cli::{CreateArgs, GlobalArgs};
use crate::transaction;

/// `pkgr create`.
pub async fn run(global: &GlobalArgs, args: CreateArgs) -> anyhow::Result<()> {
    transaction::create_environment(global, args).await
}
