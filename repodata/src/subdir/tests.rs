use std::path::PathBuf;

use pkgr_solver::{solve, SolveOptions};
use rattler_conda_types::{MatchSpec, Subdir};

use super::*;
use crate::channel_names::{channel_as_recorded, channel_as_shown};

#[test]
fn base_urls() {
    let subdir = Url::parse("https://example.com/chan/linux-64").unwrap();
    assert_eq!(
        package_base(&subdir, None).unwrap().as_str(),
        "https://example.com/chan/linux-64/"
    );
    assert_eq!(
        package_base(&subdir, Some("../pkgs")).unwrap().as_str(),
        "https://example.com/chan/pkgs/"
    );
    assert_eq!(
        package_base(&subdir, Some("https://cdn.example.com/x"))
            .unwrap()
            .as_str(),
        "https://cdn.example.com/x/"
    );
}

fn index(text: &str) -> SubdirIndex {
    let config = rattler_conda_types::ChannelConfig::default_with_root_dir(PathBuf::from("/"));
    let channel = Channel::from_str("https://example.com/chan", &config).unwrap();
    let url = Url::parse("https://example.com/chan/linux-64/").unwrap();
    SubdirIndex::parse(channel, url, text.to_owned()).unwrap()
}

#[test]
fn lazy_index_prefers_conda_and_parses_on_demand() {
    let idx = index(
        r#"{"info":{"subdir":"linux-64"},
                "packages":{"a-1-0.tar.bz2":{"name":"a","version":"1","build":"0","build_number":0,"depends":["b"],"subdir":"linux-64"},
                            "b-1-0.tar.bz2":{"name":"b","version":"1","build":"0","build_number":0,"depends":[],"subdir":"linux-64"}},
                "packages.conda":{"a-1-0.conda":{"name":"a","version":"1","build":"0","build_number":0,"depends":["b"],"subdir":"linux-64"}}}"#,
    );
    let a = idx.records("a").unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].identifier.to_string(), "a-1-0.conda");
    assert_eq!(
        a[0].url.as_str(),
        "https://example.com/chan/linux-64/a-1-0.conda"
    );
    let specs =
        vec![MatchSpec::from_str("a", rattler_conda_types::ParseStrictness::Lenient).unwrap()];
    let solved = solve(&[idx], &specs, &[], Vec::new(), &SolveOptions::default()).unwrap();
    let names: Vec<_> = solved
        .iter()
        .map(|r| r.package_record.name.as_normalized().to_owned())
        .collect();
    assert_eq!(names, ["b", "a"]);
}

#[test]
fn unknown_names_get_suggestions() {
    let idx = index(
        r#"{"packages":{"numpy-1-0.tar.bz2":{"name":"numpy","version":"1","build":"0","build_number":0,"depends":[],"subdir":"linux-64"}}}"#,
    );
    let specs =
        vec![MatchSpec::from_str("nupmy", rattler_conda_types::ParseStrictness::Lenient).unwrap()];
    let err = solve(&[idx], &specs, &[], Vec::new(), &SolveOptions::default()).unwrap_err();
    assert!(err.to_string().contains("did you mean `numpy`"), "{err}");
}

