//! Solver semantics as conda has them: channel priority (strict, flexible,
//! disabled), candidate order, the MatchSpec forms, depends/constrains,
//! pins, `--freeze-installed`, `--update-deps`, and `remove` pruning what
//! nothing needs any more. Dry runs on hand-written repodata where only the
//! solve matters; real packages where the environment changes.

use std::collections::BTreeMap;
use std::path::Path;

use pkgr_test_support::{current_subdir, Format, LocalChannel, Package};

use crate::common::{assert_ok, stderr, stdout, World};

/// Writes `<dir>/<subdir>/repodata.json` (and an empty noarch) from
/// `(file name, record)` pairs; the archives need not exist for a dry run.
fn repodata(dir: &Path, records: &[(&str, serde_json::Value)]) {
    let subdir = current_subdir();
    let mut packages = serde_json::Map::new();
    let mut conda = serde_json::Map::new();
    for (file, record) in records {
        let mut record = record.clone();
        record["subdir"] = serde_json::json!(subdir);
        if file.ends_with(".conda") {
            conda.insert((*file).to_owned(), record);
        } else {
            packages.insert((*file).to_owned(), record);
        }
    }
    for (sub, packages, conda) in [
        (subdir, packages, conda),
        ("noarch", serde_json::Map::new(), serde_json::Map::new()),
    ] {
        fs_err::create_dir_all(dir.join(sub)).unwrap();
        fs_err::write(
            dir.join(sub).join("repodata.json"),
            serde_json::to_string(&serde_json::json!({
                "info": {"subdir": sub},
                "packages": packages,
                "packages.conda": conda,
                "repodata_version": 1,
            }))
            .unwrap(),
        )
        .unwrap();
    }
}

/// A record `name-version-build` (build number from the build string's
/// trailing `_N`, else 0).
fn rec(
    name: &str,
    version: &str,
    build: &str,
    extra: serde_json::Value,
) -> (String, serde_json::Value) {
    let number: u64 = build
        .rsplit('_')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let mut record = serde_json::json!({
        "name": name, "version": version, "build": build, "build_number": number,
        "depends": [], "md5": format!("{:032x}", fxhash(&format!("{name}{version}{build}"))),
        "size": 100,
    });
    if let serde_json::Value::Object(extra) = extra {
        for (k, v) in extra {
            record[k] = v;
        }
    }
    (format!("{name}-{version}-{build}.tar.bz2"), record)
}

fn fxhash(text: &str) -> u128 {
    text.bytes().fold(0xcbf29ce484222325u128, |h, b| {
        (h ^ u128::from(b)).wrapping_mul(0x100000001b3)
    })
}

fn channel(world: &World, name: &str, records: &[(String, serde_json::Value)]) -> String {
    let dir = world.path().join(name);
    let records: Vec<(&str, serde_json::Value)> = records
        .iter()
        .map(|(f, r)| (f.as_str(), r.clone()))
        .collect();
    repodata(&dir, &records);
    dir.display().to_string()
}

/// `create --dry-run --json` → name → (version, build, channel dir name).
fn plan(
    world: &World,
    args: &[&str],
) -> Result<BTreeMap<String, (String, String, String)>, String> {
    let prefix = world.env("plan");
    let mut full = vec![
        "create",
        "--dry-run",
        "--json",
        "-p",
        prefix.to_str().unwrap(),
    ];
    full.extend_from_slice(args);
    let out = world.run(&full);
    if !out.status.success() {
        return Err(crate::common::failure_report(&out, &stderr(&out)));
    }
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Ok(plan["actions"]["LINK"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let channel = r["base_url"].as_str().unwrap().trim_end_matches('/');
            (
                r["name"].as_str().unwrap().to_owned(),
                (
                    r["version"].as_str().unwrap().to_owned(),
                    r["build_string"].as_str().unwrap().to_owned(),
                    channel.rsplit('/').next().unwrap().to_owned(),
                ),
            )
        })
        .collect())
}

