//! Putting a package's files into the prefix: hardlinked, reflinked or
//! copied from the cache (never written through), placeholders replaced,
//! entry points written.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use pkgr_fs::paths::normalized;
use rattler_conda_types::package::{FileMode, PathType};
use rattler_conda_types::prefix_record::{
    LinkType, PathType as PrefixPathType, PathsEntry as PrefixPathsEntry,
};
use sha2::{Digest, Sha256};

use super::record::bare_entry;
use super::{LinkMode, PackagePlan, PlannedFile};
use crate::placeholder::{replace_binary, replace_text, shorten_long_shebang};
use crate::python;
use crate::{io, PrefixError};

impl PackagePlan {
    /// Writes the package's files and entry points into `prefix`; may run
    /// beside other packages' `link_files` (a path they share ends up with
    /// whichever was written last: [`Self::relink`] settles it).
    /// `dirs` remembers the directories known to exist, so each is made once
    /// and never looked at; `hardlinks` remembers whether hardlinks into the
    /// prefix work at all, so a failed attempt is not repeated per file.
    pub fn link_files(
        &self,
        prefix: &Path,
        mode: LinkMode,
        dirs: &mut KnownDirs,
        hardlinks: &Hardlinks,
    ) -> Result<LinkedFiles, PrefixError> {
        let prefix_text = prefix.to_string_lossy().replace('\\', "/");
        let into = Destination {
            prefix,
            prefix_text: &prefix_text,
            mode,
        };
        let mut paths = PathBuffers::default();
        let mut entries = Vec::with_capacity(self.files.len() + self.entry_points.len());
        let mut all_hardlinked = true;
        for file in &self.files {
            let (entry, hardlinked) = self.link_file(file, &into, dirs, hardlinks, &mut paths)?;
            all_hardlinked &= hardlinked;
            entries.push(entry);
        }
        if let Some(python) = &self.python {
            let interpreter = prefix.join(&python.executable);
            for entry_point in &self.entry_points {
                let target = python::entry_point_path(entry_point);
                let dest = prefix.join(&target);
                if let Some(parent) = dest.parent() {
                    dirs.ensure(parent)?;
                }
                let script = python::entry_point_script(entry_point, &interpreter);
                replacing(&dest, || write_new_executable(&dest, script.as_bytes()))?;
                entries.push(bare_entry(target, PrefixPathType::UnixPythonEntryPoint));
            }
        }
        Ok(LinkedFiles {
            entries,
            all_hardlinked,
        })
    }

