//! conda's shell set-up spellings: `pkgr shell.bash|shell.zsh|shell.fish|
//! shell.posix hook`, `pkgr shell hook -s posix`, and `pkgr init` writing
//! (and `--reverse` removing) a marked block in the shell's rc file, then
//! `pkgr activate NAME` / `pkgr deactivate` in the same script.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pkgr_test_support::{Format, LocalChannel, Package};

use crate::common::{assert_fails, assert_ok, run_with_timeout, stderr, stdout, World, TIMEOUT};

const EXE: &str = env!("CARGO_BIN_EXE_pkgr");

/// A world with an environment `tool` whose `show` prints what the
/// activation set (its activate.d script sets PKGR_TEST_VAR).
fn world_with_tool() -> (World, PathBuf) {
    let world = World::new();
    let mut channel = LocalChannel::new(&world.path().join("channel"));
    let tool = Package::new("tool", "1.0")
        .executable(
            "bin/show",
            "#!/bin/sh\necho \"var=${PKGR_TEST_VAR:-unset} prefix=$CONDA_PREFIX\"\n",
        )
        .file(
            "etc/conda/activate.d/tool.sh",
            "export PKGR_TEST_VAR=from-activate\n",
        )
        .file("etc/conda/deactivate.d/tool.sh", "unset PKGR_TEST_VAR\n");
    channel.add(&tool, Format::Conda);
    channel.write_repodata();
    let ch = channel.root().to_str().unwrap().to_owned();
    assert_ok(&world.run(&["create", "-n", "tool", "-c", &ch, "tool"]));
    let prefix = world.path().join("root/envs/tool");
    (world, prefix)
}

/// `program -c script` with the world's variables, `pkgr` on PATH (as a CI
/// script types it) and no environment active.
fn shell(world: &World, program: &str, script: &str) -> Output {
    let pkgr = world.pkgr();
    let mut cmd = Command::new(program);
    for (key, value) in pkgr.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    let bin_dir = Path::new(EXE).parent().unwrap();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![bin_dir.to_path_buf()];
    dirs.extend(std::env::split_paths(&path));
    cmd.arg("-c")
        .arg(script)
        .env("PATH", std::env::join_paths(dirs).unwrap())
        .env_remove("CONDA_PREFIX")
        .env_remove("CONDA_SHLVL")
        .env_remove("CONDA_DEFAULT_ENV")
        .current_dir(world.path());
    run_with_timeout(cmd, TIMEOUT)
}

