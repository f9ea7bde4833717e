//! The install benchmark's smoke run (`pkgr-bench install --smoke`): a tiny
//! channel through every measurement that needs neither root nor py-rattler
//! (warm and cold create, the cp -al and curl + decompress limits, peak RSS,
//! strace when installed, the real packages when PKGR_DATASETS is set). It
//! asserts that the benchmark ran and printed its table, not any timing.

use std::path::PathBuf;

use pkgr_test_support::bench::install::{run, Options};

#[test]
fn the_install_benchmark_smoke_run_prints_its_table() {
    let mut opts = Options::parse(["--smoke".to_owned()]).unwrap();
    opts.pkgr = PathBuf::from(env!("CARGO_BIN_EXE_pkgr"));
    assert_eq!(opts.runs, 2);
    let mut out = Vec::new();
    let rows = run(&opts, &mut out);
    let text = String::from_utf8(out).unwrap();
    let table = &text[text.rfind("\nscenario").expect("no table") + 1..];
    for row in ["smoke: warm create", "smoke: cold create"] {
        let line = table
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no {row} row in\n{text}"));
        assert!(line.contains('s') && line.contains(" MB"), "{line}");
    }
    let warm = &rows[0];
    assert!(warm.pkgr.is_some() && warm.peer.is_some(), "{warm:?}");
    assert!(text.contains("environment: 7 packages"), "{text}");
    assert!(
        table.contains("vs py-rattler") && table.contains("XFS"),
        "{table}"
    );
}