fn version_of(plan: &BTreeMap<String, (String, String, String)>, name: &str) -> (String, String) {
    let (v, _, c) = &plan[name];
    (v.clone(), c.clone())
}

#[test]
fn channel_priority_strict_flexible_and_disabled() {
    let world = World::new();
    // conda's case: channel A has flask 0.12 and jinja2 2.9/2.10; only B
    // has jinja2 2.8. And `tool`: A has 1.0, B has 2.0.
    let a = channel(
        &world,
        "chan-a",
        &[
            rec(
                "flask",
                "0.12",
                "0",
                serde_json::json!({"depends": ["jinja2 >=2.4"]}),
            ),
            rec("jinja2", "2.9", "0", serde_json::json!({})),
            rec("jinja2", "2.10", "0", serde_json::json!({})),
            rec("tool", "1.0", "0", serde_json::json!({})),
        ],
    );
    let b = channel(
        &world,
        "chan-b",
        &[
            rec("jinja2", "2.8", "0", serde_json::json!({})),
            rec("tool", "2.0", "0", serde_json::json!({})),
        ],
    );
    let two = ["-c", a.as_str(), "-c", b.as_str()];
    let with = |extra: &[&str], specs: &[&str]| {
        let mut args: Vec<&str> = two.to_vec();
        args.extend_from_slice(extra);
        args.extend_from_slice(specs);
        plan(&world, &args)
    };
    // flexible (conda's default): a lower channel is used when the higher
    // one cannot satisfy the request...
    let p = with(&[], &["flask==0.12", "jinja2==2.8"]).unwrap();
    assert_eq!(version_of(&p, "jinja2"), ("2.8".into(), "chan-b".into()));
    let p = with(
        &["--channel-priority", "flexible"],
        &["flask==0.12", "jinja2==2.8"],
    )
    .unwrap();
    assert_eq!(version_of(&p, "jinja2"), ("2.8".into(), "chan-b".into()));
    // ...but the higher channel wins over a newer version below.
    let p = with(&[], &["tool"]).unwrap();
    assert_eq!(version_of(&p, "tool"), ("1.0".into(), "chan-a".into()));
    // strict: B's jinja2 is never considered, with a clear reason.
    for flags in [
        &["--channel-priority", "strict"][..],
        &["--strict-channel-priority"][..],
    ] {
        let err = with(flags, &["flask==0.12", "jinja2==2.8"]).unwrap_err();
        // Says "strict channel priority" (and no "because due to").
        snapshot_report!(&world, "strict_channel_priority", err);
        let p = with(flags, &["tool"]).unwrap();
        assert_eq!(version_of(&p, "tool"), ("1.0".into(), "chan-a".into()));
    }
    // disabled: the highest version wins whichever channel has it.
    let p = with(&["--channel-priority", "disabled"], &["tool"]).unwrap();
    assert_eq!(version_of(&p, "tool"), ("2.0".into(), "chan-b".into()));
    // The setting, from pkgr's config file; the flag wins over it.
    let config = world.path().join("home/.config/pkgr");
    fs_err::create_dir_all(&config).unwrap();
    fs_err::write(config.join("config.yaml"), "channel_priority: disabled\n").unwrap();
    let p = with(&[], &["tool"]).unwrap();
    assert_eq!(version_of(&p, "tool"), ("2.0".into(), "chan-b".into()));
    let p = with(&["--channel-priority", "flexible"], &["tool"]).unwrap();
    assert_eq!(version_of(&p, "tool"), ("1.0".into(), "chan-a".into()));
    snapshot_failure!(
        &world,
        "unknown_channel_priority",
        world.run(&[
            "create",
            "--dry-run",
            "-p",
            "/tmp/x",
            "--channel-priority",
            "sometimes",
            "tool",
        ])
    );
}

