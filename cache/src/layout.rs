//! [`Layout`]: every name in a cache root, in one place (the crate docs'
//! "Layout" shows the tree).

use std::path::{Path, PathBuf};

use crate::ArchiveFormat;

/// The names in a cache root, and the paths they make below it:
///
/// ```text
/// <root>/CACHEDIR.TAG                          Layout::cachedir_tag
/// <root>/pkgs/                                 Layout::pkgs
/// <root>/pkgs/<key>/                           Layout::entry_dir
/// <root>/pkgs/<key>/.pkgr-entry.json           Layout::entry_marker
/// <root>/pkgs/<key>.conda | <key>.tar.bz2      Layout::archive
/// <root>/pkgs/.locks/<key>.lock                Layout::entry_lock
/// <root>/pkgs/.old-*                           Layout::SET_ASIDE_PREFIX
/// <root>/repodata/                             Layout::repodata
/// <root>/repodata/shards/                      Layout::shards
/// <root>/tmp/proc-<pid>-<nonce>/ (+ .lock)     Layout::tmp, Layout::session_name
/// <root>/pyc/<key>/                            Layout::compiled
/// ```
///
/// It knows names only: it opens nothing and checks nothing. A writable
/// cache reaches `pkgs/`, `repodata/`, `tmp/` and `pyc/` through the
/// directory handles it opened once (see "Trust" in the crate docs), so
/// code that writes joins the *names* given here (the `*_name` functions
/// and the constants) to those held directories; the paths below
/// [`Self::root`] are for messages, for reading a read-only cache or layer,
/// and for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout<'a> {
    root: &'a Path,
}

impl<'a> Layout<'a> {
    /// The downloaded archives, the extracted entries and their locks.
    pub const PKGS: &'static str = "pkgs";
    /// The entries' lock files, in `pkgs/`.
    pub const ENTRY_LOCKS: &'static str = ".locks";
    /// Cached repodata (`<hash>.json`, `.info.json`, `.index`, `.lock`).
    pub const REPODATA: &'static str = "repodata";
    /// Repodata shards (`<sha256>.msgpack.zst`), in `repodata/`.
    pub const SHARDS: &'static str = "shards";
    /// The processes' temp directories (and their lock files).
    pub const TMP: &'static str = "tmp";
    /// Byte-compiled modules of the entries ([`crate::compiled`]).
    pub const PYC: &'static str = "pyc";
    /// The cache directory tag (<https://bford.info/cachedir/>).
    pub const CACHEDIR_TAG: &'static str = "CACHEDIR.TAG";
    /// The completion marker inside an extracted entry, written last.
    pub const ENTRY_MARKER: &'static str = crate::ENTRY_MARKER;
    /// What the names of entries (and compiled modules) set aside in
    /// `pkgs/` (and `pyc/`) start with.
    pub const SET_ASIDE_PREFIX: &'static str = ".old-";
    /// What a lock file's name ends with ([`Self::lock_name`]).
    pub const LOCK_SUFFIX: &'static str = ".lock";
    /// What a session directory's name in `tmp/` starts with.
    pub const SESSION_PREFIX: &'static str = "proc-";

    /// The layout of the cache (or read-only layer) at `root`.
    pub fn new(root: &'a Path) -> Self {
        Self { root }
    }

