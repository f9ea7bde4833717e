//! Repodata as channels serve it: `repodata.json.zst` taken when a channel has
//! it, and an index by package name kept beside the cached copy so that a
//! solve reads only the records it needs. The solution is the same whichever
//! way the channel is served.

use std::collections::BTreeSet;

use sha2::Digest;
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
        let json = fs_err::read(root.join(subdir).join("repodata.json")).unwrap();
        let zst = zstd::encode_all(&json[..], 3).unwrap();
        fs_err::write(root.join(subdir).join("repodata.json.zst"), zst).unwrap();
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
    let indexes: Vec<_> = fs_err::read_dir(&repodata)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "index"))
        .collect();
    assert_eq!(
        indexes.len(),
        6,
        "two subdirs of three channels (local too)"
    );
    for index in &indexes {
        fs_err::write(index, "pkgr-repodata-index 1\n{\"json_size\": 1}\n").unwrap();
    }
    assert_eq!(solution(&world, zst_server.url()), local);
    assert_eq!(solution(&world, plain_server.url()), local);
    assert_eq!(solution(&world, plain.root().to_str().unwrap()), local);
    let rebuilt: Vec<String> = indexes
        .iter()
        .map(|index| fs_err::read_to_string(index).unwrap())
        .collect();
    assert!(
        rebuilt.iter().all(|t| !t.contains("\"json_size\": 1}")),
        "{rebuilt:?}"
    );
    assert_eq!(
        rebuilt.iter().filter(|t| t.contains("\ntool ")).count(),
        3,
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
    let good = fs_err::read(&zst).unwrap();
    fs_err::write(&zst, &good[..good.len() / 2]).unwrap();
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
    // Without the download line of noarch (done or not when linux-64 fails).
    snapshot_messages!(&world, "broken_zst", out);
    fs_err::write(&zst, &good).unwrap();
    assert_eq!(solution(&world, server.url()).len(), 4);
}

/// Writes the CEP-16 sharded form of each subdir beside its repodata.json:
/// `repodata_shards.msgpack.zst` and one `<sha256>.msgpack.zst` per name,
/// digests as msgpack bytes.
fn add_shards(root: &Path) {
    use rmpv::Value;
    for subdir in [current_subdir(), "noarch"] {
        let dir = root.join(subdir);
        let repodata: serde_json::Value =
            serde_json::from_slice(&fs_err::read(dir.join("repodata.json")).unwrap()).unwrap();
        let mut by_name: std::collections::BTreeMap<String, [Vec<(Value, Value)>; 2]> =
            std::collections::BTreeMap::new();
        for (i, section) in ["packages", "packages.conda"].into_iter().enumerate() {
            for (file_name, record) in repodata[section].as_object().unwrap() {
                let name = record["name"].as_str().unwrap().to_owned();
                let fields = record
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| {
                        let value = match (k.as_str(), v) {
                            ("sha256" | "md5", serde_json::Value::String(h)) => {
                                Value::Binary(hex::decode(h).unwrap())
                            }
                            _ => json_to_msgpack(v),
                        };
                        (Value::from(k.as_str()), value)
                    })
                    .collect();
                by_name.entry(name).or_default()[i]
                    .push((Value::from(file_name.as_str()), Value::Map(fields)));
            }
        }
        let mut shards = Vec::new();
        for (name, [tar_bz2, conda]) in by_name {
            let shard = Value::Map(vec![
                (Value::from("packages"), Value::Map(tar_bz2)),
                (Value::from("packages.conda"), Value::Map(conda)),
                (Value::from("removed"), Value::Array(Vec::new())),
            ]);
            let bytes = msgpack_zst(&shard);
            let hash = sha2::Sha256::digest(&bytes).to_vec();
            fs_err::write(
                dir.join(format!("{}.msgpack.zst", hex::encode(&hash))),
                bytes,
            )
            .unwrap();
            shards.push((Value::from(name.as_str()), Value::Binary(hash)));
        }
        let index = Value::Map(vec![
            (Value::from("version"), Value::from(1)),
            (
                Value::from("info"),
                Value::Map(vec![
                    (Value::from("base_url"), Value::from("")),
                    (Value::from("shards_base_url"), Value::from("")),
                    (Value::from("subdir"), Value::from(subdir)),
                ]),
            ),
            (Value::from("shards"), Value::Map(shards)),
        ]);
        fs_err::write(dir.join("repodata_shards.msgpack.zst"), msgpack_zst(&index)).unwrap();
    }
}

