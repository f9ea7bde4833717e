//! Where things live: the cache root, the environments directories, the
//! prefix a command works on.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::cli::{EnvTarget, GlobalArgs};

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `--cache-dir`, else `$PKGR_CACHE_DIR`, else the config's `pkgs_dirs`, else
/// `$XDG_CACHE_HOME/pkgr`, else `~/.cache/pkgr`.
pub fn cache_root(global: &GlobalArgs) -> anyhow::Result<PathBuf> {
    if let Some(dir) = &global.cache_dir {
        return absolute(dir);
    }
    if let Some(dir) = &global.config.cache_dir.value {
        return Ok(dir.clone());
    }
    if let Some(dir) = env_path("XDG_CACHE_HOME") {
        return Ok(dir.join("pkgr"));
    }
    let home = env_path("HOME")
        .context("cannot find the home directory (HOME is not set); pass --cache-dir")?;
    Ok(home.join(".cache").join("pkgr"))
}

/// The directories named environments live in (`$PKGR_ROOT/envs`, else the
/// config's `envs_dirs`, else `~/.local/share/pkgr/envs`).
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
/// that name, else (for a new one) the first envs directory.
pub fn named_env(global: &GlobalArgs, name: &str) -> anyhow::Result<PathBuf> {
    check_env_name(name)?;
    let dirs = envs_dirs(global)?;
    Ok(dirs
        .iter()
        .map(|d| d.join(name))
        .find(|p| p.join("conda-meta").is_dir())
        .unwrap_or_else(|| dirs[0].join(name)))
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
/// (`$CONDA_PREFIX`), as conda does for `list`, `install`, `run`, ...
pub fn prefix_or_active(global: &GlobalArgs, target: &EnvTarget) -> anyhow::Result<PathBuf> {
    if target.name.is_none() && target.prefix.is_none() {
        if let Some(active) = env_path("CONDA_PREFIX") {
            return absolute(&active);
        }
        bail!("name an environment with -n NAME or -p PATH (no environment is active)");
    }
    prefix(global, target)
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("invalid path {}", path.display()))
}

/// Fails unless `prefix` holds an environment (a `conda-meta/`): the error
/// names the known environments, as a hint for a mistyped name.
pub fn require_environment(global: &GlobalArgs, prefix: &Path) -> anyhow::Result<()> {
    if prefix.join("conda-meta").is_dir() {
        return Ok(());
    }
    let known: Vec<String> = crate::envs::known_environments(global)
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

/// pkgr's auth file: `$PKGR_AUTH_FILE`, else `$XDG_CONFIG_HOME/pkgr/auth.json`,
/// else `~/.config/pkgr/auth.json`.
pub fn auth_file() -> Option<PathBuf> {
    env_path("PKGR_AUTH_FILE").or_else(|| {
        env_path("XDG_CONFIG_HOME")
            .or_else(|| env_path("HOME").map(|h| h.join(".config")))
            .map(|d| d.join("pkgr").join("auth.json"))
    })
}

/// The netrc file: `$NETRC`, else `~/.netrc`.
pub fn netrc_file() -> Option<PathBuf> {
    env_path("NETRC").or_else(|| env_path("HOME").map(|h| h.join(".netrc")))
}

/// The credentials of every source (see `pkgr_fetch`'s auth module).
pub fn credentials() -> anyhow::Result<pkgr_fetch::Credentials> {
    Ok(pkgr_fetch::Credentials::load(
        auth_file().as_deref(),
        netrc_file().as_deref(),
        std::env::vars(),
    )?)
}
