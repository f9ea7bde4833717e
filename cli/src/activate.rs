//! Activation as conda does it: `pkgr run`, and the scripts behind
//! `pkgr shell hook` / `pkgr activate` / `pkgr deactivate`.
//!
//! Activating a prefix means: its `bin/` first on `PATH` (the previously
//! active environment's `bin/` taken off), `CONDA_PREFIX`,
//! `CONDA_DEFAULT_ENV`, `CONDA_SHLVL` and `CONDA_PROMPT_MODIFIER` set, the
//! variables of `conda-meta/state` (`env_vars`, written from an
//! environment.yml's `variables:`) exported, then the environment's
//! `etc/conda/activate.d/*.sh` (`*.fish` for fish) sourced in name order.
//! Deactivating undoes that and sources `etc/conda/deactivate.d` first.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::cli::{GlobalArgs, RunArgs, ShellCommand, ShellKind};
use crate::output::print_stdout;
use crate::paths;

/// What activating a prefix sets.
struct Activation {
    prefix: PathBuf,
    /// Variables to set, in order.
    set: Vec<(String, OsString)>,
    /// Scripts to source, in order.
    scripts: Vec<PathBuf>,
}

/// Whether `name` can be a shell variable's name (`[A-Za-z_][A-Za-z0-9_]*`):
/// names go unquoted into the scripts `pkgr shell activate` prints, which the
/// user's shell evaluates, so nothing else may pass.
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The variables an environment asks for in `conda-meta/state`. A name that
/// cannot be a variable's is an error naming it (it would be code in the
/// user's shell).
pub fn state_variables(prefix: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let path = prefix.join("conda-meta").join("state");
    let text = match fs_err::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e.into()),
    };
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    let mut vars = BTreeMap::new();
    if let Some(map) = value.get("env_vars").and_then(|v| v.as_object()) {
        for (key, value) in map {
            if !is_variable_name(key) {
                bail!(
                    "{} sets `{key}`, which is not a variable name (letters, digits and _, not starting with a digit)",
                    path.display()
                );
            }
            let value = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            vars.insert(key.clone(), value);
        }
    }
    Ok(vars)
}

/// Writes `variables` as the environment's `conda-meta/state` (conda's
/// `env_vars`), through a temp file and a rename.
pub fn write_state_variables(
    prefix: &Path,
    variables: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let meta = prefix.join("conda-meta");
    let path = meta.join("state");
    let text = serde_json::to_string_pretty(&serde_json::json!({ "env_vars": variables }))?;
    let mut tmp = tempfile::NamedTempFile::new_in(&meta)
        .with_context(|| format!("could not write in {}", meta.display()))?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())
        .with_context(|| format!("could not write {}", path.display()))?;
    tmp.persist(&path)
        .with_context(|| format!("could not write {}", path.display()))?;
    Ok(())
}

/// The scripts of `etc/conda/<dir>` ending in `ext`, in name order.
fn scripts(prefix: &Path, dir: &str, ext: &str) -> Vec<PathBuf> {
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

fn activation(
    global: &GlobalArgs,
    prefix: &Path,
    display_name: &str,
    shell_ext: &str,
) -> anyhow::Result<Activation> {
    paths::require_environment(global, prefix)?;
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
    for (key, value) in state_variables(prefix)? {
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
fn display_name(global: &GlobalArgs, prefix: &Path) -> String {
    let in_envs_dir = paths::envs_dirs(global)
        .map(|dirs| dirs.iter().any(|d| prefix.parent() == Some(d.as_path())))
        .unwrap_or(false);
    match prefix.file_name() {
        Some(name) if in_envs_dir => name.to_string_lossy().into_owned(),
        _ => prefix.display().to_string(),
    }
}

/// `pkgr run`: runs the command in the activated environment and exits with
/// its status.
pub fn run(global: &GlobalArgs, args: RunArgs) -> anyhow::Result<ExitCode> {
    let prefix = paths::prefix_or_active(global, &args.target)?;
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

/// The shell named by `--shell`, else by `$SHELL`, else bash.
fn shell_of(given: Option<ShellKind>) -> ShellKind {
    given.unwrap_or_else(|| {
        let shell = std::env::var("SHELL").unwrap_or_default();
        match Path::new(&shell).file_name().and_then(|n| n.to_str()) {
            Some("zsh") => ShellKind::Zsh,
            Some("fish") => ShellKind::Fish,
            _ => ShellKind::Bash,
        }
    })
}

/// `'text'` for sh (bash, zsh).
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `'text'` for fish.
fn fish_quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', r"\\").replace('\'', r"\'"))
}

fn quote(shell: ShellKind, text: &str) -> String {
    match shell {
        ShellKind::Fish => fish_quote(text),
        ShellKind::Bash | ShellKind::Zsh => sh_quote(text),
    }
}

fn set_line(shell: ShellKind, key: &str, value: &str) -> String {
    match shell {
        ShellKind::Fish if key == "PATH" => {
            // fish keeps PATH as a list.
            let parts: Vec<String> = value.split(':').map(fish_quote).collect();
            format!("set -gx PATH {}\n", parts.join(" "))
        }
        ShellKind::Fish => format!("set -gx {key} {}\n", fish_quote(value)),
        ShellKind::Bash | ShellKind::Zsh => format!("export {key}={}\n", sh_quote(value)),
    }
}

fn unset_line(shell: ShellKind, key: &str) -> String {
    match shell {
        ShellKind::Fish => format!("set -e {key}\n"),
        ShellKind::Bash | ShellKind::Zsh => format!("unset {key}\n"),
    }
}

fn ext_of(shell: ShellKind) -> &'static str {
    match shell {
        ShellKind::Fish => "fish",
        ShellKind::Bash | ShellKind::Zsh => "sh",
    }
}

