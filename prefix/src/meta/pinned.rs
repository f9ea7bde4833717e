//! `conda-meta/pinned`: specs every solve for the environment must respect.

use std::path::Path;

use super::MetaError;

/// The pins of an environment: `conda-meta/pinned`, one spec per line
/// (`#` starts a comment; blank lines are skipped), as conda reads it.
/// None without the file.
pub fn read_pinned_specs(prefix: &Path) -> Result<Vec<String>, MetaError> {
    let path = prefix.join("conda-meta").join("pinned");
    match fs_err::read_to_string(&path) {
        Ok(text) => Ok(text
            .lines()
            .map(|l| l.split('#').next().unwrap_or_default().trim())
            .filter(|l| !l.is_empty())
            .map(ToOwned::to_owned)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(MetaError::Read(e)),
    }
}
