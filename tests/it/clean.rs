//! `pkgr clean` with conda's flags (`-a -i -p -t -f -l -y -d --json` and
//! pkgr's `--all --tarballs --temp`): each removes its part of the cache,
//! never an entry another process holds, and `--dry-run` removes nothing.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use pkgr_test_support::{ChannelServer, Format, LocalChannel, Package};

use crate::common::{assert_ok, list_files, stderr, stdout, World};

/// A channel of `app` (a `.conda`) depending on `lib` (a `.tar.bz2`) and
/// `held` (a `.conda`), whose entry the tests hold.
fn channel(root: &Path) -> LocalChannel {
    let mut channel = LocalChannel::new(root);
    channel.add(
        &Package::new("lib", "1.0").file("lib/lib.txt", "lib\n"),
        Format::TarBz2,
    );
    channel.add(
        &Package::new("held", "1.0").file("share/held.txt", "held\n"),
        Format::Conda,
    );
    channel.add(
        &Package::new("app", "1.0")
            .depends("lib")
            .depends("held")
            .file("bin/app.txt", "app\n"),
        Format::Conda,
    );
    channel.write_repodata();
    channel
}

/// A world whose cache has three entries (extracted, with their archives)
/// and the channel's repodata, after making the environment `env`.
struct Fixture {
    world: World,
    _channel: LocalChannel,
    _server: ChannelServer,
    prefix: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let world = World::new();
        let channel = channel(&world.path().join("channel"));
        // Served, so that its repodata is cached (a local folder's is not).
        let server = ChannelServer::serve(channel.root());
        let prefix = world.env("env");
        assert_ok(&world.create(&prefix, server.url(), &["app"]));
        let fixture = Self {
            world,
            _channel: channel,
            _server: server,
            prefix,
        };
        assert_eq!(fixture.state("app"), State::FULL);
        assert_eq!(fixture.state("held"), State::FULL);
        assert!(fixture.has_repodata());
        fixture
    }

    fn pkgs(&self) -> PathBuf {
        self.world.cache().join("pkgs")
    }

    /// The key of the entry of the package `name`.
    fn key(&self, name: &str) -> String {
        fs_err::read_dir(self.pkgs())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .find(|n| n.starts_with(&format!("{name}-")) && self.pkgs().join(n).is_dir())
            .unwrap_or_else(|| panic!("no extracted entry of {name}"))
    }

    /// What is left of the package `name`'s entry.
    fn state(&self, name: &str) -> State {
        let names: Vec<String> = fs_err::read_dir(self.pkgs())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&format!("{name}-")))
            .collect();
        State {
            extracted: names
                .iter()
                .any(|n| self.pkgs().join(n).join(".pkgr-entry.json").is_file()),
            archive: names
                .iter()
                .any(|n| n.ends_with(".conda") || n.ends_with(".tar.bz2")),
        }
    }

    fn has_repodata(&self) -> bool {
        list_files(&self.world.cache().join("repodata"))
            .iter()
            .any(|f| f.ends_with(".info.json"))
    }

    /// Holds the entry of `held` as a process linking from it does (a
    /// shared lock), until the returned guard is dropped.
    fn hold(&self) -> Holder {
        let key = self.key("held");
        let lock = self.pkgs().join(".locks").join(format!("{key}.lock"));
        assert!(lock.is_file(), "{}", lock.display());
        let mut child = Command::new("flock")
            .arg("-s")
            .arg(&lock)
            .args(["-c", "echo locked; exec sleep 120"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("flock");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "locked");
        Holder(child)
    }

    /// The cache's files (but its temp dir and lock files), to compare.
    fn snapshot_of_cache(&self) -> Vec<String> {
        list_files(&self.world.cache())
            .into_iter()
            .filter(|f| !f.starts_with("tmp") && !f.ends_with(".lock"))
            .collect()
    }
}

/// A process holding a lock; killed (by its id) when dropped.
struct Holder(Child);

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    extracted: bool,
    archive: bool,
}

