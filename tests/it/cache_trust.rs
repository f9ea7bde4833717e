//! The cache's trust boundary (issue 22, items 1, 2 and 11): someone who
//! can write to the cache (a member of a group-shared cache, or anybody
//! when the root is world-writable) must not make another user's pkgr
//! delete, chmod or overwrite files outside the cache. Each attack is done
//! here by the test itself (as the member would: rename a cache directory,
//! put a symlink or a FIFO in its place); pkgr then runs as the victim.
//! Tests that need two real accounts need root (`useradd`, `runuser`) and
//! are skipped with a message otherwise; CI runs as root.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use pkgr_test_support::{Format, LocalChannel, Package};

use crate::common::{assert_ok, ensure_account, is_root, run_with_timeout, World};

const GROUP: &str = "pkgrtrust";
/// The member who attacks, and the member who runs pkgr.
const MEMBER: &str = "pkgr-trust-m";
const VICTIM: &str = "pkgr-trust-v";

fn ensure_accounts() -> bool {
    [MEMBER, VICTIM]
        .iter()
        .all(|user| ensure_account(user, Some(GROUP)))
}

fn chmod(path: &Path, mode: u32) {
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    fs_err::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn uid_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// A world with a local channel holding `foo` (one file), and a cache
/// made by one `pkgr` run (so all its directories exist).
struct Setup {
    world: World,
    channel: String,
    /// The entry key of `foo`, as the cache computes it.
    key: String,
}

impl Setup {
    fn new() -> Self {
        let world = World::new();
        chmod(world.path(), 0o755);
        let mut channel = LocalChannel::new(&world.path().join("channel"));
        let archive = channel.add(
            &Package::new("foo", "1.0").file("share/foo.txt", "foo\n"),
            Format::Conda,
        );
        channel.write_repodata();
        let sha = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(fs_err::read(archive).unwrap()))
        };
        let key = format!("foo-1.0-0-{}", &sha[..12]);
        let url = channel.url();
        Self {
            world,
            channel: url,
            key,
        }
    }

    fn cache(&self) -> PathBuf {
        self.world.cache()
    }

    /// `pkgr ARGS` as the test's own user on the world's cache.
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.world.pkgr();
        cmd.env("PKGR_CACHE_DIR", self.cache()).args(args);
        run_with_timeout(cmd, Duration::from_secs(60))
    }

    fn create(&self, name: &str) -> Output {
        let prefix = self.world.env(name);
        self.run(&[
            "create",
            "-y",
            "-p",
            prefix.to_str().unwrap(),
            "-c",
            &self.channel,
            "foo",
        ])
    }

    /// A directory of the victim's with files in it (a home, `/etc`).
    fn victim_dir(&self, name: &str) -> PathBuf {
        let dir = self.world.path().join(name);
        fs_err::create_dir_all(dir.join("sub")).unwrap();
        fs_err::write(dir.join("precious.txt"), "keep me\n").unwrap();
        fs_err::write(dir.join("sub/also.txt"), "keep me too\n").unwrap();
        fs_err::write(dir.join(".old-looks-aside"), "keep me three\n").unwrap();
        fs_err::create_dir_all(dir.join("proc-1-00000000")).unwrap();
        fs_err::write(dir.join("proc-1-00000000/x"), "keep me four\n").unwrap();
        chmod(&dir, 0o700);
        dir
    }

    /// What a member does: moves the cache's `sub` away and puts a symlink
    /// to `target` in its place.
    fn replace_with_symlink(&self, sub: &str, target: &Path) {
        let path = self.cache().join(sub);
        fs_err::create_dir_all(&path).unwrap();
        fs_err::rename(&path, path.with_extension("moved")).unwrap();
        fs_err::os::unix::fs::symlink(target, &path).unwrap();
    }

    /// A group-shared cache (`chgrp GROUP; chmod 2775`), made by a first
    /// `pkgr` run of the test's user.
    fn share(&self) {
        let cache = self.cache();
        fs_err::create_dir_all(&cache).unwrap();
        assert!(Command::new("chgrp")
            .arg(GROUP)
            .arg(&cache)
            .status()
            .unwrap()
            .success());
        chmod(&cache, 0o2775);
    }
}

