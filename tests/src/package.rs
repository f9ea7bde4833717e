//! Building conda packages: [`Package`] (its files, metadata and scripts)
//! written as `.conda` or `.tar.bz2` ([`Format`]), as conda-build and
//! conda-package-handling write them.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::*;

/// The two archive formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.conda`
    Conda,
    /// `.tar.bz2`
    TarBz2,
}

impl Format {
    /// The extension with its dot.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Conda => ".conda",
            Format::TarBz2 => ".tar.bz2",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Content {
    File {
        bytes: Vec<u8>,
        mode: u32,
    },
    Text {
        bytes: Vec<u8>,
    },
    Binary {
        bytes: Vec<u8>,
    },
    Symlink {
        target: String,
    },
    /// Written into the archive under an arbitrary (possibly malicious) name,
    /// and not listed in paths.json.
    Raw {
        bytes: Vec<u8>,
    },
    /// A symlink written under its name with an arbitrary target, and listed.
    RawSymlink {
        target: String,
    },
    /// An empty directory (`path_type: directory`).
    Directory,
    /// A plain 0644 file listed with `no_link: true`.
    NoLink {
        bytes: Vec<u8>,
    },
    /// Listed in paths.json as a file of this size, and not in the archive.
    ListedOnly {
        size: u64,
    },
}

/// A conda package to build.
#[derive(Debug, Clone)]
pub struct Package {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) build: String,
    pub(crate) build_number: u64,
    pub(crate) depends: Vec<String>,
    pub(crate) subdir: String,
    pub(crate) noarch: Option<String>,
    pub(crate) legacy: bool,
    pub(crate) entry_points: Vec<String>,
    pub(crate) files: Vec<(String, Content)>,
}

impl Package {
    /// A package `name-version-0` for this machine's subdir with no files.
    pub fn new(name: &str, version: &str) -> Self {
        Self {
            name: name.to_owned(),
            version: version.to_owned(),
            build: String::from("0"),
            build_number: 0,
            depends: Vec::new(),
            subdir: current_subdir().to_owned(),
            noarch: None,
            legacy: false,
            entry_points: Vec::new(),
            files: Vec::new(),
        }
    }

    /// Sets the build string and number.
    #[must_use]
    pub fn build(mut self, build: &str, number: u64) -> Self {
        self.build = build.to_owned();
        self.build_number = number;
        self
    }

    /// Adds a dependency (a match spec).
    #[must_use]
    pub fn depends(mut self, spec: &str) -> Self {
        self.depends.push(spec.to_owned());
        self
    }

    /// Sets the subdir (default: this machine's, see [`current_subdir`]).
    #[must_use]
    pub fn subdir(mut self, subdir: &str) -> Self {
        self.subdir = subdir.to_owned();
        self
    }

    /// Makes this a `noarch: generic` package (subdir noarch).
    #[must_use]
    pub fn noarch_generic(mut self) -> Self {
        self.noarch = Some(String::from("generic"));
        self.subdir = String::from("noarch");
        self
    }

    /// Makes this a `noarch: python` package (subdir noarch) with an
    /// `info/link.json`; add its files under `site-packages/` and
    /// `python-scripts/`.
    #[must_use]
    pub fn noarch_python(mut self) -> Self {
        self.noarch = Some(String::from("python"));
        self.subdir = String::from("noarch");
        self
    }

    /// Adds an entry point (`"hello = hellopkg.cli:main"`) to `info/link.json`
    /// (only written for [`Package::noarch_python`] packages).
    #[must_use]
    pub fn entry_point(mut self, spec: &str) -> Self {
        self.entry_points.push(spec.to_owned());
        self
    }

    /// Writes `info/files` + `info/has_prefix` instead of `info/paths.json`,
    /// like packages built before 2017.
    #[must_use]
    pub fn legacy(mut self) -> Self {
        self.legacy = true;
        self
    }

    /// Adds a plain file (mode 0644).
    #[must_use]
    pub fn file(mut self, path: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.files.push((
            path.to_owned(),
            Content::File {
                bytes: bytes.into(),
                mode: 0o644,
            },
        ));
        self
    }

