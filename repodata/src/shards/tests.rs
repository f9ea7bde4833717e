use super::*;

#[test]
#[ignore = "needs the conda datasets: set PKGR_DATASETS (.ci/run does)"]
fn the_real_cep16_files_are_read() {
    let datasets = pkgr_test_support::datasets();
    let dir = std::path::Path::new(&datasets).join("packages/anaconda-main/linux-64");
    let bytes = fs_err::read(dir.join("repodata_shards.msgpack.zst")).unwrap();
    let subdir = Url::parse("https://example.invalid/main/linux-64/").unwrap();
    let index = ShardIndex::parse(&decode_msgpack_zst(&bytes).unwrap(), &subdir).unwrap();
    assert_eq!(index.packages_base, subdir);
    assert_eq!(index.shards_base, subdir);
    let zlib = index.shards["zlib"];
    let shard_bytes = fs_err::read(dir.join(format!("{}.msgpack.zst", hex::encode(zlib)))).unwrap();
    assert_eq!(Sha256::digest(&shard_bytes).as_slice(), zlib.as_slice());
    let shard = msgpack_to_json(&decode_msgpack_zst(&shard_bytes).unwrap());
    let record: rattler_conda_types::PackageRecord =
        serde_json::from_value(shard["packages.conda"]["zlib-1.2.11-h7b6447c_3.conda"].clone())
            .unwrap();
    assert_eq!(record.version.to_string(), "1.2.11");
    assert_eq!(
        record.sha256.map(hex::encode).as_deref(),
        Some("f33afff2144e1d6c4cf2e3e184937db8bf825b4537df74662aea5ee207b6a31b")
    );
}

#[test]
fn binary_digests_become_hex_and_bases_resolve() {
    let value = rmpv::Value::Map(vec![(
        rmpv::Value::from("sha256"),
        rmpv::Value::Binary(vec![0xab; 32]),
    )]);
    assert_eq!(msgpack_to_json(&value)["sha256"], "ab".repeat(32));
    let subdir = Url::parse("https://h/c/linux-64").unwrap();
    assert_eq!(
        resolve_base(&subdir, Some("../shards")).unwrap().as_str(),
        "https://h/c/shards/"
    );
    assert_eq!(
        resolve_base(&subdir, Some("https://cdn/x"))
            .unwrap()
            .as_str(),
        "https://cdn/x/"
    );
    assert_eq!(
        resolve_base(&subdir, None).unwrap().as_str(),
        "https://h/c/linux-64/"
    );
}

#[test]
fn an_http_channel_may_point_only_at_http() {
    let https = Url::parse("https://h/c/linux-64/").unwrap();
    let file = Url::parse("file:///srv/c/linux-64/").unwrap();
    let index = |base: &str| {
        rmpv::Value::Map(vec![
            (
                rmpv::Value::from("info"),
                rmpv::Value::Map(vec![(
                    rmpv::Value::from("base_url"),
                    rmpv::Value::from(base),
                )]),
            ),
            (rmpv::Value::from("shards"), rmpv::Value::Map(Vec::new())),
        ])
    };
    let err = ShardIndex::parse(&index("file:///etc/"), &https).unwrap_err();
    assert!(
        err.contains("info.base_url points at file:///etc/"),
        "{err}"
    );
    assert!(ShardIndex::parse(&index("ftp://h/x/"), &https).is_err());
    assert!(ShardIndex::parse(&index("http://cdn/x/"), &https).is_ok());
    // A local channel keeps its relative (and local) bases.
    let local = ShardIndex::parse(&index("../pkgs"), &file).unwrap();
    assert_eq!(local.packages_base.as_str(), "file:///srv/c/pkgs/");
    assert!(ShardIndex::parse(&index("https://cdn/x/"), &file).is_ok());
    assert!(ShardIndex::parse(&index("data:text/plain,x"), &file).is_err());
    let base = Url::parse("file:///etc/").unwrap();
    assert!(check_base_scheme(&https, &base, "info.shards_base_url")
        .unwrap_err()
        .contains("info.shards_base_url"));
}
