//! Reads the files a conda, mamba or CI user hands to `pkgr create -f FILE` and
//! says what to install.
//!
//! Five kinds of file, told apart by their content (see [`read`]):
//!
//! | file                                   | result                              |
//! |----------------------------------------|-------------------------------------|
//! | `environment.yml`                      | [`EnvFile::Environment`]: specs to solve |
//! | a spec list (`conda create --file`)    | [`EnvFile::Specs`]: specs to solve  |
//! | an `@EXPLICIT` list                    | [`EnvFile::Locked`], [`LockFormat::Explicit`] |
//! | `conda-lock.yml` (conda-lock v1, CEP-37) | [`EnvFile::Locked`], [`LockFormat::CondaLock`] |
//! | `pixi.lock` (format versions 2–7)      | [`EnvFile::Locked`], [`LockFormat::Pixi`] |
//!
//! This crate does no I/O beyond reading the one file: no HTTP, no cache, no
//! prefix. Locked packages come back as [`RepoDataRecord`]s with the URL and
//! checksums the file gives; whether a record carries the full repodata metadata
//! (dependencies, sizes, …) is said by [`LockedPackage::metadata_complete`], so the
//! caller knows to take the rest from the archive's `info/index.json`.
//!
//! Packages a lock file names that conda cannot install — pip/PyPI packages — are
//! *reported* in [`LockedEnvironment::pypi`], never dropped, so the caller can
//! refuse them by name. Conda packages locked as source builds (pixi build) are an
//! error ([`EnvFileError::SourcePackages`]): there is no artifact to install.
//!
//! Platforms are [`rattler_conda_types::Subdir`]s (what rattler_conda_types 0.58
//! calls a platform).

mod condalock;
mod environment;
mod error;
mod explicit;
mod pixi;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use rattler_conda_types::{RepoDataRecord, Subdir};

pub use condalock::parse_conda_lock;
pub use environment::{parse_environment_yaml, parse_spec_list};
pub use error::EnvFileError;
pub use explicit::parse_explicit;
pub use pixi::parse_pixi_lock;

/// What a file asks for.
#[derive(Debug, Clone)]
pub enum EnvFile {
    /// An environment.yml: specs to solve.
    Environment(EnvironmentSpec),
    /// A plain spec list (conda's `--file` of match specs, one per line; `#`
    /// comments): specs to solve, as written.
    Specs(Vec<String>),
    /// An @EXPLICIT list, a conda-lock file or a pixi.lock: exact packages,
    /// installed without solving.
    Locked(LockedEnvironment),
}

/// The content of an environment.yml.
///
/// Keys are conda's (`name`, `channels`, `dependencies`, `prefix`, `variables`).
/// Other top-level keys do not fail the read (conda warns about them and goes on);
/// they are listed in [`Self::unknown_keys`] so the caller can warn, naming them —
/// a misspelt `dependecies:` would otherwise silently give an empty environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvironmentSpec {
    /// `name:`, if given.
    pub name: Option<String>,
    /// `prefix:`, if given (kept as written; the caller decides whether to use it).
    pub prefix: Option<PathBuf>,
    /// `channels:`, in order, as written: `nodefaults` and `${VAR}` references are
    /// kept for the caller to handle.
    pub channels: Vec<String>,
    /// The conda specs of `dependencies:`, as written (each checked to be a valid
    /// match spec).
    pub dependencies: Vec<String>,
    /// The entries of `pip:` sections of `dependencies:`, as written.
    pub pip: Vec<String>,
    /// `variables:` (scalars are turned into their string form).
    pub variables: BTreeMap<String, String>,
    /// Top-level keys that are not conda's, in file order.
    pub unknown_keys: Vec<String>,
}

