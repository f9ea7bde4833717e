//! Faults: what pkgr does when a server misbehaves (or the disk fills up)
//! while other packages of the same create are still downloading and
//! extracting. After every fault, whatever the exit code:
//! 1. the exit code is what the fault calls for, and a fatal fault's message
//!    names the file or URL that failed;
//! 2. `pkgr cache verify` finds no corrupt entry (no half-extracted entry was
//!    published, issue #10);
//! 3. after `pkgr clean`, the cache's `tmp/` holds nothing (no `*.part`, no
//!    `x-*` staging directory of a dead process);
//! 4. with the fault cleared, a create on the same cache succeeds and does not
//!    download again what was already complete.
//!
//! The channel: `app` depending on five libs (both formats, some noarch), each
//! lib a few hundred KiB in ~1,500 files, so extraction takes long enough that
//! a fault delayed by 150–800 ms fires while the other libs are being
//! extracted. Every pkgr run has a timeout that fails the test.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use pkgr_test_support::{
    current_subdir, ChannelServer, Fault, Format, LocalChannel, Package, TEXT_PLACEHOLDER,
};

use crate::common::{
    assert_fails, assert_ok, is_root, list_files, run_with_timeout, stderr, World,
};

/// How long one pkgr run of these tests may take before the test fails.
const FAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Files per lib in the fault matrix (extraction of the five libs at once
/// takes a few hundred ms on a loaded 2-core machine).
const MATRIX_FILES: usize = 1_500;

/// Bytes per file.
const FILE_SIZE: usize = 200;

/// The libs of the test channel: name, format, noarch.
const LIBS: [(&str, Format, bool); 5] = [
    ("lib0", Format::Conda, false),
    ("lib1", Format::TarBz2, false),
    ("lib2", Format::Conda, true),
    ("lib3", Format::TarBz2, true),
    ("lib4", Format::Conda, false),
];

/// Incompressible-looking bytes (an LCG), so archives are as large as their
/// payload.
fn blob(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect()
}

/// A tiny deterministic generator (delays that vary per iteration, the same
/// on every run).
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

/// A served channel of `app` + [`LIBS`] and a world (home, cache) to run
/// pkgr in.
struct Fixture {
    // Dropped first: the server stops before the world's files go.
    server: ChannelServer,
    channel: LocalChannel,
    libs: &'static [(&'static str, Format, bool)],
    files: usize,
    world: World,
}

impl Fixture {
    /// `app` (this machine's subdir, .conda) depending on the first `libs` of
    /// [`LIBS`]; each lib holds `files` files of [`FILE_SIZE`] bytes in four
    /// directories and a text file with the prefix placeholder.
    fn new(libs: usize, files: usize) -> Self {
        let world = World::new();
        let libs = &LIBS[..libs];
        let mut channel = LocalChannel::new(&world.path().join("channel"));
        let mut app = Package::new("app", "1.0").executable("bin/app", "#!/bin/sh\necho app\n");
        for (i, (name, format, noarch)) in libs.iter().enumerate() {
            let mut package = Package::new(name, "1.0");
            if *noarch {
                package = package.noarch_generic();
            }
            for f in 0..files {
                package = package.file(
                    &format!("lib/{name}/d{}/part{f}.bin", f % 4),
                    blob((i * 100_000 + f) as u64, FILE_SIZE),
                );
            }
            package = package.text_placeholder(
                &format!("etc/{name}.conf"),
                format!("prefix={TEXT_PLACEHOLDER}\n"),
            );
            channel.add(&package, *format);
            app = app.depends(name);
        }
        channel.add(&app, Format::Conda);
        channel.write_repodata();
        let server = ChannelServer::serve(channel.root());
        Self {
            server,
            channel,
            libs,
            files,
            world,
        }
    }

    /// The archive file name of package `name` (`lib1-1.0-0.tar.bz2`).
    fn file_name(name: &str) -> String {
        let format = LIBS
            .iter()
            .find(|(n, ..)| *n == name)
            .map_or(Format::Conda, |(_, f, _)| *f);
        format!("{name}-1.0-0{}", format.extension())
    }

    /// The URL path of package `name`'s archive (`/noarch/lib2-1.0-0.conda`).
    fn archive(name: &str) -> String {
        let noarch = LIBS.iter().any(|(n, _, noarch)| *n == name && *noarch);
        let subdir = if noarch { "noarch" } else { current_subdir() };
        format!("/{subdir}/{}", Self::file_name(name))
    }

