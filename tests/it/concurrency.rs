//! The shared cache under concurrency, with the real binary: many processes on
//! one cache, unrelated work not waiting, root creation races, kill -9 at random
//! moments, clean while installing, two writers on one prefix, `--jobs 1`,
//! visible waiting, and clear errors. Every process has a timeout that fails
//! the test, so a deadlock is a failure, not a hang.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use pkgr_test_support::{current_subdir, sha256_hex, ChannelServer, Format, LocalChannel, Package};

use crate::common::{
    assert_fails, assert_ok, complete_entries, list_files, run_many, stderr, Running, World,
    TIMEOUT,
};

/// A channel of `libs` shared libraries `lib0..` (both formats), a `common`
/// package everyone needs, and apps `app0..app15`, each needing `common` and two
/// of the libs, so their sets overlap but differ. Payloads are a few KiB each.
fn fleet_channel(root: &Path, libs: usize) -> LocalChannel {
    let mut channel = LocalChannel::new(root);
    let blob = |seed: usize, len: usize| -> Vec<u8> {
        (0..len)
            .map(|i| ((i * 31 + seed * 17) % 251) as u8)
            .collect()
    };
    channel.add(
        &Package::new("common", "1.0")
            .noarch_generic()
            .file("share/common/data.bin", blob(999, 40_000)),
        Format::TarBz2,
    );
    for i in 0..libs {
        let mut package = Package::new(&format!("lib{i}"), "1.0");
        for f in 0..20 {
            package = package.file(&format!("lib/lib{i}/part{f}.bin"), blob(i * 100 + f, 2_000));
        }
        package = package.text_placeholder(
            &format!("etc/lib{i}.conf"),
            format!("prefix={}\n", pkgr_test_support::TEXT_PLACEHOLDER),
        );
        channel.add(
            &package,
            if i % 2 == 0 {
                Format::Conda
            } else {
                Format::TarBz2
            },
        );
    }
    for a in 0..16 {
        let package = Package::new(&format!("app{a}"), "1.0")
            .depends("common")
            .depends(&format!("lib{}", a % libs))
            .depends(&format!("lib{}", (a * 3 + 1) % libs))
            .executable(&format!("bin/app{a}"), format!("#!/bin/sh\necho app{a}\n"));
        channel.add(&package, Format::Conda);
    }
    channel.write_repodata();
    channel
}

/// Waits (at most 30 s) until the server has seen a request for `path`.
fn wait_for_request(server: &ChannelServer, path: &str) {
    let started = Instant::now();
    while server.count(path) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no request for {path}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn create_cmd(world: &World, prefix: &Path, channel: &str, specs: &[&str]) -> Command {
    let mut cmd = world.pkgr();
    cmd.args([
        "create",
        "-y",
        "-p",
        prefix.to_str().unwrap(),
        "-c",
        channel,
    ]);
    cmd.args(specs);
    cmd
}

/// The conda-meta records (not `history`) and every file's sha256, skipping
/// files whose content depends on the prefix path.
fn env_snapshot(prefix: &Path) -> BTreeMap<String, String> {
    let mut snapshot = BTreeMap::new();
    for rel in list_files(prefix) {
        let path = prefix.join(&rel);
        if path.is_dir()
            || rel.ends_with("history")
            || rel.contains(".pkgr-prefix.lock")
            || rel.starts_with("etc/")
        {
            continue;
        }
        let mut bytes = fs_err::read(&path).unwrap();
        if rel.starts_with("conda-meta/") {
            // The sha256 of a file with a placeholder depends on the prefix path.
            let mut record: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            for entry in record["paths_data"]["paths"].as_array_mut().unwrap() {
                if entry.get("prefix_placeholder").is_some() {
                    entry.as_object_mut().unwrap().remove("sha256_in_prefix");
                }
            }
            bytes = serde_json::to_vec(&record).unwrap();
        }
        snapshot.insert(rel, sha256_hex(&bytes));
    }
    snapshot
}

#[track_caller]
fn assert_same_env(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>, what: &str) {
    let a_keys: Vec<&String> = a.keys().collect();
    let b_keys: Vec<&String> = b.keys().collect();
    assert_eq!(a_keys, b_keys, "{what}: different files");
    for (key, value) in a {
        assert_eq!(Some(value), b.get(key), "{what}: {key} differs");
    }
}

fn archive_paths(server_subdir: &str, channel: &LocalChannel) -> Vec<String> {
    let mut paths = Vec::new();
    for subdir in [server_subdir, "noarch"] {
        for entry in fs_err::read_dir(channel.root().join(subdir)).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name.ends_with(".conda") || name.ends_with(".tar.bz2") {
                paths.push(format!("/{subdir}/{name}"));
            }
        }
    }
    paths.sort();
    paths
}