/// Exact packages to install, read from a lock file.
#[derive(Debug, Clone)]
pub struct LockedEnvironment {
    /// Which kind of file it was.
    pub format: LockFormat,
    /// The platform the packages are for: the `# platform:` comment of an
    /// @EXPLICIT file (`None` if it has none), or the platform taken from a
    /// multi-platform lock file ([`ReadOptions::platform`]).
    pub platform: Option<Subdir>,
    /// The channels the file names (URLs or names, as written). Empty for
    /// @EXPLICIT files, which name none.
    pub channels: Vec<String>,
    /// The conda packages: in file order for @EXPLICIT lists and conda-lock files
    /// read by the v1 reader, in rattler_lock's order for pixi.lock and CEP-37
    /// imports (the import groups by subdir). The install order is the caller's
    /// (by dependencies).
    pub packages: Vec<LockedPackage>,
    /// pip/PyPI packages the file lists for that platform, as `name==version`
    /// (or `name @ url` where the file gives no version). pkgr does not install
    /// these; the caller refuses the file naming them.
    pub pypi: Vec<String>,
}

/// Which kind of lock file a [`LockedEnvironment`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockFormat {
    /// conda's `@EXPLICIT` list of URLs (`conda list --explicit`, conda-lock's
    /// rendered `conda-<platform>.lock`).
    Explicit,
    /// A conda-lock file (`conda-lock.yml`, `version: 1`).
    CondaLock,
    /// A pixi.lock (rattler_lock's format, versions 2 and later).
    Pixi,
}

/// One locked conda package.
#[derive(Debug, Clone)]
pub struct LockedPackage {
    /// The record: name, version, build, subdir, URL, channel and the checksums
    /// the file gives, plus whatever else it gives.
    pub record: RepoDataRecord,
    /// Whether the record holds the package's metadata as the channel's repodata
    /// has it (dependencies, constraints, size, …). `true` only for pixi.lock,
    /// which stores the solved records. `false` for @EXPLICIT lines (only the
    /// name, version and build of the file name) and for conda-lock entries
    /// (dependencies, but no constraints, sizes or licenses): the caller fills
    /// those — and `noarch`, which such records leave unset — from the archive's
    /// `info/index.json` after download.
    pub metadata_complete: bool,
}

/// How to read a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOptions {
    /// Which platform to take from a multi-platform lock file (conda-lock,
    /// pixi.lock). Not used for @EXPLICIT files, which are for one platform
    /// (reported in [`LockedEnvironment::platform`] for the caller to check).
    pub platform: Subdir,
    /// For a pixi.lock: which environment (default `default`). For a conda-lock
    /// file: a category installed in addition to `main` (default: `main` only,
    /// as `conda-lock install` does without `--dev`/`-e`).
    pub environment: Option<String>,
}

impl ReadOptions {
    /// Options for `platform`, default environment.
    pub fn new(platform: Subdir) -> Self {
        Self {
            platform,
            environment: None,
        }
    }

    /// Selects a pixi environment, or a conda-lock category besides `main`.
    #[must_use]
    pub fn with_environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }
}

/// What a file's content says it is (see [`read`] for the rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// An environment.yml.
    Environment,
    /// A plain list of match specs.
    SpecList,
    /// An @EXPLICIT list.
    Explicit,
    /// A conda-lock file.
    CondaLock,
    /// A pixi.lock.
    Pixi,
}

