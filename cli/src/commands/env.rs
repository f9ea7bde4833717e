//! `pkgr env list`, `pkgr env remove` and `pkgr env export`; `env create` and
//! `env update` run the transaction flows `create` and `install` run.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use rattler_conda_types::PrefixRecord;

use crate::channels::channels_by_use;
use crate::cli::{EnvCommand, EnvExportArgs, EnvRemoveArgs, GlobalArgs};
use crate::environments::{self, known_environments};
use crate::output::{print_json, print_stdout, with_credentials_as_recorded, Progress};
use crate::render::{conda_channel_name, explicit, ExplicitHash};
use crate::transaction;
use pkgr_prefix::meta::{read_requested_specs, read_state_variables};

/// `pkgr env ...`.
pub async fn run(global: &GlobalArgs, command: EnvCommand) -> anyhow::Result<()> {
    match command {
        EnvCommand::List => list(global),
        EnvCommand::Create(args) => transaction::create_environment(global, args).await,
        EnvCommand::Update(args) => {
            if args.files.is_empty() {
                bail!("name the file to update from with -f FILE (or use `pkgr install`)");
            }
            transaction::change_environment(global, args, false).await
        }
        EnvCommand::Remove(args) => remove(global, &args).await,
        EnvCommand::Export(args) => export(global, &args),
    }
}

fn list(global: &GlobalArgs) -> anyhow::Result<()> {
    let envs = known_environments(global)?;
    if global.json {
        return print_json(&serde_json::json!({ "envs": envs }));
    }
    let active = std::env::var_os("CONDA_PREFIX").map(PathBuf::from);
    let mut out = String::from("# pkgr environments:\n#\n");
    for env in &envs {
        let name = env
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mark = if active.as_deref() == Some(env.as_path()) {
            '*'
        } else {
            ' '
        };
        out.push_str(&format!("{name:<24} {mark} {}\n", env.display()));
    }
    if envs.is_empty() {
        out.push_str("# (none yet: create one with `pkgr create -n NAME SPEC...`)\n");
    }
    print_stdout(&out);
    Ok(())
}

/// Fails unless `prefix` (symlinks resolved) is an environment conda or pkgr
/// made: its `conda-meta/` holds `history` or at least one package record
/// (`*.json`). A bare `conda-meta/` is not enough: `env remove` deletes the
/// whole directory, and an empty `conda-meta/` is easy to find (or plant)
/// in a directory that is not an environment.
fn require_real_environment(prefix: &Path) -> anyhow::Result<()> {
    let meta = prefix.join("conda-meta");
    let has_history = meta.join("history").is_file();
    let has_record = || -> anyhow::Result<bool> {
        for entry in fs_err::read_dir(&meta)? {
            let entry = entry.with_context(|| format!("could not read {}", meta.display()))?;
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            if is_file && entry.file_name().to_string_lossy().ends_with(".json") {
                return Ok(true);
            }
        }
        Ok(false)
    };
    if has_history || has_record()? {
        return Ok(());
    }
    bail!(
        "{} is not an environment: its conda-meta/ holds neither a history file nor a package record (*.json), as every environment conda or pkgr makes does; refusing to delete it (if it is yours to delete, remove it yourself)",
        prefix.display()
    )
}

/// What `env remove` says it removes: the environment, and how the path the
/// user gave leads there when symlinks (or `..`) are on the way.
fn removal_target(prefix: &Path, given: &Path, link: Option<&Path>) -> String {
    match link {
        Some(link) => format!(
            "the environment {} (the target of the symlink {}) and the symlink",
            prefix.display(),
            link.display()
        ),
        None if prefix != given => format!(
            "the environment {} (what {} resolves to)",
            prefix.display(),
            given.display()
        ),
        None => format!("the environment {}", prefix.display()),
    }
}

