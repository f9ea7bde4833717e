//! `conda-meta/`, in one place: what an environment says about itself, in
//! the files conda, pixi and pkgr read.
//!
//! - records, `<name>-<version>-<build>.json`, one per installed package
//!   (`records.rs`): [`write_prefix_record`], [`read_prefix_records`];
//! - `history`, one revision per change with the specs the user asked for
//!   (`history.rs`): [`append_history`], [`read_requested_specs`];
//! - `state`, the environment's variables in conda's form
//!   `{"env_vars": {...}}` (`state.rs`): [`read_state_variables`],
//!   [`write_state_variables`];
//! - `pinned`, one spec per line (`pinned.rs`): [`read_pinned_specs`].
//!
//! pkgr keeps two more files there, which conda passes over (it reads the
//! `*.json` records and the files above): the prefix lock
//! ([`crate::PREFIX_LOCK`]) and the journal of a package being changed
//! (`*.pkgr-partial`, see [`crate::recover`]).
//!
//! Records and history are written by transactions and report a
//! [`PrefixError`](crate::PrefixError); what front-ends read and write
//! themselves (requested specs, state, pins) reports a [`MetaError`].

mod history;
mod pinned;
mod records;
mod state;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

use rattler_conda_types::{MatchSpec, ParseStrictness};

pub use history::{append_history, read_requested_specs};
pub use pinned::read_pinned_specs;
pub(crate) use records::{prefix_record_json, write_prefix_record_json};
pub use records::{read_prefix_records, record_file_name, write_prefix_record};
pub use state::{is_variable_name, read_state_variables, write_state_variables};

/// What can go wrong reading or writing `history`, `state` or `pinned`.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// A file of conda-meta could not be read (the error names it).
    #[error(transparent)]
    Read(std::io::Error),
    /// `conda-meta/state` is not JSON.
    #[error("{} is not valid JSON", path.display())]
    StateNotJson {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// `conda-meta/state` sets a name that cannot be a variable's (it
    /// would be code in the user's shell).
    #[error("{} sets `{name}`, which is not a variable name (letters, digits and _, not starting with a digit)", path.display())]
    NotAVariableName {
        /// The file.
        path: PathBuf,
        /// The name.
        name: String,
    },
    /// The variables could not be serialized.
    #[error(transparent)]
    SerializeState(serde_json::Error),
    /// No file could be made in conda-meta.
    #[error("could not write in {}", dir.display())]
    WriteIn {
        /// The directory (conda-meta).
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file of conda-meta could not be written.
    #[error("could not write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file of conda-meta, written under a temporary name, could not be
    /// renamed into place.
    #[error("could not write {}", path.display())]
    Persist {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: tempfile::PersistError,
    },
}

/// The name of the package `spec` names, normalized (lowercase), as conda
/// reads a spec (leniently): `numpy` for `numpy`, `numpy >=1.26`,
/// `numpy=1.26=py312_0`, `numpy[version='>=1.26']` or
/// `conda-forge::numpy`. `None` when the spec names no one package
/// (`*`, `num*`) or does not parse.
///
/// The one reading of a spec's package name in `conda-meta` and in
/// transactions: the specs of `history` ([`read_requested_specs`]) and the
/// `depends` entries a transaction orders its packages by.
pub fn spec_package_name(spec: &str) -> Option<String> {
    MatchSpec::from_str(spec, ParseStrictness::Lenient)
        .ok()
        .and_then(|s| s.name.as_exact().map(|n| n.as_normalized().to_owned()))
}

/// `text` with every URL that carries credentials in the form records keep.
fn for_record(text: &str) -> String {
    pkgr_redact::redact_urls_in_text(text, pkgr_redact::url_for_record)
}