    /// Puts one file of the package at its place in `prefix`; returns what
    /// its record says of it and whether it is a hardlink into the cache.
    fn link_file(
        &self,
        file: &PlannedFile,
        into: &Destination<'_>,
        dirs: &mut KnownDirs,
        hardlinks: &Hardlinks,
        paths: &mut PathBuffers,
    ) -> Result<(PrefixPathsEntry, bool), PrefixError> {
        let PlannedFile {
            index,
            target,
            symlink,
        } = file;
        let Destination {
            prefix,
            prefix_text,
            mode,
        } = *into;
        let entry = &self.paths.paths[*index];
        let mut hardlinked = true;
        let src = joined(&mut paths.src, &self.package_dir, &entry.relative_path);
        let dest = joined(&mut paths.dest, prefix, target);
        if let Some(parent) = dest.parent() {
            dirs.ensure(parent)?;
        }
        let mut sha256_in_prefix = entry.sha256;
        let mut size = entry.size_in_bytes;
        let path_type = match (entry.path_type, symlink) {
            (PathType::Directory, _) => {
                dirs.ensure(dest)?;
                PrefixPathType::Directory
            }
            (PathType::SoftLink | PathType::HardLink, Some(link)) => {
                replacing(dest, || make_symlink(link, dest))?;
                PrefixPathType::SoftLink
            }
            // A `softlink` that the archive holds as a plain file is
            // linked as a file, like any other.
            (PathType::SoftLink | PathType::HardLink, None) => {
                if let Some(placeholder) = &entry.prefix_placeholder {
                    let bytes = fs_err::read(src).map_err(io("reading a package file"))?;
                    let replaced = match placeholder.file_mode {
                        FileMode::Text => shorten_long_shebang(replace_text(
                            &bytes,
                            placeholder.placeholder.as_bytes(),
                            prefix_text.as_bytes(),
                        )),
                        FileMode::Binary => replace_binary(
                            &bytes,
                            placeholder.placeholder.as_bytes(),
                            prefix_text.as_bytes(),
                        )
                        .map_err(|source| PrefixError::Placeholder {
                            package: self.package.clone(),
                            path: entry.relative_path.display().to_string(),
                            source,
                        })?,
                    };
                    replacing(dest, || write_new_like(src, dest, &replaced))?;
                    sha256_in_prefix = Some(Sha256::digest(&replaced));
                    size = size.or(Some(bytes.len() as u64));
                } else {
                    let placed = place_file(src, dest, mode, entry.no_link, hardlinks)?;
                    hardlinked = placed == LinkType::HardLink;
                    if placed == LinkType::Copy && target.extension().is_some_and(|e| e == "py") {
                        // A module's `.pyc` records its source's mtime: a
                        // copy keeps it, so the `.pyc` files compiled once
                        // for the package (kept in the cache) stay valid.
                        keep_mtime(src, dest)?;
                    }
                    if entry.path_type == PathType::SoftLink {
                        // paths.json describes the link's target; record
                        // the file that is really there (a `.tar.bz2` may
                        // store a link as a file, even an empty one).
                        let hashed =
                            pkgr_fs::hash_file(dest).map_err(io("reading a linked file"))?;
                        sha256_in_prefix = Some(hashed.sha256.into());
                        size = Some(hashed.size);
                    } else if sha256_in_prefix.is_none() {
                        // Legacy packages list no hashes: take them here.
                        let hashed =
                            pkgr_fs::hash_file(dest).map_err(io("reading a linked file"))?;
                        sha256_in_prefix = Some(hashed.sha256.into());
                        size = size.or(Some(hashed.size));
                    }
                }
                PrefixPathType::HardLink
            }
        };
        let recorded = PrefixPathsEntry {
            relative_path: target.clone(),
            original_path: None,
            path_type,
            no_link: entry.no_link,
            sha256: entry.sha256.or(sha256_in_prefix),
            sha256_in_prefix: if path_type == PrefixPathType::HardLink {
                sha256_in_prefix
            } else {
                None
            },
            size_in_bytes: size,
            file_mode: entry.prefix_placeholder.as_ref().map(|p| p.file_mode),
            prefix_placeholder: entry
                .prefix_placeholder
                .as_ref()
                .map(|p| p.placeholder.clone()),
        };
        Ok((recorded, hardlinked))
    }

    /// Puts this package's file or entry point for `target` (a path
    /// relative to the prefix) in place again, replacing what another
    /// package put there; nothing when the package has no such path.
    pub fn relink(
        &self,
        target: &Path,
        prefix: &Path,
        mode: LinkMode,
        dirs: &mut KnownDirs,
        hardlinks: &Hardlinks,
    ) -> Result<(), PrefixError> {
        let prefix_text = prefix.to_string_lossy().replace('\\', "/");
        let into = Destination {
            prefix,
            prefix_text: &prefix_text,
            mode,
        };
        if let Some(file) = self.files.iter().find(|f| f.target == target) {
            return self
                .link_file(file, &into, dirs, hardlinks, &mut PathBuffers::default())
                .map(drop);
        }
        let entry_point = self
            .entry_points
            .iter()
            .find(|e| python::entry_point_path(e) == target);
        if let (Some(entry_point), Some(python)) = (entry_point, &self.python) {
            let dest = prefix.join(target);
            if let Some(parent) = dest.parent() {
                dirs.ensure(parent)?;
            }
            let script = python::entry_point_script(entry_point, &prefix.join(&python.executable));
            replacing(&dest, || write_new_executable(&dest, script.as_bytes()))?;
        }
        Ok(())
    }
}

/// The files and entry points of a package, written by
/// [`PackagePlan::link_files`]; its record is made by [`PackagePlan::finish`].
#[derive(Debug)]
pub struct LinkedFiles {
    pub(super) entries: Vec<PrefixPathsEntry>,
    pub(super) all_hardlinked: bool,
}

/// Where a package's files go: the prefix, as text for placeholders, and
/// how files without placeholders get there.
#[derive(Clone, Copy)]
struct Destination<'a> {
    prefix: &'a Path,
    prefix_text: &'a str,
    mode: LinkMode,
}

/// Reused for the source and destination path of each file, so that
/// linking a file allocates no path.
#[derive(Default)]
struct PathBuffers {
    src: PathBuf,
    dest: PathBuf,
}

