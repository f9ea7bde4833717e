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

/// Whether a transaction runs link scripts. A link script is arbitrary code
/// from the package, run with the user's rights (as conda runs it); `Skip`
/// is for those who install only to inspect, or who trust a package's files
/// but not its scripts (pixi's default). A skipped script is reported, since
/// a package that needed it may not work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LinkScripts {
    /// Run post-link and pre-unlink scripts, as conda does.
    #[default]
    Run,
    /// Run none; `skipped` is told about each script that was not run.
    Skip,
}

impl LinkScripts {
    /// Runs the package's `kind` script as [`run_link_script`] does, or, when
    /// scripts are skipped, calls `skipped` if the package has one and runs
    /// nothing.
    pub fn run(
        self,
        prefix: &Path,
        record: &PackageRecord,
        kind: ScriptKind,
        skipped: &dyn Fn(),
    ) -> Result<Option<String>, PrefixError> {
        match self {
            Self::Run => run_link_script(prefix, record, kind),
            Self::Skip => {
                if script_path(prefix, record, kind).is_file() {
                    skipped();
                }
                Ok(None)
            }
        }
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

/// Runs the package's `kind` script if it has one, as conda does: with
/// `PREFIX`, `ROOT_PREFIX`, `PKG_NAME`, `PKG_VERSION`, `PKG_BUILDNUM` set, the
/// prefix's `bin/` first on `PATH`, in `bin/`. A post-link script runs in the
/// activated environment: `CONDA_PREFIX` is set, the environment's
/// `etc/conda/activate.d/*.sh` are sourced in name order, then the script is
/// sourced (so a top-level `return` works, as in conda). A pre-unlink script
/// runs with `bash -x`, unactivated.
///
/// Returns what the script left in `$PREFIX/.messages.txt` for the user
/// (conda shows it, then deletes it). A script that fails is an error carrying
/// its messages and output; the caller decides whether that fails the change
/// (post-link) or is a warning (pre-unlink).
pub fn run_link_script(
    prefix: &Path,
    record: &PackageRecord,
    kind: ScriptKind,
) -> Result<Option<String>, PrefixError> {
    let script = script_path(prefix, record, kind);
    if !script.is_file() {
        return Ok(None);
    }
    let bin = prefix.join("bin");
    let path = match std::env::var_os("PATH") {
        Some(path) => {
            let mut dirs = vec![bin.clone()];
            dirs.extend(std::env::split_paths(&path));
            std::env::join_paths(dirs).unwrap_or(path)
        }
        None => bin.clone().into_os_string(),
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
    // Whatever an earlier, interrupted script left is not this script's message.
    let messages = prefix.join(".messages.txt");
    let _ = fs_err::remove_file(&messages);

    let mut command = Command::new(shell());
    match kind {
        ScriptKind::PostLink => {
            command
                .arg("-c")
                .arg(ACTIVATED)
                .arg(&script)
                .env("CONDA_PREFIX", prefix)
                .env("CONDA_DEFAULT_ENV", prefix);
        }
        ScriptKind::PreUnlink => {
            command.arg("-x").arg(&script);
        }
    }
    let output = command
        .current_dir(&bin)
        .env("PREFIX", prefix)
        .env("ROOT_PREFIX", prefix)
        .env("PKG_NAME", record.name.as_normalized())
        .env("PKG_VERSION", record.version.to_string())
        .env("PKG_BUILDNUM", record.build_number.to_string())
        .env("PATH", path)
        .output()
        .map_err(|e| fail(format!("could not run {}: {e}", script.display())))?;
    let text = fs_err::read_to_string(&messages)
        .ok()
        .filter(|t| !t.trim().is_empty());
    let _ = fs_err::remove_file(&messages);
    if !output.status.success() {
        let mut detail = format!("{} ({})", script.display(), output.status);
        if let Some(text) = &text {
            detail.push_str(&format!("; its messages:\n{}", text.trim_end()));
        }
        let mut out = String::from_utf8_lossy(&output.stdout).into_owned();
        out.push_str(&String::from_utf8_lossy(&output.stderr));
        detail.push_str(&format!("; its output:\n{}", out.trim_end()));
        return Err(fail(detail));
    }
    Ok(text)
}

/// The shell program of an activated post-link run (`$0` is the script):
/// source the environment's activation scripts, then the link script.
const ACTIVATED: &str = r#"for activate in "$CONDA_PREFIX"/etc/conda/activate.d/*.sh; do
  if [ -f "$activate" ]; then . "$activate"; fi
done
. "$0"
"#;

/// conda runs link scripts with bash where there is one.
fn shell() -> &'static str {
    if Path::new("/bin/bash").exists() {
        "/bin/bash"
    } else {
        "/bin/sh"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> PackageRecord {
        serde_json::from_value(serde_json::json!({
            "name": "foo",
            "version": "1.2.3",
            "build": "h0_7",
            "build_number": 7,
            "subdir": "linux-64",
        }))
        .unwrap()
    }

    /// A prefix whose `kind` script for [`record`] is `body`.
    fn prefix_with_script(kind: ScriptKind, body: &str) -> tempfile::TempDir {
        let prefix = tempfile::tempdir().unwrap();
        let script = script_path(prefix.path(), &record(), kind);
        fs_err::create_dir_all(script.parent().unwrap()).unwrap();
        fs_err::write(script, body).unwrap();
        prefix
    }

    #[test]
    fn script_paths_are_condas() {
        let prefix = Path::new("/env");
        assert_eq!(
            script_path(prefix, &record(), ScriptKind::PostLink),
            Path::new("/env/bin/.foo-post-link.sh")
        );
        assert_eq!(
            script_path(prefix, &record(), ScriptKind::PreUnlink),
            Path::new("/env/bin/.foo-pre-unlink.sh")
        );
    }

    #[test]
    fn a_missing_script_is_a_no_op() {
        let prefix = tempfile::tempdir().unwrap();
        // Even a message left lying around is not picked up: nothing ran.
        fs_err::write(prefix.path().join(".messages.txt"), "stale").unwrap();
        for kind in [ScriptKind::PostLink, ScriptKind::PreUnlink] {
            assert_eq!(
                run_link_script(prefix.path(), &record(), kind).unwrap(),
                None
            );
        }
        assert!(prefix.path().join(".messages.txt").exists());
    }

    #[test]
    fn returns_and_removes_the_scripts_message() {
        let prefix = prefix_with_script(
            ScriptKind::PostLink,
            "echo \"hello from $PKG_NAME\" >> \"$PREFIX/.messages.txt\"\n",
        );
        let message = run_link_script(prefix.path(), &record(), ScriptKind::PostLink).unwrap();
        assert_eq!(message.as_deref(), Some("hello from foo\n"));
        assert!(!prefix.path().join(".messages.txt").exists());
    }

    #[test]
    fn a_blank_message_is_none() {
        let prefix = prefix_with_script(
            ScriptKind::PostLink,
            "echo '  ' > \"$PREFIX/.messages.txt\"\n",
        );
        assert_eq!(
            run_link_script(prefix.path(), &record(), ScriptKind::PostLink).unwrap(),
            None
        );
        assert!(!prefix.path().join(".messages.txt").exists());
    }

    #[test]
    fn the_script_sees_the_package_and_the_prefix() {
        let prefix = prefix_with_script(
            ScriptKind::PreUnlink,
            "echo \"$PKG_NAME $PKG_VERSION $PKG_BUILDNUM\" > seen.txt\n\
             echo \"$PREFIX\" >> seen.txt\n\
             command -v only-in-prefix >> seen.txt\n",
        );
        let tool = prefix.path().join("bin/only-in-prefix");
        fs_err::write(&tool, "#!/bin/sh\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs_err::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        assert_eq!(
            run_link_script(prefix.path(), &record(), ScriptKind::PreUnlink).unwrap(),
            None
        );
        // Run in bin/, as conda runs them: `seen.txt` is relative.
        let seen = fs_err::read_to_string(prefix.path().join("bin/seen.txt")).unwrap();
        assert_eq!(
            seen,
            format!(
                "foo 1.2.3 7\n{}\n{}\n",
                prefix.path().display(),
                tool.display()
            )
        );
    }

    #[test]
    fn a_failing_script_is_an_error_with_its_output() {
        let prefix = prefix_with_script(
            ScriptKind::PostLink,
            "echo 'to stdout'\necho 'cannot configure foo' >&2\nexit 3\n",
        );
        let err = run_link_script(prefix.path(), &record(), ScriptKind::PostLink).unwrap_err();
        let PrefixError::LinkScript {
            package,
            kind,
            detail,
        } = &err
        else {
            panic!("{err:?}");
        };
        assert_eq!(package, "foo-1.2.3-h0_7");
        assert_eq!(*kind, ScriptKind::PostLink);
        assert!(detail.contains("to stdout"), "{detail}");
        assert!(detail.contains("cannot configure foo"), "{detail}");
        assert!(detail.contains(".foo-post-link.sh"), "{detail}");
        #[cfg(unix)]
        assert!(detail.contains("exit status: 3"), "{detail}");
        let message = err.to_string();
        assert!(
            message.starts_with("the post-link script of foo-1.2.3-h0_7 failed"),
            "{message}"
        );
    }
    #[test]
    fn post_link_runs_sourced_in_the_activated_environment() {
        // A top-level `return` only works when the script is sourced, as
        // conda sources it; TEST_VAR comes from the env's activate.d.
        let prefix = prefix_with_script(
            ScriptKind::PostLink,
            "if [ \"$TEST_VAR\" = 1 ] && [ \"$CONDA_PREFIX\" = \"$PREFIX\" ]; then\n\
             echo activated > \"$PREFIX/.messages.txt\"\n  return 0\nfi\nreturn 1\n",
        );
        let activate_d = prefix.path().join("etc/conda/activate.d");
        fs_err::create_dir_all(&activate_d).unwrap();
        fs_err::write(activate_d.join("a.sh"), "export TEST_VAR=0\n").unwrap();
        fs_err::write(activate_d.join("b.sh"), "export TEST_VAR=1\n").unwrap();
        let message = run_link_script(prefix.path(), &record(), ScriptKind::PostLink).unwrap();
        assert_eq!(message.as_deref(), Some("activated\n"));

        // Without the activation script, the same script fails.
        fs_err::remove_file(activate_d.join("b.sh")).unwrap();
        let err = run_link_script(prefix.path(), &record(), ScriptKind::PostLink).unwrap_err();
        assert!(matches!(err, PrefixError::LinkScript { .. }), "{err:?}");
    }

    #[test]
    fn skipped_scripts_do_not_run_and_are_reported() {
        for kind in [ScriptKind::PostLink, ScriptKind::PreUnlink] {
            let prefix = prefix_with_script(kind, "echo ran > \"$PREFIX/ran\"\n");
            let skipped = std::cell::Cell::new(0);
            let message = LinkScripts::Skip
                .run(prefix.path(), &record(), kind, &|| {
                    skipped.set(skipped.get() + 1);
                })
                .unwrap();
            assert_eq!(message, None);
            assert_eq!(skipped.get(), 1, "{kind}");
            assert!(!prefix.path().join("ran").exists(), "{kind} ran");
            // Run: the same script runs.
            LinkScripts::Run
                .run(prefix.path(), &record(), kind, &|| panic!("not skipped"))
                .unwrap();
            assert!(prefix.path().join("ran").exists(), "{kind} did not run");
        }
        // No script: nothing to report.
        let empty = tempfile::tempdir().unwrap();
        LinkScripts::Skip
            .run(empty.path(), &record(), ScriptKind::PostLink, &|| {
                panic!("no script to skip")
            })
            .unwrap();
    }

    #[test]
    fn a_stale_message_is_not_the_next_scripts() {
        let prefix = prefix_with_script(ScriptKind::PostLink, "true\n");
        fs_err::write(prefix.path().join(".messages.txt"), "stale").unwrap();
        assert_eq!(
            run_link_script(prefix.path(), &record(), ScriptKind::PostLink).unwrap(),
            None
        );
    }
}
