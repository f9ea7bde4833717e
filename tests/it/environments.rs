//! Install semantics on generated packages: link scripts,
//! install/update/remove transactions, clobbers, link types, and what an
//! interrupted transaction leaves (noarch python: `noarch_python.rs`).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use pkgr_test_support::{Format, LocalChannel, Package};

use crate::common::{
    assert_fails, assert_ok, list_files, run_with_timeout, stderr, stdout, Running, World, TIMEOUT,
};

pub(crate) fn read_record(prefix: &Path, stem: &str) -> serde_json::Value {
    let path = prefix.join("conda-meta").join(format!("{stem}.json"));
    serde_json::from_slice(&fs_err::read(&path).unwrap()).unwrap()
}

/// Files of the environment outside conda-meta/, for before/after comparisons.
pub(crate) fn env_files(prefix: &Path) -> BTreeSet<String> {
    list_files(prefix)
        .into_iter()
        .filter(|f| !f.starts_with("conda-meta"))
        .collect()
}

/// Every file on disk is claimed by a record, and every record's file exists:
/// conda-meta describes exactly what is there.
#[track_caller]
pub(crate) fn assert_meta_matches_disk(prefix: &Path) {
    let mut claimed = BTreeSet::new();
    for entry in fs_err::read_dir(prefix.join("conda-meta")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let record: serde_json::Value =
                serde_json::from_slice(&fs_err::read(&path).unwrap()).unwrap();
            for file in record["files"].as_array().unwrap() {
                let file = file.as_str().unwrap();
                assert!(
                    fs_err::symlink_metadata(prefix.join(file)).is_ok(),
                    "{} lists {file}, which is not on disk",
                    path.display()
                );
                claimed.insert(file.to_owned());
            }
        }
    }
    for file in list_files(prefix) {
        let full = prefix.join(&file);
        if file.starts_with("conda-meta") || full.is_dir() && !full.is_symlink() {
            continue;
        }
        assert!(
            claimed.contains(&file),
            "{file} is on disk but no record lists it"
        );
    }
}

/// Two packages of a new environment that cannot both be linked (one ships
/// a file `share/thing`, the other a file below `share/thing/`), linked
/// while the others are still arriving: the create fails naming the path,
/// nothing of it is left, and the cache's entries stay complete.
#[test]
fn a_package_failing_to_link_beside_others_leaves_no_environment() {
    let world = World::new();
    let mut channel = LocalChannel::new(&world.path().join("channel"));
    channel.add(
        &Package::new("flat", "1.0").file("share/thing", b"a file".to_vec()),
        Format::Conda,
    );
    channel.add(
        &Package::new("deep", "1.0").file("share/thing/inside", b"below".to_vec()),
        Format::TarBz2,
    );
    for i in 0..6 {
        channel.add(
            &Package::new(&format!("other{i}"), "1.0")
                .file(&format!("lib/other{i}/data"), vec![b'x'; 4096]),
            Format::Conda,
        );
    }
    channel.write_repodata();
    let prefix = world.env("conflict");
    let mut specs = vec!["flat", "deep"];
    let others: Vec<String> = (0..6).map(|i| format!("other{i}")).collect();
    specs.extend(others.iter().map(String::as_str));
    let err = assert_fails(&world.create(&prefix, channel.root().to_str().unwrap(), &specs));
    // Not a snapshot: whether flat's file or deep's directory is linked
    // first varies (they are linked in parallel), and so does the OS error.
    assert!(err.contains("share/thing"), "{err}");
    assert!(!prefix.exists(), "the environment it was creating is gone");
    assert_ok(&world.run(&[
        "cache",
        "verify",
        "--cache-dir",
        world.cache().to_str().unwrap(),
    ]));
}

