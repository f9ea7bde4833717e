//! Hostile repodata (issue 22, items 9, 10 and 11): records whose file name,
//! name or build would make a cache or `conda-meta/` path leave where it
//! belongs, an http channel whose `base_url` points at local files, records
//! nothing can verify, and a full cache filesystem reported as what it is.
//! Every channel is built by the test; every would-be target path outside
//! the cache and the prefix is checked to be absent afterwards.

use std::path::{Path, PathBuf};
use std::process::Command;

use pkgr_test_support::{current_subdir, ChannelServer, Format, LocalChannel, Package};

use crate::common::{assert_fails, assert_ok, is_root, list_files, stderr, World};

/// A channel with a harmless package `ok` and a package `evil` (both
/// `.conda`), served as built; the test then edits `evil`'s record.
fn channel(root: &Path) -> LocalChannel {
    let mut channel = LocalChannel::new(root);
    channel.add(
        &Package::new("ok", "1.0").file("share/ok", "ok"),
        Format::Conda,
    );
    channel.add(
        &Package::new("evil", "1.0").file("share/evil", "evil"),
        Format::Conda,
    );
    channel.write_repodata();
    channel
}

/// Edits `<root>/<subdir>/repodata.json` in place.
fn edit_repodata(root: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = root.join(current_subdir()).join("repodata.json");
    let mut repodata: serde_json::Value =
        serde_json::from_slice(&fs_err::read(&path).unwrap()).unwrap();
    edit(&mut repodata);
    fs_err::write(&path, serde_json::to_vec_pretty(&repodata).unwrap()).unwrap();
}

/// Moves `evil`'s record to the key `file_name`, applying `edit` to it.
fn replace_evil(root: &Path, file_name: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    edit_repodata(root, |repodata| {
        let conda = repodata["packages.conda"].as_object_mut().unwrap();
        let mut record = conda.remove("evil-1.0-0.conda").unwrap();
        edit(&mut record);
        conda.insert(file_name.to_owned(), record);
    });
}

/// Writes the CEP-16 sharded form of each subdir beside its repodata.json.
fn add_shards(root: &Path, info: &[(&str, &str)]) {
    use pkgr_repodata::shards::{encode_msgpack_zst, json_to_msgpack};
    use rmpv::Value;
    use sha2::Digest;
    for subdir in [current_subdir(), "noarch"] {
        let dir = root.join(subdir);
        let repodata: serde_json::Value =
            serde_json::from_slice(&fs_err::read(dir.join("repodata.json")).unwrap()).unwrap();
        let mut by_name: std::collections::BTreeMap<String, serde_json::Value> =
            std::collections::BTreeMap::new();
        for section in ["packages", "packages.conda"] {
            for (file_name, record) in repodata[section].as_object().unwrap() {
                let shard = by_name
                    .entry(record["name"].as_str().unwrap().to_owned())
                    .or_insert_with(|| serde_json::json!({"packages": {}, "packages.conda": {}}));
                shard[section][file_name] = record.clone();
            }
        }
        let mut shards = Vec::new();
        for (name, shard) in by_name {
            let bytes = encode_msgpack_zst(&json_to_msgpack(&shard)).unwrap();
            let hash = sha2::Sha256::digest(&bytes).to_vec();
            fs_err::write(
                dir.join(format!("{}.msgpack.zst", hex::encode(&hash))),
                bytes,
            )
            .unwrap();
            shards.push((Value::from(name.as_str()), Value::Binary(hash)));
        }
        let mut info: Vec<(Value, Value)> = info
            .iter()
            .map(|(k, v)| (Value::from(*k), Value::from(*v)))
            .collect();
        info.push((Value::from("subdir"), Value::from(subdir)));
        let index = Value::Map(vec![
            (Value::from("version"), Value::from(1)),
            (Value::from("info"), Value::Map(info)),
            (Value::from("shards"), Value::Map(shards)),
        ]);
        fs_err::write(
            dir.join("repodata_shards.msgpack.zst"),
            encode_msgpack_zst(&index).unwrap(),
        )
        .unwrap();
    }
}

/// Files and directories below `dir` whose name contains `needle`.
fn named(dir: &Path, needle: &str) -> Vec<String> {
    list_files(dir)
        .into_iter()
        .filter(|f| f.contains(needle))
        .collect()
}