#[test]
fn a_missing_subdir_is_named_when_a_package_is_not_found() {
    let config = rattler_conda_types::ChannelConfig::default_with_root_dir(PathBuf::from("/"));
    let channel = Channel::from_str("https://example.com/chan", &config).unwrap();
    let missing = SubdirIndex::missing(
        channel,
        Url::parse("https://example.com/chan/linux-64/").unwrap(),
    );
    let noarch = index(r#"{"packages":{}}"#);
    let specs =
        vec![MatchSpec::from_str("app", rattler_conda_types::ParseStrictness::Lenient).unwrap()];
    let err = solve(
        &[noarch, missing],
        &specs,
        &[],
        Vec::new(),
        &SolveOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
            err.to_string(),
            "package `app` was not found in channel chan; note: https://example.com/chan/linux-64/repodata.json answered 404 Not Found"
        );
}

#[test]
fn channels_with_credentials_show_and_record_none() {
    let config = rattler_conda_types::ChannelConfig::default_with_root_dir(PathBuf::from("/"));
    let channel =
        Channel::from_str("https://me:secret@example.com/t/tok123/chan", &config).unwrap();
    let shown = channel_as_shown(&channel);
    assert_eq!(
        shown,
        "https://********:********@example.com/t/********/chan"
    );
    assert_eq!(
        channel_as_recorded(&channel),
        "https://example.com/t/<TOKEN>/chan/"
    );
    let url = channel.platform_url(Subdir::Linux64);
    let idx = SubdirIndex::parse(
            channel,
            url,
            r#"{"packages":{"a-1-0.tar.bz2":{"name":"a","version":"1","build":"0","build_number":0,"depends":[],"subdir":"linux-64"}}}"#.to_owned(),
        )
        .unwrap();
    let records = idx.records("a").unwrap();
    assert_eq!(
        records[0].channel.as_deref(),
        Some("https://example.com/t/<TOKEN>/chan/")
    );
    // The URL to fetch keeps them.
    assert_eq!(
        records[0].url.as_str(),
        "https://me:secret@example.com/t/tok123/chan/linux-64/a-1-0.tar.bz2"
    );
}

#[test]
fn an_installed_record_without_credentials_gets_the_channels_url() {
    let config = rattler_conda_types::ChannelConfig::default_with_root_dir(PathBuf::from("/"));
    let channel = Channel::from_str("https://me:pw@example.com/t/tok/chan", &config).unwrap();
    let url = channel.platform_url(Subdir::Linux64);
    let idx = SubdirIndex::parse(
            channel,
            url,
            r#"{"packages":{"a-1-0.tar.bz2":{"name":"a","version":"1","build":"0","build_number":0,"depends":[],"subdir":"linux-64"}}}"#.to_owned(),
        )
        .unwrap();
    let mut installed = idx.records("a").unwrap().remove(0);
    installed.url = Url::parse(&pkgr_redact::url_for_record(&installed.url)).unwrap();
    let specs =
        vec![MatchSpec::from_str("a", rattler_conda_types::ParseStrictness::Lenient).unwrap()];
    let solved = solve(
        &[idx],
        &specs,
        &[installed],
        Vec::new(),
        &SolveOptions::default(),
    )
    .unwrap();
    assert_eq!(
        solved[0].url.as_str(),
        "https://me:pw@example.com/t/tok/chan/linux-64/a-1-0.tar.bz2"
    );
}

#[test]
fn a_chosen_record_that_cannot_name_one_file_is_refused() {
    // `a` 2 has a build with a path; `a` 1 and `b` are fine.
    let idx = index(
        r#"{"packages":{"a-1-0.tar.bz2":{"name":"a","version":"1","build":"0","build_number":0,"depends":[],"subdir":"linux-64"},
                            "a-2-0.tar.bz2":{"name":"a","version":"2","build":"x/../../y","build_number":0,"depends":[],"subdir":"linux-64"},
                            "b-1-0/../../c.tar.bz2":{"name":"b","version":"1","build":"0","build_number":0,"depends":[],"subdir":"linux-64"},
                            "d-1-0.tar.bz2":{"name":"d","version":"1","build":"0","build_number":0,"depends":[],"subdir":"linux-64"}}}"#,
    );
    let solve_for = |spec: &str| {
        let specs =
            vec![MatchSpec::from_str(spec, rattler_conda_types::ParseStrictness::Lenient).unwrap()];
        solve(
            std::slice::from_ref(&idx),
            &specs,
            &[],
            Vec::new(),
            &SolveOptions::default(),
        )
    };
    // The newest `a` is the one chosen: a clear error, not an older `a`.
    let err = solve_for("a").unwrap_err();
    assert!(
        matches!(err, pkgr_solver::SolverError::UnsafeRecord { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("refusing a-2-0.tar.bz2 from channel https://example.com/chan/")
            && text.contains("build string `x/../../y` holds a path separator"),
        "{text}"
    );
    // Asked for by version, the other record is fine.
    assert_eq!(
        solve_for("a <2").unwrap()[0]
            .package_record
            .version
            .to_string(),
        "1"
    );
    let err = solve_for("b").unwrap_err().to_string();
    assert!(err.contains("its file name is not b-1-0"), "{err}");
    // A bad record never chosen does not stop the rest.
    assert_eq!(solve_for("d").unwrap().len(), 1);
}

#[test]
fn an_http_channel_may_not_send_packages_to_local_files() {
    let config = rattler_conda_types::ChannelConfig::default_with_root_dir(PathBuf::from("/"));
    let channel = Channel::from_str("https://example.com/chan", &config).unwrap();
    let url = Url::parse("https://example.com/chan/linux-64/").unwrap();
    let text = r#"{"info":{"base_url":"file:///home/me/"},"packages":{}}"#;
    let err = SubdirIndex::parse(channel, url, text.to_owned()).unwrap_err();
    assert!(
        matches!(err, RepodataError::RefusedRepodata { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("file:///home/me/"), "{err}");
    let subdir = Url::parse("file:///srv/chan/linux-64/").unwrap();
    assert_eq!(
        package_base(&subdir, Some("../pkgs")).unwrap().as_str(),
        "file:///srv/chan/pkgs/"
    );
}

#[test]
fn broken_repodata_is_an_error() {
    let config = rattler_conda_types::ChannelConfig::default_with_root_dir(PathBuf::from("/"));
    let channel = Channel::from_str("https://example.com/chan", &config).unwrap();
    let url = Url::parse("https://example.com/chan/linux-64/").unwrap();
    let err = SubdirIndex::parse(channel, url, "{\"packages\": [".to_owned()).unwrap_err();
    assert!(matches!(err, RepodataError::BrokenRepodata { .. }), "{err}");
}
