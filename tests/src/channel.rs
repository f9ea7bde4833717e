//! Local channels: packages written into `<root>/<subdir>/` and indexed in
//! `repodata.json`; the demo channel.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use md5::Md5;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::*;

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
