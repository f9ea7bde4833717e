use rattler_conda_types::package::FileMode;
use rattler_conda_types::prefix_record::{
    PathType as PrefixPathType, PathsEntry as PrefixPathsEntry,
};
use sha2::{Digest, Sha256};

use super::*;

const PLACEHOLDER: &str = "/opt/anaconda1anaconda2anaconda3";

fn record(name: &str) -> RepoDataRecord {
    crate::test_record(name)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes `info/index.json` and `info/paths.json` (version 1) with `paths`.
fn write_info(dir: &Path, paths: &[serde_json::Value]) {
    fs_err::create_dir_all(dir.join("info")).unwrap();
    let index = serde_json::json!({
        "name": "foo", "version": "1.0", "build": "0", "build_number": 0, "subdir": "linux-64"
    });
    fs_err::write(dir.join("info/index.json"), index.to_string()).unwrap();
    let paths = serde_json::json!({"paths_version": 1, "paths": paths});
    fs_err::write(dir.join("info/paths.json"), paths.to_string()).unwrap();
}

fn write_file(dir: &Path, path: &str, contents: &[u8]) {
    let full = dir.join(path);
    fs_err::create_dir_all(full.parent().unwrap()).unwrap();
    fs_err::write(full, contents).unwrap();
}

/// A package with a plain file, a text file with the prefix placeholder,
/// a `no_link` file and a symlink.
fn good_package(dir: &Path) {
    let tool = b"plain tool\n";
    let config = format!("prefix={PLACEHOLDER}\nlib={PLACEHOLDER}/lib\n");
    let pinned = b"never hardlinked\n";
    write_file(dir, "bin/tool", tool);
    write_file(dir, "etc/foo.conf", config.as_bytes());
    write_file(dir, "share/pinned.txt", pinned);
    #[cfg(unix)]
    fs_err::os::unix::fs::symlink("../bin/tool", dir.join("share/tool-link")).unwrap();
    let mut paths = vec![
        serde_json::json!({
            "_path": "bin/tool", "path_type": "hardlink",
            "sha256": sha256_hex(tool), "size_in_bytes": tool.len(),
        }),
        serde_json::json!({
            "_path": "etc/foo.conf", "path_type": "hardlink",
            "prefix_placeholder": PLACEHOLDER, "file_mode": "text",
            "sha256": sha256_hex(config.as_bytes()), "size_in_bytes": config.len(),
        }),
        serde_json::json!({
            "_path": "share/pinned.txt", "path_type": "hardlink", "no_link": true,
            "sha256": sha256_hex(pinned), "size_in_bytes": pinned.len(),
        }),
    ];
    if cfg!(unix) {
        paths.push(serde_json::json!({"_path": "share/tool-link", "path_type": "softlink"}));
    }
    write_info(dir, &paths);
}

/// `PackagePlan::new` on a package with `paths`, which must fail.
fn rejected(dir: &Path, paths: &[serde_json::Value]) -> PrefixError {
    write_info(dir, paths);
    PackagePlan::new(dir, &record("foo"), None, None).expect_err("accepted a bad package")
}

/// Checks `err` is an `UnsafePath` naming the package and `path`, in the
/// message as well.
fn assert_unsafe(err: &PrefixError, path: &str) {
    assert!(
        matches!(err, PrefixError::UnsafePath { package, path: p, .. }
            if package == "foo-1.0-0.conda" && p == path),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("foo-1.0-0.conda"), "{message}");
    assert!(message.contains(path), "{message}");
}

fn entry<'a>(record: &'a PrefixRecord, path: &str) -> &'a PrefixPathsEntry {
    record
        .paths_data
        .paths
        .iter()
        .find(|e| e.relative_path == Path::new(path))
        .unwrap()
}

#[cfg(unix)]
fn inode(path: &Path) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&fs_err::metadata(path).unwrap())
}

fn link_type_json(record: &PrefixRecord) -> serde_json::Value {
    serde_json::to_value(record).unwrap()["link"]["type"].clone()
}

#[test]
fn rejects_a_parent_dir_path() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "lib/x", b"x");
    let err = rejected(
        dir.path(),
        &[serde_json::json!({"_path": "lib/../../evil", "path_type": "hardlink"})],
    );
    assert_unsafe(&err, "lib/../../evil");
}

