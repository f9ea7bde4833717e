//! `conda-meta/state`: the environment's variables, in conda's form
//! `{"env_vars": {"NAME": "value"}}` (written from an environment file's
//! `variables:`, exported on activation).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use super::MetaError;

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

/// The variables an environment asks for in `conda-meta/state` (none
/// without the file). A name that cannot be a variable's is an error naming
/// it (it would be code in the user's shell); a value that is not a string
/// is taken as its JSON text.
pub fn read_state_variables(prefix: &Path) -> Result<BTreeMap<String, String>, MetaError> {
    let path = prefix.join("conda-meta").join("state");
    let text = match fs_err::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(MetaError::Read(e)),
    };
    let value: serde_json::Value = match serde_json::from_str(&text) {
        Ok(value) => value,
        Err(source) => return Err(MetaError::StateNotJson { path, source }),
    };
    let mut vars = BTreeMap::new();
    if let Some(map) = value.get("env_vars").and_then(|v| v.as_object()) {
        for (key, value) in map {
            if !is_variable_name(key) {
                return Err(MetaError::NotAVariableName {
                    path,
                    name: key.clone(),
                });
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
/// `env_vars`), through a temp file and a rename. `conda-meta/` must exist.
pub fn write_state_variables(
    prefix: &Path,
    variables: &BTreeMap<String, String>,
) -> Result<(), MetaError> {
    let meta = prefix.join("conda-meta");
    let path = meta.join("state");
    let text = serde_json::to_string_pretty(&serde_json::json!({ "env_vars": variables }))
        .map_err(MetaError::SerializeState)?;
    let mut tmp = match tempfile::NamedTempFile::new_in(&meta) {
        Ok(tmp) => tmp,
        Err(source) => return Err(MetaError::WriteIn { dir: meta, source }),
    };
    if let Err(source) = tmp.write_all(text.as_bytes()) {
        return Err(MetaError::Write { path, source });
    }
    if let Err(source) = tmp.persist(&path) {
        return Err(MetaError::Persist { path, source });
    }
    Ok(())
}