    /// Every package name of the channel.
    fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<&str> = self.libs.iter().map(|(n, ..)| *n).collect();
        names.push("app");
        names
    }

    fn repodata() -> String {
        format!("/{}/repodata.json", current_subdir())
    }

    fn cache(&self) -> PathBuf {
        self.world.cache()
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.world.pkgr();
        cmd.args(args);
        run_with_timeout(cmd, FAULT_TIMEOUT)
    }

    fn create_cmd(&self, prefix: &Path) -> Command {
        let mut cmd = self.world.pkgr();
        cmd.args(["--jobs", "4", "create", "-y", "-p"])
            .arg(prefix)
            .args(["-c", self.server.url(), "app"]);
        cmd
    }

    /// `pkgr --jobs 4 create -y -p <envs/name> -c <server> app`.
    fn create(&self, env: &str) -> Output {
        run_with_timeout(self.create_cmd(&self.world.env(env)), FAULT_TIMEOUT)
    }

    /// Checks 2 and 3 of the module docs: `cache verify` finds nothing
    /// corrupt, and after `clean` nothing is left in `tmp/`.
    #[track_caller]
    fn assert_cache_sound(&self, context: &str) {
        let out = self.run(&["--json", "cache", "verify"]);
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        assert!(
            out.status.success() && report["corrupt"].as_array().is_some_and(Vec::is_empty),
            "{context}: `pkgr cache verify` found corrupt entries (a broken entry was published):\n{report:#}\n{}",
            stderr(&out)
        );
        assert_ok(&self.run(&["clean", "--temp"]));
        let leftovers = list_files(&self.cache().join("tmp"));
        assert!(
            leftovers.is_empty(),
            "{context}: temp files left in the cache after `pkgr clean`: {leftovers:?}"
        );
    }

    /// The archive file names of the complete entries (their markers).
    fn complete(&self) -> BTreeSet<String> {
        let mut complete = BTreeSet::new();
        let Ok(entries) = fs_err::read_dir(self.cache().join("pkgs")) else {
            return complete;
        };
        for entry in entries {
            let marker = entry.unwrap().path().join(".pkgr-entry.json");
            if let Ok(text) = fs_err::read_to_string(&marker) {
                let marker: serde_json::Value = serde_json::from_str(&text).unwrap();
                complete.insert(marker["file_name"].as_str().unwrap().to_owned());
            }
        }
        complete
    }

    /// Every package of the channel is installed in `prefix`, every file
    /// with its size.
    #[track_caller]
    fn assert_env_complete(&self, prefix: &Path) {
        assert!(prefix.join("bin/app").is_file(), "bin/app is missing");
        for (name, ..) in self.libs {
            assert!(prefix.join(format!("etc/{name}.conf")).is_file());
            for f in 0..self.files {
                let path = prefix.join(format!("lib/{name}/d{}/part{f}.bin", f % 4));
                let len = fs_err::metadata(&path).map(|m| m.len() as usize);
                assert_eq!(len.ok(), Some(FILE_SIZE), "{}", path.display());
            }
        }
    }

    /// Check 4 of the module docs: with every fault and delay cleared, a
    /// create on the same cache succeeds, and what was complete before is
    /// not downloaded again.
    #[track_caller]
    fn assert_recovers(&self, context: &str) {
        let complete = self.complete();
        let before = self.server.counts();
        self.server.clear_faults();
        self.server.clear_delays();
        let out = self.create("after");
        assert!(
            out.status.success(),
            "{context}: the next create (fault cleared) failed:\n{}",
            stderr(&out)
        );
        self.assert_env_complete(&self.world.env("after"));
        for name in self.names() {
            let file = Self::file_name(name);
            if complete.contains(&file) {
                let path = Self::archive(name);
                let was = before.get(&path).copied().unwrap_or(0);
                assert_eq!(
                    self.server.count(&path),
                    was,
                    "{context}: {file} was complete in the cache but was downloaded again"
                );
            }
        }
    }
}

/// What a fault should do to the create it hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Retries (or redirects) absorb it: the create succeeds.
    Succeeds,
    /// The create fails, naming the file.
    Fails,
}

/// Serves `fault` for `lib`'s archive after `delay_ms` (while the other libs
/// download and extract), runs a create, and checks 1–4 of the module docs.
/// A fault that pkgr retries fails for good only after its retries, when the
/// other libs may be done: those runs check the retry and clean-up paths, the
/// faults that fail at once (404, wrong bytes) the overlap.
/// Returns the fixture (faults cleared) and the faulty run's output.
/// The name of the snapshot of `fault` on a `what` (`archive_status_404`).
fn snapshot_name(what: &str, fault: &Fault) -> String {
    let fault: String = format!("{fault:?}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{what}_{}", fault.trim_end_matches('_'))
}

