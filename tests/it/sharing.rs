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

use crate::common::{ensure_account, is_root, run_many, stderr, World};

const GROUP: &str = "pkgrshare";
const USERS: [&str; 2] = ["pkgr-share-a", "pkgr-share-b"];

fn ensure_accounts() -> bool {
    USERS.iter().all(|user| ensure_account(user, Some(GROUP)))
}

fn chmod(path: &Path, mode: u32) {
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
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
    fs_err::create_dir_all(&bin).unwrap();
    let pkgr = bin.join("pkgr");
    fs_err::copy(env!("CARGO_BIN_EXE_pkgr"), &pkgr).unwrap();
    chmod(&bin, 0o755);
    chmod(&pkgr, 0o755);
    // The shared cache: group-owned, setgid, group-writable.
    let cache = world.path().join("shared-cache");
    fs_err::create_dir_all(&cache).unwrap();
    assert!(Command::new("chgrp")
        .arg(GROUP)
        .arg(&cache)
        .status()
        .unwrap()
        .success());
    chmod(&cache, 0o2775);
    let envs = world.path().join("envs");
    fs_err::create_dir_all(&envs).unwrap();
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
        let meta = fs_err::symlink_metadata(&path).unwrap();
        if meta.is_file() && !file.ends_with(".lock") {
            assert_eq!(
                meta.permissions().mode() & 0o022,
                0,
                "{file} is writable by others"
            );
        }
    }
}

/// A group cache with the channel and binary both accounts can use: what
/// the two-user tests share.
struct GroupCache {
    world: World,
    server: ChannelServer,
    pkgr: std::path::PathBuf,
    cache: std::path::PathBuf,
    envs: std::path::PathBuf,
}

impl GroupCache {
    /// `lib0`..`lib3` and `app` needing them all, served on 127.0.0.1; an
    /// empty `chmod 2775` cache owned by the group.
    fn new() -> Self {
        let world = World::new();
        chmod(world.path(), 0o755);
        let mut channel = LocalChannel::new(&world.path().join("channel"));
        let mut app = Package::new("app", "1.0");
        for i in 0..4 {
            channel.add(
                &Package::new(&format!("lib{i}"), "1.0")
                    .file(&format!("share/lib{i}.txt"), format!("lib{i} data\n")),
                if i % 2 == 0 {
                    Format::Conda
                } else {
                    Format::TarBz2
                },
            );
            app = app.depends(&format!("lib{i}"));
        }
        channel.add(&app, Format::Conda);
        channel.write_repodata();
        let server = ChannelServer::serve(channel.root());
        let bin = world.path().join("bin");
        fs_err::create_dir_all(&bin).unwrap();
        let pkgr = bin.join("pkgr");
        fs_err::copy(env!("CARGO_BIN_EXE_pkgr"), &pkgr).unwrap();
        chmod(&bin, 0o755);
        chmod(&pkgr, 0o755);
        let cache = world.path().join("shared-cache");
        fs_err::create_dir_all(&cache).unwrap();
        assert!(Command::new("chgrp")
            .arg(GROUP)
            .arg(&cache)
            .status()
            .unwrap()
            .success());
        chmod(&cache, 0o2775);
        let envs = world.path().join("envs");
        fs_err::create_dir_all(&envs).unwrap();
        chmod(&envs, 0o1777);
        Self {
            world,
            server,
            pkgr,
            cache,
            envs,
        }
    }

    /// `pkgr ARGS` as `user`, on the shared cache.
    fn run(&self, user: &str, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", user, "--", "env"])
            .arg(format!(
                "HOME={}",
                self.envs.join(format!("home-{user}")).display()
            ))
            .arg(format!("PKGR_CACHE_DIR={}", self.cache.display()))
            .arg(format!(
                "PKGR_ROOT={}",
                self.envs.join(format!("root-{user}")).display()
            ))
            .arg(&self.pkgr)
            .args(args)
            .current_dir(self.world.path());
        crate::common::run_with_timeout(cmd, crate::common::TIMEOUT)
    }

