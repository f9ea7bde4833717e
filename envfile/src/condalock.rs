//! conda-lock files (`conda-lock.yml`, `version: 1`).
//!
//! Two readers, tried in this order:
//! 1. rattler_lock's CEP-37 import (`rattler_conda_lock::Document` +
//!    `LockFile::from_conda_lock_document`). It is strict: it rejects many
//!    conda-lock v1 files real tools wrote, for things that do not change what
//!    gets installed — a `constrains` key (mamba's tests), a missing `optional`,
//!    `package:` left empty, absolute `metadata.sources` paths, a platform without
//!    a `content_hash`, pip dependencies with alternative version constraints
//!    (`typing-extensions: '>=4.0,<5|>=3.7'`).
//! 2. When it rejects a file, this crate's own reader of the documented v1
//!    format: `metadata.channels`/`platforms` and `package` entries of `name`,
//!    `version`, `manager`, `platform`, `url`, `hash` (`md5`/`sha256`),
//!    `dependencies`, `category`/`categories`, `optional`. It checks what matters
//!    for installing — the URL, the archive file name (whose name must be the
//!    entry's), the checksums' form — and ignores the rest.
//!
//! Both select the entries of [`ReadOptions::platform`] whose category is `main`
//! (or [`ReadOptions::environment`], when given).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;

use rattler_conda_types::package::{BuildString, CondaArchiveIdentifier, DistArchiveIdentifier};
use rattler_conda_types::{PackageName, PackageRecord, RepoDataRecord, VersionWithSource};
use rattler_lock::conda_lock::ImportOptions;
use rattler_lock::LockFile;
use serde::Deserialize;
use serde_yaml::Value;
use url::Url;

use crate::{
    yaml_scalar_string, EnvFileError, LockFormat, LockedEnvironment, LockedPackage, ReadOptions,
};

/// Parses a conda-lock file for [`ReadOptions::platform`]; `origin` names the
/// file in errors. See the module documentation for the two readers.
pub fn parse_conda_lock(
    text: &str,
    origin: &str,
    options: &ReadOptions,
) -> Result<LockedEnvironment, EnvFileError> {
    let value: Value = serde_yaml::from_str(text).map_err(|source| EnvFileError::Yaml {
        origin: origin.to_owned(),
        source,
    })?;
    conda_lock_from_value(text, &value, origin, options)
}

/// Which reader read a conda-lock file (for tests and diagnostics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reader {
    Cep37,
    V1,
}

pub(crate) fn conda_lock_from_value(
    text: &str,
    value: &Value,
    origin: &str,
    options: &ReadOptions,
) -> Result<LockedEnvironment, EnvFileError> {
    read_with(text, value, origin, options).and_then(|(env, _)| crate::checked(env, origin))
}

pub(crate) fn read_with(
    text: &str,
    value: &Value,
    origin: &str,
    options: &ReadOptions,
) -> Result<(LockedEnvironment, Reader), EnvFileError> {
    let cep_error = match read_cep37(text, origin, options) {
        Ok(Ok(env)) => return Ok((env, Reader::Cep37)),
        // The file was read; what we asked of it is not there.
        Ok(Err(e)) => return Err(e),
        Err(message) => message,
    };
    read_v1(value, origin, options)
        .map(|env| (env, Reader::V1))
        .map_err(|e| match e {
            EnvFileError::CondaLock { origin, reason } => EnvFileError::CondaLock {
                origin,
                reason: format!("{reason} (the CEP-37 reader said: {cep_error})"),
            },
            other => other,
        })
}

fn selected_categories(options: &ReadOptions) -> BTreeSet<String> {
    let mut categories = BTreeSet::from(["main".to_owned()]);
    categories.extend(options.environment.clone());
    categories
}

