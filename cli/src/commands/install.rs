//! `pkgr install` and `pkgr update`: a change to an existing environment
//! (the flow is [`transaction::change_environment`], which `pkgr env update`
//! runs too).

use crate::cli::{GlobalArgs, InstallArgs};
use crate::transaction;

/// `pkgr install`.
pub async fn install(global: &GlobalArgs, args: InstallArgs) -> anyhow::Result<()> {
    transaction::change_environment(global, args, false).await
}

/// `pkgr update`.
pub async fn update(global: &GlobalArgs, args: InstallArgs) -> anyhow::Result<()> {
    transaction::change_environment(global, args, true).await
}