#[test]
fn sixteen_creates_on_a_cold_cache_fetch_everything_once() {
    let world = World::new();
    let channel = fleet_channel(&world.path().join("channel"), 6);
    let server = ChannelServer::serve(channel.root());
    let specs = ["app0", "app1", "app2", "app3"];
    let cmds: Vec<Command> = (0..16)
        .map(|i| create_cmd(&world, &world.env(&format!("e{i}")), server.url(), &specs))
        .collect();
    let outputs = run_many(cmds, TIMEOUT);
    for out in &outputs {
        assert_ok(out);
    }
    let subdir = current_subdir();
    assert_eq!(
        server.count(&format!("/{subdir}/repodata.json")),
        1,
        "{:?}",
        server.counts()
    );
    assert_eq!(
        server.count("/noarch/repodata.json"),
        1,
        "{:?}",
        server.counts()
    );
    // Every archive the environment holds was downloaded exactly once, and
    // nothing else was downloaded at all.
    let installed: Vec<String> = fs_err::read_dir(world.env("e0").join("conda-meta"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let record: serde_json::Value =
                serde_json::from_slice(&fs_err::read(p).unwrap()).unwrap();
            format!(
                "/{}/{}",
                record["subdir"].as_str().unwrap(),
                record["fn"].as_str().unwrap()
            )
        })
        .collect();
    assert!(installed.len() >= 8, "{installed:?}");
    for path in archive_paths(subdir, &channel) {
        let expected = usize::from(installed.contains(&path));
        assert_eq!(
            server.count(&path),
            expected,
            "{path}: {:?}",
            server.counts()
        );
    }
    let first = env_snapshot(&world.env("e0"));
    assert!(first.keys().any(|k| k.starts_with("conda-meta/app3-")));
    for i in 1..16 {
        assert_same_env(
            &env_snapshot(&world.env(&format!("e{i}"))),
            &first,
            &format!("environment e{i} vs e0"),
        );
    }
}

#[test]
fn unrelated_work_never_waits_for_a_slow_package() {
    let world = World::new();
    let channel = fleet_channel(&world.path().join("channel"), 6);
    let server = ChannelServer::serve(channel.root());
    let subdir = current_subdir();
    // app0 needs lib0 and lib1; lib0 is slow to serve. Warm the repodata and
    // `common` first, so the only shared work left is what each app needs.
    assert_ok(&world.create(&world.env("warm"), server.url(), &["common"]));
    let slow_path = format!("/{subdir}/lib0-1.0-0.conda");
    server.delay(&slow_path, Duration::from_secs(8));
    let mut slow = Running::spawn(create_cmd(
        &world,
        &world.env("slow"),
        server.url(),
        &["app0"],
    ));
    let started = Instant::now();
    while server.count(&slow_path) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the slow download never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Apps whose libs do not include lib0: a%6 != 0 and (3a+1)%6 != 0.
    let others: Vec<usize> = (1..16)
        .filter(|a| a % 6 != 0 && (a * 3 + 1) % 6 != 0)
        .collect();
    assert!(others.len() >= 8);
    let cmds: Vec<Command> = others
        .iter()
        .map(|a| {
            create_cmd(
                &world,
                &world.env(&format!("fast{a}")),
                server.url(),
                &[&format!("app{a}")],
            )
        })
        .collect();
    let outputs = run_many(cmds, TIMEOUT);
    assert!(
        !slow.is_done(),
        "the other creates should finish while lib0 is still being served ({:?} since it started)",
        started.elapsed()
    );
    for out in &outputs {
        assert_ok(out);
        assert!(!stderr(out).contains("waiting for"), "{}", stderr(out));
    }
    assert_ok(&slow.wait(TIMEOUT));
    assert_eq!(server.count(&slow_path), 1);
}