/// `Err(message)` when the CEP-37 reader rejects the file; `Ok(Err(..))` when it
/// read the file but the platform is not in it.
fn read_cep37(
    text: &str,
    origin: &str,
    options: &ReadOptions,
) -> Result<Result<LockedEnvironment, EnvFileError>, String> {
    let document = rattler_conda_lock::Document::parse(text).map_err(|e| e.to_string())?;
    let import = ImportOptions {
        environments: BTreeMap::from([("default".to_owned(), selected_categories(options))]),
    };
    let lock = LockFile::from_conda_lock_document(&document, &import).map_err(|e| e.to_string())?;
    Ok(crate::pixi::from_lock_file(
        &lock,
        "default",
        origin,
        None,
        options,
        LockFormat::CondaLock,
        false,
    ))
}

#[derive(Deserialize)]
struct V1Package {
    name: String,
    #[serde(default)]
    version: Option<Value>,
    manager: String,
    platform: String,
    url: String,
    hash: V1Hash,
    #[serde(default)]
    dependencies: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    categories: Option<Vec<String>>,
    /// conda-lock's `source` (a pip package from a URL or git); on a conda
    /// entry it would mean a source build, which has no artifact to install.
    #[serde(default)]
    source: Option<Value>,
}

#[derive(Deserialize)]
struct V1Hash {
    #[serde(default)]
    md5: Option<String>,
    #[serde(default)]
    sha256: Option<String>,
}

fn read_v1(
    value: &Value,
    origin: &str,
    options: &ReadOptions,
) -> Result<LockedEnvironment, EnvFileError> {
    let top = |reason: String| EnvFileError::CondaLock {
        origin: origin.to_owned(),
        reason,
    };
    let mapping = value
        .as_mapping()
        .ok_or_else(|| top("the top level is not a mapping".to_owned()))?;
    match mapping.get("version") {
        None => {}
        Some(v) if v.as_u64() == Some(1) => {}
        Some(v) => {
            let shown = yaml_scalar_string(v).unwrap_or_else(|| "?".to_owned());
            return Err(top(format!(
                "version {shown} is not conda-lock's version 1"
            )));
        }
    }
    let metadata = mapping
        .get("metadata")
        .and_then(Value::as_mapping)
        .ok_or_else(|| top("there is no `metadata` mapping".to_owned()))?;
    let platforms: Vec<String> = match metadata.get("platforms") {
        Some(Value::Sequence(items)) => items.iter().filter_map(yaml_scalar_string).collect(),
        _ => return Err(top("`metadata.platforms` is not a list".to_owned())),
    };
    let channels: Vec<String> = match metadata.get("channels") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(|c| match c {
                Value::Mapping(m) => m.get("url").and_then(yaml_scalar_string),
                other => yaml_scalar_string(other),
            })
            .collect(),
        Some(_) => return Err(top("`metadata.channels` is not a list".to_owned())),
    };
    let entries: &[Value] = match mapping.get("package") {
        None | Some(Value::Null) => &[],
        Some(Value::Sequence(items)) => items,
        Some(_) => return Err(top("`package` is not a list".to_owned())),
    };

    let wanted = options.platform.as_str();
    let categories = selected_categories(options);
    let mut env = LockedEnvironment {
        format: LockFormat::CondaLock,
        platform: Some(options.platform),
        channels,
        packages: Vec::new(),
        pypi: Vec::new(),
    };
    let mut seen_platform = platforms.iter().any(|p| p == wanted);
    let mut all_categories = BTreeSet::from(["main".to_owned()]);
    // (manager, name) -> (url, index) of the entry taken, to catch two
    // categories locking different artifacts under one name.
    let mut taken: HashMap<(String, String), (String, usize)> = HashMap::new();
    for (index, entry) in entries.iter().enumerate() {
        let entry_name = entry
            .get("name")
            .and_then(yaml_scalar_string)
            .unwrap_or_else(|| "?".to_owned());
        let entry_error = |reason: String| EnvFileError::CondaLockEntry {
            origin: origin.to_owned(),
            index,
            name: entry_name.clone(),
            reason,
        };
        let package: V1Package =
            serde_yaml::from_value(entry.clone()).map_err(|e| entry_error(e.to_string()))?;
        let entry_categories: Vec<String> = match (&package.categories, &package.category) {
            (Some(list), _) => list.clone(),
            (None, Some(category)) => vec![category.clone()],
            (None, None) => vec!["main".to_owned()],
        };
        all_categories.extend(entry_categories.iter().cloned());
        if package.platform != wanted {
            continue;
        }
        seen_platform = true;
        if !entry_categories.iter().any(|c| categories.contains(c)) {
            continue;
        }
        let key = (package.manager.clone(), package.name.to_lowercase());
        if let Some((url, first)) = taken.get(&key) {
            if *url == package.url {
                continue;
            }
            return Err(entry_error(format!(
                "locks {} but package[{first}] locks {url} under the same name",
                package.url
            )));
        }
        taken.insert(key, (package.url.clone(), index));
        match package.manager.as_str() {
            "conda" if package.source.as_ref().is_some_and(|s| !s.is_null()) => {
                return Err(entry_error(
                    "a conda package built from source, not an artifact pkgr can install"
                        .to_owned(),
                ))
            }
            "conda" => env.packages.push(LockedPackage {
                record: v1_record(&package, &env.channels, entry_error)?,
                metadata_complete: false,
            }),
            "pip" => {
                let version = package.version.as_ref().and_then(yaml_scalar_string);
                env.pypi.push(match version {
                    Some(version) => format!("{}=={version}", package.name),
                    None => format!("{} @ {}", package.name, package.url),
                });
            }
            other => return Err(entry_error(format!("unknown manager `{other}`"))),
        }
    }
    if !seen_platform {
        return Err(EnvFileError::PlatformNotLocked {
            origin: origin.to_owned(),
            platform: wanted.to_owned(),
            available: platforms,
        });
    }
    if let Some(missing) = categories.iter().find(|c| !all_categories.contains(*c)) {
        return Err(top(format!("no package has category `{missing}`")));
    }
    Ok(env)
}