    /// The cache root.
    pub fn root(&self) -> &'a Path {
        self.root
    }

    /// `<root>/CACHEDIR.TAG`.
    pub fn cachedir_tag(&self) -> PathBuf {
        self.root.join(Self::CACHEDIR_TAG)
    }

    /// `<root>/pkgs`.
    pub fn pkgs(&self) -> PathBuf {
        self.root.join(Self::PKGS)
    }

    /// `<root>/pkgs/<key>`: the extracted entry.
    pub fn entry_dir(&self, key: &str) -> PathBuf {
        self.pkgs().join(key)
    }

    /// `<root>/pkgs/<key>/.pkgr-entry.json`: the entry's completion marker.
    pub fn entry_marker(&self, key: &str) -> PathBuf {
        self.entry_dir(key).join(Self::ENTRY_MARKER)
    }

    /// `<root>/pkgs/<key>.conda` (or `.tar.bz2`): the entry's verified archive.
    pub fn archive(&self, key: &str, format: ArchiveFormat) -> PathBuf {
        self.pkgs().join(Self::archive_name(key, format))
    }

    /// `<root>/pkgs/.locks`.
    pub fn entry_locks(&self) -> PathBuf {
        self.pkgs().join(Self::ENTRY_LOCKS)
    }

    /// `<root>/pkgs/.locks/<key>.lock`: the entry's lock file.
    pub fn entry_lock(&self, key: &str) -> PathBuf {
        self.entry_locks().join(Self::lock_name(key))
    }

    /// `<root>/repodata`.
    pub fn repodata(&self) -> PathBuf {
        self.root.join(Self::REPODATA)
    }

    /// `<root>/repodata/shards`.
    pub fn shards(&self) -> PathBuf {
        self.repodata().join(Self::SHARDS)
    }

    /// `<root>/tmp`.
    pub fn tmp(&self) -> PathBuf {
        self.root.join(Self::TMP)
    }

    /// `<root>/pyc`.
    pub fn pyc(&self) -> PathBuf {
        self.root.join(Self::PYC)
    }

    /// `<root>/pyc/<key>`: the compiled modules of the entry `key`, one
    /// directory per python tag in it.
    pub fn compiled(&self, key: &str) -> PathBuf {
        self.pyc().join(key)
    }

    /// `<stem>.lock`: the lock file of `stem` in the directory that holds
    /// both (an entry's in `pkgs/.locks/`, a session's in `tmp/`, cached
    /// repodata's in `repodata/`).
    pub fn lock_name(stem: &str) -> String {
        format!("{stem}{}", Self::LOCK_SUFFIX)
    }

    /// `<key>.conda` or `<key>.tar.bz2`: the name of an entry's archive in
    /// `pkgs/`.
    pub fn archive_name(key: &str, format: ArchiveFormat) -> String {
        format!("{key}{}", format.extension())
    }

    /// The entry key a name in `pkgs/` belongs to: an archive's name
    /// without its extension, else the name (an entry directory).
    pub fn key_of(name: &str) -> &str {
        ArchiveFormat::ALL
            .iter()
            .find_map(|format| name.strip_suffix(format.extension()))
            .unwrap_or(name)
    }

    /// `proc-<pid>-<nonce>`: the name of a process's session directory in
    /// `tmp/` (its lock file is [`Self::lock_name`] of it).
    pub fn session_name(pid: u32, nonce: u32) -> String {
        format!("{}{pid}-{nonce:08x}", Self::SESSION_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_documented_ones() {
        let layout = Layout::new(Path::new("/c"));
        assert_eq!(layout.entry_dir("k"), Path::new("/c/pkgs/k"));
        assert_eq!(
            layout.entry_marker("k"),
            Path::new("/c/pkgs/k/.pkgr-entry.json")
        );
        assert_eq!(
            layout.archive("k", ArchiveFormat::Conda),
            Path::new("/c/pkgs/k.conda")
        );
        assert_eq!(
            layout.archive("k", ArchiveFormat::TarBz2),
            Path::new("/c/pkgs/k.tar.bz2")
        );
        assert_eq!(layout.entry_lock("k"), Path::new("/c/pkgs/.locks/k.lock"));
        assert_eq!(layout.shards(), Path::new("/c/repodata/shards"));
        assert_eq!(layout.tmp(), Path::new("/c/tmp"));
        assert_eq!(layout.compiled("k"), Path::new("/c/pyc/k"));
        assert_eq!(layout.cachedir_tag(), Path::new("/c/CACHEDIR.TAG"));
        assert_eq!(Layout::key_of("k.tar.bz2"), "k");
        assert_eq!(Layout::key_of("k.conda"), "k");
        assert_eq!(Layout::key_of("k"), "k");
        assert_eq!(Layout::session_name(12, 0xbeef), "proc-12-0000beef");
    }
}
