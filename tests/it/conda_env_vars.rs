//! conda's environment variables, read as conda reads them: `CONDA_ENVS_PATH`
//! / `CONDA_ENVS_DIRS`, `CONDA_PKGS_DIRS`, `CONDA_CHANNELS`,
//! `CONDA_CHANNEL_PRIORITY`, `CONDA_SUBDIR`, `CONDA_ALWAYS_YES` and
//! `CONDA_DEFAULT_ENV`; over `.condarc`, under pkgr's own `PKGR_*` and flags.

use std::path::Path;
use std::process::{Command, Output};

use pkgr_test_support::{current_subdir, Format, LocalChannel, Package};

use crate::common::{assert_fails, assert_ok, run_with_timeout, stdout, World, TIMEOUT};

/// Every variable this module's tests set, and those that would change what
/// they see if the machine running them had them set.
const CONDA_VARS: [&str; 16] = [
    "CONDA_ENVS_PATH",
    "CONDA_ENVS_DIRS",
    "CONDA_PKGS_DIRS",
    "CONDA_CHANNELS",
    "CONDA_CHANNEL_PRIORITY",
    "MAMBA_CHANNEL_PRIORITY",
    "CONDA_SUBDIR",
    "MAMBA_PLATFORM",
    "CONDA_ALWAYS_YES",
    "CONDA_DEFAULT_ENV",
    "CONDA_PREFIX",
    "CONDARC",
    "PKGR_CONFIG",
    "XDG_CONFIG_HOME",
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
];

/// A subdir other than this machine's.
fn other_subdir() -> &'static str {
    if current_subdir() == "osx-arm64" {
        "linux-64"
    } else {
        "osx-arm64"
    }
}

/// `tool` 1.0 for this machine and 2.0 for [`other_subdir`].
fn tool_channel(root: &Path) -> LocalChannel {
    let mut channel = LocalChannel::new(root);
    channel.add(
        &Package::new("tool", "1.0").file("share/tool.txt", "here\n"),
        Format::Conda,
    );
    channel.add(
        &Package::new("tool", "2.0")
            .subdir(other_subdir())
            .file("share/tool.txt", "there\n"),
        Format::Conda,
    );
    channel.write_repodata();
    channel
}

/// `pkgr` in `world` without PKGR_ROOT (so that the envs directories come
/// from the configuration), with none of [`CONDA_VARS`] but `vars`.
fn pkgr(world: &World, vars: &[(&str, &Path)], args: &[&str]) -> Output {
    let mut cmd: Command = world.pkgr();
    cmd.env_remove("PKGR_ROOT");
    for var in CONDA_VARS {
        cmd.env_remove(var);
    }
    for (var, value) in vars {
        cmd.env(var, value);
    }
    cmd.args(args);
    run_with_timeout(cmd, TIMEOUT)
}

