//! The prefix lock, the first lock of pkgr's lock order, as a guard that
//! only this module can make: [`LockedPrefix`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pkgr_fs::FileLock;
use rattler_conda_types::{PrefixRecord, RepoDataRecord};

use crate::{InstallError, Plan, Reporter};

/// An environment whose exclusive lock this process holds (the lock file
/// `conda-meta/.pkgr-prefix.lock`, [`pkgr_prefix::PREFIX_LOCK`]). Dropping
/// it releases the lock, unless work it started on blocking threads still
/// runs: those hold the lock too ([`LockedPrefix::hold`]), so it ends only
/// once the last of them is done, even if the task that installs is
/// dropped or panics.
///
/// There is no public constructor: it comes from [`lock_prefix`],
/// [`open_environment`] or [`NewEnvironment::lock`], so whatever takes a
/// `&LockedPrefix` ([`Installer::install`](crate::Installer::install),
/// [`LockedPrefix::record_history`]) runs under the lock, and the lock is
/// held for as long as the borrow.
#[derive(Debug)]
pub struct LockedPrefix {
    path: PathBuf,
    lock: Arc<FileLock>,
}

/// The prefix lock, held by work on a blocking thread for as long as the
/// work runs (see [`LockedPrefix::hold`]).
#[derive(Debug, Clone)]
pub(crate) struct HeldPrefixLock(#[allow(dead_code)] Arc<FileLock>);

/// What the specs of a `history` revision did, in conda's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecsKind {
    /// `# update specs:` (create, install, update).
    Update,
    /// `# remove specs:` (remove).
    Remove,
}

impl SpecsKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Update => "update",
            Self::Remove => "remove",
        }
    }
}

/// Takes the exclusive lock of `prefix` (creating `prefix/conda-meta/` as
/// needed). After about a second of waiting, [`Reporter::waiting_for_prefix`]
/// says whom it waits for; after the lock timeout (`PKGR_LOCK_TIMEOUT`) it
/// fails naming the holder.
pub async fn lock_prefix(
    prefix: &Path,
    reporter: &dyn Reporter,
) -> Result<LockedPrefix, InstallError> {
    let lock =
        pkgr_prefix::lock_prefix(prefix, |pid| reporter.waiting_for_prefix(prefix, pid)).await?;
    Ok(LockedPrefix {
        path: prefix.to_path_buf(),
        lock: Arc::new(lock),
    })
}

/// Takes the lock of an existing environment, finishes what an interrupted
/// transaction left ([`Reporter::recovered`] for each package), and reads
/// what is installed (sorted by name).
///
/// Whether `prefix` is an environment is checked again under the lock: a
/// concurrent `env remove` may have taken it away while we waited (taking
/// the lock then made a bare `conda-meta/` holding only the lock file, which
/// is removed again so that it does not look like an environment); that is
/// [`InstallError::EnvironmentRemoved`].
pub async fn open_environment(
    prefix: &Path,
    reporter: &dyn Reporter,
) -> Result<(LockedPrefix, Vec<PrefixRecord>), InstallError> {
    let locked = lock_prefix(prefix, reporter).await?;
    if !pkgr_prefix::is_non_empty_environment(prefix) {
        let meta = prefix.join("conda-meta");
        let _ = fs_err::remove_file(meta.join(pkgr_prefix::PREFIX_LOCK));
        let _ = fs_err::remove_dir(&meta);
        let _ = fs_err::remove_dir(prefix);
        drop(locked);
        return Err(InstallError::EnvironmentRemoved {
            prefix: prefix.to_path_buf(),
        });
    }
    for package in pkgr_prefix::recover(prefix)? {
        reporter.recovered(&package);
    }
    let installed = locked.installed()?;
    Ok((locked, installed))
}

impl LockedPrefix {
    /// The environment's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The lock, for work on a blocking thread to hold until it is done.
    pub(crate) fn hold(&self) -> HeldPrefixLock {
        HeldPrefixLock(self.lock.clone())
    }

    /// Every installed-package record (`conda-meta/*.json`), sorted by name.
    pub fn installed(&self) -> Result<Vec<PrefixRecord>, InstallError> {
        pkgr_prefix::read_prefix_records(&self.path).map_err(|source| {
            InstallError::ReadEnvironment {
                prefix: self.path.clone(),
                source,
            }
        })
    }

    /// Appends the change to `conda-meta/history` as conda writes it: the
    /// time, `command` (the command line; URLs in it are written without
    /// credentials), the packages unlinked and linked, and `specs`.
    pub fn record_history(
        &self,
        plan: &Plan,
        kind: SpecsKind,
        specs: &[String],
        command: &str,
    ) -> Result<(), InstallError> {
        let timestamp = jiff::Zoned::now().strftime("%Y-%m-%d %H:%M:%S").to_string();
        let unlinked: Vec<RepoDataRecord> = plan
            .unlink
            .iter()
            .map(|r| r.repodata_record.clone())
            .collect();
        pkgr_prefix::append_history(
            &self.path,
            command,
            &plan.link,
            &unlinked,
            kind.as_str(),
            specs,
            &timestamp,
        )?;
        Ok(())
    }
}

/// An environment being created: its lock, and what was at its path before,
/// so that a failed create removes exactly what it put there.
#[derive(Debug)]
pub struct NewEnvironment {
    locked: LockedPrefix,
    dir_existed: bool,
    had_content: bool,
}

