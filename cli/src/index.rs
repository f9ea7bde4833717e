//! `pkgr index DIR`: make a folder of packages into a local channel by writing
//! `<subdir>/repodata.json`, `repodata.json.zst` and the sharded form (CEP-16:
//! `repodata_shards.msgpack.zst` and one shard per package name) for every subdir.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use pkgr_cache::archive::{self, ArchiveFormat};
use rattler_conda_types::PackageRecord;

use crate::cli::{GlobalArgs, IndexArgs};
use crate::output::Progress;

pub fn run(global: &GlobalArgs, args: &IndexArgs) -> anyhow::Result<()> {
    let progress = Progress::new(global.quiet || global.json);
    let dir = &args.dir;
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let mut subdirs: Vec<String> = Vec::new();
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            if let Some(name) = entry.file_name().to_str() {
                if !name.starts_with('.') {
                    subdirs.push(name.to_owned());
                }
            }
        }
    }
    if !subdirs.iter().any(|s| s == "noarch") {
        fs_err::create_dir_all(dir.join("noarch"))?;
        subdirs.push(String::from("noarch"));
    }
    subdirs.sort();
    let mut total = 0;
    let mut skipped = 0;
    for subdir in &subdirs {
        let (count, bad) = index_subdir(&dir.join(subdir), subdir, &progress)?;
        total += count;
        skipped += bad;
    }
    if global.json {
        return crate::transact::print_json(&serde_json::json!({
            "success": true,
            "channel": dir,
            "subdirs": subdirs,
            "packages": total,
            "skipped": skipped,
        }));
    }
    progress.line(&format!(
        "indexed {total} packages in {} subdirs of {}{}",
        subdirs.len(),
        dir.display(),
        if skipped > 0 {
            format!(" ({skipped} unreadable packages skipped)")
        } else {
            String::new()
        }
    ));
    Ok(())
}

fn index_subdir(dir: &Path, subdir: &str, progress: &Progress) -> anyhow::Result<(usize, usize)> {
    let mut packages = BTreeMap::new();
    let mut conda_packages = BTreeMap::new();
    let mut skipped = 0;
    let mut names: Vec<String> = fs_err::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(ToOwned::to_owned))
        .filter(|n| ArchiveFormat::from_file_name(n).is_some())
        .collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        match record_of(&path) {
            Ok(record) => {
                if record.subdir != subdir {
                    progress.warn(&format!(
                        "{} says it is for subdir `{}` but sits in `{subdir}`",
                        path.display(),
                        record.subdir
                    ));
                }
                let value = serde_json::to_value(&record)?;
                match ArchiveFormat::from_file_name(&name) {
                    Some(ArchiveFormat::Conda) => conda_packages.insert(name, value),
                    _ => packages.insert(name, value),
                };
            }
            Err(err) => {
                skipped += 1;
                progress.warn(&format!("skipping {}: {err:#}", path.display()));
            }
        }
    }
    let count = packages.len() + conda_packages.len();
    let repodata = serde_json::json!({
        "info": { "subdir": subdir },
        "packages": packages,
        "packages.conda": conda_packages,
        "removed": [],
        "repodata_version": 1,
    });
    write_sharded(dir, subdir, &packages, &conda_packages)?;
    let text = serde_json::to_string_pretty(&repodata)?;
    // The .zst first: a reader that finds repodata.json new finds the .zst
    // at least as new (pkgr and conda take the .zst when it is there).
    let zst = zstd::encode_all(text.as_bytes(), ZST_LEVEL)
        .with_context(|| format!("cannot compress the repodata of {}", dir.display()))?;
    write_in(dir, "repodata.json.zst", &zst)?;
    write_in(dir, "repodata.json", text.as_bytes())?;
    Ok((count, skipped))
}

/// Writes the CEP-16 sharded form of a subdir: one `<sha256>.msgpack.zst` per
/// package name, then the index `repodata_shards.msgpack.zst` (so a reader of
/// a new index finds its shards), then removes shards no index names.
fn write_sharded(
    dir: &Path,
    subdir: &str,
    packages: &BTreeMap<String, serde_json::Value>,
    conda_packages: &BTreeMap<String, serde_json::Value>,
) -> anyhow::Result<()> {
    use pkgr_cache::shards::{encode_msgpack_zst, json_to_msgpack};
    use rmpv::Value;
    use sha2::Digest;
    type Members = Vec<(Value, Value)>;
    let mut by_name: BTreeMap<&str, (Members, Members)> = BTreeMap::new();
    for (section, records) in [(0, packages), (1, conda_packages)] {
        for (file_name, record) in records {
            let name = record["name"].as_str().unwrap_or_default();
            let entry = by_name.entry(name).or_default();
            let members = if section == 0 {
                &mut entry.0
            } else {
                &mut entry.1
            };
            members.push((Value::from(file_name.as_str()), json_to_msgpack(record)));
        }
    }
    let mut shards = Vec::with_capacity(by_name.len());
    let mut written = std::collections::HashSet::new();
    for (name, (tar_bz2, conda)) in by_name {
        let shard = Value::Map(vec![
            (Value::from("packages"), Value::Map(tar_bz2)),
            (Value::from("packages.conda"), Value::Map(conda)),
            (Value::from("removed"), Value::Array(Vec::new())),
        ]);
        let bytes = encode_msgpack_zst(&shard)?;
        let hash = sha2::Sha256::digest(&bytes);
        let file_name = format!("{}.msgpack.zst", hex::encode(hash));
        write_in(dir, &file_name, &bytes)?;
        written.insert(file_name);
        shards.push((Value::from(name), Value::Binary(hash.to_vec())));
    }
    let index = Value::Map(vec![
        (Value::from("version"), Value::from(1)),
        (
            Value::from("info"),
            Value::Map(vec![
                (Value::from("base_url"), Value::from("")),
                (Value::from("shards_base_url"), Value::from("")),
                (Value::from("subdir"), Value::from(subdir)),
            ]),
        ),
        (Value::from("shards"), Value::Map(shards)),
    ]);
    write_in(
        dir,
        "repodata_shards.msgpack.zst",
        &encode_msgpack_zst(&index)?,
    )?;
    for entry in fs_err::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_shard = name.len() == 64 + ".msgpack.zst".len()
            && name.ends_with(".msgpack.zst")
            && name[..64].bytes().all(|b| b.is_ascii_hexdigit());
        if is_shard && !written.contains(&name) {
            fs_err::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// The zstd level of `repodata.json.zst` (as conda-index uses).
const ZST_LEVEL: i32 = 16;

/// Writes `dir/name` through a temp file and a rename.
fn write_in(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let out = dir.join(name);
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(&out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

fn record_of(path: &Path) -> anyhow::Result<PackageRecord> {
    let index = archive::read_index_json(path)?;
    let file = pkgr_fetch::hash_file(path)
        .with_context(|| format!("could not read {}", path.display()))?;
    let record = PackageRecord::from_index_json(
        index,
        Some(file.size),
        Some(file.sha256.into()),
        Some(file.md5.into()),
    )
    .with_context(|| format!("{} has an invalid info/index.json", path.display()))?;
    Ok(record)
}
