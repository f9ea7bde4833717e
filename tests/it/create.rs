//! `pkgr create` and `pkgr list` end to end, on generated channels.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use pkgr_test_support::{
    binary_placeholder, sha256_hex, ChannelServer, Format, LocalChannel, Package, TEXT_PLACEHOLDER,
};

use crate::common::{assert_fails, assert_ok, complete_entries, list_files, stderr, stdout, World};

/// The binary payload: a C string holding the placeholder, then more bytes.
fn binary_payload() -> Vec<u8> {
    let mut bytes = b"\x7fELF\x02\x01\x01\0RPATH=".to_vec();
    bytes.extend_from_slice(binary_placeholder().as_bytes());
    bytes.extend_from_slice(b"/lib:");
    bytes.extend_from_slice(binary_placeholder().as_bytes());
    bytes.extend_from_slice(b"/lib64\0tail-bytes\0\x01\x02");
    bytes
}

/// A channel with a dependency chain across both formats:
/// app (.conda) -> libmid (.conda) -> libbase (.tar.bz2), app -> data (noarch, .tar.bz2).
fn chain_channel(root: &Path) -> LocalChannel {
    let mut channel = LocalChannel::new(root);
    let old_base = Package::new("libbase", "0.9").file("lib/old.txt", "old\n");
    let base = Package::new("libbase", "1.0")
        .binary_placeholder("lib/libbase.so", binary_payload())
        .text_placeholder(
            "etc/base.conf",
            format!("prefix={TEXT_PLACEHOLDER}\nlib={TEXT_PLACEHOLDER}/lib\n"),
        );
    let mid = Package::new("libmid", "1.2")
        .depends("libbase >=1.0")
        .file("lib/libmid.so.1", "mid library\n")
        .symlink("lib/libmid.so", "libmid.so.1");
    let data = Package::new("data", "3")
        .noarch_generic()
        .file("share/data/words.txt", "alpha\nbeta\n");
    let app = Package::new("app", "2.0")
        .build("h1234_1", 1)
        .depends("libmid 1.*")
        .depends("data")
        .executable("bin/app", "#!/bin/sh\necho app\n");
    channel.add(&old_base, Format::TarBz2);
    channel.add(&base, Format::TarBz2);
    channel.add(&mid, Format::Conda);
    channel.add(&data, Format::TarBz2);
    channel.add(&app, Format::Conda);
    channel.write_repodata();
    channel
}