/// A build string with `/` and `..`: the cache entry would be
/// `pkgs/evil-1.0-x/../../../outside-<hash>` (the world's `outside-*`), its
/// lock `pkgs/.locks/evil-1.0-x/../../../outside-<hash>.lock` (the cache
/// root's). Refused, through repodata.json and through shards alike, with
/// the channel and the record named; nothing is written there, and the
/// harmless package of the same channel still installs.
#[test]
fn a_build_string_with_a_path_is_refused_through_repodata_and_shards() {
    let world = World::new();
    let plain = channel(&world.path().join("plain"));
    replace_evil(plain.root(), "evil-1.0-0.conda", |record| {
        record["build"] = serde_json::json!("x/../../../outside");
    });
    let sharded = world.path().join("sharded");
    copy_dir(plain.root(), &sharded);
    add_shards(&sharded, &[("base_url", ""), ("shards_base_url", "")]);
    let plain_server = ChannelServer::serve(plain.root());
    let sharded_server = ChannelServer::serve(&sharded);
    for (how, server) in [("json", &plain_server), ("shards", &sharded_server)] {
        let prefix = world.env(&format!("evil-{how}"));
        snapshot_messages!(
            &world,
            format!("build_string_with_a_path_{how}").as_str(),
            world.create(&prefix, server.url(), &["evil"])
        );
        assert!(!prefix.exists(), "{how}");
        // The one harmless package of the channel is not held hostage.
        assert_ok(&world.create(&world.env(&format!("ok-{how}")), server.url(), &["ok"]));
    }
    assert!(
        sharded_server
            .counts()
            .keys()
            .any(|p| p.ends_with(".msgpack.zst") && !p.contains("repodata_shards")),
        "the shards were used"
    );
    for place in [world.path(), &world.cache(), &world.cache().join("pkgs")] {
        assert!(
            named(place, "outside").is_empty(),
            "{:?}",
            named(place, "outside")
        );
    }
    assert!(named(&world.cache(), "evil").is_empty(), "never fetched");
}

/// A file name with a path in it (`evil-1.0-0/../../x.conda`): the record
/// says `evil-1.0-0`, the URL it makes leaves the subdir (the server's
/// `/x.conda`). Refused as a file name that is not the record's.
#[test]
fn a_file_name_with_a_path_is_refused() {
    let world = World::new();
    let plain = channel(&world.path().join("plain"));
    let subdir = plain.root().join(current_subdir());
    fs_err::copy(
        subdir.join("evil-1.0-0.conda"),
        plain.root().join("x.conda"),
    )
    .unwrap();
    replace_evil(plain.root(), "evil-1.0-0/../../x.conda", |_| {});
    let server = ChannelServer::serve(plain.root());
    let prefix = world.env("evil");
    snapshot_messages!(
        &world,
        "file_name_with_a_path",
        world.create(&prefix, server.url(), &["evil"])
    );
    assert_eq!(
        server.count("/x.conda"),
        0,
        "nothing fetched from outside the subdir"
    );
    assert!(!prefix.exists());
}

/// A record whose *name* climbs out (`../../../outside`): no spec can name
/// it, but a name glob matches any name the index has. Its cache lock would
/// be `pkgs/.locks/../../../outside-1.0-0-<hash>.lock`, in the world's root.
#[test]
fn a_name_with_a_path_is_never_chosen() {
    let world = World::new();
    let plain = channel(&world.path().join("plain"));
    let md5 = std::cell::RefCell::new(String::new());
    replace_evil(plain.root(), "../../../outside-1.0-0.conda", |record| {
        record["name"] = serde_json::json!("../../../outside");
        md5.replace(record["md5"].as_str().unwrap().to_owned());
    });
    let server = ChannelServer::serve(plain.root());
    let prefix = world.env("evil");
    let spec = format!("*[md5={}]", md5.borrow());
    let out = world.create(&prefix, server.url(), &[&spec]);
    assert_fails(&out);
    assert!(!prefix.exists());
    for place in [world.path(), &world.cache(), &world.cache().join("pkgs")] {
        assert!(
            named(place, "outside").is_empty(),
            "{:?}",
            named(place, "outside")
        );
    }
    assert_ok(&world.create(&world.env("ok"), server.url(), &["ok"]));
}