#[test]
fn rejects_an_absolute_path() {
    let dir = tempfile::tempdir().unwrap();
    let err = rejected(
        dir.path(),
        &[serde_json::json!({"_path": "/etc/evil", "path_type": "hardlink"})],
    );
    assert_unsafe(&err, "/etc/evil");
}

#[cfg(unix)]
#[test]
fn rejects_a_symlink_pointing_out_of_the_prefix() {
    for target in ["../../outside", "/etc/passwd"] {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(dir.path().join("lib")).unwrap();
        fs_err::os::unix::fs::symlink(target, dir.path().join("lib/evil")).unwrap();
        let err = rejected(
            dir.path(),
            &[serde_json::json!({"_path": "lib/evil", "path_type": "softlink"})],
        );
        assert_unsafe(&err, target);
    }
}

#[test]
fn rejects_a_listed_file_missing_from_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let err = rejected(
        dir.path(),
        &[serde_json::json!({"_path": "bin/missing", "path_type": "hardlink"})],
    );
    assert!(
        matches!(&err, PrefixError::Incomplete { package, dir: entry, path }
            if package == "foo-1.0-0.conda" && path == "bin/missing" && entry == dir.path()),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("the cache entry of foo-1.0-0.conda at")
            && message.contains("is incomplete: it lacks `bin/missing`")
            && message.contains("pkgr cache verify --repair"),
        "{message}"
    );
}

#[test]
fn a_noarch_python_package_needs_python() {
    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "site-packages/foo.py", b"x = 1\n");
    write_info(
        dir.path(),
        &[serde_json::json!({"_path": "site-packages/foo.py", "path_type": "hardlink"})],
    );
    let err = PackagePlan::new(dir.path(), &noarch_python_record(), None, None).unwrap_err();
    assert!(matches!(&err, PrefixError::NoPython { .. }), "{err:?}");
}

#[cfg(unix)]
#[test]
fn links_a_good_package() {
    let root = tempfile::tempdir().unwrap();
    let package_dir = root.path().join("pkgs/foo-1.0-0");
    good_package(&package_dir);
    let prefix = root.path().join("env");
    let plan = PackagePlan::new(
        &package_dir,
        &record("foo"),
        Some("foo >=1".to_owned()),
        None,
    )
    .unwrap();
    let linked = plan.link(&prefix, LinkMode::Auto).unwrap();
    let record = &linked.record;

    // The plain file is a hardlink of the cache's.
    assert_eq!(
        inode(&prefix.join("bin/tool")),
        inode(&package_dir.join("bin/tool"))
    );
    let tool = entry(record, "bin/tool");
    assert_eq!(tool.path_type, PrefixPathType::HardLink);
    assert_eq!(tool.sha256_in_prefix, Some(Sha256::digest(b"plain tool\n")));
    assert_eq!(tool.size_in_bytes, Some(11));

    // The placeholder is replaced, in a file of its own.
    let written = fs_err::read_to_string(prefix.join("etc/foo.conf")).unwrap();
    let prefix_text = prefix.to_string_lossy();
    assert_eq!(
        written,
        format!("prefix={prefix_text}\nlib={prefix_text}/lib\n")
    );
    assert_ne!(
        inode(&prefix.join("etc/foo.conf")),
        inode(&package_dir.join("etc/foo.conf"))
    );
    let config = entry(record, "etc/foo.conf");
    assert_eq!(
        config.sha256_in_prefix,
        Some(Sha256::digest(written.as_bytes()))
    );
    assert_ne!(config.sha256, config.sha256_in_prefix);
    assert_eq!(config.prefix_placeholder.as_deref(), Some(PLACEHOLDER));
    assert_eq!(config.file_mode, Some(FileMode::Text));

    // `no_link` is a copy even when hardlinks work.
    assert_ne!(
        inode(&prefix.join("share/pinned.txt")),
        inode(&package_dir.join("share/pinned.txt"))
    );
    assert_eq!(
        fs_err::read(prefix.join("share/pinned.txt")).unwrap(),
        b"never hardlinked\n"
    );
    assert!(entry(record, "share/pinned.txt").no_link);

    // The symlink is a symlink, with its target as packaged.
    assert_eq!(
        fs_err::read_link(prefix.join("share/tool-link")).unwrap(),
        Path::new("../bin/tool")
    );
    let link = entry(record, "share/tool-link");
    assert_eq!(link.path_type, PrefixPathType::SoftLink);
    assert_eq!(link.sha256_in_prefix, None);

    // A copy among the files: conda's link type 3.
    assert_eq!(link_type_json(record), 3);
    assert_eq!(record.files.len(), 4);
    assert_eq!(record.requested_specs, ["foo >=1"]);
    assert_eq!(record.extracted_package_dir.as_deref(), Some(&*package_dir));
    assert!(linked.warnings.is_empty());
}