#[test]
fn creates_a_dependency_chain_across_both_formats() {
    let world = World::new();
    let channel = chain_channel(&world.path().join("channel"));
    let prefix = world.env("chain");
    let out = world.create(&prefix, channel.root().to_str().unwrap(), &["app"]);
    assert_ok(&out);
    let prefix_text = prefix.display().to_string();

    // Text placeholder rewritten.
    let conf = fs_err::read_to_string(prefix.join("etc/base.conf")).unwrap();
    assert_eq!(
        conf,
        format!("prefix={prefix_text}\nlib={prefix_text}/lib\n")
    );
    // Binary placeholder rewritten in place: same length, NUL padded.
    let original = binary_payload();
    let installed = fs_err::read(prefix.join("lib/libbase.so")).unwrap();
    assert_eq!(installed.len(), original.len());
    let expected =
        pkgr_test_support::expect_binary_replaced(&original, &binary_placeholder(), &prefix_text);
    assert_eq!(installed, expected);
    let rpath = format!("RPATH={prefix_text}/lib:{prefix_text}/lib64\0");
    assert!(installed
        .windows(rpath.len())
        .any(|w| w == rpath.as_bytes()));
    assert!(installed.ends_with(b"tail-bytes\0\x01\x02"));
    // Softlink stays a softlink.
    let link = prefix.join("lib/libmid.so");
    assert!(fs_err::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs_err::read_link(&link).unwrap(), Path::new("libmid.so.1"));
    assert_eq!(fs_err::read_to_string(&link).unwrap(), "mid library\n");
    // noarch generic and executables.
    assert_eq!(
        fs_err::read_to_string(prefix.join("share/data/words.txt")).unwrap(),
        "alpha\nbeta\n"
    );
    let mode = fs_err::metadata(prefix.join("bin/app"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o111, 0o111, "bin/app must stay executable");
    // The highest version was chosen; the old one left no trace.
    assert!(!prefix.join("lib/old.txt").exists());

    // conda-meta: one record per package, in conda's format.
    let mut records: Vec<String> = fs_err::read_dir(prefix.join("conda-meta"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    records.sort();
    assert_eq!(
        records,
        [
            "app-2.0-h1234_1.json",
            "data-3-0.json",
            "libbase-1.0-0.json",
            "libmid-1.2-0.json"
        ]
    );
    let base: serde_json::Value = serde_json::from_slice(
        &fs_err::read(prefix.join("conda-meta/libbase-1.0-0.json")).unwrap(),
    )
    .unwrap();
    for field in [
        "name",
        "version",
        "build",
        "build_number",
        "channel",
        "subdir",
        "fn",
        "url",
        "md5",
        "sha256",
        "size",
        "depends",
        "files",
        "paths_data",
        "link",
    ] {
        assert!(
            base.get(field).is_some(),
            "conda-meta record lacks `{field}`: {base}"
        );
    }
    let paths = base["paths_data"]["paths"].as_array().unwrap();
    let conf_entry = paths
        .iter()
        .find(|p| p["_path"] == "etc/base.conf")
        .unwrap();
    assert_eq!(conf_entry["file_mode"], "text");
    assert_eq!(conf_entry["sha256_in_prefix"], sha256_hex(conf.as_bytes()));
    let app: serde_json::Value = serde_json::from_slice(
        &fs_err::read(prefix.join("conda-meta/app-2.0-h1234_1.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(app["requested_spec"], "app");

    let history = fs_err::read_to_string(prefix.join("conda-meta/history")).unwrap();
    assert_eq!(
        history.lines().filter(|l| l.starts_with('+')).count(),
        4,
        "{history}"
    );
    assert!(history.contains("# update specs: ['app']"), "{history}");

    // The cache holds each package once, complete, and no temp files.
    let cache_files = list_files(&world.cache().join("pkgs"));
    assert_eq!(
        cache_files
            .iter()
            .filter(|f| f.ends_with(".pkgr-entry.json"))
            .count(),
        4,
        "{cache_files:?}"
    );
    assert!(list_files(&world.cache().join("tmp")).is_empty());

    // `pkgr list`, as conda shows it.
    let out = world.run(&["list", "-p", prefix.to_str().unwrap()]);
    assert_ok(&out);
    snapshot!(&world, "list_chain", stdout(&out));

    let out = world.run(&["list", "--json", "-p", prefix.to_str().unwrap()]);
    assert_ok(&out);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 4);
}

#[test]
fn create_output_is_a_plan_then_steps_then_a_summary() {
    let world = World::new();
    let channel = chain_channel(&world.path().join("channel"));
    let out = world.run(&[
        "create",
        "-n",
        "demo",
        "-c",
        channel.root().to_str().unwrap(),
        "app",
    ]);
    assert_ok(&out);
    assert!(world.path().join("root/envs/demo/bin/app").is_file());
    snapshot!(&world, "create_plan", stdout(&out));
    let steps = stderr(&out);
    for step in [
        "downloaded app-2.0-h1234_1.conda",
        "extracted libbase-1.0-0.tar.bz2",
        "linked data-3-0.tar.bz2",
    ] {
        assert!(steps.contains(step), "missing `{step}` in:\n{steps}");
    }
    assert!(
        !steps.contains('\u{1b}'),
        "no control characters off a terminal"
    );
}

#[test]
fn dry_run_changes_nothing() {
    let world = World::new();
    let channel = chain_channel(&world.path().join("channel"));
    let prefix = world.env("dry");
    let out = world.run(&[
        "create",
        "--dry-run",
        "--json",
        "-p",
        prefix.to_str().unwrap(),
        "-c",
        channel.root().to_str().unwrap(),
        "app",
    ]);
    assert_ok(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["dry_run"], true);
    assert_eq!(json["actions"]["LINK"].as_array().unwrap().len(), 4);
    assert!(!prefix.exists());
    assert!(list_files(&world.cache().join("pkgs"))
        .iter()
        .all(|f| f.starts_with(".locks")));
}

#[test]
fn unsatisfiable_request_is_explained() {
    let world = World::new();
    let channel = chain_channel(&world.path().join("channel"));
    let prefix = world.env("conflict");
    let out = world.create(
        &prefix,
        channel.root().to_str().unwrap(),
        &["app", "libbase<1"],
    );
    let err = assert_fails(&out);
    snapshot!(&world, "unsatisfiable", err);
    assert!(!prefix.exists());
}

#[test]
fn unknown_package_suggests_close_names() {
    let world = World::new();
    let channel = chain_channel(&world.path().join("channel"));
    let out = world.run(&[
        "create",
        "-n",
        "x",
        "-c",
        channel.root().to_str().unwrap(),
        "libmidd",
    ]);
    let err = assert_fails(&out);
    snapshot!(&world, "unknown_package", err);
}

#[test]
fn bad_specs_and_channels_are_clear_errors() {
    let world = World::new();
    let channel = chain_channel(&world.path().join("channel"));
    let out = world.run(&[
        "create",
        "-n",
        "x",
        "-c",
        channel.root().to_str().unwrap(),
        "app >=>1",
    ]);
    snapshot_failure!(&world, "invalid_spec", out);

    let missing = world.path().join("no-such-channel");
    fs_err::create_dir_all(&missing).unwrap();
    let out = world.run(&["create", "-n", "x", "-c", missing.to_str().unwrap(), "app"]);
    let err = assert_fails(&out);
    snapshot!(&world, "channel_without_repodata", err);
}

#[test]
fn existing_environment_needs_force() {
    let world = World::new();
    let channel = chain_channel(&world.path().join("channel"));
    let prefix = world.env("twice");
    let args = [
        "create",
        "-p",
        prefix.to_str().unwrap(),
        "-c",
        channel.root().to_str().unwrap(),
    ];
    assert_ok(&world.run(&[&args[..], &["data"]].concat()));
    snapshot_failure!(
        &world,
        "existing_environment",
        world.run(&[&args[..], &["app"]].concat())
    );
    assert!(!prefix.join("bin/app").exists());
    assert_ok(&world.run(&[&args[..], &["--force", "libmid"]].concat()));
    assert!(prefix.join("lib/libmid.so.1").exists());
    assert!(
        !prefix.join("share/data/words.txt").exists(),
        "the old environment was replaced"
    );

    // A directory that is not an environment is never replaced.
    let plain = world.path().join("plain");
    fs_err::create_dir_all(&plain).unwrap();
    fs_err::write(plain.join("precious.txt"), "keep me").unwrap();
    snapshot_failure!(
        &world,
        "not_an_environment",
        world.run(&[
            "create",
            "-y",
            "-p",
            plain.to_str().unwrap(),
            "-c",
            channel.root().to_str().unwrap(),
            "data",
        ])
    );
    assert!(plain.join("precious.txt").exists());
}

#[test]
fn checksum_mismatch_leaves_the_cache_clean() {
    let world = World::new();
    let root = world.path().join("channel");
    let mut channel = LocalChannel::new(&root);
    let archive = channel.add(
        &Package::new("victim", "1").file("share/v.txt", "v\n"),
        Format::Conda,
    );
    channel.write_repodata();
    // Same size, different bytes: the index's sha256 no longer matches.
    let mut bytes = fs_err::read(&archive).unwrap();
    let n = bytes.len();
    bytes[n - 30] ^= 0xff;
    fs_err::write(&archive, bytes).unwrap();

    let prefix = world.env("victim");
    let out = world.create(&prefix, root.to_str().unwrap(), &["victim"]);
    snapshot_failure!(&world, "checksum_mismatch", out);
    let cache_files: Vec<String> = list_files(&world.cache().join("pkgs"))
        .into_iter()
        .filter(|f| !f.starts_with(".locks"))
        .collect();
    assert!(cache_files.is_empty(), "the cache kept {cache_files:?}");
    assert!(list_files(&world.cache().join("tmp")).is_empty());
    assert!(!prefix.exists());
}

#[test]
fn path_escaping_archives_are_rejected() {
    let world = World::new();
    let root = world.path().join("channel");
    let mut channel = LocalChannel::new(&root);
    channel.add(
        &Package::new("escape", "1")
            .file("share/ok.txt", "ok")
            .raw_entry("../../escaped.txt", "pwned"),
        Format::TarBz2,
    );
    channel.add(
        &Package::new("abs", "1")
            .file("share/ok.txt", "ok")
            .raw_entry("/tmp/pkgr-absolute-escape.txt", "pwned"),
        Format::Conda,
    );
    channel.add(
        &Package::new("badlink", "1").raw_symlink("lib/evil", "../../../../etc/passwd"),
        Format::Conda,
    );
    channel.write_repodata();
    // Each refusal names its entry (`../../escaped.txt`,
    // `/tmp/pkgr-absolute-escape.txt`, `../../../../etc/passwd`) and says it
    // points outside: see the snapshots.
    for name in ["escape", "abs", "badlink"] {
        let prefix = world.env(name);
        let out = world.run(&[
            "create",
            "-p",
            prefix.to_str().unwrap(),
            "-c",
            root.to_str().unwrap(),
            name,
        ]);
        snapshot_failure!(&world, format!("path_escaping_{name}").as_str(), out);
        assert!(!prefix.exists(), "{name}: nothing may be linked");
    }
    assert!(!world.path().join("escaped.txt").exists());
    assert!(!world.cache().join("escaped.txt").exists());
    let complete = complete_entries(&world.cache());
    assert_eq!(
        complete, 0,
        "no rejected package may look complete in the cache"
    );
}

#[test]
fn legacy_packages_without_paths_json_install() {
    let world = World::new();
    let root = world.path().join("channel");
    let mut channel = LocalChannel::new(&root);
    channel.add(
        &Package::new("oldie", "0.1")
            .legacy()
            .text_placeholder("bin/oldie", format!("#!/bin/sh\necho {TEXT_PLACEHOLDER}\n"))
            .file("share/oldie/readme", "old style\n"),
        Format::TarBz2,
    );
    channel.write_repodata();
    let prefix = world.env("legacy");
    assert_ok(&world.create(&prefix, root.to_str().unwrap(), &["oldie"]));
    let script = fs_err::read_to_string(prefix.join("bin/oldie")).unwrap();
    assert_eq!(script, format!("#!/bin/sh\necho {}\n", prefix.display()));
    assert_eq!(
        fs_err::read_to_string(prefix.join("share/oldie/readme")).unwrap(),
        "old style\n"
    );
}

#[test]
fn http_channels_fetch_each_archive_once() {
    let world = World::new();
    let channel = chain_channel(&world.path().join("channel"));
    let server = ChannelServer::serve(channel.root());
    for name in ["one", "two"] {
        let prefix = world.env(name);
        let out = world.create(&prefix, server.url(), &["app"]);
        assert_ok(&out);
        assert!(prefix.join("bin/app").is_file());
    }
    let subdir = pkgr_test_support::current_subdir();
    for path in [
        format!("/{subdir}/app-2.0-h1234_1.conda"),
        format!("/{subdir}/libmid-1.2-0.conda"),
        format!("/{subdir}/libbase-1.0-0.tar.bz2"),
        String::from("/noarch/data-3-0.tar.bz2"),
    ] {
        assert_eq!(server.count(&path), 1, "{path}: {:?}", server.counts());
    }
    assert_eq!(server.count(&format!("/{subdir}/libbase-0.9-0.tar.bz2")), 0);
    // The second process revalidates (no Cache-Control from this server) but
    // downloads no package again.
    assert!(server.count(&format!("/{subdir}/repodata.json")) <= 2);

    // A server that does not answer is a clear error naming the URL.
    drop(server);
    let out = world.run(&[
        "create",
        "-p",
        world.env("three").to_str().unwrap(),
        "-c",
        "http://127.0.0.1:9/nothing",
        "app",
    ]);
    // The retries of the two subdirs interleave: the error itself is whole.
    snapshot_error!(&world, "server_not_answering", out);
}

#[test]
fn cache_dir_not_writable_is_a_clear_error() {
    let world = World::new();
    let channel = chain_channel(&world.path().join("channel"));
    let blocker = world.path().join("file-not-dir");
    fs_err::write(&blocker, "x").unwrap();
    let out = world.run(&[
        "create",
        "--cache-dir",
        blocker.join("cache").to_str().unwrap(),
        "-n",
        "x",
        "-c",
        channel.root().to_str().unwrap(),
        "data",
    ]);
    snapshot_failure!(&world, "cache_dir_not_writable", out);
}

#[test]
fn same_file_name_from_two_channels_never_collides() {
    let world = World::new();
    let mut first = LocalChannel::new(&world.path().join("first"));
    let mut second = LocalChannel::new(&world.path().join("second"));
    first.add(
        &Package::new("twin", "1").file("share/twin.txt", "from the first channel\n"),
        Format::Conda,
    );
    second.add(
        &Package::new("twin", "1").file("share/twin.txt", "from the second channel\n"),
        Format::Conda,
    );
    first.write_repodata();
    second.write_repodata();
    for (name, channel, text) in [
        ("a", &first, "from the first channel\n"),
        ("b", &second, "from the second channel\n"),
        ("c", &first, "from the first channel\n"),
    ] {
        let prefix = world.env(name);
        assert_ok(&world.create(&prefix, channel.root().to_str().unwrap(), &["twin"]));
        assert_eq!(
            fs_err::read_to_string(prefix.join("share/twin.txt")).unwrap(),
            text,
            "env {name}"
        );
    }
    let entries = complete_entries(&world.cache());
    assert_eq!(entries, 2, "one cache entry per distinct archive");
}

#[test]
fn unreadable_archive_is_a_clear_error() {
    let world = World::new();
    let root = world.path().join("channel");
    let mut channel = LocalChannel::new(&root);
    let archive = channel.add(
        &Package::new("garbled", "1").file("share/g.txt", "g\n"),
        Format::TarBz2,
    );
    channel.write_repodata();
    // Replace the archive with garbage and index it as if it were fine.
    fs_err::write(&archive, b"this is not a bzip2 stream at all").unwrap();
    let repodata_path = root
        .join(pkgr_test_support::current_subdir())
        .join("repodata.json");
    let bytes = fs_err::read(&archive).unwrap();
    let record = serde_json::json!({
        "name": "garbled", "version": "1", "build": "0", "build_number": 0, "depends": [],
        "subdir": pkgr_test_support::current_subdir(), "sha256": sha256_hex(&bytes), "size": bytes.len(),
    });
    let repodata = serde_json::json!({ "packages": { "garbled-1-0.tar.bz2": record } });
    fs_err::write(&repodata_path, serde_json::to_vec(&repodata).unwrap()).unwrap();

    let prefix = world.env("garbled");
    snapshot_failure!(
        &world,
        "unreadable_archive",
        world.create(&prefix, root.to_str().unwrap(), &["garbled"])
    );
    assert!(!prefix.exists());
    let complete = complete_entries(&world.cache());
    assert_eq!(complete, 0);
    assert!(list_files(&world.cache().join("tmp")).is_empty());
}

#[test]
fn broken_repodata_is_a_clear_error() {
    let world = World::new();
    let channel = chain_channel(&world.path().join("channel"));
    fs_err::write(
        channel.root().join("noarch/repodata.json"),
        b"{\"packages\": {\"x-1-0.tar.bz2\": ",
    )
    .unwrap();
    snapshot_failure!(
        &world,
        "broken_repodata",
        world.run(&[
            "create",
            "-n",
            "x",
            "-c",
            channel.root().to_str().unwrap(),
            "app",
        ])
    );
}
