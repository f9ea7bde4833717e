//! Publishing an entry: an archive extracted into a staging directory
//! (from its verified file, or while it downloads: [`crate::streaming`]) is
//! checked complete, gets its marker last and is renamed into `pkgs/`. The
//! caller holds the entry's exclusive lock throughout.

use std::path::Path;

use crate::error::io_error;
use crate::set_aside::set_aside;
use crate::{archive, validate};
use crate::{ArchiveError, CacheError, EntryMarker, ENTRY_MARKER};

/// Extracts `archive` into a staging directory in `tmp`, checks it complete
/// against its own paths.json, writes the marker last and renames the
/// directory to `dest`. The caller holds the entry's exclusive lock (and
/// has set aside what was at `dest`; whatever is there still, nobody uses:
/// it is set aside too).
#[tracing::instrument(level = "debug", skip_all, fields(package = %package))]
pub(crate) fn extract_entry(
    archive: &Path,
    tmp: &Path,
    dest: &Path,
    marker: EntryMarker,
    package: &str,
) -> Result<(), CacheError> {
    let archive_error = |source| CacheError::Archive {
        package: package.to_owned(),
        source,
    };
    let staging = tempfile::Builder::new()
        .prefix("x-")
        .tempdir_in(tmp)
        .map_err(|source| CacheError::NotWritable {
            path: tmp.to_path_buf(),
            source,
        })?;
    archive::extract(archive, staging.path()).map_err(archive_error)?;
    publish_staging(staging, archive, dest, marker, package)
}

/// The tail of every fill, after `archive` was extracted into `staging`
/// (from its file, or while it downloaded: [`streaming`]): checks that
/// `info/index.json` is there and that the entry is complete against its
/// own paths.json, writes the marker last (fsynced) and renames the
/// directory to `dest`, setting aside whatever is there. On an error the
/// staging directory is removed. The caller holds the entry's exclusive
/// lock.
#[expect(
    clippy::disallowed_methods,
    reason = "the destination is below a held handle (/proc/self/fd/N/...); the context names its real path"
)]
pub(crate) fn publish_staging(
    staging: tempfile::TempDir,
    archive: &Path,
    dest: &Path,
    mut marker: EntryMarker,
    display: &str,
) -> Result<(), CacheError> {
    let archive_error = |source| CacheError::Archive {
        package: display.to_owned(),
        source,
    };
    // `archive` and `dest` may be reached through a held handle
    // (`/proc/self/fd/...`); messages name their real paths.
    let archive = &pkgr_fs::dir::real_path(archive);
    if !staging.path().join("info").join("index.json").is_file() {
        return Err(archive_error(ArchiveError::MissingIndex {
            path: archive.to_path_buf(),
        }));
    }
    // Published only if complete: the check belongs to the publishing step,
    // not to a later reader.
    marker.links_as_files = validate::check_files(staging.path(), validate::Depth::Sizes)
        .map_err(|problem| {
            archive_error(ArchiveError::Incomplete {
                path: archive.to_path_buf(),
                problem,
            })
        })?
        .links_as_files;
    let marker_path = staging.path().join(ENTRY_MARKER);
    let text = serde_json::to_vec_pretty(&marker).unwrap_or_default();
    let mut file = fs_err::File::create(&marker_path).map_err(io_error("writing the marker"))?;
    std::io::Write::write_all(&mut file, &text)
        .map_err(io_error(format!("writing {}", marker_path.display())))?;
    // Read-only like the entry's files, and so is the archive it describes
    // (as far as this account may: it can be another member's download).
    archive::set_read_only(&file).map_err(io_error("writing the marker"))?;
    let _ = fs_err::File::open(archive).and_then(|verified| archive::set_read_only(&verified));
    file.sync_all()
        .map_err(io_error(format!("flushing {}", marker_path.display())))?;
    let shown = pkgr_fs::dir::real_path(dest);
    set_aside(dest).map_err(io_error(format!("moving {} aside", shown.display())))?;
    let staging = staging.keep();
    // raw std::fs: `dest` is below a held handle (`/proc/self/fd/N/...`);
    // the context names its real path.
    std::fs::rename(&staging, dest).map_err(io_error(format!(
        "publishing an extracted entry as {}",
        shown.display()
    )))?;
    Ok(())
}
