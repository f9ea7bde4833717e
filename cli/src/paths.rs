//! Where pkgr's own files are: the cache root, the auth file, the netrc
//! file (and the credentials read from them).

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::cli::GlobalArgs;

/// The value of environment variable `name` as a path, unless unset or empty.
pub fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `--cache-dir`, else `$PKGR_CACHE_DIR`, else the first writable of
/// `$CONDA_PKGS_DIRS` and the config's `pkgs_dirs`, else
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

/// `path` made absolute against the current directory.
pub fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("invalid path {}", path.display()))
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
