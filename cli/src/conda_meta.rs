//! What the CLI reads and writes in an environment's `conda-meta/` besides
//! the package records: `history` (the specs asked for, and the append after
//! a change), `state` (the `env_vars` activation sets) and `pinned`. Kept in
//! this one module so that moving it into `pkgr-prefix` is one switch.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use pkgr_install::{spec_package_name, LockedPrefix, Plan, SpecsKind};

/// Appends the change to `conda-meta/history` with this process's command
/// line; `kind` is what conda writes (`update` or `remove` specs).
pub fn record_history(
    prefix: &LockedPrefix,
    plan: &Plan,
    kind: SpecsKind,
    specs: &[String],
) -> anyhow::Result<()> {
    let command: Vec<String> = std::env::args().collect();
    prefix.record_history(plan, kind, specs, &command.join(" "))?;
    Ok(())
}

/// The pins of an environment: `conda-meta/pinned`, one spec per line
/// (`#` comments), as conda reads it.
pub fn environment_pins(prefix: &Path) -> anyhow::Result<Vec<String>> {
    let path = prefix.join("conda-meta").join("pinned");
    match fs_err::read_to_string(&path) {
        Ok(text) => Ok(text
            .lines()
            .map(|l| l.split('#').next().unwrap_or_default().trim())
            .filter(|l| !l.is_empty())
            .map(ToOwned::to_owned)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
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
            let Some(name) = spec_package_name(&spec) else {
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