#[test]
fn thirty_two_processes_create_the_cache_root_at_once() {
    let world = World::new();
    let channel = fleet_channel(&world.path().join("channel"), 2);
    let root = world.path().join("parent").join("fresh-cache");
    fs_err::create_dir_all(root.parent().unwrap()).unwrap();
    let cmds: Vec<Command> = (0..32)
        .map(|i| {
            let mut cmd = create_cmd(
                &world,
                &world.env(&format!("r{i}")),
                channel.root().to_str().unwrap(),
                &["common"],
            );
            cmd.env("PKGR_CACHE_DIR", &root);
            cmd
        })
        .collect();
    for out in run_many(cmds, TIMEOUT) {
        assert_ok(&out);
    }
    assert!(root.join("CACHEDIR.TAG").is_file());
    assert_eq!(complete_entries(&root), 1);
}

#[test]
fn two_writers_on_one_prefix_serialize() {
    let world = World::new();
    let channel = fleet_channel(&world.path().join("channel"), 4);
    let server = ChannelServer::serve(channel.root());
    let subdir = current_subdir();
    let slow_path = format!("/{subdir}/app0-1.0-0.conda");
    server.delay(&slow_path, Duration::from_secs(3));
    let prefix = world.env("contended");
    let first = Running::spawn(create_cmd(&world, &prefix, server.url(), &["app0"]));
    wait_for_request(&server, &slow_path);
    let second = Running::spawn(create_cmd(&world, &prefix, server.url(), &["app2"]));
    let first = first.wait(TIMEOUT);
    let second = second.wait(TIMEOUT);
    assert_ok(&first);
    assert_ok(&second);
    assert!(
        stderr(&second).contains("waiting for the environment lock"),
        "{}",
        stderr(&second)
    );
    // The second writer ran last: the environment is exactly app2's.
    let records: Vec<String> = fs_err::read_dir(prefix.join("conda-meta"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert!(
        records.iter().any(|r| r.starts_with("app2-")),
        "{records:?}"
    );
    assert!(
        !records.iter().any(|r| r.starts_with("app0-")),
        "{records:?}"
    );
    assert!(!prefix.join("bin/app0").exists());
    assert!(prefix.join("bin/app2").exists());
}

#[test]
fn jobs_one_with_sixteen_processes_never_deadlocks() {
    let world = World::new();
    let channel = fleet_channel(&world.path().join("channel"), 6);
    let server = ChannelServer::serve(channel.root());
    let cmds: Vec<Command> = (0..16)
        .map(|a| {
            let mut cmd = create_cmd(
                &world,
                &world.env(&format!("j{a}")),
                server.url(),
                &[&format!("app{a}"), &format!("app{}", (a + 5) % 16)],
            );
            cmd.env("PKGR_JOBS", "1");
            cmd
        })
        .collect();
    for out in run_many(cmds, TIMEOUT) {
        assert_ok(&out);
    }
}

#[test]
fn waiting_for_another_process_is_visible_and_reuses_its_work() {
    let world = World::new();
    let channel = fleet_channel(&world.path().join("channel"), 4);
    let server = ChannelServer::serve(channel.root());
    let subdir = current_subdir();
    assert_ok(&world.create(&world.env("warm"), server.url(), &["common"]));
    let slow_path = format!("/{subdir}/lib1-1.0-0.tar.bz2");
    server.delay(&slow_path, Duration::from_secs(3));
    let first = Running::spawn(create_cmd(&world, &world.env("a"), server.url(), &["lib1"]));
    let first_pid = first.child.id();
    wait_for_request(&server, &slow_path);
    let second = world.create(&world.env("b"), server.url(), &["lib1"]);
    assert_ok(&second);
    let text = stderr(&second);
    assert!(
        text.contains(&format!(
            "waiting for lib1-1.0-0.tar.bz2 (being fetched by pkgr pid {first_pid})"
        )),
        "{text}"
    );
    assert!(text.contains("cached lib1-1.0-0.tar.bz2"), "{text}");
    assert_ok(&first.wait(TIMEOUT));
    assert_eq!(server.count(&slow_path), 1);
}

/// A tiny deterministic generator for kill delays (seed printed on failure).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

#[test]
fn kill_nine_at_random_moments_never_corrupts_the_cache() {
    let world = World::new();
    let channel = fleet_channel(&world.path().join("channel"), 6);
    let server = ChannelServer::serve(channel.root());
    // Slow every archive a little so kills land in downloads too.
    for path in archive_paths(current_subdir(), &channel) {
        server.delay(&path, Duration::from_millis(150));
    }
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("kill -9 seed: {seed}");
    let mut rng = Lcg(seed);
    let apps: Vec<String> = (0..16).map(|a| format!("app{a}")).collect();
    let mut killed_early = 0;
    for round in 0..24 {
        // Now and then empty the cache, so kills land in downloads and
        // extractions again, not only in linking.
        if rng.next(3) == 0 {
            assert_ok(&world.run(&["clean", "--all"]));
        }
        let specs = [
            apps[round % 16].as_str(),
            apps[(round * 7 + 3) % 16].as_str(),
        ];
        let mut running = Running::spawn(create_cmd(
            &world,
            &world.env(&format!("k{round}")),
            server.url(),
            &specs,
        ));
        std::thread::sleep(Duration::from_millis(rng.next(600)));
        if !running.is_done() {
            killed_early += 1;
        }
        // SIGKILL: no destructor, no unlock, no cleanup.
        let _ = running.child.kill();
        let _ = running.wait(TIMEOUT);
    }
    eprintln!("{killed_early} of 24 creates were killed before they finished");
    assert!(
        killed_early >= 6,
        "too few kills landed mid-run (seed {seed})"
    );

    // Nothing that looks complete is corrupt.
    let out = world.run(&["--json", "cache", "verify"]);
    assert_ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["corrupt"].as_array().unwrap().len(),
        0,
        "{report} (seed {seed})"
    );

    // A normal create succeeds and is complete.
    let prefix = world.env("after");
    assert_ok(&world.create(&prefix, server.url(), &["app0", "app5", "app9"]));
    for app in ["app0", "app5", "app9"] {
        assert!(prefix.join("bin").join(app).is_file());
    }
    let out = world.run(&["--json", "cache", "verify"]);
    assert_ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["checked"].as_u64().unwrap() >= 5, "{report}");

    // The dead processes' temp files are swept; nothing else is left in tmp/.
    let out = world.run(&["--json", "clean", "--temp"]);
    assert_ok(&out);
    let leftovers = list_files(&world.cache().join("tmp"));
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn verify_finds_and_repairs_corrupt_entries() {
    let world = World::new();
    let channel = fleet_channel(&world.path().join("channel"), 2);
    let prefix = world.env("v");
    assert_ok(&world.create(&prefix, channel.root().to_str().unwrap(), &["app0"]));
    let out = world.run(&["--json", "cache", "verify"]);
    assert_ok(&out);
    // Corrupt one extracted file, as a disk incident would.
    let pkgs = world.cache().join("pkgs");
    let entry = fs_err::read_dir(&pkgs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.is_dir()
                && p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("lib0-")
        })
        .unwrap();
    fs_err::write(entry.join("lib/lib0/part3.bin"), b"bit rot").unwrap();
    let out = world.run(&["cache", "verify"]);
    snapshot_failure!(&world, "verify_finds_bit_rot", out);
    assert_ok(&world.run(&["cache", "verify", "--repair"]));
    assert!(!entry.exists());
    assert_ok(&world.run(&["--json", "cache", "verify"]));
    // The next create fetches it again.
    let again = world.env("again");
    assert_ok(&world.create(&again, channel.root().to_str().unwrap(), &["app0"]));
    assert_eq!(
        fs_err::read(again.join("lib/lib0/part3.bin"))
            .unwrap()
            .len(),
        2_000
    );
}