#[test]
fn candidates_are_ordered_as_conda_orders_them() {
    let world = World::new();
    let ch = channel(
        &world,
        "order",
        &[
            // Highest version first, whatever the build number.
            rec("ver", "1.10", "0", serde_json::json!({})),
            rec("ver", "1.9", "h_5", serde_json::json!({})),
            // Same version: the highest build number...
            rec("bld", "1.0", "a_1", serde_json::json!({})),
            rec("bld", "1.0", "b_2", serde_json::json!({})),
            // ...unless it has track_features, which conda deprioritises.
            rec("feat", "1.0", "plain_0", serde_json::json!({})),
            rec(
                "feat",
                "1.0",
                "tracked_3",
                serde_json::json!({"track_features": "debug"}),
            ),
            // Same version and build number: the newest timestamp.
            rec(
                "ts",
                "1.0",
                "old_0",
                serde_json::json!({"timestamp": 1_600_000_000_000u64}),
            ),
            rec(
                "ts",
                "1.0",
                "new_0",
                serde_json::json!({"timestamp": 1_700_000_000_000u64}),
            ),
        ],
    );
    let p = plan(&world, &["-c", &ch, "ver", "bld", "feat", "ts"]).unwrap();
    assert_eq!(p["ver"].0, "1.10");
    assert_eq!(p["bld"].1, "b_2");
    assert_eq!(p["feat"].1, "plain_0");
    assert_eq!(p["ts"].1, "new_0");
}

#[test]
fn every_matchspec_form_selects_what_conda_selects() {
    let world = World::new();
    let md5_of_b = rec("pick", "1.5", "hbbb_2", serde_json::json!({})).1["md5"]
        .as_str()
        .unwrap()
        .to_owned();
    let ch = channel(
        &world,
        "forms",
        &[
            rec("pick", "1.0", "haaa_0", serde_json::json!({})),
            rec("pick", "1.5", "hbbb_2", serde_json::json!({})),
            rec("pick", "1.5", "hccc_1", serde_json::json!({})),
            rec("pick", "2.0", "hddd_0", serde_json::json!({})),
            rec("pick", "2.1rc1", "heee_0", serde_json::json!({})),
        ],
    );
    let md5_spec = format!("pick[md5={md5_of_b}]");
    let any_name_md5_spec = format!("*[md5={md5_of_b}]");
    let channel_spec = format!("{ch}::pick<2");
    let cases: Vec<(&str, &str, &str)> = vec![
        // conda orders 2.1rc1 above 2.0 and does not leave pre-releases out.
        ("pick", "2.1rc1", "heee_0"),
        ("pick <2.1rc1", "2.0", "hddd_0"),
        ("pick>=1,<2", "1.5", "hbbb_2"),
        ("pick 1.*", "1.5", "hbbb_2"),
        ("pick=1.0", "1.0", "haaa_0"),
        ("pick==1.5", "1.5", "hbbb_2"),
        ("pick 1.5 hccc*", "1.5", "hccc_1"),
        ("pick=1.5=hccc_1", "1.5", "hccc_1"),
        (
            "pick[version='>=1,<2.1rc1',build_number='<2']",
            "2.0",
            "hddd_0",
        ),
        ("pick[build_number='>=2']", "1.5", "hbbb_2"),
        ("pick !=2.1rc1", "2.0", "hddd_0"),
        ("pick >=2.1rc1", "2.1rc1", "heee_0"),
        (md5_spec.as_str(), "1.5", "hbbb_2"),
        (any_name_md5_spec.as_str(), "1.5", "hbbb_2"),
        ("pi*[build=hccc_1]", "1.5", "hccc_1"),
        (channel_spec.as_str(), "1.5", "hbbb_2"),
    ];
    for (spec, version, build) in cases {
        let p = plan(&world, &["-c", &ch, spec]).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(
            (p["pick"].0.as_str(), p["pick"].1.as_str()),
            (version, build),
            "{spec}"
        );
    }
}

