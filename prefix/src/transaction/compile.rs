//! Byte-compiling the modules of the `noarch: python` packages of a
//! transaction, at once, once python is in place (or linking the `.pyc`
//! files kept from an earlier environment).

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::staged::{Outcome, Staged};
use crate::link::{place_file, Hardlinks, KnownDirs, LinkMode};
use crate::python::{CompiledBatch, CompiledModules, PythonInfo};
use crate::PrefixError;

/// Byte-compiles the modules of every staged `noarch: python` package at
/// once, over `jobs` python processes, once the interpreter is in place;
/// a package whose modules were compiled for this python before (kept in
/// `kept`) gets those `.pyc` files hardlinked instead, and the ones compiled
/// now are kept for next time. A module several of them ship (`shared`) is
/// always compiled here, from the one in place, and kept for none of them.
/// `None` when there is nothing to compile or no interpreter.
#[tracing::instrument(level = "debug", name = "byte_compile", skip_all)]
pub(super) fn compile_modules(
    prefix: &Path,
    staged: &[Staged],
    shared: &HashSet<OsString>,
    mode: LinkMode,
    jobs: usize,
    kept: Option<&dyn CompiledModules>,
) -> Result<Option<CompiledBatch>, PrefixError> {
    let Some(python) = staged.iter().find_map(|s| s.plan.python()) else {
        return Ok(None);
    };
    if !prefix.join(&python.executable).exists() {
        return Ok(None);
    }
    // The modules are hardlinks of the cache's files, or copies with their
    // mtimes: the kept `.pyc` files (which record size and mtime of their
    // source) are valid for them. (One whose placeholder was replaced is
    // not: python compiles it again on first import, as without a `.pyc`.)
    let tag = python.pyc_tag();
    let mut reused = HashSet::new();
    let mut to_compile: Vec<PathBuf> = Vec::new();
    let mut compiled_here: Vec<&Staged> = Vec::new();
    for package in staged
        .iter()
        .filter(|s| !matches!(s.outcome, Outcome::Failed))
    {
        let (modules, clobbered): (Vec<PathBuf>, Vec<PathBuf>) = package
            .plan
            .modules()
            .into_iter()
            .partition(|m| !shared.contains(m.as_os_str()));
        // Compiled from whichever package's module is in place: kept for
        // no package (the store holds a package's whole set or nothing).
        let whole = clobbered.is_empty();
        to_compile.extend(clobbered);
        if modules.is_empty() {
            continue;
        }
        // A module with this prefix written into it compiles to a `.pyc`
        // of this environment alone: such a package is always compiled here.
        let kept = kept.filter(|_| !package.plan.has_module_with_placeholder());
        let found = kept.and_then(|kept| kept.find(package.plan.package_dir(), &tag));
        match found {
            Some(dir) => match link_kept(prefix, &dir, python, &modules, mode) {
                Ok(linked) => reused.extend(linked),
                // The store only saves time: compile instead.
                Err(_) => {
                    to_compile.extend(modules);
                    compiled_here.extend(whole.then_some(package));
                }
            },
            None => {
                to_compile.extend(modules);
                compiled_here.extend(whole.then_some(package));
            }
        }
    }
    to_compile.sort();
    to_compile.dedup();
    tracing::debug!(
        compile = to_compile.len(),
        reused = reused.len(),
        "byte-compiling modules (reusing the kept .pyc files of the others)"
    );
    let mut batch = if to_compile.is_empty() {
        CompiledBatch::default()
    } else {
        crate::python::compile_pyc_batch(prefix, python, &to_compile, jobs)
    };
    if let Some(kept) = kept {
        // Only what a clean run gave: a python that failed (a module that
        // does not compile, or a broken interpreter) may have left out
        // modules that do compile elsewhere.
        if batch.error.is_none() && batch.failed.is_none() {
            for package in compiled_here
                .into_iter()
                .filter(|p| !p.plan.has_module_with_placeholder())
            {
                let pycs: Vec<PathBuf> = package
                    .plan
                    .modules()
                    .iter()
                    .filter_map(|m| python.pyc_path(m))
                    .filter(|pyc| batch.pycs.contains(pyc))
                    .collect();
                kept.keep(package.plan.package_dir(), &tag, prefix, &pycs);
            }
        }
    }
    batch.pycs.extend(reused);
    Ok(Some(batch))
}

/// Links the kept `.pyc` files of `modules` from `dir` into `prefix` as
/// any package file is linked (with `--copy`: copied); returns the ones
/// placed.
fn link_kept(
    prefix: &Path,
    dir: &Path,
    python: &PythonInfo,
    modules: &[PathBuf],
    mode: LinkMode,
) -> std::io::Result<Vec<PathBuf>> {
    let mut dirs = KnownDirs::new(prefix);
    let hardlinks = &Hardlinks::new();
    let mut placed = Vec::new();
    for pyc in modules.iter().filter_map(|m| python.pyc_path(m)) {
        let (from, to) = (dir.join(&pyc), prefix.join(&pyc));
        if let Some(parent) = to.parent() {
            dirs.ensure(parent).map_err(std::io::Error::other)?;
        }
        match place_file(&from, &to, mode, false, hardlinks) {
            Ok(_) => placed.push(pyc),
            // A module that did not compile has no `.pyc` there.
            Err(PrefixError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && !from.exists() => {}
            Err(err) => return Err(std::io::Error::other(err)),
        }
    }
    Ok(placed)
}