#[cfg(unix)]
#[test]
fn all_hardlinked_is_link_type_1() {
    let root = tempfile::tempdir().unwrap();
    let package_dir = root.path().join("pkgs/foo-1.0-0");
    write_file(&package_dir, "bin/a", b"a");
    write_file(&package_dir, "lib/b", b"bb");
    write_file(&package_dir, "etc/c", format!("{PLACEHOLDER}\n").as_bytes());
    write_info(
        &package_dir,
        &[
            serde_json::json!({"_path": "bin/a", "path_type": "hardlink"}),
            serde_json::json!({"_path": "lib/b", "path_type": "hardlink"}),
            // Placeholder files are always written anew; they do not
            // make the package a copy.
            serde_json::json!({
                "_path": "etc/c", "path_type": "hardlink",
                "prefix_placeholder": PLACEHOLDER, "file_mode": "text",
            }),
        ],
    );
    let prefix = root.path().join("env");
    let plan = PackagePlan::new(&package_dir, &record("foo"), None, None).unwrap();
    let linked = plan.link(&prefix, LinkMode::Auto).unwrap();
    assert_eq!(
        inode(&prefix.join("lib/b")),
        inode(&package_dir.join("lib/b"))
    );
    assert_eq!(link_type_json(&linked.record), 1);
    // Legacy entries without hashes get them from the linked file.
    let b = entry(&linked.record, "lib/b");
    assert_eq!(b.sha256_in_prefix, Some(Sha256::digest(b"bb")));
    assert_eq!(b.size_in_bytes, Some(2));
    assert_eq!(b.sha256, b.sha256_in_prefix);
}

#[cfg(unix)]
#[test]
fn copy_mode_shares_nothing_with_the_cache() {
    let root = tempfile::tempdir().unwrap();
    let package_dir = root.path().join("pkgs/foo-1.0-0");
    good_package(&package_dir);
    let prefix = root.path().join("env");
    let plan = PackagePlan::new(&package_dir, &record("foo"), None, None).unwrap();
    let linked = plan.link(&prefix, LinkMode::Copy).unwrap();
    assert_ne!(
        inode(&prefix.join("bin/tool")),
        inode(&package_dir.join("bin/tool"))
    );
    assert_eq!(
        fs_err::read(prefix.join("bin/tool")).unwrap(),
        b"plain tool\n"
    );
    assert_eq!(link_type_json(&linked.record), 3);
    // Writing through the prefix file leaves the cache intact.
    fs_err::write(prefix.join("bin/tool"), b"changed").unwrap();
    assert_eq!(
        fs_err::read(package_dir.join("bin/tool")).unwrap(),
        b"plain tool\n"
    );
}

#[cfg(unix)]
#[test]
fn linking_again_replaces_existing_files() {
    let root = tempfile::tempdir().unwrap();
    let package_dir = root.path().join("pkgs/foo-1.0-0");
    good_package(&package_dir);
    let prefix = root.path().join("env");
    write_file(&prefix, "bin/tool", b"another package's tool");
    // A file hardlinked to the cache (as an earlier link left it): the
    // placeholder replacement must not write through it into the cache.
    fs_err::create_dir_all(prefix.join("etc")).unwrap();
    fs_err::hard_link(
        package_dir.join("etc/foo.conf"),
        prefix.join("etc/foo.conf"),
    )
    .unwrap();
    let plan = PackagePlan::new(&package_dir, &record("foo"), None, None).unwrap();
    plan.link(&prefix, LinkMode::Auto).unwrap();
    plan.link(&prefix, LinkMode::Auto).unwrap();
    assert_eq!(
        fs_err::read(prefix.join("bin/tool")).unwrap(),
        b"plain tool\n"
    );
    let cached = fs_err::read_to_string(package_dir.join("etc/foo.conf")).unwrap();
    assert!(cached.contains(PLACEHOLDER), "{cached}");
    let written = fs_err::read_to_string(prefix.join("etc/foo.conf")).unwrap();
    assert!(!written.contains(PLACEHOLDER), "{written}");
}

