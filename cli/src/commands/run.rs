//! `pkgr run`: a command in an activated environment.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::activation::{activation, display_name, sh_quote};
use crate::cli::{GlobalArgs, RunArgs};
use crate::environments;

/// `pkgr run`: runs the command in the activated environment and exits with
/// its status.
pub fn run(global: &GlobalArgs, args: RunArgs) -> anyhow::Result<ExitCode> {
    let prefix = environments::prefix_or_active(global, &args.target)?;
    let name = display_name(global, &prefix);
    let activation = activation(global, &prefix, &name, "sh")?;
    let Some((program, rest)) = args.command.split_first() else {
        bail!("name the command to run");
    };
    // Looked up in the activated PATH (not this process's), as a shell in
    // the activated environment would.
    let resolved: OsString = if Path::new(program).components().count() == 1 {
        match find_in_path(program, &activation.set) {
            Some(found) => found.into_os_string(),
            None => bail!(
                "`{}` was not found in {} or on PATH",
                program.to_string_lossy(),
                activation.prefix.join("bin").display()
            ),
        }
    } else {
        program.clone()
    };
    let mut command = if activation.scripts.is_empty() {
        std::process::Command::new(&resolved)
    } else {
        // The activation scripts are sourced by a shell, which then becomes
        // the program (exec), so signals and the exit status are its own.
        let mut script = String::from("set -e\n");
        for path in &activation.scripts {
            script.push_str(&format!(". {}\n", sh_quote(&path.to_string_lossy())));
        }
        script.push_str("set +e\nexec \"$@\"\n");
        let mut command = std::process::Command::new("bash");
        command.arg("-c").arg(script).arg("pkgr-run").arg(&resolved);
        command
    };
    command.args(rest);
    if let Some(dir) = &args.cwd {
        // Checked here: a missing directory would otherwise fail the spawn
        // as if the command were missing.
        if !dir.is_dir() {
            bail!("--cwd {}: no such directory", dir.display());
        }
        command.current_dir(dir);
    }
    for (key, value) in &activation.set {
        command.env(key, value);
    }
    let status = match command.status() {
        Ok(status) => status,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "`{}` was not found in {} or on PATH",
            program.to_string_lossy(),
            activation.prefix.join("bin").display()
        ),
        Err(e) => {
            return Err(e).with_context(|| format!("could not run `{}`", program.to_string_lossy()))
        }
    };
    Ok(exit_code_of(status))
}

fn exit_code_of(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        // As a shell reports it: 128 + the signal.
        (None, Some(signal)) => ExitCode::from(u8::try_from(128 + signal).unwrap_or(1)),
        (None, None) => ExitCode::FAILURE,
    }
}

/// `program` looked up in the `PATH` among `vars`.
fn find_in_path(program: &OsString, vars: &[(String, OsString)]) -> Option<PathBuf> {
    let path = vars.iter().find(|(k, _)| k == "PATH")?.1.clone();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs_err::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
