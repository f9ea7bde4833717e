//! Extracting archives while they download (the cache's cold path), seen
//! from the real `pkgr` binary: several packages of one `pkgr create` over
//! HTTP, one of them faulty. Each run logs `pkgr_cache::stream` at debug,
//! and the tests count what was extracted from the stream ("extracted while
//! downloading") and what fell back to the verified file, so a test fails if
//! streaming silently never happens. After every run: `pkgr cache verify`
//! finds nothing corrupt, no staging directory (`x-*`) is left in `tmp/`, and
//! (after a failure) the next create succeeds.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use pkgr_test_support::bench::random_bytes;
use pkgr_test_support::{current_subdir, ChannelServer, Fault, Format, LocalChannel, Package};

use crate::common::{assert_ok, list_files, run_with_timeout, stderr, Running, World};

/// How long one pkgr run of these tests may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The packages: name, files of 20 KiB, format. `app` depends on all.
const PACKAGES: [(&str, usize, Format); 4] = [
    ("big", 150, Format::Conda),
    ("mid", 40, Format::TarBz2),
    ("one", 20, Format::Conda),
    ("two", 20, Format::Conda),
];

struct Fixture {
    server: ChannelServer,
    _channel: LocalChannel,
    world: World,
}

impl Fixture {
    fn new() -> Self {
        let world = World::new();
        let mut channel = LocalChannel::new(&world.path().join("channel"));
        let mut app = Package::new("app", "1.0").file("share/app.txt", "app\n");
        for (name, files, format) in PACKAGES {
            let mut package = Package::new(name, "1.0");
            for f in 0..files {
                package = package.file(
                    &format!("lib/{name}/f{f}.bin"),
                    random_bytes(f as u64 + 1, 20_000),
                );
            }
            package = package.symlink(&format!("lib/{name}/link"), "f0.bin");
            channel.add(&package, format);
            app = app.depends(name);
        }
        channel.add(&app, Format::Conda);
        channel.write_repodata();
        let server = ChannelServer::serve(channel.root());
        Self {
            server,
            _channel: channel,
            world,
        }
    }

    /// The URL path of `name`'s archive.
    fn path(name: &str) -> String {
        format!("/{}/{}", current_subdir(), Self::file_name(name))
    }

    fn file_name(name: &str) -> String {
        let format = PACKAGES
            .iter()
            .find(|(n, ..)| *n == name)
            .map_or(Format::Conda, |(.., f)| *f);
        format!("{name}-1.0-0{}", format.extension())
    }

    fn create_cmd(&self, env: &str) -> Command {
        let mut cmd = self.world.pkgr();
        cmd.env("PKGR_LOG", "pkgr_cache::stream=debug")
            .args(["--jobs", "4", "create", "-y", "-p"])
            .arg(self.world.env(env))
            .args(["-c", self.server.url(), "app"]);
        cmd
    }

    fn create(&self, env: &str) -> Output {
        run_with_timeout(self.create_cmd(env), TIMEOUT)
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.world.pkgr();
        cmd.args(args);
        run_with_timeout(cmd, TIMEOUT)
    }

