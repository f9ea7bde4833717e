//! `pkgr config list`: every setting, its value and where it came from.

use crate::cli::GlobalArgs;
use crate::output::{print_json, print_stdout, table};
use crate::paths;

/// `pkgr config list`.
pub fn list(global: &GlobalArgs) -> anyhow::Result<()> {
    let cache_dir = paths::cache_root(global)?;
    let config = &global.config;
    let mut rows = config.rows(&cache_dir);
    if global.cache_dir.is_some() {
        for row in rows.iter_mut().filter(|r| r.0 == "pkgs_dirs") {
            row.2 = "--cache-dir".to_owned();
        }
    }
    if global.json {
        let mut map = serde_json::Map::new();
        for (key, value, origin) in &rows {
            map.insert(
                (*key).to_owned(),
                serde_json::json!({ "value": value, "origin": origin }),
            );
        }
        return print_json(&serde_json::json!({
            "settings": map,
            "config_files": config.files_read,
        }));
    }
    let table_rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(key, value, origin)| vec![key.to_owned(), value, origin])
        .collect();
    let mut out = table(&["Setting", "Value", "From"], &table_rows);
    out.push_str(&format!(
        "\nconfig files read: {}\n",
        if config.files_read.is_empty() {
            "(none)".to_owned()
        } else {
            config
                .files_read
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    print_stdout(&out);
    Ok(())
}
