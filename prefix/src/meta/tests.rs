use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rattler_conda_types::PrefixRecord;

use super::history::parse_spec_list;
use super::records::record_value;
use super::*;
use crate::test_record;

/// A record with files, as linking makes them.
fn record_with_files(paths: &[&str]) -> PrefixRecord {
    use rattler_conda_types::prefix_record::{PathType, PathsEntry};
    let entries = paths
        .iter()
        .map(|p| PathsEntry {
            relative_path: PathBuf::from(p),
            original_path: None,
            path_type: PathType::HardLink,
            no_link: false,
            sha256: None,
            sha256_in_prefix: None,
            size_in_bytes: Some(3),
            file_mode: None,
            prefix_placeholder: Some(String::from("/opt/placeholder_\"quoted\"\nline")),
        })
        .collect();
    PrefixRecord::from_repodata_record(test_record("foo"), entries)
}

#[test]
fn records_write_their_files_straight_and_read_back_the_same() {
    let mut record = record_with_files(&["bin/foo", "lib/a b.so", "share/\u{e9}t\u{e9}"]);
    let fast = prefix_record_json(Path::new("/p"), &mut record).unwrap();
    let slow = serde_json::to_vec_pretty(&record_value(&record).unwrap()).unwrap();
    // The same JSON, laid out as conda does (two-space indents).
    let as_value = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).unwrap();
    assert_eq!(as_value(&fast), as_value(&slow));
    let text = String::from_utf8(fast.clone()).unwrap();
    assert!(
        text.contains("\n  \"files\": [\n    \"bin/foo\",\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "\n  \"paths_data\": {\n    \"paths_version\": 1,\n    \"paths\": [\n      {\n        \"_path\": \"bin/foo\""
        ),
        "{text}"
    );
    assert!(text.contains("\"depends\": []") && text.contains("\"constrains\": []"));
    assert_eq!(record.files.len(), 3, "the record is given back whole");
    let back: PrefixRecord = serde_json::from_slice(&fast).unwrap();
    assert_eq!(back, record);
}

#[test]
fn a_url_among_the_files_takes_the_way_that_strips_credentials() {
    let mut record = record_with_files(&["share/x"]);
    record.paths_data.paths[0].prefix_placeholder =
        Some(String::from("https://me:secret@example.com/t/tok123/x"));
    let json =
        String::from_utf8(prefix_record_json(Path::new("/p"), &mut record).unwrap()).unwrap();
    assert!(
        !json.contains("secret") && !json.contains("tok123"),
        "{json}"
    );
    assert!(json.contains("https://example.com/t/<TOKEN>/x"), "{json}");
}