fn archive_fault(lib: &str, fault: Fault, delay_ms: u64, outcome: Outcome) -> (Fixture, Output) {
    let fixture = Fixture::new(LIBS.len(), MATRIX_FILES);
    let path = Fixture::archive(lib);
    let snapshot = snapshot_name("archive", &fault);
    let context = format!("{fault:?} on {path} after {delay_ms} ms");
    fixture.server.delay(&path, Duration::from_millis(delay_ms));
    fixture.server.fault(&path, fault);
    // The other libs arrive 50–400 ms before the fault fires, so whatever the
    // machine's load, some of them are being extracted when it does.
    let others = LIBS.iter().filter(|(n, ..)| *n != lib);
    for ((name, ..), early) in others.zip([50, 150, 250, 400]) {
        let ms = delay_ms.saturating_sub(early);
        fixture
            .server
            .delay(&Fixture::archive(name), Duration::from_millis(ms));
    }
    let out = fixture.create("faulty");
    match outcome {
        Outcome::Succeeds => {
            assert!(
                out.status.success(),
                "{context}: the create should have absorbed the fault:\n{}",
                stderr(&out)
            );
            fixture.assert_env_complete(&fixture.world.env("faulty"));
        }
        Outcome::Fails => {
            // Names the file; without the download lines (the other libs'
            // come in any order).
            snapshot_messages!(&fixture.world, snapshot.as_str(), out);
            assert!(
                !fixture.world.env("faulty").join("conda-meta").exists(),
                "{context}: a failed create left an environment behind"
            );
        }
    }
    fixture.assert_cache_sound(&context);
    fixture.assert_recovers(&context);
    (fixture, out)
}

#[test]
fn archive_reset_mid_body_fails_cleanly() {
    archive_fault("lib1", Fault::ResetMidBody, 300, Outcome::Fails);
}

#[test]
fn archive_truncated_fails_cleanly() {
    archive_fault("lib0", Fault::Truncated, 250, Outcome::Fails);
}

#[test]
fn archive_wrong_bytes_fail_cleanly() {
    archive_fault("lib3", Fault::WrongBytes, 400, Outcome::Fails);
}

#[test]
fn archive_503_twice_is_retried() {
    let (fixture, _) = archive_fault(
        "lib2",
        Fault::FailTimes {
            status: 503,
            times: 2,
        },
        200,
        Outcome::Succeeds,
    );
    assert_eq!(fixture.server.count(&Fixture::archive("lib2")), 3);
}

#[test]
fn archive_429_once_is_retried() {
    let (fixture, _) = archive_fault(
        "lib4",
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
        300,
        Outcome::Succeeds,
    );
    assert_eq!(fixture.server.count(&Fixture::archive("lib4")), 2);
}

/// A 429's `Retry-After` is how long the server asked the client to wait:
/// the retry comes no sooner.
#[test]
fn archive_429_retry_waits_for_retry_after() {
    let fixture = Fixture::new(LIBS.len(), 50);
    let path = Fixture::archive("lib4");
    let delay = Duration::from_millis(150);
    fixture.server.delay(&path, delay);
    fixture.server.fault(
        &path,
        Fault::TooManyRequests {
            retry_after_secs: 2,
        },
    );
    assert_ok(&fixture.create("e"));
    let times = fixture.server.request_times(&path);
    assert_eq!(times.len(), 2, "{:?}", fixture.server.counts());
    // The 429 went out `delay` after the first request arrived.
    let waited = times[1].duration_since(times[0]).saturating_sub(delay);
    assert!(
        waited >= Duration::from_millis(1_900),
        "the retry came {waited:?} after a 429 with Retry-After: 2"
    );
}

#[test]
fn archive_404_fails_cleanly() {
    archive_fault("lib1", Fault::Status(404), 350, Outcome::Fails);
}

#[test]
fn archive_500_persistent_fails_cleanly() {
    // The snapshot says 500.
    let (fixture, _) = archive_fault("lib2", Fault::Status(500), 250, Outcome::Fails);
    // Retried (transient), but not forever.
    let count = fixture.server.count(&Fixture::archive("lib2"));
    assert!((2..=10).contains(&count), "{count} requests");
}

