//! Reading a small file whole, but never more of it than a limit: the
//! metadata files of a package (`info/index.json`, `info/paths.json`, …) come
//! from whoever built the package, and a 37 KB archive can hold a 1 GiB
//! `index.json` that would take several GiB of memory to read and parse.
//!
//! The limits themselves are by file name ([`metadata_limit`]): generous
//! for the file lists (`paths.json` of the biggest real packages is some tens
//! of MB), small for the rest (a real `index.json` or `link.json` is a few
//! KB, an `about.json` rarely more than 100 KB).

use std::io::Read;
use std::path::Path;

/// The most bytes pkgr reads of a package's file list (`info/paths.json`, or
/// the legacy `info/files`, `info/has_prefix`, `info/no_link`,
/// `info/no_softlink`): ten times the biggest real ones.
pub const FILE_LIST_LIMIT: u64 = 256 << 20;

/// The most bytes pkgr reads of any other metadata file of a package
/// (`info/index.json`, `info/link.json`, `info/about.json`,
/// `info/run_exports.json`, …): hundreds of times the biggest real ones.
pub const METADATA_LIMIT: u64 = 16 << 20;

/// The most bytes pkgr reads of the package file `relative` (a path in the
/// package, such as `info/paths.json`) when it is one of the metadata files
/// pkgr reads whole; `None` for any other file (pkgr streams those, or
/// never reads them).
pub fn metadata_limit(relative: &Path) -> Option<u64> {
    const FILE_LISTS: [&str; 5] = [
        "info/paths.json",
        "info/files",
        "info/has_prefix",
        "info/no_link",
        "info/no_softlink",
    ];
    const METADATA: [&str; 4] = [
        "info/index.json",
        "info/link.json",
        "info/about.json",
        "info/run_exports.json",
    ];
    if FILE_LISTS.iter().any(|list| relative == Path::new(list)) {
        Some(FILE_LIST_LIMIT)
    } else if METADATA.iter().any(|file| relative == Path::new(file)) {
        Some(METADATA_LIMIT)
    } else {
        None
    }
}

/// The error for a file of more than `limit` bytes: kind
/// [`std::io::ErrorKind::FileTooLarge`], naming `what` and the limit.
pub fn too_large(what: &str, limit: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::FileTooLarge,
        format!(
            "{what} is larger than {} MiB, the most pkgr reads of it (not a package pkgr can use: a broken or hostile build)",
            limit >> 20
        ),
    )
}

/// Reads the file at `path` whole as UTF-8, unless it holds more than
/// `limit` bytes: then [`too_large`] naming it, before reading any of it
/// (its size is checked on the open file, and the read stops after `limit`
/// bytes whatever the size said). Other errors name the file (`fs-err`).
pub fn read_to_string_at_most(path: &Path, limit: u64) -> std::io::Result<String> {
    let file = fs_err::File::open(path)?;
    let size = file.metadata()?.len();
    let shown = || path.display().to_string();
    if size > limit {
        return Err(too_large(&shown(), limit));
    }
    let mut text = String::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        // It grew since it was measured.
        return Err(too_large(&shown(), limit));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_up_to_the_limit_and_no_more() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        fs_err::write(&path, "{}").unwrap();
        assert_eq!(read_to_string_at_most(&path, 2).unwrap(), "{}");
        let err = read_to_string_at_most(&path, 1).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::FileTooLarge);
        assert!(err.to_string().contains("index.json"), "{err}");
        let missing = read_to_string_at_most(&dir.path().join("nope"), 1).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn file_lists_get_the_bigger_limit() {
        let limit = |p: &str| metadata_limit(Path::new(p));
        assert_eq!(limit("info/paths.json"), Some(FILE_LIST_LIMIT));
        assert_eq!(limit("info/files"), Some(FILE_LIST_LIMIT));
        assert_eq!(limit("info/index.json"), Some(METADATA_LIMIT));
        assert_eq!(limit("info/test/data.bin"), None);
        assert_eq!(limit("lib/index.json"), None);
    }
}