#[test]
fn records_and_history_keep_no_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let mut record = test_record("foo");
    record.url = "https://me:secret@example.com/t/tok123/chan/linux-64/foo-1.0-0.conda"
        .parse()
        .unwrap();
    record.channel = Some(String::from(
        "https://me:********@example.com/t/********/chan/",
    ));
    let mut prefix_record = PrefixRecord::from_repodata_record(record.clone(), Vec::new());
    prefix_record.requested_specs = vec![String::from(
        "https://me:secret@example.com/t/tok123/chan::foo",
    )];
    write_prefix_record(dir.path(), &prefix_record).unwrap();
    let written = fs_err::read_to_string(dir.path().join("conda-meta/foo-1.0-0.json")).unwrap();
    assert!(
        !written.contains("secret") && !written.contains("tok123") && !written.contains("me:"),
        "{written}"
    );
    let value: serde_json::Value = serde_json::from_str(&written).unwrap();
    assert_eq!(
        value["url"],
        "https://example.com/t/<TOKEN>/chan/linux-64/foo-1.0-0.conda"
    );
    assert_eq!(value["channel"], "https://example.com/t/<TOKEN>/chan/");
    assert_eq!(
        value["requested_specs"][0],
        "https://example.com/t/<TOKEN>/chan::foo"
    );
    // It reads back, with the placeholder where the token was.
    let back = read_prefix_records(dir.path()).unwrap();
    assert_eq!(back.len(), 1);
    assert!(pkgr_redact::url_has_token_placeholder(
        &back[0].repodata_record.url
    ));

    append_history(
        dir.path(),
        "pkgr create -p /e -c https://me:secret@example.com/t/tok123/chan --channel=https://me:secret@example.com/x foo",
        &[record],
        &[],
        "update",
        &[String::from("https://me:secret@example.com/t/tok123/chan::foo")],
        "2024-01-01 00:00:00",
    )
    .unwrap();
    let history = fs_err::read_to_string(dir.path().join("conda-meta/history")).unwrap();
    assert_eq!(
        history,
        format!(
            "==> 2024-01-01 00:00:00 <==\n\
             # cmd: pkgr create -p /e -c https://example.com/t/<TOKEN>/chan --channel=https://example.com/x foo\n\
             # pkgr version: {}\n\
             +https://example.com/t/<TOKEN>/chan/linux-64::foo-1.0-0\n\
             # update specs: ['https://example.com/t/<TOKEN>/chan::foo']\n",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn history_spec_lists_are_read_as_conda_writes_them() {
    assert_eq!(
        parse_spec_list("['python=3.11', 'numpy >=1.26,<2']"),
        ["python=3.11", "numpy >=1.26,<2"]
    );
    assert!(parse_spec_list("[]").is_empty());
}

#[test]
fn requested_specs_follow_updates_and_removes() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    fs_err::create_dir_all(dir.path().join("conda-meta")).unwrap_or_else(|e| panic!("{e}"));
    fs_err::write(
        dir.path().join("conda-meta").join("history"),
        "==> 2024 <==\n# update specs: ['python=3.11', 'zlib']\n==> 2024 <==\n# update specs: ['python=3.12']\n# remove specs: ['zlib']\n==> 2024 <==\n# update specs: ['xz']\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        read_requested_specs(dir.path()).unwrap_or_else(|e| panic!("{e}")),
        ["python=3.12", "xz"]
    );
}

#[test]
fn without_history_state_or_pins_there_is_nothing() {
    let dir = tempfile::tempdir().unwrap();
    assert!(read_requested_specs(dir.path()).unwrap().is_empty());
    assert!(read_state_variables(dir.path()).unwrap().is_empty());
    assert!(read_pinned_specs(dir.path()).unwrap().is_empty());
}

#[test]
fn a_spec_names_its_package_as_conda_reads_it() {
    for spec in [
        "numpy",
        "numpy >=1.26,<2",
        "numpy=1.26=py312_0",
        "numpy[version='>=1.26']",
        "conda-forge::numpy",
        "NumPy 1.26",
    ] {
        assert_eq!(spec_package_name(spec).as_deref(), Some("numpy"), "{spec}");
    }
    assert_eq!(spec_package_name("*"), None);
    assert_eq!(spec_package_name("num*"), None);
}

#[test]
fn state_variables_are_written_and_read_back_in_condas_form() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::create_dir_all(dir.path().join("conda-meta")).unwrap();
    let variables = BTreeMap::from([
        (String::from("MY_VAR"), String::from("a b")),
        (String::from("_other1"), String::from("")),
    ]);
    write_state_variables(dir.path(), &variables).unwrap();
    let written = fs_err::read_to_string(dir.path().join("conda-meta/state")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&written).unwrap();
    assert_eq!(
        value,
        serde_json::json!({"env_vars": {"MY_VAR": "a b", "_other1": ""}})
    );
    assert_eq!(read_state_variables(dir.path()).unwrap(), variables);
}

#[test]
fn state_refuses_a_name_that_is_not_a_variable_and_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("conda-meta").join("state");
    fs_err::create_dir_all(path.parent().unwrap()).unwrap();
    fs_err::write(&path, r#"{"env_vars": {"OK": 1, "rm -rf": "x"}}"#).unwrap();
    let err = read_state_variables(dir.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} sets `rm -rf`, which is not a variable name (letters, digits and _, not starting with a digit)",
            path.display()
        )
    );
    fs_err::write(&path, "not json").unwrap();
    let err = read_state_variables(dir.path()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{} is not valid JSON", path.display())
    );
    assert!(std::error::Error::source(&err).is_some());
    fs_err::write(&path, r#"{"env_vars": {"N": 1, "S": "s"}}"#).unwrap();
    assert_eq!(
        read_state_variables(dir.path()).unwrap(),
        BTreeMap::from([
            (String::from("N"), String::from("1")),
            (String::from("S"), String::from("s")),
        ])
    );
    assert!(is_variable_name("_a1") && !is_variable_name("1a") && !is_variable_name(""));
}

#[test]
fn pins_are_one_spec_a_line_without_comments_or_blank_lines() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::create_dir_all(dir.path().join("conda-meta")).unwrap();
    fs_err::write(
        dir.path().join("conda-meta/pinned"),
        "# pins\nnumpy 1.26.*\n\n  python=3.12  # the python\n",
    )
    .unwrap();
    assert_eq!(
        read_pinned_specs(dir.path()).unwrap(),
        ["numpy 1.26.*", "python=3.12"]
    );
}
