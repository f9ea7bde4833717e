//! Who may change what pkgr deletes, chmods and writes (see "Trust" in the
//! crate docs): the held directories of a writable cache ([`Dirs`]), the
//! checks of the root's owner and mode ([`check_root_trust`]), of its
//! locks' scope ([`check_lock_scope`]), and `CACHEDIR.TAG`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pkgr_fs::dir::Dir;

use crate::{filesystem, CacheError, Layout};

/// Who owns `path`: the user's name from `/etc/passwd`, else `uid N`.
pub(crate) fn owner_of(path: &Path) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(uid) = fs_err::symlink_metadata(path).map(|m| m.uid()) else {
            return String::from("another user");
        };
        user_name(uid)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        String::from("another user")
    }
}

/// The name of user `uid` from `/etc/passwd`, else `uid N`.
pub(crate) fn user_name(uid: u32) -> String {
    let passwd = fs_err::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let id = fields.nth(1)?;
            (id.parse::<u32>().ok()? == uid).then(|| name.to_owned())
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// Whether the cache root is group-writable (shared by a group of users).
pub(crate) fn is_group_shared(root: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs_err::metadata(root).is_ok_and(|m| m.permissions().mode() & 0o020 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = root;
        false
    }
}

/// The directories of a writable cache, opened once by
/// [`crate::PackageCache::open`] with `O_NOFOLLOW` (see "Trust" in the crate docs)
/// and held for the cache's life, and the paths that reach `pkgs/`,
/// `repodata/` and `pyc/` through those handles
/// ([`pkgr_fs::dir::Dir::anchored`]) for the path-based code that writes
/// below them.
#[derive(Debug)]
pub(crate) struct Dirs {
    /// The (canonical) root.
    pub(crate) root: Dir,
    pub(crate) pkgs: Dir,
    pub(crate) locks: Arc<Dir>,
    pub(crate) repodata: Arc<Dir>,
    pub(crate) shards: Dir,
    pub(crate) tmp: Arc<Dir>,
    pub(crate) pyc: Dir,
    pub(crate) pkgs_at: PathBuf,
    pub(crate) repodata_at: PathBuf,
    pub(crate) pyc_at: PathBuf,
}

impl Dirs {
    /// Makes (tolerantly) and opens the cache's directories below `root`.
    ///
    /// A cache root that is group-writable (`chmod 2775`, a group of users
    /// sharing it, `shared`): the directories pkgr makes in it get the same
    /// group write and setgid bits, so that every member can add entries,
    /// lock files, repodata and temp dirs (the files themselves stay
    /// writable by their owner only: they are hardlinked into
    /// environments), and `tmp/` the sticky bit too, so that no member can
    /// rename or remove another's session directory. Only a directory of
    /// this account is chmod'ed: one another member made is theirs to
    /// change (and, made a moment ago, may not have its group bits yet:
    /// then this fails with `NotWritable`/`PermissionDenied`, which the
    /// caller retries).
    ///
    /// Each must be a directory, not a symlink, and not writable by every
    /// user ([`CacheError::Untrusted`]).
    pub(crate) fn open(root: &Dir, shared: bool) -> Result<Self, CacheError> {
        let make = |parent: &Dir, name: &str, extra: u32| -> Result<Dir, CacheError> {
            let dir = parent.create_dir(name, 0o777).map_err(dir_error)?;
            if shared {
                let _ = dir.add_mode_if_ours(0o2070 | extra);
            }
            let owner = dir.owner().map_err(dir_error)?;
            if owner.mode & 0o002 != 0 {
                return Err(world_writable_error(dir.path(), owner.mode));
            }
            if shared && owner.mode & 0o020 == 0 {
                return Err(CacheError::NotWritable {
                    path: dir.path().to_path_buf(),
                    source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
                });
            }
            Ok(dir)
        };
        let pkgs = make(root, Layout::PKGS, 0)?;
        let locks = make(&pkgs, Layout::ENTRY_LOCKS, 0)?;
        let repodata = make(root, Layout::REPODATA, 0)?;
        let shards = make(&repodata, Layout::SHARDS, 0)?;
        let tmp = make(root, Layout::TMP, 0o1000)?;
        let pyc = make(root, Layout::PYC, 0)?;
        Ok(Self {
            root: root.try_clone().map_err(dir_error)?,
            pkgs_at: pkgs.anchored(),
            repodata_at: repodata.anchored(),
            pyc_at: pyc.anchored(),
            pkgs,
            locks: Arc::new(locks),
            repodata: Arc::new(repodata),
            shards,
            tmp: Arc::new(tmp),
            pyc,
        })
    }
}

/// A [`pkgr_fs::dir::DirError`] as a cache error: a directory this account
/// cannot make or open is [`CacheError::NotWritable`] (a read-only
/// filesystem among them, which [`crate::PackageCache::open`] recognizes), a
/// symlink is itself.
pub(crate) fn dir_error(e: pkgr_fs::dir::DirError) -> CacheError {
    match e {
        pkgr_fs::dir::DirError::Io { path, source, .. }
            if matches!(
                source.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            CacheError::NotWritable { path, source }
        }
        other => CacheError::Dir(other),
    }
}

fn world_writable_error(path: &Path, mode: u32) -> CacheError {
    CacheError::Untrusted {
        path: path.to_path_buf(),
        problem: format!(
            "it is writable by every user (mode {mode:o}), so anyone could replace what pkgr runs or make it delete files"
        ),
        fix: format!(
            "run `chmod o-w {}` (to share a cache, use a group: chgrp GROUP, chmod 2775), or use a cache of your own (--cache-dir or PKGR_CACHE_DIR)",
            path.display()
        ),
    }
}

/// Whom a cache root must belong to (like ssh's `StrictModes`), checked on
/// the open handle (`fstat`), so that nobody this account does not trust
/// can rename or replace what is in it:
/// - it is not writable by every user (`o+w`, sticky or not);
/// - it belongs to this account, or to root (who can change this
///   account's files anyway), or it is shared with a group this account
///   is in (group-writable, and its group is this process's effective or
///   a supplementary group).
///
/// The same holds for root (uid 0): a cache another account owns is used
/// by root only when it is shared with a group root is in, since root's
/// `clean` or `chmod` in a directory someone else controls is exactly the
/// attack this prevents.
pub(crate) fn check_root_trust(root: &Dir) -> Result<(), CacheError> {
    let owner = root.owner().map_err(dir_error)?;
    if owner.mode & 0o002 != 0 {
        return Err(world_writable_error(root.path(), owner.mode));
    }
    let me = pkgr_fs::dir::euid();
    if owner.uid == me || owner.uid == 0 {
        return Ok(());
    }
    if owner.mode & 0o020 != 0 && pkgr_fs::dir::in_group(owner.gid) {
        return Ok(());
    }
    let who = user_name(owner.uid);
    Err(CacheError::Untrusted {
        path: root.path().to_path_buf(),
        problem: if owner.mode & 0o020 != 0 {
            format!(
                "it belongs to {who} and is shared with group {}, which this account is not in",
                owner.gid
            )
        } else {
            format!("it belongs to {who}, who does not share it with a group of this account")
        },
        fix: String::from(
            "use a cache of your own (--cache-dir or PKGR_CACHE_DIR), or have its owner share it with a group you are in (chgrp GROUP; chmod 2775)",
        ),
    })
}

/// Refuses a cache on a filesystem whose locks only this host sees (see
/// [`filesystem`]), unless `PKGR_CACHE_LOCKS=local` says only this host
/// uses the cache.
pub(crate) fn check_lock_scope(root: &Path) -> Result<(), CacheError> {
    let Some((mount, filesystem::LockScope::ThisHostOnly(why))) = filesystem::lock_scope_of(root)
    else {
        return Ok(());
    };
    if std::env::var("PKGR_CACHE_LOCKS").is_ok_and(|v| v == "local") {
        tracing::info!(root = %root.display(), %why, "locks are local to this host (PKGR_CACHE_LOCKS=local)");
        return Ok(());
    }
    Err(CacheError::LocksNotShared {
        path: root.to_path_buf(),
        mount_point: mount.mount_point,
        why,
    })
}

/// Writes `CACHEDIR.TAG` once, in the held root (`O_EXCL` makes concurrent
/// openers harmless, `O_NOFOLLOW` a planted symlink too: it is left alone).
pub(crate) fn write_cachedir_tag(root: &Dir) -> Result<(), CacheError> {
    use rustix::fs::{Mode, OFlags};
    let path = Layout::new(root.path()).cachedir_tag();
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat(root, Layout::CACHEDIR_TAG, flags, Mode::from_raw_mode(0o644)) {
        // raw std::fs: a `File` over the descriptor opened in the held root.
        Ok(fd) => std::io::Write::write_all(
            &mut std::fs::File::from(fd),
            b"Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by pkgr.\n",
        )
        .map_err(|source| CacheError::NotWritable {
            path: path.clone(),
            source,
        }),
        Err(rustix::io::Errno::EXIST) => Ok(()),
        Err(errno) => Err(CacheError::NotWritable {
            path,
            source: errno.into(),
        }),
    }
}