    /// `pkgr cache verify` finds nothing corrupt, and no staging directory
    /// is in `tmp/` (even before `clean`).
    #[track_caller]
    fn assert_sound(&self, context: &str) {
        let staging = staging_dirs(&self.world.cache());
        assert!(staging.is_empty(), "{context}: staging left: {staging:?}");
        // `pkgs/` holds entries, their archives and lock files only.
        for entry in fs_err::read_dir(self.world.cache().join("pkgs")).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            let known = name == ".locks"
                || PACKAGES
                    .iter()
                    .map(|(n, ..)| *n)
                    .chain(["app"])
                    .any(|n| name.starts_with(&format!("{n}-1.0-0-")));
            assert!(known, "{context}: a stray {name} in pkgs/");
        }
        let out = self.run(&["--json", "cache", "verify"]);
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        assert!(
            out.status.success() && report["corrupt"].as_array().is_some_and(Vec::is_empty),
            "{context}: cache verify: {report:#}\n{}",
            stderr(&out)
        );
    }

    /// The environment has every file of every package.
    #[track_caller]
    fn assert_env(&self, env: &str) {
        let prefix = self.world.env(env);
        for (name, files, _) in PACKAGES {
            for f in [0, files - 1] {
                let bytes = fs_err::read(prefix.join(format!("lib/{name}/f{f}.bin"))).unwrap();
                assert_eq!(bytes, random_bytes(f as u64 + 1, 20_000), "{name} f{f}");
            }
            let link = prefix.join(format!("lib/{name}/link"));
            assert_eq!(fs_err::read_link(&link).unwrap(), Path::new("f0.bin"));
        }
    }

    /// The complete entry of `name` in the cache, if any.
    fn published(&self, name: &str) -> Option<PathBuf> {
        fs_err::read_dir(self.world.cache().join("pkgs"))
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{name}-1.0-0-")))
                    && p.is_dir()
            })
    }
}

/// `x-*` directories anywhere below the cache's `tmp/`.
fn staging_dirs(cache: &Path) -> Vec<String> {
    list_files(&cache.join("tmp"))
        .into_iter()
        .filter(|f| {
            Path::new(f)
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("x-"))
        })
        .collect()
}

/// How many log lines say `what` about `file`.
fn said(out: &Output, what: &str, file: &str) -> usize {
    stderr(out)
        .lines()
        .filter(|l| l.contains("pkgr_cache::stream") && l.contains(what) && l.contains(file))
        .count()
}

const STREAMED: &str = "extracted while downloading";
const FELL_BACK: &str = "not extracted while downloading";

#[test]
fn a_cold_create_extracts_every_archive_while_it_downloads() {
    let fixture = Fixture::new();
    let out = fixture.create("env");
    assert_ok(&out);
    for (name, ..) in PACKAGES.iter().chain([&("app", 0, Format::Conda)]) {
        let file = Fixture::file_name(name);
        assert_eq!(said(&out, STREAMED, &file), 1, "{file}:\n{}", stderr(&out));
        assert_eq!(said(&out, FELL_BACK, &file), 0, "{file}");
    }
    fixture.assert_env("env");
    fixture.assert_sound("cold create");
}

#[test]
fn a_body_that_breaks_off_resumes_into_the_same_stream() {
    let fixture = Fixture::new();
    let path = Fixture::path("big");
    fixture.server.fault(&path, Fault::ResetMidBodyTimes(1));
    let out = fixture.create("env");
    assert_ok(&out);
    let ranges = fixture.server.ranges(&path);
    assert!(
        ranges.len() == 2 && ranges[1].is_some(),
        "resumed with Range: {ranges:?}"
    );
    let file = Fixture::file_name("big");
    assert_eq!(said(&out, STREAMED, &file), 1, "{}", stderr(&out));
    fixture.assert_env("env");
    fixture.assert_sound("reset once, resumed");
}

#[test]
fn a_body_that_starts_over_falls_back_to_the_file() {
    let fixture = Fixture::new();
    let path = Fixture::path("mid");
    fixture.server.ignore_ranges();
    fixture.server.fault(&path, Fault::ResetMidBodyTimes(1));
    let out = fixture.create("env");
    assert_ok(&out);
    let file = Fixture::file_name("mid");
    assert_eq!(said(&out, FELL_BACK, &file), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("started over at byte 0"),
        "{}",
        stderr(&out)
    );
    assert_eq!(said(&out, STREAMED, &Fixture::file_name("big")), 1);
    fixture.assert_env("env");
    fixture.assert_sound("reset once, no ranges");
}

