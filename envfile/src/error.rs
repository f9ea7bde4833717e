//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while reading an environment file.
///
/// Every variant names the file it concerns (`origin`: the path as given, or the
/// name a caller passed to a `parse_*` function) and, where the file has lines or
/// entries, which one, so a user can go straight to the offending place.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnvFileError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("could not read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system (or the UTF-8 check) said.
        #[source]
        source: std::io::Error,
    },

    /// A `.yml`/`.yaml` file (or a file that has to be YAML) is not valid YAML.
    #[error("{origin} is not valid YAML")]
    Yaml {
        /// The file.
        origin: String,
        /// The parser's message, with line and column.
        #[source]
        source: serde_yaml::Error,
    },

    /// A YAML file whose top level is a mapping, but with none of the keys of an
    /// environment.yml, a conda-lock file or a pixi.lock.
    #[error(
        "{origin} is not an environment file: its top-level keys ({}) are none of an \
         environment.yml (name, channels, dependencies, prefix, variables), a conda-lock \
         file (version, metadata, package) or a pixi.lock (version, environments, packages)",
        keys.join(", ")
    )]
    UnrecognizedYaml {
        /// The file.
        origin: String,
        /// Its top-level keys, as written.
        keys: Vec<String>,
    },

    /// A YAML/JSON mapping with lock-file keys (`version`, `package`, `packages`,
    /// `lockVersion`, …) that is neither a conda-lock file nor a pixi.lock — e.g.
    /// mambajs' JSON lock (`lockVersion`). Read as an environment.yml it would
    /// silently give an empty environment.
    #[error(
        "{origin} looks like a lock file (top-level keys: {}), but of no format pkgr reads \
         (@EXPLICIT, conda-lock version 1, pixi.lock)",
        keys.join(", ")
    )]
    UnknownLockFormat {
        /// The file.
        origin: String,
        /// Its top-level keys, as written.
        keys: Vec<String>,
    },

    /// A YAML file whose top level is not a mapping (for example a plain list).
    #[error("{origin}: the top level of an environment file must be a mapping (key: value)")]
    NotAMapping {
        /// The file.
        origin: String,
    },

    /// A key of an environment.yml holds a value of the wrong shape.
    #[error("{origin}: `{key}` must be {expected}")]
    EnvironmentField {
        /// The file.
        origin: String,
        /// The key, e.g. `channels` or `variables.FOO`.
        key: String,
        /// What it must be, e.g. "a list of strings".
        expected: &'static str,
    },

    /// An entry of an environment.yml's `dependencies` that is neither a spec
    /// string nor a `pip:` list.
    #[error(
        "{origin}: dependencies[{index}] is {found}; an entry must be a conda spec string \
         or a `pip:` list"
    )]
    DependencyEntry {
        /// The file.
        origin: String,
        /// The 0-based index in `dependencies`.
        index: usize,
        /// What the entry is (e.g. "a mapping with key `conda`").
        found: String,
    },

    /// A conda spec (from a spec list or an environment.yml) that is not a valid
    /// match spec.
    #[error("{origin}, {location}: `{spec}` is not a valid conda match spec")]
    InvalidSpec {
        /// The file.
        origin: String,
        /// Where: `line 3` or `dependencies[2]`.
        location: String,
        /// The spec as written.
        spec: String,
        /// Why it does not parse.
        #[source]
        source: Box<rattler_conda_types::ParseMatchSpecError>,
    },

    /// A line of an @EXPLICIT file that is not a URL.
    #[error("{origin}, line {line}: `{text}` is not a URL")]
    ExplicitUrl {
        /// The file.
        origin: String,
        /// The 1-based line number.
        line: usize,
        /// The line as written.
        text: String,
        /// Why the URL does not parse.
        #[source]
        source: url::ParseError,
    },

    /// A line of an @EXPLICIT file whose `#` fragment is not a checksum.
    #[error(
        "{origin}, line {line}: `#{fragment}` is not a checksum (expected 32 hex digits \
         (md5), 64 hex digits or `sha256:` and 64 hex digits)"
    )]
    ExplicitHash {
        /// The file.
        origin: String,
        /// The 1-based line number.
        line: usize,
        /// The fragment, without `#`.
        fragment: String,
    },

    /// A line of an @EXPLICIT file whose URL does not end in
    /// `<subdir>/<name>-<version>-<build>.conda|.tar.bz2`.
    #[error("{origin}, line {line}: {url}: {reason}")]
    ExplicitArchive {
        /// The file.
        origin: String,
        /// The 1-based line number.
        line: usize,
        /// The URL (without its fragment).
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A `# platform:` comment that names no known platform.
    #[error("{origin}, line {line}: `{platform}` is not a known platform")]
    ExplicitPlatform {
        /// The file.
        origin: String,
        /// The 1-based line number.
        line: usize,
        /// The platform as written.
        platform: String,
    },

    /// A conda-lock file that neither the CEP-37 reader nor the conda-lock v1
    /// reader accepts as a whole (top-level structure).
    #[error("{origin}: not a readable conda-lock file: {reason}")]
    CondaLock {
        /// The file.
        origin: String,
        /// What is wrong (includes what the strict CEP-37 reader said).
        reason: String,
    },

    /// One `package` entry of a conda-lock file that cannot be installed from.
    #[error("{origin}: package[{index}] ({name}): {reason}")]
    CondaLockEntry {
        /// The file.
        origin: String,
        /// The 0-based index in `package`.
        index: usize,
        /// The entry's `name`, or `?`.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A pixi.lock that rattler_lock cannot read.
    #[error("{origin}: not a readable pixi lock file")]
    Pixi {
        /// The file.
        origin: String,
        /// rattler_lock's error.
        #[source]
        source: Box<rattler_lock::ParseCondaLockError>,
    },

    /// The requested environment is not in the pixi.lock.
    #[error(
        "{origin} has no environment `{environment}` (it has: {})",
        available.join(", ")
    )]
    NoSuchEnvironment {
        /// The file.
        origin: String,
        /// The environment asked for.
        environment: String,
        /// The environments the file has.
        available: Vec<String>,
    },

    /// The requested platform is not locked in the file.
    #[error(
        "{origin} has no packages for {platform} (it is locked for: {})",
        available.join(", ")
    )]
    PlatformNotLocked {
        /// The file.
        origin: String,
        /// The platform asked for.
        platform: String,
        /// The platforms the file (environment) has.
        available: Vec<String>,
    },

    /// A locked conda package whose record cannot be turned into a repodata
    /// record (e.g. a file name that does not parse).
    #[error("{origin}: locked package {package} cannot be installed from its record")]
    LockedRecord {
        /// The file.
        origin: String,
        /// The package's name.
        package: String,
        /// rattler_lock's conversion error.
        #[source]
        source: Box<rattler_lock::ConversionError>,
    },

    /// A locked record whose package name is not the name in its archive's file
    /// name: installing it would put one package's files under another's name.
    #[error("{origin}: locked package {package} points at {file_name}, which is another package")]
    NameMismatch {
        /// The file.
        origin: String,
        /// The record's name.
        package: String,
        /// The archive's file name.
        file_name: String,
    },

    /// A locked package whose file name, name, version or build cannot name
    /// one file (a `/`, `\` or `..` in it), or whose file name is not
    /// `<name>-<version>-<build>.conda` / `.tar.bz2`: pkgr makes cache and
    /// `conda-meta/` paths from them, so a lock file must not choose where
    /// they go.
    #[error(
        "{origin}: refusing locked package {file_name}: {problem}; the file is broken or hostile"
    )]
    UnsafeRecord {
        /// The file.
        origin: String,
        /// The package's file name (escaped).
        file_name: String,
        /// What is wrong with it.
        problem: String,
    },

    /// A lock file that locks conda packages to be built from source (pixi
    /// build); pkgr installs only built artifacts.
    #[error(
        "{origin} locks conda packages built from source, which pkgr cannot install: {}",
        names.join(", ")
    )]
    SourcePackages {
        /// The file.
        origin: String,
        /// The source packages' names.
        names: Vec<String>,
    },
}
