//! Real conda packages from `$PKGR_DATASETS/packages` (see PROVENANCE.md there):
//! index them into a channel with `pkgr index`, install them, and check every
//! file their paths.json lists against the archive itself.
//!
//! `#[ignore]`d (a plain `cargo test` counts them as ignored); `.ci/run` runs
//! them with `--ignored` and PKGR_DATASETS set.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use std::process::Command;

use pkgr_test_support::{
    archive_entries, expect_binary_replaced, expect_text_replaced, machine_python_version,
    python_package, sha256_hex, ArchiveEntry, Format, LocalChannel,
};

use crate::common::{assert_ok, run_with_timeout, stderr, stdout, World, TIMEOUT};

pub fn datasets() -> PathBuf {
    pkgr_test_support::datasets()
}

/// Real linux-64 and noarch package archives (not the malformed or synthetic ones).
fn real_packages(datasets: &Path) -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    for channel in fs_err::read_dir(datasets.join("packages")).unwrap() {
        let channel = channel.unwrap().path();
        let name = channel.file_name().unwrap().to_string_lossy().into_owned();
        if name == "malformed" || name == "synthetic" {
            continue;
        }
        for subdir in ["linux-64", "noarch"] {
            let Ok(files) = fs_err::read_dir(channel.join(subdir)) else {
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
                    fs_err::read_link(&installed).unwrap().to_string_lossy(),
                    *target,
                    "{what}"
                );
            }
            (_, Some(ArchiveEntry::File(original))) => {
                let actual = fs_err::read(&installed).unwrap_or_else(|e| panic!("{what}: {e}"));
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
            // Links a `.tar.bz2` stores as (empty) files: the path exists.
            (_, Some(_)) => assert!(
                fs_err::symlink_metadata(&installed).is_ok(),
                "{what}: missing"
            ),
            (_, None) => panic!("{what}: listed but not in the archive"),
        }
    }
    listed.len()
}

#[test]
#[ignore = "needs the conda datasets: set PKGR_DATASETS (.ci/run does)"]
fn real_packages_install_with_every_file_correct() {
    let datasets = datasets();
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
            fs_err::create_dir_all(dest.parent().unwrap()).unwrap();
            fs_err::copy(path, &dest).unwrap();
            let entries = archive_entries(&dest);
            let Some(ArchiveEntry::File(index)) = entries.get("info/index.json") else {
                panic!("{dest:?}")
            };
            let index: serde_json::Value = serde_json::from_slice(index).unwrap();
            let name = index["name"].as_str().unwrap().to_owned();
            // A symlink with an empty target cannot exist on disk: refused
            // like an incomplete archive (as conda refuses it).
            let empty_link = entries
                .values()
                .any(|e| matches!(e, ArchiveEntry::Symlink(target) if target.is_empty()));
            if is_complete(&entries) && !empty_link {
                complete.push((name, dest));
            } else {
                incomplete.push(name);
            }
        }
        assert_ok(&world.run(&["index", channel.to_str().unwrap()]));

        // (The only real `.conda` of the data set has links with empty
        // targets: it is refused below, and nothing is installed from it.)
        if !complete.is_empty() {
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
        }

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
            // Says "incomplete", naming the package.
            snapshot_failure!(
                &world,
                format!("incomplete_{name}{format}").as_str(),
                out,
                "[DATASETS]" => datasets,
            );
            assert!(!prefix.exists());
            incomplete_seen += 1;
        }
    }
    eprintln!("checked {checked} real packages, {incomplete_seen} incomplete ones refused");
    assert!(checked >= 5);
}