#[test]
fn depends_and_constrains_are_honoured() {
    let world = World::new();
    let ch = channel(
        &world,
        "deps",
        &[
            rec(
                "app",
                "1.0",
                "0",
                serde_json::json!({"depends": ["lib >=2"], "constrains": ["plugin <2"]}),
            ),
            rec("lib", "1.0", "0", serde_json::json!({})),
            rec("lib", "2.0", "0", serde_json::json!({})),
            rec("lib", "3.0", "0", serde_json::json!({})),
            rec("plugin", "1.0", "0", serde_json::json!({})),
            rec("plugin", "2.0", "0", serde_json::json!({})),
        ],
    );
    let p = plan(&world, &["-c", &ch, "app"]).unwrap();
    assert_eq!(p["lib"].0, "3.0");
    // A constraint does not install the package...
    assert!(!p.contains_key("plugin"));
    // ...but limits it when something asks for it.
    let p = plan(&world, &["-c", &ch, "app", "plugin"]).unwrap();
    assert_eq!(p["plugin"].0, "1.0");
    let err = plan(&world, &["-c", &ch, "app", "plugin>=2"]).unwrap_err();
    snapshot_report!(&world, "constrained_plugin", err);
    let err = plan(&world, &["-c", &ch, "app", "lib<2"]).unwrap_err();
    snapshot_report!(&world, "constrained_lib", err);
    // A name glob must single out one package.
    let err = plan(&world, &["-c", &ch, "*[version=1.0]"]).unwrap_err();
    snapshot_report!(&world, "glob_of_several_names", err);
}

/// libbase 0.9/1.0 (+1.1 added later), libmid 1.2 → libbase >=1.0, app 2.0 →
/// libmid, data; real packages, so environments really change.
fn env_channel(root: &Path) -> LocalChannel {
    let mut channel = LocalChannel::new(root);
    for version in ["0.9", "1.0"] {
        channel.add(
            &Package::new("libbase", version).file("lib/base.txt", format!("{version}\n")),
            Format::TarBz2,
        );
    }
    channel.add(
        &Package::new("libmid", "1.2")
            .depends("libbase >=1.0")
            .file("lib/mid.txt", "mid\n"),
        Format::Conda,
    );
    channel.add(
        &Package::new("data", "3")
            .noarch_generic()
            .file("share/data.txt", "d\n"),
        Format::TarBz2,
    );
    channel.add(
        &Package::new("app", "2.0")
            .depends("libmid")
            .depends("data")
            .file("bin/app.txt", "app\n"),
        Format::Conda,
    );
    channel.write_repodata();
    channel
}

