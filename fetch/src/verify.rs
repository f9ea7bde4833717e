//! What a download must be ([`Expected`]), what it turned out to be
//! ([`Downloaded`]), and the temp file that hashes the bytes as they are
//! written and is renamed into place only when they match.

use std::io::Write;
use std::path::{Path, PathBuf};

use md5::Md5;
use pkgr_fs::FileDigests;
use sha2::{Digest, Sha256};

use crate::FetchError;

/// What a download is expected to be. Every field that is `Some` is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// Exact size in bytes.
    pub size: Option<u64>,
    /// SHA-256 of the content.
    pub sha256: Option<[u8; 32]>,
    /// MD5 of the content (used when that is all an index has).
    pub md5: Option<[u8; 16]>,
}

/// A completed, verified download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Where the file now is.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256.
    pub sha256: [u8; 32],
    /// Its MD5.
    pub md5: [u8; 16],
}

/// A temp file that hashes what is written to it and is renamed into place only
/// when the result matches what was expected. Dropping it deletes the temp file.
pub(crate) struct VerifyingSink {
    file: tempfile::NamedTempFile,
    sha256: Sha256,
    md5: Md5,
    /// How many bytes were written so far.
    pub(crate) size: u64,
    url: String,
}

impl VerifyingSink {
    pub(crate) fn create(temp_dir: &Path, url: &str) -> Result<Self, FetchError> {
        let file = tempfile::Builder::new()
            .prefix(&format!("dl-{}-", std::process::id()))
            .suffix(".part")
            .tempfile_in(temp_dir)
            .map_err(|e| FetchError::Io {
                context: format!("could not create a temp file in {}", temp_dir.display()),
                source: e,
            })?;
        Ok(Self {
            file,
            sha256: Sha256::new(),
            md5: Md5::new(),
            size: 0,
            url: url.to_owned(),
        })
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<(), FetchError> {
        self.sha256.update(bytes);
        self.md5.update(bytes);
        self.size += bytes.len() as u64;
        self.file.write_all(bytes).map_err(|e| FetchError::Io {
            context: format!(
                "could not write the download of {} to {}",
                self.url,
                self.file.path().display()
            ),
            source: e,
        })
    }

    pub(crate) fn finish(self, dest: &Path, expected: &Expected) -> Result<Downloaded, FetchError> {
        let sha256: [u8; 32] = self.sha256.finalize().into();
        let md5: [u8; 16] = self.md5.finalize().into();
        let mismatch = |what, expected: String, actual: String| FetchError::Mismatch {
            url: self.url.clone(),
            what,
            expected,
            actual,
        };
        if let Some(size) = expected.size {
            if size != self.size {
                return Err(mismatch(
                    "size",
                    format!("{size} bytes"),
                    format!("{} bytes", self.size),
                ));
            }
        }
        if let Some(want) = expected.sha256 {
            if want != sha256 {
                return Err(mismatch("sha256", hex::encode(want), hex::encode(sha256)));
            }
        } else if let Some(want) = expected.md5 {
            if want != md5 {
                return Err(mismatch("md5", hex::encode(want), hex::encode(md5)));
            }
        }
        let file = self.file;
        // Readable by everyone who shares the cache (a temp file is 0600);
        // writable by nobody but its owner.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = file
                .as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644));
        }
        file.as_file().sync_all().map_err(|e| FetchError::Io {
            context: format!("could not flush {}", file.path().display()),
            source: e,
        })?;
        file.persist(dest).map_err(|e| FetchError::Io {
            context: format!(
                "could not move the download into place at {}",
                dest.display()
            ),
            source: e.error,
        })?;
        Ok(Downloaded {
            path: dest.to_path_buf(),
            size: self.size,
            sha256,
            md5,
        })
    }
}

impl Expected {
    /// Whether a file with these digests is what was expected (sha256 when
    /// known, else md5).
    pub fn matches(&self, file: &FileDigests) -> bool {
        self.size.is_none_or(|s| s == file.size)
            && self.sha256.is_none_or(|s| s == file.sha256)
            && (self.sha256.is_some() || self.md5.is_none_or(|m| m == file.md5))
    }
}
