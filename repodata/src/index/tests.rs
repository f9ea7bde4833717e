use super::*;

const REPODATA: &str = r#"{
  "info": {"subdir": "linux-64", "base_url": "../pkgs"},
  "packages": {
    "a-1.0-0.tar.bz2": {"name": "a", "version": "1.0"},
    "a-2.0-0.tar.bz2": {"name": "a", "version": "2.0"},
    "b\u002dc-1.0-0.tar.bz2": {"name": "b-c", "version": "1.0"},
    "z-1.0-0.tar.bz2": {"name": "z", "version": "1.0"}
  },
  "packages.conda": {
    "a-2.0-0.conda": {"name": "a", "version": "2.0"}
  }
}"#;

#[test]
fn spans_hold_exactly_the_records_of_a_name() {
    let index = RepodataIndex::build(REPODATA.as_bytes()).unwrap();
    assert_eq!(index.base_url.as_deref(), Some("../pkgs"));
    let spans = &index.names["a"];
    assert_eq!(spans.len(), 2, "one run per section");
    let text =
        |span: &Range<u64>| format!("{{{}}}", &REPODATA[span.start as usize..span.end as usize]);
    let first: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text(&spans[0])).unwrap();
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        ["a-1.0-0.tar.bz2", "a-2.0-0.tar.bz2"]
    );
    // An escaped key is found too.
    let bc: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text(&index.names["b-c"][0])).unwrap();
    assert_eq!(bc.keys().collect::<Vec<_>>(), ["b-c-1.0-0.tar.bz2"]);

    let mut written = Vec::new();
    index.write_to(&mut written, 1234, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.index");
    fs_err::write(&path, &written).unwrap();
    assert_eq!(RepodataIndex::read(&path, 1234, None), Some(index));
    assert_eq!(RepodataIndex::read(&path, 1235, None), None, "another file");
    assert_eq!(
        RepodataIndex::read(&path, 1234, Some(7)),
        None,
        "another version"
    );
}

#[test]
fn names_that_are_not_package_names_are_left_out_of_the_index() {
    let text = r#"{"packages": {
            "a-1-0.tar.bz2": {"name": "a"},
            "../../x-1-0.tar.bz2": {"name": "../../x"},
            "y z\n5 0 1-1-0.tar.bz2": {"name": "y"}
        }}"#;
    let index = RepodataIndex::build(text.as_bytes()).unwrap();
    let names: Vec<&str> = index.names.keys().map(AsRef::as_ref).collect();
    assert_eq!(names, ["a"]);
}

#[test]
fn broken_repodata_is_refused() {
    for (text, problem) in [
        ("", "empty"),
        ("<html>oops</html>", "not valid"),
        (&REPODATA[..REPODATA.len() / 2], "not valid"),
        (
            r#"{"packages": {"notapackage": {}}}"#,
            "not a package file name",
        ),
    ] {
        let err = RepodataIndex::build(text.as_bytes()).unwrap_err();
        assert!(err.contains(problem), "{err}");
    }
}