#[test]
fn clean_all_in_a_loop_never_breaks_a_create() {
    let world = World::new();
    let channel = fleet_channel(&world.path().join("channel"), 6);
    let server = ChannelServer::serve(channel.root());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cleaner = {
        let stop = stop.clone();
        let mut cmd_template = world.pkgr();
        cmd_template.args(["--json", "clean", "--all"]);
        let program = cmd_template.get_program().to_owned();
        let envs: Vec<(std::ffi::OsString, Option<std::ffi::OsString>)> = cmd_template
            .get_envs()
            .map(|(k, v)| (k.to_owned(), v.map(ToOwned::to_owned)))
            .collect();
        std::thread::spawn(move || {
            let mut runs = 0;
            let mut busy_seen = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && runs < 500 {
                let mut cmd = Command::new(&program);
                for (k, v) in &envs {
                    match v {
                        Some(v) => cmd.env(k, v),
                        None => cmd.env_remove(k),
                    };
                }
                cmd.args(["--json", "clean", "--all"]);
                let out = crate::common::run_with_timeout(cmd, TIMEOUT);
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                busy_seen += report["busy"].as_array().unwrap().len();
                runs += 1;
            }
            (runs, busy_seen)
        })
    };
    let cmds: Vec<Command> = (0..8)
        .map(|a| {
            create_cmd(
                &world,
                &world.env(&format!("c{a}")),
                server.url(),
                &[&format!("app{a}"), &format!("app{}", a + 8)],
            )
        })
        .collect();
    let outputs = run_many(cmds, TIMEOUT);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (runs, busy_seen) = cleaner.join().unwrap();
    eprintln!("clean --all ran {runs} times while installing, skipping {busy_seen} busy entries");
    assert!(runs >= 2);
    for (a, out) in outputs.iter().enumerate() {
        assert_ok(out);
        let prefix = world.env(&format!("c{a}"));
        assert!(prefix.join(format!("bin/app{a}")).is_file());
        for f in 0..20 {
            let lib = a % 6;
            assert!(prefix.join(format!("lib/lib{lib}/part{f}.bin")).is_file());
        }
    }
}

