//! OS file locks (fs4: `flock` on Unix, `LockFileEx` on Windows), as the
//! cache entries, the repodata files and the prefixes use them. The protocol
//! they implement (which lock, in what order, held for how long) is written
//! down once, in the crate docs of `pkgr_cache`; this module only knows how to
//! take and release one lock.
//!
//! The kernel drops a lock when its holder dies, so a `kill -9` never leaves a
//! stale lock behind. An exclusive holder writes its pid into the file so that
//! a waiting process can say whom it is waiting for. A cache lock file is
//! never deleted while pkgr runs; a prefix's may be (a failed `create`
//! removes the environment), which is what [`FileLock::is_still_at_path`] is
//! for.
//!
//! **A lock file is not trusted.** In a group-shared cache any member can
//! put anything at a lock file's name: a symlink to another user's
//! `~/.bashrc`, a hard link to it, a FIFO. So a lock file is opened with
//! `O_NOFOLLOW` (a symlink is refused, never followed) and `O_NONBLOCK` (a
//! FIFO cannot hang the open), relative to the held directory handle where
//! the caller has one ([`FileLock::try_acquire_in`]), and must then be a
//! regular file (`fstat`), else [`LockError::NotALockFile`]. Only a lock
//! file this account owns, with one link, is ever chmod'ed (made
//! group-writable) or truncated and rewritten with the holder's pid; a
//! member's lock file is locked as it is. And the pid written in a lock
//! file is only a claim: whom a waiter waits for is checked against
//! `/proc/locks` ([`Holder`]).
//!
//! **What `-vv` shows** (debug events, target `pkgr_fs::lock`): a lock that
//! is not free at once says when the wait started ("waiting for a lock"),
//! when it was acquired and how long that took (`waited_ms`), and when it
//! was released (`held_ms`); a wait given up says so too. A lock taken at
//! once (the warm path) costs no more than before: its acquisition and
//! release are trace events, with no clock read.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fs4::FileExt;

/// How long a process waits on a lock before it tells the user who holds it.
pub const WAIT_NOTICE_AFTER: Duration = Duration::from_secs(1);

/// How long a process waits for a lock before it gives up, unless
/// `PKGR_LOCK_TIMEOUT` (seconds) says otherwise: 5 minutes, as uv does. A
/// holder that keeps a lock longer is hung or doing something very large; the
/// waiter then fails with a message naming it instead of hanging for ever.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// The lock timeout of this process: `PKGR_LOCK_TIMEOUT` in seconds (fractions
/// allowed) if set and valid, else [`DEFAULT_TIMEOUT`].
pub fn default_timeout() -> Duration {
    std::env::var("PKGR_LOCK_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs_f64)
}

/// Shared (many readers) or exclusive (one writer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Many holders at once; excludes exclusive holders.
    Shared,
    /// One holder; excludes everyone else.
    Exclusive,
}

/// A held lock. Dropping it releases the lock (closing the file does).
#[derive(Debug)]
pub struct FileLock {
    file: std::fs::File,
    path: PathBuf,
    mode: LockMode,
    /// When it was acquired, if it had to be waited for (its release is
    /// then a debug event with how long it was held; see the module docs).
    acquired_after_waiting: Option<Instant>,
}

