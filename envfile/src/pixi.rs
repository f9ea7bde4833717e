//! pixi.lock (rattler_lock's format), and turning any rattler_lock
//! [`LockFile`] into a [`LockedEnvironment`].

use rattler_conda_types::RepoDataRecord;
use std::path::{Component, Path};

use rattler_lock::{
    CondaBinaryData, LockFile, LockedPackage as RattlerPackage, UrlOrPath, DEFAULT_ENVIRONMENT_NAME,
};

use crate::{EnvFileError, LockFormat, LockedEnvironment, LockedPackage, ReadOptions};

/// Parses a pixi.lock (any format version rattler_lock 0.34 reads: up to 7) and
/// takes the environment [`ReadOptions::environment`] (default `default`) for
/// [`ReadOptions::platform`]. `origin` names the file in errors.
///
/// `base_dir` is the directory relative paths in the file are taken from (the
/// lock file's own directory; [`crate::read`] passes it).
pub fn parse_pixi_lock(
    text: &str,
    origin: &str,
    base_dir: Option<&Path>,
    options: &ReadOptions,
) -> Result<LockedEnvironment, EnvFileError> {
    let lock = LockFile::from_str_with_base_directory(text, base_dir).map_err(|source| {
        EnvFileError::Pixi {
            origin: origin.to_owned(),
            source: Box::new(source),
        }
    })?;
    let environment = options
        .environment
        .as_deref()
        .unwrap_or(DEFAULT_ENVIRONMENT_NAME);
    from_lock_file(
        &lock,
        environment,
        origin,
        base_dir,
        options,
        LockFormat::Pixi,
        true,
    )
}

/// rattler_lock takes the base directory only for PyPI requirements; a conda
/// archive at a relative path (a local channel next to the project) stays
/// relative and cannot become a URL. Resolve it against the lock file's
/// directory, as pixi does.
fn resolve_relative(binary: &CondaBinaryData, base_dir: Option<&Path>) -> Option<CondaBinaryData> {
    let base_dir = base_dir?;
    let UrlOrPath::Path(path) = &binary.location else {
        return None;
    };
    let path = Path::new(path.as_str());
    if path.is_absolute() {
        return None;
    }
    let mut absolute = base_dir.to_path_buf();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                absolute.pop();
            }
            Component::CurDir => {}
            other => absolute.push(other),
        }
    }
    let url = url::Url::from_file_path(&absolute).ok()?;
    let mut resolved = binary.clone();
    resolved.location = UrlOrPath::Url(url);
    Some(resolved)
}

