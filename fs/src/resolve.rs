//! Where a path below a root really leads, with symlinks: a *virtual*
//! resolution, component by component, as the kernel would resolve it, but
//! without following anything on disk.
//!
//! Counting `..` in a link's target ([`crate::check_link_target`]) is not
//! enough: a component of the target may itself be a symlink that a package
//! ships. `d1/…/d20/l -> ../..(×20)` and `d1/…/d20/m -> l/../..(×21)` each
//! stay inside by counting, yet `m` leads to `/`, and a second package that
//! ships `d1/…/d20/m/etc/x` writes anywhere. A [`Resolver`] knows the
//! symlinks that exist below its root: those the caller declares (the links
//! of the packages about to be linked) and, when it has a directory on disk,
//! those it finds there (`lstat`/`readlink`, once per path, memoized), and
//! resolves through them: chains are followed (at most
//! [`MAX_FOLLOWS`] links, as the kernel's 40), `..` pops a component, and an
//! absolute target or a step above the root is an [`Escape`].
//!
//! A symlink may not be there yet when a path is written (another package
//! ships it and is linked later), or be replaced by a directory: so every
//! component that may be a symlink is resolved both ways, as the link (to
//! each target it is known to have) and as a plain directory, and the path
//! is inside only if every way is. The plain way is what counting `..`
//! checks: nothing that passes this check fails the lexical one.
//!
//! Directories already found inside are remembered (one hash lookup per
//! file of a directory seen before), so checking every file of a package
//! costs a syscall per new directory at most, not per file.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::path::{Component, Path, PathBuf};

/// How many symlinks one resolution follows in a row before it is a loop
/// (the kernel's limit, `ELOOP`).
pub const MAX_FOLLOWS: u32 = 40;

/// How many symlinks one check follows in all its ways (a component that
/// may be a link or a directory is resolved both ways): a bound on the work
/// a hostile package can cause, far above what real packages need.
const MAX_STEPS: u32 = 4096;

/// Why a path does not stay below the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// A symlink on the way has an absolute target.
    Absolute,
    /// A `..` (of a symlink's target) steps above the root.
    AboveRoot,
    /// Too many symlinks on the way (a loop, or a chain longer than the
    /// kernel follows).
    Loop,
}

impl Escape {
    /// The reason, for an error message.
    pub fn why(self) -> &'static str {
        match self {
            Escape::Absolute => "it leads through a symlink with an absolute target",
            Escape::AboveRoot => "it leads through symlinks to outside the prefix",
            Escape::Loop => "it leads through a loop or a too long chain of symlinks",
        }
    }
}

impl std::fmt::Display for Escape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.why())
    }
}

impl std::error::Error for Escape {}

/// What a path is on disk, as far as resolving goes.
#[derive(Debug, Clone)]
enum OnDisk {
    /// Nothing there (nor below it).
    Missing,
    /// A directory or a file.
    NotALink,
    /// A symlink with this target.
    Link(PathBuf),
}

/// Resolves paths below a root through the symlinks known there; see the
/// module docs.
#[derive(Debug, Default)]
pub struct Resolver {
    /// The directory on disk whose symlinks count too (`None`: only the
    /// declared ones).
    root: Option<PathBuf>,
    /// Declared symlinks (path below the root → every target it may have).
    links: HashMap<PathBuf, Vec<PathBuf>>,
    /// What each path looked up is on disk (keyed by its text).
    disk: HashMap<OsString, OnDisk>,
    /// Every path looked up as a possible symlink (keyed by its text): a
    /// link declared later at one of them changes earlier answers.
    looked_up: HashSet<OsString>,
    /// Directories found to lead inside (keyed by their text), since the
    /// last link was declared.
    inside: HashSet<OsString>,
    /// Every directory ever found to lead inside, for [`Self::recheck`].
    checked: HashSet<OsString>,
    /// The directory found inside last.
    last: Option<OsString>,
}

impl Resolver {
    /// A resolver that knows only the symlinks it is told of.
    pub fn new() -> Self {
        Self::default()
    }

    /// A resolver for the directory `root` on disk: the symlinks found
    /// below it count as well as the declared ones.
    pub fn on_disk(root: &Path) -> Self {
        Self {
            root: Some(root.to_path_buf()),
            ..Self::default()
        }
    }

    /// Declares a symlink at `link` (relative to the root) with `target`
    /// (as read from the link); a path may be declared with several
    /// targets (packages that ship it differently). Returns whether an
    /// earlier check looked `link` up, i.e. whether earlier answers may
    /// change (then check the earlier links again).
    pub fn add_link(&mut self, link: &Path, target: &Path) -> bool {
        let link = crate::paths::normalized(link);
        let seen = self.looked_up.contains(link.as_os_str());
        let targets = self.links.entry(link).or_default();
        if !targets.iter().any(|t| t == target) {
            targets.push(target.to_path_buf());
            // A directory found inside may lead elsewhere now.
            self.inside.clear();
            self.last = None;
        }
        seen
    }