#[test]
fn archive_redirect_is_followed() {
    let fixture = Fixture::new(LIBS.len(), MATRIX_FILES);
    let path = Fixture::archive("lib3");
    let mirror = format!("/mirror{path}");
    let target = fixture.channel.root().join(mirror.trim_start_matches('/'));
    fs_err::create_dir_all(target.parent().unwrap()).unwrap();
    fs_err::copy(
        fixture.channel.root().join(path.trim_start_matches('/')),
        &target,
    )
    .unwrap();
    fixture.server.delay(&path, Duration::from_millis(300));
    fixture
        .server
        .fault(&path, Fault::Redirect { to: mirror.clone() });
    let out = fixture.create("faulty");
    assert_ok(&out);
    fixture.assert_env_complete(&fixture.world.env("faulty"));
    assert_eq!(
        (fixture.server.count(&path), fixture.server.count(&mirror)),
        (1, 1)
    );
    fixture.assert_cache_sound("Redirect");
    fixture.assert_recovers("Redirect");
    assert_eq!(fixture.server.count(&mirror), 1, "downloaded again");
}

#[test]
fn archive_redirect_loop_fails_clearly() {
    // The snapshot says redirect.
    let (fixture, _) = archive_fault("lib0", Fault::RedirectLoop, 150, Outcome::Fails);
    let count = fixture.server.count(&Fixture::archive("lib0"));
    assert!(count <= 100, "{count} requests for a redirect loop");
}

#[test]
fn archive_stall_after_headers_is_waited_for() {
    let (fixture, _) = archive_fault(
        "lib4",
        Fault::StallAfterHeaders(Duration::from_secs(2)),
        200,
        Outcome::Succeeds,
    );
    assert_eq!(fixture.server.count(&Fixture::archive("lib4")), 1);
}

/// A token-style channel URL (`/t/<token>/...`): a 404 on an archive names
/// the file but never the token.
#[test]
fn archive_404_through_a_token_url_is_redacted() {
    let fixture = Fixture::new(LIBS.len(), 20);
    let path = Fixture::archive("lib2");
    fixture.server.delay(&path, Duration::from_millis(200));
    fixture.server.fault(&path, Fault::Status(404));
    let channel = format!("{}/t/s3cr3t-t0ken", fixture.server.url());
    let prefix = fixture.world.env("token");
    let mut cmd = fixture.world.pkgr();
    cmd.args(["--jobs", "4", "create", "-y", "-p"])
        .arg(&prefix)
        .args(["-c", &channel, "app"]);
    let out = run_with_timeout(cmd, FAULT_TIMEOUT);
    // Names lib2's file; without the download lines (the other libs' come
    // in any order).
    let err = snapshot_messages!(&fixture.world, "archive_404_through_a_token_url", out);
    let shown = format!("{}{err}", crate::common::stdout(&out));
    assert!(
        !shown.contains("s3cr3t-t0ken"),
        "the token leaked:\n{shown}"
    );
    assert_eq!(fixture.server.count(&format!("/t/s3cr3t-t0ken{path}")), 1);
    fixture.assert_cache_sound("404 through a token URL");
}

/// Serves `fault` for this machine's repodata.json: the create fails naming
/// that URL, nothing is left broken, and the next create with the fault
/// cleared succeeds (a broken repodata.json must not be cached, under its
/// ETag or otherwise).
fn repodata_fault(fault: Fault) -> (Fixture, Output) {
    let fixture = Fixture::new(LIBS.len(), 20);
    let path = Fixture::repodata();
    let snapshot = snapshot_name("repodata", &fault);
    let context = format!("{fault:?} on {path}");
    fixture.server.fault(&path, fault);
    let out = fixture.create("faulty");
    // Names the URL.
    snapshot_messages!(&fixture.world, snapshot.as_str(), out);
    fixture.assert_cache_sound(&context);
    fixture.assert_recovers(&context);
    (fixture, out)
}

#[test]
fn repodata_not_json_is_not_cached() {
    repodata_fault(Fault::NotJson);
}

#[test]
fn repodata_cut_short_without_length_is_not_cached() {
    repodata_fault(Fault::CutShortNoLength);
}

#[test]
fn repodata_500_fails_then_recovers() {
    repodata_fault(Fault::Status(500));
}

#[test]
fn repodata_404_for_the_platform_names_the_url() {
    // The snapshot says 404.
    repodata_fault(Fault::Status(404));
}

