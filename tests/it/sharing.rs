//! One cache shared by many users (a group-writable `chmod 2775` cache, as
//! CI runners and HPC clusters have it): two real accounts create
//! environments from it at the same time, with no permission error, each
//! archive fetched once, and both can verify it. Needs root (`useradd`,
//! `runuser`); skipped with a message otherwise.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use pkgr_test_support::{ChannelServer, Format, LocalChannel, Package};

use crate::common::{run_many, stderr, World};

const GROUP: &str = "pkgrshare";
const USERS: [&str; 2] = ["pkgr-share-a", "pkgr-share-b"];

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The group and the two accounts (kept between runs: creating them is idempotent).
fn ensure_accounts() -> bool {
    let ok = |cmd: &mut Command| cmd.status().is_ok_and(|s| s.success());
    let _ = Command::new("groupadd").args(["-f", GROUP]).status();
    for user in USERS {
        let exists = ok(Command::new("id")
            .arg(user)
            .stdout(std::process::Stdio::null()));
        if !exists
            && !ok(Command::new("useradd").args(["-M", "-N", "-g", "users", "-G", GROUP, user]))
        {
            return false;
        }
    }
    true
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn two_users_share_one_group_cache() {
    if !is_root() {
        eprintln!("skipped: needs root to create two accounts");
        return;
    }
    if !ensure_accounts() {
        eprintln!("skipped: useradd failed");
        return;
    }
    let world = World::new();
    chmod(world.path(), 0o755);
    let mut channel = LocalChannel::new(&world.path().join("channel"));
    for i in 0..6 {
        channel.add(
            &Package::new(&format!("lib{i}"), "1.0").file(&format!("share/lib{i}.txt"), "x\n"),
            if i % 2 == 0 {
                Format::Conda
            } else {
                Format::TarBz2
            },
        );
    }
    channel.add(
        &Package::new("app", "1.0")
            .depends("lib0")
            .depends("lib1")
            .depends("lib2")
            .depends("lib3")
            .depends("lib4")
            .depends("lib5")
            .executable("bin/app", "#!/bin/sh\necho app\n"),
        Format::Conda,
    );
    channel.write_repodata();
    let server = ChannelServer::serve(channel.root());
    // The binary where both accounts can run it.
    let bin = world.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let pkgr = bin.join("pkgr");
    std::fs::copy(env!("CARGO_BIN_EXE_pkgr"), &pkgr).unwrap();
    chmod(&bin, 0o755);
    chmod(&pkgr, 0o755);
    // The shared cache: group-owned, setgid, group-writable.
    let cache = world.path().join("shared-cache");
    std::fs::create_dir_all(&cache).unwrap();
    assert!(Command::new("chgrp")
        .arg(GROUP)
        .arg(&cache)
        .status()
        .unwrap()
        .success());
    chmod(&cache, 0o2775);
    let envs = world.path().join("envs");
    std::fs::create_dir_all(&envs).unwrap();
    chmod(&envs, 0o1777);
    let as_user = |user: &str, args: &[&str]| {
        let home = envs.join(format!("home-{user}"));
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", user, "--", "env"])
            .arg(format!("HOME={}", home.display()))
            .arg(format!("PKGR_CACHE_DIR={}", cache.display()))
            .arg(format!(
                "PKGR_ROOT={}",
                envs.join(format!("root-{user}")).display()
            ))
            .arg(&pkgr)
            .args(args)
            .current_dir(world.path());
        cmd
    };
    let cmds: Vec<Command> = USERS
        .iter()
        .map(|user| {
            let prefix = envs.join(format!("env-{user}"));
            as_user(
                user,
                &[
                    "create",
                    "-p",
                    prefix.to_str().unwrap(),
                    "-c",
                    server.url(),
                    "app",
                ],
            )
        })
        .collect();
    let outputs = run_many(cmds, Duration::from_secs(120));
    for (user, out) in USERS.iter().zip(&outputs) {
        assert!(out.status.success(), "{user}: {}", stderr(out));
        assert!(
            !stderr(out).contains("ermission denied"),
            "{user}: {}",
            stderr(out)
        );
        assert!(envs.join(format!("env-{user}/bin/app")).is_file());
    }
    // Every archive was downloaded once for both accounts.
    for i in 0..6 {
        let ext = if i % 2 == 0 { "conda" } else { "tar.bz2" };
        let path = format!(
            "/{}/lib{i}-1.0-0.{ext}",
            pkgr_test_support::current_subdir()
        );
        assert_eq!(server.count(&path), 1, "{path}");
    }
    // Each account can verify the whole cache, and use it again.
    for user in USERS {
        let out = as_user(user, &["cache", "verify"]).output().unwrap();
        assert!(
            out.status.success(),
            "{user}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let again = envs.join(format!("again-{user}"));
        let out = as_user(
            user,
            &[
                "create",
                "-p",
                again.to_str().unwrap(),
                "-c",
                server.url(),
                "app",
            ],
        )
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "{user}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // No file in the cache is writable by the group or others (they are
    // hardlinked into environments), except lock files, which hold a pid.
    for file in crate::common::list_files(&cache) {
        let path = cache.join(&file);
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_file() && !file.ends_with(".lock") {
            assert_eq!(
                meta.permissions().mode() & 0o022,
                0,
                "{file} is writable by others"
            );
        }
    }
}
