//! What an install tells its front-end. The library never prints; a
//! front-end shows what it wants of this (the `pkgr` binary: progress bars
//! on a terminal, one line per finished step otherwise).

use std::path::Path;

use pkgr_prefix::TransactionEvent;

/// Everything an install reports, beside the cache's own events
/// ([`pkgr_cache::Reporter`]: waiting for an entry, downloads, extractions).
/// Every method has an empty default, so a front-end implements only what
/// it shows. Called from the async tasks and blocking threads that do the
/// work, hence `Send + Sync`.
pub trait Reporter: pkgr_cache::Reporter {
    /// The lock of `prefix` has been held by another process for a while
    /// (about a second; `holder_pid` when known); still waiting.
    fn waiting_for_prefix(&self, _prefix: &Path, _holder_pid: Option<u32>) {}

    /// A transaction on the prefix that was interrupted while changing
    /// `package` has been cleaned up (its journaled, unrecorded files
    /// removed).
    fn recovered(&self, _package: &str) {}

    /// `packages` packages are about to be put into (or found in) the cache.
    fn fetching_started(&self, _packages: usize) {}

    /// Every package is in the cache; `changes` packages are about to be
    /// linked or unlinked.
    fn linking_started(&self, _changes: usize) {}

    /// Something happened in the prefix transaction: a package linked or
    /// unlinked, a clobbered path, a message or warning of a link script.
    fn transaction_event(&self, _event: &TransactionEvent<'_>) {}

    /// The fetch and link steps of [`Installer::install`](crate::Installer::install)
    /// are over, with or without success (a front-end clears its bars).
    fn finished(&self) {}
}
