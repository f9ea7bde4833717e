//! Activation as conda does it, shared by `pkgr run` and the scripts behind
//! `pkgr shell hook` / `pkgr activate` / `pkgr deactivate`
//! (`commands/run.rs`, `commands/shell.rs`).
//!
//! Activating a prefix means: its `bin/` first on `PATH` (the previously
//! active environment's `bin/` taken off), `CONDA_PREFIX`,
//! `CONDA_DEFAULT_ENV`, `CONDA_SHLVL` and `CONDA_PROMPT_MODIFIER` set, the
//! variables of `conda-meta/state` (`env_vars`, written from an
//! environment.yml's `variables:`) exported, then the environment's
//! `etc/conda/activate.d/*.sh` (`*.fish` for fish) sourced in name order.
//! Deactivating undoes that and sources `etc/conda/deactivate.d` first.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cli::GlobalArgs;
use crate::environments;
use pkgr_prefix::meta::read_state_variables;

/// What activating a prefix sets.
pub struct Activation {
    /// The environment activated.
    pub prefix: PathBuf,
    /// Variables to set, in order.
    pub set: Vec<(String, OsString)>,
    /// Scripts to source, in order.
    pub scripts: Vec<PathBuf>,
}

/// The scripts of `etc/conda/<dir>` ending in `ext`, in name order.
pub fn scripts(prefix: &Path, dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs_err::read_dir(prefix.join("etc").join("conda").join(dir))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == ext) && p.is_file())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// `PATH` without the entries of `old_prefix`'s `bin/`, with `prefix/bin` first.
fn path_with(prefix: &Path, old_prefix: Option<&Path>) -> anyhow::Result<OsString> {
    let current = std::env::var_os("PATH").unwrap_or_default();
    let old_bin = old_prefix.map(|p| p.join("bin"));
    let mut entries = vec![prefix.join("bin")];
    entries.extend(
        std::env::split_paths(&current)
            .filter(|p| Some(p) != old_bin.as_ref() && *p != prefix.join("bin")),
    );
    std::env::join_paths(entries).context("an entry of PATH holds a `:`")
}

/// What activating `prefix` (shown as `display_name`) sets and sources, for
/// a shell whose scripts end in `shell_ext`.
pub fn activation(
    global: &GlobalArgs,
    prefix: &Path,
    display_name: &str,
    shell_ext: &str,
) -> anyhow::Result<Activation> {
    environments::require_environment(global, prefix)?;
    let old = std::env::var_os("CONDA_PREFIX").map(PathBuf::from);
    let level: u32 = std::env::var("CONDA_SHLVL")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut set = vec![
        ("PATH".to_owned(), path_with(prefix, old.as_deref())?),
        ("CONDA_PREFIX".to_owned(), prefix.as_os_str().to_owned()),
        ("CONDA_DEFAULT_ENV".to_owned(), display_name.into()),
        (
            "CONDA_SHLVL".to_owned(),
            (if old.is_some() {
                level.max(1)
            } else {
                level + 1
            })
            .to_string()
            .into(),
        ),
        (
            "CONDA_PROMPT_MODIFIER".to_owned(),
            format!("({display_name}) ").into(),
        ),
    ];
    for (key, value) in read_state_variables(prefix)? {
        set.push((key, value.into()));
    }
    Ok(Activation {
        prefix: prefix.to_path_buf(),
        set,
        scripts: scripts(prefix, "activate.d", shell_ext),
    })
}

/// The name conda shows for a prefix: the directory name when it lives in
/// an envs directory, else the path.
pub fn display_name(global: &GlobalArgs, prefix: &Path) -> String {
    let in_envs_dir = environments::envs_dirs(global)
        .map(|dirs| dirs.iter().any(|d| prefix.parent() == Some(d.as_path())))
        .unwrap_or(false);
    match prefix.file_name() {
        Some(name) if in_envs_dir => name.to_string_lossy().into_owned(),
        _ => prefix.display().to_string(),
    }
}

/// `'text'` for sh (bash, zsh).
pub fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `'text'` for fish.
pub fn fish_quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', r"\\").replace('\'', r"\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
        assert_eq!(fish_quote(r"a'b\c"), r"'a\'b\\c'");
    }
}
