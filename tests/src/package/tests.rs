use std::collections::HashMap;

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
