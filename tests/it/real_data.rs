//! Real conda packages from `$PKGR_DATASETS/packages` (see PROVENANCE.md there):
//! index them into a channel with `pkgr index`, install them, and check every
//! file their paths.json lists against the archive itself.
//!
//! Skipped (with a message) when PKGR_DATASETS is not set; `.ci/run` sets it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use pkgr_test_support::{
    archive_entries, expect_binary_replaced, expect_text_replaced, sha256_hex, ArchiveEntry,
};

use crate::common::{assert_fails, assert_ok, World};

fn datasets() -> Option<PathBuf> {
    match std::env::var_os("PKGR_DATASETS") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => {
            eprintln!("skipped: PKGR_DATASETS is not set (see README)");
            None
        }
    }
}

/// Real linux-64 and noarch package archives (not the malformed or synthetic ones).
fn real_packages(datasets: &Path) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    for channel in std::fs::read_dir(datasets.join("packages")).unwrap() {
        let channel = channel.unwrap().path();
        let name = channel.file_name().unwrap().to_string_lossy().into_owned();
        if name == "malformed" || name == "synthetic" {
            continue;
        }
        for subdir in ["linux-64", "noarch"] {
            let Ok(files) = std::fs::read_dir(channel.join(subdir)) else {
                continue;
            };
            for file in files {
                let path = file.unwrap().path();
                let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
                if file_name.ends_with(".conda") || file_name.ends_with(".tar.bz2") {
                    found.push((subdir.to_owned(), path));
                }
            }
        }
    }
    found.sort();
    found
}

/// The paths the package's metadata lists: paths.json, else legacy info/files.
fn listed_paths(entries: &HashMap<String, ArchiveEntry>) -> Vec<serde_json::Value> {
    if let Some(ArchiveEntry::File(bytes)) = entries.get("info/paths.json") {
        let paths: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        return paths["paths"].as_array().unwrap().clone();
    }
    let Some(ArchiveEntry::File(files)) = entries.get("info/files") else {
        panic!("package has neither info/paths.json nor info/files");
    };
    String::from_utf8_lossy(files)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::json!({ "_path": l.trim(), "path_type": "hardlink" }))
        .collect()
}

fn is_complete(entries: &HashMap<String, ArchiveEntry>) -> bool {
    listed_paths(entries).iter().all(|p| {
        p["path_type"] == "directory" || entries.contains_key(p["_path"].as_str().unwrap())
    })
}

/// Checks every listed file of `archive` in `prefix`. Returns how many.
fn verify_installed(prefix: &Path, archive: &Path) -> usize {
    let entries = archive_entries(archive);
    let prefix_text = prefix.display().to_string();
    let listed = listed_paths(&entries);
    for path in &listed {
        let rel = path["_path"].as_str().unwrap();
        let installed = prefix.join(rel);
        let what = format!("{} in {}", rel, archive.display());
        match (path["path_type"].as_str().unwrap(), entries.get(rel)) {
            ("directory", _) => assert!(installed.is_dir(), "{what}: not a directory"),
            (_, Some(ArchiveEntry::Symlink(target))) if !target.is_empty() => {
                assert_eq!(
                    std::fs::read_link(&installed).unwrap().to_string_lossy(),
                    *target,
                    "{what}"
                );
            }
            (_, Some(ArchiveEntry::File(original))) => {
                let actual = std::fs::read(&installed).unwrap_or_else(|e| panic!("{what}: {e}"));
                if let Some(sha) = path["sha256"].as_str() {
                    if path["path_type"] == "hardlink" {
                        assert_eq!(
                            sha256_hex(original),
                            sha,
                            "{what}: archive disagrees with paths.json"
                        );
                    }
                }
                let expected = match (
                    path["prefix_placeholder"].as_str(),
                    path["file_mode"].as_str(),
                ) {
                    (Some(placeholder), Some("binary")) => {
                        expect_binary_replaced(original, placeholder, &prefix_text)
                    }
                    (Some(placeholder), _) => {
                        expect_text_replaced(original, placeholder, &prefix_text)
                    }
                    (None, _) => original.clone(),
                };
                assert!(
                    actual == expected,
                    "{what}: installed content differs (sha256 {} vs {})",
                    sha256_hex(&actual),
                    sha256_hex(&expected)
                );
            }
            // Symlinks with empty targets (sanitized test data): the path exists.
            (_, Some(_)) => assert!(
                std::fs::symlink_metadata(&installed).is_ok(),
                "{what}: missing"
            ),
            (_, None) => panic!("{what}: listed but not in the archive"),
        }
    }
    listed.len()
}

