//! conda's `@EXPLICIT` lists: one package URL per line.

use std::str::FromStr;

use rattler_conda_types::package::{BuildString, CondaArchiveIdentifier, DistArchiveIdentifier};
use rattler_conda_types::{PackageName, PackageRecord, RepoDataRecord, Subdir, VersionWithSource};
use url::Url;

use crate::{EnvFileError, LockFormat, LockedEnvironment, LockedPackage};

/// Parses an @EXPLICIT list (`conda list --explicit`, conda-lock's rendered
/// `conda-<platform>.lock`). `origin` names the file in errors.
///
/// The format, as conda reads it:
/// - lines before the `@EXPLICIT` line are ignored, except a
///   `# platform: <subdir>` comment (anywhere), which gives
///   [`LockedEnvironment::platform`];
/// - after it, blank lines and `#` comments are skipped, except conda-lock's
///   `# pip <name> @ <url>` lines, which name pip packages: they are reported in
///   [`LockedEnvironment::pypi`];
/// - every other line is a package URL, optionally followed by
///   `#<md5, 32 hex>`, `#<sha256, 64 hex>` or `#sha256:<64 hex>`. `file://` URLs
///   are allowed.
///
/// Each URL becomes a minimal record: name, version and build from the file
/// name, `subdir` from the URL's parent path segment, `channel` the URL without
/// `/<subdir>/<file>`, md5/sha256 from the fragment (the record's URL is stored
/// without it), and nothing else ([`LockedPackage::metadata_complete`] is
/// `false`). A build number is taken from the build string's trailing
/// `_<digits>`, as conda-build writes it.
pub fn parse_explicit(text: &str, origin: &str) -> Result<LockedEnvironment, EnvFileError> {
    let mut env = LockedEnvironment {
        format: LockFormat::Explicit,
        platform: None,
        channels: Vec::new(),
        packages: Vec::new(),
        pypi: Vec::new(),
    };
    let mut explicit = false;
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if line == "@EXPLICIT" {
            explicit = true;
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let comment = comment.trim();
            if let Some(platform) = comment.strip_prefix("platform:") {
                let platform = platform.trim();
                let subdir =
                    Subdir::from_str(platform).map_err(|_| EnvFileError::ExplicitPlatform {
                        origin: origin.to_owned(),
                        line: line_no,
                        platform: platform.to_owned(),
                    })?;
                env.platform = Some(subdir);
            } else if explicit {
                if let Some(pip) = comment.strip_prefix("pip ") {
                    env.pypi.push(pip.trim().to_owned());
                }
            }
            continue;
        }
        if !explicit {
            continue;
        }
        env.packages.push(LockedPackage {
            record: record_from_line(line, origin, line_no)?,
            metadata_complete: false,
        });
    }
    crate::checked(env, origin)
}