fn v1_record(
    package: &V1Package,
    channels: &[String],
    entry_error: impl Fn(String) -> EnvFileError,
) -> Result<RepoDataRecord, EnvFileError> {
    let url =
        Url::parse(&package.url).map_err(|e| entry_error(format!("url {}: {e}", package.url)))?;
    let segments: Vec<&str> = url
        .path_segments()
        .map(Iterator::collect)
        .unwrap_or_default();
    let (subdir, file_name) = match segments.as_slice() {
        [.., subdir, file] if !subdir.is_empty() && !file.is_empty() => (*subdir, *file),
        _ => {
            return Err(entry_error(format!(
                "url {url} does not end in /<subdir>/<package file>"
            )))
        }
    };
    let identifier = CondaArchiveIdentifier::try_from_filename(file_name)
        .ok_or_else(|| entry_error(format!("{file_name} is not a conda package file name")))?;
    let id = &identifier.identifier;
    let name = PackageName::try_from(id.name.as_str())
        .map_err(|e| entry_error(format!("invalid package name in {file_name}: {e}")))?;
    if name.as_normalized() != package.name.to_lowercase() {
        return Err(entry_error(format!(
            "the url's file {file_name} is not package {}",
            package.name
        )));
    }
    let version = VersionWithSource::from_str(&id.version)
        .map_err(|e| entry_error(format!("invalid version in {file_name}: {e}")))?;
    let build = BuildString::from_str(&id.build_string)
        .map_err(|e| entry_error(format!("invalid build string in {file_name}: {e}")))?;
    let mut record = PackageRecord::new(name, version, build);
    record.build_number = id
        .build_string
        .rsplit('_')
        .next()
        .and_then(|tail| tail.parse().ok())
        .unwrap_or(0);
    record.subdir = subdir.to_owned();
    let digest = |field: &str, hex_digits: &str, len: usize| -> Result<Vec<u8>, EnvFileError> {
        let bytes =
            hex::decode(hex_digits).map_err(|_| entry_error(format!("hash.{field} is not hex")))?;
        if bytes.len() != len {
            return Err(entry_error(format!(
                "hash.{field} has {} hex digits, not {}",
                hex_digits.len(),
                len * 2
            )));
        }
        Ok(bytes)
    };
    if let Some(md5) = &package.hash.md5 {
        let bytes = digest("md5", md5, 16)?;
        let mut array = [0u8; 16];
        array.copy_from_slice(&bytes);
        record.md5 = Some(array.into());
    }
    if let Some(sha256) = &package.hash.sha256 {
        let bytes = digest("sha256", sha256, 32)?;
        let mut array = [0u8; 32];
        array.copy_from_slice(&bytes);
        record.sha256 = Some(array.into());
    }
    if record.md5.is_none() && record.sha256.is_none() {
        return Err(entry_error("hash has neither md5 nor sha256".to_owned()));
    }
    for (dep, spec) in package.dependencies.iter().flatten() {
        let spec = yaml_scalar_string(spec).unwrap_or_default();
        let spec = spec.trim();
        record.depends.push(if spec.is_empty() || spec == "*" {
            dep.clone()
        } else {
            format!("{dep} {spec}")
        });
    }
    let mut channel = url.clone();
    if let Ok(mut path) = channel.path_segments_mut() {
        path.pop().pop();
    }
    let channel = channel.as_str().trim_end_matches('/').to_owned();
    // Prefer the channel as the file names it, when it is the URL's prefix.
    let channel = channels
        .iter()
        .find(|c| c.trim_end_matches('/') == channel)
        .cloned()
        .unwrap_or(channel);
    Ok(RepoDataRecord {
        package_record: record,
        identifier: DistArchiveIdentifier::from(identifier),
        url,
        channel: Some(channel),
    })
}

