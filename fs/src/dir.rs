//! Directory handles that never follow a symlink, for the directories of a
//! cache that other accounts can write to.
//!
//! In a group-shared cache (the root is `chmod 2775`) every member can
//! rename `tmp/`, `pyc/` or `repodata/shards/` and put a symlink to a
//! directory of another user in its place. Code that sweeps, cleans or
//! chmods *by path* then sweeps, cleans or chmods the victim's directory.
//! Below a [`Dir`], pkgr opens, creates, lists, renames, chmods and removes
//! only relative to an open directory (`openat`, `mkdirat`, `unlinkat`,
//! `renameat`, `fchmod`) with `O_NOFOLLOW`: a symlink where a directory
//! should be is an error that names it ([`DirError::Symlink`]), never
//! followed, and a recursive removal unlinks a symlink it meets instead of
//! descending into it.
//!
//! Unix only (the cache's other platforms have no group-shared caches).
//!
//! raw fds (rustix), not `std::fs`/`fs_err`: everything here is relative to
//! a held descriptor, which no path-based API can express.

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

/// Why a directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// A symlink where pkgr expects a directory of its own.
    #[error(
        "{} is a symbolic link (to {target}), where pkgr expects a directory; pkgr never follows a symlink inside its cache. Someone who can write to {} replaced it: remove the link (`rm {}`) and check who else can write there",
        path.display(),
        path.parent().unwrap_or(path).display(),
        path.display()
    )]
    Symlink {
        /// The link.
        path: PathBuf,
        /// What it points to.
        target: String,
    },
    /// Something that is not a directory where a directory must be.
    #[error("{} is not a directory (pkgr expects one there; move it away)", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// Any other failure, with the path it concerns.
    #[error("{action} {}", path.display())]
    Io {
        /// What was done (`opening`, `creating`, ...).
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl DirError {
    /// The OS error kind behind this error (`PermissionDenied`, `NotFound`,
    /// ...); `Other` for a symlink or a non-directory.
    pub fn kind(&self) -> std::io::ErrorKind {
        match self {
            Self::Io { source, .. } => source.kind(),
            _ => std::io::ErrorKind::Other,
        }
    }
}

/// An open directory (`O_DIRECTORY | O_CLOEXEC`), with the path it was
/// opened at, for messages.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Who this process is (effective uid).
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Whether this process is in group `gid` (its effective group or one of
/// its supplementary groups).
pub fn in_group(gid: u32) -> bool {
    rustix::process::getegid().as_raw() == gid
        || rustix::process::getgroups().is_ok_and(|groups| groups.iter().any(|g| g.as_raw() == gid))
}

/// The type, owner and mode of an open file or directory (`fstat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// Owner uid.
    pub uid: u32,
    /// Group gid.
    pub gid: u32,
    /// Permission bits, with setuid/setgid/sticky (`0o7777`).
    pub mode: u32,
    /// Whether it is a directory.
    pub is_dir: bool,
    /// Whether it is a regular file.
    pub is_file: bool,
    /// Its hard link count.
    pub nlink: u64,
}

/// `fstat` of any open file, as an [`Owner`].
pub fn owner_of(fd: impl AsFd) -> std::io::Result<Owner> {
    let st = rustix::fs::fstat(fd)?;
    Ok(owner_from(&st))
}

// The widths of `st_mode` and `st_nlink` differ between platforms.
#[allow(clippy::useless_conversion)]
fn owner_from(st: &rustix::fs::Stat) -> Owner {
    let file_type = FileType::from_raw_mode(st.st_mode as _);
    Owner {
        uid: st.st_uid,
        gid: st.st_gid,
        mode: u32::from(st.st_mode) & 0o7777,
        is_dir: file_type == FileType::Directory,
        is_file: file_type == FileType::RegularFile,
        nlink: u64::from(st.st_nlink),
    }
}

impl Dir {
    /// Opens the directory at `path`, which must not itself be a symlink
    /// (canonicalize it first if the user may have given one).
    pub fn open(path: &Path) -> Result<Self, DirError> {
        match rustix::fs::open(path, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(Self {
                fd,
                path: path.to_path_buf(),
            }),
            Err(errno) => Err(not_a_dir(rustix::fs::CWD, path, path, errno, "opening")),
        }
    }

    /// The path it was opened at (for messages; never used to reach it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A second handle on the same directory.
    pub fn try_clone(&self) -> Result<Self, DirError> {
        Ok(Self {
            fd: self.fd.try_clone().map_err(|source| DirError::Io {
                action: "duplicating the handle of",
                path: self.path.clone(),
                source,
            })?,
            path: self.path.clone(),
        })
    }

    /// A path that reaches this very directory whatever is renamed or
    /// replaced on the way to it since it was opened: `/proc/self/fd/<fd>`
    /// on Linux (valid while this handle lives), else [`Self::path`]. For
    /// path-based code that writes below a directory others could swap.
    ///
    /// Messages should show [`real_path`] of such a path, which maps it
    /// back to the path the directory was opened at.
    pub fn anchored(&self) -> PathBuf {
        let proc = PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()));
        if cfg!(target_os = "linux") && proc.is_dir() {
            if let Ok(mut anchors) = ANCHORS.lock() {
                anchors.insert(self.fd.as_raw_fd(), self.path.clone());
            }
            proc
        } else {
            self.path.clone()
        }
    }

    /// Type, owner and mode of the directory itself.
    pub fn owner(&self) -> Result<Owner, DirError> {
        owner_of(&self.fd).map_err(|source| DirError::Io {
            action: "reading the owner of",
            path: self.path.clone(),
            source,
        })
    }

    /// Opens the subdirectory `name`, refusing a symlink
    /// ([`DirError::Symlink`]) or a non-directory.
    pub fn open_dir(&self, name: impl AsRef<Path>) -> Result<Self, DirError> {
        let name = name.as_ref();
        let path = self.path.join(name);
        match rustix::fs::openat(&self.fd, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Ok(Self { fd, path }),
            Err(errno) => Err(not_a_dir(&self.fd, name, &path, errno, "opening")),
        }
    }

    /// [`Self::open_dir`], `Ok(None)` when there is nothing at `name`.
    pub fn try_open_dir(&self, name: impl AsRef<Path>) -> Result<Option<Self>, DirError> {
        match self.open_dir(name) {
            Ok(dir) => Ok(Some(dir)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates the subdirectory `name` with `mode` (less the umask) unless
    /// it exists (another process may be making it at the same time), and
    /// opens it as [`Self::open_dir`] does.
    pub fn create_dir(&self, name: impl AsRef<Path>, mode: u32) -> Result<Self, DirError> {
        let name = name.as_ref();
        match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode as _)) {
            Ok(()) | Err(Errno::EXIST) => self.open_dir(name),
            Err(errno) => Err(DirError::Io {
                action: "creating",
                path: self.path.join(name),
                source: errno.into(),
            }),
        }
    }

    /// The names in the directory (without `.` and `..`), with their types
    /// as the directory lists them (a symlink is a symlink).
    pub fn entries(&self) -> Result<Vec<(OsString, FileType)>, DirError> {
        let io = |source: std::io::Error| DirError::Io {
            action: "reading",
            path: self.path.clone(),
            source,
        };
        let dir = rustix::fs::Dir::read_from(&self.fd).map_err(|e| io(e.into()))?;
        let mut names = Vec::new();
        for entry in dir {
            let entry = entry.map_err(|e| io(e.into()))?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            names.push((name.to_os_string(), entry.file_type()));
        }
        Ok(names)
    }

    /// Type, owner and mode of `name` itself (a symlink is not followed);
    /// `None` if there is nothing there.
    pub fn stat(&self, name: impl AsRef<Path>) -> std::io::Result<Option<(Owner, FileType)>> {
        match rustix::fs::statat(&self.fd, name.as_ref(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some((
                owner_from(&st),
                FileType::from_raw_mode(st.st_mode as _),
            ))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes `name`: a file or a symlink is unlinked (a symlink itself,
    /// never what it points to), a directory with everything in it, depth
    /// first, each level opened with `O_NOFOLLOW` relative to its parent.
    /// Nothing there is success. Stops at the first error (a file of
    /// another account in a directory we may not write, say).
    pub fn remove_all(&self, name: impl AsRef<Path>) -> std::io::Result<()> {
        let name = name.as_ref();
        let Some((_, file_type)) = self.stat(name)? else {
            return Ok(());
        };
        if file_type != FileType::Directory {
            return ignore_missing(rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()));
        }
        match rustix::fs::openat(&self.fd, name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => {
                let sub = Self {
                    fd,
                    path: self.path.join(name),
                };
                for (entry, _) in sub.entries().map_err(into_io)? {
                    sub.remove_all(&entry)?;
                }
            }
            // Replaced by something else since the stat: unlink that.
            Err(Errno::LOOP | Errno::NOTDIR) => {
                return ignore_missing(rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()));
            }
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        ignore_missing(rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR))
    }

    /// Unlinks the file (or symlink) `name`; nothing there is success.
    pub fn remove_file(&self, name: impl AsRef<Path>) -> std::io::Result<()> {
        ignore_missing(rustix::fs::unlinkat(
            &self.fd,
            name.as_ref(),
            AtFlags::empty(),
        ))
    }

    /// Renames `from` in this directory to `to` in `to_dir` (one
    /// `renameat`: neither name is resolved through a symlink on the way).
    pub fn rename(
        &self,
        from: impl AsRef<Path>,
        to_dir: &Self,
        to: impl AsRef<Path>,
    ) -> std::io::Result<()> {
        rustix::fs::renameat(&self.fd, from.as_ref(), &to_dir.fd, to.as_ref()).map_err(Into::into)
    }

    /// Adds the mode bits `bits` to this directory if this account owns it
    /// and they are missing; never to a directory of another account (whose
    /// it is to change). Returns whether it changed anything.
    pub fn add_mode_if_ours(&self, bits: u32) -> std::io::Result<bool> {
        let owner = owner_of(&self.fd)?;
        if !owner.is_dir || owner.uid != euid() || owner.mode & bits == bits {
            return Ok(false);
        }
        rustix::fs::fchmod(&self.fd, Mode::from_raw_mode((owner.mode | bits) as _))?;
        Ok(true)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if let Ok(mut anchors) = ANCHORS.lock() {
            if anchors.get(&self.fd.as_raw_fd()) == Some(&self.path) {
                anchors.remove(&self.fd.as_raw_fd());
            }
        }
    }
}

/// The directories [`Dir::anchored`] gave out paths for, by descriptor.
static ANCHORS: std::sync::Mutex<std::collections::BTreeMap<i32, PathBuf>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// `path` as a user should read it: a path below [`Dir::anchored`]'s
/// `/proc/self/fd/<fd>` of a live handle becomes the same path below the
/// directory's own path; any other path is returned as it is.
pub fn real_path(path: &Path) -> PathBuf {
    let Ok(rest) = path.strip_prefix("/proc/self/fd") else {
        return path.to_path_buf();
    };
    let mut components = rest.components();
    let fd = components
        .next()
        .and_then(|c| c.as_os_str().to_str())
        .and_then(|n| n.parse::<i32>().ok());
    let base = fd.and_then(|fd| ANCHORS.lock().ok()?.get(&fd).cloned());
    match base {
        Some(base) => base.join(components.as_path()),
        None => path.to_path_buf(),
    }
}

fn ignore_missing(result: rustix::io::Result<()>) -> std::io::Result<()> {
    match result {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn into_io(e: DirError) -> std::io::Error {
    match e {
        DirError::Io { source, .. } => source,
        other => std::io::Error::other(other.to_string()),
    }
}

/// The error for a failed directory open of `name` (relative to `at`):
/// `ELOOP`/`ENOTDIR` are told apart by looking at what is there.
fn not_a_dir(
    at: impl AsFd,
    name: &Path,
    path: &Path,
    errno: Errno,
    action: &'static str,
) -> DirError {
    if matches!(errno, Errno::LOOP | Errno::NOTDIR) {
        if let Ok(st) = rustix::fs::statat(&at, name, AtFlags::SYMLINK_NOFOLLOW) {
            if FileType::from_raw_mode(st.st_mode as _) == FileType::Symlink {
                let target = rustix::fs::readlinkat(&at, name, Vec::new())
                    .map(|t| String::from_utf8_lossy(t.to_bytes()).into_owned())
                    .unwrap_or_else(|_| String::from("?"));
                return DirError::Symlink {
                    path: path.to_path_buf(),
                    target,
                };
            }
            return DirError::NotADirectory {
                path: path.to_path_buf(),
            };
        }
    }
    DirError::Io {
        action,
        path: path.to_path_buf(),
        source: errno.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlinked_subdirectory_is_refused_by_name() {
        let root = tempfile::tempdir().unwrap();
        let victim = tempfile::tempdir().unwrap();
        fs_err::write(victim.path().join("precious"), "keep").unwrap();
        fs_err::os::unix::fs::symlink(victim.path(), root.path().join("tmp")).unwrap();
        let dir = Dir::open(root.path()).unwrap();
        let err = dir.open_dir("tmp").unwrap_err();
        assert!(matches!(err, DirError::Symlink { .. }), "{err}");
        assert!(
            err.to_string()
                .contains(&root.path().join("tmp").display().to_string()),
            "{err}"
        );
        let err = dir.create_dir("tmp", 0o755).unwrap_err();
        assert!(matches!(err, DirError::Symlink { .. }), "{err}");
        // Removing it removes the link, not what it points to.
        dir.remove_all("tmp").unwrap();
        assert!(victim.path().join("precious").is_file());
    }

    #[test]
    fn remove_all_never_descends_through_a_symlink() {
        let root = tempfile::tempdir().unwrap();
        let victim = tempfile::tempdir().unwrap();
        fs_err::write(victim.path().join("precious"), "keep").unwrap();
        let tree = root.path().join("a/b");
        fs_err::create_dir_all(&tree).unwrap();
        fs_err::write(tree.join("f"), "x").unwrap();
        fs_err::os::unix::fs::symlink(victim.path(), tree.join("link")).unwrap();
        let dir = Dir::open(root.path()).unwrap();
        dir.remove_all("a").unwrap();
        assert!(!root.path().join("a").exists());
        assert!(victim.path().join("precious").is_file());
        dir.remove_all("missing").unwrap();
    }

    #[test]
    fn created_listed_renamed_and_anchored() {
        let root = tempfile::tempdir().unwrap();
        let dir = Dir::open(root.path()).unwrap();
        let sub = dir.create_dir("sub", 0o755).unwrap();
        let again = dir.create_dir("sub", 0o755).unwrap();
        assert_eq!(sub.owner().unwrap(), again.owner().unwrap());
        let anchored = sub.anchored().join("f");
        fs_err::write(&anchored, "x").unwrap();
        if anchored.starts_with("/proc") {
            assert_eq!(real_path(&anchored), root.path().join("sub/f"));
        }
        let names: Vec<_> = sub.entries().unwrap().into_iter().map(|e| e.0).collect();
        assert_eq!(names, [OsString::from("f")]);
        sub.rename("f", &dir, "g").unwrap();
        assert!(root.path().join("g").is_file());
        assert!(sub.add_mode_if_ours(0o020).unwrap());
        assert!(!sub.add_mode_if_ours(0o020).unwrap());
    }
}