fn python_312() -> PythonInfo {
    PythonInfo {
        version: (3, 12),
        site_packages: PathBuf::from("lib/python3.12/site-packages"),
        executable: PathBuf::from("bin/python3.12"),
    }
}

/// A noarch python package `foo` with one module and entry point `foo`.
fn write_noarch_python_package(package_dir: &Path) {
    write_file(package_dir, "site-packages/foo/__init__.py", b"x = 1\n");
    write_info(
        package_dir,
        &[serde_json::json!({"_path": "site-packages/foo/__init__.py", "path_type": "hardlink"})],
    );
    let link = serde_json::json!({
        "noarch": {"type": "python", "entry_points": ["foo = foo:main"]},
        "package_metadata_version": 1
    });
    fs_err::write(package_dir.join("info/link.json"), link.to_string()).unwrap();
}

#[test]
fn a_missing_interpreter_is_a_warning_naming_package_and_path() {
    let root = tempfile::tempdir().unwrap();
    let package_dir = root.path().join("pkgs/foo-1.0-0");
    write_noarch_python_package(&package_dir);
    let plan = PackagePlan::new(
        &package_dir,
        &noarch_python_record(),
        None,
        Some(&python_312()),
    )
    .unwrap();
    let prefix = root.path().join("env");
    let linked = plan.link(&prefix, LinkMode::Auto).unwrap();
    let interpreter = prefix.join("bin/python3.12");
    assert_eq!(
        linked.warnings,
        [format!(
            "foo-1.0-0.conda: the environment's python has no interpreter at {}: its entry \
             points (foo) will not run and its modules were not byte-compiled (the python \
             package should provide it)",
            interpreter.display()
        )]
    );
    // As conda, the entry point is written anyway, for the interpreter
    // conda would use.
    let script = fs_err::read_to_string(prefix.join("bin/foo")).unwrap();
    assert!(
        script.starts_with(&format!("#!{}\n", interpreter.display())),
        "{script}"
    );
}

#[cfg(unix)]
#[test]
fn an_interpreter_that_compiles_nothing_is_a_warning() {
    let root = tempfile::tempdir().unwrap();
    let package_dir = root.path().join("pkgs/foo-1.0-0");
    write_noarch_python_package(&package_dir);
    let prefix = root.path().join("env");
    let interpreter = prefix.join("bin/python3.12");
    fs_err::create_dir_all(interpreter.parent().unwrap()).unwrap();
    fs_err::write(&interpreter, "#!/bin/sh\nexit 1\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        fs_err::set_permissions(&interpreter, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let plan = PackagePlan::new(
        &package_dir,
        &noarch_python_record(),
        None,
        Some(&python_312()),
    )
    .unwrap();
    let linked = plan.link(&prefix, LinkMode::Auto).unwrap();
    assert_eq!(linked.warnings.len(), 1, "{:?}", linked.warnings);
    let warning = &linked.warnings[0];
    assert!(
        warning.starts_with(&format!(
            "foo-1.0-0.conda: {} byte-compiled none of its .py files (exit status: 1)",
            interpreter.display()
        )),
        "{warning}"
    );
}

fn noarch_python_record() -> RepoDataRecord {
    let mut record = record("foo");
    record.package_record.noarch = serde_json::from_value(serde_json::json!("python")).unwrap();
    record
}

#[test]
fn noarch_python_files_are_relocated() {
    let root = tempfile::tempdir().unwrap();
    let package_dir = root.path().join("pkgs/foo-1.0-0");
    write_file(&package_dir, "site-packages/foo/__init__.py", b"x = 1\n");
    write_file(&package_dir, "python-scripts/foo-tool", b"tool\n");
    write_info(
        &package_dir,
        &[
            serde_json::json!({"_path": "site-packages/foo/__init__.py", "path_type": "hardlink"}),
            serde_json::json!({"_path": "python-scripts/foo-tool", "path_type": "hardlink"}),
        ],
    );
    let python = python_312();
    let plan =
        PackagePlan::new(&package_dir, &noarch_python_record(), None, Some(&python)).unwrap();
    assert_eq!(
        plan.target_paths(),
        [
            "lib/python3.12/site-packages/foo/__init__.py",
            "bin/foo-tool",
            "lib/python3.12/site-packages/foo/__pycache__/__init__.cpython-312.pyc",
        ]
        .map(PathBuf::from)
    );
    let prefix = root.path().join("env");
    let linked = plan.link(&prefix, LinkMode::Auto).unwrap();
    assert!(prefix
        .join("lib/python3.12/site-packages/foo/__init__.py")
        .is_file());
    assert!(prefix.join("bin/foo-tool").is_file());
    assert!(!prefix.join("site-packages").exists());
    assert_eq!(
        linked.record.files,
        [
            "lib/python3.12/site-packages/foo/__init__.py",
            "bin/foo-tool"
        ]
        .map(PathBuf::from)
    );
}

