//! Test support for pkgr: builds real-format conda packages (`.conda` and
//! `.tar.bz2`, with `info/index.json`, `info/paths.json` and a payload), local
//! channels with `repodata.json`, and serves a channel over HTTP on 127.0.0.1
//! with per-path request counts, optional per-path delays and switchable
//! per-path faults ([`Fault`]: broken connections, truncated or wrong bodies,
//! error statuses, redirects, stalls, non-JSON repodata).
//!
//! Nothing here mocks pkgr: the archives are the formats conda-build and
//! conda-package-handling write, and the server speaks plain HTTP/1.1.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use md5::Md5;
use serde_json::json;

pub mod bench;
use sha2::{Digest, Sha256};

/// The placeholder conda-build writes into text files.
pub const TEXT_PLACEHOLDER: &str = "/opt/anaconda1anaconda2anaconda3";

/// A long placeholder for binary files, as conda-build uses (255 bytes), so any
/// test prefix fits.
pub fn binary_placeholder() -> String {
    let mut p = String::from("/opt/conda_build_env");
    while p.len() < 255 {
        p.push_str("_placehold");
    }
    p.truncate(255);
    p
}

/// The conda subdir of the machine the tests run on.
pub fn current_subdir() -> &'static str {
    match (std::env::consts::OS, std::env::consts::ARCH) {
        ("linux", "aarch64") => "linux-aarch64",
        ("macos", "x86_64") => "osx-64",
        ("macos", "aarch64") => "osx-arm64",
        ("windows", _) => "win-64",
        _ => "linux-64",
    }
}

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
enum Content {
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
    name: String,
    version: String,
    build: String,
    build_number: u64,
    depends: Vec<String>,
    subdir: String,
    noarch: Option<String>,
    legacy: bool,
    entry_points: Vec<String>,
    files: Vec<(String, Content)>,
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