fn record_from_line(
    line: &str,
    origin: &str,
    line_no: usize,
) -> Result<RepoDataRecord, EnvFileError> {
    let (url_text, fragment) = match line.split_once('#') {
        Some((url, fragment)) => (url.trim_end(), Some(fragment.trim())),
        None => (line, None),
    };
    let url = Url::parse(url_text).map_err(|source| EnvFileError::ExplicitUrl {
        origin: origin.to_owned(),
        line: line_no,
        text: line.to_owned(),
        source,
    })?;
    let archive_error = |reason: &str| EnvFileError::ExplicitArchive {
        origin: origin.to_owned(),
        line: line_no,
        url: url.to_string(),
        reason: reason.to_owned(),
    };
    let segments: Vec<String> = url
        .path_segments()
        .map(|s| s.map(percent_decode).collect())
        .unwrap_or_default();
    let (file_name, subdir) = match segments.as_slice() {
        [.., subdir, file] if !subdir.is_empty() && !file.is_empty() => {
            (file.as_str(), subdir.as_str())
        }
        _ => {
            return Err(archive_error(
                "the URL must end in /<subdir>/<package file>",
            ))
        }
    };
    let identifier = CondaArchiveIdentifier::try_from_filename(file_name).ok_or_else(|| {
        archive_error("not a conda package file name (<name>-<version>-<build>.conda or .tar.bz2)")
    })?;
    let name = PackageName::try_from(identifier.identifier.name.as_str())
        .map_err(|e| archive_error(&format!("invalid package name: {e}")))?;
    let version = VersionWithSource::from_str(&identifier.identifier.version)
        .map_err(|e| archive_error(&format!("invalid version: {e}")))?;
    let build = BuildString::from_str(&identifier.identifier.build_string)
        .map_err(|e| archive_error(&format!("invalid build string: {e}")))?;

    let mut record = PackageRecord::new(name, version, build);
    record.build_number = build_number(&identifier.identifier.build_string);
    record.subdir = subdir.to_owned();
    if let Some(fragment) = fragment {
        let hash_error = || EnvFileError::ExplicitHash {
            origin: origin.to_owned(),
            line: line_no,
            fragment: fragment.to_owned(),
        };
        let hex_digits = fragment.strip_prefix("sha256:").unwrap_or(fragment);
        match (fragment.starts_with("sha256:"), hex_digits.len()) {
            (false, 32) => {
                let bytes: [u8; 16] = decode_hex(hex_digits).ok_or_else(hash_error)?;
                record.md5 = Some(bytes.into());
            }
            (_, 64) => {
                let bytes: [u8; 32] = decode_hex(hex_digits).ok_or_else(hash_error)?;
                record.sha256 = Some(bytes.into());
            }
            _ => return Err(hash_error()),
        }
    }

    let mut channel = url.clone();
    if let Ok(mut path) = channel.path_segments_mut() {
        path.pop().pop();
    }
    let channel = channel.as_str().trim_end_matches('/').to_owned();
    Ok(RepoDataRecord {
        package_record: record,
        identifier: DistArchiveIdentifier::from(identifier),
        url,
        channel: Some(channel),
    })
}

/// Decodes `%XX` escapes of a URL path segment (`%2B` is `+` in a version such
/// as `1.0+cpu`); a malformed escape is kept as written.
pub(crate) fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| segment.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| segment.to_owned())
}

fn decode_hex<const N: usize>(digits: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    hex::decode_to_slice(digits, &mut out).ok()?;
    Some(out)
}

