//! `create -f`: environment.yml, spec lists, @EXPLICIT lists, conda-lock and
//! pixi.lock files; `env export` and the round trips export → create.

use std::collections::BTreeSet;
use std::path::Path;

use pkgr_test_support::{sha256_hex, ChannelServer, Format, LocalChannel, Package};

use crate::common::{assert_ok, complete_entries, stderr, stdout, World};

/// A channel: `app` (linux-64, .conda) → `libmid` (.tar.bz2) → `libbase`,
/// and `data` (noarch); `app` prints the variable an environment file sets.
fn channel(root: &Path) -> LocalChannel {
    let mut channel = LocalChannel::new(root);
    let base = Package::new("libbase", "1.0").file("lib/base.txt", "base\n");
    let old_base = Package::new("libbase", "0.9").file("lib/base.txt", "old\n");
    let mid = Package::new("libmid", "1.2")
        .build("h1_0", 0)
        .depends("libbase >=1.0")
        .file("lib/mid.txt", "mid\n");
    let data = Package::new("data", "3")
        .noarch_generic()
        .file("share/data.txt", "data\n");
    let app = Package::new("app", "2.0")
        .depends("libmid")
        .depends("data")
        .executable("bin/app", "#!/bin/sh\necho \"app ${APP_MODE:-none}\"\n");
    channel.add(&base, Format::TarBz2);
    channel.add(&old_base, Format::Conda);
    channel.add(&mid, Format::TarBz2);
    channel.add(&data, Format::TarBz2);
    channel.add(&app, Format::Conda);
    channel.write_repodata();
    channel
}

/// name-version-build → url of every record of an environment.
fn installed(prefix: &Path) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for entry in fs_err::read_dir(prefix.join("conda-meta")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let record: serde_json::Value =
                serde_json::from_slice(&fs_err::read(&path).unwrap()).unwrap();
            out.insert((
                format!(
                    "{}-{}-{}",
                    record["name"].as_str().unwrap(),
                    record["version"].as_str().unwrap(),
                    record["build"].as_str().unwrap()
                ),
                record["url"].as_str().unwrap().to_owned(),
            ));
        }
    }
    out
}

fn record(prefix: &Path, stem: &str) -> serde_json::Value {
    serde_json::from_slice(
        &fs_err::read(prefix.join("conda-meta").join(format!("{stem}.json"))).unwrap(),
    )
    .unwrap()
}

#[test]
fn environment_yml_gives_name_channels_specs_and_variables() {
    let world = World::new();
    let channel = channel(&world.path().join("channel"));
    let file = world.path().join("environment.yml");
    fs_err::write(
        &file,
        format!(
            "name: fromfile\nchannels:\n  - {}\n  - nodefaults\ndependencies:\n  - app >=2\n  - libbase=1.0\nvariables:\n  APP_MODE: yaml\n",
            channel.root().display()
        ),
    )
    .unwrap();
    let out = world.run(&["create", "-f", file.to_str().unwrap()]);
    assert_ok(&out);
    let prefix = world.path().join("root/envs/fromfile");
    let names: Vec<String> = installed(&prefix).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["app-2.0-0", "data-3-0", "libbase-1.0-0", "libmid-1.2-h1_0"]
    );
    // The variables are the environment's: conda-meta/state, applied by run.
    let state: serde_json::Value =
        serde_json::from_slice(&fs_err::read(prefix.join("conda-meta/state")).unwrap()).unwrap();
    assert_eq!(state["env_vars"]["APP_MODE"], "yaml");
    let out = world.run(&["run", "-n", "fromfile", "app"]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "app yaml\n");
    // The requested specs are those of the file.
    assert_eq!(record(&prefix, "app-2.0-0")["requested_spec"], "app >=2");

    // -n on the command line wins over the file's name; `env create` is
    // `create`, as conda scripts spell it.
    let out = world.run(&["env", "create", "-n", "other", "-f", file.to_str().unwrap()]);
    assert_ok(&out);
    assert!(world.path().join("root/envs/other/conda-meta").is_dir());
    // `env update -f` installs what a file adds.
    let more = world.path().join("more.yml");
    fs_err::write(
        &more,
        format!(
            "channels: [{}]\ndependencies: [data]\n",
            channel.root().display()
        ),
    )
    .unwrap();
    let out = world.run(&["env", "update", "-n", "other", "-f", more.to_str().unwrap()]);
    assert_ok(&out);
    let out = world.run(&["list", "-n", "other", "--json"]);
    assert!(stdout(&out).contains("\"data\""));
}