    fn paths_json(&self) -> serde_json::Value {
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

    fn info_files(&self) -> Vec<(String, Vec<u8>)> {
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

    fn payload_tar(&self) -> Vec<u8> {
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

    fn info_tar(&self) -> Vec<u8> {
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

fn header(size: usize, mode: u32, kind: tar::EntryType) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_size(size as u64);
    header.set_mode(mode);
    header.set_mtime(1_700_000_000);
    header.set_entry_type(kind);
    header
}

fn append_file(builder: &mut tar::Builder<Vec<u8>>, path: &str, bytes: &[u8], mode: u32) {
    let mut h = header(bytes.len(), mode, tar::EntryType::Regular);
    builder.append_data(&mut h, path, bytes).unwrap();
}

fn append_symlink(builder: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
    let mut h = header(0, 0o777, tar::EntryType::Symlink);
    builder.append_link(&mut h, path, target).unwrap();
}

/// Writes a header whose name (and link target) bytes are set directly, so
/// names the tar crate refuses (`../x`, `/etc/x`) can be produced.
fn append_raw(builder: &mut tar::Builder<Vec<u8>>, name: &str, bytes: &[u8], link: Option<&str>) {
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

/// A local channel being built: packages are written into
/// `<root>/<subdir>/`, then [`LocalChannel::write_repodata`] indexes them.
#[derive(Debug)]
pub struct LocalChannel {
    root: PathBuf,
    records: HashMap<String, Vec<(String, serde_json::Value)>>,
}

impl LocalChannel {
    /// A channel rooted at `root` (created), with an empty `noarch/`.
    pub fn new(root: &Path) -> Self {
        fs_err::create_dir_all(root.join("noarch")).unwrap();
        Self {
            root: root.to_path_buf(),
            records: HashMap::new(),
        }
    }

    /// The channel's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The channel's `file://` URL.
    pub fn url(&self) -> String {
        format!("file://{}", self.root.display())
    }

    /// Writes `package` in `format` and records it for the repodata.
    pub fn add(&mut self, package: &Package, format: Format) -> PathBuf {
        let dir = self.root.join(&package.subdir);
        let path = package.write(&dir, format);
        let bytes = fs_err::read(&path).unwrap();
        let mut record = package.index_json();
        record["sha256"] = json!(hex::encode(Sha256::digest(&bytes)));
        record["md5"] = json!(hex::encode(Md5::digest(&bytes)));
        record["size"] = json!(bytes.len());
        self.records
            .entry(package.subdir.clone())
            .or_default()
            .push((package.file_name(format), record));
        path
    }

    /// Copies an existing archive (a real package) into its subdir (read from
    /// its `info/index.json`) and records it for the repodata.
    pub fn add_archive(&mut self, archive: &Path) -> PathBuf {
        let file_name = archive.file_name().unwrap().to_string_lossy().into_owned();
        let mut record = match archive_entries(archive).remove("info/index.json") {
            Some(ArchiveEntry::File(bytes)) => serde_json::from_slice::<serde_json::Value>(&bytes)
                .unwrap_or_else(|e| panic!("{}: info/index.json: {e}", archive.display())),
            _ => panic!("{}: no info/index.json", archive.display()),
        };
        let subdir = record["subdir"].as_str().unwrap_or("noarch").to_owned();
        let bytes = fs_err::read(archive).unwrap();
        record["sha256"] = json!(hex::encode(Sha256::digest(&bytes)));
        record["md5"] = json!(hex::encode(Md5::digest(&bytes)));
        record["size"] = json!(bytes.len());
        let dir = self.root.join(&subdir);
        fs_err::create_dir_all(&dir).unwrap();
        let path = dir.join(&file_name);
        fs_err::write(&path, &bytes).unwrap();
        self.records
            .entry(subdir)
            .or_default()
            .push((file_name, record));
        path
    }

    /// Writes `<subdir>/repodata.json` for every subdir with packages (and
    /// `noarch`).
    pub fn write_repodata(&self) {
        let mut subdirs: Vec<&String> = self.records.keys().collect();
        let noarch = String::from("noarch");
        if !subdirs.contains(&&noarch) {
            subdirs.push(&noarch);
        }
        for subdir in subdirs {
            let mut packages = serde_json::Map::new();
            let mut conda = serde_json::Map::new();
            for (file_name, record) in self.records.get(subdir).into_iter().flatten() {
                if file_name.ends_with(".conda") {
                    conda.insert(file_name.clone(), record.clone());
                } else {
                    packages.insert(file_name.clone(), record.clone());
                }
            }
            let repodata = json!({
                "info": { "subdir": subdir },
                "packages": packages,
                "packages.conda": conda,
                "repodata_version": 1,
            });
            let dir = self.root.join(subdir);
            fs_err::create_dir_all(&dir).unwrap();
            fs_err::write(
                dir.join("repodata.json"),
                serde_json::to_vec_pretty(&repodata).unwrap(),
            )
            .unwrap();
        }
    }
}

/// A channel served over HTTP on 127.0.0.1 (ephemeral port) from a directory.
/// Counts requests per path; can delay chosen paths and inject [`Fault`]s into
/// them; sends `Cache-Control: public, max-age=1200` and an `ETag` (a hash of
/// the file's bytes) with repodata.json and answers a matching
/// `If-None-Match` with `304 Not Modified`, as conda-forge's CDN does. Stops
/// when dropped.
///
/// `/t/<token>/<rest>` is served as `/<rest>` (conda's token URLs); such a
/// request is counted under both paths, and delays and faults set for either
/// path apply. `Authorization` headers are ignored unless
/// [`ChannelServer::require_auth`] says otherwise.
///
/// Plain HTTP/1.1 on `std::net`, one thread per connection, `Connection:
/// close` on every response: nothing clever that could itself stall a test.
/// Every connection thread ends by itself (reads and writes time out after
/// 30 s; a [`Fault::StallAfterHeaders`] sleeps only as long as it was told).
pub struct ChannelServer {
    addr: std::net::SocketAddr,
    url: String,
    state: Arc<ServerState>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A failure the server injects into its answers for one path (see
/// [`ChannelServer::fault`]). A fault fires after the path's
/// [`ChannelServer::delay`], if any. Faults that need the file's bytes
/// (`ResetMidBody`, `Truncated`, `WrongBytes`, `StallAfterHeaders`,
/// `CutShortNoLength`) answer a plain 404 when the file does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// `200` with the file's full `Content-Length`, half of the body, then the
    /// connection is shut down at once (both directions) and dropped: the
    /// connection dies mid-body. (Rust's std cannot set `SO_LINGER` to 0, so
    /// the kernel closes with a FIN, not an RST; to a client both are a body
    /// that ends before its `Content-Length`.) Every request.
    ResetMidBody,
    /// [`Fault::ResetMidBody`] for the first `times` requests, then the file
    /// is served normally (ranges included): a connection that dies once.
    ResetMidBodyTimes(usize),
    /// `200` with the file's full `Content-Length` and every byte of the body
    /// but the last, then a normal close. Every request.
    Truncated,
    /// `200`, full length, but 64 bytes in the middle of the body are flipped
    /// (XOR 0xFF): the size is right, the sha256 is not. Every request.
    WrongBytes,
    /// The first `times` requests get `status` (e.g. 500, 503) with an empty
    /// body; later ones are served normally.
    FailTimes {
        /// The HTTP status to answer.
        status: u16,
        /// How many requests get it.
        times: usize,
    },
    /// The first request gets `429 Too Many Requests` with
    /// `Retry-After: <retry_after_secs>`; later ones are served normally.
    TooManyRequests {
        /// The `Retry-After` value, in seconds.
        retry_after_secs: u64,
    },
    /// The first request gets `503 Service Unavailable` with `Retry-After`
    /// as an HTTP date this far in the future; later ones are served.
    RetryAfterDate(Duration),
    /// Every request gets this status (404, 401, 403, 500...), empty body.
    Status(u16),
    /// `302 Found` with `Location: http://127.0.0.1:<port><to>` (`to` is a
    /// path on this server, e.g. `/mirror/noarch/x.conda`). Every request.
    Redirect {
        /// The path to redirect to.
        to: String,
    },
    /// `302 Found` with `Location` pointing at the requested path itself.
    RedirectLoop,
    /// `200` with the full headers at once, then a sleep of this long, then
    /// the body. The thread ends after the sleep.
    StallAfterHeaders(Duration),
    /// `200` with `<html>oops</html>` (`Content-Type: text/html`) and, for
    /// repodata.json, the caching headers (`ETag` of the real file,
    /// `Cache-Control`) the real file gets: an edge that cached an error page
    /// under the object's ETag. Every request.
    NotJson,
    /// `200` with **no** `Content-Length` (the body ends when the connection
    /// closes, legal for HTTP/1.1 with `Connection: close`), the real file's
    /// caching headers, and only the first half of the file, then a normal
    /// close: a transfer cut short that the client cannot tell from a
    /// complete one by its length. Every request.
    CutShortNoLength,
    /// `200` with the full headers and the first half of the body at once,
    /// then a sleep of this long, then the rest: a download kept mid-body
    /// (a client that streams has seen the first half). Every request.
    StallMidBody(Duration),
}

/// What [`ChannelServer::require_auth`] asks every request for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequiredAuth {
    /// `Authorization: Basic` with this user and password.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// A path starting `/t/<token>/` (conda's token URLs).
    Token(String),
}

struct FaultSlot {
    fault: Fault,
    fired: usize,
}

/// What one request gets, once delays and faults are decided.
enum Action {
    Serve,
    Fault(Fault),
}

#[derive(Default)]
struct ServerState {
    counts: Mutex<HashMap<String, usize>>,
    times: Mutex<HashMap<String, Vec<Instant>>>,
    bytes_served: Mutex<u64>,
    delays: Mutex<HashMap<String, Duration>>,
    faults: Mutex<HashMap<String, FaultSlot>>,
    ranges: Mutex<HashMap<String, Vec<Option<String>>>>,
    ignore_ranges: std::sync::atomic::AtomicBool,
    required_auth: Mutex<Option<RequiredAuth>>,
    refused: Mutex<usize>,
    stop: std::sync::atomic::AtomicBool,
}

impl ChannelServer {
    /// Serves `root` until dropped.
    pub fn serve(root: &Path) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ServerState::default());
        let thread = {
            let state = state.clone();
            let root = root.to_path_buf();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if state.stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (state, root) = (state.clone(), root.clone());
                    std::thread::spawn(move || {
                        let _ = handle_connection(stream, &root, &state);
                    });
                }
            })
        };
        Self {
            addr,
            url: format!("http://{addr}"),
            state,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// How many requests `path` (e.g. `/linux-64/repodata.json`) got.
    pub fn count(&self, path: &str) -> usize {
        self.state
            .counts
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// All request counts by path.
    pub fn counts(&self) -> HashMap<String, usize> {
        self.state.counts.lock().unwrap().clone()
    }

    /// When each request for `path` arrived (before any delay), oldest first.
    pub fn request_times(&self, path: &str) -> Vec<Instant> {
        self.state
            .times
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    /// The `Range` header of each request for `path` (`None`: none), oldest first.
    pub fn ranges(&self, path: &str) -> Vec<Option<String>> {
        self.state
            .ranges
            .lock()
            .unwrap()
            .get(path)
            .cloned()
            .unwrap_or_default()
    }

    /// From now on every request must carry `auth`, else it gets `401`.
    pub fn require_auth(&self, auth: RequiredAuth) {
        *self.state.required_auth.lock().unwrap() = Some(auth);
    }

    /// How many requests were refused with `401` for missing credentials.
    pub fn refused(&self) -> usize {
        *self.state.refused.lock().unwrap()
    }

    /// From now on, `Range` headers are ignored: every answer is the whole
    /// file with `200` and no `Accept-Ranges` (as some servers and proxies).
    pub fn ignore_ranges(&self) {
        self.state
            .ignore_ranges
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Total bytes of file content served (for faults: what was actually sent).
    pub fn bytes_served(&self) -> u64 {
        *self.state.bytes_served.lock().unwrap()
    }

    /// Delays every response for `path` by `delay` (before any fault fires).
    pub fn delay(&self, path: &str, delay: Duration) {
        self.state
            .delays
            .lock()
            .unwrap()
            .insert(path.to_owned(), delay);
    }

    /// Removes every delay.
    pub fn clear_delays(&self) {
        self.state.delays.lock().unwrap().clear();
    }

    /// Injects `fault` into the answers for `path` (replacing an earlier
    /// fault there, and starting its `times`/once count afresh).
    pub fn fault(&self, path: &str, fault: Fault) {
        self.state
            .faults
            .lock()
            .unwrap()
            .insert(path.to_owned(), FaultSlot { fault, fired: 0 });
    }

    /// Removes the fault of `path`.
    pub fn clear_fault(&self, path: &str) {
        self.state.faults.lock().unwrap().remove(path);
    }

    /// Removes every fault: from now on every path is served normally.
    pub fn clear_faults(&self) {
        self.state.faults.lock().unwrap().clear();
    }

    /// The `ETag` this server sends for a file with these bytes.
    pub fn etag_of(bytes: &[u8]) -> String {
        format!("\"{}\"", &sha256_hex(bytes)[..16])
    }
}

fn action_for(state: &ServerState, paths: &[&str]) -> Action {
    let mut faults = state.faults.lock().unwrap();
    let Some(key) = paths.iter().find(|p| faults.contains_key(**p)) else {
        return Action::Serve;
    };
    let Some(slot) = faults.get_mut(*key) else {
        return Action::Serve;
    };
    let fires = match &slot.fault {
        Fault::FailTimes { times, .. } => slot.fired < *times,
        Fault::TooManyRequests { .. } | Fault::RetryAfterDate(_) => slot.fired == 0,
        Fault::ResetMidBodyTimes(times) => slot.fired < *times,
        _ => true,
    };
    if fires {
        slot.fired += 1;
        Action::Fault(slot.fault.clone())
    } else {
        Action::Serve
    }
}

/// `/t/<token>/rest` → `/rest`; other paths unchanged.
fn strip_token(path: &str) -> &str {
    path.strip_prefix("/t/")
        .and_then(|rest| rest.find('/').map(|slash| &rest[slash..]))
        .unwrap_or(path)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// A response head: status line, `Connection: close`, `extra` headers.
fn head(status: u16, extra: &[(&str, String)]) -> Vec<u8> {
    let mut text = format!(
        "HTTP/1.1 {status} {}\r\nConnection: close\r\n",
        reason(status)
    );
    for (name, value) in extra {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.into_bytes()
}

fn handle_connection(
    mut stream: std::net::TcpStream,
    root: &Path,
    state: &ServerState,
) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader};
    let arrived = Instant::now();
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut if_none_match = None;
    let mut range = None;
    let mut authorization = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.trim().eq_ignore_ascii_case("if-none-match") {
                if_none_match = Some(value.trim().to_owned());
            }
            if name.trim().eq_ignore_ascii_case("range") {
                range = Some(value.trim().to_owned());
            }
            if name.trim().eq_ignore_ascii_case("authorization") {
                authorization = Some(value.trim().to_owned());
            }
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let requested = parts
        .next()
        .unwrap_or("/")
        .split('?')
        .next()
        .unwrap_or("/")
        .to_owned();
    let path = strip_token(&requested).to_owned();
    let mut paths = vec![requested.as_str()];
    if path != requested {
        paths.push(path.as_str());
    }
    for p in &paths {
        *state
            .counts
            .lock()
            .unwrap()
            .entry((*p).to_owned())
            .or_insert(0) += 1;
        state
            .times
            .lock()
            .unwrap()
            .entry((*p).to_owned())
            .or_default()
            .push(arrived);
        state
            .ranges
            .lock()
            .unwrap()
            .entry((*p).to_owned())
            .or_default()
            .push(range.clone());
    }
    let ranges_served = !state
        .ignore_ranges
        .load(std::sync::atomic::Ordering::SeqCst);
    let required = state.required_auth.lock().unwrap().clone();
    let allowed = match &required {
        None => true,
        Some(RequiredAuth::Basic { user, password }) => {
            use base64::Engine;
            let expected =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            authorization.as_deref() == Some(format!("Basic {expected}").as_str())
        }
        Some(RequiredAuth::Bearer(token)) => {
            authorization.as_deref() == Some(format!("Bearer {token}").as_str())
        }
        Some(RequiredAuth::Token(token)) => requested.starts_with(&format!("/t/{token}/")),
    };
    if !allowed {
        *state.refused.lock().unwrap() += 1;
        let headers = [
            (
                "WWW-Authenticate",
                String::from("Basic realm=\"pkgr-test\""),
            ),
            ("Content-Length", String::from("0")),
        ];
        return send(&mut stream, &head(401, &headers), &[]);
    }
    let delay = {
        let delays = state.delays.lock().unwrap();
        paths.iter().find_map(|p| delays.get(*p).copied())
    };
    if let Some(delay) = delay {
        std::thread::sleep(delay);
    }
    let action = action_for(state, &paths);

    let relative = path.trim_start_matches('/');
    let file = if relative.split('/').any(|c| c == "..") {
        None
    } else {
        std::fs::read(root.join(relative))
            .ok()
            .filter(|_| root.join(relative).is_file())
    };
    let is_repodata = relative.ends_with("repodata.json");
    // As conda-forge's CDN does.
    let caching: Vec<(&str, String)> = match (&file, is_repodata) {
        (Some(bytes), true) => vec![
            ("Cache-Control", String::from("public, max-age=1200")),
            ("ETag", ChannelServer::etag_of(bytes)),
        ],
        _ => Vec::new(),
    };
    stream.set_nodelay(true)?;
    let served = |n: usize| *state.bytes_served.lock().unwrap() += n as u64;
    let length = |n: usize| ("Content-Length", n.to_string());
    let with = |headers: &[(&'static str, String)], more: (&'static str, String)| {
        let mut headers = headers.to_vec();
        headers.push(more);
        headers
    };

    let fault = match action {
        Action::Fault(fault) => fault,
        Action::Serve => {
            let Some(body) = file else {
                return send(&mut stream, &head(404, &[length(0)]), &[]);
            };
            let etag = caching.iter().find(|(n, _)| *n == "ETag").map(|(_, v)| v);
            if let (Some(etag), Some(wanted)) = (etag, &if_none_match) {
                if wanted
                    .split(',')
                    .any(|w| w.trim() == etag || w.trim() == "*")
                {
                    return send(&mut stream, &head(304, &caching), &[]);
                }
            }
            // `Range: bytes=N-` (what a resuming client sends).
            let from = range
                .as_deref()
                .filter(|_| ranges_served)
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(from) = from.filter(|&f| f < body.len()) {
                let mut headers = with(&caching, length(body.len() - from));
                headers.push((
                    "Content-Range",
                    format!("bytes {from}-{}/{}", body.len() - 1, body.len()),
                ));
                headers.push(("Accept-Ranges", String::from("bytes")));
                served(body.len() - from);
                return send(&mut stream, &head(206, &headers), &body[from..]);
            }
            let mut headers = with(&caching, length(body.len()));
            if ranges_served {
                headers.push(("Accept-Ranges", String::from("bytes")));
            }
            let head = head(200, &headers);
            if method == "HEAD" {
                return send(&mut stream, &head, &[]);
            }
            served(body.len());
            return send(&mut stream, &head, &body);
        }
    };
    let here = stream.local_addr()?;
    let redirect = |to: &str| {
        let location = format!("http://{here}{to}");
        head(302, &[("Location", location), length(0)])
    };
    // Faults that do not need the file.
    match &fault {
        Fault::Status(status) | Fault::FailTimes { status, .. } => {
            return send(&mut stream, &head(*status, &[length(0)]), &[]);
        }
        Fault::TooManyRequests { retry_after_secs } => {
            let headers = [("Retry-After", retry_after_secs.to_string()), length(0)];
            return send(&mut stream, &head(429, &headers), &[]);
        }
        Fault::RetryAfterDate(after) => {
            let headers = [("Retry-After", http_date_in(*after)), length(0)];
            return send(&mut stream, &head(503, &headers), &[]);
        }
        Fault::Redirect { to } => return send(&mut stream, &redirect(to), &[]),
        Fault::RedirectLoop => return send(&mut stream, &redirect(&requested), &[]),
        Fault::NotJson => {
            let body = b"<html>oops</html>";
            let mut headers = with(&caching, length(body.len()));
            headers.push(("Content-Type", String::from("text/html")));
            return send(&mut stream, &head(200, &headers), body);
        }
        _ => {}
    }
    let Some(mut body) = file else {
        return send(&mut stream, &head(404, &[length(0)]), &[]);
    };
    let full = head(200, &with(&caching, length(body.len())));
    match fault {
        Fault::ResetMidBody | Fault::ResetMidBodyTimes(_) => {
            served(body.len() / 2);
            send(&mut stream, &full, &body[..body.len() / 2])?;
            stream.shutdown(std::net::Shutdown::Both)
        }
        Fault::Truncated => {
            let sent = body.len().saturating_sub(1);
            served(sent);
            send(&mut stream, &full, &body[..sent])?;
            stream.shutdown(std::net::Shutdown::Write)
        }
        Fault::WrongBytes => {
            let start = body.len() / 2;
            let end = (start + 64).min(body.len());
            for b in &mut body[start..end] {
                *b ^= 0xFF;
            }
            served(body.len());
            send(&mut stream, &full, &body)
        }
        Fault::StallAfterHeaders(stall) => {
            send(&mut stream, &full, &[])?;
            std::thread::sleep(stall);
            served(body.len());
            send(&mut stream, &[], &body)
        }
        Fault::StallMidBody(stall) => {
            let half = body.len() / 2;
            send(&mut stream, &full, &body[..half])?;
            std::thread::sleep(stall);
            served(body.len());
            send(&mut stream, &[], &body[half..])
        }
        Fault::CutShortNoLength => {
            served(body.len() / 2);
            send(&mut stream, &head(200, &caching), &body[..body.len() / 2])?;
            stream.shutdown(std::net::Shutdown::Write)
        }
        // Answered above.
        Fault::FailTimes { .. }
        | Fault::TooManyRequests { .. }
        | Fault::RetryAfterDate(_)
        | Fault::Status(_)
        | Fault::Redirect { .. }
        | Fault::RedirectLoop
        | Fault::NotJson => Ok(()),
    }
}

/// An HTTP date `after` from now, rounded up to the next whole second.
fn http_date_in(after: Duration) -> String {
    httpdate::fmt_http_date(std::time::SystemTime::now() + after + Duration::from_secs(1))
}

/// Writes `head` and `body` in one write (no Nagle: a small header write
/// followed by the body would wait for a delayed ACK on every response).
fn send(stream: &mut std::net::TcpStream, head: &[u8], body: &[u8]) -> std::io::Result<()> {
    let mut bytes = Vec::with_capacity(head.len() + body.len());
    bytes.extend_from_slice(head);
    bytes.extend_from_slice(body);
    stream.write_all(&bytes)?;
    stream.flush()
}

impl Drop for ChannelServer {
    fn drop(&mut self) {
        self.state
            .stop
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A forward HTTP proxy on 127.0.0.1 (ephemeral port) that passes plain
/// `GET http://127.0.0.1:<port>/...` requests on to their server (only to
/// 127.0.0.1: anything else gets `403`), one connection per request, and
/// counts what it forwarded. Stops when dropped.
pub struct ForwardProxy {
    addr: std::net::SocketAddr,
    forwarded: Arc<Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ForwardProxy {
    /// Starts the proxy.
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let forwarded = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let (forwarded, stop) = (forwarded.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let forwarded = forwarded.clone();
                    std::thread::spawn(move || {
                        let _ = forward_one(stream, &forwarded);
                    });
                }
            })
        };
        Self {
            addr,
            forwarded,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The absolute URLs forwarded so far.
    pub fn forwarded(&self) -> Vec<String> {
        self.forwarded.lock().unwrap().clone()
    }
}

fn forward_one(
    mut client: std::net::TcpStream,
    forwarded: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Read};
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
        let name = header
            .split(':')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !matches!(
            name.as_str(),
            "proxy-connection" | "connection" | "proxy-authorization"
        ) {
            headers.push(header);
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method == "CONNECT" {
        // A tunnel (for https://), only to this machine.
        let port = target
            .strip_prefix("localhost:")
            .or_else(|| target.strip_prefix("127.0.0.1:"));
        let Some(port) = port else {
            return send(
                &mut client,
                &head(403, &[("Content-Length", String::from("0"))]),
                &[],
            );
        };
        forwarded.lock().unwrap().push(format!("CONNECT {target}"));
        let upstream = std::net::TcpStream::connect(format!("127.0.0.1:{port}"))?;
        client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
        let (mut up_read, mut up_write) = (upstream.try_clone()?, upstream);
        let (mut client_read, mut client_write) = (client.try_clone()?, client);
        let pump = std::thread::spawn(move || {
            let _ = std::io::copy(&mut client_read, &mut up_write);
            let _ = up_write.shutdown(std::net::Shutdown::Write);
        });
        let _ = std::io::copy(&mut up_read, &mut client_write);
        let _ = client_write.shutdown(std::net::Shutdown::Write);
        let _ = pump.join();
        return Ok(());
    }
    let Some(rest) = target.strip_prefix("http://127.0.0.1:") else {
        return send(
            &mut client,
            &head(403, &[("Content-Length", String::from("0"))]),
            &[],
        );
    };
    let (port, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    forwarded.lock().unwrap().push(target.to_owned());
    let mut upstream = std::net::TcpStream::connect(format!("127.0.0.1:{port}"))?;
    let mut request = format!(
        "{method} {} HTTP/1.1\r\n",
        if path.is_empty() { "/" } else { path }
    );
    for header in headers {
        request.push_str(&header);
    }
    request.push_str("Connection: close\r\n\r\n");
    upstream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    upstream.read_to_end(&mut response)?;
    client.write_all(&response)?;
    client.flush()
}

impl Drop for ForwardProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A TLS front for a [`ChannelServer`] (or any plain HTTP server on
/// 127.0.0.1): `https://127.0.0.1:<port>` with a certificate made for
/// `localhost` and `127.0.0.1` at start, each request passed on to the
/// backend in plain HTTP. The certificate's PEM is what a client must trust.
/// [`TlsFront::url`] names it by IP (`https://127.0.0.1:<port>`), so no name
/// is looked up.
pub struct TlsFront {
    addr: std::net::SocketAddr,
    cert_pem: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TlsFront {
    /// Starts the front for `backend` (`http://127.0.0.1:<port>`).
    pub fn start(backend: &str) -> Self {
        let backend = backend.trim_start_matches("http://").to_owned();
        let certified = rcgen::generate_simple_self_signed(vec![
            String::from("localhost"),
            String::from("127.0.0.1"),
        ])
        .unwrap();
        let cert_pem = certified.cert.pem();
        let cert_der = certified.cert.der().clone();
        let key_der =
            rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der())
                .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert_der], key_der)
                .unwrap(),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (config, backend) = (config.clone(), backend.clone());
                    std::thread::spawn(move || {
                        let _ = tls_forward_one(stream, config, &backend);
                    });
                }
            })
        };
        Self {
            addr,
            cert_pem,
            stop,
            thread: Some(thread),
        }
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The certificate (PEM) a client must trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }
}

fn tls_forward_one(
    stream: std::net::TcpStream,
    config: Arc<rustls::ServerConfig>,
    backend: &str,
) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Read};
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let connection = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(connection, stream);
    // The request head (the clients here send no bodies).
    let mut head = Vec::new();
    {
        let mut reader = BufReader::new(&mut tls);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let end = line == "\r\n" || line == "\n";
            if !line.to_ascii_lowercase().starts_with("connection:") {
                head.extend_from_slice(line.as_bytes());
            }
            if end {
                break;
            }
        }
    }
    head.truncate(head.len().saturating_sub(2));
    head.extend_from_slice(b"Connection: close\r\n\r\n");
    let mut upstream = std::net::TcpStream::connect(backend)?;
    upstream.write_all(&head)?;
    let mut response = Vec::new();
    upstream.read_to_end(&mut response)?;
    tls.write_all(&response)?;
    tls.conn.send_close_notify();
    tls.flush()
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The sha256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes the demo channel (used by the README's offline demo) into `root`:
/// `hello` (a script that prints where it is installed, with a text
/// placeholder) depending on `greeting` (noarch data), in both formats.
pub fn write_demo_channel(root: &Path) -> LocalChannel {
    let mut channel = LocalChannel::new(root);
    let greeting = Package::new("greeting", "1.0").noarch_generic().file(
        "share/greeting/message.txt",
        "Hello from a pkgr environment!\n",
    );
    let hello = Package::new("hello", "2.1")
        .build("h0_0", 0)
        .depends("greeting >=1.0")
        .text_placeholder(
            "bin/hello",
            format!(
                "#!/bin/sh\ncat \"{TEXT_PLACEHOLDER}/share/greeting/message.txt\"\necho \"(installed at {TEXT_PLACEHOLDER})\"\n"
            ),
        )
        .symlink("bin/hi", "hello");
    channel.add(&greeting, Format::TarBz2);
    channel.add(&hello, Format::Conda);
    channel.write_repodata();
    channel
}

/// A `python` package for this machine's subdir laid out like conda-forge's:
/// `bin/python<X.Y>` (X.Y from `version`) is [`python_interpreter_script`],
/// with `bin/python -> python<X.Y>` and `bin/python3 -> python<X.Y>`, and
/// `lib/python<X.Y>/site-packages/README.txt`.
pub fn python_package(version: &str) -> Package {
    let xy = major_minor(version);
    python_package_without_interpreter(version)
        .executable(
            &format!("bin/python{xy}"),
            python_interpreter_script(version),
        )
        .symlink("bin/python", &format!("python{xy}"))
        .symlink("bin/python3", &format!("python{xy}"))
}

/// A `python` package with `lib/python<X.Y>/site-packages/README.txt` and no
/// interpreter at all (add one with [`python_interpreter_script`] under the
/// name a test needs).
pub fn python_package_without_interpreter(version: &str) -> Package {
    Package::new("python", version).file(
        &format!(
            "lib/python{}/site-packages/README.txt",
            major_minor(version)
        ),
        "site-packages\n",
    )
}

/// A shell script standing in for python `version`: it runs the machine's
/// `python3` with the environment's site-packages on `PYTHONPATH` (found from
/// `$0`, which is the full path when the kernel runs it as an interpreter), so
/// entry points import the packages linked into the environment.
pub fn python_interpreter_script(version: &str) -> String {
    // The absolute path: with the environment's bin/ on PATH, a bare
    // `python3` would be this package's own bin/python3 and loop forever.
    let machine_python = machine_python_executable().unwrap_or_else(|| "python3".to_owned());
    format!(
        "#!/bin/sh\nprefix=\"${{0%/bin/*}}\"\nPYTHONPATH=\"$prefix/lib/python{}/site-packages${{PYTHONPATH:+:$PYTHONPATH}}\" exec '{machine_python}' \"$@\"\n",
        major_minor(version)
    )
}

/// `3.12` of `3.12.1`.
fn major_minor(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// The machine's `python3` version (`3.12.1`), or `None` if `python3` is
/// missing or fails.
pub fn machine_python_version() -> Option<String> {
    let output = std::process::Command::new("python3")
        .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
        .output()
        .ok()?;
    let version = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !version.trim().is_empty()).then(|| version.trim().to_owned())
}

/// The absolute path of the machine's `python3` (`sys.executable`), or `None`.
pub fn machine_python_executable() -> Option<String> {
    let output = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    let path = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && path.trim().starts_with('/')).then(|| path.trim().to_owned())
}

/// One entry of a package archive, as read by [`archive_entries`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveEntry {
    /// A regular file and its bytes.
    File(Vec<u8>),
    /// A symlink and its target.
    Symlink(String),
    /// A directory.
    Directory,
}