/// The environment `pkgr activate ENV` means: a path if it holds a `/`,
/// else a name.
fn env_of(global: &GlobalArgs, env: &str) -> anyhow::Result<PathBuf> {
    if env.contains('/') || env == "." || env == ".." {
        std::path::absolute(env).with_context(|| format!("invalid path {env}"))
    } else {
        paths::named_env(global, env)
    }
}

/// `pkgr shell ...`.
pub fn shell(global: &GlobalArgs, command: &ShellCommand) -> anyhow::Result<()> {
    match command {
        ShellCommand::Hook { shell } => print_stdout(&hook(shell_of(*shell))?),
        ShellCommand::Activate { shell, env } => {
            let shell = shell_of(*shell);
            let prefix = env_of(global, env)?;
            let name = display_name(global, &prefix);
            let mut out = String::new();
            // Leave the active environment first (its deactivate.d scripts
            // and variables), as conda does.
            if let Some(old) = std::env::var_os("CONDA_PREFIX") {
                out.push_str(&deactivate_script(shell, Path::new(&old), false)?);
            }
            let activation = activation(global, &prefix, &name, ext_of(shell))?;
            for (key, value) in &activation.set {
                out.push_str(&set_line(shell, key, &value.to_string_lossy()));
            }
            for script in &activation.scripts {
                out.push_str(&format!(
                    "source {}\n",
                    quote(shell, &script.to_string_lossy())
                ));
            }
            print_stdout(&out);
        }
        ShellCommand::Deactivate { shell } => {
            let shell = shell_of(*shell);
            let Some(old) = std::env::var_os("CONDA_PREFIX") else {
                bail!("no environment is active (CONDA_PREFIX is not set)");
            };
            print_stdout(&deactivate_script(shell, Path::new(&old), true)?);
        }
    }
    Ok(())
}

/// What leaving `prefix` runs and unsets; `last`: nothing is activated next
/// (so PATH loses the prefix and the level goes down).
fn deactivate_script(shell: ShellKind, prefix: &Path, last: bool) -> anyhow::Result<String> {
    let mut out = String::new();
    for script in scripts(prefix, "deactivate.d", ext_of(shell)) {
        out.push_str(&format!(
            "source {}\n",
            quote(shell, &script.to_string_lossy())
        ));
    }
    for key in state_variables(prefix).unwrap_or_default().keys() {
        out.push_str(&unset_line(shell, key));
    }
    if last {
        let bin = prefix.join("bin");
        let current = std::env::var_os("PATH").unwrap_or_default();
        let kept: Vec<PathBuf> = std::env::split_paths(&current)
            .filter(|p| *p != bin)
            .collect();
        let path = std::env::join_paths(kept).context("an entry of PATH holds a `:`")?;
        out.push_str(&set_line(shell, "PATH", &path.to_string_lossy()));
        for key in ["CONDA_PREFIX", "CONDA_DEFAULT_ENV", "CONDA_PROMPT_MODIFIER"] {
            out.push_str(&unset_line(shell, key));
        }
        let level: u32 = std::env::var("CONDA_SHLVL")
            .ok()
            .and_then(|l| l.parse().ok())
            .unwrap_or(1);
        out.push_str(&set_line(
            shell,
            "CONDA_SHLVL",
            &level.saturating_sub(1).to_string(),
        ));
    }
    Ok(out)
}

/// The shell function that makes `pkgr activate` and `pkgr deactivate` change
/// the calling shell (a program cannot change its parent's environment: the
/// function evaluates what `pkgr shell activate` prints).
fn hook(shell: ShellKind) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("cannot find the pkgr executable")?;
    let exe = exe.to_string_lossy();
    Ok(match shell {
        ShellKind::Bash | ShellKind::Zsh => {
            let name = if shell == ShellKind::Zsh {
                "zsh"
            } else {
                "bash"
            };
            format!(
                r#"# pkgr shell hook ({name}): eval "$(pkgr shell hook -s {name})"
export PKGR_EXE={exe}
pkgr() {{
    case "${{1:-}}" in
        activate|deactivate)
            local __pkgr_script
            __pkgr_script="$("$PKGR_EXE" shell "$1" --shell {name} "${{@:2}}")" || return $?
            eval "$__pkgr_script"
            ;;
        *)
            "$PKGR_EXE" "$@"
            ;;
    esac
}}
"#,
                exe = sh_quote(&exe)
            )
        }
        ShellKind::Fish => format!(
            r#"# pkgr shell hook (fish): pkgr shell hook -s fish | source
set -gx PKGR_EXE {exe}
function pkgr
    if test (count $argv) -gt 0; and contains -- $argv[1] activate deactivate
        set -l __pkgr_script ("$PKGR_EXE" shell $argv[1] --shell fish $argv[2..-1]); or return $status
        string join \n -- $__pkgr_script | source
    else
        "$PKGR_EXE" $argv
    end
end
"#,
            exe = fish_quote(&exe)
        ),
    })
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