/// Milliseconds in `duration`, for the `waited_ms`/`held_ms` of events.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock file could not be opened or locked.
    #[error("could not lock {}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The filesystem refuses file locks (`ENOLCK`, `ENOTSUP`/`EOPNOTSUPP`,
    /// `ENOSYS`): NFSv3 mounted without a lock manager, some FUSE and
    /// network filesystems. Without locks the cache cannot be shared
    /// safely, so pkgr stops instead of going on unlocked.
    #[error(
        "the filesystem of {} does not support file locks ({source}); a shared pkgr cache needs them: put the cache on a local disk (--cache-dir or PKGR_CACHE_DIR), or on a network filesystem whose locks work across hosts (NFSv4; not NFSv3 mounted with nolock or local_lock)",
        path.display()
    )]
    Unsupported {
        /// The lock file.
        path: PathBuf,
        /// What the lock call said.
        #[source]
        source: std::io::Error,
    },
    /// The lock stayed taken for longer than the timeout.
    #[error(
        "gave up waiting for {what} after {} s: {holder} holds it (lock file {}); set PKGR_LOCK_TIMEOUT (seconds) to wait longer",
        waited.as_secs(),
        path.display()
    )]
    Timeout {
        /// What was waited for (a package, a URL, an environment).
        what: String,
        /// The lock file.
        path: PathBuf,
        /// Who holds it, as far as is known.
        holder: Holder,
        /// How long we waited.
        waited: Duration,
    },
    /// What is at the lock file's name is not a regular file (a symlink, a
    /// FIFO, a directory): someone who can write to its directory put it
    /// there. pkgr neither follows nor uses it.
    #[error(
        "the lock file {} is {what}, not a regular file; pkgr does not use it (someone who can write to {} put it there): remove it (`rm {}`) and check who else can write there",
        path.display(),
        path.parent().unwrap_or(path).display(),
        path.display()
    )]
    NotALockFile {
        /// The lock file.
        path: PathBuf,
        /// What it is (`a symbolic link`, `a FIFO`, ...).
        what: &'static str,
    },
}

/// Who holds a lock, as a waiter can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// A process `/proc/locks` shows holding the lock (whatever the lock
    /// file says).
    Process(u32),
    /// The pid written in the lock file, which could not be checked
    /// (`/proc/locks` unreadable, or it did not show the lock).
    AccordingToFile(u32),
    /// Nobody known.
    Unknown,
}

impl Holder {
    /// The holder's pid if `/proc/locks` confirmed it.
    pub fn verified_pid(self) -> Option<u32> {
        match self {
            Self::Process(pid) => Some(pid),
            _ => None,
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Process(pid) => write!(f, "process {pid}"),
            Self::AccordingToFile(pid) => write!(f, "process {pid} (according to the lock file)"),
            Self::Unknown => f.write_str("another process"),
        }
    }
}

/// What a lock file must be for pkgr to use it, and whether it is ours to
/// write: a regular file (else [`LockError::NotALockFile`]); ours when this
/// account owns it and it has one link (a hard link to another file of ours
/// must never be truncated).
#[cfg(unix)]
fn check_lock_file(file: &std::fs::File, path: &Path) -> Result<bool, LockError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = file
        .metadata()
        .map_err(|source| LockError::io(path, source))?;
    let file_type = meta.file_type();
    if !file_type.is_file() {
        let what = if file_type.is_dir() {
            "a directory"
        } else if file_type.is_fifo() {
            "a FIFO"
        } else if file_type.is_socket() {
            "a socket"
        } else if file_type.is_char_device() || file_type.is_block_device() {
            "a device"
        } else {
            "not a regular file"
        };
        return Err(LockError::NotALockFile {
            path: path.to_path_buf(),
            what,
        });
    }
    Ok(meta.uid() == crate::dir::euid() && meta.nlink() == 1)
}

/// Makes a lock file we own group-writable when its directory is
/// (`dir_shared`), for the next member. The caller checked it is ours.
#[cfg(unix)]
fn share_with_group(file: &std::fs::File, dir_shared: bool) {
    use std::os::unix::fs::PermissionsExt;
    if !dir_shared {
        return;
    }
    if let Ok(meta) = file.metadata() {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o060 != 0o060 {
            let _ = file.set_permissions(std::fs::Permissions::from_mode(mode | 0o060));
        }
    }
}

/// `ENOLCK`, `ENOSYS` and `EOPNOTSUPP`/`ENOTSUP` on Linux: "no locks here".
const NO_LOCKS_ERRNOS: [i32; 3] = [37, 38, 95];

impl LockError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A failed lock call: [`LockError::Unsupported`] when the filesystem
    /// has no locks, else [`LockError::Io`].
    fn locking(path: &Path, source: std::io::Error) -> Self {
        let unsupported = source.kind() == std::io::ErrorKind::Unsupported
            || (cfg!(target_os = "linux")
                && source
                    .raw_os_error()
                    .is_some_and(|e| NO_LOCKS_ERRNOS.contains(&e)));
        if unsupported {
            Self::Unsupported {
                path: path.to_path_buf(),
                source,
            }
        } else {
            Self::io(path, source)
        }
    }
}

