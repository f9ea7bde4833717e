//! The commands a conda/micromamba CI script expects besides create/install:
//! info, search, env list/remove/export, run, shell hook/activate, config,
//! clean --tarballs, completion, and the help text.

use std::path::Path;
use std::process::Command;

use pkgr_test_support::{Format, LocalChannel, Package};

use crate::common::{assert_fails, assert_ok, run_with_timeout, stderr, stdout, World, TIMEOUT};

/// A channel with three versions of `tool` (whose `show` prints what the
/// activation set) and a `libdep` it depends on.
fn tool_channel(root: &Path) -> LocalChannel {
    let mut channel = LocalChannel::new(root);
    let dep = Package::new("libdep", "1.0").file("lib/libdep.txt", "dep\n");
    channel.add(&dep, Format::TarBz2);
    for (version, format) in [
        ("1.0", Format::TarBz2),
        ("1.1", Format::Conda),
        ("2.0", Format::Conda),
    ] {
        let tool = Package::new("tool", version)
            .depends("libdep")
            .executable(
                "bin/show",
                "#!/bin/sh\necho \"var=${PKGR_TEST_VAR:-unset} prefix=$CONDA_PREFIX args=$*\"\n",
            )
            .file(
                "etc/conda/activate.d/tool.sh",
                "export PKGR_TEST_VAR=from-activate\n",
            )
            .file("etc/conda/deactivate.d/tool.sh", "unset PKGR_TEST_VAR\n");
        channel.add(&tool, format);
    }
    channel.write_repodata();
    channel
}

#[test]
fn help_lists_every_command() {
    let world = World::new();
    let out = world.run(&["--help"]);
    assert_ok(&out);
    snapshot!(&world, "help", stdout(&out));
}

#[test]
fn info_names_platform_cache_envs_and_virtual_packages() {
    let world = World::new();
    let out = world.run(&["info"]);
    assert_ok(&out);
    let text = stdout(&out);
    for expected in [
        "pkgr version",
        "platform : linux-64",
        "__unix",
        "package cache",
        world.cache().to_str().unwrap(),
        "conda.anaconda.org/conda-forge/linux-64",
    ] {
        assert!(text.contains(expected), "no `{expected}` in:\n{text}");
    }
    let out = world.run(&["info", "--json"]);
    assert_ok(&out);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["platform"], "linux-64");
    assert_eq!(info["pkgs_dirs"][0], world.cache().to_str().unwrap());
    assert_eq!(info["cache_read_only"], false);
    assert!(!text.contains("read-only filesystem"), "{text}");
    assert!(info["virtual_pkgs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v[0] == "__unix"));
    // CONDA_OVERRIDE_* is honoured.
    let mut cmd = world.pkgr();
    cmd.args(["info", "--json"])
        .env("CONDA_OVERRIDE_GLIBC", "2.17");
    let out = run_with_timeout(cmd, TIMEOUT);
    assert_ok(&out);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(info["virtual_pkgs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v[0] == "__glibc" && v[1] == "2.17"));
}

#[test]
fn search_lists_matches_newest_first() {
    let world = World::new();
    let channel = tool_channel(&world.path().join("channel"));
    let ch = channel.root().to_str().unwrap();
    let out = world.run(&["search", "-c", ch, "tool>=1.1"]);
    assert_ok(&out);
    let text = stdout(&out);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("tool"))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].contains("2.0") && lines[1].contains("1.1"),
        "{text}"
    );

    let out = world.run(&["search", "--json", "-c", ch, "tool"]);
    assert_ok(&out);
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let versions: Vec<&str> = found["tool"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["2.0", "1.1", "1.0"]);

    // A glob over names.
    let out = world.run(&["search", "-c", ch, "lib*"]);
    assert_ok(&out);
    assert!(stdout(&out).contains("libdep"));

    // A typo: an error with a suggestion, non-zero exit.
    snapshot_failure!(
        &world,
        "search_typo",
        world.run(&["search", "-c", ch, "tol"])
    );
    snapshot_failure!(
        &world,
        "search_no_match",
        world.run(&["search", "-c", ch, "tool>=3"])
    );
}