impl State {
    const FULL: Self = Self {
        extracted: true,
        archive: true,
    };
}

/// `clean --json` output with what varies between runs (sizes, hashes in
/// names, temp dir counts) replaced.
fn json_shape(out: &[u8]) -> String {
    let mut value: serde_json::Value = serde_json::from_slice(out).unwrap();
    fn redact(value: &mut serde_json::Value, under_sizes: bool) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    if matches!(key.as_str(), "total_size" | "tarball_bytes")
                        || (under_sizes && v.is_number())
                    {
                        *v = serde_json::json!("[SIZE]");
                    } else if matches!(key.as_str(), "temp_removed" | "temp_live") {
                        *v = serde_json::json!("[COUNT]");
                    } else {
                        redact(v, under_sizes || key == "pkg_sizes");
                    }
                }
            }
            serde_json::Value::Array(items) => {
                for v in items {
                    redact(v, under_sizes);
                }
            }
            _ => {}
        }
    }
    redact(&mut value, false);
    // Repodata files are listed in directory order; their names are hashes
    // of the channel's URL (which has the server's port).
    if let Some(files) = value["index_cache"]["files"].as_array_mut() {
        let hash = regex::Regex::new(r"[0-9a-f]{12,64}").unwrap();
        for file in files.iter_mut() {
            *file = serde_json::json!(hash.replace_all(file.as_str().unwrap(), "[HASH]"));
        }
        files.sort_by_key(ToString::to_string);
    }
    serde_json::to_string_pretty(&value).unwrap()
}

/// Snapshots with the world's path, sizes and the hashes in cache names
/// filtered.
macro_rules! clean_snapshot {
    ($world:expr, $name:expr, $value:expr) => {{
        let mut filters = crate::common::filters($world);
        filters.push((String::from(r"[0-9a-f]{12,64}"), String::from("[HASH]")));
        filters.push((
            String::from(r"the temp files of \d+ finished process(es)?"),
            String::from("the temp files of [N] finished processes"),
        ));
        let filters: Vec<(&str, &str)> =
            filters.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        insta::with_settings!({ filters => filters, prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!($name, $value);
        });
    }};
}

/// Each flag removes its part of every entry but the one in use, which
/// stays whole; the text and `--json` are snapshot.
#[test]
fn each_flag_removes_its_target_and_keeps_the_entry_in_use() {
    // (name, flags, what is left of an unheld entry, whether repodata stays)
    let unheld_left = |extracted, archive| State { extracted, archive };
    let cases: [(&str, &[&str], State, bool); 10] = [
        ("tarballs", &["-t"], unheld_left(true, false), true),
        (
            "tarballs_long",
            &["--tarballs"],
            unheld_left(true, false),
            true,
        ),
        ("packages", &["-p"], unheld_left(false, true), true),
        ("index_cache", &["-i"], State::FULL, false),
        ("all", &["-ay"], unheld_left(false, false), false),
        (
            "all_long",
            &["--all", "--yes"],
            unheld_left(false, false),
            false,
        ),
        ("force", &["-f"], unheld_left(false, false), false),
        ("logfiles", &["-l"], State::FULL, true),
        ("temp", &["--temp"], State::FULL, true),
        ("tempfiles", &["--tempfiles"], State::FULL, true),
    ];
    for (name, flags, left, repodata_stays) in cases {
        let fixture = Fixture::new();
        let holder = fixture.hold();
        let mut args = vec!["clean"];
        args.extend_from_slice(flags);
        let out = fixture.world.run(&args);
        assert_ok(&out);
        clean_snapshot!(&fixture.world, format!("clean_{name}"), stderr(&out));
        for package in ["app", "lib"] {
            assert_eq!(fixture.state(package), left, "{name}: {package}");
        }
        assert_eq!(fixture.state("held"), State::FULL, "{name}: the held entry");
        assert_eq!(fixture.has_repodata(), repodata_stays, "{name}: repodata");
        drop(holder);

        // The same in JSON, on a fresh cache.
        let fixture = Fixture::new();
        let _holder = fixture.hold();
        args.push("--json");
        let out = fixture.world.run(&args);
        assert_ok(&out);
        clean_snapshot!(
            &fixture.world,
            format!("clean_{name}_json"),
            json_shape(&out.stdout)
        );
        assert_eq!(fixture.state("app"), left, "{name} --json");
        // The environment made from the removed entries still works.
        assert!(fixture.prefix.join("bin/app.txt").is_file());
        assert_ok(
            &fixture
                .world
                .run(&["list", "-p", fixture.prefix.to_str().unwrap()]),
        );
    }
}