    /// Checks that the directory holding `path` (relative to the root)
    /// leads inside the root: a file written at `path` lands inside.
    pub fn check_parent(&mut self, path: &Path) -> Result<(), Escape> {
        match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => self.check_dir(dir),
            _ => Ok(()),
        }
    }

    /// Checks that `dir` (relative to the root), every component followed,
    /// leads inside the root. Remembered once it does.
    pub fn check_dir(&mut self, dir: &Path) -> Result<(), Escape> {
        if self.last.as_deref() == Some(dir.as_os_str()) || self.inside.contains(dir.as_os_str()) {
            return Ok(());
        }
        let components = owned_components(dir)?;
        self.resolve(&components)?;
        self.inside.insert(dir.as_os_str().to_owned());
        self.checked.insert(dir.as_os_str().to_owned());
        self.last = Some(dir.as_os_str().to_owned());
        Ok(())
    }

    /// Checks again every directory found inside before (with the links
    /// declared since): for when [`Self::add_link`] says earlier answers may
    /// change, and files were (or will be) written there on those answers.
    /// Returns the first directory that leads outside now.
    pub fn recheck(&mut self) -> Result<(), (PathBuf, Escape)> {
        let mut dirs: Vec<OsString> = self.checked.iter().cloned().collect();
        dirs.sort_unstable();
        for dir in dirs {
            let dir = PathBuf::from(dir);
            self.check_dir(&dir).map_err(|escape| (dir, escape))?;
        }
        Ok(())
    }

    /// Checks that a symlink at `link` (relative to the root) with
    /// `target` leads inside the root, through every symlink known.
    pub fn check_link(&mut self, link: &Path, target: &Path) -> Result<(), Escape> {
        if target.has_root() {
            return Err(Escape::Absolute);
        }
        let mut components = match link.parent() {
            Some(dir) => owned_components(dir)?,
            None => Vec::new(),
        };
        components.extend(owned_components(target)?);
        self.resolve(&components)
    }

    /// Resolves `components` from the root every way (see the module docs).
    fn resolve(&mut self, components: &[Step]) -> Result<(), Escape> {
        let mut steps = MAX_STEPS;
        self.walk(PathBuf::new(), true, components, 0, &mut steps)
    }

    /// Resolves `rest` from `at` (already resolved). `disk` is false on a
    /// way that takes a symlink on disk for a plain directory: below it,
    /// the disk says nothing.
    fn walk(
        &mut self,
        mut at: PathBuf,
        mut disk: bool,
        rest: &[Step],
        follows: u32,
        steps: &mut u32,
    ) -> Result<(), Escape> {
        for (index, step) in rest.iter().enumerate() {
            let name = match step {
                Step::Up => {
                    if !at.pop() {
                        return Err(Escape::AboveRoot);
                    }
                    continue;
                }
                Step::Name(name) => name,
            };
            at.push(name);
            let (targets, on_disk_link) = self.targets(&at, disk);
            if targets.is_empty() {
                continue;
            }
            let remaining = &rest[index + 1..];
            for target in targets {
                if follows + 1 > MAX_FOLLOWS || *steps == 0 {
                    return Err(Escape::Loop);
                }
                *steps -= 1;
                if target.has_root() {
                    return Err(Escape::Absolute);
                }
                let mut next = owned_components(&target)?;
                next.extend_from_slice(remaining);
                let mut from = at.clone();
                from.pop();
                self.walk(from, disk, &next, follows + 1, steps)?;
            }
            // And as a plain directory (what it is when the link is not
            // there yet); below a link on disk, the disk is no guide.
            disk &= !on_disk_link;
        }
        Ok(())
    }

    /// The targets `path` may have as a symlink (declared, or on disk when
    /// `disk`), and whether it is a symlink on disk.
    fn targets(&mut self, path: &Path, disk: bool) -> (Vec<PathBuf>, bool) {
        self.looked_up.insert(path.as_os_str().to_owned());
        let mut targets = self.links.get(path).cloned().unwrap_or_default();
        let mut on_disk_link = false;
        if disk {
            if let OnDisk::Link(target) = self.disk_state(path) {
                on_disk_link = true;
                if !targets.contains(&target) {
                    targets.push(target);
                }
            }
        }
        (targets, on_disk_link)
    }

    /// What `path` is on disk (`lstat`, and `readlink` for a link), once.
    /// Below a missing directory everything is missing, with no syscall.
    fn disk_state(&mut self, path: &Path) -> OnDisk {
        let Some(root) = &self.root else {
            return OnDisk::Missing;
        };
        if let Some(known) = self.disk.get(path.as_os_str()) {
            return known.clone();
        }
        let parent_missing = path
            .parent()
            .and_then(|p| self.disk.get(p.as_os_str()))
            .is_some_and(|p| matches!(p, OnDisk::Missing));
        let found = if parent_missing {
            OnDisk::Missing
        } else {
            let full = root.join(path);
            match fs_err::symlink_metadata(&full) {
                Ok(meta) if meta.file_type().is_symlink() => match fs_err::read_link(&full) {
                    Ok(target) => OnDisk::Link(target),
                    // Gone meanwhile: whatever comes there is checked then.
                    Err(_) => OnDisk::Missing,
                },
                Ok(_) => OnDisk::NotALink,
                Err(_) => OnDisk::Missing,
            }
        };
        self.disk.insert(path.as_os_str().to_owned(), found.clone());
        found
    }
}