#[test]
fn wrong_bytes_while_streaming_publish_nothing() {
    for name in ["big", "mid"] {
        let fixture = Fixture::new();
        fixture
            .server
            .fault(&Fixture::path(name), Fault::WrongBytes);
        let out = fixture.create("env");
        // Names the file, says "checksum mismatch"; without the download
        // lines (the other downloads finish in any order).
        snapshot_messages!(&fixture.world, format!("wrong_bytes_{name}").as_str(), out);
        let file = Fixture::file_name(name);
        assert!(fixture.published(name).is_none(), "{name} was published");
        assert_eq!(said(&out, STREAMED, &file), 0);
        fixture.assert_sound("wrong bytes");
        fixture.server.clear_faults();
        assert_ok(&fixture.create("again"));
        fixture.assert_env("again");
    }
}

#[test]
fn a_truncated_body_while_streaming_publishes_nothing() {
    let fixture = Fixture::new();
    fixture
        .server
        .fault(&Fixture::path("one"), Fault::Truncated);
    let out = fixture.create("env");
    // Names the file; without the download lines.
    snapshot_messages!(&fixture.world, "truncated_body", out);
    assert!(fixture.published("one").is_none());
    fixture.assert_sound("truncated");
    fixture.server.clear_faults();
    assert_ok(&fixture.create("again"));
    fixture.assert_env("again");
}

#[test]
fn a_package_failing_while_a_big_one_is_mid_stream() {
    for fault in [Fault::Status(404), Fault::WrongBytes] {
        let fixture = Fixture::new();
        // `big` sends half its body, then waits: it is mid-stream (its
        // first files extracted) when `one` fails.
        fixture.server.fault(
            &Fixture::path("big"),
            Fault::StallMidBody(Duration::from_secs(4)),
        );
        fixture
            .server
            .delay(&Fixture::path("one"), Duration::from_millis(700));
        fixture.server.fault(&Fixture::path("one"), fault.clone());
        let started = Instant::now();
        let out = fixture.create("env");
        // Names `one`'s file; without the download lines.
        let snapshot = match fault {
            Fault::Status(404) => "one_fails_mid_stream_404",
            _ => "one_fails_mid_stream_wrong_bytes",
        };
        snapshot_messages!(&fixture.world, snapshot, out);
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{fault:?}: the big download was stopped, not waited for"
        );
        assert!(
            fixture.published("big").is_none(),
            "{fault:?}: big was published half-empty"
        );
        fixture.assert_sound(&format!("{fault:?} beside a stalled stream"));
        fixture.server.clear_faults();
        fixture.server.clear_delays();
        let again = fixture.create("again");
        assert_ok(&again);
        fixture.assert_env("again");
    }
}

#[test]
fn kill_nine_mid_stream_then_the_next_run_repairs() {
    let fixture = Fixture::new();
    fixture.server.fault(
        &Fixture::path("big"),
        Fault::StallMidBody(Duration::from_secs(20)),
    );
    let mut running = Running::spawn(fixture.create_cmd("env"));
    // Killed once `big`'s first files are in its staging directory.
    let started = Instant::now();
    loop {
        let files = list_files(&fixture.world.cache().join("tmp"));
        if files
            .iter()
            .any(|f| f.contains("/x-") && f.ends_with("lib/big/f0.bin"))
        {
            break;
        }
        assert!(!running.is_done(), "pkgr ended before it was killed");
        assert!(started.elapsed() < TIMEOUT, "big never started streaming");
        std::thread::sleep(Duration::from_millis(20));
    }
    running.child.kill().unwrap();
    let killed = running.wait(TIMEOUT);
    assert!(!killed.status.success());
    assert!(fixture.published("big").is_none());
    fixture.server.clear_faults();
    let out = fixture.create("after");
    assert_ok(&out);
    fixture.assert_env("after");
    assert_eq!(said(&out, STREAMED, &Fixture::file_name("big")), 1);
    // The dead process's temp files went when the cache was opened.
    fixture.assert_sound("after kill -9");
    assert_ok(&fixture.run(&["clean", "--temp"]));
    let left = list_files(&fixture.world.cache().join("tmp"));
    assert!(left.is_empty(), "{left:?}");
}