/// Reads `path` and says what it asks to install.
///
/// The kind of file is decided by its content, not its name (CI setups name
/// lock files freely: `conda-linux-64.lock` is an @EXPLICIT list, `*-lock.yml`
/// may be conda-lock or pixi), in this order:
/// 1. a line that is exactly `@EXPLICIT` → an @EXPLICIT list;
/// 2. a YAML mapping with a `package` key and `version` absent or `1` → conda-lock
///    (pixi's version-1 format *is* conda-lock's);
/// 3. a YAML mapping with `version` and one of `environments`, `packages`,
///    `package` → pixi.lock (an unsupported version is then pixi's error);
/// 4. (after 5's lock-file check) a YAML mapping with any of `name`, `channels`, `dependencies`, `prefix`,
///    `variables` → environment.yml;
/// 5. any other mapping with a lock-file key (`version`, `package`, `packages`,
///    `environments`, `metadata`, `lockVersion`) → [`EnvFileError::UnknownLockFormat`];
///    any other mapping → [`EnvFileError::UnrecognizedYaml`]; any other YAML in
///    a file named `.yml`/`.yaml`/`.json` → [`EnvFileError::NotAMapping`] (or
///    [`EnvFileError::Yaml`] if it does not parse — a duplicate key is a parse
///    error);
/// 6. anything else → a spec list.
pub fn read(path: &Path, options: &ReadOptions) -> Result<EnvFile, EnvFileError> {
    let text = fs_err::read_to_string(path).map_err(|source| EnvFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let origin = path.display().to_string();
    parse(&text, &origin, is_yaml_name(path), path.parent(), options)
}

/// Like [`read`], for text already in memory. `origin` names the text in errors;
/// `yaml_name` says whether the file's name ends in `.yml`/`.yaml`/`.json` (which
/// makes a non-mapping an error instead of a spec list); `base_dir` is the
/// directory relative paths in a pixi.lock are taken from (the file's own).
pub fn parse(
    text: &str,
    origin: &str,
    yaml_name: bool,
    base_dir: Option<&Path>,
    options: &ReadOptions,
) -> Result<EnvFile, EnvFileError> {
    match detect(text, origin, yaml_name)? {
        (FileKind::Explicit, _) => parse_explicit(text, origin).map(EnvFile::Locked),
        (FileKind::SpecList, _) => parse_spec_list(text, origin).map(EnvFile::Specs),
        (FileKind::Environment, Some(value)) => {
            environment::environment_from_value(&value, origin, options.platform)
                .map(EnvFile::Environment)
        }
        (FileKind::CondaLock, Some(value)) => {
            condalock::conda_lock_from_value(text, &value, origin, options).map(EnvFile::Locked)
        }
        (FileKind::Pixi, _) => {
            parse_pixi_lock(text, origin, base_dir, options).map(EnvFile::Locked)
        }
        (FileKind::Environment | FileKind::CondaLock, None) => {
            unreachable!("YAML kinds are detected from a parsed value")
        }
    }
}

/// Says what kind of file `text` is, by the rules of [`read`].
pub fn detect_kind(text: &str, origin: &str, yaml_name: bool) -> Result<FileKind, EnvFileError> {
    detect(text, origin, yaml_name).map(|(kind, _)| kind)
}

fn detect(
    text: &str,
    origin: &str,
    yaml_name: bool,
) -> Result<(FileKind, Option<serde_yaml::Value>), EnvFileError> {
    if text.lines().any(|line| line.trim() == "@EXPLICIT") {
        return Ok((FileKind::Explicit, None));
    }
    let value = match serde_yaml::from_str::<serde_yaml::Value>(text) {
        Ok(value) => value,
        Err(source) if yaml_name => {
            return Err(EnvFileError::Yaml {
                origin: origin.to_owned(),
                source,
            })
        }
        Err(_) => return Ok((FileKind::SpecList, None)),
    };
    let Some(mapping) = value.as_mapping() else {
        if yaml_name {
            return Err(EnvFileError::NotAMapping {
                origin: origin.to_owned(),
            });
        }
        return Ok((FileKind::SpecList, None));
    };
    let has = |key: &str| mapping.contains_key(key);
    let version_is_one = match mapping.get("version") {
        None => true,
        Some(v) => v.as_u64() == Some(1) || v.as_str() == Some("1"),
    };
    let kind = if has("package") && version_is_one {
        FileKind::CondaLock
    } else if has("version") && (has("environments") || has("packages") || has("package")) {
        FileKind::Pixi
    } else if LOCK_KEYS.iter().any(|key| has(key)) {
        return Err(EnvFileError::UnknownLockFormat {
            origin: origin.to_owned(),
            keys: mapping.keys().map(yaml_key_string).collect(),
        });
    } else if environment::KNOWN_KEYS.iter().any(|key| has(key)) {
        FileKind::Environment
    } else if !yaml_name && mapping.is_empty() {
        return Ok((FileKind::SpecList, None));
    } else {
        return Err(EnvFileError::UnrecognizedYaml {
            origin: origin.to_owned(),
            keys: mapping.keys().map(yaml_key_string).collect(),
        });
    };
    Ok((kind, Some(value)))
}

/// Top-level keys of lock files; none is an environment.yml key.
const LOCK_KEYS: &[&str] = &[
    "version",
    "package",
    "packages",
    "environments",
    "metadata",
    "lockVersion",
];

fn is_yaml_name(path: &Path) -> bool {
    path.extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| {
            ["yml", "yaml", "json"]
                .iter()
                .any(|e| ext.eq_ignore_ascii_case(e))
        })
}