#[cfg(test)]
mod tests {
    use rattler_conda_types::Subdir;

    use super::*;

    const LOCK: &str = "\
version: 1
metadata:
  content_hash:
    linux-64: 8b7df143d91c716ecfa5fc1730022f6b421b05cedee8fd52b1fc65a96030ad52
    osx-64: 8b7df143d91c716ecfa5fc1730022f6b421b05cedee8fd52b1fc65a96030ad52
  channels:
    - url: conda-forge
      used_env_vars: []
  platforms: [linux-64, osx-64]
  sources: [environment.yml]
package:
  - name: ca-certificates
    version: 2025.10.5
    manager: conda
    platform: linux-64
    dependencies: {}
    url: https://conda.anaconda.org/conda-forge/noarch/ca-certificates-2025.10.5-hbd8a1cb_0.conda
    hash:
      md5: f9e5fbc24009179e8b0409624691758a
      sha256: 3b5ad78b8bb61b6cdc0978a6a99f8dfb2cc789a451378d054698441005ecbdb6
    category: main
    optional: false
  - name: libzlib
    version: 1.3.1
    manager: conda
    platform: linux-64
    dependencies:
      libgcc: '>=13'
    url: https://conda.anaconda.org/conda-forge/linux-64/libzlib-1.3.1-hb9d3cd8_2.conda
    hash:
      md5: edb0dca6bc32e4f4789199455a1dbeb8
      sha256: d4bfe88d7cb447768e31650f06257995601f89076080e76df55e3112d4e47dc4
    category: main
    optional: false
  - name: pytest
    version: 8.0.0
    manager: conda
    platform: linux-64
    dependencies: {}
    url: https://conda.anaconda.org/conda-forge/noarch/pytest-8.0.0-pyhd8ed1ab_0.conda
    hash:
      md5: 5ba1cc5b924226349d4a49fb547b7579
      sha256: 3b5ad78b8bb61b6cdc0978a6a99f8dfb2cc789a451378d054698441005ecbdb6
    category: dev
    optional: true
  - name: requests
    version: 2.31.0
    manager: pip
    platform: linux-64
    dependencies: {}
    url: https://files.pythonhosted.org/packages/requests-2.31.0-py3-none-any.whl
    hash:
      sha256: 58cd2187c01e70e6e26505bca751777aa9f2ee0b7f4300988b709f44e013003f
    category: main
    optional: false
";

    fn linux() -> ReadOptions {
        ReadOptions::new(Subdir::Linux64)
    }

