//! `pkgr index`: a folder of packages becomes a channel.

use std::path::Path;

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
    fs_err::write(
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
        serde_json::from_slice(&fs_err::read(root.join(subdir).join("repodata.json")).unwrap())
            .unwrap();
    let record = &repodata["packages.conda"]["alpha-1.0-0.conda"];
    assert_eq!(record["sha256"], sha256_hex(&fs_err::read(&a).unwrap()));
    assert_eq!(record["size"], fs_err::metadata(&a).unwrap().len());
    assert_eq!(record["depends"][0], "beta");
    let noarch: serde_json::Value =
        serde_json::from_slice(&fs_err::read(root.join("noarch").join("repodata.json")).unwrap())
            .unwrap();
    assert_eq!(
        noarch["packages"]["beta-2.0-0.tar.bz2"]["sha256"],
        sha256_hex(&fs_err::read(&b).unwrap())
    );
    assert!(noarch["packages"].get("broken-1-0.tar.bz2").is_none());
    // repodata.json.zst beside each, holding the same JSON.
    for dir in [root.join(subdir), root.join("noarch")] {
        let zst = fs_err::read(dir.join("repodata.json.zst")).unwrap();
        assert_eq!(
            zstd::decode_all(&zst[..]).unwrap(),
            fs_err::read(dir.join("repodata.json")).unwrap()
        );
    }

    // The sharded form: every record of repodata.json is in its name's
    // shard (digests as bytes), the shards hash to their names, and a
    // channel served over HTTP is read through them.
    for dir in [root.join(subdir), root.join("noarch")] {
        let repodata: serde_json::Value =
            serde_json::from_slice(&fs_err::read(dir.join("repodata.json")).unwrap()).unwrap();
        let index = pkgr_repodata::shards::decode_msgpack_zst(
            &fs_err::read(dir.join("repodata_shards.msgpack.zst")).unwrap(),
        )
        .unwrap();
        let index = pkgr_repodata::shards::ShardIndex::parse(
            &index,
            &url::Url::parse("http://h/s/").unwrap(),
        )
        .unwrap();
        let mut seen = 0;
        for (name, hash) in &index.shards {
            let bytes =
                fs_err::read(dir.join(format!("{}.msgpack.zst", hex::encode(hash)))).unwrap();
            assert_eq!(sha2::Sha256::digest(&bytes).as_slice(), hash.as_slice());
            let shard = pkgr_repodata::shards::msgpack_to_json(
                &pkgr_repodata::shards::decode_msgpack_zst(&bytes).unwrap(),
            );
            for section in ["packages", "packages.conda"] {
                for (file_name, record) in shard[section].as_object().unwrap() {
                    assert_eq!(record["name"], name.as_str());
                    // As conda-index's: repodata.json's record plus the
                    // package's run_exports ({} for these test packages).
                    let mut expected = repodata[section][file_name].clone();
                    expected["run_exports"] = serde_json::json!({});
                    assert_eq!(record, &expected, "{file_name}");
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
    assert_eq!(fs_err::read_to_string(prefix.join("share/b")).unwrap(), "b");
}

/// Every key of a record `pkgr index` writes for the real packages of
/// `$PKGR_DATASETS/packages`, as conda-index writes it. Observed with
/// conda-index 0.13.0 (PyPI, `python -m conda_index --write-shards`, conda
/// from source on the path) on 2026-12-01, on copies of these channel folders.
/// conda-index keeps the package's info/index.json less `arch`, `platform`
/// and a few build-time keys, adds md5/sha256/size, and adds nothing else:
/// the 2015 `nano` keeps `requires` and `preferred_env` and gets no `subdir`.
#[rustfmt::skip]
const CONDA_INDEX_KEYS: &[(&str, &[&str])] = &[
    ("anaconda-main/linux-64/bcj-cffi-0.5.1-py310h295c915_0.tar.bz2", &["build", "build_number", "depends", "license", "md5", "name", "sha256", "size", "subdir", "timestamp", "version"]),
    ("anaconda-main/linux-64/zlib-1.2.11-h7b6447c_3.tar.bz2", &["build", "build_number", "depends", "license", "license_family", "md5", "name", "sha256", "size", "subdir", "timestamp", "version"]),
    ("anaconda-main/linux-64/zlib-1.2.11-h7b6447c_3.conda", &["build", "build_number", "depends", "license", "license_family", "md5", "name", "sha256", "size", "subdir", "timestamp", "version"]),
    ("anaconda-main/osx-64/zlib-1.2.11-h1de35cc_3.tar.bz2", &["build", "build_number", "depends", "license", "license_family", "md5", "name", "sha256", "size", "subdir", "timestamp", "version"]),
    ("anaconda-main/osx-64/zlib-1.2.11-h1de35cc_3.conda", &["build", "build_number", "depends", "license", "license_family", "md5", "name", "sha256", "size", "subdir", "timestamp", "version"]),
    ("anaconda-main/win-32/zlib-1.2.11-h62dcd97_3.tar.bz2", &["build", "build_number", "depends", "license", "license_family", "md5", "name", "sha256", "size", "subdir", "timestamp", "version"]),
    ("anaconda-main/win-32/zlib-1.2.11-h62dcd97_3.conda", &["build", "build_number", "depends", "license", "license_family", "md5", "name", "sha256", "size", "subdir", "timestamp", "version"]),
    ("anaconda-main/win-64/zlib-1.2.11-h62dcd97_3.tar.bz2", &["build", "build_number", "depends", "license", "license_family", "md5", "name", "sha256", "size", "subdir", "timestamp", "version"]),
    ("anaconda-main/win-64/zlib-1.2.11-h62dcd97_3.conda", &["build", "build_number", "depends", "license", "license_family", "md5", "name", "sha256", "size", "subdir", "timestamp", "version"]),
    ("anaconda-r/noarch/_r-mutex-1.0.1-anacondar_1.tar.bz2", &["build", "build_number", "depends", "license", "md5", "name", "noarch", "sha256", "size", "subdir", "timestamp", "version"]),
    ("conda-forge/linux-64/xtensor-io-0.10.3-hb585cf6_0.tar.bz2", &["build", "build_number", "depends", "license", "license_family", "md5", "name", "sha256", "size", "subdir", "timestamp", "version"]),
    ("conda-forge/noarch/conda-forge-repodata-patches-20180828-0.tar.bz2", &["build", "build_number", "depends", "license", "md5", "name", "noarch", "sha256", "size", "subdir", "timestamp", "version"]),
    ("conda-forge/osx-64/mock-2.0.0-py37_1000.tar.bz2", &["build", "build_number", "depends", "license", "md5", "name", "sha256", "size", "subdir", "timestamp", "version"]),
    ("conda-forge/osx-64/mock-2.0.0-py37_1000.conda", &["build", "build_number", "depends", "license", "md5", "name", "sha256", "size", "subdir", "timestamp", "version"]),
    ("legacy-format/osx-64/nano-2.4.1-0.tar.bz2", &["build", "build_number", "depends", "license", "md5", "name", "preferred_env", "requires", "sha256", "size", "version"]),
    ("user-channel/noarch/flask-0.11.1-py_0.tar.bz2", &["build", "build_number", "depends", "license", "md5", "name", "noarch", "sha256", "size", "subdir", "version"]),
    ("user-channel/osx-64/fly-2.5.2-0.tar.bz2", &["build", "build_number", "depends", "license", "md5", "name", "sha256", "size", "subdir", "version"]),
];

/// The keys of info/index.json conda-index 0.13.0 leaves out of a record
/// (`filter_fields` in conda_index/index/cache.py).
const CONDA_INDEX_DROPS: &[&str] = &[
    "arch",
    "binstar",
    "has_prefix",
    "machine",
    "mtime",
    "operatingsystem",
    "platform",
    "requires_features",
    "target-triplet",
    "ucs",
];

/// `pkgr index` on copies of the real channels of the datasets writes the
/// records conda-index writes: the key set of every record as observed
/// (`CONDA_INDEX_KEYS`), every value as the package's index.json has it,
/// the archive's checksums and size, `info`/`removed`/`repodata_version`
/// as conda-index has them, and the same records in the shards.
#[test]
#[ignore = "needs the conda datasets: set PKGR_DATASETS (.ci/run does)"]
fn index_real_packages_records_match_conda_index() {
    let datasets = crate::real_data::datasets();
    let world = World::new();
    let mut seen = std::collections::BTreeSet::new();
    for channel in [
        "anaconda-main",
        "anaconda-r",
        "conda-forge",
        "legacy-format",
        "user-channel",
    ] {
        let source = datasets.join("packages").join(channel);
        let root = world.path().join(channel);
        let mut archives = Vec::new();
        for subdir in fs_err::read_dir(&source).unwrap() {
            let subdir = subdir.unwrap();
            if !subdir.file_type().unwrap().is_dir() {
                continue;
            }
            let subdir_name = subdir.file_name().to_string_lossy().into_owned();
            fs_err::create_dir_all(root.join(&subdir_name)).unwrap();
            for file in fs_err::read_dir(subdir.path()).unwrap() {
                let file = file.unwrap().path();
                let name = file.file_name().unwrap().to_string_lossy().into_owned();
                if name.ends_with(".conda") || name.ends_with(".tar.bz2") {
                    let copy = root.join(&subdir_name).join(&name);
                    fs_err::copy(&file, &copy).unwrap();
                    archives.push((subdir_name.clone(), name, copy));
                }
            }
        }
        assert_ok(&world.run(&["index", root.to_str().unwrap()]));
        for (subdir, name, archive) in archives {
            let repodata: serde_json::Value = serde_json::from_slice(
                &fs_err::read(root.join(&subdir).join("repodata.json")).unwrap(),
            )
            .unwrap();
            let mut top: Vec<&str> = repodata
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            top.sort_unstable();
            assert_eq!(
                top,
                [
                    "info",
                    "packages",
                    "packages.conda",
                    "removed",
                    "repodata_version"
                ]
            );
            assert_eq!(repodata["info"], serde_json::json!({ "subdir": subdir }));
            assert_eq!(repodata["removed"], serde_json::json!([]));
            assert_eq!(repodata["repodata_version"], 1);
            let section = if name.ends_with(".conda") {
                "packages.conda"
            } else {
                "packages"
            };
            let record = repodata[section][&name].as_object().unwrap_or_else(|| {
                panic!("{channel}/{subdir}/{name} is not in {section}: {repodata:#}")
            });
            let key = format!("{channel}/{subdir}/{name}");
            let expected = CONDA_INDEX_KEYS
                .iter()
                .find(|(k, _)| *k == key)
                .unwrap_or_else(|| panic!("{key}: no conda-index key set observed for it"))
                .1;
            let mut keys: Vec<&str> = record.keys().map(String::as_str).collect();
            keys.sort_unstable();
            assert_eq!(keys, expected, "{key}: keys differ from conda-index's");

            // The values: the package's own index.json, less the dropped
            // keys, plus the archive's checksums and size.
            let index: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
                &pkgr_cache::archive::read_info_file(&archive, Path::new("info/index.json"))
                    .unwrap()
                    .unwrap(),
            )
            .unwrap();
            let bytes = fs_err::read(&archive).unwrap();
            let mut want: serde_json::Map<String, serde_json::Value> = index
                .into_iter()
                .filter(|(k, _)| !CONDA_INDEX_DROPS.contains(&k.as_str()))
                .collect();
            want.insert("md5".into(), hex::encode(md5::Md5::digest(&bytes)).into());
            want.insert("sha256".into(), sha256_hex(&bytes).into());
            want.insert("size".into(), bytes.len().into());
            assert_eq!(record, &want, "{key}: values differ from conda-index's");

            // The shard of the package's name holds the same record.
            let shards = pkgr_repodata::shards::decode_msgpack_zst(
                &fs_err::read(root.join(&subdir).join("repodata_shards.msgpack.zst")).unwrap(),
            )
            .unwrap();
            let shards = pkgr_repodata::shards::msgpack_to_json(&shards);
            assert_eq!(shards["info"]["subdir"], subdir.as_str());
            let hash = shards["shards"][record["name"].as_str().unwrap()]
                .as_str()
                .unwrap()
                .to_owned();
            let shard = pkgr_repodata::shards::msgpack_to_json(
                &pkgr_repodata::shards::decode_msgpack_zst(
                    &fs_err::read(root.join(&subdir).join(format!("{hash}.msgpack.zst"))).unwrap(),
                )
                .unwrap(),
            );
            let mut in_shard = shard[section][&name].clone();
            // conda-index's shard records add the package's run_exports.json,
            // {} when it has none.
            let run_exports =
                pkgr_cache::archive::read_info_file(&archive, Path::new("info/run_exports.json"))
                    .unwrap()
                    .map_or_else(
                        || serde_json::json!({}),
                        |t| serde_json::from_str(&t).unwrap(),
                    );
            assert_eq!(in_shard["run_exports"], run_exports, "{key}");
            in_shard.as_object_mut().unwrap().remove("run_exports");
            assert_eq!(&in_shard, &repodata[section][&name], "{key} in its shard");
            assert!(shard.get("removed").is_none(), "{key}: {shard}");
            seen.insert(key);
        }
    }
    let observed: std::collections::BTreeSet<String> = CONDA_INDEX_KEYS
        .iter()
        .map(|(k, _)| (*k).to_owned())
        .collect();
    assert_eq!(seen, observed, "the datasets' packages changed");
}

/// A package from before conda 4.3 names no `subdir` in its index.json, and
/// (as conda-index does) `pkgr index` adds none to its record; a solve takes
/// the subdir from the channel (read through the shards `pkgr index` writes),
/// from a local folder and over HTTP.
#[test]
#[ignore = "needs the conda datasets: set PKGR_DATASETS (.ci/run does)"]
fn index_record_without_subdir_is_planned_in_its_subdir() {
    let datasets = crate::real_data::datasets();
    let world = World::new();
    let root = world.path().join("chan");
    fs_err::create_dir_all(root.join("osx-64")).unwrap();
    // SYNTHETIC (anaconda-client's test data): index.json has platform osx
    // and arch x86_64 but no subdir.
    fs_err::copy(
        datasets.join("packages/synthetic/anaconda-client/foo-0.1-0.tar.bz2"),
        root.join("osx-64/foo-0.1-0.tar.bz2"),
    )
    .unwrap();
    assert_ok(&world.run(&["index", root.to_str().unwrap()]));
    let repodata: serde_json::Value =
        serde_json::from_slice(&fs_err::read(root.join("osx-64/repodata.json")).unwrap()).unwrap();
    let record = &repodata["packages"]["foo-0.1-0.tar.bz2"];
    assert!(record.get("subdir").is_none(), "{record}");
    assert!(record.get("platform").is_none(), "{record}");

    let server = pkgr_test_support::ChannelServer::serve(&root);
    let local = root.to_str().unwrap().to_owned();
    for (channel, how) in [(local.as_str(), "local"), (server.url(), "served")] {
        let prefix = world.env(how);
        let out = world.run(&[
            "create",
            "-p",
            prefix.to_str().unwrap(),
            "--platform",
            "osx-64",
            "--dry-run",
            "--json",
            "--override-channels",
            "-c",
            channel,
            "foo",
        ]);
        assert_ok(&out);
        let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let link = plan["actions"]["LINK"].as_array().unwrap();
        assert_eq!(link.len(), 1, "{plan:#}");
        assert_eq!(link[0]["subdir"], "osx-64", "{how}: {plan:#}");
    }
    assert_eq!(server.count("/osx-64/repodata_shards.msgpack.zst"), 1);
}