fn config_json(out: &Output) -> serde_json::Value {
    assert_ok(out);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn condarc(world: &World, text: &str) {
    let home = world.path().join("home");
    fs_err::create_dir_all(&home).unwrap();
    fs_err::write(home.join(".condarc"), text).unwrap();
}

#[test]
fn envs_path_is_where_named_environments_are_made_and_found() {
    let world = World::new();
    let channel = tool_channel(&world.path().join("channel"));
    let ch = channel.root().to_str().unwrap();
    let x = world.path().join("x");
    let vars = [("CONDA_ENVS_PATH", x.as_path())];
    assert_ok(&pkgr(
        &world,
        &vars,
        &["create", "-n", "e", "-c", ch, "tool"],
    ));
    assert!(x.join("e/conda-meta").is_dir());
    let out = pkgr(&world, &vars, &["env", "list", "--json"]);
    let listed = config_json(&out);
    assert_eq!(listed["envs"][0], x.join("e").to_str().unwrap());
    assert_ok(&pkgr(&world, &vars, &["list", "-n", "e"]));
    // Without it, pkgr's own directory: `e` is not there.
    assert_fails(&pkgr(&world, &[], &["list", "-n", "e"]));

    // A `:`-separated list: a new environment goes to the first writable
    // directory (nothing can be made in /proc), an existing one is found
    // in any.
    let y = world.path().join("y");
    let list = format!("/proc/pkgr-not-here:{}:{}", y.display(), x.display());
    let vars = [("CONDA_ENVS_DIRS", Path::new(&list))];
    assert_ok(&pkgr(
        &world,
        &vars,
        &["create", "-n", "f", "-c", ch, "tool"],
    ));
    assert!(y.join("f/conda-meta").is_dir());
    assert_ok(&pkgr(&world, &vars, &["list", "-n", "e"]));

    // Over `.condarc` (before its list, as conda merges lists); PKGR_ROOT
    // over both.
    condarc(&world, &format!("envs_dirs: [{}]\n", y.display()));
    let vars = [("CONDA_ENVS_PATH", x.as_path())];
    let settings = config_json(&pkgr(&world, &vars, &["config", "list", "--json"]));
    let home = world.path().join("home");
    assert_eq!(
        settings["settings"]["envs_dirs"]["value"],
        format!("[{}, {}]", x.display(), y.display())
    );
    assert_eq!(
        settings["settings"]["envs_dirs"]["origin"],
        format!("$CONDA_ENVS_PATH + {}", home.join(".condarc").display())
    );
    let root = world.path().join("root");
    let vars = [("CONDA_ENVS_PATH", x.as_path()), ("PKGR_ROOT", &root)];
    let settings = config_json(&pkgr(&world, &vars, &["config", "list", "--json"]));
    assert_eq!(settings["settings"]["envs_dirs"]["origin"], "$PKGR_ROOT");
}

#[test]
fn envs_dirs_and_envs_path_together_are_refused() {
    let world = World::new();
    let x = world.path().join("x");
    let out = pkgr(
        &world,
        &[("CONDA_ENVS_PATH", &x), ("CONDA_ENVS_DIRS", &x)],
        &["config", "list"],
    );
    snapshot_failure!(&world, "envs_dirs_and_envs_path", out);
}

#[test]
fn pkgs_dirs_is_the_cache_unless_pkgr_says_otherwise() {
    let world = World::new();
    let channel = tool_channel(&world.path().join("channel"));
    let ch = channel.root().to_str().unwrap();
    let p = world.path().join("p");
    let rc = world.path().join("rc");
    condarc(&world, &format!("pkgs_dirs: [{}]\n", rc.display()));
    // `,`-separated, the first writable one taken.
    let list = format!("/proc/pkgr-not-here, {}", p.display());
    let mut cmd = world.pkgr();
    cmd.env_remove("PKGR_CACHE_DIR");
    for var in CONDA_VARS {
        cmd.env_remove(var);
    }
    let prefix = world.env("a");
    cmd.env("CONDA_PKGS_DIRS", &list).args([
        "create",
        "-p",
        prefix.to_str().unwrap(),
        "-c",
        ch,
        "tool",
    ]);
    assert_ok(&run_with_timeout(cmd, TIMEOUT));
    assert!(p.join("pkgs").is_dir(), "no cache in {}", p.display());
    assert!(!rc.exists());
    assert!(!world.cache().exists());

    let mut cmd = world.pkgr();
    cmd.env_remove("PKGR_CACHE_DIR");
    for var in CONDA_VARS {
        cmd.env_remove(var);
    }
    cmd.env("CONDA_PKGS_DIRS", &list)
        .args(["config", "list", "--json"]);
    let settings = config_json(&run_with_timeout(cmd, TIMEOUT));
    assert_eq!(
        settings["settings"]["pkgs_dirs"]["value"],
        format!("[{}]", p.display())
    );
    assert_eq!(
        settings["settings"]["pkgs_dirs"]["origin"],
        "$CONDA_PKGS_DIRS"
    );
    // PKGR_CACHE_DIR (set by the world) and --cache-dir win.
    let vars = [("CONDA_PKGS_DIRS", p.as_path())];
    let settings = config_json(&pkgr(&world, &vars, &["config", "list", "--json"]));
    assert_eq!(
        settings["settings"]["pkgs_dirs"]["origin"],
        "$PKGR_CACHE_DIR"
    );
    let settings = config_json(&pkgr(
        &world,
        &vars,
        &["config", "list", "--json", "--cache-dir", "/tmp/elsewhere"],
    ));
    assert_eq!(settings["settings"]["pkgs_dirs"]["origin"], "--cache-dir");
}

#[test]
fn subdir_is_the_platform_solved_for() {
    let world = World::new();
    let channel = tool_channel(&world.path().join("channel"));
    let ch = channel.root().to_str().unwrap();
    let prefix = world.env("dry");
    let args = [
        "create",
        "--dry-run",
        "--json",
        "-p",
        prefix.to_str().unwrap(),
        "-c",
        ch,
        "tool",
    ];
    let planned = |out: &Output| {
        let plan = config_json(out);
        let link = &plan["actions"]["LINK"][0];
        (
            link["subdir"].as_str().unwrap().to_owned(),
            link["version"].as_str().unwrap().to_owned(),
        )
    };
    let other = Path::new(other_subdir());
    let out = pkgr(&world, &[("CONDA_SUBDIR", other)], &args);
    assert_eq!(planned(&out), (other_subdir().to_owned(), "2.0".to_owned()));
    assert!(!prefix.exists());
    // micromamba's spelling too.
    let out = pkgr(&world, &[("MAMBA_PLATFORM", other)], &args);
    assert_eq!(planned(&out).0, other_subdir());
    // --platform over it.
    let mut with_flag = args.to_vec();
    with_flag.extend(["--platform", current_subdir()]);
    let out = pkgr(&world, &[("CONDA_SUBDIR", other)], &with_flag);
    assert_eq!(
        planned(&out),
        (current_subdir().to_owned(), "1.0".to_owned())
    );
    // `.condarc`'s `subdir`, and the variable over it.
    condarc(&world, &format!("subdir: {}\n", other_subdir()));
    assert_eq!(planned(&pkgr(&world, &[], &args)).0, other_subdir());
    let here = Path::new(current_subdir());
    let out = pkgr(&world, &[("CONDA_SUBDIR", here)], &args);
    assert_eq!(planned(&out).0, current_subdir());
    // A platform nobody knows.
    let out = pkgr(&world, &[("CONDA_SUBDIR", Path::new("amiga-68k"))], &args);
    snapshot_failure!(&world, "subdir_unknown", out);
}

#[test]
fn channels_are_used_without_c() {
    let world = World::new();
    let channel = tool_channel(&world.path().join("channel"));
    let vars = [("CONDA_CHANNELS", channel.root())];
    let prefix = world.env("a");
    let p = prefix.to_str().unwrap();
    assert_ok(&pkgr(&world, &vars, &["create", "-p", p, "tool"]));
    assert!(prefix.join("share/tool.txt").is_file());
    // -c over it: a channel that does not exist is not asked.
    let nowhere = world.path().join("nowhere");
    let ch = channel.root().to_str().unwrap();
    let vars = [("CONDA_CHANNELS", nowhere.as_path())];
    let prefix = world.env("b");
    let p = prefix.to_str().unwrap();
    assert_ok(&pkgr(&world, &vars, &["create", "-p", p, "-c", ch, "tool"]));
    // Before `.condarc`'s channels (conda merges lists); a `,`-separated list.
    condarc(&world, "channels: [from-condarc]\n");
    let list = format!("{}, other", channel.root().display());
    let vars = [("CONDA_CHANNELS", Path::new(&list))];
    let settings = config_json(&pkgr(&world, &vars, &["config", "list", "--json"]));
    assert_eq!(
        settings["settings"]["channels"]["value"],
        format!("[{}, other, from-condarc]", channel.root().display())
    );
}

#[test]
fn channel_priority_changes_the_solve() {
    let world = World::new();
    let high = world.path().join("high");
    let mut first = LocalChannel::new(&high);
    first.add(&Package::new("tool", "1.0"), Format::Conda);
    first.write_repodata();
    let low = world.path().join("low");
    let mut second = LocalChannel::new(&low);
    second.add(&Package::new("tool", "2.0"), Format::Conda);
    second.write_repodata();
    let prefix = world.env("dry");
    let args = [
        "create",
        "--dry-run",
        "--json",
        "-p",
        prefix.to_str().unwrap(),
        "-c",
        high.to_str().unwrap(),
        "-c",
        low.to_str().unwrap(),
        "tool",
    ];
    let version = |out: &Output| {
        config_json(out)["actions"]["LINK"][0]["version"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    condarc(&world, "channel_priority: strict\n");
    assert_eq!(version(&pkgr(&world, &[], &args)), "1.0");
    // Over `.condarc`.
    let vars = [("CONDA_CHANNEL_PRIORITY", Path::new("disabled"))];
    assert_eq!(version(&pkgr(&world, &vars, &args)), "2.0");
    let settings = config_json(&pkgr(&world, &vars, &["config", "list", "--json"]));
    assert_eq!(
        settings["settings"]["channel_priority"]["origin"],
        "$CONDA_CHANNEL_PRIORITY"
    );
    // The flag over it.
    let mut with_flag = args.to_vec();
    with_flag.push("--strict-channel-priority");
    assert_eq!(version(&pkgr(&world, &vars, &with_flag)), "1.0");
    let vars = [("CONDA_CHANNEL_PRIORITY", Path::new("bogus"))];
    snapshot_failure!(&world, "channel_priority_bogus", pkgr(&world, &vars, &args));
}

#[test]
fn always_yes_replaces_an_existing_environment_as_y_does() {
    let world = World::new();
    let channel = tool_channel(&world.path().join("channel"));
    let ch = channel.root().to_str().unwrap();
    let prefix = world.env("a");
    let p = prefix.to_str().unwrap();
    let args = ["create", "-p", p, "-c", ch, "tool"];
    assert_ok(&pkgr(&world, &[], &args));
    assert_fails(&pkgr(&world, &[], &args));
    let yes = [("CONDA_ALWAYS_YES", Path::new("true"))];
    assert_ok(&pkgr(&world, &yes, &args));
    // `.condarc`'s `always_yes`, and the variable over it.
    condarc(&world, "always_yes: true\n");
    assert_ok(&pkgr(&world, &[], &args));
    let no = [("CONDA_ALWAYS_YES", Path::new("false"))];
    assert_fails(&pkgr(&world, &no, &args));
    let maybe = [("CONDA_ALWAYS_YES", Path::new("maybe"))];
    snapshot_failure!(&world, "always_yes_maybe", pkgr(&world, &maybe, &args));
}

#[test]
fn default_env_names_the_environment_when_none_is_active() {
    let world = World::new();
    let channel = tool_channel(&world.path().join("channel"));
    let ch = channel.root().to_str().unwrap();
    assert_ok(&pkgr(&world, &[], &["create", "-n", "e", "-c", ch, "tool"]));
    let other = world.path().join("not-an-environment");
    let out = pkgr(
        &world,
        &[("CONDA_DEFAULT_ENV", Path::new("e"))],
        &["list", "--json"],
    );
    assert_ok(&out);
    assert!(stdout(&out).contains("\"tool\""), "{}", stdout(&out));
    // A path, as conda takes one.
    let e = world.path().join("home/.local/share/pkgr/envs/e");
    let out = pkgr(&world, &[("CONDA_DEFAULT_ENV", &e)], &["list", "--json"]);
    assert!(stdout(&out).contains("\"tool\""), "{}", stdout(&out));
    // The active environment (CONDA_PREFIX) over it.
    let out = pkgr(
        &world,
        &[
            ("CONDA_DEFAULT_ENV", Path::new("e")),
            ("CONDA_PREFIX", &other),
        ],
        &["list", "--json"],
    );
    let err = assert_fails(&out);
    assert!(err.contains("not-an-environment"), "{err}");
    // Neither: no environment.
    assert_fails(&pkgr(&world, &[], &["list"]));
}

#[test]
fn config_list_says_which_variable_set_what() {
    let world = World::new();
    condarc(
        &world,
        "channels: [from-condarc]\nchannel_priority: flexible\nenvs_dirs: [/tmp/rc-envs]\n",
    );
    let p = world.path().join("p");
    let x = world.path().join("x");
    let vars = [
        ("CONDA_ENVS_PATH", x.as_path()),
        ("CONDA_PKGS_DIRS", p.as_path()),
        ("CONDA_CHANNELS", Path::new("conda-forge,bioconda")),
        ("CONDA_CHANNEL_PRIORITY", Path::new("strict")),
        ("CONDA_SUBDIR", Path::new("linux-aarch64")),
        ("CONDA_ALWAYS_YES", Path::new("yes")),
    ];
    let mut cmd = world.pkgr();
    cmd.env_remove("PKGR_ROOT").env_remove("PKGR_CACHE_DIR");
    for var in CONDA_VARS {
        cmd.env_remove(var);
    }
    for (var, value) in vars {
        cmd.env(var, value);
    }
    cmd.args(["config", "list"]);
    let out = run_with_timeout(cmd, TIMEOUT);
    assert_ok(&out);
    let mut filters = crate::common::filters(&world);
    // Column padding follows the temp path's length.
    filters.push((String::from(" {2,}"), String::from("  ")));
    let filters: Vec<(&str, &str)> = filters
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    insta::with_settings!({ filters => filters, prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("config_list_conda_env_vars", stdout(&out));
    });
}

#[test]
fn read_the_docs_builder_creates_its_environment_in_conda_envs_path() {
    // The steps of Read the Docs' builder (readthedocs.org,
    // readthedocs/doc_builder/python_environments.py: `conda env create
    // [--quiet] --name VERSION --file FILE`, then `conda install --yes
    // --name VERSION ...`), with CONDA_ENVS_PATH set as its build
    // environment sets it.
    let world = World::new();
    let channel = tool_channel(&world.path().join("channel"));
    let file = world.path().join("environment.yml");
    fs_err::write(
        &file,
        format!(
            "name: docs\nchannels:\n  - {}\ndependencies:\n  - tool\n",
            channel.root().display()
        ),
    )
    .unwrap();
    let envs = world.path().join("rtd/conda");
    let vars = [("CONDA_ENVS_PATH", envs.as_path())];
    let out = pkgr(
        &world,
        &vars,
        &[
            "env",
            "create",
            "--quiet",
            "--name",
            "latest",
            "--file",
            file.to_str().unwrap(),
        ],
    );
    assert_ok(&out);
    assert!(envs.join("latest/share/tool.txt").is_file());
    let ch = channel.root().to_str().unwrap();
    let out = pkgr(
        &world,
        &vars,
        &["install", "--yes", "--name", "latest", "-c", ch, "tool"],
    );
    assert_ok(&out);
}