    /// Adds an executable file (mode 0755).
    #[must_use]
    pub fn executable(mut self, path: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.files.push((
            path.to_owned(),
            Content::File {
                bytes: bytes.into(),
                mode: 0o755,
            },
        ));
        self
    }

    /// Adds an executable text file holding [`TEXT_PLACEHOLDER`] (write the
    /// placeholder into `bytes` yourself), recorded with `file_mode: text`.
    #[must_use]
    pub fn text_placeholder(mut self, path: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.files.push((
            path.to_owned(),
            Content::Text {
                bytes: bytes.into(),
            },
        ));
        self
    }

    /// Adds a binary file holding [`binary_placeholder`], recorded with
    /// `file_mode: binary`.
    #[must_use]
    pub fn binary_placeholder(mut self, path: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.files.push((
            path.to_owned(),
            Content::Binary {
                bytes: bytes.into(),
            },
        ));
        self
    }

    /// Adds a symlink (listed as `softlink` in paths.json).
    #[must_use]
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.files.push((
            path.to_owned(),
            Content::Symlink {
                target: target.to_owned(),
            },
        ));
        self
    }

    /// Adds an empty directory (a tar directory entry, mode 0755, listed as
    /// `path_type: directory`; left out of a legacy `info/files`).
    #[must_use]
    pub fn directory(mut self, path: &str) -> Self {
        self.files.push((path.to_owned(), Content::Directory));
        self
    }

    /// Adds a plain file (mode 0644) listed with `no_link: true` (and in
    /// `info/no_link` for legacy packages).
    #[must_use]
    pub fn no_link(mut self, path: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.files.push((
            path.to_owned(),
            Content::NoLink {
                bytes: bytes.into(),
            },
        ));
        self
    }

    /// Adds the post-link script `bin/.<name>-post-link.sh` (mode 0755).
    #[must_use]
    pub fn post_link(self, script: &str) -> Self {
        let path = format!("bin/.{}-post-link.sh", self.name);
        self.executable(&path, script)
    }

    /// Adds the pre-unlink script `bin/.<name>-pre-unlink.sh` (mode 0755).
    #[must_use]
    pub fn pre_unlink(self, script: &str) -> Self {
        let path = format!("bin/.{}-pre-unlink.sh", self.name);
        self.executable(&path, script)
    }

    /// Adds an archive entry with an arbitrary name (e.g. `../evil`), bypassing
    /// every check, for tests of path safety.
    #[must_use]
    pub fn raw_entry(mut self, name: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.files.push((
            name.to_owned(),
            Content::Raw {
                bytes: bytes.into(),
            },
        ));
        self
    }

    /// Adds a symlink with an arbitrary target (e.g. `../../etc/passwd`).
    #[must_use]
    pub fn raw_symlink(mut self, name: &str, target: &str) -> Self {
        self.files.push((
            name.to_owned(),
            Content::RawSymlink {
                target: target.to_owned(),
            },
        ));
        self
    }

    /// Lists `path` in paths.json as a file of `size` bytes (no hash) that
    /// the archive does not hold, for tests of a package whose metadata
    /// names a file elsewhere (through one of its symlinks, say).
    #[must_use]
    pub fn listed_only(mut self, path: &str, size: u64) -> Self {
        self.files
            .push((path.to_owned(), Content::ListedOnly { size }));
        self
    }

    /// The package's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `name-version-build`.
    pub fn stem(&self) -> String {
        format!("{}-{}-{}", self.name, self.version, self.build)
    }

    /// The file name in `format`.
    pub fn file_name(&self, format: Format) -> String {
        format!("{}{}", self.stem(), format.extension())
    }

    /// `info/index.json`.
    pub fn index_json(&self) -> serde_json::Value {
        let mut index = json!({
            "name": self.name,
            "version": self.version,
            "build": self.build,
            "build_number": self.build_number,
            "depends": self.depends,
            "subdir": self.subdir,
            "license": "BSD-3-Clause",
            "timestamp": 1_700_000_000_000u64,
        });
        if let Some(noarch) = &self.noarch {
            index["noarch"] = json!(noarch);
        } else {
            index["arch"] = json!("x86_64");
            index["platform"] = json!("linux");
        }
        index
    }

    pub(crate) fn paths_json(&self) -> serde_json::Value {
        let mut paths = Vec::new();
        for (path, content) in &self.files {
            let entry = match content {
                Content::File { bytes, .. } => json!({
                    "_path": path, "path_type": "hardlink",
                    "sha256": hex::encode(Sha256::digest(bytes)), "size_in_bytes": bytes.len(),
                }),
                Content::Text { bytes } => json!({
                    "_path": path, "path_type": "hardlink", "file_mode": "text",
                    "prefix_placeholder": TEXT_PLACEHOLDER,
                    "sha256": hex::encode(Sha256::digest(bytes)), "size_in_bytes": bytes.len(),
                }),
                Content::Binary { bytes } => json!({
                    "_path": path, "path_type": "hardlink", "file_mode": "binary",
                    "prefix_placeholder": binary_placeholder(),
                    "sha256": hex::encode(Sha256::digest(bytes)), "size_in_bytes": bytes.len(),
                }),
                Content::Symlink { .. } | Content::RawSymlink { .. } => {
                    json!({ "_path": path, "path_type": "softlink" })
                }
                Content::Directory => json!({ "_path": path, "path_type": "directory" }),
                Content::NoLink { bytes } => json!({
                    "_path": path, "path_type": "hardlink", "no_link": true,
                    "sha256": hex::encode(Sha256::digest(bytes)), "size_in_bytes": bytes.len(),
                }),
                Content::ListedOnly { size } => json!({
                    "_path": path, "path_type": "hardlink", "size_in_bytes": size,
                }),
                Content::Raw { .. } => continue,
            };
            paths.push(entry);
        }
        json!({ "paths": paths, "paths_version": 1 })
    }

    pub(crate) fn info_files(&self) -> Vec<(String, Vec<u8>)> {
        let mut info = vec![(
            String::from("info/index.json"),
            serde_json::to_vec_pretty(&self.index_json()).unwrap(),
        )];
        if self.noarch.as_deref() == Some("python") {
            let mut noarch = json!({ "type": "python" });
            if !self.entry_points.is_empty() {
                noarch["entry_points"] = json!(self.entry_points);
            }
            let link = json!({ "noarch": noarch, "package_metadata_version": 1 });
            info.push((
                String::from("info/link.json"),
                serde_json::to_vec_pretty(&link).unwrap(),
            ));
        }
        if self.legacy {
            let listed = |keep: fn(&Content) -> bool| -> Vec<&str> {
                let files = self.files.iter().filter(|(_, c)| keep(c));
                files.map(|(p, _)| p.as_str()).collect()
            };
            let files = listed(|c| !matches!(c, Content::Raw { .. } | Content::Directory));
            info.push((
                String::from("info/files"),
                format!("{}\n", files.join("\n")).into_bytes(),
            ));
            let no_link = listed(|c| matches!(c, Content::NoLink { .. }));
            if !no_link.is_empty() {
                info.push((
                    String::from("info/no_link"),
                    format!("{}\n", no_link.join("\n")).into_bytes(),
                ));
            }
            let mut has_prefix = String::new();
            for (path, content) in &self.files {
                match content {
                    Content::Text { .. } => {
                        has_prefix.push_str(&format!("{TEXT_PLACEHOLDER} text {path}\n"));
                    }
                    Content::Binary { .. } => {
                        has_prefix.push_str(&format!("{} binary {path}\n", binary_placeholder()));
                    }
                    _ => {}
                }
            }
            if !has_prefix.is_empty() {
                info.push((String::from("info/has_prefix"), has_prefix.into_bytes()));
            }
        } else {
            info.push((
                String::from("info/paths.json"),
                serde_json::to_vec_pretty(&self.paths_json()).unwrap(),
            ));
        }
        info
    }

    pub(crate) fn payload_tar(&self) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content) in &self.files {
            match content {
                Content::File { bytes, mode } => append_file(&mut builder, path, bytes, *mode),
                Content::Text { bytes } => append_file(&mut builder, path, bytes, 0o755),
                Content::Binary { bytes } => append_file(&mut builder, path, bytes, 0o755),
                Content::Symlink { target } => append_symlink(&mut builder, path, target),
                Content::Raw { bytes } => append_raw(&mut builder, path, bytes, None),
                Content::RawSymlink { target } => append_raw(&mut builder, path, &[], Some(target)),
                Content::Directory => {
                    let mut h = header(0, 0o755, tar::EntryType::Directory);
                    let name = format!("{}/", path.trim_end_matches('/'));
                    builder.append_data(&mut h, name, std::io::empty()).unwrap();
                }
                Content::NoLink { bytes } => append_file(&mut builder, path, bytes, 0o644),
                Content::ListedOnly { .. } => {}
            }
        }
        builder.into_inner().unwrap()
    }

    pub(crate) fn info_tar(&self) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, bytes) in self.info_files() {
            append_file(&mut builder, &path, &bytes, 0o644);
        }
        builder.into_inner().unwrap()
    }

    /// Writes the package into `dir` as `format`; returns the archive's path.
    pub fn write(&self, dir: &Path, format: Format) -> PathBuf {
        fs_err::create_dir_all(dir).unwrap();
        let path = dir.join(self.file_name(format));
        let bytes = match format {
            Format::TarBz2 => {
                let mut builder = tar::Builder::new(Vec::new());
                for (path, bytes) in self.info_files() {
                    append_file(&mut builder, &path, &bytes, 0o644);
                }
                let mut tar = builder.into_inner().unwrap();
                // Concatenate the payload entries (tar streams are records).
                let payload = self.payload_tar();
                tar.truncate(tar.len() - 1024);
                tar.extend_from_slice(&payload);
                let mut encoder =
                    bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
                encoder.write_all(&tar).unwrap();
                encoder.finish().unwrap()
            }
            Format::Conda => {
                let stem = self.stem();
                let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
                let options = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Stored);
                zip.start_file("metadata.json", options).unwrap();
                zip.write_all(br#"{"conda_pkg_format_version": 2}"#)
                    .unwrap();
                for (member, tar) in [
                    (format!("info-{stem}.tar.zst"), self.info_tar()),
                    (format!("pkg-{stem}.tar.zst"), self.payload_tar()),
                ] {
                    zip.start_file(member, options).unwrap();
                    zip.write_all(&zstd::encode_all(tar.as_slice(), 3).unwrap())
                        .unwrap();
                }
                zip.finish().unwrap().into_inner()
            }
        };
        fs_err::write(&path, bytes).unwrap();
        path
    }
}

