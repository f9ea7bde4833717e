//! `pkgr list`: the packages installed in an environment, like `conda list`.

use anyhow::Context;

use crate::cli::{GlobalArgs, ListArgs};
use crate::output::print_stdout;
use crate::paths;

pub fn run(global: &GlobalArgs, args: &ListArgs) -> anyhow::Result<()> {
    let prefix = paths::prefix_or_active(global, &args.target)?;
    paths::require_environment(global, &prefix)?;
    let records = pkgr_prefix::read_prefix_records(&prefix)
        .with_context(|| format!("could not read the environment at {}", prefix.display()))?;
    if global.json {
        let list: Vec<serde_json::Value> = records
            .iter()
            .map(|r| {
                let r = &r.repodata_record;
                let p = &r.package_record;
                serde_json::json!({
                    "name": p.name.as_normalized(),
                    "version": p.version.to_string(),
                    "build_string": p.build,
                    "build_number": p.build_number,
                    "channel": crate::transact::record_channel(r),
                    "platform": p.subdir,
                    "dist_name": format!("{}-{}-{}", p.name.as_normalized(), p.version, p.build),
                })
            })
            .collect();
        print_stdout(&format!("{}\n", serde_json::to_string_pretty(&list)?));
        return Ok(());
    }
    // The same columns as `conda list`.
    let mut out = format!(
        "# packages in environment at {}:\n#\n# Name                    Version                   Build  Channel\n",
        prefix.display()
    );
    for record in &records {
        let r = &record.repodata_record;
        let p = &r.package_record;
        out.push_str(&format!(
            "{:<25} {:<15} {:>15}  {}\n",
            p.name.as_normalized(),
            p.version.to_string(),
            p.build,
            crate::transact::channel_label(r)
        ));
    }
    print_stdout(&out);
    Ok(())
}
