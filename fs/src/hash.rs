//! A file's size and digests, read in one streaming pass (constant memory
//! whatever the file's size). The cache uses it to verify archives and
//! extracted files, the linker to record what it wrote, `pkgr index` to
//! describe an archive.

use std::path::Path;

use md5::Md5;
use sha2::{Digest, Sha256};

/// The size, sha256 and md5 of a file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileDigests {
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256.
    pub sha256: [u8; 32],
    /// Its MD5.
    pub md5: [u8; 16],
}

/// The size, sha256 and md5 of a local file, read in one streaming pass.
/// Errors name the file (`fs-err`).
pub fn hash_file(path: &Path) -> std::io::Result<FileDigests> {
    let mut file = fs_err::File::open(path)?;
    let mut sha256 = Sha256::new();
    let mut md5 = Md5::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = std::io::Read::read(&mut file, &mut buf)?;
        if n == 0 {
            break;
        }
        sha256.update(&buf[..n]);
        md5.update(&buf[..n]);
        size += n as u64;
    }
    Ok(FileDigests {
        size,
        sha256: sha256.finalize().into(),
        md5: md5.finalize().into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_of_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        fs_err::write(&path, b"payload").unwrap();
        let d = hash_file(&path).unwrap();
        assert_eq!(d.size, 7);
        assert_eq!(d.sha256, <[u8; 32]>::from(Sha256::digest(b"payload")));
        assert_eq!(d.md5, <[u8; 16]>::from(Md5::digest(b"payload")));
        let missing = hash_file(&dir.path().join("nope")).unwrap_err();
        assert!(missing.to_string().contains("nope"), "{missing}");
    }
}
