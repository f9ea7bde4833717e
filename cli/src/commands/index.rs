//! `pkgr index DIR`: make a folder of packages into a local channel by writing
//! `<subdir>/repodata.json`, `repodata.json.zst` and the sharded form (CEP-16:
//! `repodata_shards.msgpack.zst` and one shard per package name) for every subdir.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use pkgr_cache::archive::{self, ArchiveFormat};
use rattler_conda_types::package::{IndexJson, PackageFile};
use rattler_conda_types::PackageRecord;

use crate::cli::{GlobalArgs, IndexArgs};
use crate::output::Progress;

/// `pkgr index DIR`.
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
        return crate::output::print_json(&serde_json::json!({
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
    let mut run_exports = BTreeMap::new();
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
            Ok(indexed) => {
                let Indexed {
                    record: value,
                    subdir: declared,
                    run_exports: exports,
                    warning,
                } = indexed;
                if let Some(warning) = warning {
                    progress.warn(&warning);
                }
                if declared != subdir {
                    progress.warn(&format!(
                        "{} says it is for subdir `{declared}` but sits in `{subdir}`",
                        path.display(),
                    ));
                }
                run_exports.insert(name.clone(), exports);
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
    write_sharded(dir, subdir, &packages, &conda_packages, &run_exports)?;
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
///
/// As conda-index 0.13.0 writes them, a shard's records are those of
/// repodata.json plus `run_exports` (the package's `info/run_exports.json`,
/// `{}` when it has none), and a shard has no `removed` when nothing was
/// removed. Deliberately unlike conda-index, the index has no
/// `info.created_at` (optional in CEP-16): without it, indexing an unchanged
/// folder again writes the same bytes, so caches of it stay valid.
fn write_sharded(
    dir: &Path,
    subdir: &str,
    packages: &BTreeMap<String, serde_json::Value>,
    conda_packages: &BTreeMap<String, serde_json::Value>,
    run_exports: &BTreeMap<String, serde_json::Value>,
) -> anyhow::Result<()> {
    use pkgr_repodata::shards::{encode_msgpack_zst, json_to_msgpack};
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
            // Keys sorted (a BTreeMap), whatever order serde_json's map keeps.
            let mut fields: BTreeMap<&str, &serde_json::Value> = record
                .as_object()
                .into_iter()
                .flatten()
                .map(|(key, value)| (key.as_str(), value))
                .collect();
            if let Some(exports) = run_exports.get(file_name) {
                fields.insert("run_exports", exports);
            }
            let record = serde_json::to_value(fields)?;
            members.push((Value::from(file_name.as_str()), json_to_msgpack(&record)));
        }
    }
    let mut shards = Vec::with_capacity(by_name.len());
    let mut written = std::collections::HashSet::new();
    for (name, (tar_bz2, conda)) in by_name {
        let shard = Value::Map(vec![
            (Value::from("packages"), Value::Map(tar_bz2)),
            (Value::from("packages.conda"), Value::Map(conda)),
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

/// Keys of `info/index.json` that conda-index leaves out of a repodata
/// record (its `filter_fields` in `conda_index/index/cache.py`, observed with
/// conda-index 0.13.0): `arch` and `platform` are implied by the subdir, the
/// others are build-time details no solver reads. Anaconda's and
/// conda-forge's published repodata have none of them either.
const DROPPED_INDEX_KEYS: &[&str] = &[
    "arch",
    "binstar",
    "has_prefix",
    "machine",
    "mtime",
    "operatingsystem",
    "platform",
    "requires_features",
    "target-triplet",
    "ucs",
];

/// What indexing one package gives.
struct Indexed {
    /// Its repodata record (see [`record_of`]), keys sorted.
    record: serde_json::Value,
    /// The subdir the package declares, or its `platform`/`arch` imply.
    subdir: String,
    /// The package's `info/run_exports.json` (`{}` when it has none), for
    /// its record in the shards (see [`write_sharded`]).
    run_exports: serde_json::Value,
    /// Something to tell the user about this package that did not stop it
    /// being indexed.
    warning: Option<String>,
}

/// One package's repodata record, as conda-index writes it: the package's
/// own `info/index.json`, every key and value as the package has it (a legacy
/// package keeps `requires` and `preferred_env`, `license: null` stays null,
/// a timestamp stays in the unit it was written in, and nothing is added — no
/// `subdir` a package did not declare, no empty `depends`), less
/// [`DROPPED_INDEX_KEYS`], plus the archive's `md5`, `sha256` and `size`.
/// Keys are sorted, as conda-index's `json.dumps(sort_keys=True)` has them.
///
/// Deliberate differences from conda-index: a package whose index.json
/// `rattler_conda_types` cannot read (no name, a version that does not parse,
/// …) is skipped with a warning instead of being listed, since no pkgr
/// solve could use its record and a broken record would break its whole
/// package name; and a package that declares (or, lacking `subdir`, implies
/// by `platform`/`arch`) another subdir than the folder it sits in gets a
/// warning (conda-index says nothing).
fn record_of(path: &Path) -> anyhow::Result<Indexed> {
    let text = archive::read_info_file(path, Path::new("info/index.json"))?
        .with_context(|| format!("{} has no info/index.json", path.display()))?;
    let raw: BTreeMap<String, serde_json::Value> = serde_json::from_str(&text)
        .with_context(|| format!("{} has an invalid info/index.json", path.display()))?;
    let index = IndexJson::from_str(&text)
        .with_context(|| format!("{} has an invalid info/index.json", path.display()))?;
    let file =
        pkgr_fs::hash_file(path).with_context(|| format!("could not read {}", path.display()))?;
    // Checked the way pkgr's solver will read it (and for the subdir).
    let parsed = PackageRecord::from_index_json(index, Some(file.size), None, None)
        .with_context(|| format!("{} has an invalid info/index.json", path.display()))?;
    let mut record: BTreeMap<String, serde_json::Value> = raw
        .into_iter()
        .filter(|(key, _)| !DROPPED_INDEX_KEYS.contains(&key.as_str()))
        .collect();
    record.insert("md5".into(), hex::encode(file.md5).into());
    record.insert("sha256".into(), hex::encode(file.sha256).into());
    record.insert("size".into(), file.size.into());
    let mut warning = None;
    let run_exports = match archive::read_info_file(path, Path::new("info/run_exports.json"))? {
        None => serde_json::json!({}),
        Some(text) => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(value) if value.is_object() => value,
            _ => {
                warning = Some(format!(
                    "{} has an invalid info/run_exports.json (its shard record says it has none)",
                    path.display()
                ));
                serde_json::json!({})
            }
        },
    };
    Ok(Indexed {
        record: serde_json::to_value(record)?,
        subdir: parsed.subdir,
        run_exports,
        warning,
    })
}