impl FileLock {
    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this is a shared or exclusive lock.
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    /// Opens (creating) the lock file `name` in `dir` (the current directory
    /// when `None`; `path` is its full path, for messages), never following
    /// a symlink and never blocking on a FIFO; it must be a regular file
    /// (see the module docs). Another user's lock file in a shared cache may
    /// not be writable by us: `flock` works on a file opened read-only too,
    /// so that is the fallback (only the holder pid then goes unwritten). A
    /// new lock file of ours in a group-writable directory is made
    /// group-writable, for the next member. Returns the file and whether we
    /// may write our pid into it.
    #[cfg(unix)]
    fn open_in(
        dir: Option<&crate::dir::Dir>,
        name: &Path,
        path: &Path,
    ) -> Result<(std::fs::File, bool), LockError> {
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let open = |flags: OFlags| match dir {
            Some(dir) => rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(0o666)),
            None => rustix::fs::open(name, flags, Mode::from_raw_mode(0o666)),
        };
        let (fd, writable) = match open(flags | OFlags::RDWR | OFlags::CREATE) {
            Ok(fd) => (fd, true),
            Err(rustix::io::Errno::ACCESS | rustix::io::Errno::PERM) => (
                open(flags | OFlags::RDONLY).map_err(|e| Self::open_error(path, e))?,
                false,
            ),
            Err(e) => return Err(Self::open_error(path, e)),
        };
        // raw std::fs: a `File` over the descriptor opened relative to `dir`
        // (fs4 locks a `std::fs::File`).
        let file = std::fs::File::from(fd);
        let ours = check_lock_file(&file, path)? && writable;
        if ours {
            let dir_shared = match dir {
                Some(dir) => dir.owner().is_ok_and(|o| o.mode & 0o020 != 0),
                None => {
                    use std::os::unix::fs::PermissionsExt;
                    path.parent()
                        .and_then(|d| fs_err::metadata(d).ok())
                        .is_some_and(|m| m.permissions().mode() & 0o020 != 0)
                }
            };
            share_with_group(&file, dir_shared);
        }
        Ok((file, ours))
    }

    #[cfg(unix)]
    fn open_error(path: &Path, errno: rustix::io::Errno) -> LockError {
        if errno == rustix::io::Errno::LOOP {
            return LockError::NotALockFile {
                path: path.to_path_buf(),
                what: "a symbolic link",
            };
        }
        LockError::io(path, errno.into())
    }

    #[cfg(not(unix))]
    #[expect(
        clippy::disallowed_methods,
        reason = "fs4 locks a std::fs::File, and a LockError names the lock file itself"
    )]
    fn open_in(
        _dir: Option<&()>,
        name: &Path,
        _path: &Path,
    ) -> Result<(std::fs::File, bool), LockError> {
        let created = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(name);
        match created {
            Ok(file) => Ok((file, true)),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => std::fs::File::open(name)
                .map(|f| (f, false))
                .map_err(|source| LockError::io(name, source)),
            Err(source) => Err(LockError::io(name, source)),
        }
    }

    /// Takes the lock if it is free right now; `Ok(None)` if someone holds it.
    pub fn try_acquire(path: &Path, mode: LockMode) -> Result<Option<Self>, LockError> {
        let file = Self::open_in(None, path, path)?;
        Self::try_lock(file, path, mode)
    }

    /// [`Self::try_acquire`] of the lock file `name` in the held directory
    /// `dir`: what is at `dir`'s path now does not matter, and `name` is
    /// never followed if it is a symlink.
    #[cfg(unix)]
    pub fn try_acquire_in(
        dir: &crate::dir::Dir,
        name: &str,
        mode: LockMode,
    ) -> Result<Option<Self>, LockError> {
        let path = dir.path().join(name);
        let file = Self::open_in(Some(dir), Path::new(name), &path)?;
        Self::try_lock(file, &path, mode)
    }

    fn try_lock(
        (file, ours): (std::fs::File, bool),
        path: &Path,
        mode: LockMode,
    ) -> Result<Option<Self>, LockError> {
        let result = match mode {
            LockMode::Shared => FileExt::try_lock_shared(&file),
            LockMode::Exclusive => FileExt::try_lock(&file),
        };
        match result {
            Ok(()) => Ok(Some(Self::finish(file, ours, path, mode))),
            Err(fs4::TryLockError::WouldBlock) => {
                tracing::trace!(target: "pkgr_fs::lock", lock = %path.display(), ?mode, "lock busy");
                Ok(None)
            }
            Err(fs4::TryLockError::Error(source)) => Err(LockError::locking(path, source)),
        }
    }

    /// Blocks until the lock is held. Call this off the async runtime
    /// (`spawn_blocking`).
    pub fn acquire_blocking(path: &Path, mode: LockMode) -> Result<Self, LockError> {
        let file = Self::open_in(None, path, path)?;
        Self::lock(file, path, mode)
    }

    /// [`Self::acquire_blocking`] of the lock file `name` in the held
    /// directory `dir` (see [`Self::try_acquire_in`]).
    #[cfg(unix)]
    pub fn acquire_blocking_in(
        dir: &crate::dir::Dir,
        name: &str,
        mode: LockMode,
    ) -> Result<Self, LockError> {
        let path = dir.path().join(name);
        let file = Self::open_in(Some(dir), Path::new(name), &path)?;
        Self::lock(file, &path, mode)
    }

    fn lock(
        (file, ours): (std::fs::File, bool),
        path: &Path,
        mode: LockMode,
    ) -> Result<Self, LockError> {
        let result = match mode {
            LockMode::Shared => FileExt::lock_shared(&file),
            LockMode::Exclusive => FileExt::lock(&file),
        };
        result.map_err(|source| LockError::locking(path, source))?;
        Ok(Self::finish(file, ours, path, mode))
    }

    fn finish(mut file: std::fs::File, ours: bool, path: &Path, mode: LockMode) -> Self {
        // Only into a lock file of ours (see the module docs): another
        // member's is locked as it is.
        if mode == LockMode::Exclusive && ours {
            // Best effort: the pid is only used to tell waiters whom they wait for.
            let _ = file.set_len(0);
            let _ = file.seek(SeekFrom::Start(0));
            let _ = write!(file, "{}", std::process::id());
        }
        tracing::trace!(target: "pkgr_fs::lock", lock = %path.display(), ?mode, "lock acquired");
        Self {
            file,
            path: path.to_path_buf(),
            mode,
            acquired_after_waiting: None,
        }
    }

    /// Whether the lock file this lock is held on is still the file at its
    /// path (it was not deleted or replaced while we waited for it). Locks on
    /// files that can be removed (a prefix's) must check this after acquiring.
    pub fn is_still_at_path(&self) -> bool {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            match (self.file.metadata(), fs_err::metadata(&self.path)) {
                (Ok(held), Ok(now)) => held.dev() == now.dev() && held.ino() == now.ino(),
                _ => false,
            }
        }
        #[cfg(not(unix))]
        {
            self.path.exists()
        }
    }

    /// [`Self::is_still_at_path`] for a lock taken with
    /// [`Self::try_acquire_in`]: whether `name` in `dir` is still the file
    /// this lock is held on.
    #[cfg(unix)]
    // The widths of `st_dev` and `st_ino` differ between platforms.
    #[allow(clippy::useless_conversion)]
    pub fn is_still_in(&self, dir: &crate::dir::Dir, name: &str) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Ok(held) = self.file.metadata() else {
            return false;
        };
        rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|now| {
            u64::from(now.st_dev) == held.dev() && u64::from(now.st_ino) == held.ino()
        })
    }

    /// The pid last written into a lock file by an exclusive holder, if any
    /// (a claim: see [`holder`] for one checked against the kernel).
    pub fn holder_pid(path: &Path) -> Option<u32> {
        read_claimed_pid(path).map(|(pid, _)| pid)
    }
}

