//! Finding and naming environments: the envs directories, the prefix a
//! command works on (`-n NAME`, `-p PATH`, the active one), the known ones.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::cli::{EnvTarget, GlobalArgs};
use crate::paths::{absolute, env_path};

/// The directories named environments live in (`$PKGR_ROOT/envs`, else
/// `$CONDA_ENVS_PATH` (or `$CONDA_ENVS_DIRS`) before the config's
/// `envs_dirs`, else `~/.local/share/pkgr/envs`).
pub fn envs_dirs(global: &GlobalArgs) -> anyhow::Result<&[PathBuf]> {
    let dirs = &global.config.envs_dirs.value;
    if dirs.is_empty() {
        bail!("no directory for named environments (HOME and PKGR_ROOT are not set): use -p PATH");
    }
    Ok(dirs)
}

/// The characters conda refuses in an environment name
/// (`PREFIX_NAME_DISALLOWED_CHARS` in conda), and `\`, a separator elsewhere.
const NAME_DISALLOWED: [char; 5] = ['/', '\\', ' ', ':', '#'];

/// Fails unless `name` is a name conda would take for an environment: not
/// empty, not `.` or `..`, none of `/ \ : #`, no space and no control
/// character. A newline in a name would forge a line of `conda-meta/history`
/// and of every listing that shows it; the others break `PATH`-like lists,
/// comments and paths.
pub fn check_env_name(name: &str) -> anyhow::Result<()> {
    let why = if name.is_empty() {
        Some("it is empty")
    } else if name == "." || name == ".." {
        Some("it names a directory, not an environment")
    } else if name.chars().any(char::is_control) {
        Some("it contains a control character (a newline, a tab, an escape...)")
    } else if name.contains(NAME_DISALLOWED) {
        Some("names cannot contain `/`, `\\`, `:`, `#` or spaces (conda's rule)")
    } else {
        None
    };
    match why {
        Some(why) => bail!(
            "invalid environment name \"{}\": {why}; use a plain name, or -p PATH",
            escaped(name)
        ),
        None => Ok(()),
    }
}

/// `text` with its control characters escaped (`\n`, `\u{1b}`), so that
/// showing it starts no line and moves no cursor.
fn escaped(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}

/// Fails if `path` holds a control character: it would be written into
/// `conda-meta/history`, activation scripts and shebangs, where a newline
/// starts a line of the attacker's choosing.
fn check_env_path(path: &Path) -> anyhow::Result<()> {
    let text = path.to_string_lossy();
    if text.chars().any(char::is_control) {
        bail!(
            "invalid environment path \"{}\": it contains a control character (a newline, a tab, an escape...)",
            escaped(&text)
        );
    }
    Ok(())
}

/// Where `-n NAME` is: the first envs directory holding an environment of
/// that name, else (for a new one) the first envs directory pkgr can write
/// in, as conda takes the first writable one (else the first, whose error
/// then says why).
pub fn named_env(global: &GlobalArgs, name: &str) -> anyhow::Result<PathBuf> {
    check_env_name(name)?;
    let dirs = envs_dirs(global)?;
    if let Some(found) = dirs
        .iter()
        .map(|d| d.join(name))
        .find(|p| p.join("conda-meta").is_dir())
    {
        return Ok(found);
    }
    let dir = dirs
        .iter()
        .find(|d| crate::settings::is_writable_dir(d))
        .unwrap_or(&dirs[0]);
    Ok(dir.join(name))
}

/// The prefix a `-n NAME` / `-p PATH` pair names.
pub fn prefix(global: &GlobalArgs, target: &EnvTarget) -> anyhow::Result<PathBuf> {
    match (&target.name, &target.prefix) {
        (_, Some(path)) => {
            check_env_path(path)?;
            absolute(path)
        }
        (Some(name), None) => named_env(global, name),
        (None, None) => bail!("name an environment with -n NAME or -p PATH"),
    }
}

/// Like [`prefix`], but with neither `-n` nor `-p` the active environment
/// (`$CONDA_PREFIX`), as conda does for `list`, `install`, `run`, ...; with
/// none active, the one `$CONDA_DEFAULT_ENV` names, as conda reads it (a
/// name, or a path when it holds a `/`).
pub fn prefix_or_active(global: &GlobalArgs, target: &EnvTarget) -> anyhow::Result<PathBuf> {
    if target.name.is_none() && target.prefix.is_none() {
        if let Some(active) = env_path("CONDA_PREFIX") {
            return absolute(&active);
        }
        if let Some(default) = std::env::var("CONDA_DEFAULT_ENV")
            .ok()
            .filter(|name| !name.is_empty())
        {
            // `base` and `root` name the base environment in conda.
            if default != "base" && default != "root" {
                if default.contains('/') {
                    check_env_path(Path::new(&default))?;
                    return absolute(Path::new(&default));
                }
                return named_env(global, &default)
                    .context("$CONDA_DEFAULT_ENV does not name an environment");
            }
        }
        bail!("name an environment with -n NAME or -p PATH (no environment is active)");
    }
    prefix(global, target)
}

/// Fails unless `prefix` holds an environment (a `conda-meta/`): the error
/// names the known environments, as a hint for a mistyped name.
pub fn require_environment(global: &GlobalArgs, prefix: &Path) -> anyhow::Result<()> {
    if prefix.join("conda-meta").is_dir() {
        return Ok(());
    }
    let known: Vec<String> = known_environments(global)
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let hint = if known.is_empty() {
        String::from("create one with `pkgr create`")
    } else {
        format!("known environments: {}", known.join(", "))
    };
    bail!("there is no environment at {} ({hint})", prefix.display())
}

/// Every environment in the envs directories, sorted by path.
pub fn known_environments(global: &GlobalArgs) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for dir in envs_dirs(global)? {
        let Ok(entries) = fs_err::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.join("conda-meta").is_dir() {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}
