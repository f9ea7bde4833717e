//! The check of a transaction's packages together: chains of symlinks
//! across packages and the environment.

use std::path::{Path, PathBuf};

use pkgr_fs::Resolver;

use super::PackagePlan;
use crate::python;
use crate::PrefixError;

/// What every package of a transaction is checked against before
/// anything of it is linked: the symlinks of the transaction's packages
/// and those already in the environment (found on disk), through which
/// each of its paths and symlinks must stay inside the prefix (see
/// [`pkgr_fs::resolve`]). Counting `..` per link misses a chain: a link
/// whose target goes through another link (of the same package, of another
/// one, of the environment) may lead to `/`, and a file shipped below it
/// would then replace any file the user can write.
#[derive(Debug)]
pub(crate) struct LinkGuard {
    resolver: Resolver,
    /// The symlinks declared so far: package, where it lands, target.
    links: Vec<(String, PathBuf, PathBuf)>,
}

impl LinkGuard {
    /// Knows the symlinks of `prefix` on disk (each looked at once, when a
    /// path goes through it), none declared yet.
    pub(crate) fn new(prefix: &Path) -> Self {
        Self {
            resolver: Resolver::on_disk(prefix),
            links: Vec::new(),
        }
    }

    /// Declares the symlinks of `plan` (a package of the transaction).
    /// Returns whether a check before may have answered otherwise with
    /// them known (see [`Self::admit`]).
    pub(crate) fn declare(&mut self, plan: &PackagePlan) -> bool {
        let mut changed = false;
        for (target, link) in plan.symlinks() {
            changed |= self.resolver.add_link(target, link);
            self.links.push((
                plan.package.clone(),
                target.to_path_buf(),
                link.to_path_buf(),
            ));
        }
        changed
    }

    /// Checks that every path of `plan` lands inside the prefix through
    /// the symlinks known: the directory of each file, directory, entry
    /// point and `.pyc`, and each symlink's target.
    pub(crate) fn check(&mut self, plan: &PackagePlan) -> Result<(), PrefixError> {
        let unsafe_path = |path: &Path, escape: pkgr_fs::Escape| PrefixError::UnsafePath {
            package: plan.package.clone(),
            path: path.display().to_string(),
            why: escape.why(),
        };
        for file in &plan.files {
            self.resolver
                .check_parent(&file.target)
                .map_err(|e| unsafe_path(&file.target, e))?;
            if let Some(link) = &file.symlink {
                self.resolver
                    .check_link(&file.target, link)
                    .map_err(|e| unsafe_path(&file.target, e))?;
            }
        }
        for entry_point in &plan.entry_points {
            let target = python::entry_point_path(entry_point);
            self.resolver
                .check_parent(&target)
                .map_err(|e| unsafe_path(&target, e))?;
        }
        if let Some(python) = &plan.python {
            for pyc in plan.files.iter().filter_map(|f| python.pyc_path(&f.target)) {
                self.resolver
                    .check_parent(&pyc)
                    .map_err(|e| unsafe_path(&pyc, e))?;
            }
        }
        Ok(())
    }

    /// For packages that arrive one by one: declares `plan`'s symlinks,
    /// checks the symlinks of the packages before it again if one of its
    /// links changes where they lead (a chain split across packages), then
    /// checks `plan` (its paths through every link known, its links
    /// included). The packages before it were checked without its links:
    /// that their files stay inside follows from every link staying inside.
    pub(crate) fn admit(&mut self, plan: &PackagePlan) -> Result<(), PrefixError> {
        let before = self.links.len();
        if self.declare(plan) {
            // Directories the packages before were checked (and linked)
            // through, links of the environment on their way included.
            if let Err((dir, escape)) = self.resolver.recheck() {
                return Err(PrefixError::EscapingChain {
                    package: plan.package.clone(),
                    other: String::from("a package linked before it"),
                    path: dir.display().to_string(),
                    why: escape.why(),
                });
            }
            for (package, target, link) in &self.links[..before] {
                if let Err(escape) = self.resolver.check_link(target, link) {
                    return Err(PrefixError::EscapingChain {
                        package: plan.package.clone(),
                        other: package.clone(),
                        path: target.display().to_string(),
                        why: escape.why(),
                    });
                }
            }
        }
        self.check(plan)
    }
}