impl NewEnvironment {
    /// Takes the lock of the environment to create at `prefix` (see
    /// [`lock_prefix`]) and notes what is there now: whether the directory
    /// existed before the lock made `conda-meta/`, and whether it holds an
    /// environment or other files ([`NewEnvironment::had_content`]; another
    /// process may have created one since the caller last looked).
    pub async fn lock(prefix: &Path, reporter: &dyn Reporter) -> Result<Self, InstallError> {
        let dir_existed = prefix.exists();
        let locked = lock_prefix(prefix, reporter).await?;
        let had_content = pkgr_prefix::is_non_empty_environment(prefix);
        Ok(Self {
            locked,
            dir_existed,
            had_content,
        })
    }

    /// Whether the prefix held packages or other files when it was locked.
    pub fn had_content(&self) -> bool {
        self.had_content
    }

    /// The locked prefix, to install into.
    pub fn prefix(&self) -> &LockedPrefix {
        &self.locked
    }

    /// Empties the prefix to replace what it holds (`create --force`):
    /// refuses a non-empty directory that is not an environment, keeps the
    /// lock file.
    pub fn clear(&self) -> Result<(), InstallError> {
        let path = self.locked.path();
        pkgr_prefix::check_replaceable(path)?;
        pkgr_prefix::clear_prefix(path).map_err(|source| InstallError::Clear {
            prefix: path.to_path_buf(),
            source,
        })
    }

    /// The environment is complete: keep it, and release the lock.
    pub fn finish(self) {}

    /// The create failed: when the prefix held nothing before, remove what
    /// this process put there (best effort: the error that got here is what
    /// matters), so that nothing looks like an environment; then release
    /// the lock. Waiters on the removed lock file notice and lock the new
    /// one. A prefix that had content is left as the failure left it.
    pub fn abandon(self) {
        if self.had_content {
            return;
        }
        let prefix = self.locked.path();
        if self.dir_existed {
            let _ = pkgr_prefix::clear_prefix(prefix);
            let _ = fs_err::remove_dir_all(prefix.join("conda-meta"));
        } else {
            let _ = fs_err::remove_dir_all(prefix);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Quiet;
    impl pkgr_cache::Reporter for Quiet {}
    impl Reporter for Quiet {}

    fn lock_is_free(prefix: &Path) -> bool {
        let path = prefix.join("conda-meta").join(pkgr_prefix::PREFIX_LOCK);
        pkgr_fs::FileLock::try_acquire(&path, pkgr_fs::LockMode::Exclusive)
            .unwrap()
            .is_some()
    }

    #[tokio::test]
    async fn the_lock_is_held_as_long_as_the_guard() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("env");
        let locked = lock_prefix(&prefix, &Quiet).await.unwrap();
        assert_eq!(locked.path(), prefix);
        assert!(!lock_is_free(&prefix));
        drop(locked);
        assert!(lock_is_free(&prefix));

        // Work on a blocking thread holds it until it is done.
        let locked = lock_prefix(&prefix, &Quiet).await.unwrap();
        let held = locked.hold();
        drop(locked);
        assert!(!lock_is_free(&prefix), "released under running work");
        drop(held);
        assert!(lock_is_free(&prefix));
    }

    #[tokio::test]
    async fn a_failed_create_leaves_nothing_that_looks_like_an_environment() {
        let dir = tempfile::tempdir().unwrap();
        // A prefix that did not exist: removed altogether.
        let prefix = dir.path().join("new");
        let env = NewEnvironment::lock(&prefix, &Quiet).await.unwrap();
        assert!(!env.had_content());
        fs_err::write(prefix.join("half-linked"), "x").unwrap();
        env.abandon();
        assert!(!prefix.exists());

        // An empty directory that existed: kept, emptied.
        let prefix = dir.path().join("empty");
        fs_err::create_dir(&prefix).unwrap();
        let env = NewEnvironment::lock(&prefix, &Quiet).await.unwrap();
        fs_err::write(prefix.join("half-linked"), "x").unwrap();
        env.abandon();
        assert!(prefix.is_dir());
        assert_eq!(fs_err::read_dir(&prefix).unwrap().count(), 0);

        // One that held an environment (another process made it): untouched.
        let prefix = dir.path().join("taken");
        fs_err::create_dir_all(prefix.join("conda-meta")).unwrap();
        fs_err::write(prefix.join("conda-meta").join("history"), "").unwrap();
        let env = NewEnvironment::lock(&prefix, &Quiet).await.unwrap();
        assert!(env.had_content());
        env.abandon();
        assert!(prefix.join("conda-meta").join("history").is_file());
    }

    #[tokio::test]
    async fn opening_a_removed_environment_says_so_and_leaves_no_bare_conda_meta() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("gone");
        let err = open_environment(&prefix, &Quiet).await.unwrap_err();
        assert!(
            matches!(&err, InstallError::EnvironmentRemoved { prefix: p } if *p == prefix),
            "{err}"
        );
        assert!(err.to_string().contains("was removed while"), "{err}");
        assert!(!prefix.exists());
    }

    #[tokio::test]
    async fn history_is_written_under_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let locked = lock_prefix(dir.path(), &Quiet).await.unwrap();
        let plan = Plan::default();
        locked
            .record_history(
                &plan,
                SpecsKind::Remove,
                &[String::from("zlib")],
                "pkgr remove zlib",
            )
            .unwrap();
        let text = fs_err::read_to_string(dir.path().join("conda-meta/history")).unwrap();
        assert!(text.contains("# cmd: pkgr remove zlib\n"), "{text}");
        assert!(text.ends_with("# remove specs: ['zlib']\n"), "{text}");
    }
}