fn has(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// What activate, the tool, and deactivate print, as the scripts below echo it.
fn expected(prefix: &Path) -> String {
    format!(
        "active={p} level=1\nvar=from-activate prefix={p}\nafter=none var=unset level=0\nshow gone\n",
        p = prefix.display()
    )
}

const ACTIVATE_AND_DEACTIVATE: &str = r#"pkgr activate tool
echo "active=$CONDA_PREFIX level=$CONDA_SHLVL"
show
pkgr deactivate
echo "after=${CONDA_PREFIX:-none} var=${PKGR_TEST_VAR:-unset} level=$CONDA_SHLVL"
command -v show || echo "show gone"
"#;

#[test]
fn conda_spellings_print_the_same_hook_as_shell_hook_dash_s() {
    let world = World::new();
    for name in ["bash", "zsh", "fish", "posix"] {
        let dotted = world.run(&[&format!("shell.{name}"), "hook"]);
        assert_ok(&dotted);
        let flagged = world.run(&["shell", "hook", "-s", name]);
        assert_ok(&flagged);
        assert_eq!(stdout(&dotted), stdout(&flagged), "{name}");
        let text = stdout(&dotted).replace(EXE, "[PKGR]");
        snapshot!(&world, format!("shell_hook_{name}"), text);
    }
    // The posix hook is plain sh: dash (or the system's sh) parses it.
    let hook = stdout(&world.run(&["shell.posix", "hook"]));
    for sh in ["sh", "dash"].into_iter().filter(|sh| has(sh)) {
        let out = Command::new(sh)
            .arg("-n")
            .arg("-c")
            .arg(&hook)
            .output()
            .unwrap();
        assert!(out.status.success(), "{sh} -n: {}", stderr(&out));
    }
    // A spelling conda does not have is clap's own error.
    let err = assert_fails(&world.run(&["shell.tcsh", "hook"]));
    assert!(
        err.contains("unrecognized subcommand 'shell.tcsh'"),
        "{err}"
    );
}

#[test]
fn shell_dot_bash_hook_then_activate_and_deactivate_in_one_script() {
    let (world, prefix) = world_with_tool();
    let script = format!("set -e\neval \"$(pkgr shell.bash hook)\"\n{ACTIVATE_AND_DEACTIVATE}");
    let out = shell(&world, "bash", &script);
    assert_ok(&out);
    assert_eq!(stdout(&out), expected(&prefix), "stderr: {}", stderr(&out));
}

#[test]
fn posix_hook_activates_and_deactivates_in_dash() {
    let (world, prefix) = world_with_tool();
    let program = if has("dash") { "dash" } else { "sh" };
    for setup in [
        "eval \"$(pkgr shell.posix hook)\"",
        "eval \"$(pkgr shell hook -s posix)\"",
    ] {
        let script = format!("set -e\n{setup}\n{ACTIVATE_AND_DEACTIVATE}");
        let out = shell(&world, program, &script);
        assert_ok(&out);
        assert_eq!(stdout(&out), expected(&prefix), "{setup}: {}", stderr(&out));
    }
}

#[test]
fn init_dry_run_writes_nothing_and_says_what_it_would_add() {
    let world = World::new();
    let home = world.path().join("home");
    fs_err::create_dir_all(&home).unwrap();
    fs_err::write(home.join(".bashrc"), "export KEEP=1\n").unwrap();
    let out = world.run(&["init", "--all", "--dry-run"]);
    assert_ok(&out);
    snapshot!(&world, "init_dry_run", stdout(&out).replace(EXE, "[PKGR]"));
    assert_eq!(
        fs_err::read_to_string(home.join(".bashrc")).unwrap(),
        "export KEEP=1\n"
    );
    assert!(!home.join(".zshrc").exists());
    assert!(!home.join(".config").exists());
    // --json: each file, whether it would be modified, for scripts.
    let out = world.run(&["--json", "init", "bash", "zsh", "--dry-run"]);
    assert_ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["dry_run"], true);
    let files = report["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0]["path"], home.join(".bashrc").display().to_string());
    assert_eq!(files[0]["modified"], true);
    assert!(!home.join(".zshrc").exists());
}

#[test]
fn init_twice_leaves_one_block_that_works_and_reverse_restores_the_file() {
    let (world, prefix) = world_with_tool();
    let home = world.path().join("home");
    let rc = home.join(".bashrc");
    fs_err::create_dir_all(&home).unwrap();
    // A CRLF line, a blank line, and a mode the rewrite must keep.
    let original = b"# my bashrc\r\nalias ll='ls -l'\n\nexport KEEP=1\n".to_vec();
    fs_err::write(&rc, &original).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        fs_err::set_permissions(&rc, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let first = world.run(&["init", "bash"]);
    assert_ok(&first);
    snapshot!(&world, "init_bash", stdout(&first));
    let once = fs_err::read(&rc).unwrap();
    assert!(once.starts_with(&original));
    let second = world.run(&["init", "bash"]);
    assert_ok(&second);
    assert!(
        stdout(&second).starts_with("no change"),
        "{}",
        stdout(&second)
    );
    assert_eq!(fs_err::read(&rc).unwrap(), once);
    let text = String::from_utf8(once.clone()).unwrap();
    assert_eq!(text.matches("# >>> pkgr initialize >>>").count(), 1);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs_err::metadata(&rc).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // A new shell that reads the rc file can `pkgr activate`.
    let script = format!(". \"$HOME/.bashrc\"\nset -e\n{ACTIVATE_AND_DEACTIVATE}");
    let out = shell(&world, "bash", &script);
    assert_ok(&out);
    assert_eq!(stdout(&out), expected(&prefix), "stderr: {}", stderr(&out));
    // A changed block (an old pkgr's path) is replaced, not duplicated, and
    // what follows it stays.
    let stale = text.replace(EXE, "/old/pkgr") + "export AFTER=1\n";
    fs_err::write(&rc, &stale).unwrap();
    assert_ok(&world.run(&["init"]));
    assert_eq!(
        fs_err::read_to_string(&rc).unwrap(),
        text.clone() + "export AFTER=1\n"
    );
    fs_err::write(&rc, &once).unwrap();
    // --reverse gives the file back byte for byte.
    let out = world.run(&["init", "--reverse", "bash"]);
    assert_ok(&out);
    assert!(stdout(&out).starts_with("modified"), "{}", stdout(&out));
    assert_eq!(fs_err::read(&rc).unwrap(), original);
}

#[test]
fn init_follows_a_symlinked_rc_file_as_conda_does() {
    let world = World::new();
    let home = world.path().join("home");
    let dotfiles = world.path().join("dotfiles");
    fs_err::create_dir_all(&home).unwrap();
    fs_err::create_dir_all(&dotfiles).unwrap();
    fs_err::write(dotfiles.join("bashrc"), "export KEEP=1\n").unwrap();
    fs_err::os::unix::fs::symlink(dotfiles.join("bashrc"), home.join(".bashrc")).unwrap();
    assert_ok(&world.run(&["init", "bash"]));
    // The link stays a link; its target holds the block.
    assert!(fs_err::symlink_metadata(home.join(".bashrc"))
        .unwrap()
        .file_type()
        .is_symlink());
    let target = fs_err::read_to_string(dotfiles.join("bashrc")).unwrap();
    assert!(
        target.starts_with("export KEEP=1\n# >>> pkgr initialize >>>\n"),
        "{target}"
    );
    assert_ok(&world.run(&["init", "--reverse"]));
    assert_eq!(
        fs_err::read_to_string(dotfiles.join("bashrc")).unwrap(),
        "export KEEP=1\n"
    );
    // A link to nothing is an error naming it, and nothing is created.
    fs_err::remove_file(home.join(".bashrc")).unwrap();
    fs_err::os::unix::fs::symlink(dotfiles.join("gone"), home.join(".bashrc")).unwrap();
    snapshot_failure!(
        &world,
        "init_dangling_symlink",
        world.run(&["init", "bash"])
    );
    assert!(!dotfiles.join("gone").exists());
}
