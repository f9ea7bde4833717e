//! Reads every environment file of `$PKGR_DATASETS/specs` (the shared,
//! read-only dataset; `PROVENANCE.md` says what each file is) and checks the
//! result against an independent reading of the same file: line counts for
//! @EXPLICIT lists, a raw `serde_yaml::Value` walk for conda-lock, pixi.lock and
//! environment.yml. Files that must be refused are checked to be refused for the
//! right reason. Prints one summary line; fails listing every mismatch.

// Test code: unwraps on the dataset itself are the test failing; the summary is printed.
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use pkgr_envfile::{
    read, EnvFile, EnvFileError, LockFormat, LockedEnvironment, ReadOptions, Subdir,
};
use serde_yaml::Value;

#[derive(Default)]
struct Tally {
    /// The kind of file being checked.
    kind: &'static str,
    files: BTreeMap<&'static str, usize>,
    /// Per kind: files read, packages (or specs) they gave.
    read_by: BTreeMap<&'static str, (usize, usize)>,
    reads: usize,
    packages: usize,
    specs: usize,
    pypi: usize,
    refusals: BTreeMap<String, usize>,
    failures: Vec<String>,
}

impl Tally {
    fn check(&mut self, ok: bool, path: &Path, what: impl FnOnce() -> String) {
        if !ok {
            self.failures
                .push(format!("{}: {}", path.display(), what()));
        }
    }
    fn start(&mut self, kind: &'static str) {
        self.kind = kind;
        *self.files.entry(kind).or_default() += 1;
    }
    fn read_ok(&mut self) {
        self.reads += 1;
        self.read_by.entry(self.kind).or_default().0 += 1;
    }
    fn items(&mut self, n: usize) {
        self.read_by.entry(self.kind).or_default().1 += n;
    }
    fn refused(&mut self, why: &str) {
        *self.refusals.entry(why.to_owned()).or_default() += 1;
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs_err::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn text(path: &Path) -> String {
    fs_err::read_to_string(path).unwrap()
}

fn yaml(path: &Path) -> Value {
    serde_yaml::from_str(&text(path)).unwrap()
}

fn s(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn file_name(url: &str) -> String {
    url.split('#')
        .next()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned()
}

fn record_urls(env: &LockedEnvironment) -> BTreeSet<String> {
    env.packages
        .iter()
        .map(|p| p.record.url.to_string())
        .collect()
}

#[test]
#[ignore = "needs the conda datasets: set PKGR_DATASETS (.ci/run does)"]
fn every_dataset_file() {
    let root = std::env::var_os("PKGR_DATASETS")
        .filter(|root| !root.is_empty())
        .unwrap_or_else(|| panic!("PKGR_DATASETS is not set: this test reads the conda datasets; set PKGR_DATASETS to that folder (.ci/run sets it)"));
    assert!(
        std::path::Path::new(&root).is_dir(),
        "PKGR_DATASETS is set to {}, which is not a directory (point it at the conda datasets folder)",
        std::path::Path::new(&root).display()
    );
    let specs = PathBuf::from(root).join("specs");
    let mut files = Vec::new();
    walk(&specs, &mut files);
    let mut t = Tally::default();
    for path in &files {
        let rel = path
            .strip_prefix(&specs)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let is_yaml = name.ends_with(".yml") || name.ends_with(".yaml");
        let body = text(path);
        let explicit = body.lines().any(|l| l.trim() == "@EXPLICIT");
        if explicit {
            check_explicit(path, &body, &mut t);
        } else if rel.starts_with("rattler-lock/") && (name.ends_with(".lock") || is_yaml) {
            if rel.contains("/v0/") {
                check_conda_lock(path, &mut t);
            } else {
                check_pixi(path, &rel, &mut t);
            }
        } else if rel.starts_with("conda-lock/")
            && (is_yaml || name.ends_with(".json"))
            && is_conda_lock(&body)
        {
            check_conda_lock(path, &mut t);
        } else if rel.starts_with("conda-lock/") && name.ends_with(".json") {
            // mambajs' JSON lock (`lockVersion`), a format pkgr does not read;
            // bad_package-lock.json is not even valid JSON.
            t.start("other lock (json)");
            expect_refusal(
                path,
                &mut t,
                "lock file of an unknown format (mambajs lockVersion)",
                |e| {
                    matches!(
                        e,
                        EnvFileError::UnknownLockFormat { .. } | EnvFileError::Yaml { .. }
                    )
                },
            );
        } else if (rel.starts_with("environment-yml/")
            || rel.starts_with("conda-lock/")
            || rel.starts_with("explicit/"))
            && is_yaml
        {
            check_environment(path, &mut t);
        } else if (rel.starts_with("environment-yml/") && name.ends_with(".txt"))
            || (rel.starts_with("conda-lock/") && name.ends_with(".lock"))
        {
            check_spec_list(path, &body, &mut t);
        }
    }

    let kinds: Vec<String> = t
        .files
        .iter()
        .map(|(kind, found)| {
            let (read, items) = t.read_by.get(kind).copied().unwrap_or_default();
            format!("{kind} {read}/{found} read ({items})")
        })
        .collect();
    let refusals: Vec<String> = t.refusals.iter().map(|(k, v)| format!("{v} {k}")).collect();
    println!(
        "envfile datasets: {} files, {} read [{}]; {} locked packages (over all platforms and \
         environments), {} specs, {} pypi/pip entries reported; refusals: {}",
        t.files.values().sum::<usize>(),
        t.reads,
        kinds.join(", "),
        t.packages,
        t.specs,
        t.pypi,
        refusals.join(", ")
    );
    // Guard against a vacuous pass (dataset moved, walk broken).
    for (kind, min) in [
        ("explicit", 20),
        ("conda-lock", 15),
        ("pixi", 50),
        ("environment.yml", 60),
    ] {
        let n = t.files.get(kind).copied().unwrap_or(0);
        if n < min {
            t.failures.push(format!(
                "only {n} {kind} files found, expected at least {min}"
            ));
        }
    }
    assert!(
        t.failures.is_empty(),
        "{} mismatches:\n{}",
        t.failures.len(),
        t.failures.join("\n")
    );
}

fn options(platform: Subdir) -> ReadOptions {
    ReadOptions::new(platform)
}

fn expect_refusal(path: &Path, t: &mut Tally, why: &str, ok: impl Fn(&EnvFileError) -> bool) {
    match read(path, &options(Subdir::Linux64)) {
        Ok(_) => t.check(false, path, || {
            format!("read, but should be refused ({why})")
        }),
        Err(e) => {
            let matched = ok(&e);
            t.check(matched, path, || {
                format!("refused with the wrong error: {e}")
            });
            if matched {
                t.refused(why);
            }
        }
    }
}

/// @EXPLICIT: count the URL lines after `@EXPLICIT`, the first and last file
/// names, the hashes and `# pip` lines, by reading the text line by line.
fn check_explicit(path: &Path, body: &str, t: &mut Tally) {
    t.start("explicit");
    let mut after = false;
    let mut urls = Vec::new();
    let mut pip = 0;
    let mut platform = None;
    for line in body.lines().map(str::trim) {
        if let Some(p) = line.strip_prefix("# platform: ") {
            platform = Some(p.trim().to_owned());
        }
        if line == "@EXPLICIT" {
            after = true;
        } else if after && line.starts_with("# pip ") {
            pip += 1;
        } else if after && !line.is_empty() && !line.starts_with('#') {
            urls.push(line.to_owned());
        }
    }
    let env = match read(path, &options(Subdir::Linux64)) {
        Ok(EnvFile::Locked(env)) => env,
        Ok(other) => return t.check(false, path, || format!("not read as locked: {other:?}")),
        Err(e) => return t.check(false, path, || format!("refused: {e}")),
    };
    t.read_ok();
    t.packages += env.packages.len();
    t.items(env.packages.len());
    t.pypi += env.pypi.len();
    t.check(env.format == LockFormat::Explicit, path, || {
        format!("format {:?}", env.format)
    });
    t.check(env.packages.len() == urls.len(), path, || {
        format!(
            "{} packages, file has {} URL lines",
            env.packages.len(),
            urls.len()
        )
    });
    t.check(env.pypi.len() == pip, path, || {
        format!("{} pypi, file has {pip} `# pip` lines", env.pypi.len())
    });
    let names: Vec<String> = env
        .packages
        .iter()
        .map(|p| p.record.identifier.to_string())
        .collect();
    t.check(
        names.first() == urls.first().map(|u| file_name(u)).as_ref(),
        path,
        || "first file name differs".into(),
    );
    t.check(
        names.last() == urls.last().map(|u| file_name(u)).as_ref(),
        path,
        || "last file name differs".into(),
    );
    let hashed = urls.iter().filter(|u| u.contains('#')).count();
    let with_hash = env
        .packages
        .iter()
        .filter(|p| {
            p.record.package_record.md5.is_some() || p.record.package_record.sha256.is_some()
        })
        .count();
    t.check(hashed == with_hash, path, || {
        format!("{with_hash} records with a hash, {hashed} lines with one")
    });
    t.check(
        env.platform.map(|p| p.to_string()) == platform,
        path,
        || format!("platform {:?}, comment says {platform:?}", env.platform),
    );
    for p in &env.packages {
        let r = &p.record;
        let subdir_ok = r
            .url
            .as_str()
            .contains(&format!("/{}/{}", r.package_record.subdir, r.identifier));
        let channel_ok = r
            .url
            .as_str()
            .starts_with(r.channel.as_deref().unwrap_or("-"));
        t.check(
            subdir_ok && channel_ok && !p.metadata_complete,
            path,
            || format!("record of {} is off", r.url),
        );
    }
}

/// conda-lock v1 (and rattler's v0 test files, which are conda-lock files): for
/// every platform the file declares, the `manager: conda` entries of that
/// platform whose category is main, by URL, and the `manager: pip` ones.
fn check_conda_lock(path: &Path, t: &mut Tally) {
    t.start("conda-lock");
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    if name.starts_with("bad_") {
        return expect_refusal(path, t, "bad conda-lock entry or version", |e| {
            matches!(
                e,
                EnvFileError::CondaLockEntry { .. }
                    | EnvFileError::CondaLock { .. }
                    | EnvFileError::UnknownLockFormat { .. }
            )
        });
    }
    let raw = yaml(path);
    let platforms: Vec<String> = raw["metadata"]["platforms"]
        .as_sequence()
        .map(|s| s.iter().filter_map(s_ref).collect())
        .unwrap_or_default();
    let entries = raw["package"].as_sequence().cloned().unwrap_or_default();
    let is_main = |e: &Value| match (&e["categories"], &e["category"]) {
        (Value::Sequence(c), _) => c.iter().any(|c| c.as_str() == Some("main")),
        (_, Value::String(c)) => c == "main",
        _ => true,
    };
    // A pip entry's source that is a git URL, not an artifact: conda-lock's
    // `source:` key (micromamba's pip-git test file).
    let mut read_any = false;
    for platform in &platforms {
        let Ok(subdir) = Subdir::from_str(platform) else {
            continue;
        };
        let of = |manager: &str| -> BTreeSet<String> {
            entries
                .iter()
                .filter(|e| {
                    e["manager"].as_str() == Some(manager)
                        && e["platform"].as_str() == Some(platform)
                        && is_main(e)
                })
                .filter_map(|e| s(&e["url"]))
                .collect()
        };
        let conda = of("conda");
        let pip = of("pip");
        match read(path, &options(subdir)) {
            Ok(EnvFile::Locked(env)) => {
                read_any = true;
                t.packages += env.packages.len();
                t.items(env.packages.len());
                t.pypi += env.pypi.len();
                t.check(env.format == LockFormat::CondaLock, path, || {
                    format!("format {:?}", env.format)
                });
                let got = record_urls(&env);
                t.check(got == conda, path, || {
                    format!(
                        "{platform}: {} records, file has {} main conda entries; missing {:?}, extra {:?}",
                        got.len(),
                        conda.len(),
                        conda.difference(&got).take(3).collect::<Vec<_>>(),
                        got.difference(&conda).take(3).collect::<Vec<_>>()
                    )
                });
                t.check(env.pypi.len() == pip.len(), path, || {
                    format!(
                        "{platform}: {} pypi reported, file has {} pip entries",
                        env.pypi.len(),
                        pip.len()
                    )
                });
            }
            Ok(other) => t.check(false, path, || format!("not read as locked: {other:?}")),
            Err(e) => {
                // The one file here with a pip package installed from git: no
                // artifact, no hash — the v1 reader refuses its entry.
                let git = entries
                    .iter()
                    .any(|e| s(&e["url"]).is_some_and(|u| u.starts_with("git+")));
                t.check(git, path, || format!("{platform}: refused: {e}"));
                if git {
                    t.refused("pip package from git (no artifact)");
                    return;
                }
            }
        }
    }
    if read_any {
        t.read_ok();
    }
}

/// A conda-lock file by its raw top level: `version` and `package` (or only
/// `version`, for mamba's bad_version test file).
fn is_conda_lock(body: &str) -> bool {
    let Ok(Value::Mapping(m)) = serde_yaml::from_str::<Value>(body) else {
        return false;
    };
    m.contains_key("version") && (m.contains_key("package") || m.len() == 1)
}

fn s_ref(v: &Value) -> Option<String> {
    s(v)
}

/// pixi.lock: for v4 and later, every environment's `packages` per platform:
/// `conda:` entries by URL, `pypi:` entries counted; a `conda:` entry that is no
/// archive, or a `conda_source:` entry (v7), is a source package, which must be
/// refused. v2/v3 files are the conda-lock-like `package` list (one
/// environment). Files under `lock_parse_fails/` and the forward-compatible one
/// must be refused.
fn check_pixi(path: &Path, rel: &str, t: &mut Tally) {
    t.start("pixi");
    if rel.contains("lock_parse_fails/") || rel.contains("forward-compatible") {
        // Duplicate keys are already invalid YAML, before rattler_lock sees them.
        return expect_refusal(
            path,
            t,
            "pixi.lock rattler_lock rejects (or invalid YAML)",
            |e| matches!(e, EnvFileError::Pixi { .. } | EnvFileError::Yaml { .. }),
        );
    }
    let raw = yaml(path);
    let version = raw["version"].as_u64().unwrap_or(0);
    // (environment, platform name) -> expected (conda urls, pypi count, source count)
    type Expected = (BTreeSet<String>, usize, usize);
    let mut expected: BTreeMap<(String, String), Expected> = BTreeMap::new();
    if version >= 4 {
        for (env, data) in raw["environments"].as_mapping().into_iter().flatten() {
            for (platform, list) in data["packages"].as_mapping().into_iter().flatten() {
                let entry = expected
                    .entry((s(env).unwrap(), s(platform).unwrap()))
                    .or_default();
                for item in list.as_sequence().into_iter().flatten() {
                    if let Some(url) = s(&item["conda"]) {
                        if url.ends_with(".conda") || url.ends_with(".tar.bz2") {
                            entry.0.insert(url);
                        } else {
                            entry.2 += 1;
                        }
                    } else if item.get("conda_source").is_some() {
                        entry.2 += 1;
                    } else if item.get("pypi").is_some() {
                        entry.1 += 1;
                    }
                }
            }
        }
    } else {
        for e in raw["package"].as_sequence().into_iter().flatten() {
            let key = ("default".to_owned(), s(&e["platform"]).unwrap());
            let entry = expected.entry(key).or_default();
            match e["manager"].as_str() {
                Some("conda") => {
                    entry.0.insert(s(&e["url"]).unwrap());
                }
                _ => entry.1 += 1,
            }
        }
    }
    let mut read_any = false;
    let mut refused_source = false;
    for ((env_name, platform), (conda, pypi, source)) in &expected {
        let Ok(subdir) = Subdir::from_str(platform) else {
            continue;
        };
        let mut opts = options(subdir);
        if env_name != "default" {
            opts = opts.with_environment(env_name.clone());
        }
        let at = format!("{env_name}/{platform}");
        match read(path, &opts) {
            Ok(EnvFile::Locked(env)) => {
                read_any = true;
                t.packages += env.packages.len();
                t.items(env.packages.len());
                t.pypi += env.pypi.len();
                t.check(*source == 0, path, || {
                    format!("{at}: read, but it locks {source} source packages")
                });
                t.check(env.format == LockFormat::Pixi, path, || {
                    format!("format {:?}", env.format)
                });
                let got = record_urls(&env);
                // rattler_lock may normalise a URL's spelling; compare file names too.
                let same = got == *conda
                    || got.iter().map(|u| file_name(u)).collect::<BTreeSet<_>>()
                        == conda.iter().map(|u| file_name(u)).collect::<BTreeSet<_>>();
                t.check(same, path, || {
                    format!(
                        "{at}: {} records, raw walk has {}; missing {:?}, extra {:?}",
                        got.len(),
                        conda.len(),
                        conda.difference(&got).take(3).collect::<Vec<_>>(),
                        got.difference(conda).take(3).collect::<Vec<_>>()
                    )
                });
                t.check(env.pypi.len() == *pypi, path, || {
                    format!(
                        "{at}: {} pypi reported, raw walk has {pypi}",
                        env.pypi.len()
                    )
                });
                t.check(
                    env.packages.iter().all(|p| p.metadata_complete),
                    path,
                    || "metadata_complete false".into(),
                );
            }
            Ok(other) => t.check(false, path, || format!("not read as locked: {other:?}")),
            Err(EnvFileError::SourcePackages { names, .. }) => {
                t.check(names.len() == *source, path, || {
                    format!(
                        "{at}: {} source packages refused, raw walk has {source}",
                        names.len()
                    )
                });
                refused_source = true;
            }
            Err(e) => t.check(false, path, || format!("{at}: refused: {e}")),
        }
    }
    if refused_source {
        t.refused("pixi.lock with conda source packages (pixi build)");
    }
    if read_any {
        t.read_ok();
    } else if expected.is_empty() {
        // An empty lock file (v6/v7 empty-lock.yml): no platform to take.
        match read(path, &options(Subdir::Linux64)) {
            // (options-lock.yml has environments, none named default, none with packages.)
            Err(
                EnvFileError::PlatformNotLocked { .. } | EnvFileError::NoSuchEnvironment { .. },
            ) => t.refused("pixi.lock without packages (platform or environment not locked)"),
            other => t.check(false, path, || format!("empty lock file read as {other:?}")),
        }
    }
}

/// environment.yml: the raw `dependencies` (strings vs `pip:` lists) and
/// `channels`.
fn check_environment(path: &Path, t: &mut Tally) {
    t.start("environment.yml");
    let raw = yaml(path);
    let known = ["name", "channels", "dependencies", "prefix", "variables"];
    let keys: Vec<String> = raw
        .as_mapping()
        .map(|m| m.keys().filter_map(s).collect())
        .unwrap_or_default();
    if !keys.iter().any(|k| known.contains(&k.as_str())) {
        // conda-lock's virtual-packages.yml and conda's invalid_keys.yml.
        return expect_refusal(path, t, "YAML with no environment keys", |e| {
            matches!(e, EnvFileError::UnrecognizedYaml { .. })
        });
    }
    let mut deps = Vec::new();
    let mut pip = Vec::new();
    for d in raw["dependencies"].as_sequence().into_iter().flatten() {
        match d {
            Value::Mapping(m) if m.contains_key("pip") => pip.extend(
                m.get("pip")
                    .and_then(Value::as_sequence)
                    .into_iter()
                    .flatten()
                    .filter_map(s),
            ),
            // mamba's selectors; on linux-64, linux and unix hold.
            Value::Mapping(m) => {
                for (k, v) in m {
                    if matches!(k.as_str(), Some("sel(linux)" | "sel(unix)")) {
                        deps.extend(s(v));
                    }
                }
            }
            other => deps.extend(s(other)),
        }
    }
    let channels: Vec<String> = raw["channels"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(s)
        .collect();
    match read(path, &options(Subdir::Linux64)) {
        Ok(EnvFile::Environment(spec)) => {
            t.read_ok();
            t.specs += spec.dependencies.len();
            t.items(spec.dependencies.len());
            t.check(spec.dependencies == deps, path, || {
                format!("dependencies {:?} != {deps:?}", spec.dependencies)
            });
            t.check(spec.pip == pip, path, || {
                format!("pip {:?} != {pip:?}", spec.pip)
            });
            t.check(spec.channels == channels, path, || {
                format!("channels {:?} != {channels:?}", spec.channels)
            });
            let unknown: Vec<&String> = keys
                .iter()
                .filter(|k| !known.contains(&k.as_str()))
                .collect();
            t.check(
                spec.unknown_keys.iter().collect::<Vec<_>>() == unknown,
                path,
                || "unknown keys differ".into(),
            );
            if !spec.pip.is_empty() {
                t.pypi += spec.pip.len();
                t.refused("environment.yml with a pip: section (reported, caller refuses)");
            }
        }
        Ok(other) => t.check(false, path, || {
            format!("not read as an environment: {other:?}")
        }),
        Err(e) => t.check(false, path, || format!("refused: {e}")),
    }
}

/// A spec list: the non-blank, non-comment lines.
fn check_spec_list(path: &Path, body: &str, t: &mut Tally) {
    t.start("spec list");
    let lines: Vec<&str> = body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    match read(path, &options(Subdir::Linux64)) {
        Ok(EnvFile::Specs(specs)) => {
            t.read_ok();
            t.specs += specs.len();
            t.items(specs.len());
            t.check(specs.len() == lines.len(), path, || {
                format!("{} specs, {} lines", specs.len(), lines.len())
            });
        }
        Ok(other) => t.check(false, path, || {
            format!("not read as a spec list: {other:?}")
        }),
        Err(EnvFileError::InvalidSpec { spec, .. }) if spec.contains("://") => {
            // conda-lock's test.lock: bare URLs without @EXPLICIT, which no
            // conda reads as a spec list.
            t.refused("URL lines without @EXPLICIT");
        }
        Err(e) => t.check(false, path, || format!("refused: {e}")),
    }
}
