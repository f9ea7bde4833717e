//! Link scripts: `bin/.<name>-post-link.sh` after a package is linked and
//! `bin/.<name>-pre-unlink.sh` before it is unlinked, run as conda runs them.

use std::path::{Path, PathBuf};
use std::process::Command;

use rattler_conda_types::PackageRecord;

use crate::PrefixError;

/// Which script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptKind {
    /// After the package's files are in place.
    PostLink,
    /// Before the package's files are removed.
    PreUnlink,
}

impl ScriptKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::PostLink => "post-link",
            Self::PreUnlink => "pre-unlink",
        }
    }
}

impl std::fmt::Display for ScriptKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The script's path in the prefix.
pub fn script_path(prefix: &Path, record: &PackageRecord, kind: ScriptKind) -> PathBuf {
    prefix.join("bin").join(format!(
        ".{}-{}.sh",
        record.name.as_normalized(),
        kind.as_str()
    ))
}

/// Runs the package's `kind` script if it has one, with `PREFIX`, `PKG_NAME`,
/// `PKG_VERSION`, `PKG_BUILDNUM` set and the prefix's `bin/` first on PATH.
/// Returns what the script left in `$PREFIX/.messages.txt` for the user
/// (conda shows it, then deletes it). A script that fails is an error carrying
/// its output.
pub fn run_link_script(
    prefix: &Path,
    record: &PackageRecord,
    kind: ScriptKind,
) -> Result<Option<String>, PrefixError> {
    let script = script_path(prefix, record, kind);
    if !script.is_file() {
        return Ok(None);
    }
    let path = match std::env::var_os("PATH") {
        Some(path) => {
            let mut dirs = vec![prefix.join("bin")];
            dirs.extend(std::env::split_paths(&path));
            std::env::join_paths(dirs).unwrap_or(path)
        }
        None => prefix.join("bin").into_os_string(),
    };
    let package = format!(
        "{}-{}-{}",
        record.name.as_normalized(),
        record.version,
        record.build
    );
    let fail = |detail: String| PrefixError::LinkScript {
        package: package.clone(),
        kind,
        detail,
    };
    let output = Command::new(shell())
        .arg("-x")
        .arg(&script)
        .current_dir(prefix)
        .env("PREFIX", prefix)
        .env("ROOT_PREFIX", prefix)
        .env("PKG_NAME", record.name.as_normalized())
        .env("PKG_VERSION", record.version.to_string())
        .env("PKG_BUILDNUM", record.build_number.to_string())
        .env("PATH", path)
        .output()
        .map_err(|e| fail(format!("could not run {}: {e}", script.display())))?;
    if !output.status.success() {
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        return Err(fail(format!(
            "{} ({}); its output:\n{}",
            script.display(),
            output.status,
            text.trim_end()
        )));
    }
    let messages = prefix.join(".messages.txt");
    let text = std::fs::read_to_string(&messages).ok();
    let _ = std::fs::remove_file(&messages);
    Ok(text.filter(|t| !t.trim().is_empty()))
}

/// conda runs link scripts with bash where there is one.
fn shell() -> &'static str {
    if Path::new("/bin/bash").exists() {
        "/bin/bash"
    } else {
        "/bin/sh"
    }
}
