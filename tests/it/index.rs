//! `pkgr index`: a folder of packages becomes a channel.

use pkgr_test_support::{sha256_hex, Format, Package};
use sha2::Digest;

use crate::common::{assert_ok, World};

#[test]
fn index_writes_repodata_with_checksums() {
    let world = World::new();
    let root = world.path().join("chan");
    let subdir = pkgr_test_support::current_subdir();
    let a = Package::new("alpha", "1.0")
        .depends("beta")
        .file("share/a", "a")
        .write(&root.join(subdir), Format::Conda);
    let b = Package::new("beta", "2.0")
        .noarch_generic()
        .file("share/b", "b")
        .write(&root.join("noarch"), Format::TarBz2);
    std::fs::write(
        root.join("noarch").join("broken-1-0.tar.bz2"),
        b"not a tarball",
    )
    .unwrap();
    let out = world.run(&["index", root.to_str().unwrap()]);
    assert_ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("skipping") && stderr.contains("broken-1-0.tar.bz2"),
        "{stderr}"
    );

    let repodata: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join(subdir).join("repodata.json")).unwrap())
            .unwrap();
    let record = &repodata["packages.conda"]["alpha-1.0-0.conda"];
    assert_eq!(record["sha256"], sha256_hex(&std::fs::read(&a).unwrap()));
    assert_eq!(record["size"], std::fs::metadata(&a).unwrap().len());
    assert_eq!(record["depends"][0], "beta");
    let noarch: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("noarch").join("repodata.json")).unwrap())
            .unwrap();
    assert_eq!(
        noarch["packages"]["beta-2.0-0.tar.bz2"]["sha256"],
        sha256_hex(&std::fs::read(&b).unwrap())
    );
    assert!(noarch["packages"].get("broken-1-0.tar.bz2").is_none());
    // repodata.json.zst beside each, holding the same JSON.
    for dir in [root.join(subdir), root.join("noarch")] {
        let zst = std::fs::read(dir.join("repodata.json.zst")).unwrap();
        assert_eq!(
            zstd::decode_all(&zst[..]).unwrap(),
            std::fs::read(dir.join("repodata.json")).unwrap()
        );
    }

    // The sharded form: every record of repodata.json is in its name's
    // shard (digests as bytes), the shards hash to their names, and a
    // channel served over HTTP is read through them.
    for dir in [root.join(subdir), root.join("noarch")] {
        let repodata: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("repodata.json")).unwrap()).unwrap();
        let index = pkgr_cache::shards::decode_msgpack_zst(
            &std::fs::read(dir.join("repodata_shards.msgpack.zst")).unwrap(),
        )
        .unwrap();
        let index = pkgr_cache::ShardIndex::parse(&index, &url::Url::parse("http://h/s/").unwrap())
            .unwrap();
        let mut seen = 0;
        for (name, hash) in &index.shards {
            let bytes =
                std::fs::read(dir.join(format!("{}.msgpack.zst", hex::encode(hash)))).unwrap();
            assert_eq!(sha2::Sha256::digest(&bytes).as_slice(), hash.as_slice());
            let shard = pkgr_cache::shards::msgpack_to_json(
                &pkgr_cache::shards::decode_msgpack_zst(&bytes).unwrap(),
            );
            for section in ["packages", "packages.conda"] {
                for (file_name, record) in shard[section].as_object().unwrap() {
                    assert_eq!(record["name"], name.as_str());
                    assert_eq!(record, &repodata[section][file_name], "{file_name}");
                    seen += 1;
                }
            }
        }
        let total = repodata["packages"].as_object().unwrap().len()
            + repodata["packages.conda"].as_object().unwrap().len();
        assert_eq!(seen, total);
    }
    let server = pkgr_test_support::ChannelServer::serve(&root);
    assert_ok(&world.create(&world.env("served"), server.url(), &["alpha"]));
    assert_eq!(server.count(&format!("/{subdir}/repodata.json")), 0);
    assert_eq!(
        server.count(&format!("/{subdir}/repodata_shards.msgpack.zst")),
        1
    );

    // The indexed folder works as a channel.
    let prefix = world.env("indexed");
    assert_ok(&world.create(&prefix, root.to_str().unwrap(), &["alpha"]));
    assert_eq!(
        std::fs::read_to_string(prefix.join("share/b")).unwrap(),
        "b"
    );
}
