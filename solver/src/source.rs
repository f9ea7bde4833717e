//! Where a solve gets records from.

use rattler_conda_types::RepoDataRecord;

/// The records of one channel subdir, by package name, as a solve reads
/// them: only for the names the request can reach, so a source may parse
/// (or fetch) records lazily. Sources are given to [`crate::solve`] in
/// channel priority order.
///
/// `pkgr-repodata`'s `SubdirIndex` is one: it parses the records of a name
/// from their spans of the cached repodata.json when asked.
pub trait RecordSource {
    /// What reading records can fail with (a broken repodata file, a read
    /// error); carried by [`crate::SolverError::Records`].
    type Error: std::error::Error + Send + Sync + 'static;

    /// The source's channel as messages name it (`package ... was not found
    /// in channel <this>`).
    fn channel_shown(&self) -> String;

    /// For a subdir the channel does not have (an empty source): which URL
    /// failed and how, for messages.
    fn missing_note(&self) -> Option<&str>;

    /// Every package name the source has records of.
    fn names(&self) -> Box<dyn Iterator<Item = &str> + '_>;

    /// Whether any record of package `name` is here.
    fn contains(&self, name: &str) -> bool;

    /// The records of package `name` (none if it has none), in the order the
    /// solver is to be given them (the same in every run: rattler_solve's
    /// tie-breaks depend on it).
    fn records(&self, name: &str) -> Result<Vec<RepoDataRecord>, Self::Error>;
}
