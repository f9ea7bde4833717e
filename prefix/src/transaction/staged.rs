//! What the linking threads hand to the commit: each package's files in
//! place (or not) under its journal, and its record made ahead of writing.

use std::path::{Path, PathBuf};

use crate::link::{LinkedFiles, LinkedPackage, PackagePlan};
use crate::meta::prefix_record_json;
use crate::python::CompiledBatch;
use crate::PrefixError;

/// One package whose files are (being) linked, under its journal.
pub(super) struct Staged {
    pub(super) plan: PackagePlan,
    pub(super) journal: PathBuf,
    pub(super) paths: Vec<PathBuf>,
    pub(super) outcome: Outcome,
}

/// How far a staged package got.
pub(super) enum Outcome {
    /// Linking its files failed (or its record was taken to be written).
    Failed,
    /// Its files are in place; its record is made once its modules are
    /// byte-compiled.
    Linked(LinkedFiles),
    /// Its files are in place and its record is made, to be written once
    /// its post-link script ran.
    Prepared(Box<PreparedRecord>),
}

/// A package's record and the text of its conda-meta file, made ahead of
/// writing it (on the linking threads, or several at once after
/// byte-compiling) so that only the writes are in dependency order.
pub(super) struct PreparedRecord {
    pub(super) linked: LinkedPackage,
    pub(super) json: Result<Vec<u8>, PrefixError>,
}

impl PreparedRecord {
    pub(super) fn new(
        prefix: &Path,
        plan: &PackagePlan,
        files: LinkedFiles,
        compiled: Option<&CompiledBatch>,
    ) -> Self {
        let mut linked = plan.finish(prefix, files, compiled);
        let json = prefix_record_json(prefix, &mut linked.record);
        Self { linked, json }
    }
}