fn msgpack_zst(value: &rmpv::Value) -> Vec<u8> {
    let mut raw = Vec::new();
    rmpv::encode::write_value(&mut raw, value).unwrap();
    zstd::encode_all(&raw[..], 3).unwrap()
}

fn json_to_msgpack(value: &serde_json::Value) -> rmpv::Value {
    use rmpv::Value;
    match value {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => n
            .as_u64()
            .map(Value::from)
            .or_else(|| n.as_i64().map(Value::from))
            .unwrap_or_else(|| Value::from(n.as_f64().unwrap())),
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(json_to_msgpack).collect()),
        serde_json::Value::Object(o) => Value::Map(
            o.iter()
                .map(|(k, v)| (Value::from(k.as_str()), json_to_msgpack(v)))
                .collect(),
        ),
    }
}

#[test]
fn a_sharded_channel_gives_the_same_solution_fetching_only_the_shards_it_needs() {
    let world = World::new();
    let plain = channel(&world.path().join("plain"));
    let local = solution(&world, plain.root().to_str().unwrap());
    let sharded = world.path().join("sharded");
    copy_dir(plain.root(), &sharded);
    add_shards(&sharded);
    let server = ChannelServer::serve(&sharded);
    assert_eq!(solution(&world, server.url()), local);
    let counts = server.counts();
    let linux = format!("/{}/", current_subdir());
    assert_eq!(
        server.count(&format!("{linux}repodata_shards.msgpack.zst")),
        1
    );
    assert_eq!(
        server.count(&format!("{linux}repodata.json")),
        0,
        "{counts:?}"
    );
    assert_eq!(
        server.count(&format!("{linux}repodata.json.zst")),
        0,
        "{counts:?}"
    );
    let shards_fetched = counts
        .keys()
        .filter(|p| p.ends_with(".msgpack.zst") && !p.contains("repodata_shards"))
        .count();
    // tool, python, zlib (linux-64) and data (noarch); not `unrelated`.
    assert_eq!(shards_fetched, 4, "{counts:?}");

    // A real install from it, and a warm run that fetches nothing again.
    let prefix = world.env("installed");
    assert_ok(&world.create(&prefix, server.url(), &["tool"]));
    assert!(prefix.join("bin/tool").is_file());
    let before = server.counts();
    assert_eq!(solution(&world, server.url()), local);
    let after = server.counts();
    assert_eq!(
        before
            .iter()
            .filter(|(p, _)| p.ends_with(".msgpack.zst"))
            .collect::<BTreeSet<_>>(),
        after
            .iter()
            .filter(|(p, _)| p.ends_with(".msgpack.zst"))
            .collect::<BTreeSet<_>>(),
        "warm: no shard or index fetched again"
    );
}

#[test]
fn a_shard_that_does_not_match_its_hash_is_refused_and_not_cached() {
    let world = World::new();
    let plain = channel(&world.path().join("plain"));
    add_shards(plain.root());
    let dir = plain.root().join(current_subdir());
    // Replace the bytes of python's shard, keeping its name (the hash).
    let index = pkgr_repodata::shards::decode_msgpack_zst(
        &fs_err::read(dir.join("repodata_shards.msgpack.zst")).unwrap(),
    )
    .unwrap();
    let index = pkgr_repodata::shards::ShardIndex::parse(
        &index,
        &url::Url::parse("http://x/linux-64/").unwrap(),
    )
    .unwrap();
    let python = hex::encode(index.shards["python"]);
    let shard = dir.join(format!("{python}.msgpack.zst"));
    let mut bytes = fs_err::read(&shard).unwrap();
    bytes.push(0);
    fs_err::write(&shard, bytes).unwrap();
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
    // Names the shard of python; says "checksum mismatch".
    snapshot_messages!(&world, "shard_checksum_mismatch", out);
    assert!(
        !world
            .cache()
            .join("repodata/shards")
            .join(format!("{python}.msgpack.zst"))
            .exists(),
        "not cached"
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
    snapshot_failure!(
        &world,
        "offline_without_cached_repodata",
        create("a", &["--offline"], "tool")
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
    snapshot_failure!(
        &world,
        "offline_package_not_downloaded",
        create("e", &["--offline"], "zlib=1.0")
    );
}