fn assert_victim_intact(dir: &Path, mode_before: u32) {
    for (file, text) in [
        ("precious.txt", "keep me\n"),
        ("sub/also.txt", "keep me too\n"),
        (".old-looks-aside", "keep me three\n"),
        ("proc-1-00000000/x", "keep me four\n"),
    ] {
        assert_eq!(
            fs_err::read_to_string(dir.join(file)).ok().as_deref(),
            Some(text),
            "{file} of the victim's directory was changed or deleted"
        );
    }
    assert_eq!(
        mode(dir),
        mode_before,
        "the victim's directory was chmod'ed"
    );
}

/// Asserts pkgr refused, naming the symlink: its whole message is the
/// snapshot `name`.
#[track_caller]
fn assert_names_symlink(world: &World, name: &str, out: &Output) {
    snapshot_failure!(world, name, *out);
}

/// `tmp/` replaced by a symlink to the victim's directory: the temp sweep
/// every command runs at open must not empty it.
#[test]
fn a_symlinked_tmp_is_never_swept() {
    let setup = Setup::new();
    assert_ok(&setup.run(&["clean", "--temp"]));
    let victim = setup.victim_dir("victim-home");
    let before = mode(&victim);
    setup.replace_with_symlink("tmp", &victim);
    let out = setup.run(&["clean", "--temp"]);
    assert_victim_intact(&victim, before);
    assert_names_symlink(&setup.world, "symlinked_tmp_clean", &out);
    // Any command, not only clean.
    let out = setup.create("env");
    assert_victim_intact(&victim, before);
    assert_names_symlink(&setup.world, "symlinked_tmp_create", &out);
}

/// `pyc/` replaced by a symlink: `clean` must not empty what it points to.
#[test]
fn a_symlinked_pyc_is_never_cleaned() {
    let setup = Setup::new();
    assert_ok(&setup.create("env"));
    let victim = setup.victim_dir("victim-home");
    let before = mode(&victim);
    setup.replace_with_symlink("pyc", &victim);
    let out = setup.run(&["clean", "--temp"]);
    assert_victim_intact(&victim, before);
    assert_names_symlink(&setup.world, "symlinked_pyc", &out);
}

/// `repodata/shards/` replaced by a symlink: `clean --all` must not empty
/// what it points to.
#[test]
fn symlinked_shards_are_never_cleaned() {
    let setup = Setup::new();
    assert_ok(&setup.create("env"));
    let victim = setup.victim_dir("victim-home");
    let before = mode(&victim);
    fs_err::create_dir_all(setup.cache().join("repodata/shards")).unwrap();
    setup.replace_with_symlink("repodata/shards", &victim);
    let out = setup.run(&["clean", "--all"]);
    assert_victim_intact(&victim, before);
    assert_names_symlink(&setup.world, "symlinked_shards", &out);
}

/// In a group-shared cache, a symlinked directory must not make pkgr chmod
/// its target group-writable (a home, or `/etc` when root runs `clean`).
#[test]
fn a_symlinked_directory_of_a_shared_cache_is_never_chmoded() {
    if !is_root() {
        eprintln!("skipped: needs root for a group-shared cache");
        return;
    }
    if !ensure_accounts() {
        eprintln!("skipped: useradd failed");
        return;
    }
    let setup = Setup::new();
    setup.share();
    assert_ok(&setup.run(&["clean", "--temp"]));
    for sub in ["pyc", "repodata/shards", "tmp"] {
        let victim = setup.victim_dir(&format!("victim-{}", sub.replace('/', "-")));
        chmod(&victim, 0o755);
        setup.replace_with_symlink(sub, &victim);
        let out = setup.run(&["clean", "--temp"]);
        assert_victim_intact(&victim, 0o755);
        assert_names_symlink(
            &setup.world,
            &format!("shared_symlinked_{}", sub.replace('/', "_")),
            &out,
        );
        // Put back for the next one.
        let path = setup.cache().join(sub);
        fs_err::remove_file(&path).unwrap();
        fs_err::rename(path.with_extension("moved"), &path).unwrap();
    }
}

