//! What a hostile archive (or the repodata describing it) can make pkgr
//! write or read, seen from the real binary: a metadata bomb does not make
//! `pkgr index` read a GiB; a small bomb whose repodata claims a huge size
//! stops at the budget of its real bytes while it downloads; and published
//! cache files are read-only, so that an environment's copies are its own
//! and its hardlinks cannot be written through (as a non-root account:
//! root ignores modes).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use pkgr_test_support::bench::random_bytes;
use pkgr_test_support::{
    current_subdir, ChannelServer, Fault, Format, LocalChannel, Package, TEXT_PLACEHOLDER,
};

use crate::common::{assert_ok, ensure_account, is_root, run_with_timeout, stderr, Running, World};

const TIMEOUT: Duration = Duration::from_secs(120);

/// A `.conda` of a few dozen KB whose `info/index.json` is 1 GiB of (valid)
/// JSON: `pkgr index` skips it quickly, naming the file and the limit,
/// without reading it (peak RSS well under the GiB), and indexes the rest.
#[test]
fn index_refuses_a_gib_index_json_in_bounded_memory() {
    let world = World::new();
    let root = world.path().join("chan");
    let subdir = root.join(current_subdir());
    let bomb = pkgr_test_support::write_index_json_bomb(&subdir, "bomb", Format::Conda, 1 << 30);
    assert!(fs_err::metadata(&bomb).unwrap().len() < 1 << 20);
    Package::new("fine", "1.0")
        .file("share/fine.txt", "fine\n")
        .write(&subdir, Format::TarBz2);
    // Peak RSS from the kernel (wait4's ru_maxrss) when GNU time is there.
    let time = Path::new("/usr/bin/time");
    let rss_file = world.path().join("rss");
    let mut cmd = if time.is_file() {
        let mut cmd = Command::new(time);
        cmd.args(["-f", "%M", "-o"])
            .arg(&rss_file)
            .arg(env!("CARGO_BIN_EXE_pkgr"));
        cmd
    } else {
        Command::new(env!("CARGO_BIN_EXE_pkgr"))
    };
    cmd.env("HOME", world.path().join("home"))
        .env("PKGR_CACHE_DIR", world.cache())
        .args(["index", root.to_str().unwrap()]);
    let started = Instant::now();
    let out = run_with_timeout(cmd, TIMEOUT);
    let took = started.elapsed();
    assert_ok(&out);
    let err = stderr(&out);
    assert!(
        err.contains("bomb-1-0.conda") && err.contains("info/index.json of more than 16 MiB"),
        "{err}"
    );
    let repodata: serde_json::Value =
        serde_json::from_slice(&fs_err::read(subdir.join("repodata.json")).unwrap()).unwrap();
    assert!(repodata["packages"]["fine-1.0-0.tar.bz2"].is_object());
    assert!(repodata["packages.conda"]["bomb-1-0.conda"].is_null());
    assert!(took < Duration::from_secs(20), "took {took:?}");
    match fs_err::read_to_string(&rss_file) {
        Ok(text) => {
            let kib: u64 = text.trim().lines().last().unwrap().parse().unwrap();
            assert!(kib < 200 << 10, "pkgr index peaked at {kib} KiB");
        }
        Err(_) => eprintln!("peak RSS not checked: no /usr/bin/time"),
    }
}