#[test]
fn a_pip_section_is_refused_naming_its_entries() {
    let world = World::new();
    let channel = channel(&world.path().join("channel"));
    let file = world.path().join("environment.yml");
    fs_err::write(
        &file,
        format!(
            "name: withpip\nchannels: [{}]\ndependencies:\n  - app\n  - pip:\n    - httpx==0.27\n    - rich\n",
            channel.root().display()
        ),
    )
    .unwrap();
    snapshot_failure!(
        &world,
        "pip_section_entries",
        world.run(&["create", "-f", file.to_str().unwrap()])
    );
    assert!(!world.path().join("root/envs/withpip").exists());
    // An unknown key is a warning naming it (a misspelt `dependencies:`
    // would otherwise give an environment without packages).
    fs_err::write(
        &file,
        format!(
            "name: typo\nchannels: [{}]\ndependencies: [app]\ndependecies: [libbase]\n",
            channel.root().display()
        ),
    )
    .unwrap();
    let out = world.run(&["create", "-f", file.to_str().unwrap()]);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("unknown key `dependecies`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn spec_lists_are_read_for_create_and_install() {
    let world = World::new();
    let channel = channel(&world.path().join("channel"));
    let ch = channel.root().to_str().unwrap();
    let specs = world.path().join("specs.txt");
    fs_err::write(&specs, "# what we need\nlibbase <1\n\n").unwrap();
    let prefix = world.env("specs");
    let out = world.run(&[
        "create",
        "-p",
        prefix.to_str().unwrap(),
        "-c",
        ch,
        "--file",
        specs.to_str().unwrap(),
    ]);
    assert_ok(&out);
    let names: Vec<String> = installed(&prefix).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["libbase-0.9-0"]);
    fs_err::write(&specs, "data\n").unwrap();
    let out = world.run(&[
        "install",
        "-p",
        prefix.to_str().unwrap(),
        "-c",
        ch,
        "-f",
        specs.to_str().unwrap(),
    ]);
    assert_ok(&out);
    let names: Vec<String> = installed(&prefix).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["data-3-0", "libbase-0.9-0"]);
}

/// Creates `app` from the served channel, exports it in every form and
/// creates it again from each export: the same packages from the same URLs.
#[test]
fn export_then_create_round_trips_in_every_form() {
    let world = World::new();
    let channel = channel(&world.path().join("channel"));
    let server = ChannelServer::serve(channel.root());
    let original = world.env("original");
    let out = world.create(&original, server.url(), &["app", "libbase=1.0"]);
    assert_ok(&out);
    let want = installed(&original);
    assert_eq!(want.len(), 4);

    // environment.yml with every package pinned to its build.
    let yml = world.path().join("exported.yml");
    let out = world.run(&[
        "env",
        "export",
        "-p",
        original.to_str().unwrap(),
        "-f",
        yml.to_str().unwrap(),
    ]);
    assert_ok(&out);
    let text = fs_err::read_to_string(&yml).unwrap();
    assert!(text.contains("- app=2.0=0"), "{text}");
    assert!(text.contains(server.url()), "{text}");
    let copy = world.env("copy-yml");
    assert_ok(&world.run(&[
        "create",
        "-p",
        copy.to_str().unwrap(),
        "-f",
        yml.to_str().unwrap(),
    ]));
    assert_eq!(installed(&copy), want);

    // --from-history: only what was asked for.
    let out = world.run(&[
        "env",
        "export",
        "-p",
        original.to_str().unwrap(),
        "--from-history",
    ]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains("- app\n") && text.contains("- libbase=1.0\n"),
        "{text}"
    );
    assert!(!text.contains("libmid"), "{text}");

    // @EXPLICIT lists, with md5 and with sha256: no repodata is read.
    for (form, flags) in [
        ("md5", vec!["--explicit"]),
        ("sha256", vec!["--explicit", "--sha256"]),
    ] {
        let list = world.path().join(format!("explicit-{form}.txt"));
        let mut args = vec!["env", "export", "-p", original.to_str().unwrap()];
        args.extend(flags);
        args.extend(["-f", list.to_str().unwrap()]);
        assert_ok(&world.run(&args));
        let text = fs_err::read_to_string(&list).unwrap();
        assert!(text.contains("@EXPLICIT"), "{text}");
        let copy = world.env(&format!("copy-{form}"));
        let repodata_before = server.count("/noarch/repodata.json");
        // A fresh cache: the archives are fetched (and checked) again.
        let mut cmd = world.pkgr();
        cmd.env("PKGR_CACHE_DIR", world.path().join(format!("cache-{form}")))
            .args([
                "create",
                "-p",
                copy.to_str().unwrap(),
                "-f",
                list.to_str().unwrap(),
            ]);
        let out = crate::common::run_with_timeout(cmd, crate::common::TIMEOUT);
        assert_ok(&out);
        assert_eq!(installed(&copy), want, "{form}");
        assert_eq!(
            server.count("/noarch/repodata.json"),
            repodata_before,
            "{form}"
        );
        // The records carry the metadata of the archives' index.json.
        let app = record(&copy, "app-2.0-0");
        assert_eq!(
            app["depends"],
            serde_json::json!(["libmid", "data"]),
            "{form}"
        );
        assert!(app["sha256"].is_string() && app["md5"].is_string(), "{app}");
        assert!(app["size"].as_u64().unwrap() > 0);
        // Both round trips reproduce conda-meta's records exactly.
        let original_app = record(&original, "app-2.0-0");
        for key in [
            "name",
            "version",
            "build",
            "build_number",
            "depends",
            "subdir",
            "url",
            "md5",
            "sha256",
            "size",
            "channel",
        ] {
            assert_eq!(app[key], original_app[key], "{form}: {key}");
        }
    }
}