/// Takes one environment and platform out of a parsed lock file.
///
/// Conda binaries become records; pypi packages are reported by name and
/// version; conda source packages fail the read (naming them all), because
/// `conda_repodata_records` would silently skip them.
pub(crate) fn from_lock_file(
    lock: &LockFile,
    environment: &str,
    origin: &str,
    base_dir: Option<&Path>,
    options: &ReadOptions,
    format: LockFormat,
    metadata_complete: bool,
) -> Result<LockedEnvironment, EnvFileError> {
    let env = lock
        .environment(environment)
        .ok_or_else(|| EnvFileError::NoSuchEnvironment {
            origin: origin.to_owned(),
            environment: environment.to_owned(),
            available: lock
                .environments()
                .map(|(name, _)| name.to_owned())
                .collect(),
        })?;
    let wanted = options.platform;
    // Prefer the platform *named* like the subdir (pixi 7 allows custom
    // platform names that share a subdir), else any platform of that subdir.
    let platform = env
        .platforms()
        .find(|p| p.name().as_str() == wanted.as_str())
        .or_else(|| env.platforms().find(|p| p.subdir() == wanted))
        .ok_or_else(|| {
            let mut available: Vec<String> =
                env.platforms().map(|p| p.name().to_string()).collect();
            available.sort();
            EnvFileError::PlatformNotLocked {
                origin: origin.to_owned(),
                platform: wanted.to_string(),
                available,
            }
        })?;
    let mut packages = Vec::new();
    let mut pypi = Vec::new();
    let mut source = Vec::new();
    for package in env.packages(platform).into_iter().flatten() {
        match package {
            RattlerPackage::Conda(conda) => match conda.as_binary() {
                Some(binary) => {
                    let resolved = resolve_relative(binary, base_dir);
                    let binary = resolved.as_ref().unwrap_or(binary);
                    let record = RepoDataRecord::try_from(binary).map_err(|source| {
                        EnvFileError::LockedRecord {
                            origin: origin.to_owned(),
                            package: conda.name().as_source().to_owned(),
                            source: Box::new(source),
                        }
                    })?;
                    // rattler_lock keeps the record's name as written, even when
                    // the URL's file is another package; pkgr keys its cache by
                    // file name, so the two must agree.
                    let file_name = &record.identifier.identifier.name;
                    if !file_name.eq_ignore_ascii_case(record.package_record.name.as_normalized()) {
                        return Err(EnvFileError::NameMismatch {
                            origin: origin.to_owned(),
                            package: record.package_record.name.as_source().to_owned(),
                            file_name: record.identifier.to_string(),
                        });
                    }
                    packages.push(LockedPackage {
                        record,
                        metadata_complete,
                    });
                }
                None => source.push(conda.name().as_source().to_owned()),
            },
            RattlerPackage::Pypi(p) => {
                let name = p.name().to_string();
                pypi.push(match p.version() {
                    Some(version) => format!("{name}=={version}"),
                    None => format!("{name} @ {}", p.location().as_str()),
                });
            }
        }
    }
    if !source.is_empty() {
        return Err(EnvFileError::SourcePackages {
            origin: origin.to_owned(),
            names: source,
        });
    }
    crate::checked(
        LockedEnvironment {
            format,
            platform: Some(wanted),
            channels: env.channels().iter().map(|c| c.url.clone()).collect(),
            packages,
            pypi,
        },
        origin,
    )
}

#[cfg(test)]
mod tests {
    use rattler_conda_types::Subdir;

    use super::*;

    const V6: &str = "\
version: 6
environments:
  default:
    channels:
    - url: https://conda.anaconda.org/conda-forge/
    packages:
      linux-64:
      - conda: https://conda.anaconda.org/conda-forge/linux-64/libzlib-1.3.1-hb9d3cd8_2.conda
      - pypi: https://files.pythonhosted.org/packages/requests-2.31.0-py3-none-any.whl
      osx-arm64:
      - conda: https://conda.anaconda.org/conda-forge/osx-arm64/libzlib-1.3.1-h8359307_2.conda
packages:
- conda: https://conda.anaconda.org/conda-forge/linux-64/libzlib-1.3.1-hb9d3cd8_2.conda
  sha256: d4bfe88d7cb447768e31650f06257995601f89076080e76df55e3112d4e47dc4
  md5: edb0dca6bc32e4f4789199455a1dbeb8
  depends:
  - __glibc >=2.17,<3.0.a0
  - libgcc >=13
  constrains:
  - zlib 1.3.1 *_2
  license: Zlib
  size: 60963
  timestamp: 1727963148474
- conda: https://conda.anaconda.org/conda-forge/osx-arm64/libzlib-1.3.1-h8359307_2.conda
  sha256: ce34669eadaba351cd54910743e6a2261b67009624dbc7daeeafdef93616711b
  md5: 369964e85dc26bfe78f41399b366c435
  license: Zlib
  size: 46438
  timestamp: 1727963202283
- pypi: https://files.pythonhosted.org/packages/requests-2.31.0-py3-none-any.whl
  name: requests
  version: 2.31.0
  sha256: 58cd2187c01e70e6e26505bca751777aa9f2ee0b7f4300988b709f44e013003f
";

    #[test]
    fn reads_platform_and_reports_pypi() {
        let env =
            parse_pixi_lock(V6, "pixi.lock", None, &ReadOptions::new(Subdir::Linux64)).unwrap();
        assert_eq!(env.format, LockFormat::Pixi);
        assert_eq!(env.channels, ["https://conda.anaconda.org/conda-forge/"]);
        assert_eq!(env.packages.len(), 1);
        let r = &env.packages[0].record;
        assert_eq!(r.package_record.name.as_normalized(), "libzlib");
        assert_eq!(r.package_record.depends.len(), 2);
        assert_eq!(r.package_record.constrains, ["zlib 1.3.1 *_2"]);
        assert!(env.packages[0].metadata_complete);
        assert_eq!(env.pypi, ["requests==2.31.0"]);

        let osx =
            parse_pixi_lock(V6, "pixi.lock", None, &ReadOptions::new(Subdir::OsxArm64)).unwrap();
        assert_eq!(osx.packages.len(), 1);
        assert!(osx.pypi.is_empty());
    }