fn scripted_channel(world: &World) -> LocalChannel {
    let mut channel = LocalChannel::new(&world.path().join("channel"));
    channel.add(
        &Package::new("base", "1.0").file("share/base.txt", "base\n"),
        Format::Conda,
    );
    channel.add(
        &Package::new("scripted", "2.5")
            .build("h0_7", 7)
            .depends("base")
            .file("share/scripted.txt", "x\n")
            .post_link(
                "echo \"$PKG_NAME $PKG_VERSION $PKG_BUILDNUM\" > \"$PREFIX/post-link-ran\"\n\
                 test -f \"$PREFIX/share/base.txt\" || exit 9\n\
                 echo 'please read me' > \"$PREFIX/.messages.txt\"\n",
            )
            .pre_unlink("echo \"$PKG_NAME\" > \"$PREFIX/../pre-unlink-ran\"\n"),
        Format::TarBz2,
    );
    channel.add(
        &Package::new("broken", "1.0")
            .depends("base")
            .file("share/broken.txt", "x\n")
            .post_link("echo 'something went wrong here'\nexit 4\n"),
        Format::Conda,
    );
    channel.write_repodata();
    channel
}

#[test]
fn link_scripts_run_with_conda_variables() {
    let world = World::new();
    let channel = scripted_channel(&world);
    let prefix = world.env("s");
    let out = world.create(&prefix, channel.root().to_str().unwrap(), &["scripted"]);
    assert_ok(&out);
    assert_eq!(
        fs_err::read_to_string(prefix.join("post-link-ran")).unwrap(),
        "scripted 2.5 7\n",
        "ran after its dependency was linked, with PKG_* set"
    );
    assert!(stderr(&out).contains("please read me"), "{}", stderr(&out));
    assert!(!prefix.join(".messages.txt").exists());

    assert_ok(&world.run(&["remove", "-p", prefix.to_str().unwrap(), "scripted"]));
    assert_eq!(
        fs_err::read_to_string(world.path().join("envs/pre-unlink-ran")).unwrap(),
        "scripted\n"
    );
    assert!(!prefix.join("share/scripted.txt").exists());
    assert!(!prefix.join("bin/.scripted-post-link.sh").exists());
}

#[test]
fn a_failing_post_link_script_fails_the_transaction() {
    let world = World::new();
    let channel = scripted_channel(&world);
    let prefix = world.env("b");
    assert_ok(&world.create(&prefix, channel.root().to_str().unwrap(), &["base"]));
    let before = env_files(&prefix);
    let out = world.run(&["install", "-p", prefix.to_str().unwrap(), "broken"]);
    snapshot_failure!(&world, "failing_post_link", out);
    assert_eq!(env_files(&prefix), before, "nothing of broken is left");
    assert!(!prefix.join("conda-meta/broken-1.0-0.json").exists());
    assert_meta_matches_disk(&prefix);

    // A create that fails leaves no environment.
    let fresh = world.env("fresh");
    assert_fails(&world.create(&fresh, channel.root().to_str().unwrap(), &["broken"]));
    assert!(!fresh.exists());
}

fn versions_channel(world: &World) -> LocalChannel {
    let mut channel = LocalChannel::new(&world.path().join("channel"));
    channel.add(
        &Package::new("lib", "1.0")
            .file("lib/libx.so.1", "v1")
            .file("share/lib/only-in-1.txt", "1"),
        Format::Conda,
    );
    channel.add(
        &Package::new("lib", "2.0")
            .file("lib/libx.so.2", "v2")
            .file("share/lib/new-in-2.txt", "2"),
        Format::Conda,
    );
    channel.add(
        &Package::new("tool", "1.0")
            .depends("lib")
            .executable("bin/tool", "#!/bin/sh\n"),
        Format::TarBz2,
    );
    channel.add(
        &Package::new("extra", "1.0")
            .depends("dep-of-extra")
            .file("share/extra/deep/a.txt", "a")
            .directory("share/extra/empty"),
        Format::Conda,
    );
    channel.add(
        &Package::new("dep-of-extra", "1.0").file("share/dep.txt", "d"),
        Format::Conda,
    );
    channel.write_repodata();
    channel
}