/// `--dry-run` lists what would go and removes nothing, in text and JSON.
#[test]
fn dry_run_removes_nothing() {
    let fixture = Fixture::new();
    let _holder = fixture.hold();
    let before = fixture.snapshot_of_cache();
    let out = fixture.world.run(&["clean", "-afy", "--dry-run"]);
    assert_ok(&out);
    clean_snapshot!(&fixture.world, "clean_dry_run", stdout(&out));
    assert_eq!(fixture.snapshot_of_cache(), before);
    let out = fixture.world.run(&["clean", "-a", "-d", "--json"]);
    assert_ok(&out);
    clean_snapshot!(
        &fixture.world,
        "clean_dry_run_json",
        json_shape(&out.stdout)
    );
    assert_eq!(fixture.snapshot_of_cache(), before);
}

/// `conda clean -afy` as a Dockerfile's last line: after an install in the
/// same shell command, it empties the cache (nothing else runs), the
/// environment still works, and a second run on the empty cache succeeds.
#[test]
fn afy_is_a_dockerfile_last_line() {
    let world = World::new();
    let channel = channel(&world.path().join("channel"));
    let server = ChannelServer::serve(channel.root());
    // `sh` with the world's environment (HOME, PKGR_CACHE_DIR, ...).
    let template = world.pkgr();
    let mut cmd = Command::new("sh");
    for (key, value) in template.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    cmd.env("PKGR", env!("CARGO_BIN_EXE_pkgr"))
        .env("CHANNEL", server.url())
        .env("PREFIX", world.env("env"))
        .current_dir(world.path())
        .args([
            "-ec",
            r#""$PKGR" create -y -p "$PREFIX" -c "$CHANNEL" app && "$PKGR" clean -afy"#,
        ]);
    let out = crate::common::run_with_timeout(cmd, crate::common::TIMEOUT);
    assert_ok(&out);
    let left: Vec<String> = list_files(&world.cache().join("pkgs"))
        .into_iter()
        .filter(|f| !f.starts_with(".locks"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(list_files(&world.cache().join("repodata"))
        .iter()
        .all(|f| f.ends_with(".lock") || f == "shards"));
    assert!(world.env("env").join("bin/app.txt").is_file());
    let out = world.run(&["clean", "-afy"]);
    assert_ok(&out);
    clean_snapshot!(&world, "clean_afy_on_an_empty_cache", stderr(&out));
}

/// Without a removal target, clean is an error naming the targets (as
/// conda's "At least one removal target must be given"), and removes
/// nothing; an unknown flag is clap's error.
#[test]
fn clean_needs_a_target_and_refuses_unknown_flags() {
    let fixture = Fixture::new();
    let before = fixture.snapshot_of_cache();
    for (name, args) in [
        ("clean_no_target", &["clean"][..]),
        ("clean_only_yes", &["clean", "-y", "--dry-run"][..]),
        ("clean_unknown_flag", &["clean", "-a", "--bogus"][..]),
        ("clean_unknown_short_flag", &["clean", "-afx"][..]),
    ] {
        let out = fixture.world.run(args);
        assert_eq!(out.status.code(), Some(2), "{name}");
        snapshot_failure!(&fixture.world, name, out);
    }
    assert_eq!(fixture.snapshot_of_cache(), before);
}