/// An http channel whose `info.base_url` (repodata.json), or whose shard
/// index's `base_url` or `shards_base_url`, points at `file://`: refused,
/// naming the URL; the local file it points at is never read. A `file://`
/// channel may still use a relative `base_url`.
#[test]
fn an_http_channel_may_not_point_at_local_files() {
    let world = World::new();
    let plain = channel(&world.path().join("plain"));
    // What the channel points at: a copy of its own linux-64 directory.
    let stash = world.path().join("stash");
    copy_dir(&plain.root().join(current_subdir()), &stash);
    let file_base = format!("file://{}/", stash.display());
    edit_repodata(plain.root(), |repodata| {
        repodata["info"]["base_url"] = serde_json::json!(file_base);
    });
    let server = ChannelServer::serve(plain.root());
    let prefix = world.env("json");
    snapshot_messages!(
        &world,
        "base_url_points_at_files",
        world.create(&prefix, server.url(), &["ok"])
    );
    assert!(!prefix.exists());

    for key in ["base_url", "shards_base_url"] {
        let sharded = world.path().join(format!("sharded-{key}"));
        copy_dir(plain.root(), &sharded);
        let mut info = vec![("base_url", ""), ("shards_base_url", "")];
        for entry in &mut info {
            if entry.0 == key {
                entry.1 = &file_base;
            }
        }
        add_shards(&sharded, &info);
        let server = ChannelServer::serve(&sharded);
        let prefix = world.env(key);
        snapshot_failure!(
            &world,
            format!("sharded_{key}_points_at_files").as_str(),
            world.create(&prefix, server.url(), &["ok"])
        );
        assert!(!prefix.exists());
    }
    assert!(
        named(&world.cache().join("pkgs"), "ok-1.0-0").is_empty(),
        "nothing taken from the stash"
    );

    // A local channel with a relative base_url works as before.
    let local = channel(&world.path().join("local"));
    let pkgs = local.root().join("pkgs");
    copy_dir(&local.root().join(current_subdir()), &pkgs);
    fs_err::remove_file(local.root().join(current_subdir()).join("ok-1.0-0.conda")).unwrap();
    edit_repodata(local.root(), |repodata| {
        repodata["info"]["base_url"] = serde_json::json!("../pkgs");
    });
    let prefix = world.env("local");
    assert_ok(&world.create(&prefix, &local.url(), &["ok"]));
    assert!(prefix.join("share/ok").is_file());
}

/// A record with neither sha256 nor md5 is refused by default, naming it;
/// `PKGR_ALLOW_UNVERIFIED_PACKAGES=1` (or `allow_unverified_packages: true`)
/// installs it with a warning naming it.
#[test]
fn a_record_without_checksums_needs_the_setting() {
    let world = World::new();
    let plain = channel(&world.path().join("plain"));
    replace_evil(plain.root(), "evil-1.0-0.conda", |record| {
        let record = record.as_object_mut().unwrap();
        record.remove("sha256");
        record.remove("md5");
    });
    let server = ChannelServer::serve(plain.root());
    let prefix = world.env("refused");
    // Only the unverified one is named.
    let err = snapshot_messages!(
        &world,
        "record_without_checksums",
        world.create(&prefix, server.url(), &["evil", "ok"])
    );
    assert!(!err.contains("ok-1.0-0"), "only the unverified one: {err}");
    assert!(!prefix.exists());
    assert!(
        named(&world.cache().join("pkgs"), "evil").is_empty(),
        "not fetched"
    );

    let prefix = world.env("allowed");
    let mut cmd = world.pkgr();
    cmd.env("PKGR_ALLOW_UNVERIFIED_PACKAGES", "1").args([
        "create",
        "-p",
        prefix.to_str().unwrap(),
        "-c",
        server.url(),
        "evil",
        "ok",
    ]);
    let out = crate::common::run_with_timeout(cmd, crate::common::TIMEOUT);
    assert_ok(&out);
    let err = stderr(&out);
    assert!(
        err.contains("warning: installing a package without a checksum")
            && err.contains("evil-1.0-0.conda"),
        "{err}"
    );
    assert!(prefix.join("share/evil").is_file());

    // The same from pkgr's configuration file.
    let config = world.path().join("home/.config/pkgr");
    fs_err::create_dir_all(&config).unwrap();
    fs_err::write(
        config.join("config.yaml"),
        "allow_unverified_packages: true\n",
    )
    .unwrap();
    assert_ok(&world.create(&world.env("configured"), server.url(), &["evil"]));
}

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Self> {
        fs_err::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Self(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// The cache on a full filesystem (a 256 KiB tmpfs; repodata.json of about
/// 1 MiB): the error says the cache's filesystem is full and names the
/// cache, not that the channel is unreachable.
#[test]
fn a_full_cache_filesystem_is_not_an_unreachable_channel() {
    if !is_root() {
        eprintln!("skipped: needs root to mount a small tmpfs as the cache");
        return;
    }
    let world = World::new();
    let plain = channel(&world.path().join("plain"));
    edit_repodata(plain.root(), |repodata| {
        repodata["info"]["padding"] = serde_json::json!("x".repeat(1 << 20));
    });
    let server = ChannelServer::serve(plain.root());
    let Some(_tmpfs) = Tmpfs::mount(&world.cache(), "256k") else {
        eprintln!("skipped: could not mount a tmpfs");
        return;
    };
    let prefix = world.env("full");
    // Not "unreachable": the whole message.
    snapshot_messages!(
        &world,
        "cache_full_while_fetching_repodata",
        world.create(&prefix, server.url(), &["ok"])
    );
}

fn copy_dir(from: &Path, to: &Path) {
    fs_err::create_dir_all(to).unwrap();
    for entry in fs_err::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs_err::copy(entry.path(), target).unwrap();
        }
    }
}