/// Rewrites the `.conda` at `archive` in place with its members in the
/// order of `order` (prefixes of member names: `["info-", "pkg-",
/// "metadata.json"]`; members no prefix matches go last), every member
/// `Stored`, or `Deflated` when `deflated` (as no conda tool writes them,
/// but a zip may be).
pub fn rewrite_conda(archive: &Path, order: &[&str], deflated: bool) {
    use std::io::Read;
    let bytes = fs_err::read(archive).unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut members = Vec::new();
    for i in 0..zip.len() {
        let mut member = zip.by_index(i).unwrap();
        let mut data = Vec::new();
        member.read_to_end(&mut data).unwrap();
        members.push((member.name().to_owned(), data));
    }
    let rank = |name: &str| {
        order
            .iter()
            .position(|p| name.starts_with(p))
            .unwrap_or(order.len())
    };
    members.sort_by_key(|(name, _)| rank(name));
    let method = if deflated {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in members {
        out.start_file(name, options).unwrap();
        out.write_all(&data).unwrap();
    }
    fs_err::write(archive, out.finish().unwrap().into_inner()).unwrap();
}

/// Sets general-purpose flag bit 3 ("sizes in a data descriptor") in every
/// local header of the zip at `archive`, leaving the sizes there and the
/// central directory as they are: a reader that follows the local headers
/// (a stream) cannot tell where a member ends; one that reads the central
/// directory reads the archive as before.
pub fn set_data_descriptor_flag(archive: &Path) {
    let mut bytes = fs_err::read(archive).unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.clone())).unwrap();
    let starts: Vec<u64> = (0..zip.len())
        .map(|i| zip.by_index_raw(i).unwrap().header_start())
        .collect();
    drop(zip);
    for start in starts {
        let at = usize::try_from(start).unwrap() + 6;
        assert_eq!(&bytes[at - 6..at - 2], b"PK\x03\x04", "a local header");
        bytes[at] |= 1 << 3;
    }
    fs_err::write(archive, bytes).unwrap();
}