    /// `pkgr create -p <envs>/NAME -c <server> app` as `user`.
    fn create(&self, user: &str, name: &str) -> std::process::Output {
        let prefix = self.envs.join(name);
        self.run(
            user,
            &[
                "create",
                "-y",
                "-p",
                prefix.to_str().unwrap(),
                "-c",
                self.server.url(),
                "app",
            ],
        )
    }

    /// The extracted entry of `lib<i>`.
    fn entry(&self, i: usize) -> std::path::PathBuf {
        let pkgs = self.cache.join("pkgs");
        fs_err::read_dir(&pkgs)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.is_dir()
                    && p.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with(&format!("lib{i}-1.0-0-"))
            })
            .unwrap_or_else(|| panic!("no entry of lib{i} in {}", pkgs.display()))
    }

    fn archive_requests(&self) -> usize {
        self.server
            .counts()
            .iter()
            .filter(|(path, _)| path.ends_with(".conda") || path.ends_with(".tar.bz2"))
            .map(|(_, n)| n)
            .sum()
    }
}

/// One member published entries; they were damaged since (a file deleted,
/// one truncated). Another member who needs them repairs them: the damaged
/// entry is moved aside (a rename inside the group-writable `pkgs/`, which
/// needs no write permission on the other member's directory) and filled
/// again under its exclusive lock. Where the cache does not let members
/// replace each other's entries (a sticky `pkgs/`), the second member gets
/// one clear error naming the entry, its owner and what to do, and the
/// entry is left exactly as it was.
#[test]
fn a_member_repairs_a_damaged_entry_another_member_published() {
    if !is_root() {
        eprintln!("skipped: needs root to create two accounts");
        return;
    }
    if !ensure_accounts() {
        eprintln!("skipped: useradd failed");
        return;
    }
    let [a, b] = USERS;
    let group = GroupCache::new();
    crate::common::assert_ok(&group.create(a, "env-a"));
    let requests = group.archive_requests();
    // Damaged behind pkgr's back: lib0 lost a file, lib1 has one truncated.
    fs_err::remove_file(group.entry(0).join("share/lib0.txt")).unwrap();
    fs_err::write(group.entry(1).join("share/lib1.txt"), "").unwrap();

    let out = group.create(b, "env-b");
    crate::common::assert_ok(&out);
    let err = stderr(&out);
    assert!(!err.contains("ermission denied"), "{err}");
    assert!(
        err.contains("lib0-1.0-0.conda") && err.contains("lib1-1.0-0.tar.bz2"),
        "{err}"
    );
    for i in 0..4 {
        assert_eq!(
            fs_err::read_to_string(group.envs.join(format!("env-b/share/lib{i}.txt"))).unwrap(),
            format!("lib{i} data\n")
        );
    }
    // Repaired from the archives A downloaded: nothing fetched again.
    assert_eq!(group.archive_requests(), requests);
    for user in USERS {
        let out = group.run(user, &["cache", "verify"]);
        crate::common::assert_ok(&out);
    }
    // What was moved aside, the owner (who may delete their files) cleans.
    crate::common::assert_ok(&group.run(a, &["clean", "--temp"]));
    let leftovers: Vec<String> = fs_err::read_dir(group.cache.join("pkgs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".old-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A sticky pkgs/: members may not move each other's entries.
    let pkgs = group.cache.join("pkgs");
    let mode = fs_err::metadata(&pkgs).unwrap().permissions().mode();
    chmod(&pkgs, (mode & 0o7777) | 0o1000);
    let damaged = group.entry(2);
    fs_err::remove_file(damaged.join("share/lib2.txt")).unwrap();
    let before = list_files_of(&group.cache);
    let out = group.create(b, "env-b2");
    // One error and its OS cause, not a bare EACCES/EPERM: names the entry,
    // its owner and `pkgr cache verify --repair`. Without the download
    // lines (they finish in any order).
    snapshot_messages!(
        &group.world,
        "damaged_entry_of_another_member",
        out,
        "[CACHE]" => group.cache,
        "[ENVS]" => group.envs,
    );
    assert_eq!(
        list_files_of(&group.cache),
        before,
        "the damaged entry was changed"
    );
    // Its owner can repair it.
    crate::common::assert_ok(&group.run(a, &["cache", "verify", "--repair"]));
    crate::common::assert_ok(&group.create(b, "env-b3"));
    assert!(group.envs.join("env-b3/share/lib2.txt").is_file());
}

/// A pre-filled cache on a read-only mount (as baked into a container image)
/// is used as a layer: what it has is linked from it without a download,
/// without a lock and without a write; the rest is fetched into the
/// writable cache.
#[test]
fn a_read_only_cache_layer_is_used_and_never_written() {
    if !is_root() {
        eprintln!("skipped: needs root for a read-only bind mount");
        return;
    }
    let world = World::new();
    let mut channel = LocalChannel::new(&world.path().join("channel"));
    channel.add(
        &Package::new("base", "1.0").file("share/base.txt", "b\n"),
        Format::Conda,
    );
    channel.add(
        &Package::new("extra", "1.0").file("share/extra.txt", "e\n"),
        Format::TarBz2,
    );
    channel.write_repodata();
    let server = ChannelServer::serve(channel.root());
    // Fill a cache with `base`, then mount it read-only elsewhere.
    let filled = world.path().join("filled");
    let mut cmd = world.pkgr();
    cmd.env("PKGR_CACHE_DIR", &filled).args([
        "create",
        "-p",
        world.env("seed").to_str().unwrap(),
        "-c",
        server.url(),
        "base",
    ]);
    assert!(crate::common::run_with_timeout(cmd, crate::common::TIMEOUT)
        .status
        .success());
    let layer = world.path().join("layer");
    let Some(_unmount) = read_only_bind_mount(&filled, &layer) else {
        eprintln!("skipped: could not make a read-only bind mount");
        return;
    };
    assert!(
        fs_err::write(layer.join("probe"), "x").is_err(),
        "the layer is writable"
    );
    let before = list_files_of(&layer);
    let served_base = server.count(&format!(
        "/{}/base-1.0-0.conda",
        pkgr_test_support::current_subdir()
    ));
    // The layer from pkgr's config (pkgs_dirs: the read-only one first).
    let home = world.path().join("home/.config/pkgr");
    fs_err::create_dir_all(&home).unwrap();
    let writable = world.path().join("writable");
    fs_err::write(
        home.join("config.yaml"),
        format!(
            "pkgs_dirs:\n  - {}\n  - {}\n",
            layer.display(),
            writable.display()
        ),
    )
    .unwrap();
    let prefix = world.env("from-layer");
    let mut cmd = world.pkgr();
    cmd.env_remove("PKGR_CACHE_DIR").args([
        "create",
        "-p",
        prefix.to_str().unwrap(),
        "-c",
        server.url(),
        "base",
        "extra",
    ]);
    let out = crate::common::run_with_timeout(cmd, crate::common::TIMEOUT);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(prefix.join("share/base.txt").is_file() && prefix.join("share/extra.txt").is_file());
    // base came from the layer: not downloaded again; extra was fetched
    // into the writable cache; the layer is exactly as it was.
    assert_eq!(
        server.count(&format!(
            "/{}/base-1.0-0.conda",
            pkgr_test_support::current_subdir()
        )),
        served_base
    );
    assert!(
        crate::common::complete_entries(&writable) == 1,
        "only extra is in the writable cache"
    );
    assert_eq!(list_files_of(&layer), before);
}

fn list_files_of(dir: &Path) -> Vec<String> {
    crate::common::list_files(dir)
}

/// Unmounts a bind mount when dropped.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// `source` mounted read-only at `target` (a bind mount, then a read-only
/// remount of it); `None` if that is not possible here.
fn read_only_bind_mount(source: &Path, target: &Path) -> Option<Unmount> {
    fs_err::create_dir_all(target).unwrap();
    let mounted = Command::new("mount")
        .arg("--bind")
        .arg(source)
        .arg(target)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        return None;
    }
    let unmount = Unmount(target.to_path_buf());
    let read_only = Command::new("mount")
        .args(["-o", "remount,bind,ro"])
        .arg(target)
        .status()
        .is_ok_and(|s| s.success());
    (read_only && fs_err::write(target.join("probe"), "x").is_err()).then_some(unmount)
}

/// The only cache is on a read-only mount (a pre-filled cache in a
/// container image, with no writable one configured): commands that fetch
/// nothing work from it (`remove`, `list`, installing what it already
/// has), its entries are used without locks and nothing is written there;
/// fetching something it lacks fails with one clear message that names the
/// cache and says what to configure.
#[test]
fn commands_that_fetch_nothing_work_on_a_read_only_cache() {
    if !is_root() {
        eprintln!("skipped: needs root for a read-only bind mount");
        return;
    }
    let world = World::new();
    let mut channel = LocalChannel::new(&world.path().join("channel"));
    for (name, format) in [
        ("base", Format::Conda),
        ("extra", Format::TarBz2),
        ("later", Format::Conda),
        ("missing", Format::Conda),
    ] {
        channel.add(
            &Package::new(name, "1.0").file(&format!("share/{name}.txt"), name),
            format,
        );
    }
    channel.write_repodata();
    let server = ChannelServer::serve(channel.root());
    // A writable cache gets base, extra and later (later in another env).
    let filled = world.path().join("filled");
    let prefix = world.env("app");
    for (env, specs) in [
        (&prefix, &["base", "extra"][..]),
        (&world.env("seed"), &["later"][..]),
    ] {
        let mut cmd = world.pkgr();
        cmd.env("PKGR_CACHE_DIR", &filled)
            .args(["create", "-p", env.to_str().unwrap(), "-c", server.url()])
            .args(specs);
        crate::common::assert_ok(&crate::common::run_with_timeout(
            cmd,
            crate::common::TIMEOUT,
        ));
    }
    // ...and is then the only cache, read-only.
    let cache = world.path().join("ro-cache");
    let Some(_unmount) = read_only_bind_mount(&filled, &cache) else {
        eprintln!("skipped: could not make a read-only bind mount");
        return;
    };
    let before = list_files_of(&cache);
    let served = server.counts();
    let run = |args: &[&str]| {
        let mut cmd = world.pkgr();
        cmd.env("PKGR_CACHE_DIR", &cache).args(args);
        crate::common::run_with_timeout(cmd, crate::common::TIMEOUT)
    };
    let p = prefix.to_str().unwrap();

    let out = run(&["remove", "-y", "-p", p, "extra"]);
    crate::common::assert_ok(&out);
    assert!(!prefix.join("share/extra.txt").exists());
    crate::common::assert_ok(&run(&["list", "-p", p]));
    crate::common::assert_ok(&run(&["env", "list"]));
    // `pkgr info` says how the cache is used.
    let out = run(&["info"]);
    crate::common::assert_ok(&out);
    let text = crate::common::stdout(&out);
    assert!(
        text.contains("(on a read-only filesystem: its packages are used, none can be added)"),
        "{text}"
    );
    let out = run(&["info", "--json"]);
    crate::common::assert_ok(&out);
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["cache_read_only"], true);
    // A package the read-only cache has is linked from it (the repodata
    // fetched a moment ago is fresh: no request needs a write either).
    let out = run(&["install", "-y", "-p", p, "-c", server.url(), "later"]);
    crate::common::assert_ok(&out);
    assert!(prefix.join("share/later.txt").is_file());
    // One it lacks cannot be fetched: one clear error, nothing changed.
    let out = run(&["install", "-y", "-p", p, "-c", server.url(), "missing"]);
    let err = crate::common::assert_fails(&out).replace(server.url(), "[SERVER]");
    snapshot!(&world, "read_only_cache_cannot_fetch", err);
    assert!(!prefix.join("share/missing.txt").exists());
    assert!(prefix.join("share/base.txt").is_file());
    // Checking it is reading too; cleaning it is not, and says so.
    crate::common::assert_ok(&run(&["cache", "verify"]));
    snapshot_failure!(
        &world,
        "read_only_cache_cannot_clean",
        run(&["clean", "--all"])
    );

    assert_eq!(list_files_of(&cache), before, "the read-only cache changed");
    let archives_served = |counts: &std::collections::HashMap<String, usize>| {
        counts
            .iter()
            .filter(|(path, _)| path.ends_with(".conda") || path.ends_with(".tar.bz2"))
            .map(|(_, n)| n)
            .sum::<usize>()
    };
    assert_eq!(
        archives_served(&server.counts()),
        archives_served(&served),
        "no archive was downloaded"
    );
}