/// `base.join(relative)`, made in `buffer`.
fn joined<'b>(buffer: &'b mut PathBuf, base: &Path, relative: &Path) -> &'b Path {
    buffer.as_mut_os_string().clear();
    buffer.push(base);
    buffer.push(relative);
    buffer
}

/// The directories of a prefix known to exist, so that linking makes each
/// one once (one `mkdir`, never a `stat`) instead of once per file in it.
#[derive(Debug)]
pub struct KnownDirs {
    /// Keyed by the text: hashing a `Path` parses it into components.
    known: HashSet<OsString>,
    /// The directory asked for last (known to exist).
    last: PathBuf,
}

impl KnownDirs {
    /// Nothing known yet but `prefix` itself (which must exist).
    pub fn new(prefix: &Path) -> Self {
        // The prefix as linking spells the paths below it (no trailing
        // separator), so that its own ancestors are found.
        let prefix = normalized(prefix);
        Self {
            known: HashSet::from([prefix.as_os_str().to_owned()]),
            last: prefix,
        }
    }

    /// Makes `dir` and whatever of its parents is not known to exist,
    /// outermost first. One that exists already (made by another package,
    /// another thread, or before) is fine: if it is not a directory, the
    /// file linked into it fails with that error.
    pub fn ensure(&mut self, dir: &Path) -> Result<(), PrefixError> {
        // Files come sorted by path: most are in the directory of the last.
        if self.last.as_os_str() == dir.as_os_str() {
            return Ok(());
        }
        if self.known.contains(dir.as_os_str()) {
            dir.clone_into(&mut self.last);
            return Ok(());
        }
        let missing: Vec<&Path> = dir
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && !self.known.contains(d.as_os_str()))
            .collect();
        for d in missing.into_iter().rev() {
            match fs_err::create_dir(d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(PrefixError::Io {
                        context: format!("creating the directory {}", d.display()),
                        source: e,
                    })
                }
            }
            self.known.insert(d.as_os_str().to_owned());
        }
        dir.clone_into(&mut self.last);
        Ok(())
    }
}

/// Whether hardlinks from the cache into the prefix work: after the first
/// that fails for a reason other than an existing file (another file system,
/// a file system without hardlinks), no other is tried.
#[derive(Debug)]
pub struct Hardlinks {
    unavailable: AtomicBool,
}

impl Hardlinks {
    /// Not known to fail yet.
    pub fn new() -> Self {
        Self {
            unavailable: AtomicBool::new(false),
        }
    }
}

impl Default for Hardlinks {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs `create` (which makes `dest` and fails if it exists); where `dest`
/// exists (a file of another package, of an older version), removes it and
/// runs `create` again. A file in the prefix may be a hardlink into the
/// cache, so it is never written through, always replaced.
fn replacing(dest: &Path, create: impl Fn() -> std::io::Result<()>) -> Result<(), PrefixError> {
    let fail = |e: std::io::Error| PrefixError::Io {
        context: format!("creating {} in the environment", dest.display()),
        source: e,
    };
    // Another package linked beside this one may put the same path there
    // between our remove and our create: more rounds settle it (which file
    // stays is settled after all packages are linked).
    let mut rounds = 0;
    loop {
        match create() {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && rounds < 64 => {
                rounds += 1;
                match fs_err::symlink_metadata(dest) {
                    // A directory is not replaced by a file: say so.
                    Ok(meta) if meta.is_dir() => return Err(fail(e)),
                    _ => {}
                }
                match fs_err::remove_file(dest) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(format!("replacing {}", dest.display()))(e)),
                }
            }
            Err(e) => return Err(fail(e)),
        }
    }
}