/// Reads every entry of a `.conda` or `.tar.bz2` archive into memory (for
/// checking what pkgr installed against the archive itself, independently of
/// pkgr's own extraction code).
pub fn archive_entries(path: &Path) -> HashMap<String, ArchiveEntry> {
    let mut out = HashMap::new();
    let mut read_tar = |reader: &mut dyn std::io::Read| {
        let mut tar = tar::Archive::new(reader);
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches("./")
                .to_owned();
            let kind = entry.header().entry_type();
            let value = if kind.is_symlink() {
                ArchiveEntry::Symlink(
                    entry
                        .link_name()
                        .unwrap()
                        .map(|l| l.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                )
            } else if kind.is_dir() {
                ArchiveEntry::Directory
            } else {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
                ArchiveEntry::File(bytes)
            };
            out.insert(name.trim_end_matches('/').to_owned(), value);
        }
    };
    let name = path.to_string_lossy();
    if name.ends_with(".conda") {
        let mut zip = zip::ZipArchive::new(fs_err::File::open(path).unwrap()).unwrap();
        let members: Vec<String> = zip
            .file_names()
            .filter(|n| n.ends_with(".tar.zst"))
            .map(ToOwned::to_owned)
            .collect();
        for member in members {
            let reader = zip.by_name(&member).unwrap();
            let mut decoder = zstd::Decoder::new(reader).unwrap();
            read_tar(&mut decoder);
        }
    } else {
        let file = fs_err::File::open(path).unwrap();
        let mut decoder = bzip2::read::MultiBzDecoder::new(std::io::BufReader::new(file));
        read_tar(&mut decoder);
    }
    out
}