    fn names(env: &LockedEnvironment) -> Vec<&str> {
        env.packages
            .iter()
            .map(|p| p.record.package_record.name.as_normalized())
            .collect()
    }

    fn sorted(mut v: Vec<&str>) -> Vec<&str> {
        v.sort_unstable();
        v
    }

    #[test]
    fn cep37_reader_reads_main_and_reports_pip() {
        let value: Value = serde_yaml::from_str(LOCK).unwrap();
        let (env, reader) = read_with(LOCK, &value, "conda-lock.yml", &linux()).unwrap();
        assert_eq!(reader, Reader::Cep37);
        // The CEP-37 import does not keep file order (it groups by subdir).
        assert_eq!(sorted(names(&env)), ["ca-certificates", "libzlib"]);
        assert_eq!(env.pypi, ["requests==2.31.0"]);
        assert_eq!(env.format, LockFormat::CondaLock);
        assert!(!env.packages[0].metadata_complete);

        let dev = linux().with_environment("dev");
        let (env, _) = read_with(LOCK, &value, "conda-lock.yml", &dev).unwrap();
        assert_eq!(
            sorted(names(&env)),
            ["ca-certificates", "libzlib", "pytest"]
        );
    }

    #[test]
    fn v1_reader_agrees_with_cep37() {
        let value: Value = serde_yaml::from_str(LOCK).unwrap();
        for options in [linux(), linux().with_environment("dev")] {
            let (cep, _) = read_with(LOCK, &value, "l", &options).unwrap();
            let own = read_v1(&value, "l", &options).unwrap();
            let key = |env: &LockedEnvironment| {
                let mut v: Vec<_> = env
                    .packages
                    .iter()
                    .map(|p| {
                        let r = &p.record;
                        (
                            r.url.to_string(),
                            r.package_record.md5,
                            r.package_record.sha256,
                            r.package_record.subdir.clone(),
                        )
                    })
                    .collect();
                v.sort();
                v
            };
            assert_eq!(key(&cep), key(&own));
            assert_eq!(cep.pypi, own.pypi);
            let zlib = own
                .packages
                .iter()
                .find(|p| p.record.package_record.name.as_normalized() == "libzlib")
                .unwrap();
            assert_eq!(zlib.record.package_record.depends, ["libgcc >=13"]);
            assert_eq!(zlib.record.package_record.build_number, 2);
            assert_eq!(
                zlib.record.channel.as_deref(),
                Some("https://conda.anaconda.org/conda-forge")
            );
        }
    }

    #[test]
    fn falls_back_to_v1_reader() {
        // `constrains` is not CEP-37; mamba writes it.
        let text = LOCK.replace(
            "    dependencies:\n      libgcc: '>=13'\n",
            "    dependencies:\n      libgcc: '>=13'\n    constrains:\n      zlib: 1.3.1 *_2\n",
        );
        let value: Value = serde_yaml::from_str(&text).unwrap();
        let (env, reader) = read_with(&text, &value, "l", &linux()).unwrap();
        assert_eq!(reader, Reader::V1);
        assert_eq!(names(&env), ["ca-certificates", "libzlib"]);
        assert_eq!(env.pypi, ["requests==2.31.0"]);
    }

