//! `pkgr list`: the packages installed in an environment, in the forms
//! `conda list` prints them (a table, `--json`, `--explicit`, `--export`,
//! `--canonical`).

use anyhow::Context;
use rattler_conda_types::PrefixRecord;

use crate::cli::{GlobalArgs, ListArgs};
use crate::environments;
use crate::output::{print_json, print_stdout};
use crate::render::{conda_channel_name, dist_fields_json, explicit, export_header, ExplicitHash};

/// `pkgr list`.
pub fn run(global: &GlobalArgs, args: &ListArgs) -> anyhow::Result<()> {
    let prefix = environments::prefix_or_active(global, &args.target)?;
    environments::require_environment(global, &prefix)?;
    let mut records = pkgr_prefix::read_prefix_records(&prefix)
        .with_context(|| format!("could not read the environment at {}", prefix.display()))?;
    if let Some(pattern) = &args.regex {
        let regex = regex::RegexBuilder::new(pattern)
            .case_insensitive(true)
            .build()
            .with_context(|| format!("invalid regular expression `{pattern}`"))?;
        records.retain(|r| regex.is_match(r.repodata_record.package_record.name.as_normalized()));
        if records.is_empty() {
            anyhow::bail!("no packages match `{pattern}` in {}", prefix.display());
        }
    }
    if args.explicit {
        let hash = if args.md5 {
            ExplicitHash::Md5
        } else if args.sha256 {
            ExplicitHash::Sha256
        } else {
            ExplicitHash::None
        };
        print_stdout(&explicit(&records, hash)?);
        return Ok(());
    }
    if global.json {
        let list: Vec<serde_json::Value> = records
            .iter()
            .map(|r| dist_fields_json(&r.repodata_record))
            .collect();
        print_json(&serde_json::Value::Array(list))?;
        return Ok(());
    }
    if args.export || args.canonical {
        let mut out = String::new();
        if args.export {
            out.push_str(&export_header(&records));
        }
        for record in &records {
            let p = &record.repodata_record.package_record;
            if args.export {
                out.push_str(&format!(
                    "{}={}={}\n",
                    p.name.as_normalized(),
                    p.version,
                    p.build
                ));
            } else {
                out.push_str(&format!(
                    "{}/{}::{}-{}-{}\n",
                    conda_channel_name(&record.repodata_record),
                    p.subdir,
                    p.name.as_normalized(),
                    p.version,
                    p.build
                ));
            }
        }
        print_stdout(&out);
        return Ok(());
    }
    print_stdout(&table(&prefix.display().to_string(), &records));
    Ok(())
}

/// conda's table (conda 25.5 and later): columns left-aligned, two spaces
/// apart, at least 23/15/15 wide (the first two more in the rows, where
/// `# ` does not take them), each as wide as its longest value.
fn table(prefix: &str, records: &[PrefixRecord]) -> String {
    let titles = ["Name", "Version", "Build", "Channel"];
    let rows: Vec<[String; 4]> = records
        .iter()
        .map(|record| {
            let r = &record.repodata_record;
            let p = &r.package_record;
            [
                p.name.as_normalized().to_owned(),
                p.version.to_string(),
                p.build.to_string(),
                conda_channel_name(r),
            ]
        })
        .collect();
    let mut widths = [23, 15, 15, 1];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: &[&str], widths: &[usize; 4]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = format!(
        "# packages in environment at {prefix}:\n#\n# {}\n",
        line(&titles, &widths)
    );
    widths[0] += 2;
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        out.push_str(&line(&cells, &widths));
        out.push('\n');
    }
    out
}