#[test]
#[ignore = "needs the conda datasets: set PKGR_DATASETS (.ci/run does)"]
fn malformed_real_archives_are_skipped_by_index_and_refused_by_create() {
    let datasets = datasets();
    let world = World::new();
    let channel = world.path().join("channel");
    let noarch = channel.join("noarch");
    fs_err::create_dir_all(&noarch).unwrap();
    for file in fs_err::read_dir(datasets.join("packages/malformed")).unwrap() {
        let path = file.unwrap().path();
        fs_err::copy(&path, noarch.join(path.file_name().unwrap())).unwrap();
    }
    let out = world.run(&["index", channel.to_str().unwrap()]);
    assert_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("skipping"), "{stderr}");
}

/// A channel at `world/<name>` holding copies of the dataset archives
/// `archives` (paths under `packages/synthetic/`, each copied to `noarch/`)
/// and, when `python` is given, a generated `python` package whose
/// `bin/pythonX.Y` runs the machine's python3; indexed by `pkgr index`.
fn synthetic_channel(
    world: &World,
    datasets: &Path,
    name: &str,
    python: Option<&str>,
    archives: &[&str],
) -> PathBuf {
    let root = world.path().join(name);
    let mut channel = LocalChannel::new(&root);
    if let Some(version) = python {
        channel.add(&python_package(version), Format::Conda);
    }
    channel.write_repodata();
    let noarch = root.join("noarch");
    fs_err::create_dir_all(&noarch).unwrap();
    for archive in archives {
        let source = datasets.join("packages/synthetic").join(archive);
        fs_err::copy(&source, noarch.join(source.file_name().unwrap()))
            .unwrap_or_else(|e| panic!("{}: {e}", source.display()));
    }
    assert_ok(&world.run(&["index", root.to_str().unwrap()]));
    root
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(
        &fs_err::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json_type(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// The conda-meta record fields every record conda wrote in
/// `prefix-records/conda-envpy313tosx_whl` carries, with their JSON types.
fn conda_record_fields(datasets: &Path) -> Vec<(String, &'static str)> {
    let dir = datasets.join("prefix-records/conda-envpy313tosx_whl");
    let mut common: Option<Vec<(String, &'static str)>> = None;
    for entry in fs_err::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let record = read_json(&path);
        let fields: Vec<(String, &'static str)> = record
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), json_type(v)))
            .collect();
        common = Some(match common {
            None => fields,
            Some(seen) => seen.into_iter().filter(|f| fields.contains(f)).collect(),
        });
    }
    common.expect("conda's records")
}

/// Fields conda writes that describe conda's own package cache or repodata
/// extras (pkgr's cache layout is its own; these are not part of what an
/// installed package is): left out of the comparison, on purpose.
const CONDA_CACHE_FIELDS: &[&str] = &[
    "extracted_package_dir",
    "package_tarball_full_path",
    "features",
    "track_features",
    "license",
    "timestamp",
];

/// Real noarch: python packages (built by conda-build) install into an
/// environment with a python that runs: relocated, entry points that run, the
/// post-link script with conda's variables, .pyc files compiled, and
/// conda-meta records with conda's fields and shapes.
#[test]
#[ignore = "needs the conda datasets: set PKGR_DATASETS (.ci/run does)"]
fn real_noarch_python_packages_install_like_conda() {
    let datasets = datasets();
    let Some(version) = machine_python_version() else {
        eprintln!("skipped: no python3 on this machine");
        return;
    };
    let xy: Vec<&str> = version.split('.').take(2).collect();
    let site_packages = format!("lib/python{}/site-packages", xy.join("."));
    let tag = xy.concat();
    let world = World::new();
    let channel = synthetic_channel(
        &world,
        &datasets,
        "channel",
        Some(&version),
        &[
            "conda-index/archives/conda-index-pkg-a-1.0-pyhed9eced_1.tar.bz2",
            "conda-index/archives/spiffy-test-app-0.5-pyh6afbcc8_0.tar.bz2",
            "conda-test-recipes/noarch/sample_noarch_python-1.0-py_0.conda",
        ],
    );
    let prefix = world.env("py");
    let out = world.create(
        &prefix,
        channel.to_str().unwrap(),
        &["conda-index-pkg-a", "sample_noarch_python"],
    );
    assert_ok(&out);

    // Relocated files, and the post-link script ran with conda's variables
    // (it writes them to $PREFIX/.messages.txt, which pkgr shows and removes).
    assert!(prefix
        .join(&site_packages)
        .join("conda_index_pkg_a/__init__.py")
        .is_file());
    assert!(prefix.join(&site_packages).join("sample.py").is_file());
    assert!(!prefix.join("site-packages").exists());
    assert!(prefix.join("bin/.conda-index-pkg-a-post-link.sh").is_file());
    assert!(!prefix.join(".messages.txt").exists());
    let output = format!("{}{}", stdout(&out), stderr(&out));
    let start = output
        .find("message from conda-index-pkg-a")
        .unwrap_or_else(|| panic!("{output}"));
    let json_start = start + output[start..].find('{').unwrap();
    let json_end = json_start + output[json_start..].find('}').unwrap() + 1;
    let message: serde_json::Value = serde_json::from_str(&output[json_start..json_end])
        .unwrap_or_else(|e| panic!("{e}: {output}"));
    assert_eq!(message["PREFIX"], prefix.to_str().unwrap());
    assert_eq!(message["PKG_NAME"], "conda-index-pkg-a");
    assert_eq!(message["PKG_VERSION"], "1.0");
    assert_eq!(message["PKG_BUILDNUM"], "1");

    // Both entry points exist; the main one runs the package's function
    // (which prints its environment as JSON).
    assert!(prefix.join("bin/conda-index-pkg-a-helper").is_file());
    let run = run_with_timeout(Command::new(prefix.join("bin/conda-index-pkg-a")), TIMEOUT);
    assert!(run.status.success(), "{}", stderr(&run));
    let printed: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert!(printed.is_object());

    // The records: conda's fields with conda's JSON types, relocated files,
    // .pyc files and entry points listed as conda lists them.
    let record = read_json(&prefix.join("conda-meta/conda-index-pkg-a-1.0-pyhed9eced_1.json"));
    for (field, kind) in conda_record_fields(&datasets) {
        if CONDA_CACHE_FIELDS.contains(&field.as_str()) {
            continue;
        }
        let ours = record
            .get(&field)
            .unwrap_or_else(|| panic!("{field} missing from {record:#}"));
        assert_eq!(json_type(ours), kind, "{field}: {ours}");
    }
    assert_eq!(record["requested_spec"], "conda-index-pkg-a");
    assert_eq!(record["noarch"], "python");
    assert_eq!(record["build_number"], 1);
    let files: Vec<&str> = record["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let pyc = format!("{site_packages}/conda_index_pkg_a/__pycache__/__init__.cpython-{tag}.pyc");
    for expected in [
        format!("{site_packages}/conda_index_pkg_a/__init__.py"),
        "bin/conda-index-pkg-a".to_owned(),
        "bin/conda-index-pkg-a-helper".to_owned(),
        "bin/.conda-index-pkg-a-post-link.sh".to_owned(),
        pyc.clone(),
    ] {
        assert!(
            files.contains(&expected.as_str()),
            "{expected} not in {files:?}"
        );
    }
    assert!(prefix.join(&pyc).is_file());
    assert!(files.iter().all(|f| !f.starts_with("site-packages/")));
    let conda_pip = read_json(
        &datasets.join("prefix-records/conda-envpy313tosx_whl/pip-25.0.1-pyh145f28c_0.json"),
    );
    let shape = |entries: &serde_json::Value, path_type: &str| -> Vec<String> {
        let entry = entries["paths_data"]["paths"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["path_type"] == path_type)
            .unwrap_or_else(|| panic!("no {path_type} entry"));
        let mut keys: Vec<String> = entry.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    for path_type in ["hardlink", "pyc_file", "unix_python_entry_point"] {
        assert_eq!(
            shape(&record, path_type),
            shape(&conda_pip, path_type),
            "{path_type} entries carry conda's fields"
        );
    }
    assert_eq!(record["paths_data"]["paths_version"], 1);

    // A package whose archive lacks the files its paths.json lists (this one
    // ships only info/) is refused, naming it, and the environment is as it was.
    let before = read_prefix_listing(&prefix);
    let out = world.run(&["install", "-p", prefix.to_str().unwrap(), "spiffy-test-app"]);
    snapshot_failure!(&world, "incomplete_spiffy_test_app", out, "[DATASETS]" => datasets);
    assert_eq!(read_prefix_listing(&prefix), before);

    // Removing everything leaves only conda-meta behind.
    assert_ok(&world.run(&[
        "remove",
        "-p",
        prefix.to_str().unwrap(),
        "conda-index-pkg-a",
        "sample_noarch_python",
        "python",
    ]));
    let left: Vec<String> = read_prefix_listing(&prefix)
        .into_iter()
        .filter(|f| !f.starts_with("conda-meta"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

fn read_prefix_listing(prefix: &Path) -> Vec<String> {
    crate::common::list_files(prefix)
}

/// conda's own test packages for link scripts and clobbers (built by
/// conda-build for conda's test suite) behave here as conda's tests expect.
#[test]
#[ignore = "needs the conda datasets: set PKGR_DATASETS (.ci/run does)"]
fn conda_test_recipes_behave_as_in_conda() {
    let datasets = datasets();
    let world = World::new();
    let recipes = "conda-test-recipes/noarch";
    let channel = synthetic_channel(
        &world,
        &datasets,
        "channel",
        None,
        &[
            &format!("{recipes}/clobber-a-1.0-0.conda"),
            &format!("{recipes}/clobber-b-1.0-0.conda"),
            &format!("{recipes}/failing_post_link-1.0-0.conda"),
            &format!("{recipes}/post_link-b-1.0-0.conda"),
            &format!("{recipes}/post_link-c-1.0-0.conda"),
            &format!("{recipes}/post_link_run_in_env_package-1.0-0.conda"),
            "rattler/link-scripts/link-scripts-0.1.0-h4616a5c_0.conda",
        ],
    );
    let channel = channel.to_str().unwrap();

    // Two packages shipping bin/clobber-test-file: a warning naming both and
    // the path; the later one's content is in place; removing either leaves it.
    let prefix = world.env("clobber");
    let p = prefix.to_str().unwrap();
    assert_ok(&world.create(&prefix, channel, &["clobber-a"]));
    let out = world.run(&["install", "-p", p, "clobber-b"]);
    assert_ok(&out);
    let err = stderr(&out);
    assert!(
        err.contains("clobber-a")
            && err.contains("clobber-b")
            && err.contains("bin/clobber-test-file"),
        "{err}"
    );
    let file = prefix.join("bin/clobber-test-file");
    assert_eq!(fs_err::read_to_string(&file).unwrap().trim(), "clobber-b");
    assert_ok(&world.run(&["remove", "-p", p, "clobber-a"]));
    assert_eq!(fs_err::read_to_string(&file).unwrap().trim(), "clobber-b");
    assert_ok(&world.run(&["remove", "-p", p, "clobber-b"]));
    assert!(!file.exists());

    // A post-link script that exits 1 fails the install, shows which script,
    // and leaves no environment.
    let prefix = world.env("failing");
    snapshot_failure!(
        &world,
        "failing_post_link",
        world.create(&prefix, channel, &["failing_post_link"]),
        "[DATASETS]" => datasets,
    );
    assert!(!prefix.exists());

    // post_link-c's script checks (with a top-level `return`, so conda sources
    // it) that its dependency post_link-b's file is already there.
    let prefix = world.env("order");
    assert_ok(&world.create(&prefix, channel, &["post_link-c"]));
    assert!(prefix.join("conda-meta/post_link-c-1.0-0.json").is_file());

    // Post-link scripts run in the activated environment: activate.d scripts
    // (here: the package's own, setting TEST_VAR) are sourced first.
    let prefix = world.env("in-env");
    let out = world.create(&prefix, channel, &["post_link_run_in_env_package"]);
    assert_ok(&out);
    let output = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        output.contains("Success: TEST_VAR is set correctly"),
        "{output}"
    );

    // rattler's link-scripts package: post-link leaves a file and a message;
    // pre-unlink removes that file again on remove.
    let prefix = world.env("scripts");
    let out = world.create(&prefix, channel, &["link-scripts"]);
    assert_ok(&out);
    let output = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        output.contains("This is a post-link script that just ran"),
        "{output}"
    );
    assert!(prefix.join("i-was-post-linked").is_file());
    assert_ok(&world.run(&["remove", "-p", prefix.to_str().unwrap(), "link-scripts"]));
    assert!(!prefix.join("i-was-post-linked").exists());
}

/// Every linux-64 and noarch archive under `packages/synthetic` (built by
/// conda-build, rattler-build and the test suites of conda, mamba, pixi,
/// rattler, quetz; real formats, odd cases on purpose: legacy metadata,
/// sparse and zip64 archives, symlinks, clobbers, link scripts), by the
/// subdir its `info/index.json` names.
fn synthetic_linux_and_noarch(datasets: &Path) -> Vec<(PathBuf, serde_json::Value)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs_err::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                let name = path.file_name().unwrap().to_string_lossy();
                if name.ends_with(".conda") || name.ends_with(".tar.bz2") {
                    out.push(path);
                }
            }
        }
    }
    let mut archives = Vec::new();
    walk(&datasets.join("packages/synthetic"), &mut archives);
    archives.sort();
    archives
        .into_iter()
        .filter_map(|path| {
            let entries = archive_entries(&path);
            let Some(ArchiveEntry::File(index)) = entries.get("info/index.json") else {
                return None; // not a package (conda-index's plain tarballs)
            };
            let index: serde_json::Value = serde_json::from_slice(index).ok()?;
            matches!(index["subdir"].as_str(), Some("linux-64" | "noarch")).then_some((path, index))
        })
        .collect()
}