/// The pid written in the lock file at `path` (not following a symlink,
/// not blocking on a FIFO), with the file's device and inode.
fn read_claimed_pid(path: &Path) -> Option<(u32, Option<(u64, u64)>)> {
    let mut options = fs_err::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use fs_err::os::unix::fs::OpenOptionsExt;
        options.custom_flags(
            (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32,
        );
    }
    let file = options.open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    #[cfg(unix)]
    let id = {
        use std::os::unix::fs::MetadataExt;
        Some((meta.dev(), meta.ino()))
    };
    #[cfg(not(unix))]
    let id = None;
    let mut text = String::new();
    file.take(64).read_to_string(&mut text).ok()?;
    Some((text.trim().parse().ok()?, id))
}

/// Who holds the lock on the lock file at `path` (for a waiter that wants
/// it in `mode`): the pid written in the file is only a claim (a member of
/// a shared cache can write anything there), so it is checked against
/// `/proc/locks`, whose `FLOCK` lines name the process holding a lock with
/// the file's `major:minor:inode`. A claim the kernel contradicts gives the
/// process the kernel names; one that cannot be checked is said to be
/// "according to the lock file".
pub fn holder(path: &Path, mode: LockMode) -> Holder {
    let claimed = read_claimed_pid(path);
    let id = claimed.and_then(|(_, id)| id).or_else(|| {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            fs_err::symlink_metadata(path)
                .ok()
                .filter(std::fs::Metadata::is_file)
                .map(|m| (m.dev(), m.ino()))
        }
        #[cfg(not(unix))]
        None
    });
    let holders = id.and_then(|(dev, ino)| {
        let text = fs_err::read_to_string("/proc/locks").ok()?;
        Some(flock_holders(&text, dev, ino, mode))
    });
    let claimed = claimed.map(|(pid, _)| pid);
    match (holders, claimed) {
        (Some(pids), Some(pid)) if pids.contains(&pid) => Holder::Process(pid),
        (Some(pids), _) if !pids.is_empty() => Holder::Process(pids[0]),
        (_, Some(pid)) => Holder::AccordingToFile(pid),
        _ => Holder::Unknown,
    }
}

