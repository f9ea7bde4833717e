//! `pkgr env list`, `pkgr env remove` and `pkgr env export`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use rattler_conda_types::PrefixRecord;

use crate::cli::{EnvCommand, EnvExportArgs, EnvRemoveArgs, GlobalArgs};
use crate::output::{print_stdout, Progress};
use crate::paths;
use crate::transact::print_json;

/// `pkgr env ...`.
pub async fn run(global: &GlobalArgs, command: EnvCommand) -> anyhow::Result<()> {
    match command {
        EnvCommand::List => list(global),
        EnvCommand::Create(args) => crate::create::run(global, args).await,
        EnvCommand::Update(args) => {
            if args.files.is_empty() {
                bail!("name the file to update from with -f FILE (or use `pkgr install`)");
            }
            crate::modify::install(global, args, false).await
        }
        EnvCommand::Remove(args) => remove(global, &args).await,
        EnvCommand::Export(args) => export(global, &args),
    }
}

/// Every environment in the envs directories, sorted by path.
pub fn known_environments(global: &GlobalArgs) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for dir in paths::envs_dirs(global)? {
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
    let given = paths::prefix(global, &args.target)?;
    paths::require_environment(global, &given)?;
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
    let lock = crate::create::lock_prefix(&prefix, &progress).await?;
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

/// The specs the user asked for, from `conda-meta/history` as conda reads
/// it: each `# update specs:` line sets the spec of the names it mentions,
/// each `# remove specs:` line drops them.
pub fn requested_specs(prefix: &Path) -> anyhow::Result<Vec<String>> {
    let path = prefix.join("conda-meta").join("history");
    let text = match fs_err::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e.into()),
    };
    let mut specs: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines() {
        let (remove, list) = if let Some(list) = line.strip_prefix("# update specs: ") {
            (false, list)
        } else if let Some(list) = line.strip_prefix("# remove specs: ") {
            (true, list)
        } else {
            continue;
        };
        for spec in parse_spec_list(list) {
            let Some(name) = spec_name(&spec) else {
                continue;
            };
            if remove {
                specs.remove(&name);
            } else {
                specs.insert(name, spec);
            }
        }
    }
    Ok(specs.into_values().collect())
}

/// `['a', 'b >=1']` → `a`, `b >=1` (conda writes a Python list of strings).
fn parse_spec_list(list: &str) -> Vec<String> {
    let inner = list.trim().trim_start_matches('[').trim_end_matches(']');
    inner
        .split(['\'', '"'])
        .enumerate()
        // Inside quotes are the odd pieces.
        .filter(|(i, piece)| i % 2 == 1 && !piece.trim().is_empty())
        .map(|(_, piece)| piece.trim().to_owned())
        .collect()
}

fn spec_name(spec: &str) -> Option<String> {
    rattler_conda_types::MatchSpec::from_str(spec, rattler_conda_types::ParseStrictness::Lenient)
        .ok()
        .and_then(|s| s.name.as_exact().map(|n| n.as_normalized().to_owned()))
}

/// The channels of the installed records as an environment file names them
/// (as `conda list` does: the name under the default alias, else the URL
/// without credentials), most used first.
fn channels_of(records: &[PrefixRecord]) -> Vec<String> {
    crate::transact::channels_by_use(records, |r| {
        Some(crate::list::channel_name(r)).filter(|c| !c.is_empty())
    })
}

/// `name` in YAML: quoted when it would not read back as the same string.
fn yaml_scalar(text: &str) -> String {
    serde_yaml::to_string(text)
        .map(|s| s.trim_end().to_owned())
        .unwrap_or_else(|_| format!("'{text}'"))
}

fn export(global: &GlobalArgs, args: &EnvExportArgs) -> anyhow::Result<()> {
    let prefix = paths::prefix_or_active(global, &args.target)?;
    paths::require_environment(global, &prefix)?;
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
            requested_specs(&prefix)?
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
        let variables = crate::activate::state_variables(&prefix)?;
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

/// Which checksum an `@EXPLICIT` line carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExplicitHash {
    /// The bare URL (`conda list --explicit`).
    None,
    /// `URL#<md5>`.
    Md5,
    /// `URL#<sha256>` (64 hex digits, as conda writes it).
    Sha256,
}

/// The header conda writes above exported lists (`# platform:` is what an
/// explicit install checks).
pub fn export_header(records: &[PrefixRecord]) -> String {
    let subdir = records
        .iter()
        .map(|r| r.repodata_record.package_record.subdir.as_str())
        .find(|s| *s != "noarch")
        .map(ToOwned::to_owned)
        .unwrap_or_else(|| {
            rattler_conda_types::Subdir::current()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default()
        });
    format!(
        "# This file may be used to create an environment using:\n# $ pkgr create --name <env> --file <this file>\n# platform: {subdir}\n# created-by: pkgr {}\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// conda's `@EXPLICIT` list: one URL per package (without credentials),
/// with the checksum `hash` asks for. An explicit install links in
/// dependency order whatever the order of the lines.
pub fn explicit(records: &[PrefixRecord], hash: ExplicitHash) -> anyhow::Result<String> {
    let mut out = export_header(records);
    out.push_str("@EXPLICIT\n");
    for record in records {
        let r = &record.repodata_record;
        let url = pkgr_redact::url_for_record(&r.url);
        let p = &r.package_record;
        let digest = match hash {
            ExplicitHash::None => {
                out.push_str(&format!("{url}\n"));
                continue;
            }
            ExplicitHash::Md5 => p.md5.as_ref().map(hex::encode),
            ExplicitHash::Sha256 => p.sha256.as_ref().map(hex::encode),
        };
        match digest {
            Some(digest) => out.push_str(&format!("{url}#{digest}\n")),
            None => bail!(
                "{} has no {} in its record: cannot write it to an explicit list with checksums{}",
                r.identifier,
                if hash == ExplicitHash::Sha256 {
                    "sha256"
                } else {
                    "md5"
                },
                if hash == ExplicitHash::Sha256 {
                    " (try without --sha256)"
                } else {
                    " (try --sha256)"
                }
            ),
        }
    }
    Ok(out)
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
            std::io::Write::write_all(&mut tmp, redacted(text).as_bytes())
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

fn redacted(text: &str) -> String {
    pkgr_redact::redact_urls_in_text(text, pkgr_redact::url_for_record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_spec_lists_are_read_as_conda_writes_them() {
        assert_eq!(
            parse_spec_list("['python=3.11', 'numpy >=1.26,<2']"),
            ["python=3.11", "numpy >=1.26,<2"]
        );
        assert!(parse_spec_list("[]").is_empty());
    }

    #[test]
    fn requested_specs_follow_updates_and_removes() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        fs_err::create_dir_all(dir.path().join("conda-meta")).unwrap_or_else(|e| panic!("{e}"));
        fs_err::write(
            dir.path().join("conda-meta").join("history"),
            "==> 2024 <==\n# update specs: ['python=3.11', 'zlib']\n==> 2024 <==\n# update specs: ['python=3.12']\n# remove specs: ['zlib']\n==> 2024 <==\n# update specs: ['xz']\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            requested_specs(dir.path()).unwrap_or_else(|e| panic!("{e}")),
            ["python=3.12", "xz"]
        );
    }
}