#[test]
fn install_keeps_what_is_installed_and_update_moves_it() {
    let world = World::new();
    let channel = versions_channel(&world);
    let prefix = world.env("v");
    let p = prefix.to_str().unwrap();
    assert_ok(&world.create(&prefix, channel.root().to_str().unwrap(), &["lib=1.0"]));
    // Installing something that would take the newest lib keeps lib 1.0.
    let out = world.run(&["install", "-p", p, "tool"]);
    assert_ok(&out);
    assert!(
        prefix.join("conda-meta/lib-1.0-0.json").is_file(),
        "{}",
        stdout(&out)
    );
    assert!(prefix.join("bin/tool").is_file());

    let out = world.run(&["update", "-p", p, "lib"]);
    assert_ok(&out);
    assert!(
        prefix.join("conda-meta/lib-2.0-0.json").is_file(),
        "{}",
        stdout(&out)
    );
    assert!(!prefix.join("conda-meta/lib-1.0-0.json").exists());
    assert!(
        !prefix.join("share/lib/only-in-1.txt").exists(),
        "old files removed"
    );
    assert!(!prefix.join("lib/libx.so.1").exists());
    assert!(prefix.join("share/lib/new-in-2.txt").is_file());
    assert!(prefix.join("bin/tool").is_file(), "tool stays");
    assert_meta_matches_disk(&prefix);
    let history = fs_err::read_to_string(prefix.join("conda-meta/history")).unwrap();
    let last = history.rsplit("==> ").next().unwrap();
    let channel_url = format!(
        "file://{}/{}",
        channel.root().display(),
        pkgr_test_support::current_subdir()
    );
    let lines: Vec<&str> = last.lines().skip(1).collect();
    assert!(
        lines[0].starts_with("# cmd: ") && lines[0].ends_with(&format!("update -p {p} lib")),
        "{history}"
    );
    assert_eq!(
        lines[2..],
        [
            format!("-{channel_url}::lib-1.0-0"),
            format!("+{channel_url}::lib-2.0-0"),
            "# update specs: ['lib']".to_owned(),
        ],
        "{history}"
    );

    // Nothing to do is said, and changes nothing.
    let out = world.run(&["install", "-p", p, "tool"]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("Nothing to change"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn install_remove_install_round_trips_leave_no_stray_files() {
    let world = World::new();
    let channel = versions_channel(&world);
    let prefix = world.env("r");
    let p = prefix.to_str().unwrap();
    assert_ok(&world.create(&prefix, channel.root().to_str().unwrap(), &["tool"]));
    let base = env_files(&prefix);

    assert_ok(&world.run(&["install", "-p", p, "extra"]));
    let with_extra = env_files(&prefix);
    assert!(
        prefix.join("share/extra/empty").is_dir(),
        "empty directory from paths.json"
    );
    assert!(prefix.join("share/dep.txt").is_file());
    assert_meta_matches_disk(&prefix);

    assert_ok(&world.run(&["remove", "-p", p, "extra", "dep-of-extra"]));
    assert_eq!(env_files(&prefix), base, "back to the files before");
    assert!(
        !prefix.join("share/extra").exists(),
        "emptied directories go too"
    );
    assert_meta_matches_disk(&prefix);

    assert_ok(&world.run(&["install", "-p", p, "extra"]));
    assert_eq!(env_files(&prefix), with_extra);
    assert_meta_matches_disk(&prefix);
}

#[test]
fn remove_refuses_to_break_dependents_unless_forced() {
    let world = World::new();
    let channel = versions_channel(&world);
    let prefix = world.env("d");
    let p = prefix.to_str().unwrap();
    assert_ok(&world.create(&prefix, channel.root().to_str().unwrap(), &["tool"]));
    snapshot_failure!(
        &world,
        "remove_breaks_dependents",
        world.run(&["remove", "-p", p, "lib"])
    );
    assert!(prefix.join("conda-meta/lib-2.0-0.json").is_file());
    snapshot_failure!(
        &world,
        "remove_not_installed",
        world.run(&["remove", "-p", p, "nope"])
    );
    assert_ok(&world.run(&["remove", "-p", p, "--force", "lib"]));
    assert!(!prefix.join("lib/libx.so.2").exists());
    assert!(prefix.join("bin/tool").is_file());
    assert_meta_matches_disk(&prefix);
}

#[test]
fn clobbered_paths_warn_and_survive_removal_of_either_owner() {
    let world = World::new();
    let mut channel = LocalChannel::new(&world.path().join("channel"));
    channel.add(
        &Package::new("first", "1.0")
            .file("share/same.txt", "first\n")
            .file("share/first.txt", "1"),
        Format::Conda,
    );
    channel.add(
        &Package::new("second", "1.0")
            .depends("first")
            .file("share/same.txt", "second\n"),
        Format::Conda,
    );
    channel.write_repodata();
    let prefix = world.env("c");
    let p = prefix.to_str().unwrap();
    // Both asked for: removing one leaves the other (a dependency nothing
    // asked for would go with what needed it).
    let out = world.create(
        &prefix,
        channel.root().to_str().unwrap(),
        &["second", "first"],
    );
    assert_ok(&out);
    let err = stderr(&out);
    assert!(
        err.contains("warning: first and second both ship `share/same.txt`"),
        "{err}"
    );
    assert_eq!(
        fs_err::read_to_string(prefix.join("share/same.txt")).unwrap(),
        "second\n"
    );

    assert_ok(&world.run(&["remove", "-p", p, "second"]));
    assert!(
        prefix.join("share/same.txt").is_file(),
        "first still ships it"
    );
    assert_ok(&world.run(&["remove", "-p", p, "first"]));
    assert!(
        !prefix.join("share/same.txt").exists(),
        "the last owner took it"
    );
    assert!(!prefix.join("share").exists());
}

#[cfg(unix)]
#[test]
fn link_types_are_recorded_and_copy_forces_copies() {
    use std::os::unix::fs::MetadataExt;
    let world = World::new();
    let mut channel = LocalChannel::new(&world.path().join("channel"));
    channel.add(
        &Package::new("data", "1.0")
            .file("share/linked.txt", "linked\n")
            .no_link("share/never-linked.txt", "copied\n"),
        Format::Conda,
    );
    channel.write_repodata();
    let entry = |name: &str| {
        let pkgs = world.cache().join("pkgs");
        let dir = fs_err::read_dir(&pkgs)
            .unwrap()
            .flatten()
            .find(|e| e.path().is_dir())
            .unwrap()
            .path();
        fs_err::metadata(dir.join(name)).unwrap().ino()
    };
    let hard = world.env("hard");
    assert_ok(&world.create(&hard, channel.root().to_str().unwrap(), &["data"]));
    let ino = |prefix: &Path, name: &str| fs_err::metadata(prefix.join(name)).unwrap().ino();
    assert_eq!(
        ino(&hard, "share/linked.txt"),
        entry("share/linked.txt"),
        "hardlinked"
    );
    assert_ne!(
        ino(&hard, "share/never-linked.txt"),
        entry("share/never-linked.txt"),
        "no_link is copied"
    );
    assert_eq!(
        read_record(&hard, "data-1.0-0")["link"]["type"],
        3,
        "a copy was made (no_link)"
    );

    let copy = world.env("copy");
    let out = world.run(&[
        "create",
        "-p",
        copy.to_str().unwrap(),
        "-c",
        channel.root().to_str().unwrap(),
        "--copy",
        "data",
    ]);
    assert_ok(&out);
    assert_ne!(ino(&copy, "share/linked.txt"), entry("share/linked.txt"));
    assert_eq!(read_record(&copy, "data-1.0-0")["link"]["type"], 3);

    let mut plain = LocalChannel::new(&world.path().join("plain"));
    plain.add(
        &Package::new("only-linked", "1.0").file("share/a.txt", "a"),
        Format::Conda,
    );
    plain.write_repodata();
    let linked = world.env("linked");
    assert_ok(&world.create(&linked, plain.root().to_str().unwrap(), &["only-linked"]));
    assert_eq!(read_record(&linked, "only-linked-1.0-0")["link"]["type"], 1);
}

#[test]
fn records_carry_condas_fields_and_post_replacement_hashes() {
    let world = World::new();
    let mut channel = LocalChannel::new(&world.path().join("channel"));
    channel.add(
        &Package::new("pl", "1.0").text_placeholder(
            "bin/pl",
            format!("#!/bin/sh\necho {}\n", pkgr_test_support::TEXT_PLACEHOLDER),
        ),
        Format::Conda,
    );
    channel.write_repodata();
    let prefix = world.env("f");
    assert_ok(&world.create(&prefix, channel.root().to_str().unwrap(), &["pl"]));
    let record = read_record(&prefix, "pl-1.0-0");
    for key in [
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
        "constrains",
        "files",
        "paths_data",
        "link",
        "requested_spec",
    ] {
        assert!(record.get(key).is_some(), "{key} missing from {record:#}");
    }
    assert_eq!(record["requested_spec"], "pl");
    let entry = &record["paths_data"]["paths"][0];
    let on_disk = fs_err::read(prefix.join("bin/pl")).unwrap();
    assert_eq!(
        entry["sha256_in_prefix"],
        pkgr_test_support::sha256_hex(&on_disk)
    );
    assert_ne!(entry["sha256_in_prefix"], entry["sha256"]);
    assert_eq!(entry["file_mode"], "text");
    assert!(entry["size_in_bytes"].as_u64().is_some());
}

/// A kill in the middle of a transaction (here: while a post-link script
/// runs) leaves conda-meta true to the disk once the next command recovers.
#[cfg(unix)]
#[test]
fn a_killed_transaction_is_recovered_by_the_next_one() {
    let world = World::new();
    let mut channel = LocalChannel::new(&world.path().join("channel"));
    channel.add(
        &Package::new("base", "1.0").file("share/base.txt", "b"),
        Format::Conda,
    );
    channel.add(
        &Package::new("slow", "1.0")
            .file("share/slow/a.txt", "a")
            .file("share/slow/b.txt", "b")
            .post_link("echo $$ > \"$PREFIX/../script.pid\"\nsleep 60\n"),
        Format::Conda,
    );
    channel.write_repodata();
    let prefix = world.env("k");
    let p = prefix.to_str().unwrap();
    assert_ok(&world.create(&prefix, channel.root().to_str().unwrap(), &["base"]));

    let mut cmd = world.pkgr();
    cmd.args(["install", "-p", p, "slow"]);
    let running = Running::spawn(cmd);
    let pid_file = world.path().join("envs/script.pid");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pid_file.is_file() || fs_err::read_to_string(&pid_file).unwrap().trim().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the post-link script never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = Command::new("kill")
        .args(["-9", &running.child.id().to_string()])
        .status();
    let _ = Command::new("kill")
        .args(["-9", fs_err::read_to_string(&pid_file).unwrap().trim()])
        .status();
    running.wait(Duration::from_secs(30));

    // Killed: slow's files are there, no record claims them, a journal does.
    assert!(prefix.join("share/slow/a.txt").is_file());
    assert!(!prefix.join("conda-meta/slow-1.0-0.json").exists());
    assert!(prefix.join("conda-meta/slow-1.0-0.pkgr-partial").is_file());

    let out = world.run(&["install", "-p", p, "base"]);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("interrupted while changing slow-1.0-0"),
        "{}",
        stderr(&out)
    );
    assert!(!prefix.join("share/slow").exists());
    assert!(!prefix.join("conda-meta/slow-1.0-0.pkgr-partial").exists());
    assert_meta_matches_disk(&prefix);
}

#[test]
fn update_plan_and_remove_refusal_output() {
    let world = World::new();
    let channel = versions_channel(&world);
    let prefix = world.env("snap");
    let p = prefix.to_str().unwrap();
    assert_ok(&world.create(
        &prefix,
        channel.root().to_str().unwrap(),
        &["tool", "lib=1.0"],
    ));
    let out = world.run(&["update", "-p", p, "--dry-run", "lib"]);
    assert_ok(&out);
    snapshot!(&world, "update_plan", stdout(&out));
    let out = world.run(&["remove", "-p", p, "lib"]);
    snapshot!(&world, "remove_refusal", assert_fails(&out));
}

/// A cache on another filesystem than the environment (here /dev/shm, a
/// tmpfs, when it is one): hardlinks are impossible, so files are copied and
/// the record says so.
#[cfg(target_os = "linux")]
#[test]
fn a_cache_on_another_filesystem_is_copied_from() {
    use std::os::unix::fs::MetadataExt;
    let world = World::new();
    let shm = Path::new("/dev/shm");
    let same_device = |a: &Path, b: &Path| {
        fs_err::metadata(a).unwrap().dev() == fs_err::metadata(b).unwrap().dev()
    };
    if !shm.is_dir() || same_device(shm, world.path()) {
        eprintln!("skipped: /dev/shm is not a separate filesystem here");
        return;
    }
    let cache = tempfile::Builder::new()
        .prefix("pkgr-it-cache-")
        .tempdir_in(shm)
        .unwrap();
    let mut channel = LocalChannel::new(&world.path().join("channel"));
    channel.add(
        &Package::new("data", "1.0").file("share/a.txt", "a\n"),
        Format::Conda,
    );
    channel.write_repodata();
    let prefix = world.env("cross");
    let mut cmd = world.pkgr();
    cmd.env("PKGR_CACHE_DIR", cache.path()).args([
        "create",
        "-p",
        prefix.to_str().unwrap(),
        "-c",
        channel.root().to_str().unwrap(),
        "data",
    ]);
    let out = run_with_timeout(cmd, TIMEOUT);
    assert_ok(&out);
    assert_eq!(
        fs_err::read_to_string(prefix.join("share/a.txt")).unwrap(),
        "a\n"
    );
    assert_eq!(
        fs_err::metadata(prefix.join("share/a.txt"))
            .unwrap()
            .nlink(),
        1
    );
    assert_eq!(read_record(&prefix, "data-1.0-0")["link"]["type"], 3);
    assert!(fs_err::read_dir(cache.path().join("pkgs")).unwrap().count() > 0);
}

/// `install` keeps an installed package even when a newer one appears;
/// `update --all` moves it.
#[test]
fn update_all_moves_what_install_keeps() {
    let world = World::new();
    let mut channel = LocalChannel::new(&world.path().join("channel"));
    channel.add(
        &Package::new("lib", "1.0").file("share/lib-1.txt", "1"),
        Format::Conda,
    );
    channel.add(
        &Package::new("tool", "1.0")
            .depends("lib")
            .file("share/tool.txt", "t"),
        Format::Conda,
    );
    channel.write_repodata();
    let prefix = world.env("all");
    let p = prefix.to_str().unwrap();
    assert_ok(&world.create(&prefix, channel.root().to_str().unwrap(), &["tool"]));
    assert!(prefix.join("conda-meta/lib-1.0-0.json").is_file());

    channel.add(
        &Package::new("lib", "2.0").file("share/lib-2.txt", "2"),
        Format::Conda,
    );
    channel.add(
        &Package::new("other", "1.0").file("share/other.txt", "o"),
        Format::Conda,
    );
    channel.write_repodata();
    assert_ok(&world.run(&["install", "-p", p, "other"]));
    assert!(prefix.join("conda-meta/lib-1.0-0.json").is_file(), "kept");

    snapshot_failure!(
        &world,
        "install_all",
        world.run(&["install", "-p", p, "--all"])
    );
    assert_ok(&world.run(&["update", "-p", p, "--all"]));
    assert!(prefix.join("conda-meta/lib-2.0-0.json").is_file());
    assert!(!prefix.join("share/lib-1.txt").exists());
    assert!(prefix.join("share/lib-2.txt").is_file());
    assert!(prefix.join("share/other.txt").is_file());
    assert_meta_matches_disk(&prefix);
}
