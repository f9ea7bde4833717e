//! `pkgr shell hook|activate|deactivate`: the scripts a shell evaluates to
//! activate an environment, and the shell function that makes `pkgr activate`
//! and `pkgr deactivate` work.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::activation::{activation, display_name, fish_quote, scripts, sh_quote};
use crate::cli::{GlobalArgs, ShellCommand, ShellDotCommand, ShellKind};
use crate::environments;
use crate::output::print_stdout;
use pkgr_prefix::meta::read_state_variables;

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

fn quote(shell: ShellKind, text: &str) -> String {
    match shell {
        ShellKind::Fish => fish_quote(text),
        ShellKind::Bash | ShellKind::Zsh | ShellKind::Posix => sh_quote(text),
    }
}

/// The line that runs `script` in the calling shell (`.` for POSIX sh,
/// which has no `source`).
fn source_line(shell: ShellKind, script: &Path) -> String {
    let command = if shell == ShellKind::Posix {
        "."
    } else {
        "source"
    };
    format!("{command} {}\n", quote(shell, &script.to_string_lossy()))
}

fn set_line(shell: ShellKind, key: &str, value: &str) -> String {
    match shell {
        ShellKind::Fish if key == "PATH" => {
            // fish keeps PATH as a list.
            let parts: Vec<String> = value.split(':').map(fish_quote).collect();
            format!("set -gx PATH {}\n", parts.join(" "))
        }
        ShellKind::Fish => format!("set -gx {key} {}\n", fish_quote(value)),
        ShellKind::Bash | ShellKind::Zsh | ShellKind::Posix => {
            format!("export {key}={}\n", sh_quote(value))
        }
    }
}

fn unset_line(shell: ShellKind, key: &str) -> String {
    match shell {
        ShellKind::Fish => format!("set -e {key}\n"),
        ShellKind::Bash | ShellKind::Zsh | ShellKind::Posix => format!("unset {key}\n"),
    }
}

fn ext_of(shell: ShellKind) -> &'static str {
    match shell {
        ShellKind::Fish => "fish",
        ShellKind::Bash | ShellKind::Zsh | ShellKind::Posix => "sh",
    }
}

/// The environment `pkgr activate ENV` means: a path if it holds a `/`,
/// else a name.
fn env_of(global: &GlobalArgs, env: &str) -> anyhow::Result<PathBuf> {
    if env.contains('/') || env == "." || env == ".." {
        std::path::absolute(env).with_context(|| format!("invalid path {env}"))
    } else {
        environments::named_env(global, env)
    }
}

/// `pkgr shell.bash|shell.zsh|shell.fish|shell.posix ...` (conda's
/// spellings): `pkgr shell ... --shell SHELL`.
pub fn run_dot(
    global: &GlobalArgs,
    shell: ShellKind,
    command: &ShellDotCommand,
) -> anyhow::Result<()> {
    let command = match command {
        ShellDotCommand::Hook => ShellCommand::Hook { shell: Some(shell) },
        ShellDotCommand::Activate { env } => ShellCommand::Activate {
            shell: Some(shell),
            env: env.clone(),
        },
        ShellDotCommand::Deactivate => ShellCommand::Deactivate { shell: Some(shell) },
    };
    run(global, &command)
}

/// `pkgr shell ...`.
pub fn run(global: &GlobalArgs, command: &ShellCommand) -> anyhow::Result<()> {
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
                out.push_str(&source_line(shell, script));
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
        out.push_str(&source_line(shell, &script));
    }
    for key in read_state_variables(prefix).unwrap_or_default().keys() {
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
        // POSIX sh: no `local`, no `${@:2}`; the function's variables are
        // unset after use instead.
        ShellKind::Posix => format!(
            r#"# pkgr shell hook (posix): eval "$(pkgr shell hook -s posix)"
export PKGR_EXE={exe}
pkgr() {{
    case "${{1:-}}" in
        activate|deactivate)
            __pkgr_command="$1"
            shift
            __pkgr_script="$("$PKGR_EXE" shell "$__pkgr_command" --shell posix "$@")" || {{
                __pkgr_status=$?
                unset __pkgr_command __pkgr_script
                return $__pkgr_status
            }}
            unset __pkgr_command
            eval "$__pkgr_script"
            __pkgr_status=$?
            unset __pkgr_script
            return $__pkgr_status
            ;;
        *)
            "$PKGR_EXE" "$@"
            ;;
    esac
}}
"#,
            exe = sh_quote(&exe)
        ),
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

/// `pkgr activate` / `pkgr deactivate` run as a program: only the shell
/// function the hook defines can change the calling shell.
pub fn needs_hook() -> anyhow::Result<()> {
    anyhow::bail!(
        "`pkgr activate` and `pkgr deactivate` change the calling shell, which needs pkgr's shell function: run `eval \"$(pkgr shell hook)\"` first (fish: `pkgr shell hook -s fish | source`; for every new shell: `pkgr init`), or use `pkgr run -n ENV COMMAND`"
    );
}
