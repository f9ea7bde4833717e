//! `-f FILE` of `create` and `install`: what environment files, spec lists
//! and lock files ask for (read by `pkgr-envfile`), merged with the command
//! line, and the refusals that keep pkgr from installing less than asked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use pkgr_envfile::{EnvFile, LockedEnvironment, ReadOptions};
use rattler_conda_types::Subdir;

use crate::output::Progress;

/// What the files of a request ask for.
#[derive(Debug, Default)]
pub struct FromFiles {
    /// Specs to solve (environment.yml `dependencies`, spec lists).
    pub specs: Vec<String>,
    /// Channels the files name, in order.
    pub channels: Vec<String>,
    /// `variables:` of an environment.yml (written to `conda-meta/state`).
    pub variables: BTreeMap<String, String>,
    /// `name:` of an environment.yml.
    pub name: Option<String>,
    /// Exact packages (an @EXPLICIT list, conda-lock.yml, pixi.lock).
    pub locked: Option<(PathBuf, LockedEnvironment)>,
}

/// Reads `files` for `platform`. A lock file must come alone (it is the
/// whole environment); pip/PyPI packages are refused, naming them, rather
/// than left out.
pub fn read(
    files: &[PathBuf],
    platform: Subdir,
    lock_environment: Option<&str>,
    progress: &Progress,
) -> anyhow::Result<FromFiles> {
    let mut out = FromFiles::default();
    let mut options = ReadOptions::new(platform);
    if let Some(environment) = lock_environment {
        options = options.with_environment(environment);
    }
    for file in files {
        let read = pkgr_envfile::read(file, &options)
            .with_context(|| format!("could not read {}", file.display()))?;
        match read {
            EnvFile::Environment(env) => {
                if !env.pip.is_empty() {
                    bail!(
                        "{} has a `pip:` section, which pkgr does not install (it installs conda packages only): {}\nremove the section, or install those packages with pip in the environment afterwards (`pkgr run -n ENV pip install ...`)",
                        file.display(),
                        env.pip.join(", ")
                    );
                }
                for key in &env.unknown_keys {
                    progress.warn(&format!(
                        "{}: unknown key `{key}` ignored (conda reads name, channels, dependencies, variables, prefix)",
                        file.display()
                    ));
                }
                out.specs.extend(env.dependencies);
                for channel in env.channels {
                    if !out.channels.contains(&channel) {
                        out.channels.push(expand_variables(&channel, file)?);
                    }
                }
                if let Some(bad) = env
                    .variables
                    .keys()
                    .find(|k| !pkgr_prefix::meta::is_variable_name(k))
                {
                    bail!(
                        "{}: `variables:` has `{bad}`, which is not a variable name (letters, digits and _, not starting with a digit)",
                        file.display()
                    );
                }
                out.variables.extend(env.variables);
                if env.name.is_some() {
                    out.name = env.name;
                }
            }
            EnvFile::Specs(specs) => out.specs.extend(specs),
            EnvFile::Locked(locked) => {
                if files.len() > 1 {
                    bail!(
                        "{} is a lock file: it is the whole environment, so give it as the only -f (it was given with {})",
                        file.display(),
                        files
                            .iter()
                            .filter(|f| *f != file)
                            .map(|f| f.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                if !locked.pypi.is_empty() {
                    bail!(
                        "{} lists PyPI packages, which pkgr does not install (it installs conda packages only): {}",
                        file.display(),
                        locked.pypi.join(", ")
                    );
                }
                if let Some(for_platform) = locked.platform {
                    if for_platform != platform && for_platform != Subdir::NoArch {
                        bail!(
                            "{} is for {for_platform}, not {platform} (pass --platform {for_platform} to create an environment for {for_platform})",
                            file.display()
                        );
                    }
                }
                if locked.packages.is_empty() {
                    bail!("{} lists no conda packages for {platform}", file.display());
                }
                out.locked = Some((file.clone(), locked));
            }
        }
    }
    Ok(out)
}

/// `${VAR}` / `$VAR` in a channel of an environment file, as conda expands
/// them (an unset variable is an error naming it, not an empty string).
fn expand_variables(text: &str, file: &Path) -> anyhow::Result<String> {
    crate::settings::expand_env_vars(text)
        .map_err(|e| anyhow::anyhow!("{}: the channel `{text}`: {e}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_variables_are_expanded_or_refused() {
        let file = Path::new("environment.yml");
        let home = std::env::var("HOME").unwrap_or_default();
        assert_eq!(
            expand_variables("file://${HOME}/ch", file).unwrap_or_default(),
            format!("file://{home}/ch")
        );
        assert_eq!(
            expand_variables("conda-forge", file).unwrap_or_default(),
            "conda-forge"
        );
        assert!(expand_variables("${PKGR_SURELY_UNSET_7}/x", file).is_err());
    }
}