/// One component of a path being resolved.
#[derive(Debug, Clone)]
enum Step {
    Name(OsString),
    Up,
}

/// `path`'s components as steps (`.` dropped); an absolute path escapes.
fn owned_components(path: &Path) -> Result<Vec<Step>, Escape> {
    let mut steps = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => steps.push(Step::Name(OsStr::to_owned(name))),
            Component::ParentDir => steps.push(Step::Up),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return Err(Escape::Absolute),
        }
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `d1/…/d20`.
    fn deep() -> PathBuf {
        (1..=20).map(|i| format!("d{i}")).collect()
    }

    fn ups(n: usize) -> PathBuf {
        std::iter::repeat_n("..", n).collect()
    }

    #[test]
    fn the_chain_that_counting_misses() {
        let (l, m) = (deep().join("l"), deep().join("m"));
        let l_target = ups(20);
        let m_target = Path::new("l").join(ups(21));
        // Each passes the lexical check...
        assert!(crate::check_link_target(&l, &l_target).is_ok());
        assert!(crate::check_link_target(&m, &m_target).is_ok());
        // ...but together `m` is `/`.
        let mut resolver = Resolver::new();
        resolver.add_link(&l, &l_target);
        resolver.add_link(&m, &m_target);
        assert_eq!(resolver.check_link(&l, &l_target), Ok(()));
        assert_eq!(resolver.check_link(&m, &m_target), Err(Escape::AboveRoot));
        // And so is anything below `m`.
        assert_eq!(
            resolver.check_parent(&m.join("etc/passwd")),
            Err(Escape::AboveRoot)
        );
        assert_eq!(resolver.check_parent(&deep().join("x")), Ok(()));
    }

    #[test]
    fn a_link_declared_later_changes_earlier_answers() {
        let (l, m) = (deep().join("l"), deep().join("m"));
        let mut resolver = Resolver::new();
        let m_target = Path::new("l").join(ups(21));
        assert!(!resolver.add_link(&m, &m_target));
        assert_eq!(resolver.check_link(&m, &m_target), Ok(()));
        assert_eq!(resolver.check_parent(&m.join("x/y")), Ok(()));
        // `l` was looked up when `m` was checked: the caller must check again.
        assert!(resolver.add_link(&l, &ups(20)));
        assert_eq!(resolver.recheck(), Err((m.join("x"), Escape::AboveRoot)));
        assert_eq!(resolver.check_link(&m, &m_target), Err(Escape::AboveRoot));
        assert_eq!(
            resolver.check_parent(&m.join("x/y")),
            Err(Escape::AboveRoot)
        );
    }

    #[test]
    fn lib64_to_lib_stays_allowed() {
        let mut resolver = Resolver::new();
        resolver.add_link(Path::new("lib64"), Path::new("lib"));
        resolver.add_link(Path::new("lib/libz.so"), Path::new("libz.so.1"));
        resolver.add_link(Path::new("lib/libz.so.1"), Path::new("libz.so.1.3"));
        assert_eq!(
            resolver.check_link(Path::new("lib64"), Path::new("lib")),
            Ok(())
        );
        assert_eq!(resolver.check_parent(Path::new("lib64/libfoo.so")), Ok(()));
        assert_eq!(resolver.check_parent(Path::new("lib64/sub/x")), Ok(()));
        // Links to links, and a link through a symlinked directory.
        assert_eq!(
            resolver.check_link(Path::new("lib/libz.so"), Path::new("libz.so.1")),
            Ok(())
        );
        assert_eq!(
            resolver.check_link(Path::new("bin/z"), Path::new("../lib64/libz.so")),
            Ok(())
        );
        assert_eq!(
            resolver.check_link(Path::new("lib64/pkgconfig/x"), Path::new("../../share/x")),
            Ok(())
        );
    }

    #[test]
    fn absolute_targets_and_steps_above_the_root_escape() {
        let mut resolver = Resolver::new();
        assert_eq!(
            resolver.check_link(Path::new("x"), Path::new("/etc/passwd")),
            Err(Escape::Absolute)
        );
        assert_eq!(
            resolver.check_link(Path::new("bin/x"), Path::new("../../etc")),
            Err(Escape::AboveRoot)
        );
        // An absolute target further down a chain.
        resolver.add_link(Path::new("a"), Path::new("/tmp"));
        resolver.add_link(Path::new("b"), Path::new("a"));
        assert_eq!(
            resolver.check_link(Path::new("b"), Path::new("a")),
            Err(Escape::Absolute)
        );
        assert_eq!(
            resolver.check_parent(Path::new("b/x")),
            Err(Escape::Absolute)
        );
    }

    #[test]
    fn loops_are_refused() {
        let mut resolver = Resolver::new();
        resolver.add_link(Path::new("a"), Path::new("b"));
        resolver.add_link(Path::new("b"), Path::new("a"));
        assert_eq!(
            resolver.check_link(Path::new("a"), Path::new("b")),
            Err(Escape::Loop)
        );
        assert_eq!(resolver.check_parent(Path::new("a/x")), Err(Escape::Loop));
        let mut resolver = Resolver::new();
        resolver.add_link(Path::new("self"), Path::new("self/x"));
        assert_eq!(
            resolver.check_parent(Path::new("self/y")),
            Err(Escape::Loop)
        );
        // A long but finite chain is fine up to the kernel's limit.
        let mut resolver = Resolver::new();
        for i in 0..30 {
            resolver.add_link(
                Path::new(&format!("l{i}")),
                Path::new(&format!("l{}", i + 1)),
            );
        }
        assert_eq!(resolver.check_parent(Path::new("l0/x")), Ok(()));
        for i in 30..50 {
            resolver.add_link(
                Path::new(&format!("l{i}")),
                Path::new(&format!("l{}", i + 1)),
            );
        }
        assert_eq!(resolver.check_parent(Path::new("l0/x")), Err(Escape::Loop));
    }

    #[test]
    fn dangling_links_are_fine() {
        let mut resolver = Resolver::new();
        resolver.add_link(Path::new("lib/gone"), Path::new("nowhere/at/all"));
        assert_eq!(
            resolver.check_link(Path::new("lib/gone"), Path::new("nowhere/at/all")),
            Ok(())
        );
        assert_eq!(resolver.check_parent(Path::new("lib/gone/x")), Ok(()));
    }

    #[test]
    fn a_path_with_two_targets_is_checked_both_ways() {
        let mut resolver = Resolver::new();
        let m_target = Path::new("l").join(ups(1));
        resolver.add_link(Path::new("a/l"), Path::new("b"));
        resolver.add_link(Path::new("a/m"), &m_target);
        assert_eq!(resolver.check_link(Path::new("a/m"), &m_target), Ok(()));
        resolver.add_link(Path::new("a/l"), &ups(1));
        assert_eq!(
            resolver.check_link(Path::new("a/m"), &m_target),
            Err(Escape::AboveRoot)
        );
    }

    #[cfg(unix)]
    #[test]
    fn links_on_disk_count_and_are_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let d = root.join(deep());
        fs_err::create_dir_all(&d).unwrap();
        fs_err::os::unix::fs::symlink(ups(20), d.join("l")).unwrap();
        fs_err::create_dir_all(root.join("lib")).unwrap();
        fs_err::os::unix::fs::symlink("lib", root.join("lib64")).unwrap();

        let mut resolver = Resolver::on_disk(root);
        let m = deep().join("m");
        let m_target = Path::new("l").join(ups(21));
        // The link on disk, and the one about to be linked.
        assert_eq!(resolver.check_link(&m, &m_target), Err(Escape::AboveRoot));
        resolver.add_link(&m, &m_target);
        assert_eq!(
            resolver.check_parent(&m.join("etc/passwd")),
            Err(Escape::AboveRoot)
        );
        assert_eq!(resolver.check_parent(Path::new("lib64/x")), Ok(()));
        assert_eq!(resolver.check_parent(Path::new("new/dir/x")), Ok(()));
        // A link on disk below a directory seen before is found too.
        fs_err::os::unix::fs::symlink("/", root.join("lib/late")).unwrap();
        assert_eq!(
            resolver.check_parent(Path::new("lib/late/x")),
            Err(Escape::Absolute)
        );
        // Below a missing directory nothing is looked at.
        assert!(matches!(
            resolver.disk_state(Path::new("new/dir")),
            OnDisk::Missing
        ));
    }
}