#[test]
fn env_list_and_remove() {
    let world = World::new();
    let channel = tool_channel(&world.path().join("channel"));
    let ch = channel.root().to_str().unwrap();
    assert_ok(&world.run(&["create", "-n", "one", "-c", ch, "libdep"]));
    assert_ok(&world.run(&["create", "-n", "two", "-c", ch, "libdep"]));
    let envs_dir = world.path().join("root").join("envs");
    let out = world.run(&["env", "list", "--json"]);
    assert_ok(&out);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        listed["envs"],
        serde_json::json!([envs_dir.join("one"), envs_dir.join("two")])
    );
    let out = world.run(&["env", "list"]);
    assert_ok(&out);
    assert!(stdout(&out).contains("one"));

    // The active environment is not removed under the user.
    let mut cmd = world.pkgr();
    cmd.args(["env", "remove", "-n", "one"])
        .env("CONDA_PREFIX", envs_dir.join("one"));
    snapshot_failure!(
        &world,
        "remove_active_environment",
        run_with_timeout(cmd, TIMEOUT)
    );

    assert_ok(&world.run(&["env", "remove", "-n", "one", "--dry-run"]));
    assert!(envs_dir.join("one").exists());
    assert_ok(&world.run(&["env", "remove", "-n", "one", "-y"]));
    assert!(!envs_dir.join("one").exists());
    assert!(envs_dir.join("two").join("conda-meta").is_dir());
    // Nothing left beside it either.
    let left: Vec<String> = fs_err::read_dir(&envs_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["two"]);
    snapshot_failure!(
        &world,
        "remove_unknown_environment",
        world.run(&["env", "remove", "-n", "one"])
    );
}