#[test]
fn real_packages_install_with_every_file_correct() {
    let Some(datasets) = datasets() else { return };
    let world = World::new();
    let packages = real_packages(&datasets);
    assert!(
        packages.len() >= 5,
        "expected the real packages of PROVENANCE.md, found {packages:?}"
    );

    // One channel per format, so both archives of zlib are installed and checked.
    let mut checked = 0;
    let mut incomplete_seen = 0;
    for format in [".conda", ".tar.bz2"] {
        let channel = world.path().join(format!("channel{format}"));
        let mut complete = Vec::new();
        let mut incomplete = Vec::new();
        for (subdir, path) in packages
            .iter()
            .filter(|(_, p)| p.to_string_lossy().ends_with(format))
        {
            let dest = channel.join(subdir).join(path.file_name().unwrap());
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(path, &dest).unwrap();
            let entries = archive_entries(&dest);
            let Some(ArchiveEntry::File(index)) = entries.get("info/index.json") else {
                panic!("{dest:?}")
            };
            let index: serde_json::Value = serde_json::from_slice(index).unwrap();
            let name = index["name"].as_str().unwrap().to_owned();
            if is_complete(&entries) {
                complete.push((name, dest));
            } else {
                incomplete.push(name);
            }
        }
        assert_ok(&world.run(&["index", channel.to_str().unwrap()]));

        let prefix = world.env(&format!("real{format}"));
        let mut args = vec![
            "create",
            "--platform",
            "linux-64",
            "--no-deps",
            "-p",
            prefix.to_str().unwrap(),
            "-c",
            channel.to_str().unwrap(),
        ];
        args.extend(complete.iter().map(|(n, _)| n.as_str()));
        assert_ok(&world.run(&args));
        for (name, archive) in &complete {
            let files = verify_installed(&prefix, archive);
            eprintln!("verified {files} files of {name} ({})", archive.display());
            checked += 1;
        }
        let out = world.run(&["list", "--json", "-p", prefix.to_str().unwrap()]);
        assert_ok(&out);
        let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(listed.as_array().unwrap().len(), complete.len());

        // A package whose archive lacks files its metadata lists is refused
        // clearly, and leaves no environment behind.
        for name in &incomplete {
            let prefix = world.env(&format!("broken-{name}"));
            let out = world.run(&[
                "create",
                "--platform",
                "linux-64",
                "--no-deps",
                "-p",
                prefix.to_str().unwrap(),
                "-c",
                channel.to_str().unwrap(),
                name,
            ]);
            let err = assert_fails(&out);
            assert!(
                err.contains("incomplete") && err.contains(name.as_str()),
                "{err}"
            );
            assert!(!prefix.exists());
            incomplete_seen += 1;
        }
    }
    eprintln!("checked {checked} real packages, {incomplete_seen} incomplete ones refused");
    assert!(checked >= 5);
}

#[test]
fn malformed_real_archives_are_skipped_by_index_and_refused_by_create() {
    let Some(datasets) = datasets() else { return };
    let world = World::new();
    let channel = world.path().join("channel");
    let noarch = channel.join("noarch");
    std::fs::create_dir_all(&noarch).unwrap();
    for file in std::fs::read_dir(datasets.join("packages/malformed")).unwrap() {
        let path = file.unwrap().path();
        std::fs::copy(&path, noarch.join(path.file_name().unwrap())).unwrap();
    }
    let out = world.run(&["index", channel.to_str().unwrap()]);
    assert_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("skipping"), "{stderr}");
}