#[test]
fn noarch_python_errors_name_the_packaged_path() {
    let dir = tempfile::tempdir().unwrap();
    write_info(
        dir.path(),
        &[serde_json::json!({"_path": "site-packages/../../../evil", "path_type": "hardlink"})],
    );
    let err = PackagePlan::new(
        dir.path(),
        &noarch_python_record(),
        None,
        Some(&python_312()),
    )
    .unwrap_err();
    assert_unsafe(&err, "site-packages/../../../evil");
}

/// Relocation makes `site-packages/` deeper: a symlink is checked where
/// it lands, not where the archive has it.
#[cfg(unix)]
#[test]
fn noarch_python_symlinks_are_checked_where_they_land() {
    let python = python_312();
    let dir = tempfile::tempdir().unwrap();
    fs_err::create_dir_all(dir.path().join("site-packages")).unwrap();
    fs_err::os::unix::fs::symlink("../../../share/x", dir.path().join("site-packages/ok")).unwrap();
    fs_err::os::unix::fs::symlink("../../../../x", dir.path().join("site-packages/evil")).unwrap();
    write_info(
        dir.path(),
        &[serde_json::json!({"_path": "site-packages/ok", "path_type": "softlink"})],
    );
    PackagePlan::new(dir.path(), &noarch_python_record(), None, Some(&python)).unwrap();
    write_info(
        dir.path(),
        &[serde_json::json!({"_path": "site-packages/evil", "path_type": "softlink"})],
    );
    let err =
        PackagePlan::new(dir.path(), &noarch_python_record(), None, Some(&python)).unwrap_err();
    assert_unsafe(&err, "../../../../x");
}

/// Packages that arrive one by one (linked as they are fetched): a
/// package checked through a link of the environment (`m`, harmless
/// alone) is linked before the one that completes the chain (`l`)
/// arrives; that one must be refused, since the first one's files would
/// (or did) go through it.
#[cfg(unix)]
#[test]
fn a_package_completing_a_chain_after_others_were_admitted_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let prefix = root.path().join("env");
    fs_err::create_dir_all(prefix.join("a/b")).unwrap();
    fs_err::os::unix::fs::symlink("l/..", prefix.join("a/b/m")).unwrap();

    let writer = root.path().join("pkgs/writer");
    write_file(&writer, "a/b/m/x/file", b"pwned");
    write_info(
        &writer,
        &[serde_json::json!({"_path": "a/b/m/x/file", "path_type": "hardlink"})],
    );
    let el = root.path().join("pkgs/el");
    fs_err::create_dir_all(el.join("a/b")).unwrap();
    fs_err::os::unix::fs::symlink("../..", el.join("a/b/l")).unwrap();
    write_info(
        &el,
        &[serde_json::json!({"_path": "a/b/l", "path_type": "softlink"})],
    );
    let writer = PackagePlan::new(&writer, &record("writer"), None, None).unwrap();
    let el = PackagePlan::new(&el, &record("el"), None, None).unwrap();

    let mut guard = LinkGuard::new(&prefix);
    guard.admit(&writer).unwrap();
    let err = guard.admit(&el).unwrap_err();
    assert!(
        matches!(&err, PrefixError::EscapingChain { path, .. } if path == "a/b/m/x"),
        "{err:?}"
    );
    // Known at once (as `Transaction::execute` checks), either is refused.
    let mut guard = LinkGuard::new(&prefix);
    guard.declare(&writer);
    guard.declare(&el);
    assert!(matches!(
        guard.check(&writer),
        Err(PrefixError::UnsafePath { .. })
    ));
}