#[test]
fn unusable_lock_file_is_a_clear_error() {
    let world = World::new();
    let channel = fleet_channel(&world.path().join("channel"), 2);
    // Learn the entry key, then put a directory where its lock file goes.
    assert_ok(&world.create(
        &world.env("a"),
        channel.root().to_str().unwrap(),
        &["common"],
    ));
    let locks = world.cache().join("pkgs/.locks");
    let lock = fs_err::read_dir(&locks)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("common-"))
        .unwrap();
    assert_ok(&world.run(&["clean", "--all"]));
    fs_err::remove_file(&lock).unwrap();
    fs_err::create_dir(&lock).unwrap();
    let prefix = world.env("b");
    snapshot_failure!(
        &world,
        "lock_file_is_a_directory",
        world.create(&prefix, channel.root().to_str().unwrap(), &["common"])
    );
    assert!(!prefix.exists());
}

#[test]
fn disk_full_is_a_clear_error_and_leaves_nothing_complete() {
    let world = World::new();
    let channel = fleet_channel(&world.path().join("channel"), 2);
    let small = world.path().join("small");
    fs_err::create_dir_all(&small).unwrap();
    let mounted = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=48k",
            "tmpfs",
            small.to_str().unwrap(),
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&small);
    let cache = small.join("cache");
    let prefix = world.env("full");
    let out = world.run(&[
        "create",
        "--cache-dir",
        cache.to_str().unwrap(),
        "-p",
        prefix.to_str().unwrap(),
        "-c",
        channel.root().to_str().unwrap(),
        "common",
    ]);
    let err = assert_fails(&out);
    // Not a snapshot: which of the packages fetched in parallel meets the
    // full disk first, and at which step, varies from run to run.
    assert!(
        err.contains("No space left on device") || err.contains("os error 28"),
        "{err}"
    );
    assert!(!prefix.exists());
    let complete = complete_entries(&cache);
    assert_eq!(complete, 0);
}

#[test]
fn a_create_without_force_never_overwrites_an_env_created_meanwhile() {
    let world = World::new();
    let channel = fleet_channel(&world.path().join("channel"), 4);
    let server = ChannelServer::serve(channel.root());
    let slow_path = format!("/{}/app0-1.0-0.conda", current_subdir());
    server.delay(&slow_path, Duration::from_secs(3));
    let prefix = world.env("raced");
    let create = |spec: &str| {
        let mut cmd = world.pkgr();
        cmd.args([
            "create",
            "-p",
            prefix.to_str().unwrap(),
            "-c",
            server.url(),
            spec,
        ]);
        cmd
    };
    // Both pass the early "does it exist?" check; only the lock decides.
    let first = Running::spawn(create("app0"));
    wait_for_request(&server, &slow_path);
    let second = Running::spawn(create("app2"));
    assert_ok(&first.wait(TIMEOUT));
    let err = assert_fails(&second.wait(TIMEOUT));
    // Not a snapshot: the second create sees the environment either at its
    // early check ("already exists at ...") or only once it holds the lock
    // ("... (another process created it meanwhile; ...)"), as the race goes.
    assert!(err.contains("already exists"), "{err}");
    assert!(
        prefix.join("bin/app0").is_file(),
        "the first environment is intact"
    );
    assert!(!prefix.join("bin/app2").exists());
    assert!(prefix.join("conda-meta/app0-1.0-0.json").is_file());
}