/// Puts one file without placeholder into the prefix (replacing what is
/// there, never writing through it); says how.
pub(crate) fn place_file(
    src: &Path,
    dest: &Path,
    mode: LinkMode,
    no_link: bool,
    hardlinks: &Hardlinks,
) -> Result<LinkType, PrefixError> {
    if mode == LinkMode::Auto && !no_link && !hardlinks.unavailable.load(Ordering::Relaxed) {
        let linked = replacing(dest, || fs_err::hard_link(src, dest));
        match linked {
            Ok(()) => return Ok(LinkType::HardLink),
            Err(PrefixError::Io { source, .. }) => match source.kind() {
                // Another file system, or one without hardlinks: copy
                // instead, from now on without trying.
                std::io::ErrorKind::CrossesDevices | std::io::ErrorKind::Unsupported => {
                    hardlinks.unavailable.store(true, Ordering::Relaxed);
                }
                // Nothing a copy could do better (the file is gone, the
                // directory not writable).
                std::io::ErrorKind::NotFound | std::io::ErrorKind::AlreadyExists => {
                    return Err(PrefixError::Io {
                        context: format!("linking {} to {}", src.display(), dest.display()),
                        source,
                    })
                }
                // EPERM for another user's file (fs.protected_hardlinks, a
                // shared cache), EMLINK (too many links): copy this one.
                _ => {}
            },
            Err(err) => return Err(err),
        }
    }
    // A reflink shares blocks copy-on-write; where the file system has none
    // this is a plain copy. Either way the prefix file is independent.
    replacing(dest, || match reflink_copy::reflink(src, dest) {
        // It has the cache file's (read-only) permissions.
        Ok(()) => fs_err::metadata(dest)
            .and_then(|meta| fs_err::set_permissions(dest, owner_writable(meta.permissions()))),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => copy_new(src, dest),
    })
    .map_err(|e| match e {
        PrefixError::Io { source, .. } => PrefixError::Io {
            context: format!("copying {} to {}", src.display(), dest.display()),
            source,
        },
        other => other,
    })?;
    Ok(LinkType::Copy)
}

/// Gives `dest` the modification time of `src`.
fn keep_mtime(src: &Path, dest: &Path) -> Result<(), PrefixError> {
    let modified = fs_err::metadata(src)
        .and_then(|m| m.modified())
        .map_err(io(format!("reading {}", src.display())))?;
    // A read-only handle: setting times needs ownership, not write
    // permission (a module may be read-only).
    fs_err::File::open(dest)
        .and_then(|f| f.set_modified(modified))
        .map_err(io(format!(
            "setting the modification time of {}",
            dest.display()
        )))
}

/// Copies `src` to a new file `dest` (which must not exist) with `src`'s
/// permissions made [`owner_writable`].
fn copy_new(src: &Path, dest: &Path) -> std::io::Result<()> {
    let mut from = fs_err::File::open(src)?;
    let permissions = owner_writable(from.metadata()?.permissions());
    let mut to = fs_err::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest)?;
    let copied = std::io::copy(&mut from, &mut to).and_then(|_| to.set_permissions(permissions));
    if copied.is_err() {
        let _ = fs_err::remove_file(dest);
    }
    copied
}

#[cfg(unix)]
fn make_symlink(target: &Path, dest: &Path) -> std::io::Result<()> {
    fs_err::os::unix::fs::symlink(target, dest)
}

#[cfg(windows)]
fn make_symlink(target: &Path, dest: &Path) -> std::io::Result<()> {
    std::os::windows::fs::symlink_file(target, dest)
}

/// Writes `bytes` to a new file `dest` (which must not exist) with the
/// permissions of `src` made [`owner_writable`].
fn write_new_like(src: &Path, dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let permissions = owner_writable(fs_err::metadata(src)?.permissions());
    write_new(dest, bytes, Some(permissions))
}

/// The permissions of a file of the cache (read-only: 0444, 0555 when
/// executable) for the environment's own copy of it: writable by its owner
/// (0644, 0755), as conda's copies are. Only copies get it: a hardlinked
/// file *is* the cache's file, and stays read-only so that nothing writes
/// through it into every environment linked from the cache.
fn owner_writable(permissions: std::fs::Permissions) -> std::fs::Permissions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::Permissions::from_mode(permissions.mode() | 0o200)
    }
    #[cfg(not(unix))]
    {
        let mut permissions = permissions;
        permissions.set_readonly(false);
        permissions
    }
}

/// Writes an entry point script to a new file `dest`, executable.
fn write_new_executable(dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    #[cfg(unix)]
    let permissions = {
        use std::os::unix::fs::PermissionsExt;
        Some(std::fs::Permissions::from_mode(0o755))
    };
    #[cfg(not(unix))]
    let permissions = None;
    write_new(dest, bytes, permissions)
}

fn write_new(
    dest: &Path,
    bytes: &[u8],
    permissions: Option<std::fs::Permissions>,
) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut file = fs_err::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest)?;
    let written = file.write_all(bytes).and_then(|()| match permissions {
        Some(permissions) => file.set_permissions(permissions),
        None => Ok(()),
    });
    if written.is_err() {
        let _ = fs_err::remove_file(dest);
    }
    written
}
