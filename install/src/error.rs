//! Everything that can go wrong in an install, one variant per thing.

use std::path::PathBuf;

use pkgr_cache::CacheError;
use pkgr_prefix::PrefixError;
use pkgr_repodata::RepodataError;
use pkgr_solver::SolverError;

/// Why an install step failed. Each variant names what it concerns (the
/// package, the environment, the URL with credentials redacted); the
/// messages are the ones the `pkgr` binary shows, so a front-end only adds
/// its own context.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// Loading the channels' repodata failed.
    #[error(transparent)]
    Repodata(#[from] RepodataError),
    /// Solving failed.
    #[error(transparent)]
    Solve(#[from] SolverError),
    /// A spec whose name is a glob matches no package of the channels.
    #[error("no package in the channels matches `{spec}`")]
    NoMatchingName {
        /// The spec, as parsed.
        spec: String,
    },
    /// A spec whose name is a glob matches packages of several names.
    #[error("`{spec}` matches packages of several names ({}): name the one you mean", names.join(", "))]
    SeveralNames {
        /// The spec, as parsed.
        spec: String,
        /// The names it matches.
        names: Vec<String>,
    },
    /// Putting a package into the cache failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// A cache entry's `info/index.json` could not be read (to complete a
    /// record that knew only its file name).
    #[error("could not read info/index.json of {package} (in {})", dir.display())]
    ArchiveIndex {
        /// The package's file name.
        package: String,
        /// The cache entry.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A cache entry's `info/index.json` does not make a record.
    #[error("info/index.json of {package} is not usable")]
    UnusableIndex {
        /// The package's file name.
        package: String,
        /// Why.
        #[source]
        source: rattler_conda_types::ConvertSubdirError,
    },
    /// An archive holds another package than its file name says.
    #[error("{url} holds the package {found}, not what its file name says")]
    NotWhatItsNameSays {
        /// The archive's URL (redacted).
        url: String,
        /// `name-version-build` of what it holds.
        found: String,
    },
    /// A record to install cannot name one file: its file name, name,
    /// version or build holds a `/` or `..`, or its file name is not
    /// `<name>-<version>-<build>.conda` / `.tar.bz2`. Checked before
    /// anything reaches the cache or the prefix, whose paths are made from
    /// them, wherever the record came from (a channel, a lock file).
    #[error("refusing to install {file_name} (from {channel}): {problem}; a record like this could make pkgr write outside its cache or environment, so whatever gave it (a channel's repodata, a lock file) is broken or hostile")]
    UnsafeRecord {
        /// The record's file name (escaped).
        file_name: String,
        /// Its channel or URL (redacted).
        channel: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Records with neither a sha256 nor an md5: nothing could check that
    /// what is downloaded is the package meant, so they are refused unless
    /// the installer allows them ([`Installer::with_unverified_packages`](crate::Installer::with_unverified_packages)).
    #[error("{} no sha256 or md5 checksum, so nothing can check that what is downloaded is the package meant: {}; take {} from a channel or lock file that gives checksums, or allow unverified packages (the setting `allow_unverified_packages: true`, or PKGR_ALLOW_UNVERIFIED_PACKAGES=1)",
        if packages.len() == 1 { "this package has" } else { "these packages have" },
        packages.join(", "),
        if packages.len() == 1 { "it" } else { "them" })]
    Unverified {
        /// The packages (file names, escaped).
        packages: Vec<String>,
    },
    /// The jobs semaphore was closed (only a front-end can do that).
    #[error("the jobs semaphore was closed")]
    JobsClosed(#[source] tokio::sync::AcquireError),
    /// A blocking task (the solve, the transaction) panicked or was cancelled.
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
    /// The prefix transaction failed (the failing package was rolled back;
    /// the ones changed before it stay changed and recorded).
    #[error("could not change the environment at {}", prefix.display())]
    Transaction {
        /// The environment.
        prefix: PathBuf,
        /// What failed.
        #[source]
        source: PrefixError,
    },
    /// The environment was removed while we waited for its lock.
    #[error("the environment at {} was removed while this command waited for its lock", prefix.display())]
    EnvironmentRemoved {
        /// The environment.
        prefix: PathBuf,
    },
    /// The installed-package records could not be read.
    #[error("could not read the environment at {}", prefix.display())]
    ReadEnvironment {
        /// The environment.
        prefix: PathBuf,
        /// What failed.
        #[source]
        source: PrefixError,
    },
    /// An environment being replaced could not be emptied.
    #[error("could not clear {}", prefix.display())]
    Clear {
        /// The environment.
        prefix: PathBuf,
        /// What failed.
        #[source]
        source: PrefixError,
    },
    /// Another prefix operation failed (the lock, recovery, `history`, a
    /// check before replacing).
    #[error(transparent)]
    Prefix(#[from] PrefixError),
}