fn installed(world: &World, prefix: &Path) -> BTreeMap<String, String> {
    let out = world.run(&["list", "--json", "-p", prefix.to_str().unwrap()]);
    assert_ok(&out);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                r["version"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn pins_freeze_installed_and_update_deps() {
    let world = World::new();
    let mut channel = env_channel(&world.path().join("channel"));
    let ch = channel.root().to_str().unwrap().to_owned();
    let prefix = world.env("pins");
    let p = prefix.to_str().unwrap();
    // --pin on create.
    assert_ok(&world.run(&[
        "create",
        "-p",
        p,
        "-c",
        &ch,
        "--pin",
        "libbase <1",
        "libbase",
    ]));
    assert_eq!(installed(&world, &prefix)["libbase"], "0.9");
    // conda-meta/pinned keeps libbase below 1: app (which needs >=1.0)
    // cannot be installed, and the error names the pin's package.
    fs_err::write(
        prefix.join("conda-meta/pinned"),
        "# pinned by the admin\nlibbase 0.9.*\n",
    )
    .unwrap();
    snapshot_failure!(
        &world,
        "pinned_in_conda_meta",
        world.run(&["install", "-p", p, "-c", &ch, "app"])
    );
    assert_ok(&world.run(&["update", "-p", p, "-c", &ch, "--all"]));
    assert_eq!(installed(&world, &prefix)["libbase"], "0.9");
    fs_err::remove_file(prefix.join("conda-meta/pinned")).unwrap();
    // --freeze-installed: libbase may not move, so app cannot come.
    snapshot_failure!(
        &world,
        "freeze_installed",
        world.run(&["install", "-p", p, "-c", &ch, "--freeze-installed", "app"])
    );
    assert_eq!(installed(&world, &prefix)["libbase"], "0.9");
    // Without it, libbase moves as app needs.
    assert_ok(&world.run(&["install", "-p", p, "-c", &ch, "app"]));
    assert_eq!(installed(&world, &prefix)["libbase"], "1.0");
    // A newer libbase appears: installing app again keeps what is there;
    // --update-deps moves app's dependencies to the newest allowed.
    channel.add(
        &Package::new("libbase", "1.1").file("lib/base.txt", "1.1\n"),
        Format::TarBz2,
    );
    channel.write_repodata();
    let out = world.run(&["install", "-p", p, "-c", &ch, "app"]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("Nothing to change"),
        "{}",
        stdout(&out)
    );
    assert_eq!(installed(&world, &prefix)["libbase"], "1.0");
    assert_ok(&world.run(&["install", "-p", p, "-c", &ch, "--update-deps", "app"]));
    assert_eq!(installed(&world, &prefix)["libbase"], "1.1");
    // The pinned_packages setting applies too.
    let config = world.path().join("home/.config/pkgr");
    fs_err::create_dir_all(&config).unwrap();
    fs_err::write(config.join("config.yaml"), "pinned_packages: ['data <3']\n").unwrap();
    snapshot_failure!(
        &world,
        "pinned_packages_setting",
        world.run(&[
            "create",
            "-p",
            world.env("pinned2").to_str().unwrap(),
            "-c",
            &ch,
            "app",
        ])
    );
    fs_err::remove_file(config.join("config.yaml")).unwrap();
    // --freeze-installed freezes what the request does not name.
    let frozen = world.env("frozen");
    let f = frozen.to_str().unwrap();
    assert_ok(&world.run(&["create", "-p", f, "-c", &ch, "libbase=0.9", "data"]));
    assert_ok(&world.run(&[
        "install",
        "-p",
        f,
        "-c",
        &ch,
        "--freeze-installed",
        "libbase=1.0",
    ]));
    assert_eq!(installed(&world, &frozen)["libbase"], "1.0");
}

#[test]
fn remove_takes_the_dependencies_nothing_needs_any_more() {
    let world = World::new();
    let channel = env_channel(&world.path().join("channel"));
    let ch = channel.root().to_str().unwrap();
    // Only app was asked for: removing it leaves nothing.
    let only_app = world.env("only-app");
    assert_ok(&world.create(&only_app, ch, &["app"]));
    assert_eq!(installed(&world, &only_app).len(), 4);
    let out = world.run(&["remove", "-p", only_app.to_str().unwrap(), "app"]);
    assert_ok(&out);
    assert!(installed(&world, &only_app).is_empty(), "{}", stdout(&out));
    // libbase was asked for too: it stays, what only app needed goes.
    let both = world.env("both");
    assert_ok(&world.create(&both, ch, &["app", "libbase"]));
    assert_ok(&world.run(&["remove", "-p", both.to_str().unwrap(), "app"]));
    assert_eq!(
        installed(&world, &both).into_keys().collect::<Vec<_>>(),
        ["libbase"]
    );
    // What was asked for first stays when what was installed later goes
    // (the history of every change counts).
    let later = world.env("later");
    assert_ok(&world.create(&later, ch, &["data"]));
    assert_ok(&world.run(&["install", "-p", later.to_str().unwrap(), "-c", ch, "app"]));
    assert_eq!(installed(&world, &later).len(), 4);
    assert_ok(&world.run(&["remove", "-p", later.to_str().unwrap(), "app"]));
    assert_eq!(
        installed(&world, &later).into_keys().collect::<Vec<_>>(),
        ["data"]
    );
    // --force removes only what it names.
    let forced = world.env("forced");
    assert_ok(&world.create(&forced, ch, &["app"]));
    assert_ok(&world.run(&["remove", "--force", "-p", forced.to_str().unwrap(), "app"]));
    assert_eq!(installed(&world, &forced).len(), 3);
}

#[test]
fn virtual_packages_are_detected_and_overridable() {
    let world = World::new();
    let ch = channel(
        &world,
        "virtual",
        &[
            rec(
                "newglibc",
                "1.0",
                "0",
                serde_json::json!({"depends": ["__glibc >=2.99"]}),
            ),
            rec(
                "gpu",
                "1.0",
                "0",
                serde_json::json!({"depends": ["__cuda >=12"]}),
            ),
            rec(
                "unixy",
                "1.0",
                "0",
                serde_json::json!({"depends": ["__unix", "__linux"]}),
            ),
            rec(
                "windowsy",
                "1.0",
                "0",
                serde_json::json!({"depends": ["__win"]}),
            ),
        ],
    );
    let with_env = |vars: &[(&str, &str)], spec: &str| {
        let mut cmd = world.pkgr();
        cmd.args([
            "create",
            "--dry-run",
            "--json",
            "-p",
            "/tmp/pkgr-never-created",
            "-c",
            &ch,
            spec,
        ]);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        crate::common::run_with_timeout(cmd, crate::common::TIMEOUT)
    };
    assert_ok(&with_env(&[], "unixy"));
    snapshot_failure!(&world, "needs_win", with_env(&[], "windowsy"));
    snapshot_failure!(
        &world,
        "needs_newer_glibc",
        with_env(&[("CONDA_OVERRIDE_GLIBC", "2.17")], "newglibc")
    );
    assert_ok(&with_env(&[("CONDA_OVERRIDE_GLIBC", "3.0")], "newglibc"));
    snapshot_failure!(
        &world,
        "needs_cuda",
        with_env(&[("CONDA_OVERRIDE_CUDA", "")], "gpu")
    );
    assert_ok(&with_env(&[("CONDA_OVERRIDE_CUDA", "12.4")], "gpu"));
    // info shows what a solve sees, overrides applied.
    let mut cmd = world.pkgr();
    cmd.args(["info", "--json"])
        .env("CONDA_OVERRIDE_CUDA", "12.4");
    let out = crate::common::run_with_timeout(cmd, crate::common::TIMEOUT);
    assert_ok(&out);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cuda: Vec<&serde_json::Value> = info["virtual_pkgs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v[0] == "__cuda")
        .collect();
    assert_eq!(cuda.len(), 1, "{info}");
    assert_eq!(cuda[0][1], "12.4");
}

#[test]
fn another_platform_gets_that_platform_s_virtual_packages() {
    let world = World::new();
    let dir = world.path().join("osx");
    fs_err::create_dir_all(dir.join("osx-arm64")).unwrap();
    fs_err::create_dir_all(dir.join("noarch")).unwrap();
    let (file, mut record) = rec(
        "macapp",
        "1.0",
        "0",
        serde_json::json!({"depends": ["__osx >=11", "__unix"]}),
    );
    record["subdir"] = serde_json::json!("osx-arm64");
    fs_err::write(
        dir.join("osx-arm64/repodata.json"),
        serde_json::json!({"info": {"subdir": "osx-arm64"}, "packages": {file: record}})
            .to_string(),
    )
    .unwrap();
    fs_err::write(
        dir.join("noarch/repodata.json"),
        serde_json::json!({"info": {"subdir": "noarch"}, "packages": {}}).to_string(),
    )
    .unwrap();
    let p = plan(
        &world,
        &[
            "--platform",
            "osx-arm64",
            "-c",
            dir.to_str().unwrap(),
            "macapp",
        ],
    )
    .unwrap();
    assert_eq!(p["macapp"].0, "1.0");
}