pub(crate) fn header(size: usize, mode: u32, kind: tar::EntryType) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_size(size as u64);
    header.set_mode(mode);
    header.set_mtime(1_700_000_000);
    header.set_entry_type(kind);
    header
}

pub(crate) fn append_file(
    builder: &mut tar::Builder<Vec<u8>>,
    path: &str,
    bytes: &[u8],
    mode: u32,
) {
    let mut h = header(bytes.len(), mode, tar::EntryType::Regular);
    builder.append_data(&mut h, path, bytes).unwrap();
}

pub(crate) fn append_symlink(builder: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
    let mut h = header(0, 0o777, tar::EntryType::Symlink);
    builder.append_link(&mut h, path, target).unwrap();
}

/// Writes a header whose name (and link target) bytes are set directly, so
/// names the tar crate refuses (`../x`, `/etc/x`) can be produced.
pub(crate) fn append_raw(
    builder: &mut tar::Builder<Vec<u8>>,
    name: &str,
    bytes: &[u8],
    link: Option<&str>,
) {
    let kind = if link.is_some() {
        tar::EntryType::Symlink
    } else {
        tar::EntryType::Regular
    };
    let mut h = header(bytes.len(), 0o644, kind);
    {
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name = [0; 100];
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(link) = link {
            gnu.linkname = [0; 100];
            gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
    }
    h.set_cksum();
    builder.append(&h, bytes).unwrap();
}

/// The sha256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests;
