//! Repodata as channels serve it: `repodata.json.zst` taken when a channel has
//! it, and an index by package name kept beside the cached copy so that a
//! solve reads only the records it needs. The solution is the same whichever
//! way the channel is served.

use std::collections::BTreeSet;
use std::path::Path;

use pkgr_test_support::{current_subdir, ChannelServer, Format, LocalChannel, Package};

use crate::common::{assert_ok, World};

/// Several versions and builds per name, across both formats and noarch, so
/// that the index has names with more than one span.
fn channel(root: &Path) -> LocalChannel {
    let mut channel = LocalChannel::new(root);
    for v in ["1.0", "1.1", "2.0"] {
        channel.add(&Package::new("zlib", v).file("lib/libz", v), Format::TarBz2);
        channel.add(&Package::new("zlib", v).file("lib/libz", v), Format::Conda);
        channel.add(
            &Package::new("python", &format!("3.1{}", &v[..1]))
                .depends("zlib >=1.1")
                .file("bin/python", "py"),
            Format::Conda,
        );
    }
    channel.add(
        &Package::new("tool", "1.0")
            .build("h0", 0)
            .depends("python >=3.12")
            .depends("data")
            .file("bin/tool", "t"),
        Format::Conda,
    );
    channel.add(
        &Package::new("tool", "1.0")
            .build("h1", 1)
            .depends("python >=3.12")
            .depends("data")
            .file("bin/tool", "t"),
        Format::Conda,
    );
    channel.add(
        &Package::new("data", "0.1")
            .noarch_generic()
            .file("share/d", "d"),
        Format::TarBz2,
    );
    channel.write_repodata();
    channel
}

/// Writes `<subdir>/repodata.json.zst` beside each `repodata.json`.
fn add_zst(root: &Path) {
    for subdir in [current_subdir(), "noarch"] {
        let json = std::fs::read(root.join(subdir).join("repodata.json")).unwrap();
        let zst = zstd::encode_all(&json[..], 3).unwrap();
        std::fs::write(root.join(subdir).join("repodata.json.zst"), zst).unwrap();
    }
}

/// The packages a dry-run create would link, as `name-version-build`.
fn solution(world: &World, channel: &str) -> BTreeSet<String> {
    let out = world.run(&[
        "create",
        "--dry-run",
        "--json",
        "-p",
        world.env("dry").to_str().unwrap(),
        "-c",
        channel,
        "tool",
    ]);
    assert_ok(&out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json["actions"]["LINK"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{}-{}-{}", r["name"], r["version"], r["build_string"]))
        .collect()
}

#[test]
fn zst_is_taken_when_served_and_the_solution_is_the_same_in_every_form() {
    let world = World::new();
    let plain = channel(&world.path().join("plain"));
    let with_zst = world.path().join("zst");
    copy_dir(plain.root(), &with_zst);
    add_zst(&with_zst);
    let plain_server = ChannelServer::serve(plain.root());
    let zst_server = ChannelServer::serve(&with_zst);

    let local = solution(&world, plain.root().to_str().unwrap());
    assert_eq!(local.len(), 4, "{local:?}");
    let over_json = solution(&world, plain_server.url());
    let over_zst = solution(&world, zst_server.url());
    assert_eq!(over_json, local);
    assert_eq!(over_zst, local);

    let linux = format!("/{}/repodata.json", current_subdir());
    assert_eq!(zst_server.count(&format!("{linux}.zst")), 1);
    assert_eq!(zst_server.count(&linux), 0, "the .zst was enough");
    assert_eq!(
        plain_server.count(&format!("{linux}.zst")),
        1,
        "probed once"
    );
    assert_eq!(plain_server.count(&linux), 1);

    // Every cached repodata has its index; a warm run reads through it, and
    // an index that is damaged (or from an older file) is rebuilt.
    let repodata = world.cache().join("repodata");
    let indexes: Vec<_> = std::fs::read_dir(&repodata)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "index"))
        .collect();
    assert_eq!(indexes.len(), 4, "two subdirs of two channels");
    for index in &indexes {
        std::fs::write(index, "pkgr-repodata-index 1\n{\"json_size\": 1}\n").unwrap();
    }
    assert_eq!(solution(&world, zst_server.url()), local);
    assert_eq!(solution(&world, plain_server.url()), local);
    let rebuilt: Vec<String> = indexes
        .iter()
        .map(|index| std::fs::read_to_string(index).unwrap())
        .collect();
    assert!(
        rebuilt.iter().all(|t| !t.contains("\"json_size\": 1}")),
        "{rebuilt:?}"
    );
    assert_eq!(
        rebuilt.iter().filter(|t| t.contains("\ntool ")).count(),
        2,
        "{rebuilt:?}"
    );
    assert_ok(&world.run(&["cache", "verify"]));
}

#[test]
fn broken_zst_is_not_stored() {
    let world = World::new();
    let plain = channel(&world.path().join("plain"));
    add_zst(plain.root());
    let zst = plain
        .root()
        .join(current_subdir())
        .join("repodata.json.zst");
    let good = std::fs::read(&zst).unwrap();
    std::fs::write(&zst, &good[..good.len() / 2]).unwrap();
    let server = ChannelServer::serve(plain.root());
    let out = world.run(&[
        "create",
        "--dry-run",
        "-p",
        world.env("dry").to_str().unwrap(),
        "-c",
        server.url(),
        "tool",
    ]);
    let err = crate::common::assert_fails(&out);
    assert!(
        err.contains("repodata.json.zst") && err.contains("broken"),
        "{err}"
    );
    std::fs::write(&zst, &good).unwrap();
    assert_eq!(solution(&world, server.url()).len(), 4);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn offline_uses_only_the_cache_and_refresh_revalidates() {
    let world = World::new();
    let plain = channel(&world.path().join("plain"));
    let server = ChannelServer::serve(plain.root());
    let url = server.url().to_owned();
    let linux = format!("/{}/repodata.json", current_subdir());
    let create = |env: &str, extra: &[&str], spec: &str| {
        let prefix = world.env(env);
        let mut args = vec!["create", "-y", "-p", prefix.to_str().unwrap(), "-c", &url];
        args.extend_from_slice(extra);
        args.push(spec);
        world.run(&args)
    };
    // Nothing cached yet: offline is a clear error, and asks nothing.
    let err = crate::common::assert_fails(&create("a", &["--offline"], "tool"));
    assert!(
        err.contains("--offline") && err.contains("not in the cache"),
        "{err}"
    );
    assert_eq!(server.count(&linux), 0);

    assert_ok(&create("a", &[], "tool"));
    assert_eq!(server.count(&linux), 1);
    // Fresh (max-age, TTL): not asked again; --refresh asks.
    assert_ok(&create("b", &[], "tool"));
    assert_eq!(server.count(&linux), 1);
    assert_ok(&create("c", &["--refresh"], "tool"));
    assert_eq!(server.count(&linux), 2);

    // Offline with everything cached works without the server...
    drop(server);
    assert_ok(&create("d", &["--offline"], "tool"));
    // ...and a package that was never downloaded is named.
    let err = crate::common::assert_fails(&create("e", &["--offline"], "zlib=1.0"));
    assert!(
        err.contains("zlib-1.0-0") && err.contains("--offline forbids"),
        "{err}"
    );
}