/// The pids `/proc/locks` (its text) shows holding a `flock` on the file
/// `dev`/`ino` that keeps a waiter in `mode` out: any holder for an
/// exclusive waiter, a `WRITE` holder for a shared one. Lines of waiters
/// (`->`) and pids of other pid namespaces (`0`, `-1`) are skipped.
fn flock_holders(text: &str, dev: u64, ino: u64, mode: LockMode) -> Vec<u32> {
    #[cfg(unix)]
    let wanted = format!(
        "{:02x}:{:02x}:{ino}",
        rustix::fs::major(dev),
        rustix::fs::minor(dev)
    );
    #[cfg(not(unix))]
    let wanted = format!("{dev}:{ino}");
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            let kind = fields.next()?;
            if kind != "FLOCK" {
                return None;
            }
            let _advisory = fields.next()?;
            let access = fields.next()?;
            let pid = fields.next()?.parse::<u32>().ok().filter(|p| *p > 0)?;
            let file = fields.next()?;
            (file == wanted && (mode == LockMode::Exclusive || access == "WRITE")).then_some(pid)
        })
        .collect()
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
        let (lock, mode) = (self.path.display(), self.mode);
        match self.acquired_after_waiting {
            Some(acquired) => {
                let held_ms = millis(acquired.elapsed());
                tracing::debug!(target: "pkgr_fs::lock", %lock, ?mode, held_ms, "lock released");
            }
            None => tracing::trace!(target: "pkgr_fs::lock", %lock, ?mode, "lock released"),
        }
    }
}

/// Takes a lock without blocking the async runtime, waiting at most
/// `timeout`. If the lock is not free within [`WAIT_NOTICE_AFTER`], `on_wait`
/// is called once with the pid of the holder, when `/proc/locks` confirms
/// it ([`holder`]; `None` otherwise: a pid only a lock file claims is not
/// passed on as fact).
///
/// The wait itself is one blocking `flock` on a thread of the blocking pool
/// (the kernel wakes it when the lock is free: no polling). If the timeout
/// passes, or the returned future is dropped, that thread is abandoned: when
/// it gets the lock later it drops it at once, having done no work under it.
/// `what` names the thing waited for in the timeout error.
pub async fn acquire(
    path: &Path,
    mode: LockMode,
    what: &str,
    timeout: Duration,
    on_wait: impl FnOnce(Option<u32>),
) -> Result<FileLock, LockError> {
    if let Some(lock) = FileLock::try_acquire(path, mode)? {
        return Ok(lock);
    }
    let owned = path.to_path_buf();
    let task = tokio::task::spawn_blocking(move || FileLock::acquire_blocking(&owned, mode));
    wait_for(task, path, path, mode, what, timeout, on_wait).await
}