#[test]
fn run_applies_the_activation_and_passes_the_exit_status() {
    let world = World::new();
    let channel = tool_channel(&world.path().join("channel"));
    let ch = channel.root().to_str().unwrap();
    assert_ok(&world.run(&["create", "-n", "tool", "-c", ch, "tool"]));
    let prefix = world.path().join("root/envs/tool");
    let out = world.run(&["run", "-p", prefix.to_str().unwrap(), "show", "--flag", "x"]);
    assert_ok(&out);
    assert_eq!(
        stdout(&out).trim(),
        format!(
            "var=from-activate prefix={} args=--flag x",
            prefix.display()
        )
    );
    // The command's exit status is pkgr's.
    let out = world.run(&["run", "-p", prefix.to_str().unwrap(), "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    // A command that is not there: a clear error.
    snapshot_failure!(
        &world,
        "run_unknown_command",
        world.run(&["run", "-p", prefix.to_str().unwrap(), "no-such-tool"])
    );
    // By name, and the environment's `bin/` comes first on PATH.
    let out = world.run(&["run", "-n", "tool", "sh", "-c", "command -v show"]);
    assert_ok(&out);
    assert_eq!(
        stdout(&out).trim(),
        prefix.join("bin/show").display().to_string()
    );
}

/// A reader that goes away (`pkgr shell hook | true`, `pkgr list | head -1`)
/// is not pkgr's failure: what it did not read is dropped, without a panic.
#[test]
fn output_to_a_closed_pipe_is_dropped_without_a_panic() {
    let world = World::new();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = world
        .pkgr()
        .args(["shell", "hook", "-s", "bash"])
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + crate::common::TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("pkgr did not exit within {:?}", crate::common::TIMEOUT);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{status:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// conda run's flags as CI scripts use them: `--cwd`, and
/// `--no-capture-output`/`--live-stream` (pkgr never captures); an unknown
/// flag before the command is clap's error, not "name an environment".
#[test]
fn run_takes_conda_run_flags() {
    let world = World::new();
    let channel = tool_channel(&world.path().join("channel"));
    let ch = channel.root().to_str().unwrap();
    assert_ok(&world.run(&["create", "-n", "tool", "-c", ch, "tool"]));
    let dir = world.path().join("work dir");
    fs_err::create_dir_all(&dir).unwrap();
    let out = world.run(&[
        "run",
        "-n",
        "tool",
        "--cwd",
        dir.to_str().unwrap(),
        "sh",
        "-c",
        "pwd",
    ]);
    assert_ok(&out);
    assert_eq!(stdout(&out).trim(), dir.display().to_string());
    for flag in ["--no-capture-output", "--live-stream"] {
        let out = world.run(&["run", flag, "-n", "tool", "show", "--flag", "x"]);
        assert_ok(&out);
        assert!(
            stdout(&out).contains("args=--flag x"),
            "{flag}: {}",
            stdout(&out)
        );
    }
    let missing = world.path().join("nowhere");
    snapshot_failure!(
        &world,
        "run_cwd_missing",
        world.run(&[
            "run",
            "-n",
            "tool",
            "--cwd",
            missing.to_str().unwrap(),
            "show"
        ])
    );
    snapshot_failure!(
        &world,
        "run_unknown_flag",
        world.run(&["run", "--bogus", "-n", "tool", "show"])
    );
}

#[test]
fn shell_hook_gives_activate_and_deactivate() {
    let world = World::new();
    let channel = tool_channel(&world.path().join("channel"));
    let ch = channel.root().to_str().unwrap();
    assert_ok(&world.run(&["create", "-n", "tool", "-c", ch, "tool"]));
    let prefix = world.path().join("root/envs/tool");
    let script = format!(
        r#"set -e
eval "$('{exe}' shell hook -s bash)"
pkgr activate tool
echo "active=$CONDA_PREFIX level=$CONDA_SHLVL"
show
pkgr deactivate
echo "after=${{CONDA_PREFIX:-none}} var=${{PKGR_TEST_VAR:-unset}} level=$CONDA_SHLVL"
command -v show || echo "show gone"
"#,
        exe = env!("CARGO_BIN_EXE_pkgr")
    );
    let mut cmd = world.pkgr();
    // `world.pkgr()` sets the variables; run bash with them instead.
    let mut bash = Command::new("bash");
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => bash.env(key, value),
            None => bash.env_remove(key),
        };
    }
    cmd = bash;
    cmd.arg("-c")
        .arg(script)
        .env_remove("CONDA_PREFIX")
        .env_remove("CONDA_SHLVL")
        .current_dir(world.path());
    let out = run_with_timeout(cmd, TIMEOUT);
    assert_ok(&out);
    let text = stdout(&out);
    let expected = format!(
        "active={p} level=1\nvar=from-activate prefix={p} args=\nafter=none var=unset level=0\nshow gone\n",
        p = prefix.display()
    );
    assert_eq!(text, expected, "stderr: {}", stderr(&out));
    for shell in ["zsh", "fish"] {
        let out = world.run(&["shell", "hook", "-s", shell]);
        assert_ok(&out);
        assert!(stdout(&out).contains("activate"), "{shell}");
    }
}

#[test]
fn config_files_and_condarc_set_channels_with_their_origin() {
    let world = World::new();
    let channel = tool_channel(&world.path().join("channel"));
    let home = world.path().join("home");
    fs_err::create_dir_all(home.join(".config/pkgr")).unwrap();
    // conda's file names a channel; pkgr's own file overrides it.
    fs_err::write(
        home.join(".condarc"),
        "channels:\n  - defaults\nchannel_alias: https://conda.example.invalid/\nauto_activate_base: false\n",
    )
    .unwrap();
    fs_err::write(
        home.join(".config/pkgr/config.yaml"),
        format!("channels:\n  - {}\n", channel.root().display()),
    )
    .unwrap();
    let out = world.run(&["create", "-n", "cfg", "tool"]);
    assert_ok(&out);
    let out = world.run(&["config", "list", "--json"]);
    assert_ok(&out);
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let settings = &config["settings"];
    assert_eq!(
        settings["channels"]["origin"],
        home.join(".config/pkgr/config.yaml").to_str().unwrap()
    );
    assert_eq!(
        settings["channel_alias"]["value"],
        "https://conda.example.invalid/"
    );
    assert_eq!(
        settings["channel_alias"]["origin"],
        home.join(".condarc").to_str().unwrap()
    );
    // The environment variable wins over both files; the flag over it.
    assert_eq!(settings["pkgs_dirs"]["origin"], "$PKGR_CACHE_DIR");
    let out = world.run(&["config", "list", "--json", "--cache-dir", "/tmp/x"]);
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(config["settings"]["pkgs_dirs"]["origin"], "--cache-dir");
    assert_eq!(config["config_files"].as_array().unwrap().len(), 2);
    // An unknown key in pkgr's file is a warning; a broken file an error.
    fs_err::write(home.join(".config/pkgr/config.yaml"), "chanels: [x]\n").unwrap();
    let out = world.run(&["config", "list"]);
    assert_ok(&out);
    assert!(
        stderr(&out).contains("unknown setting `chanels`"),
        "{}",
        stderr(&out)
    );
    fs_err::write(home.join(".config/pkgr/config.yaml"), "channels: {x: 1}\n").unwrap();
    snapshot_failure!(&world, "config_broken_file", world.run(&["config", "list"]));
}

#[test]
fn clean_tarballs_keeps_extracted_packages_usable() {
    let world = World::new();
    let channel = tool_channel(&world.path().join("channel"));
    let ch = channel.root().to_str().unwrap();
    assert_ok(&world.create(&world.env("a"), ch, &["tool"]));
    let archives = |world: &World| {
        fs_err::read_dir(world.cache().join("pkgs"))
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                let name = name.to_string_lossy();
                name.ends_with(".conda") || name.ends_with(".tar.bz2")
            })
            .count()
    };
    assert_eq!(archives(&world), 2);
    let out = world.run(&["clean", "--tarballs", "--json"]);
    assert_ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["tarballs_removed"].as_array().unwrap().len(), 2);
    assert_eq!(archives(&world), 0);
    assert_eq!(crate::common::complete_entries(&world.cache()), 2);
    assert_ok(&world.run(&["cache", "verify"]));
    // The entries are used as they are: a new environment needs no archive.
    let out = world.create(&world.env("b"), ch, &["tool"]);
    assert_ok(&out);
    assert!(!stderr(&out).contains("downloaded"), "{}", stderr(&out));
    assert_eq!(archives(&world), 0);
}

