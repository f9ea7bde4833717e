use std::path::Path;
use std::time::Duration;

use super::content::Gen;
use super::scenario::{lower_bound, version_string};
use super::strace::parse_strace;
use super::*;
use crate::bench::Rng;

#[test]
fn lower_bounds_of_constraints() {
    assert_eq!(
        lower_bound(">=3.10,<3.11.0a0")
            .map(version_string)
            .as_deref(),
        Some("3.10.0")
    );
    assert_eq!(
        lower_bound(">=1.14.0").map(version_string).as_deref(),
        Some("1.14.0")
    );
    assert_eq!(
        lower_bound("2.1.*").map(version_string).as_deref(),
        Some("2.1.0")
    );
    assert_eq!(lower_bound("<2"), None);
    assert!(lower_bound(">=7.5.0") > lower_bound(">=7.3.0"));
}

#[test]
fn strace_logs_split_pkgr_from_its_children() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(
        dir.path().join("t.1"),
        "execve(\"/x/pkgr\", [\"pkgr\"], 0x0 /* 3 vars */) = 0\nstatx(AT_FDCWD, \"/a\", 0) = 0\n\
         mkdir(\"/a\", 0777) = -1 EEXIST (File exists)\n+++ exited with 0 +++\n",
    )
    .unwrap();
    fs_err::write(
        dir.path().join("t.2"),
        "linkat(3, \"a\", 4, \"b\", 0) = 0\n",
    )
    .unwrap();
    fs_err::write(
        dir.path().join("t.3"),
        "execve(\"/env/bin/python3.11\", [\"python\"], 0x0) = 0\nopenat(AT_FDCWD, \"x\", O_RDONLY) = 3\n",
    )
    .unwrap();
    let calls = parse_strace(dir.path(), Path::new("/x/pkgr"));
    assert_eq!(calls.total(), 4);
    assert_eq!(calls.group(&["mkdir"]), (1, 1));
    assert_eq!(calls.threads, 2);
    assert_eq!((calls.children, calls.children_processes), (2, 1));
}

#[test]
fn generated_content_compresses_like_the_real_thing() {
    let mut gen = Gen { rng: Rng::new(1) };
    let ratio = |bytes: Vec<u8>| {
        bytes.len() as f64 / zstd::encode_all(bytes.as_slice(), 3).unwrap().len() as f64
    };
    let py = ratio(gen.py_source(200_000));
    let so = ratio(gen.binary(400_000));
    let data = ratio(gen.data(200_000));
    assert!((2.5..12.0).contains(&py), "python source {py}");
    assert!((1.6..5.0).contains(&so), "binaries {so}");
    assert!((1.0..1.6).contains(&data), "data {data}");
}

#[test]
fn generated_python_is_valid_python() {
    let dir = tempfile::tempdir().unwrap();
    let mut gen = Gen { rng: Rng::new(3) };
    let files: Vec<PathBuf> = (0..200)
        .map(|i| {
            let path = dir.path().join(format!("m{i}.py"));
            fs_err::write(&path, gen.py_source(100 + i * 100)).unwrap();
            path
        })
        .collect();
    let status = Command::new("python3")
        .args([
            "-c",
            "import sys\nfor f in sys.argv[1:]: compile(open(f).read(), f, \"exec\")",
        ])
        .args(&files)
        .status();
    match status {
        Ok(status) => assert!(status.success()),
        Err(e) => eprintln!("skipped: no python3 ({e})"),
    }
}

#[test]
fn the_table_has_a_row_per_measurement() {
    let rows = [Row {
        scenario: String::from("x: warm create"),
        pkgr: Some(Duration::from_millis(300)),
        peer_name: String::from("cp -al"),
        peer: Some(Duration::from_millis(100)),
        rss_kib: Some(20_000),
        syscalls_per_file: Some(2.5),
    }];
    let text = table(&rows);
    assert!(text.starts_with("scenario"), "{text}");
    assert!(
        text.contains("x: warm create  0.300s  cp -al")
            && text.contains("3.00x")
            && text.contains("2.50"),
        "{text}"
    );
}