/// conda-build writes build strings as `<hash-ish>_<build number>`.
fn build_number(build: &str) -> u64 {
    build
        .rsplit('_')
        .next()
        .and_then(|tail| tail.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MD5: &str = "d7c89558ba9fa0495403155b64376d81";
    const SHA: &str = "fe51de6107f9edc7aa4f786a70f4a883943bc9d39b3bb7307c04c41410990726";

    #[test]
    fn parses_lines_hashes_and_platform() {
        let text = format!(
            "# This file may be used to create an environment using:\n\
             # platform: linux-64\n\
             not a url, ignored before @EXPLICIT\n\
             @EXPLICIT\n\
             https://conda.anaconda.org/conda-forge/linux-64/_libgcc_mutex-0.1-conda_forge.tar.bz2#{MD5}\n\
             \n\
             # a comment\n\
             https://conda.anaconda.org/conda-forge/noarch/tzdata-2024a-h0c530f3_0.conda#sha256:{SHA}\n\
             https://repo.anaconda.com/pkgs/main/linux-64/zlib-1.2.13-h5eee18b_1.conda#{SHA}\n\
             file:///tmp/chan/linux-64/foo-1.0-py312_3.conda\n\
             # pip requests @ https://files.example/requests-2.31-py3-none-any.whl#sha256={SHA}\n"
        );
        let env = parse_explicit(&text, "x.txt").unwrap();
        assert_eq!(env.format, LockFormat::Explicit);
        assert_eq!(env.platform, Some(Subdir::Linux64));
        assert!(env.channels.is_empty());
        assert_eq!(env.packages.len(), 4);
        let r = &env.packages[0].record;
        assert_eq!(r.package_record.name.as_normalized(), "_libgcc_mutex");
        assert_eq!(r.package_record.version.as_str(), "0.1");
        assert_eq!(r.package_record.build.as_str(), "conda_forge");
        assert_eq!(r.package_record.subdir, "linux-64");
        assert_eq!(hex::encode(r.package_record.md5.unwrap()), MD5);
        assert!(r.package_record.sha256.is_none());
        assert_eq!(
            r.url.as_str(),
            "https://conda.anaconda.org/conda-forge/linux-64/_libgcc_mutex-0.1-conda_forge.tar.bz2"
        );
        assert_eq!(
            r.channel.as_deref(),
            Some("https://conda.anaconda.org/conda-forge")
        );
        assert_eq!(
            r.identifier.to_string(),
            "_libgcc_mutex-0.1-conda_forge.tar.bz2"
        );
        assert!(!env.packages[0].metadata_complete);
        let tz = &env.packages[1].record;
        assert_eq!(tz.package_record.subdir, "noarch");
        assert_eq!(hex::encode(tz.package_record.sha256.unwrap()), SHA);
        let zlib = &env.packages[2].record;
        assert_eq!(zlib.package_record.build_number, 1);
        assert_eq!(
            zlib.channel.as_deref(),
            Some("https://repo.anaconda.com/pkgs/main")
        );
        assert!(zlib.package_record.sha256.is_some());
        let foo = &env.packages[3].record;
        assert_eq!(foo.channel.as_deref(), Some("file:///tmp/chan"));
        assert_eq!(foo.package_record.build_number, 3);
        assert!(foo.package_record.md5.is_none() && foo.package_record.sha256.is_none());
        assert_eq!(env.pypi.len(), 1);
        assert!(env.pypi[0].starts_with("requests @ https://files.example/"));
    }

    #[test]
    fn percent_encoded_file_names() {
        let env = parse_explicit(
            "@EXPLICIT\nhttps://a.example/ch/linux-64/torch-2.1.0%2Bcpu-py312_0.conda\n",
            "x",
        )
        .unwrap();
        let r = &env.packages[0].record;
        assert_eq!(r.package_record.version.as_str(), "2.1.0+cpu");
        assert_eq!(r.identifier.to_string(), "torch-2.1.0+cpu-py312_0.conda");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }

    #[test]
    fn empty_explicit_is_empty() {
        let env = parse_explicit("@EXPLICIT\n", "x").unwrap();
        assert!(env.packages.is_empty() && env.platform.is_none());
    }

    fn err(line: &str) -> EnvFileError {
        parse_explicit(&format!("@EXPLICIT\n\n{line}\n"), "e.txt").unwrap_err()
    }

    #[test]
    fn errors_name_the_line() {
        let e = err("https://a/linux-64/a-1-0.conda#abc");
        assert!(
            matches!(e, EnvFileError::ExplicitHash { line: 3, .. }),
            "{e}"
        );
        let e = err(&format!("https://a/linux-64/a-1-0.conda#sha256:{MD5}"));
        assert!(
            matches!(e, EnvFileError::ExplicitHash { line: 3, .. }),
            "{e}"
        );
        let e = err(&format!(
            "https://a/linux-64/a-1-0.conda#{}",
            "z".repeat(32)
        ));
        assert!(
            matches!(e, EnvFileError::ExplicitHash { line: 3, .. }),
            "{e}"
        );
        let e = err("https://a/linux-64/a-1-0.zip");
        assert!(
            matches!(e, EnvFileError::ExplicitArchive { line: 3, .. }),
            "{e}"
        );
        let e = err("https://a/linux-64/a-1.conda");
        assert!(
            matches!(e, EnvFileError::ExplicitArchive { line: 3, .. }),
            "{e}"
        );
        let e = err("https://a/a-1-0.conda/");
        assert!(
            matches!(e, EnvFileError::ExplicitArchive { line: 3, .. }),
            "{e}"
        );
        let e = err("zlib-1.2-0.conda");
        assert!(
            matches!(e, EnvFileError::ExplicitUrl { line: 3, .. }),
            "{e}"
        );
        assert!(e.to_string().starts_with("e.txt, line 3: "), "{e}");
        let e = parse_explicit("# platform: linux-99x\n@EXPLICIT\n", "e.txt").unwrap_err();
        assert!(
            matches!(e, EnvFileError::ExplicitPlatform { line: 1, .. }),
            "{e}"
        );
    }
}
