//! What can go wrong in a solve.

/// Everything that can go wrong solving.
#[derive(Debug, thiserror::Error)]
pub enum SolverError {
    /// The solve chose a record whose file name, name, version or build
    /// cannot name one file (a `/` or `..` in it, or a file name that is not
    /// `<name>-<version>-<build>.conda`): pkgr names cache entries, lock
    /// files and `conda-meta/` files after them, so it refuses the record
    /// rather than write where it says.
    #[error("refusing {file_name} from channel {channel}: {problem}; a record like this could make pkgr write outside its cache or environment, so the channel's repodata is broken or hostile (tell its maintainers, or ask for another version or build of {name})")]
    UnsafeRecord {
        /// The record's channel (without credentials).
        channel: String,
        /// The record's file name as the channel gives it (escaped).
        file_name: String,
        /// The package name it was asked for as.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A requested package exists in no channel.
    #[error(transparent)]
    PackageNotFound(#[from] PackageNotFound),
    /// The request cannot be satisfied.
    #[error("the request cannot be satisfied:\n{0}")]
    Unsatisfiable(String),
    /// Anything else the solver reported.
    #[error("the solver failed: {0}")]
    Solver(String),
    /// The records of a name could not be read from their source (a
    /// broken repodata file, a failed read): the source's own error.
    #[error(transparent)]
    Records(Box<dyn std::error::Error + Send + Sync>),
    /// Virtual package detection failed.
    #[error("could not detect the system's virtual packages: {0}")]
    VirtualPackages(String),
}

/// A requested package exists in no channel: its name, the channels
/// searched, the names it may be a typo of, and the subdirs that were
/// missing ([`package_not_found`](crate::package_not_found)).
#[derive(Debug, thiserror::Error)]
#[error(
    "package `{name}` was not found in {channels}{}{}",
    suggestion(suggestions),
    notes.iter().map(|n| format!("; note: {n}")).collect::<String>()
)]
pub struct PackageNotFound {
    /// The package name.
    pub name: String,
    /// The channels searched.
    pub channels: String,
    /// Close names that do exist.
    pub suggestions: Vec<String>,
    /// Subdirs of those channels that were missing, and how (e.g.
    /// `http://host/chan/linux-64/repodata.json answered 404 Not Found`).
    pub notes: Vec<String>,
}

/// `; did you mean `a` or `b`?` for close names, nothing for none.
fn suggestion(names: &[String]) -> String {
    if names.is_empty() {
        String::new()
    } else {
        format!(
            "; did you mean {}?",
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(" or ")
        )
    }
}