#[test]
fn an_explicit_list_with_a_wrong_checksum_changes_nothing() {
    let world = World::new();
    let channel = channel(&world.path().join("channel"));
    let server = ChannelServer::serve(channel.root());
    let base = channel
        .root()
        .join(pkgr_test_support::current_subdir())
        .join("libbase-1.0-0.tar.bz2");
    let good = sha256_hex(&fs_err::read(&base).unwrap());
    let data = channel.root().join("noarch/data-3-0.tar.bz2");
    let data_sha = sha256_hex(&fs_err::read(&data).unwrap());
    let subdir = pkgr_test_support::current_subdir();
    let list = world.path().join("explicit.txt");
    let bad = "0".repeat(64);
    fs_err::write(
        &list,
        format!(
            "# platform: {subdir}\n@EXPLICIT\n{url}/noarch/data-3-0.tar.bz2#sha256:{data_sha}\n{url}/{subdir}/libbase-1.0-0.tar.bz2#{bad}\n",
            url = server.url()
        ),
    )
    .unwrap();
    let prefix = world.env("bad");
    // Without the download lines: the two finish in either order.
    snapshot_messages!(
        &world,
        "explicit_checksum_mismatch",
        world.run(&[
            "create",
            "-p",
            prefix.to_str().unwrap(),
            "-f",
            list.to_str().unwrap(),
        ])
    );
    assert!(!prefix.exists(), "a failed create leaves no environment");
    assert_ok(&world.run(&["cache", "verify"]));
    assert!(complete_entries(&world.cache()) <= 1);
    // Fixed, it installs.
    fs_err::write(
        &list,
        format!(
            "@EXPLICIT\n{url}/noarch/data-3-0.tar.bz2#sha256:{data_sha}\n{url}/{subdir}/libbase-1.0-0.tar.bz2#sha256:{good}\n",
            url = server.url()
        ),
    )
    .unwrap();
    assert_ok(&world.run(&[
        "create",
        "-p",
        prefix.to_str().unwrap(),
        "-f",
        list.to_str().unwrap(),
    ]));
    assert_eq!(installed(&prefix).len(), 2);
    // A list for another platform is refused, naming it.
    fs_err::write(
        &list,
        format!(
            "# platform: osx-arm64\n@EXPLICIT\n{}/noarch/data-3-0.tar.bz2\n",
            server.url()
        ),
    )
    .unwrap();
    snapshot_failure!(
        &world,
        "explicit_for_another_platform",
        world.run(&[
            "create",
            "-y",
            "-p",
            prefix.to_str().unwrap(),
            "-f",
            list.to_str().unwrap(),
        ])
    );
    // And a lock file takes no specs beside it.
    fs_err::write(
        &list,
        format!("@EXPLICIT\n{}/noarch/data-3-0.tar.bz2\n", server.url()),
    )
    .unwrap();
    snapshot_failure!(
        &world,
        "lock_file_with_specs",
        world.run(&[
            "create",
            "-y",
            "-p",
            prefix.to_str().unwrap(),
            "-f",
            list.to_str().unwrap(),
            "app",
        ])
    );
}

