//! pkgr's install steps as a library, for any front-end (the `pkgr` binary
//! is one; a Python binding, a server that provisions environments or a
//! build tool could be others):
//!
//! 1. **lock the prefix** ([`lock_prefix`], [`open_environment`],
//!    [`NewEnvironment::lock`]), which gives a [`LockedPrefix`];
//! 2. **solve** ([`Installer::solve`]: the channels' repodata through the
//!    cache, under its repodata locks, then `rattler_solve`);
//! 3. **plan** ([`Plan::between`]: what goes, what comes);
//! 4. **fetch and link** ([`Installer::install`]: every package into the
//!    shared cache under its entry lock, then one prefix
//!    [`Transaction`](pkgr_prefix::Transaction));
//! 5. **record** ([`LockedPrefix::record_history`]).
//!
//! # The lock order, enforced by types
//!
//! pkgr's global lock order is prefix lock → repodata locks → entry locks
//! (the crate docs of `pkgr_cache` argue why it rules out deadlock).
//! Here it is kept by construction rather than by the order a front-end
//! happens to call things in:
//!
//! - [`Installer::install`] takes a [`LockedPrefix`], and the only ways to
//!   get one are this crate's lock functions: nothing is linked into a
//!   prefix whose lock is not held, and the lock outlives the change;
//! - entry locks are taken inside [`Installer::install`] (they are the
//!   [`CacheEntry`](pkgr_cache::CacheEntry)s it fetches) and released before
//!   it returns, so a front-end never holds one while it waits for a prefix
//!   lock;
//! - repodata locks are taken and released inside [`Installer::solve`],
//!   whose result holds no lock: solving before locking the prefix (as
//!   `create` does, to show a plan without touching anything) or after
//!   (as `install` does, to solve against what is installed) are both in
//!   order.
//!
//! The `--jobs` permits follow the same rule as in the cache: the link step
//! takes them only for the transaction itself (as many as are free, one
//! linking thread each), after every entry is in the cache, never while it
//! waits for anything.
//!
//! # What this crate does not do
//!
//! It never prints: everything a user may want to see goes through
//! [`Reporter`]. It does not parse arguments or read configuration: the
//! caller opens the [`PackageCache`](pkgr_cache::PackageCache) and says
//! which channels, specs and link mode to use. Errors are [`InstallError`]
//! (`thiserror`), each naming what failed; the front-end adds context.
//!
//! It depends on the cache, the solver and the linker (and through the
//! cache on the downloader). **It must not depend on** a front-end
//! (`pkgr-cli`), on a terminal or progress-bar crate, or on `anyhow`.

mod error;
mod installer;
mod locked;
mod plan;
mod reporter;

pub use error::InstallError;
pub use installer::{Change, InstallReport, Installer};
pub use locked::{lock_prefix, open_environment, LockedPrefix, NewEnvironment, SpecsKind};
pub use pkgr_prefix::{LinkMode, LinkScripts};
pub use plan::{python_of, requested_spec_of, spec_is_for, Plan};
pub use reporter::Reporter;