async fn remove(global: &GlobalArgs, args: &EnvRemoveArgs) -> anyhow::Result<()> {
    let given = environments::prefix(global, &args.target)?;
    environments::require_environment(global, &given)?;
    // What is removed is the directory the path names, every symlink (of the
    // path or of a directory on the way) and `..` resolved: never the
    // directory a symlink sits in, never anything outside the environment.
    let prefix = fs_err::canonicalize(&given)
        .with_context(|| format!("could not resolve {}", given.display()))?;
    // The path itself a symlink (conda removes such a symlink, not what
    // it points to): it is removed too, or it would point at nothing.
    let link = fs_err::symlink_metadata(&given)
        .is_ok_and(|m| m.file_type().is_symlink())
        .then(|| given.clone());
    require_real_environment(&prefix)?;
    let active = std::env::var_os("CONDA_PREFIX").map(PathBuf::from);
    if let Some(active) = active {
        let active_resolved = fs_err::canonicalize(&active).unwrap_or_else(|_| active.clone());
        if active == given || active_resolved == prefix {
            bail!(
                "{} is the active environment: deactivate it first",
                given.display()
            );
        }
    }
    let Some((parent, name)) = prefix.parent().zip(prefix.file_name()) else {
        bail!("refusing to remove {}", prefix.display());
    };
    let what = removal_target(&prefix, &given, link.as_deref());
    if args.dry_run {
        if global.json {
            return print_json(&serde_json::json!({
                "success": true, "dry_run": true, "prefix": given, "removed": false,
                "removed_dir": prefix, "removed_symlink": link,
            }));
        }
        print_stdout(&format!(
            "Would remove {what}\nDry run: nothing was changed.\n"
        ));
        return Ok(());
    }
    let progress = Arc::new(Progress::new(global.quiet || global.json));
    let lock = transaction::lock_prefix(&prefix, &progress).await?;
    // Checked again under the lock: what was checked before is what goes.
    require_real_environment(&prefix)?;
    // Moved aside first (one rename, so no process ever sees half an
    // environment at the path), then deleted; the lock is held throughout so
    // no transaction runs on it meanwhile. `remove_dir_all` removes a symlink
    // inside the environment, never what it points to.
    let doomed = parent.join(format!(
        ".pkgr-removing-{}-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    fs_err::rename(&prefix, &doomed)
        .with_context(|| format!("could not remove {}", prefix.display()))?;
    let removed = fs_err::remove_dir_all(&doomed);
    drop(lock);
    removed.with_context(|| format!("could not delete {}", doomed.display()))?;
    if let Some(link) = &link {
        // Only the symlink itself, if it is still one.
        if fs_err::symlink_metadata(link).is_ok_and(|m| m.file_type().is_symlink()) {
            fs_err::remove_file(link)
                .with_context(|| format!("removed {}, but not the symlink", prefix.display()))?;
        }
    }
    if global.json {
        return print_json(&serde_json::json!({
            "success": true, "dry_run": false, "prefix": given, "removed": true,
            "removed_dir": prefix, "removed_symlink": link,
        }));
    }
    if !global.quiet {
        print_stdout(&format!("Removed {what}\n"));
    }
    Ok(())
}

/// The channels of the installed records as an environment file names them
/// (as `conda list` does: the name under the default alias, else the URL
/// without credentials), most used first.
fn channels_of(records: &[PrefixRecord]) -> Vec<String> {
    channels_by_use(records, |r| {
        Some(conda_channel_name(r)).filter(|c| !c.is_empty())
    })
}

/// `name` in YAML: quoted when it would not read back as the same string.
fn yaml_scalar(text: &str) -> String {
    serde_yaml::to_string(text)
        .map(|s| s.trim_end().to_owned())
        .unwrap_or_else(|_| format!("'{text}'"))
}

fn export(global: &GlobalArgs, args: &EnvExportArgs) -> anyhow::Result<()> {
    let prefix = environments::prefix_or_active(global, &args.target)?;
    environments::require_environment(global, &prefix)?;
    let records = pkgr_prefix::read_prefix_records(&prefix)
        .with_context(|| format!("could not read the environment at {}", prefix.display()))?;
    let text = if args.explicit {
        explicit(
            &records,
            if args.sha256 {
                ExplicitHash::Sha256
            } else {
                ExplicitHash::Md5
            },
        )?
    } else {
        let name = prefix
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dependencies: Vec<String> = if args.from_history {
            read_requested_specs(&prefix)?
        } else {
            records
                .iter()
                .map(|r| {
                    let p = &r.repodata_record.package_record;
                    if args.no_builds {
                        format!("{}={}", p.name.as_normalized(), p.version)
                    } else {
                        format!("{}={}={}", p.name.as_normalized(), p.version, p.build)
                    }
                })
                .collect()
        };
        if global.json {
            return write_or_print(
                args.file.as_deref(),
                &format!(
                    "{}\n",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "name": name,
                        "channels": channels_of(&records),
                        "dependencies": dependencies,
                        "prefix": prefix,
                    }))?
                ),
            );
        }
        let mut out = format!("name: {}\nchannels:\n", yaml_scalar(&name));
        for channel in channels_of(&records) {
            out.push_str(&format!("  - {}\n", yaml_scalar(&channel)));
        }
        out.push_str("dependencies:\n");
        for dependency in &dependencies {
            out.push_str(&format!("  - {}\n", yaml_scalar(dependency)));
        }
        let variables = read_state_variables(&prefix)?;
        if !variables.is_empty() {
            out.push_str("variables:\n");
            for (key, value) in &variables {
                out.push_str(&format!("  {}: {}\n", yaml_scalar(key), yaml_scalar(value)));
            }
        }
        out.push_str(&format!(
            "prefix: {}\n",
            yaml_scalar(&prefix.display().to_string())
        ));
        out
    };
    write_or_print(args.file.as_deref(), &text)
}

fn write_or_print(file: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match file {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let mut tmp = tempfile::NamedTempFile::new_in(dir)
                .with_context(|| format!("could not write in {}", dir.display()))?;
            std::io::Write::write_all(&mut tmp, with_credentials_as_recorded(text).as_bytes())
                .with_context(|| format!("could not write {}", path.display()))?;
            // An exported file is for sharing (the temp file was made 0600).
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = tmp
                    .as_file()
                    .set_permissions(std::fs::Permissions::from_mode(0o644));
            }
            tmp.persist(path)
                .with_context(|| format!("could not write {}", path.display()))?;
            Ok(())
        }
        None => {
            print_stdout(text);
            Ok(())
        }
    }
}