/// Each such package installs (with its dependencies when the archives
/// beside it in the dataset provide them, else `--no-deps`; with the
/// generated python for noarch: python ones) with every file it lists
/// correct, or is refused with a clear error when its archive lacks files its
/// metadata lists; nothing else happens to any of them.
#[test]
#[ignore = "needs the conda datasets: set PKGR_DATASETS (.ci/run does)"]
fn every_synthetic_linux_and_noarch_package_installs_or_is_clearly_refused() {
    let datasets = datasets();
    let python = machine_python_version();
    let world = World::new();
    let packages = synthetic_linux_and_noarch(&datasets);
    assert!(packages.len() >= 40, "{}", packages.len());
    let (mut installed, mut with_deps, mut refused, mut skipped) = (0, 0, 0, 0);
    for (i, (archive, index)) in packages.iter().enumerate() {
        let name = index["name"].as_str().unwrap();
        let subdir = index["subdir"].as_str().unwrap();
        let noarch_python = index["noarch"] == "python";
        if noarch_python && python.is_none() {
            skipped += 1;
            continue;
        }
        // The channel: this archive and the linux-64/noarch archives beside
        // it (its possible dependencies), plus the generated python.
        let root = world.path().join(format!("channel-{i}"));
        let mut channel = LocalChannel::new(&root);
        let mut available: Vec<String> = Vec::new();
        if let Some(version) = python.as_deref() {
            channel.add(&python_package(version), Format::Conda);
            available.push("python".to_owned());
        }
        channel.write_repodata();
        for (other, other_index) in &packages {
            if other.parent() == archive.parent() {
                let dest = root
                    .join(other_index["subdir"].as_str().unwrap())
                    .join(other.file_name().unwrap());
                fs_err::create_dir_all(dest.parent().unwrap()).unwrap();
                fs_err::copy(other, &dest).unwrap();
                available.push(other_index["name"].as_str().unwrap().to_owned());
            }
        }
        let dest = root.join(subdir).join(archive.file_name().unwrap());
        assert_ok(&world.run(&["index", root.to_str().unwrap()]));
        let deps_available = index["depends"].as_array().is_none_or(|deps| {
            deps.iter().all(|d| {
                let dep = d
                    .as_str()
                    .unwrap()
                    .split([' ', '=', '<', '>'])
                    .next()
                    .unwrap();
                available.iter().any(|a| a == dep)
            })
        });

        let prefix = world.env(&format!("p{i}"));
        let spec = format!(
            "{name}={}={}",
            index["version"].as_str().unwrap(),
            index["build"].as_str().unwrap()
        );
        let mut args = vec![
            "create",
            "--platform",
            "linux-64",
            "-p",
            prefix.to_str().unwrap(),
            "-c",
            root.to_str().unwrap(),
            spec.as_str(),
        ];
        if deps_available {
            with_deps += 1;
        } else {
            args.push("--no-deps");
        }
        if noarch_python {
            // Some (rattler's clobber-pynoarch-*) do not depend on python.
            args.push("python");
        }
        let out = world.run(&args);
        let entries = archive_entries(&dest);
        let what = archive
            .strip_prefix(&datasets)
            .unwrap()
            .display()
            .to_string();
        // What a refusal must say: an incomplete archive names the package;
        // conda's `unsatisfiable` test package (needing `versioned <1.0`, which
        // its channel lacks on purpose) gets the conflict explained; conda's
        // `failing_post_link` (exit 1 on purpose) names the script.
        let refusal: Option<[&str; 2]> = if !is_complete(&entries) {
            Some(["incomplete", name])
        } else if name == "unsatisfiable" {
            Some(["cannot be satisfied", "versioned <1.0"])
        } else if name == "failing_post_link" {
            Some(["post-link", name])
        } else {
            None
        };
        if let Some(expected) = refusal {
            // Without the download lines (they finish in any order);
            // `expected` is what it must say, whatever the package.
            let err = snapshot_messages!(
                &world,
                format!("refused_{}", archive.file_name().unwrap().to_string_lossy()).as_str(),
                out,
                "[DATASETS]" => datasets,
            );
            assert!(expected.iter().all(|e| err.contains(e)), "{what}: {err}");
            assert!(
                !prefix.exists(),
                "{what}: a refused create leaves no environment"
            );
            refused += 1;
            continue;
        }
        assert!(
            out.status.success(),
            "{what}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        if !noarch_python {
            // noarch: python files are relocated; their placement is checked
            // by real_noarch_python_packages_install_like_conda.
            verify_installed(&prefix, &dest);
        }
        // Every record (the package's and its dependencies') lists only
        // what is on disk.
        for record in fs_err::read_dir(prefix.join("conda-meta")).unwrap() {
            let record = record.unwrap().path();
            if record.extension().is_none_or(|e| e != "json") {
                continue;
            }
            for file in read_json(&record)["files"].as_array().unwrap() {
                let file = file.as_str().unwrap();
                assert!(
                    fs_err::symlink_metadata(prefix.join(file)).is_ok(),
                    "{what}: {} lists {file}, which is not there",
                    record.display()
                );
            }
        }
        installed += 1;
    }
    eprintln!(
        "{} synthetic linux-64/noarch packages: {installed} installed and verified ({with_deps} with their dependencies), {refused} refused (incomplete archive, or unsatisfiable / failing its post-link script on purpose), {skipped} skipped (no python3)",
        packages.len()
    );
    assert!(installed >= 30, "{installed}");
}