#[test]
fn clean_removes_compiled_modules_of_entries_that_are_gone_and_keeps_the_others() {
    let world = World::new();
    let channel = tool_channel(&world.path().join("channel"));
    let ch = channel.root().to_str().unwrap();
    assert_ok(&world.create(&world.env("a"), ch, &["tool"]));
    let entry = fs_err::read_dir(world.cache().join("pkgs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|path| path.join(".pkgr-entry.json").exists())
        .expect("an extracted entry");
    let entry = entry.file_name().unwrap().to_string_lossy().into_owned();
    let pyc = world.cache().join("pyc");
    // Kept for an entry still there; for one removed by another account;
    // and left set aside by an interrupted removal.
    for dir in [
        entry.clone(),
        String::from("gone-1.0-0-0123456789ab"),
        String::from(".old-gone-2.0-0-0123456789ab-1-0-0"),
    ] {
        let tag = pyc.join(&dir).join("cpython-311/lib/x/__pycache__");
        fs_err::create_dir_all(&tag).unwrap();
        fs_err::write(tag.join("m.cpython-311.pyc"), b"pyc").unwrap();
    }
    let out = world.run(&["clean", "--temp", "--json"]);
    assert_ok(&out);
    let mut left: Vec<String> = fs_err::read_dir(&pyc)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, [entry]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["temp_removed"].as_u64().unwrap() >= 2, "{report}");
    assert_ok(&world.run(&["cache", "verify"]));
}

#[test]
fn completion_scripts_are_printed() {
    let world = World::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = world.run(&["completion", shell]);
        assert_ok(&out);
        assert!(stdout(&out).contains("pkgr"), "{shell}");
        assert!(stdout(&out).contains("create"), "{shell}");
    }
}