/// Many creates on one cache, each failing on a 404 for one lib while the
/// others download and extract; between creates `clean --all` empties the
/// cache so every create extracts again. After each create nothing may be
/// corrupt; after the loop a create without the fault succeeds.
/// `PKGR_FAULT_LOOP` sets the number of creates (default 50).
#[test]
fn fifty_creates_one_404() {
    let n: usize = std::env::var("PKGR_FAULT_LOOP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    // Three libs and app: with --jobs 4 every package gets a permit at once,
    // so the 404 is not queued behind the others' extractions.
    let fixture = Fixture::new(3, 400);
    let mut rng = Lcg(0x5eed_0404);
    let started = Instant::now();
    let mut corrupt = Vec::new();
    let mut done = 0;
    for i in 0..n {
        if i > 0 {
            assert_ok(&fixture.run(&["clean", "--all"]));
        }
        fixture.server.clear_faults();
        fixture.server.clear_delays();
        let (bad, ..) = fixture.libs[i % fixture.libs.len()];
        let fail_at = 150 + rng.next(650);
        // The others arrive up to 300 ms before the 404, so some are being
        // extracted when it comes.
        let mut delays = BTreeMap::new();
        for (name, ..) in fixture.libs {
            let ms = if *name == bad {
                fail_at
            } else {
                fail_at.saturating_sub(rng.next(300))
            };
            delays.insert(name, ms);
            fixture
                .server
                .delay(&Fixture::archive(name), Duration::from_millis(ms));
        }
        fixture
            .server
            .fault(&Fixture::archive(bad), Fault::Status(404));
        let out = fixture.create(&format!("e{i}"));
        let err = assert_fails(&out);
        // Not a snapshot: which lib fails varies by iteration (and so which
        // of the others were done before it).
        assert!(err.contains(&Fixture::file_name(bad)), "create {i}: {err}");
        let out = fixture.run(&["--json", "cache", "verify"]);
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        if !out.status.success() || !report["corrupt"].as_array().is_some_and(Vec::is_empty) {
            corrupt.push(format!(
                "create {i} (404 for {bad}; delays {delays:?}): {report:#} {}",
                stderr(&out)
            ));
            // One is enough to know; the rest of the loop would take long.
            break;
        }
        done += 1;
    }
    eprintln!(
        "{done} of {n} failing creates ran in {:?}",
        started.elapsed()
    );
    assert!(
        corrupt.is_empty(),
        "`pkgr cache verify` found corrupt entries after a failed create:\n{}",
        corrupt.join("\n")
    );
    fixture.assert_cache_sound("after the loop");
    fixture.assert_recovers("the create after the loop");
}

/// Unmounts a tmpfs when dropped (also when the test fails).
struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// A cache on a 2 MiB tmpfs, too small for the environment: a clear error
/// naming the problem, nothing corrupt, nothing left in `tmp/`.
#[test]
fn disk_full() {
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let fixture = Fixture::new(LIBS.len(), MATRIX_FILES);
    let small = fixture.world.path().join("small");
    fs_err::create_dir_all(&small).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&small)
        .output();
    match mounted {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            eprintln!(
                "skipped: cannot mount a tmpfs: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            return;
        }
        Err(e) => {
            eprintln!("skipped: cannot run mount: {e}");
            return;
        }
    }
    let _unmount = Unmount(small.clone());
    let cache = small.join("cache");
    let cache_arg = cache.to_str().unwrap();
    let prefix = fixture.world.env("full");
    let mut cmd = fixture.create_cmd(&prefix);
    cmd.args(["--cache-dir", cache_arg]);
    let out = run_with_timeout(cmd, FAULT_TIMEOUT);
    let err = assert_fails(&out);
    eprintln!("{err}");
    // Not a snapshot: which package (or the cache itself) meets the full
    // disk first, and at which step, varies from run to run.
    assert!(
        err.contains("No space left on device") || err.contains("os error 28"),
        "{err}"
    );
    assert!(
        err.contains(cache_arg)
            || LIBS
                .iter()
                .any(|(n, ..)| err.contains(&Fixture::file_name(n))),
        "the error names neither the cache nor a package:\n{err}"
    );
    assert!(!prefix.join("conda-meta").exists());
    let out = fixture.run(&["--cache-dir", cache_arg, "--json", "cache", "verify"]);
    assert!(
        out.status.success(),
        "corrupt entries on a full disk:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    assert_ok(&fixture.run(&["--cache-dir", cache_arg, "clean", "--temp"]));
    let leftovers = list_files(&cache.join("tmp"));
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