    #[test]
    fn platform_not_locked() {
        let e = parse_conda_lock(LOCK, "l", &ReadOptions::new(Subdir::Win64)).unwrap_err();
        let EnvFileError::PlatformNotLocked { available, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(available, &["linux-64", "osx-64"]);
        // osx-64 is declared but has no packages: an empty environment.
        let env = parse_conda_lock(LOCK, "l", &ReadOptions::new(Subdir::Osx64)).unwrap();
        assert!(env.packages.is_empty());
    }

    #[test]
    fn v1_errors() {
        let bad = |from: &str, to: &str| {
            let text = LOCK.replace(from, to);
            let value: Value = serde_yaml::from_str(&text).unwrap();
            read_with(&text, &value, "l", &linux()).unwrap_err()
        };
        let e = bad(
            "      md5: edb0dca6bc32e4f4789199455a1dbeb8\n",
            "      md5: edb0dca6\n",
        );
        assert!(
            matches!(&e, EnvFileError::CondaLockEntry { index: 1, .. }),
            "{e}"
        );
        let e = bad("    manager: pip\n", "    manager: cargo\n");
        assert!(
            matches!(&e, EnvFileError::CondaLockEntry { index: 3, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("unknown manager `cargo`"), "{e}");
        let e = bad("libzlib-1.3.1-hb9d3cd8_2.conda", "libzlib-1.3.1.zip");
        assert!(
            matches!(&e, EnvFileError::CondaLockEntry { index: 1, .. }),
            "{e}"
        );
        // Both readers refuse a record whose URL is another package's file.
        let e = bad("  - name: libzlib\n", "  - name: zlib\n");
        assert!(matches!(&e, EnvFileError::NameMismatch { .. }), "{e}");
        let text = LOCK.replace("  - name: libzlib\n", "  - name: zlib\n");
        let e = read_v1(&serde_yaml::from_str(&text).unwrap(), "l", &linux()).unwrap_err();
        assert!(e.to_string().contains("is not package zlib"), "{e}");
        let e = bad(
            "    manager: conda\n    platform: linux-64\n    dependencies:\n",
            "    platform: linux-64\n    dependencies:\n",
        );
        assert!(
            matches!(&e, EnvFileError::CondaLockEntry { index: 1, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("manager"), "{e}");
        let e = bad(
            "    category: main\n    optional: false\n  - name: pytest",
            "    category: main\n    optional: false\n    source: {type: url, url: 'git+https://x'}\n  - name: pytest",
        );
        assert!(e.to_string().contains("built from source"), "{e}");
        let e = bad("version: 1\nmetadata:", "version: 1\nmetadatum:");
        assert!(matches!(&e, EnvFileError::CondaLock { .. }), "{e}");
        assert!(e.to_string().contains("CEP-37 reader said"), "{e}");
    }

    #[test]
    fn conflicting_categories() {
        // The dev category locks another libzlib than main.
        let text = LOCK
            .replace("  - name: pytest\n", "  - name: libzlib\n")
            .replace(
                "pytest-8.0.0-pyhd8ed1ab_0.conda",
                "libzlib-1.3.0-h0_0.conda",
            );
        let value: Value = serde_yaml::from_str(&text).unwrap();
        let own = read_v1(&value, "l", &linux().with_environment("dev")).unwrap_err();
        assert!(own.to_string().contains("under the same name"), "{own}");
        // CEP-37 rejects it too; the error the user sees is the v1 reader's.
        let e = read_with(&text, &value, "l", &linux().with_environment("dev")).unwrap_err();
        assert!(
            matches!(e, EnvFileError::CondaLockEntry { index: 2, .. }),
            "{e}"
        );
    }

    /// Over the dataset's conda-lock files: which reader reads each, and where
    /// both do, that they give the same artifacts and pip packages.
    #[test]
    #[ignore = "needs the conda datasets: set PKGR_DATASETS (.ci/run does)"]
    fn dataset_readers_agree() {
        let root = std::env::var_os("PKGR_DATASETS")
            .filter(|root| !root.is_empty())
            .unwrap_or_else(|| panic!("PKGR_DATASETS is not set: this test reads the conda datasets; set PKGR_DATASETS to that folder (.ci/run sets it)"));
        assert!(
            std::path::Path::new(&root).is_dir(),
            "PKGR_DATASETS is set to {}, which is not a directory (point it at the conda datasets folder)",
            std::path::Path::new(&root).display()
        );
        let files = [
            "conda-lock/conda-lock-tests/test-install-with-pip-deps/conda-lock.yml",
            "conda-lock/conda-lock-tests/test-explicit-toposorted/conda-lock.yml",
            "conda-lock/conda-lock-tests/test-update-filter-platform/conda-lock.yml",
            "conda-lock/conda-lock-tests/test-lockfile/conda-lock.yml",
            "conda-lock/conda-lock-tests/test-environment-blas-mkl/conda-lock.yml",
            "conda-lock/conda-lock-tests/test-multiple-categories/conda-lock.yml",
            "conda-lock/conda-lock-tests/test-pypi-resolve-gh155/conda-lock.yml",
            "conda-lock/mamba-env_lockfile/good_multiple_categories-lock.yaml",
            "conda-lock/mamba-env_lockfile/good_overlap_categories-lock.yaml",
            "conda-lock/mamba-env_lockfile/good_one_package_missing_category-lock.yaml",
            "conda-lock/mamba-env_lockfile/good_multiple_packages-lock.yaml",
            "conda-lock/mamba-env_lockfile/good_one_package-lock.yaml",
            "conda-lock/mamba-env_lockfile/good_no_package-lock.yaml",
            "conda-lock/micromamba-env_lockfiles/test-env-lock.yaml",
            "conda-lock/micromamba-env_lockfiles/test-env-pip-lock.yaml",
            "conda-lock/micromamba-env_lockfiles/test-env-lock-pip-git-https.yaml",
            "conda-lock/micromamba-env_lockfiles/envlockfile-check-step-1-lock.yaml",
            "conda-lock/micromamba-env_lockfiles/envlockfile-check-step-2-lock.yaml",
            "rattler-lock/rattler-test-data/v0/numpy-conda-lock.yml",
            "rattler-lock/rattler-test-data/v0/pypi-matplotlib-conda-lock.yml",
            "rattler-lock/rattler-test-data/v0/python-conda-lock.yml",
        ];
        let specs = std::path::PathBuf::from(root).join("specs");
        let (mut neither, mut v1_only, mut both, mut compared) = (0, 0, 0, 0);
        let mut v1_files = Vec::new();
        for file in files {
            let path = specs.join(file);
            let text = fs_err::read_to_string(&path).unwrap();
            let value: Value = serde_yaml::from_str(&text).unwrap();
            let platforms: Vec<Subdir> = value["metadata"]["platforms"]
                .as_sequence()
                .unwrap()
                .iter()
                .filter_map(|p| p.as_str()?.parse().ok())
                .collect();
            let cep_reads = rattler_conda_lock::Document::parse(&text)
                .map_err(|e| e.to_string())
                .and_then(|d| {
                    LockFile::from_conda_lock_document(&d, &ImportOptions::default())
                        .map_err(|e| e.to_string())
                });
            let v1_reads = read_v1(&value, file, &ReadOptions::new(platforms[0]));
            match (&cep_reads, &v1_reads) {
                (Ok(_), Ok(_)) => both += 1,
                (Ok(_), Err(e)) => panic!("{file}: only CEP-37 reads it; v1 reader: {e}"),
                (Err(e), Ok(_)) => {
                    v1_only += 1;
                    v1_files.push(format!("{file} ({e})"));
                }
                (Err(_), Err(_)) => neither += 1,
            }
            if cep_reads.is_err() {
                continue;
            }
            for platform in platforms {
                let options = ReadOptions::new(platform);
                let cep = read_cep37(&text, file, &options).unwrap().unwrap();
                let own = read_v1(&value, file, &options).unwrap();
                let urls = |env: &LockedEnvironment| {
                    let mut v: Vec<_> = env
                        .packages
                        .iter()
                        .map(|p| {
                            let r = &p.record.package_record;
                            (
                                p.record.url.to_string(),
                                r.md5,
                                r.sha256,
                                r.name.as_normalized().to_owned(),
                            )
                        })
                        .collect();
                    v.sort();
                    v
                };
                assert_eq!(urls(&cep), urls(&own), "{file} {platform}");
                let mut a = cep.pypi.clone();
                let mut b = own.pypi.clone();
                a.sort();
                b.sort();
                assert_eq!(a, b, "{file} {platform}");
                compared += 1;
            }
        }
        println!(
            "conda-lock readers: {both} files read by both (agreeing on {compared} platforms), \
             {v1_only} only by the v1 reader, {neither} by neither:\n  {}",
            v1_files.join("\n  ")
        );
        assert!(
            both >= 5 && v1_only >= 5,
            "dataset changed? both={both} v1_only={v1_only}"
        );
    }
}