#[test]
fn verbose_logs_go_to_stderr_and_stdout_stays_clean() {
    let world = World::new();
    let channel = tool_channel(&world.path().join("channel"));
    let ch = channel.root().to_str().unwrap();
    let out = world.run(&[
        "-vv",
        "--json",
        "create",
        "-p",
        world.env("v").to_str().unwrap(),
        "-c",
        ch,
        "--dry-run",
        "tool",
    ]);
    assert_ok(&out);
    // stdout is still only the JSON.
    let _: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(stderr(&out).contains("DEBUG"), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains('\u{1b}'),
        "no colour when not on a terminal"
    );
}

/// A `--json` plan with what depends on the compressor (sizes, checksums)
/// blanked: the shape is what scripts rely on.
fn plan_shape(stdout: &[u8]) -> String {
    let mut plan: serde_json::Value = serde_json::from_slice(stdout).unwrap();
    for key in ["LINK", "UNLINK"] {
        for record in plan["actions"][key].as_array_mut().unwrap() {
            record["size"] = serde_json::json!("[SIZE]");
            record["md5"] = serde_json::json!("[MD5]");
            record["sha256"] = serde_json::json!("[SHA256]");
        }
    }
    serde_json::to_string_pretty(&plan).unwrap()
}

/// What scripts parse: the JSON of a dry run, of `list`, of `env list`, the
/// exported environment.yml, and the main errors.
#[test]
fn json_outputs_exports_and_errors_are_what_users_see() {
    let world = World::new();
    let channel = tool_channel(&world.path().join("channel"));
    let ch = channel.root().to_str().unwrap();
    let out = world.run(&[
        "create",
        "--json",
        "--dry-run",
        "-n",
        "snap",
        "-c",
        ch,
        "tool=1.1",
    ]);
    assert_ok(&out);
    snapshot!(&world, "create_dry_run_json", plan_shape(&out.stdout));
    assert_ok(&world.run(&["create", "-n", "snap", "-c", ch, "tool=1.1"]));
    let out = world.run(&["list", "--json", "-n", "snap"]);
    assert_ok(&out);
    snapshot!(&world, "list_json", stdout(&out));
    let out = world.run(&[
        "update",
        "--dry-run",
        "--json",
        "-n",
        "snap",
        "-c",
        ch,
        "tool",
    ]);
    assert_ok(&out);
    snapshot!(&world, "update_dry_run_json", plan_shape(&out.stdout));
    // install of a newer version plans the same change.
    let install = world.run(&[
        "install",
        "--dry-run",
        "--json",
        "-n",
        "snap",
        "-c",
        ch,
        "tool=2.0",
    ]);
    assert_ok(&install);
    assert_eq!(plan_shape(&install.stdout), plan_shape(&out.stdout));
    let out = world.run(&["remove", "--dry-run", "--json", "-n", "snap", "tool"]);
    assert_ok(&out);
    snapshot!(&world, "remove_dry_run_json", plan_shape(&out.stdout));
    let out = world.run(&["env", "list", "--json"]);
    assert_ok(&out);
    snapshot!(&world, "env_list_json", stdout(&out));
    let out = world.run(&["env", "export", "-n", "snap"]);
    assert_ok(&out);
    snapshot!(&world, "env_export", stdout(&out));
    let out = world.run(&["env", "export", "-n", "snap", "--from-history"]);
    assert_ok(&out);
    snapshot!(&world, "env_export_from_history", stdout(&out));

    let err = assert_fails(&world.run(&["list", "-n", "snpa"]));
    snapshot!(&world, "unknown_environment", err);
    // With --json the error is JSON on stdout too.
    let out = world.run(&["list", "--json", "-n", "snpa"]);
    assert_fails(&out);
    let error: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(error["success"], false);
    assert!(error["error"]
        .as_str()
        .unwrap()
        .contains("known environments: snap"));
    let file = world.path().join("environment.yml");
    fs_err::write(
        &file,
        "name: p\ndependencies:\n  - tool\n  - pip:\n    - requests\n",
    )
    .unwrap();
    let err = assert_fails(&world.run(&["create", "-f", file.to_str().unwrap()]));
    snapshot!(&world, "pip_section", err);
    let out = world.run(&["install", "-n", "snap", "-c", ch, "tool=9"]);
    snapshot!(&world, "install_unsatisfiable", assert_fails(&out));
}