/// The sum of the sizes (apparent, holes included) of the files below
/// `dir`, as far as they are still there while it is walked.
fn apparent_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(at) = todo.pop() {
        let Ok(entries) = fs_err::read_dir(&at) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = fs_err::symlink_metadata(entry.path()) else {
                continue;
            };
            if meta.is_dir() {
                todo.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

/// A `.conda` of a few hundred KB that unpacks to 5 GiB (sparse files: no
/// disk), whose repodata says it is 10^12 bytes big, served in two halves
/// 3 s apart (the bomb is in the first): while it downloads, the extraction
/// writes no more than 250x its real bytes plus 1 GiB, and the install
/// fails on the size mismatch.
#[test]
fn a_claimed_size_does_not_raise_the_stream_budget() {
    let world = World::new();
    let mut channel = LocalChannel::new(&world.path().join("channel"));
    let mut records = Vec::new();
    for i in 0..20 {
        records.extend(pkgr_test_support::sparse_entry(
            &format!("lib/bomb{i}"),
            256 << 20,
        ));
    }
    // Incompressible, after the bomb: the second half of the body.
    records.extend(pkgr_test_support::file_entry(
        "share/filler.bin",
        &random_bytes(7, 600_000),
    ));
    let package = Package::new("bomb", "1.0").file("share/ok.txt", "ok\n");
    channel.add(&package, Format::Conda);
    channel.write_repodata();
    // The bomb in its place; its record has its sha256, and claims 10^12
    // bytes.
    let dir = channel.root().join(current_subdir());
    let archive = package.write_with_raw_payload(&dir, Format::Conda, &records);
    let bytes = fs_err::read(&archive).unwrap();
    let real = bytes.len() as u64;
    let repodata_path = dir.join("repodata.json");
    let mut repodata: serde_json::Value =
        serde_json::from_slice(&fs_err::read(&repodata_path).unwrap()).unwrap();
    let record = &mut repodata["packages.conda"]["bomb-1.0-0.conda"];
    record["size"] = serde_json::json!(10u64.pow(12));
    record["sha256"] = serde_json::json!(pkgr_test_support::sha256_hex(&bytes));
    record.as_object_mut().unwrap().remove("md5");
    fs_err::write(&repodata_path, serde_json::to_vec(&repodata).unwrap()).unwrap();
    let server = ChannelServer::serve(channel.root());
    server.fault(
        &format!("/{}/bomb-1.0-0.conda", current_subdir()),
        Fault::StallMidBody(Duration::from_secs(3)),
    );
    let mut cmd = world.pkgr();
    cmd.args(["create", "-y", "-p"])
        .arg(world.env("e"))
        .args(["-c", server.url(), "bomb"]);
    let mut running = Running::spawn(cmd);
    let tmp = world.cache().join("tmp");
    let mut most = 0;
    let started = Instant::now();
    while !running.is_done() && started.elapsed() < TIMEOUT {
        most = most.max(apparent_size(&tmp));
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = running.wait(Duration::from_secs(10));
    // The size mismatch is reported (without the download lines: the two
    // repodata downloads finish in either order).
    snapshot_messages!(&world, "claimed_size_mismatch", out);
    let budget = 250 * real + (1 << 30);
    assert!(
        most <= budget,
        "{most} bytes unpacked from {real} real bytes (budget {budget})"
    );
}

/// A non-root account for the mode tests (kept between runs).
const USER: &str = "pkgr-modes";

/// As a non-root account: the cache's files are read-only; an environment
/// made with hardlinks has them read-only too (writing into one would
/// change the cache), while every copy (`--copy`, a placeholder rewritten,
/// a `no_link` file) is writable by its owner, as conda's are.
#[test]
fn copies_are_writable_and_hardlinks_read_only() {
    if !is_root() {
        eprintln!("skipped: needs root to run as a second, non-root account");
        return;
    }
    if !ensure_account(USER, None) {
        eprintln!("skipped: useradd failed");
        return;
    }
    let world = World::new();
    fs_err::set_permissions(world.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut channel = LocalChannel::new(&world.path().join("channel"));
    let text = format!("#!/bin/sh\necho {TEXT_PLACEHOLDER}\n");
    channel.add(
        &Package::new("modes", "1.0")
            .file("share/plain.txt", "plain\n")
            .executable("bin/tool", "#!/bin/sh\necho tool\n")
            .text_placeholder("bin/relocated", text.as_str())
            .no_link("etc/state.db", "state\n"),
        Format::Conda,
    );
    channel.write_repodata();
    let server = ChannelServer::serve(channel.root());
    // The binary, the cache and the environments where the account can
    // reach them; everything below is the account's own.
    let home = world.path().join("home-modes");
    fs_err::create_dir_all(&home).unwrap();
    let pkgr = home.join("pkgr");
    fs_err::copy(env!("CARGO_BIN_EXE_pkgr"), &pkgr).unwrap();
    assert!(Command::new("chown")
        .args(["-R", USER])
        .arg(&home)
        .status()
        .unwrap()
        .success());
    let cache = home.join("cache");
    let as_user = |args: &[&str]| {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", USER, "--", "env"])
            .arg(format!("HOME={}", home.display()))
            .arg(format!("PKGR_CACHE_DIR={}", cache.display()))
            .arg(format!("PKGR_ROOT={}", home.join("root").display()))
            .arg(&pkgr)
            .args(args)
            .current_dir(&home);
        run_with_timeout(cmd, TIMEOUT)
    };
    let (linked, copied) = (home.join("linked"), home.join("copied"));
    for (prefix, extra) in [(&linked, None), (&copied, Some("--copy"))] {
        let mut args = vec!["create", "-y", "-p", prefix.to_str().unwrap()];
        args.extend(extra);
        args.extend(["-c", server.url(), "modes"]);
        assert_ok(&as_user(&args));
    }
    let mode = |path: &Path| fs_err::metadata(path).unwrap().mode() & 0o7777;
    // The cache's files.
    let pkgs = cache.join("pkgs");
    let entry = fs_err::read_dir(&pkgs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.is_dir()
                && p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("modes-")
        })
        .unwrap();
    assert_eq!(mode(&entry.join("share/plain.txt")), 0o444);
    assert_eq!(mode(&entry.join("bin/tool")), 0o555);
    assert_eq!(mode(&entry.join(".pkgr-entry.json")), 0o444, "the marker");
    assert_eq!(
        mode(&entry) & 0o700,
        0o700,
        "the entry is its owner's to remove"
    );
    let archive = entry.with_file_name(format!(
        "{}.conda",
        entry.file_name().unwrap().to_string_lossy()
    ));
    assert_eq!(mode(&archive), 0o444, "the archive in pkgs/");
    // Hardlinked: the cache's own files, read-only.
    let ino = |path: &Path| fs_err::metadata(path).unwrap().ino();
    for (file, want) in [("share/plain.txt", 0o444), ("bin/tool", 0o555)] {
        assert_eq!(ino(&linked.join(file)), ino(&entry.join(file)), "{file}");
        assert_eq!(mode(&linked.join(file)), want, "{file}");
    }
    // Copies, in both environments: the owner's to write.
    for prefix in [&linked, &copied] {
        for (file, want) in [("bin/relocated", 0o755), ("etc/state.db", 0o644)] {
            assert_ne!(ino(&prefix.join(file)), ino(&entry.join(file)), "{file}");
            assert_eq!(
                mode(&prefix.join(file)),
                want,
                "{}",
                prefix.join(file).display()
            );
        }
        let relocated = fs_err::read_to_string(prefix.join("bin/relocated")).unwrap();
        assert_eq!(relocated, format!("#!/bin/sh\necho {}\n", prefix.display()));
    }
    for (file, want) in [("share/plain.txt", 0o644), ("bin/tool", 0o755)] {
        assert_ne!(ino(&copied.join(file)), ino(&entry.join(file)), "{file}");
        assert_eq!(mode(&copied.join(file)), want, "{file}");
    }
    // The account can write its copies, not the cache through a hardlink.
    let write = |path: &Path| {
        Command::new("runuser")
            .args(["-u", USER, "--", "sh", "-c", "echo x >> \"$0\""])
            .arg(path)
            .status()
            .unwrap()
            .success()
    };
    assert!(write(&copied.join("share/plain.txt")));
    assert!(write(&linked.join("etc/state.db")));
    assert!(!write(&linked.join("share/plain.txt")));
    assert_eq!(
        fs_err::read_to_string(entry.join("share/plain.txt")).unwrap(),
        "plain\n"
    );
    drop(server);
}