/// A pixi.lock (format 6) and a conda-lock.yml (format 1) naming the served
/// channel's packages install exactly those, without reading repodata.
#[test]
fn pixi_and_conda_lock_files_install_without_solving() {
    let world = World::new();
    let channel = channel(&world.path().join("channel"));
    let server = ChannelServer::serve(channel.root());
    let subdir = pkgr_test_support::current_subdir();
    let url = server.url();
    let packages = [
        (
            subdir,
            "libbase-1.0-0.tar.bz2",
            "libbase",
            "1.0",
            "0",
            vec![],
        ),
        (
            subdir,
            "libmid-1.2-h1_0.tar.bz2",
            "libmid",
            "1.2",
            "h1_0",
            vec!["libbase >=1.0"],
        ),
    ];
    let mut pixi_envs = String::new();
    let mut pixi_packages = String::new();
    let mut conda_lock = format!(
        "version: 1\nmetadata:\n  channels:\n  - url: {url}\n    used_env_vars: []\n  content_hash:\n    {subdir}: x\n  platforms:\n  - {subdir}\n  sources:\n  - environment.yml\npackage:\n"
    );
    for (sub, file, name, version, build, depends) in &packages {
        let bytes = fs_err::read(channel.root().join(sub).join(file)).unwrap();
        let sha = sha256_hex(&bytes);
        let md5 = {
            use md5::Digest;
            hex::encode(md5::Md5::digest(&bytes))
        };
        pixi_envs.push_str(&format!("        - conda: {url}/{sub}/{file}\n"));
        pixi_packages.push_str(&format!(
            "  - conda: {url}/{sub}/{file}\n    sha256: {sha}\n    md5: {md5}\n    depends: [{}]\n    size: {}\n",
            depends.iter().map(|d| format!("'{d}'")).collect::<Vec<_>>().join(", "),
            bytes.len()
        ));
        conda_lock.push_str(&format!(
            "- name: {name}\n  version: '{version}'\n  manager: conda\n  platform: {subdir}\n  dependencies: {{{}}}\n  url: {url}/{sub}/{file}\n  hash:\n    md5: {md5}\n    sha256: {sha}\n  category: main\n  optional: false\n",
            depends
                .iter()
                .map(|d| {
                    let (n, v) = d.split_once(' ').unwrap();
                    format!("{n}: '{v}'")
                })
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let _ = (name, version, build);
    }
    let pixi = format!(
        "version: 6\nenvironments:\n  default:\n    channels:\n      - url: {url}/\n    packages:\n      {subdir}:\n{pixi_envs}packages:\n{pixi_packages}"
    );
    let pixi_path = world.path().join("pixi.lock");
    fs_err::write(&pixi_path, pixi).unwrap();
    let conda_lock_path = world.path().join("conda-lock.yml");
    fs_err::write(&conda_lock_path, conda_lock).unwrap();
    for (what, file) in [("pixi", &pixi_path), ("conda-lock", &conda_lock_path)] {
        let prefix = world.env(what);
        let out = world.run(&[
            "create",
            "-p",
            prefix.to_str().unwrap(),
            "-f",
            file.to_str().unwrap(),
        ]);
        assert_ok(&out);
        let names: Vec<String> = installed(&prefix).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["libbase-1.0-0", "libmid-1.2-h1_0"], "{what}");
        assert_eq!(
            record(&prefix, "libmid-1.2-h1_0")["depends"],
            serde_json::json!(["libbase >=1.0"]),
            "{what}"
        );
    }
    assert_eq!(server.count(&format!("/{subdir}/repodata.json")), 0);
    assert_eq!(server.count("/noarch/repodata.json"), 0);
    // A pixi environment that is not in the file is named in the error.
    snapshot_failure!(
        &world,
        "unknown_lock_environment",
        world.run(&[
            "create",
            "-p",
            world.env("nope").to_str().unwrap(),
            "-f",
            pixi_path.to_str().unwrap(),
            "--lock-environment",
            "test",
        ])
    );
}

/// How many conda packages a lock file lists for linux-64, counted from the
/// raw YAML (independently of pkgr-envfile): conda-lock's `main` category,
/// pixi's `default` environment.
fn count_linux_64(text: &str) -> usize {
    let value: serde_yaml::Value = serde_yaml::from_str(text).unwrap();
    if let Some(packages) = value["package"].as_sequence() {
        return packages
            .iter()
            .filter(|p| {
                p["platform"] == "linux-64"
                    && p["manager"] == "conda"
                    && (p["category"] == "main"
                        || p["categories"]
                            .as_sequence()
                            .is_some_and(|c| c.iter().any(|c| c == "main")))
            })
            .count();
    }
    value["environments"]["default"]["packages"]["linux-64"]
        .as_sequence()
        .map_or(0, |p| p.iter().filter(|p| p.get("conda").is_some()).count())
}

/// The real lock files of `$PKGR_DATASETS/specs` give, through the real
/// binary, a dry-run plan of exactly their linux-64 packages, or the refusal
/// they call for (no download: a dry run of a lock file fetches nothing).
#[test]
#[ignore = "needs the conda datasets: set PKGR_DATASETS (.ci/run does)"]
fn real_lock_files_plan_their_packages() {
    let datasets = pkgr_test_support::datasets();
    let specs = Path::new(&datasets).join("specs");
    let world = World::new();
    // (file, the snapshot of the refusal it calls for).
    let cases = [
        ("explicit/rattler/xtensor_linux-64.txt", None),
        ("explicit/rattler/python-explicit-env-linux-64.txt", None),
        ("explicit/conda-libmamba-solver/scipipe.linux-64.lock", None),
        ("conda-lock/conda-lock-tests/zlib/conda-linux-64.lock", None),
        (
            "conda-lock/conda-lock-tests/test-environment-blas-mkl/conda-lock.yml",
            None,
        ),
        (
            "conda-lock/conda-lock-tests/test-multiple-categories/conda-lock.yml",
            None,
        ),
        ("rattler-lock/pixi-examples/cpp-sdl/pixi.lock", None),
        (
            "rattler-lock/pixi-examples/simple-calculator/pixi.lock",
            None,
        ),
        (
            "conda-lock/conda-lock-tests/test-lockfile/conda-lock.yml",
            // Names the pip package `easy-cache==1.1.0`.
            Some("lock_with_pip_package"),
        ),
        (
            "explicit/rattler/python-explicit-env-osx-64.txt",
            // "is for osx-64, not linux-64".
            Some("explicit_for_osx_64"),
        ),
    ];
    let mut planned = 0;
    for (file, refusal) in cases {
        let path = specs.join(file);
        let text = fs_err::read_to_string(&path).unwrap();
        let out = world.run(&[
            "create",
            "--dry-run",
            "--json",
            "--platform",
            "linux-64",
            "-p",
            world.env("plan").to_str().unwrap(),
            "-f",
            path.to_str().unwrap(),
        ]);
        if let Some(refusal) = refusal {
            snapshot_failure!(&world, refusal, out, "[DATASETS]" => datasets);
            continue;
        }
        assert_ok(&out);
        let expected = if text.contains("@EXPLICIT") {
            text.lines()
                .skip_while(|l| l.trim() != "@EXPLICIT")
                .filter(|l| l.starts_with("http") || l.starts_with("file:"))
                .count()
        } else {
            count_linux_64(&text)
        };
        let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let link = plan["actions"]["LINK"].as_array().unwrap();
        assert_eq!(link.len(), expected, "{file}");
        for record in link {
            let url = record["url"].as_str().unwrap();
            assert!(
                text.contains(url.rsplit('/').next().unwrap()),
                "{file}: {url}"
            );
            let subdir = record["subdir"].as_str().unwrap();
            assert!(
                subdir == "linux-64" || subdir == "noarch",
                "{file}: {subdir}"
            );
        }
        planned += link.len();
    }
    assert!(planned > 100, "only {planned} packages planned");
    eprintln!(
        "planned {planned} packages from {} real lock files",
        cases.len()
    );
}