/// An environment removed while an `install` waits for its lock: the install
/// fails saying so, and leaves nothing at the path that looks like an
/// environment (taking the lock re-creates `conda-meta/`).
#[test]
fn an_environment_removed_while_install_waits_is_not_revived() {
    let world = World::new();
    let channel = tool_channel(&world.path().join("channel"));
    let ch = channel.root().to_str().unwrap();
    assert_ok(&world.run(&["create", "-n", "gone", "-c", ch, "libdep"]));
    let prefix = world.path().join("root/envs/gone");
    let lock = prefix.join("conda-meta/.pkgr-prefix.lock");
    // Another process holds the environment's lock for 3 s, then removes the
    // environment (as `env remove` does: a rename, under the lock).
    let mut holder = Command::new("flock")
        .arg("-x")
        .arg(&lock)
        .arg("-c")
        .arg(format!(
            "sleep 3; mv '{}' '{}-removed'",
            prefix.display(),
            prefix.display()
        ))
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = world.run(&["install", "-n", "gone", "-c", ch, "tool"]);
    assert!(holder.wait().unwrap().success());
    snapshot_failure!(&world, "environment_removed_while_waiting", out);
    assert!(!prefix.exists(), "{} was revived", prefix.display());
}

/// `list` in conda's forms: a regex filter, `--export` (a spec list that
/// `create --file` reads back into the same environment), `--explicit`
/// (bare, `--md5`, `--sha256`) and `--canonical`.
#[test]
fn list_forms_are_conda_s() {
    let world = World::new();
    let channel = tool_channel(&world.path().join("channel"));
    let ch = channel.root().to_str().unwrap();
    assert_ok(&world.run(&["create", "-n", "forms", "-c", ch, "tool=1.1"]));
    let out = world.run(&["list", "-n", "forms", "^TOO"]);
    assert_ok(&out);
    let text = stdout(&out);
    assert!(text.contains("tool") && !text.contains("libdep"), "{text}");
    snapshot_failure!(
        &world,
        "list_no_match",
        world.run(&["list", "-n", "forms", "nothing-like-it"])
    );

    let out = world.run(&["list", "-n", "forms", "--export"]);
    assert_ok(&out);
    let export = stdout(&out);
    assert!(export.contains("# platform: linux-64"), "{export}");
    assert!(export.contains("\nlibdep=1.0=0\ntool=1.1=0\n"), "{export}");
    let file = world.path().join("export.txt");
    fs_err::write(&file, &export).unwrap();
    assert_ok(&world.run(&[
        "create",
        "-n",
        "again",
        "-c",
        ch,
        "--file",
        file.to_str().unwrap(),
    ]));
    let out = world.run(&["list", "-n", "again", "--export"]);
    assert_eq!(stdout(&out), export);

    let out = world.run(&["list", "-n", "forms", "--explicit"]);
    assert_ok(&out);
    let bare = stdout(&out);
    assert!(
        bare.contains("@EXPLICIT\n") && bare.contains("/linux-64/tool-1.1-0.conda\n"),
        "{bare}"
    );
    for (flag, len) in [("--md5", 32), ("--sha256", 64)] {
        let out = world.run(&["list", "-n", "forms", "--explicit", flag]);
        assert_ok(&out);
        let text = stdout(&out);
        let line = text
            .lines()
            .find(|l| l.contains("tool-1.1-0.conda"))
            .unwrap();
        let hash = line.rsplit('#').next().unwrap();
        assert_eq!(hash.len(), len, "{flag}: {line}");
        assert!(
            hash.chars().all(|c| c.is_ascii_hexdigit()),
            "{flag}: {line}"
        );
    }
    let out = world.run(&["list", "-n", "forms", "--canonical"]);
    assert_ok(&out);
    assert!(
        stdout(&out).contains("/linux-64::tool-1.1-0\n"),
        "{}",
        stdout(&out)
    );
}