    /// A lock file whose record says a build with a path (rattler_lock
    /// keeps what the file says) is refused, naming the file and package.
    #[test]
    fn a_record_that_cannot_name_one_file_is_refused() {
        let hostile = V6.replacen(
            "  md5: edb0dca6bc32e4f4789199455a1dbeb8\n",
            "  md5: edb0dca6bc32e4f4789199455a1dbeb8\n  build: hb9d3cd8_2/../../../x\n",
            1,
        );
        let err = parse_pixi_lock(
            &hostile,
            "pixi.lock",
            None,
            &ReadOptions::new(Subdir::Linux64),
        )
        .unwrap_err();
        assert!(matches!(err, EnvFileError::UnsafeRecord { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("pixi.lock: refusing locked package libzlib-1.3.1-hb9d3cd8_2.conda")
                && text.contains("holds a path separator"),
            "{text}"
        );
    }

    #[test]
    fn missing_platform_and_environment() {
        let e =
            parse_pixi_lock(V6, "pixi.lock", None, &ReadOptions::new(Subdir::Win64)).unwrap_err();
        let EnvFileError::PlatformNotLocked { available, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(available.len(), 2);
        let options = ReadOptions::new(Subdir::Linux64).with_environment("test");
        let e = parse_pixi_lock(V6, "pixi.lock", None, &options).unwrap_err();
        assert!(matches!(e, EnvFileError::NoSuchEnvironment { .. }), "{e}");
        assert!(e.to_string().contains("(it has: default)"), "{e}");
    }

    #[test]
    fn unreadable() {
        let e = parse_pixi_lock(
            "version: 1000\npackages: []\n",
            "p.lock",
            None,
            &ReadOptions::new(Subdir::Linux64),
        )
        .unwrap_err();
        assert!(matches!(e, EnvFileError::Pixi { .. }), "{e}");
    }

    #[test]
    fn source_packages_refused() {
        let text = "\
version: 6
environments:
  default:
    channels:
    - url: https://conda.anaconda.org/conda-forge/
    packages:
      linux-64:
      - conda: .
packages:
- conda: .
  name: mypkg
  version: 0.1.0
  build: hbf21a9e_0
  subdir: linux-64
  input:
    hash: 0000000000000000000000000000000000000000000000000000000000000000
    globs: []
";
        let e =
            parse_pixi_lock(text, "p.lock", None, &ReadOptions::new(Subdir::Linux64)).unwrap_err();
        let EnvFileError::SourcePackages { names, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(names, &["mypkg"]);
    }

    #[test]
    fn relative_path_without_base_dir_is_a_record_error() {
        let text = "\
version: 6
environments:
  default:
    channels:
    - url: ./channel
    packages:
      linux-64:
      - conda: ./channel/linux-64/foo-1.0-h0_0.conda
packages:
- conda: ./channel/linux-64/foo-1.0-h0_0.conda
  subdir: linux-64
  sha256: d4bfe88d7cb447768e31650f06257995601f89076080e76df55e3112d4e47dc4
  md5: edb0dca6bc32e4f4789199455a1dbeb8
";
        let linux = ReadOptions::new(Subdir::Linux64);
        let e = parse_pixi_lock(text, "p.lock", None, &linux).unwrap_err();
        assert!(matches!(e, EnvFileError::LockedRecord { .. }), "{e}");
        // With the lock file's directory, the path becomes a file:// URL.
        let base = std::path::Path::new("/work/project");
        let env = parse_pixi_lock(text, "p.lock", Some(base), &linux).unwrap();
        let url = env.packages[0].record.url.as_str();
        assert!(
            url.starts_with("file:///") && url.ends_with("/foo-1.0-h0_0.conda"),
            "{url}"
        );
    }
}