/// A YAML key as text (keys are nearly always strings; others are rendered).
fn yaml_key_string(key: &serde_yaml::Value) -> String {
    match key {
        serde_yaml::Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "?".to_owned()),
    }
}

/// A scalar YAML value as text (`1.10` stays `1.10` only if quoted in the file —
/// YAML itself reads it as the number 1.1).
fn yaml_scalar_string(value: &serde_yaml::Value) -> Option<String> {
    match value {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `env` if every locked record can name files ([`check_identity`]), else
/// [`EnvFileError::UnsafeRecord`] naming the first that cannot. Every
/// reader of lock files ends with this.
pub(crate) fn checked(
    env: LockedEnvironment,
    origin: &str,
) -> Result<LockedEnvironment, EnvFileError> {
    for package in &env.packages {
        check_identity(&package.record).map_err(|problem| EnvFileError::UnsafeRecord {
            origin: origin.to_owned(),
            file_name: package
                .record
                .identifier
                .to_string()
                .escape_debug()
                .to_string(),
            problem,
        })?;
    }
    Ok(env)
}

/// Checks that a locked record can name files: its name, version and build
/// are plain (not empty, `.` or `..`; no `/`, `\`, NUL or control
/// character) and its file name is `<name>-<version>-<build>.conda` or
/// `.tar.bz2`. The same rule as `pkgr_cache::repodata_rules::check_record`,
/// which pkgr-install applies again before anything is fetched; here so that
/// the error names the lock file (this crate depends on no other pkgr crate).
fn check_identity(record: &RepoDataRecord) -> Result<(), String> {
    let p = &record.package_record;
    let version = p.version.to_string();
    let parts = [
        ("name", p.name.as_source()),
        ("version", version.as_str()),
        ("build string", p.build.as_str()),
    ];
    for (what, part) in parts {
        let problem = if part.is_empty() {
            "is empty"
        } else if part == "." || part == ".." {
            "is a relative directory name"
        } else if part.contains(['/', '\\']) {
            "holds a path separator"
        } else if part.chars().any(char::is_control) {
            "holds a control character"
        } else {
            continue;
        };
        return Err(format!("its {what} `{}` {problem}", part.escape_debug()));
    }
    let file_name = record.identifier.to_string();
    let stem = file_name
        .strip_suffix(".conda")
        .or_else(|| file_name.strip_suffix(".tar.bz2"));
    let matches = [p.name.as_source(), p.name.as_normalized()]
        .iter()
        .any(|name| stem.is_some_and(|s| s == format!("{name}-{version}-{}", p.build.as_str())));
    if matches {
        Ok(())
    } else {
        Err(format!(
            "its file name is not {}-{}-{}.conda or .tar.bz2, as its name, version and build say",
            p.name.as_source().escape_debug(),
            version.escape_debug(),
            p.build.as_str().escape_debug()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ReadOptions {
        ReadOptions::new(Subdir::Linux64)
    }

    #[test]
    fn detects_by_content() {
        let k = |t: &str, y| detect_kind(t, "t", y).unwrap();
        assert_eq!(
            k("# x\n@EXPLICIT\nhttps://a/linux-64/a-1-0.conda\n", false),
            FileKind::Explicit
        );
        assert_eq!(k("numpy\npython >=3.8\n", false), FileKind::SpecList);
        assert_eq!(k("", false), FileKind::SpecList);
        assert_eq!(
            k("name: x\ndependencies: [a]\n", true),
            FileKind::Environment
        );
        assert_eq!(k("channels: [a]\n", false), FileKind::Environment);
        assert_eq!(
            k("version: 1\nmetadata: {}\npackage: []\n", true),
            FileKind::CondaLock
        );
        assert_eq!(
            k("version: 6\nenvironments: {}\npackages: []\n", false),
            FileKind::Pixi
        );
        assert_eq!(
            k("version: 3\nmetadata: {}\npackage: []\n", false),
            FileKind::Pixi
        );
    }

    #[test]
    fn unknown_lock_formats() {
        for text in [
            "{\"lockVersion\": \"1.0.0\", \"channels\": [\"conda-forge\"], \"packages\": {}}",
            "version: -1\n",
            "version: 2\nchannels: [a]\n",
        ] {
            let e = detect_kind(text, "x.json", true).unwrap_err();
            assert!(
                matches!(e, EnvFileError::UnknownLockFormat { .. }),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn yaml_errors() {
        let e = detect_kind("dependencies: [a\n", "env.yml", true).unwrap_err();
        assert!(matches!(e, EnvFileError::Yaml { .. }), "{e}");
        let e = detect_kind("name: a\nname: b\n", "env.yml", true).unwrap_err();
        assert!(matches!(e, EnvFileError::Yaml { .. }), "{e}");
        let e = detect_kind("{\"a\": ", "lock.json", true).unwrap_err();
        assert!(matches!(e, EnvFileError::Yaml { .. }), "{e}");
        let e = detect_kind("- a\n- b\n", "env.yml", true).unwrap_err();
        assert!(matches!(e, EnvFileError::NotAMapping { .. }), "{e}");
        let e = detect_kind("dependecies: [a]\nchanels: [b]\n", "env.yml", true).unwrap_err();
        let EnvFileError::UnrecognizedYaml { keys, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(keys, &["dependecies", "chanels"]);
        assert!(e.to_string().contains("dependecies, chanels"), "{e}");
    }

    #[test]
    fn read_reports_missing_file() {
        let e = read(Path::new("/nonexistent/env.yml"), &opts()).unwrap_err();
        assert!(matches!(e, EnvFileError::Read { .. }));
        assert!(e.to_string().contains("/nonexistent/env.yml"), "{e}");
    }

    #[test]
    fn read_dispatches() {
        let dir = std::env::temp_dir().join(format!("pkgr-envfile-{}", std::process::id()));
        fs_err::create_dir_all(&dir).unwrap();
        let env = dir.join("environment.yml");
        fs_err::write(&env, "name: t\ndependencies:\n  - python=3.12\n").unwrap();
        let EnvFile::Environment(spec) = read(&env, &opts()).unwrap() else {
            panic!("not an environment")
        };
        assert_eq!(spec.dependencies, ["python=3.12"]);
        let specs = dir.join("specs.txt");
        fs_err::write(&specs, "# c\nnumpy\n\nscipy >=1\n").unwrap();
        let EnvFile::Specs(list) = read(&specs, &opts()).unwrap() else {
            panic!("not a spec list")
        };
        assert_eq!(list, ["numpy", "scipy >=1"]);
        fs_err::remove_dir_all(&dir).unwrap();
    }
}