/// A lock file replaced by a symlink to a victim's file (its name is
/// computable from public repodata): the file must keep its content and
/// mode (no pid written, no group write bit).
#[test]
fn a_planted_lock_file_symlink_is_never_written_or_chmoded() {
    if !is_root() {
        eprintln!("skipped: needs root for a group-shared cache");
        return;
    }
    if !ensure_accounts() {
        eprintln!("skipped: useradd failed");
        return;
    }
    let setup = Setup::new();
    setup.share();
    assert_ok(&setup.run(&["clean", "--temp"]));
    let bashrc = setup.world.path().join("victim-bashrc");
    fs_err::write(&bashrc, "echo hello\n").unwrap();
    chmod(&bashrc, 0o644);
    let lock = setup
        .cache()
        .join("pkgs/.locks")
        .join(format!("{}.lock", setup.key));
    fs_err::os::unix::fs::symlink(&bashrc, &lock).unwrap();
    let out = setup.create("env");
    assert_eq!(fs_err::read_to_string(&bashrc).unwrap(), "echo hello\n");
    assert_eq!(mode(&bashrc), 0o644, "the victim's file was chmod'ed");
    snapshot_failure!(&setup.world, "planted_lock_symlink", out);
}

/// A FIFO at a lock file's name, made by another member: opening it must
/// not hang the victim's pkgr (the read-only fallback for another member's
/// lock file would block on a FIFO with no writer).
#[test]
fn a_fifo_lock_file_does_not_hang() {
    if !is_root() {
        eprintln!("skipped: needs root to create two accounts");
        return;
    }
    if !ensure_accounts() {
        eprintln!("skipped: useradd failed");
        return;
    }
    let setup = Setup::new();
    setup.share();
    // The binary and the channel where both accounts can use them.
    let bin = setup.world.path().join("bin");
    fs_err::create_dir_all(&bin).unwrap();
    let pkgr = bin.join("pkgr");
    fs_err::copy(env!("CARGO_BIN_EXE_pkgr"), &pkgr).unwrap();
    chmod(&bin, 0o755);
    chmod(&pkgr, 0o755);
    let envs = setup.world.path().join("envs");
    fs_err::create_dir_all(&envs).unwrap();
    chmod(&envs, 0o1777);
    let as_user = |user: &str, program: &Path, args: &[&str]| {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", user, "--", "env"])
            .arg(format!(
                "HOME={}",
                envs.join(format!("home-{user}")).display()
            ))
            .arg(format!("PKGR_CACHE_DIR={}", setup.cache().display()))
            .arg(format!(
                "PKGR_ROOT={}",
                envs.join(format!("root-{user}")).display()
            ))
            .arg(program)
            .args(args)
            .current_dir(setup.world.path());
        cmd
    };
    assert_ok(&run_with_timeout(
        as_user(MEMBER, &pkgr, &["clean", "--temp"]),
        Duration::from_secs(60),
    ));
    let lock = setup
        .cache()
        .join("pkgs/.locks")
        .join(format!("{}.lock", setup.key));
    let made = as_user(
        MEMBER,
        Path::new("mkfifo"),
        &["-m", "0644", lock.to_str().unwrap()],
    )
    .status()
    .unwrap();
    assert!(made.success());
    let prefix = envs.join("env-victim");
    let out = run_with_timeout(
        as_user(
            VICTIM,
            &pkgr,
            &[
                "create",
                "-y",
                "-p",
                prefix.to_str().unwrap(),
                "-c",
                &setup.channel,
                "foo",
            ],
        ),
        Duration::from_secs(30),
    );
    snapshot_failure!(&setup.world, "fifo_lock_file", out);
}

