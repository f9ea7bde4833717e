//! Hostile command-line input and what the CLI must not do with it (issue 22,
//! item 12, and `--no-scripts`): `env remove` deletes only real
//! environments, and through a symlink only the environment it leads to; no
//! control character in a name, a path or an argument forges a line of
//! `conda-meta/history`; a token can come on stdin, and an auth file others
//! can read is used only with a warning; a malformed entry point is
//! reported as one; `--no-scripts` (and its setting) runs no link script.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pkgr_test_support::{python_package, write_demo_channel, Format, LocalChannel, Package};

use crate::common::{assert_fails, assert_ok, run_with_timeout, stderr, stdout, World, TIMEOUT};

/// Runs `cmd` with `input` on its stdin, failing the test after [`TIMEOUT`].
fn run_with_stdin(mut cmd: Command, input: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pkgr");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            panic!("pkgr timed out after {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// A local channel of the demo packages, as a path.
fn demo_channel(world: &World) -> String {
    let channel = write_demo_channel(&world.path().join("channel"));
    channel.root().to_str().unwrap().to_owned()
}

#[test]
fn env_remove_refuses_a_directory_with_only_an_empty_conda_meta() {
    let world = World::new();
    let victim = world.path().join("data");
    fs_err::create_dir_all(victim.join("conda-meta")).unwrap();
    fs_err::write(victim.join("thesis.tex"), "years of work\n").unwrap();
    let err = assert_fails(&world.run(&["env", "remove", "-p", victim.to_str().unwrap()]));
    snapshot!(&world, "env_remove_not_an_environment", err);
    assert!(
        victim.join("thesis.tex").is_file(),
        "the directory was deleted"
    );

    // A real environment (history, records) is removed as before.
    let prefix = world.env("real");
    assert_ok(&world.create(&prefix, &demo_channel(&world), &["hello"]));
    assert_ok(&world.run(&["env", "remove", "-p", prefix.to_str().unwrap()]));
    assert!(!prefix.exists());
}

#[test]
fn env_remove_through_a_symlink_removes_the_environment_it_leads_to_and_says_so() {
    let world = World::new();
    let channel = demo_channel(&world);
    let real = world.path().join("real");
    let prefix = real.join("env");
    assert_ok(&world.create(&prefix, &channel, &["hello"]));
    fs_err::write(real.join("keep.txt"), "beside the environment\n").unwrap();

    // The path is itself a symlink to the environment.
    let link = world.path().join("link");
    fs_err::os::unix::fs::symlink(&prefix, &link).unwrap();
    let out = world.run(&["env", "remove", "-p", link.to_str().unwrap()]);
    assert_ok(&out);
    snapshot!(&world, "env_remove_symlink", stdout(&out));
    assert!(!prefix.exists(), "the environment is still there");
    assert!(real.join("keep.txt").is_file(), "its neighbour went too");
    assert!(
        fs_err::symlink_metadata(&link).is_err(),
        "the dangling symlink stayed"
    );

    // A directory on the way is a symlink: the environment goes, the
    // symlinked directory and the rest of it stay.
    let prefix = real.join("env2");
    assert_ok(&world.create(&prefix, &channel, &["hello"]));
    let dir_link = world.path().join("dirlink");
    fs_err::os::unix::fs::symlink(&real, &dir_link).unwrap();
    let out = world.run(&[
        "env",
        "remove",
        "-p",
        dir_link.join("env2").to_str().unwrap(),
    ]);
    assert_ok(&out);
    snapshot!(&world, "env_remove_symlinked_parent", stdout(&out));
    assert!(!prefix.exists());
    assert!(real.join("keep.txt").is_file());
    assert!(fs_err::symlink_metadata(&dir_link)
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn environment_names_conda_refuses_are_refused() {
    let world = World::new();
    let channel = demo_channel(&world);
    let forged = "evil\n# update specs: ['backdoor']";
    let out = world.run(&["create", "-n", forged, "-c", &channel, "hello"]);
    let err = assert_fails(&out);
    snapshot!(&world, "env_name_with_a_newline", err);
    for (i, name) in ["a b", "a:b", "a#b", "tab\tname", "esc\u{1b}[31m"]
        .into_iter()
        .enumerate()
    {
        snapshot_failure!(
            &world,
            format!("invalid_environment_name_{i}").as_str(),
            world.run(&["create", "-n", name, "-c", &channel, "hello"])
        );
    }
    // Nothing was created under any of those names.
    let envs = world.path().join("root").join("envs");
    let made: Vec<_> = fs_err::read_dir(&envs)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(made.is_empty(), "{made:?}");
    // A control character in a -p path is refused too.
    let path = world.path().join("env\nx");
    snapshot_failure!(
        &world,
        "invalid_environment_path",
        world.create(&path, &channel, &["hello"])
    );
    assert!(!path.exists());
}

#[test]
fn a_newline_on_the_command_line_forges_no_history_line() {
    let world = World::new();
    let channel = demo_channel(&world);
    // A spec file whose name holds a newline and a line of history.
    let file = world
        .path()
        .join("specs\n# update specs: ['backdoor']\n.txt");
    fs_err::write(&file, "hello\n").unwrap();
    let prefix = world.env("e");
    assert_ok(&world.run(&[
        "create",
        "-p",
        prefix.to_str().unwrap(),
        "-c",
        &channel,
        "-f",
        file.to_str().unwrap(),
    ]));
    let history = fs_err::read_to_string(prefix.join("conda-meta").join("history")).unwrap();
    assert!(
        !history
            .lines()
            .any(|l| l.starts_with("# update specs: ['backdoor']")),
        "{history}"
    );
    assert!(
        history.contains("specs\\n# update specs: ['backdoor']\\n.txt"),
        "{history}"
    );
    let out = world.run(&[
        "env",
        "export",
        "-p",
        prefix.to_str().unwrap(),
        "--from-history",
    ]);
    assert_ok(&out);
    assert!(!stdout(&out).contains("backdoor"), "{}", stdout(&out));
}

/// `pkgr` in `world` with its auth file at `auth`.
fn pkgr_with_auth(world: &World, auth: &Path) -> Command {
    let mut cmd = world.pkgr();
    cmd.env("PKGR_AUTH_FILE", auth);
    cmd
}

#[test]
fn auth_login_reads_the_token_from_stdin_and_writes_a_private_file() {
    let world = World::new();
    let auth = world.path().join("config").join("auth.json");
    let mut cmd = pkgr_with_auth(&world, &auth);
    cmd.args(["auth", "login", "conda.example.com", "--token-stdin"]);
    let out = run_with_stdin(cmd, "s3cret-token\n");
    assert_ok(&out);
    assert!(!stdout(&out).contains("s3cret"), "{}", stdout(&out));
    let mode = fs_err::metadata(&auth).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    let stored: serde_json::Value = serde_json::from_slice(&fs_err::read(&auth).unwrap()).unwrap();
    assert_eq!(
        stored["hosts"]["conda.example.com"],
        serde_json::json!({"token": "s3cret-token"})
    );
    // Nothing on stdin: an error, nothing stored.
    let mut cmd = pkgr_with_auth(&world, &auth);
    cmd.args(["auth", "login", "other.example.com", "--token-stdin"]);
    snapshot_failure!(&world, "no_token_on_stdin", run_with_stdin(cmd, ""));
}

#[test]
fn an_auth_file_others_can_read_is_used_with_a_warning() {
    let world = World::new();
    let channel = demo_channel(&world);
    let auth = world.path().join("auth.json");
    fs_err::write(
        &auth,
        r#"{"hosts": {"conda.example.com": {"token": "s3cret-token"}}}"#,
    )
    .unwrap();
    fs_err::set_permissions(&auth, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut cmd = pkgr_with_auth(&world, &auth);
    cmd.args(["auth", "list"]);
    let out = run_with_timeout(cmd, TIMEOUT);
    assert_ok(&out);
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));

    fs_err::set_permissions(&auth, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = pkgr_with_auth(&world, &auth);
    cmd.args(["auth", "list"]);
    let out = run_with_timeout(cmd, TIMEOUT);
    assert_ok(&out);
    assert!(stdout(&out).contains("conda.example.com"), "still used");
    snapshot!(&world, "auth_file_readable_by_others", stderr(&out));

    // Every command that reads credentials says so (here: a solve).
    fs_err::set_permissions(&auth, std::fs::Permissions::from_mode(0o640)).unwrap();
    let mut cmd = pkgr_with_auth(&world, &auth);
    cmd.args(["search", "-c", &channel, "hello"]);
    let out = run_with_timeout(cmd, TIMEOUT);
    assert_ok(&out);
    let err = stderr(&out);
    assert!(
        err.contains("open to the members of its group")
            && err.contains(&format!("chmod 600 {}", auth.display())),
        "{err}"
    );
}

#[test]
fn a_malformed_entry_point_is_reported_as_one() {
    let world = World::new();
    let mut channel = LocalChannel::new(&world.path().join("channel"));
    channel.add(&python_package("3.12.1"), Format::Conda);
    let broken = Package::new("broken-ep", "1.0")
        .noarch_python()
        .depends("python")
        .file("site-packages/broken_ep/__init__.py", "")
        .entry_point("broken-ep = broken_ep.cli:main")
        .entry_point("no module separator here");
    channel.add(&broken, Format::Conda);
    channel.write_repodata();
    let prefix = world.env("e");
    let err =
        assert_fails(&world.create(&prefix, channel.root().to_str().unwrap(), &["broken-ep"]));
    // The error, not the download lines before it (their order varies).
    let error = &err[err.find("error:").unwrap()..];
    snapshot!(&world, "malformed_entry_point", error);
}

/// A channel with `scripted`, whose post-link and pre-unlink scripts leave
/// a file in the prefix, and `plain` (no script).
fn scripted_channel(world: &World) -> String {
    let mut channel = LocalChannel::new(&world.path().join("channel"));
    let scripted = Package::new("scripted", "1.0")
        .file("share/scripted/data.txt", "data\n")
        .post_link("echo ran > \"$PREFIX/post-link-ran\"\n")
        .pre_unlink("echo ran > \"$PREFIX/pre-unlink-ran\"\n");
    channel.add(&scripted, Format::Conda);
    channel.add(
        &Package::new("plain", "1.0").file("share/plain.txt", "plain\n"),
        Format::Conda,
    );
    channel.write_repodata();
    channel.root().to_str().unwrap().to_owned()
}

#[test]
fn no_scripts_runs_no_link_script_and_names_the_packages_skipped() {
    let world = World::new();
    let channel = scripted_channel(&world);
    let run = |extra_env: &[(&str, &str)], args: &[&str]| {
        let mut cmd = world.pkgr();
        cmd.env_remove("PKGR_NO_SCRIPTS")
            .env("PKGR_CONFIG", world.path().join("no-config.yaml"))
            .args(args);
        for (key, value) in extra_env {
            cmd.env(key, value);
        }
        run_with_timeout(cmd, TIMEOUT)
    };

    // --no-scripts on create, install and remove.
    let prefix = world.env("flag");
    let p = prefix.to_str().unwrap();
    let out = run(
        &[],
        &[
            "create",
            "-p",
            p,
            "-c",
            &channel,
            "scripted",
            "--no-scripts",
        ],
    );
    assert_ok(&out);
    assert!(!prefix.join("post-link-ran").exists(), "post-link ran");
    assert!(
        stderr(&out).contains(
            "link scripts not run (--no-scripts / run_scripts: false): post-link of scripted\n"
        ),
        "{}",
        stderr(&out)
    );
    let out = run(
        &[],
        &["install", "-p", p, "-c", &channel, "plain", "--no-scripts"],
    );
    assert_ok(&out);
    assert!(
        !stderr(&out).contains("link scripts not run"),
        "nothing skipped"
    );
    let out = run(&[], &["remove", "-p", p, "scripted", "--no-scripts"]);
    assert_ok(&out);
    assert!(!prefix.join("pre-unlink-ran").exists(), "pre-unlink ran");
    assert!(
        stderr(&out).contains("pre-unlink of scripted"),
        "{}",
        stderr(&out)
    );

    // The setting: $PKGR_NO_SCRIPTS=1, and run_scripts: false in a file.
    let prefix = world.env("env-var");
    let out = run(
        &[("PKGR_NO_SCRIPTS", "1")],
        &[
            "create",
            "-p",
            prefix.to_str().unwrap(),
            "-c",
            &channel,
            "scripted",
        ],
    );
    assert_ok(&out);
    assert!(!prefix.join("post-link-ran").exists(), "post-link ran");
    let config = world.path().join("config.yaml");
    fs_err::write(&config, "run_scripts: false\n").unwrap();
    let prefix = world.env("setting");
    let config_env = config.to_str().unwrap();
    let out = run(
        &[("PKGR_CONFIG", config_env)],
        &[
            "create",
            "-p",
            prefix.to_str().unwrap(),
            "-c",
            &channel,
            "scripted",
        ],
    );
    assert_ok(&out);
    assert!(!prefix.join("post-link-ran").exists(), "post-link ran");
    let out = run(&[("PKGR_CONFIG", config_env)], &["config", "list"]);
    assert_ok(&out);
    assert!(stdout(&out).contains("run_scripts"), "{}", stdout(&out));

    // By default both scripts run (so the checks above can fail).
    let prefix = world.env("default");
    let p = prefix.to_str().unwrap();
    assert_ok(&run(&[], &["create", "-p", p, "-c", &channel, "scripted"]));
    assert!(
        prefix.join("post-link-ran").exists(),
        "post-link did not run"
    );
    assert_ok(&run(&[], &["remove", "-p", p, "scripted"]));
    assert!(
        prefix.join("pre-unlink-ran").exists(),
        "pre-unlink did not run"
    );
}