/// conda's text-mode placeholder replacement, written independently of pkgr's.
pub fn expect_text_replaced(bytes: &[u8], placeholder: &str, prefix: &str) -> Vec<u8> {
    let text = bytes.to_vec();
    let (needle, new) = (placeholder.as_bytes(), prefix.as_bytes());
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(needle) {
            out.extend_from_slice(new);
            i += needle.len();
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

/// conda's binary-mode placeholder replacement (C strings NUL padded to their
/// length), written independently of pkgr's.
pub fn expect_binary_replaced(bytes: &[u8], placeholder: &str, prefix: &str) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let needle = placeholder.as_bytes();
    let mut i = 0;
    while i + needle.len() <= bytes.len() {
        if bytes[i..].starts_with(needle) {
            let end = bytes[i..]
                .iter()
                .position(|&b| b == 0)
                .map_or(bytes.len(), |n| i + n);
            let replaced = expect_text_replaced(&bytes[i..end], placeholder, prefix);
            out[i..i + replaced.len()].copy_from_slice(&replaced);
            for b in &mut out[i + replaced.len()..end] {
                *b = 0;
            }
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

/// Tar records (no end-of-archive blocks) of a regular 0644 file at `path`
/// whose ustar header says it holds 0 bytes and whose PAX extended header
/// says (`size=`) it holds `size`, followed by `size` zero bytes: a reader
/// that trusts the ustar header's size sees an empty file; `tar`, and every
/// extractor that follows POSIX, writes `size` bytes. For
/// [`Package::write_with_raw_payload`].
pub fn pax_sized_entry(path: &str, size: u64) -> Vec<u8> {
    let record = |text: &str| {
        // "<length> <text>\n", the length counting itself.
        let rest = text.len() + 2;
        let mut length = rest + rest.to_string().len();
        if length.to_string().len() + rest != length {
            length += 1;
        }
        format!("{length} {text}\n")
    };
    let records = record(&format!("size={size}"));
    let mut builder = tar::Builder::new(Vec::new());
    let mut pax = tar::Header::new_ustar();
    pax.set_path(format!("PaxHeaders/{path}")).unwrap();
    pax.set_size(records.len() as u64);
    pax.set_mode(0o644);
    pax.set_entry_type(tar::EntryType::XHeader);
    pax.set_cksum();
    builder.append(&pax, records.as_bytes()).unwrap();
    let mut header = tar::Header::new_ustar();
    header.set_path(path).unwrap();
    header.set_size(0);
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    builder.append(&header, std::io::empty()).unwrap();
    let mut out = builder.into_inner().unwrap();
    out.truncate(out.len() - 1024);
    let padded = size.div_ceil(512) * 512;
    out.resize(out.len() + usize::try_from(padded).unwrap(), 0);
    out
}

/// Tar records (no end-of-archive blocks) of a GNU sparse file at `path` of
/// `size` bytes (a multiple of 512, at least 512) of which only the last
/// 512 are stored, the rest a hole: about 1 KB of archive that unpacks to a
/// file of `size` bytes taking almost no disk (a bomb a test can afford).
/// For [`Package::write_with_raw_payload`].
pub fn sparse_entry(path: &str, size: u64) -> Vec<u8> {
    assert!(size >= 512 && size.is_multiple_of(512), "{size}");
    let octal = |field: &mut [u8], value: u64| {
        let text = format!("{value:0width$o}", width = field.len() - 1);
        assert_eq!(text.len(), field.len() - 1, "{value} does not fit");
        field[..text.len()].copy_from_slice(text.as_bytes());
        field[text.len()] = 0;
    };
    let mut header = tar::Header::new_gnu();
    header.set_path(path).unwrap();
    header.set_size(512);
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    header.set_entry_type(tar::EntryType::GNUSparse);
    {
        let gnu = header.as_gnu_mut().unwrap();
        octal(&mut gnu.realsize, size);
        octal(&mut gnu.sparse[0].offset, size - 512);
        octal(&mut gnu.sparse[0].numbytes, 512);
    }
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(&[b'x'; 512]);
    out
}

/// Tar records (no end-of-archive blocks) of a plain 0644 file at `path`
/// holding `bytes`. For [`Package::write_with_raw_payload`].
pub fn file_entry(path: &str, bytes: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    append_file(&mut builder, path, bytes, 0o644);
    let mut out = builder.into_inner().unwrap();
    out.truncate(out.len() - 1024);
    out
}

impl Package {
    /// Writes the package into `dir` as `format`, as [`Package::write`]
    /// does, with `records` (tar records: [`pax_sized_entry`],
    /// [`sparse_entry`], [`file_entry`]) appended to its payload's tarball
    /// and not listed in its paths.json; returns the archive's path.
    pub fn write_with_raw_payload(&self, dir: &Path, format: Format, records: &[u8]) -> PathBuf {
        fs_err::create_dir_all(dir).unwrap();
        let path = dir.join(self.file_name(format));
        let mut payload = self.payload_tar();
        payload.truncate(payload.len() - 1024);
        payload.extend_from_slice(records);
        payload.resize(payload.len() + 1024, 0);
        let bytes = match format {
            Format::TarBz2 => {
                let mut tar = self.info_tar();
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
                    (format!("pkg-{stem}.tar.zst"), payload),
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

/// Writes into `dir` a package `name-1-0` in `format` whose only metadata
/// file is an `info/index.json` of `size` bytes (valid JSON: a real index
/// padded with spaces), compressed as it is made (never whole in memory):
/// a metadata bomb of a few KB, or tens of KB for a GiB. Returns its path.
pub fn write_index_json_bomb(dir: &Path, name: &str, format: Format, size: u64) -> PathBuf {
    let index = serde_json::to_vec(&Package::new(name, "1").index_json()).unwrap();
    let padding = size.checked_sub(index.len() as u64).unwrap();
    let index_json = || {
        // `{` + spaces + the rest of the real index.
        std::io::Read::chain(
            std::io::Read::chain(
                &index[..1],
                std::io::Read::take(std::io::repeat(b' '), padding),
            ),
            &index[1..],
        )
    };
    let tar_into = |out: &mut dyn Write| {
        let mut builder = tar::Builder::new(out);
        let mut h = header(0, 0o644, tar::EntryType::Regular);
        h.set_size(size);
        builder
            .append_data(&mut h, "info/index.json", index_json())
            .unwrap();
        builder.finish().unwrap();
    };
    fs_err::create_dir_all(dir).unwrap();
    let path = dir.join(format!("{name}-1-0{}", format.extension()));
    match format {
        Format::TarBz2 => {
            let file = fs_err::File::create(&path).unwrap();
            let mut encoder = bzip2::write::BzEncoder::new(file, bzip2::Compression::fast());
            tar_into(&mut encoder);
            encoder.finish().unwrap();
        }
        Format::Conda => {
            let mut encoder = zstd::Encoder::new(Vec::new(), 1).unwrap();
            tar_into(&mut encoder);
            let info = encoder.finish().unwrap();
            let mut zip = zip::ZipWriter::new(fs_err::File::create(&path).unwrap());
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored);
            zip.start_file("metadata.json", options).unwrap();
            zip.write_all(br#"{"conda_pkg_format_version": 2}"#)
                .unwrap();
            zip.start_file(format!("info-{name}-1-0.tar.zst"), options)
                .unwrap();
            zip.write_all(&info).unwrap();
            zip.finish().unwrap();
        }
    }
    path
}

/// The shared conda data set (`$PKGR_DATASETS`: real packages, repodata,
/// environment specs) for the tests that read it. Unset: `None`, after
/// printing `skipped: PKGR_DATASETS is not set` (a user's fresh clone).
/// Set to something that is not a directory: a panic naming the variable
/// and the path, so that a typo is an error, never a silent skip.
pub fn datasets() -> Option<PathBuf> {
    match std::env::var_os("PKGR_DATASETS") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            assert!(
                dir.is_dir(),
                "PKGR_DATASETS is set to {}, which is not a directory (point it at shared/datasets, or unset it to skip the tests that read it)",
                dir.display()
            );
            Some(dir)
        }
        _ => {
            eprintln!("skipped: PKGR_DATASETS is not set");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_entry(entries: &HashMap<String, ArchiveEntry>, name: &str) -> serde_json::Value {
        match &entries[name] {
            ArchiveEntry::File(bytes) => serde_json::from_slice(bytes).unwrap(),
            other => panic!("{name} is {other:?}"),
        }
    }

    fn sample() -> Package {
        Package::new("hellopkg", "1.0")
            .noarch_python()
            .entry_point("hello = hellopkg.cli:main")
            .file("site-packages/hellopkg/__init__.py", "")
            .directory("share/hellopkg/empty")
            .no_link("share/hellopkg/state.db", "state")
            .post_link("echo linked")
    }

    /// A GET over a raw socket: the response head (lower-cased) and body.
    fn raw_get(server: &ChannelServer, path: &str, headers: &[&str]) -> (String, Vec<u8>) {
        use std::io::Read;
        let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n");
        for h in headers {
            request.push_str(&format!("{h}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head");
        let head = String::from_utf8_lossy(&response[..split]).to_lowercase();
        (head, response[split + 4..].to_vec())
    }

    fn status(head: &str) -> &str {
        head.split_whitespace().nth(1).unwrap()
    }

    fn served_dir() -> (tempfile::TempDir, Vec<u8>, ChannelServer) {
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("f.bin"), &bytes).unwrap();
        std::fs::create_dir(dir.path().join("noarch")).unwrap();
        std::fs::write(dir.path().join("noarch/repodata.json"), b"{}").unwrap();
        let server = ChannelServer::serve(dir.path());
        (dir, bytes, server)
    }

    #[test]
    fn body_faults_cut_flip_or_stall_the_body() {
        let (_dir, bytes, server) = served_dir();
        server.fault("/f.bin", Fault::ResetMidBody);
        let (head, body) = raw_get(&server, "/f.bin", &[]);
        assert!(head.contains("content-length: 1000"), "{head}");
        assert_eq!(body, bytes[..500]);
        server.fault("/f.bin", Fault::Truncated);
        let (head, body) = raw_get(&server, "/f.bin", &[]);
        assert!(head.contains("content-length: 1000"), "{head}");
        assert_eq!(body, bytes[..999]);
        server.fault("/f.bin", Fault::WrongBytes);
        let (_, body) = raw_get(&server, "/f.bin", &[]);
        assert_eq!(body.len(), 1000);
        assert_eq!(
            (body[..500] == bytes[..500], body[500] == bytes[500] ^ 0xFF),
            (true, true)
        );
        server.fault("/f.bin", Fault::CutShortNoLength);
        let (head, body) = raw_get(&server, "/f.bin", &[]);
        assert!(
            status(&head) == "200" && !head.contains("content-length"),
            "{head}"
        );
        assert_eq!(body, bytes[..500]);
        server.fault(
            "/f.bin",
            Fault::StallAfterHeaders(Duration::from_millis(300)),
        );
        let started = Instant::now();
        let (_, body) = raw_get(&server, "/f.bin", &[]);
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(body, bytes);
        // A missing file with a body fault is a plain 404.
        server.fault("/missing.bin", Fault::Truncated);
        assert_eq!(status(&raw_get(&server, "/missing.bin", &[]).0), "404");
        assert_eq!(server.count("/f.bin"), 5);
        assert_eq!(server.request_times("/f.bin").len(), 5);
        server.clear_faults();
        assert_eq!(raw_get(&server, "/f.bin", &[]).1, bytes);
    }

    #[test]
    fn status_faults_fire_as_often_as_told() {
        let (_dir, bytes, server) = served_dir();
        server.fault(
            "/f.bin",
            Fault::FailTimes {
                status: 503,
                times: 2,
            },
        );
        let statuses: Vec<String> = (0..3)
            .map(|_| status(&raw_get(&server, "/f.bin", &[]).0).to_owned())
            .collect();
        assert_eq!(statuses, ["503", "503", "200"]);
        server.fault(
            "/f.bin",
            Fault::TooManyRequests {
                retry_after_secs: 7,
            },
        );
        let (head, _) = raw_get(&server, "/f.bin", &[]);
        assert!(
            status(&head) == "429" && head.contains("retry-after: 7"),
            "{head}"
        );
        assert_eq!(raw_get(&server, "/f.bin", &[]).1, bytes);
        server.fault("/f.bin", Fault::Status(403));
        assert_eq!(status(&raw_get(&server, "/f.bin", &[]).0), "403");
        assert_eq!(status(&raw_get(&server, "/f.bin", &[]).0), "403");
        server.clear_fault("/f.bin");
        assert_eq!(status(&raw_get(&server, "/f.bin", &[]).0), "200");
    }

    #[test]
    fn redirects_token_paths_and_delays() {
        let (_dir, bytes, server) = served_dir();
        server.fault(
            "/a.bin",
            Fault::Redirect {
                to: String::from("/f.bin"),
            },
        );
        let (head, _) = raw_get(&server, "/a.bin", &[]);
        let location = format!("location: {}/f.bin", server.url());
        assert!(status(&head) == "302" && head.contains(&location), "{head}");
        server.fault("/f.bin", Fault::RedirectLoop);
        let (head, _) = raw_get(&server, "/t/tok/f.bin", &[]);
        let location = format!("location: {}/t/tok/f.bin", server.url());
        assert!(status(&head) == "302" && head.contains(&location), "{head}");
        server.clear_faults();
        server.delay("/f.bin", Duration::from_millis(200));
        let started = Instant::now();
        let (_, body) = raw_get(&server, "/t/secret/f.bin", &["Authorization: Bearer x"]);
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(body, bytes);
        assert_eq!(server.count("/t/secret/f.bin"), 1);
        assert_eq!(server.count("/f.bin"), 2);
        server.clear_delays();
    }

    #[test]
    fn repodata_has_an_etag_and_revalidates_with_304() {
        let (_dir, _, server) = served_dir();
        let (head, body) = raw_get(&server, "/noarch/repodata.json", &[]);
        let etag = ChannelServer::etag_of(b"{}");
        assert!(head.contains(&format!("etag: {etag}")), "{head}");
        assert!(
            head.contains("cache-control: public, max-age=1200"),
            "{head}"
        );
        assert_eq!(body, b"{}");
        let (head, body) = raw_get(
            &server,
            "/noarch/repodata.json",
            &[&format!("If-None-Match: {etag}")],
        );
        assert!(status(&head) == "304" && body.is_empty(), "{head}");
        let (head, _) = raw_get(&server, "/noarch/repodata.json", &["If-None-Match: \"x\""]);
        assert_eq!(status(&head), "200");
        server.fault("/noarch/repodata.json", Fault::NotJson);
        let (head, body) = raw_get(&server, "/noarch/repodata.json", &[]);
        assert!(status(&head) == "200" && head.contains(&etag), "{head}");
        assert_eq!(body, b"<html>oops</html>");
        // Archives get no ETag.
        assert!(!raw_get(&server, "/f.bin", &[]).0.contains("etag"));
    }

    #[test]
    fn noarch_python_package_in_both_formats() {
        let dir = tempfile::tempdir().unwrap();
        for format in [Format::Conda, Format::TarBz2] {
            let entries = archive_entries(&sample().write(dir.path(), format));
            let index = json_entry(&entries, "info/index.json");
            assert_eq!(
                (index["noarch"].as_str(), index["subdir"].as_str()),
                (Some("python"), Some("noarch"))
            );
            assert_eq!(
                json_entry(&entries, "info/link.json"),
                json!({
                    "noarch": { "type": "python", "entry_points": ["hello = hellopkg.cli:main"] },
                    "package_metadata_version": 1,
                })
            );
            let paths = json_entry(&entries, "info/paths.json");
            let by_path = |p: &str| {
                paths["paths"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["_path"] == p)
                    .cloned()
                    .unwrap()
            };
            assert_eq!(
                by_path("share/hellopkg/empty"),
                json!({ "_path": "share/hellopkg/empty", "path_type": "directory" })
            );
            assert_eq!(by_path("share/hellopkg/state.db")["no_link"], json!(true));
            assert_eq!(
                by_path("bin/.hellopkg-post-link.sh")["path_type"],
                "hardlink"
            );
            assert_eq!(entries["share/hellopkg/empty"], ArchiveEntry::Directory);
            assert_eq!(
                entries["share/hellopkg/state.db"],
                ArchiveEntry::File(b"state".to_vec())
            );
        }
    }

    #[test]
    fn legacy_lists_no_link_and_skips_directories() {
        let dir = tempfile::tempdir().unwrap();
        let entries = archive_entries(&sample().legacy().write(dir.path(), Format::TarBz2));
        assert!(!entries.contains_key("info/paths.json"));
        let files = match &entries["info/files"] {
            ArchiveEntry::File(bytes) => String::from_utf8(bytes.clone()).unwrap(),
            other => panic!("{other:?}"),
        };
        assert!(files.contains("share/hellopkg/state.db\n") && !files.contains("empty"));
        assert_eq!(
            entries["info/no_link"],
            ArchiveEntry::File(b"share/hellopkg/state.db\n".to_vec())
        );
        assert_eq!(entries["share/hellopkg/empty"], ArchiveEntry::Directory);
    }

    #[test]
    fn link_json_without_entry_points_and_python_package() {
        let dir = tempfile::tempdir().unwrap();
        let path = Package::new("p", "1")
            .noarch_python()
            .write(dir.path(), Format::Conda);
        assert_eq!(
            json_entry(&archive_entries(&path), "info/link.json"),
            json!({ "noarch": { "type": "python" }, "package_metadata_version": 1 })
        );
        let entries = archive_entries(&python_package("3.11.4").write(dir.path(), Format::Conda));
        assert_eq!(
            entries["bin/python3"],
            ArchiveEntry::Symlink(String::from("python3.11"))
        );
        assert_eq!(
            entries["bin/python"],
            ArchiveEntry::Symlink(String::from("python3.11"))
        );
        assert!(matches!(entries["bin/python3.11"], ArchiveEntry::File(_)));
        assert!(entries.contains_key("lib/python3.11/site-packages/README.txt"));
    }
}