/// [`acquire`] of the lock file `name` in the held directory `dir` (see
/// [`FileLock::try_acquire_in`]).
#[cfg(unix)]
pub async fn acquire_in(
    dir: &std::sync::Arc<crate::dir::Dir>,
    name: &str,
    mode: LockMode,
    what: &str,
    timeout: Duration,
    on_wait: impl FnOnce(Option<u32>),
) -> Result<FileLock, LockError> {
    if let Some(lock) = FileLock::try_acquire_in(dir, name, mode)? {
        return Ok(lock);
    }
    let (owned, name_owned) = (dir.clone(), name.to_owned());
    let task = tokio::task::spawn_blocking(move || {
        FileLock::acquire_blocking_in(&owned, &name_owned, mode)
    });
    let path = dir.path().join(name);
    let anchored = dir.anchored().join(name);
    wait_for(task, &path, &anchored, mode, what, timeout, on_wait).await
}

/// The wait of [`acquire`]: `task` blocks in `flock` on the lock file
/// `path` (`read_at` reaches the same file, to read who holds it). Says
/// when the wait starts and ends, and how long it took (see the module
/// docs).
async fn wait_for(
    mut task: tokio::task::JoinHandle<Result<FileLock, LockError>>,
    path: &Path,
    read_at: &Path,
    mode: LockMode,
    what: &str,
    timeout: Duration,
    on_wait: impl FnOnce(Option<u32>),
) -> Result<FileLock, LockError> {
    let started = Instant::now();
    let lock = path.display();
    tracing::debug!(target: "pkgr_fs::lock", %lock, ?mode, what, "waiting for a lock");
    let notice = WAIT_NOTICE_AFTER.min(timeout);
    let joined = match tokio::time::timeout(notice, &mut task).await {
        Ok(joined) => joined,
        Err(_elapsed) => {
            on_wait(holder(read_at, mode).verified_pid());
            match tokio::time::timeout(timeout - notice, &mut task).await {
                Ok(joined) => joined,
                Err(_elapsed) => {
                    let waited_ms = millis(started.elapsed());
                    tracing::debug!(target: "pkgr_fs::lock", %lock, ?mode, what, waited_ms, "gave up waiting for a lock");
                    return Err(LockError::Timeout {
                        what: what.to_owned(),
                        path: path.to_path_buf(),
                        holder: holder(read_at, mode),
                        waited: timeout,
                    });
                }
            }
        }
    };
    let mut held = joined.map_err(|e| LockError::io(path, std::io::Error::other(e)))??;
    let waited_ms = millis(started.elapsed());
    tracing::debug!(target: "pkgr_fs::lock", %lock, ?mode, what, waited_ms, "lock acquired after waiting");
    held.acquired_after_waiting = Some(Instant::now());
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filesystems_without_locks_get_an_actionable_message() {
        let path = Path::new("/mnt/nfs/cache/pkgs/.locks/x.lock");
        for errno in NO_LOCKS_ERRNOS {
            let err = LockError::locking(path, std::io::Error::from_raw_os_error(errno));
            if cfg!(target_os = "linux") {
                assert!(
                    matches!(err, LockError::Unsupported { .. }),
                    "{errno}: {err}"
                );
                let text = err.to_string();
                assert!(
                    text.contains("/mnt/nfs/cache") && text.contains("local disk"),
                    "{text}"
                );
            }
        }
        let other = LockError::locking(path, std::io::Error::from_raw_os_error(13));
        assert!(matches!(other, LockError::Io { .. }));
    }

    #[test]
    fn exclusive_excludes_and_records_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = FileLock::try_acquire(&path, LockMode::Exclusive)
            .unwrap()
            .unwrap();
        assert!(FileLock::try_acquire(&path, LockMode::Shared)
            .unwrap()
            .is_none());
        assert_eq!(FileLock::holder_pid(&path), Some(std::process::id()));
        drop(held);
        let a = FileLock::try_acquire(&path, LockMode::Shared).unwrap();
        let b = FileLock::try_acquire(&path, LockMode::Shared).unwrap();
        assert!(a.is_some() && b.is_some());
        assert!(FileLock::try_acquire(&path, LockMode::Exclusive)
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn waiting_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = FileLock::try_acquire(&path, LockMode::Exclusive)
            .unwrap()
            .unwrap();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(1500));
            drop(held);
        });
        let mut reported = None;
        let lock = acquire(&path, LockMode::Shared, "x", DEFAULT_TIMEOUT, |pid| {
            reported = Some(pid);
        })
        .await
        .unwrap();
        assert_eq!(reported, Some(Some(std::process::id())));
        assert_eq!(lock.mode(), LockMode::Shared);
        releaser.join().unwrap();
    }

    #[tokio::test]
    async fn waiting_times_out_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let _held = FileLock::try_acquire(&path, LockMode::Exclusive)
            .unwrap()
            .unwrap();
        let started = std::time::Instant::now();
        let err = acquire(
            &path,
            LockMode::Shared,
            "zlib-1.3.1-0.conda",
            Duration::from_millis(300),
            |_| {},
        )
        .await
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        let text = err.to_string();
        assert!(text.contains("zlib-1.3.1-0.conda"), "{text}");
        assert!(
            text.contains(&format!("process {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains("PKGR_LOCK_TIMEOUT"), "{text}");
    }

    #[test]
    #[cfg(unix)]
    fn a_symlink_or_fifo_is_not_a_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("bashrc");
        fs_err::write(&victim, "echo hi\n").unwrap();
        let link = dir.path().join("x.lock");
        fs_err::os::unix::fs::symlink(&victim, &link).unwrap();
        let err = FileLock::try_acquire(&link, LockMode::Exclusive).unwrap_err();
        assert!(matches!(err, LockError::NotALockFile { .. }), "{err}");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(fs_err::read_to_string(&victim).unwrap(), "echo hi\n");
        let held = crate::dir::Dir::open(dir.path()).unwrap();
        assert!(FileLock::try_acquire_in(&held, "x.lock", LockMode::Shared).is_err());

        let fifo = dir.path().join("f.lock");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let err = FileLock::acquire_blocking(&fifo, LockMode::Shared).unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
    }

    #[test]
    #[cfg(unix)]
    fn another_accounts_lock_file_is_locked_but_not_written() {
        if crate::dir::euid() != 0 {
            eprintln!("skipped: needs root to give a file to another account");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        fs_err::write(&path, "theirs").unwrap();
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        let held = FileLock::try_acquire(&path, LockMode::Exclusive)
            .unwrap()
            .unwrap();
        assert_eq!(fs_err::read_to_string(&path).unwrap(), "theirs");
        drop(held);
        // Nor a hard link to a file of ours.
        let ours = dir.path().join("ours");
        fs_err::write(&ours, "keep").unwrap();
        let linked = dir.path().join("y.lock");
        fs_err::hard_link(&ours, &linked).unwrap();
        let _held = FileLock::try_acquire(&linked, LockMode::Exclusive)
            .unwrap()
            .unwrap();
        assert_eq!(fs_err::read_to_string(&ours).unwrap(), "keep");
    }

    #[test]
    #[cfg(unix)]
    fn the_holder_is_checked_against_proc_locks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let _held = FileLock::try_acquire(&path, LockMode::Exclusive)
            .unwrap()
            .unwrap();
        fs_err::write(&path, "999999").unwrap();
        let found = holder(&path, LockMode::Shared);
        if fs_err::read_to_string("/proc/locks").is_ok() {
            assert_eq!(found, Holder::Process(std::process::id()));
        } else {
            assert_eq!(found, Holder::AccordingToFile(999_999));
            assert!(found.to_string().contains("according to the lock file"));
        }
        let text = "1: FLOCK  ADVISORY  WRITE 42 fe:00:77 0 EOF\n\
                    2: -> FLOCK  ADVISORY  WRITE 43 fe:00:77 0 EOF\n\
                    3: FLOCK  ADVISORY  READ 44 fe:00:77 0 EOF\n";
        let dev = rustix::fs::makedev(0xfe, 0);
        assert_eq!(flock_holders(text, dev, 77, LockMode::Shared), [42]);
        assert_eq!(flock_holders(text, dev, 77, LockMode::Exclusive), [42, 44]);
        assert!(flock_holders(text, dev, 78, LockMode::Exclusive).is_empty());
    }
}
