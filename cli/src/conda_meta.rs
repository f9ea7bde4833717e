//! What the CLI writes in an environment's `conda-meta/` itself: the
//! `history` entry after a change, with this process's command line. Every
//! other file of `conda-meta/` (records, requested specs, `state`, `pinned`)
//! is read and written through [`pkgr_prefix::meta`].

use pkgr_install::{LockedPrefix, Plan, SpecsKind};

/// Appends the change to `conda-meta/history` with this process's command
/// line; `kind` is what conda writes (`update` or `remove` specs).
pub fn record_history(
    prefix: &LockedPrefix,
    plan: &Plan,
    kind: SpecsKind,
    specs: &[String],
) -> anyhow::Result<()> {
    let command: Vec<String> = std::env::args().collect();
    prefix.record_history(plan, kind, specs, &command.join(" "))?;
    Ok(())
}