/// A cache root that belongs to another user who does not share it with a
/// group of ours (pre-created in a world-writable place, say) is refused,
/// by root too, with what to do.
#[test]
fn a_cache_root_of_another_user_is_refused() {
    if !is_root() {
        eprintln!("skipped: needs root to create another account");
        return;
    }
    if !ensure_accounts() {
        eprintln!("skipped: useradd failed");
        return;
    }
    let setup = Setup::new();
    let cache = setup.cache();
    fs_err::create_dir_all(&cache).unwrap();
    std::os::unix::fs::chown(&cache, Some(uid_of(MEMBER)), None).unwrap();
    chmod(&cache, 0o755);
    let out = setup.create("env");
    snapshot_failure!(&setup.world, "cache_root_of_another_user", out);
    assert!(
        fs_err::read_dir(&cache).unwrap().next().is_none(),
        "pkgr wrote into a cache it refused"
    );
}

/// A world-writable cache root (or cache directory) is refused, saying how
/// to fix it.
#[test]
fn a_world_writable_cache_is_refused() {
    let setup = Setup::new();
    let cache = setup.cache();
    fs_err::create_dir_all(&cache).unwrap();
    chmod(&cache, 0o1777);
    snapshot_failure!(&setup.world, "world_writable_cache", setup.create("env"));
    assert!(
        fs_err::read_dir(&cache).unwrap().next().is_none(),
        "pkgr wrote into a cache it refused"
    );
    // A world-writable directory inside the cache too.
    chmod(&cache, 0o755);
    assert_ok(&setup.run(&["clean", "--temp"]));
    let pkgs = cache.join("pkgs");
    chmod(&pkgs, 0o777);
    snapshot_failure!(&setup.world, "world_writable_pkgs", setup.create("env"));
}

/// Lock-wait messages name the process that really holds the lock
/// (`/proc/locks`), not the pid someone wrote into the lock file.
#[test]
fn a_lock_wait_names_the_real_holder() {
    if fs_err::read_to_string("/proc/locks").is_err() {
        eprintln!("skipped: no /proc/locks here");
        return;
    }
    let setup = Setup::new();
    assert_ok(&setup.run(&["clean", "--temp"]));
    let lock = setup
        .cache()
        .join("pkgs/.locks")
        .join(format!("{}.lock", setup.key));
    fs_err::write(&lock, "").unwrap();
    // A holder that is not pkgr, and a lock file that lies about it.
    let mut holder = Command::new("flock")
        .arg("-x")
        .arg(&lock)
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while fs_err::read_to_string("/proc/locks")
        .unwrap()
        .lines()
        .all(|l| !l.contains(&format!(" {} ", holder.id())))
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "flock did not lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    fs_err::write(&lock, "999999").unwrap();
    let prefix = setup.world.env("env");
    let mut cmd = setup.world.pkgr();
    cmd.env("PKGR_CACHE_DIR", setup.cache())
        .env("PKGR_LOCK_TIMEOUT", "3")
        .args([
            "create",
            "-y",
            "-p",
            prefix.to_str().unwrap(),
            "-c",
            &setup.channel,
            "foo",
        ]);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    let _ = holder.kill();
    let _ = holder.wait();
    let err = snapshot_failure!(&setup.world, "lock_wait_names_the_real_holder", out);
    // The snapshot shows pids as [PID]: these two check which pid is named.
    assert!(
        !err.contains("999999"),
        "the lock file's claim was believed:\n{err}"
    );
    assert!(
        err.contains(&format!("process {}", holder.id())),
        "the real holder is not named:\n{err}"
    );
}
