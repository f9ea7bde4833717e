//! Helpers: an isolated home/cache per test, and running `pkgr` with a timeout
//! that fails the test (a deadlock shows up as a failure, not a hang).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long one `pkgr` invocation may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// Snapshots user-facing output with this world's temp path, timings and
/// sizes filtered out (see [`filters`]).
macro_rules! snapshot {
    ($world:expr, $name:expr, $value:expr) => {{
        let filters = $crate::common::filters($world);
        let filters: Vec<(&str, &str)> =
            filters.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        insta::with_settings!({ filters => filters, prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!($name, $value);
        });
    }};
}

/// A scratch world for one test: its own HOME, cache and envs root.
pub struct World {
    pub tmp: tempfile::TempDir,
}

impl World {
    pub fn new() -> Self {
        Self {
            tmp: tempfile::Builder::new()
                .prefix("pkgr-it-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn cache(&self) -> PathBuf {
        self.path().join("cache")
    }

    pub fn env(&self, name: &str) -> PathBuf {
        self.path().join("envs").join(name)
    }

    /// `pkgr` with HOME, PKGR_ROOT and PKGR_CACHE_DIR pointing into this world.
    pub fn pkgr(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pkgr"));
        cmd.env("HOME", self.path().join("home"))
            .env("PKGR_ROOT", self.path().join("root"))
            .env("PKGR_CACHE_DIR", self.cache())
            .env_remove("XDG_CACHE_HOME")
            .env_remove("PKGR_JOBS")
            .env_remove("PKGR_CHANNEL_ALIAS")
            .current_dir(self.path());
        cmd
    }

    /// `pkgr create -p PREFIX -c CHANNEL SPECS...`
    pub fn create(&self, prefix: &Path, channel: &str, specs: &[&str]) -> Output {
        let mut args = vec!["create", "-p", prefix.to_str().unwrap(), "-c", channel];
        args.extend_from_slice(specs);
        self.run(&args)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.pkgr();
        cmd.args(args);
        run_with_timeout(cmd, TIMEOUT)
    }
}

/// Runs `cmd`, killing it and failing the test after `timeout`.
pub fn run_with_timeout(cmd: Command, timeout: Duration) -> Output {
    Running::spawn(cmd).wait(timeout)
}

/// Starts all `cmds` at once and waits for all of them, failing the test if
/// they are not all done within `timeout`.
pub fn run_many(cmds: Vec<Command>, timeout: Duration) -> Vec<Output> {
    let running: Vec<Running> = cmds.into_iter().map(Running::spawn).collect();
    let deadline = Instant::now() + timeout;
    running
        .into_iter()
        .map(|r| r.wait(deadline.saturating_duration_since(Instant::now())))
        .collect()
}

/// A spawned `pkgr` whose output is being collected.
pub struct Running {
    pub child: std::process::Child,
    cmd: String,
    out_thread: std::thread::JoinHandle<Vec<u8>>,
    err_thread: std::thread::JoinHandle<Vec<u8>>,
}

impl Running {
    pub fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pkgr");
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let out_thread = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stdout.read_to_end(&mut buf);
            buf
        });
        let err_thread = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stderr.read_to_end(&mut buf);
            buf
        });
        Self {
            child,
            cmd: format!("{cmd:?}"),
            out_thread,
            err_thread,
        }
    }

    /// Whether the process has exited.
    pub fn is_done(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    /// Waits, killing the process and failing the test after `timeout`.
    pub fn wait(mut self, timeout: Duration) -> Output {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("pkgr timed out after {timeout:?}: {}", self.cmd);
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Output {
            status,
            stdout: self.out_thread.join().unwrap(),
            stderr: self.err_thread.join().unwrap(),
        }
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts success, printing both streams otherwise.
#[track_caller]
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "pkgr failed ({:?})\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

/// Asserts failure, returning stderr.
#[track_caller]
pub fn assert_fails(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "pkgr should have failed\n--- stdout\n{}\n--- stderr\n{}",
        stdout(out),
        stderr(out)
    );
    stderr(out)
}

/// How many cache entries below `cache` look complete (have their marker).
pub fn complete_entries(cache: &Path) -> usize {
    list_files(&cache.join("pkgs"))
        .iter()
        .filter(|f| f.ends_with(".pkgr-entry.json"))
        .count()
}

/// Every file below `dir` (relative paths), sorted.
pub fn list_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs_err::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let ft = entry.file_type().unwrap();
            if ft.is_dir() {
                stack.push(path.clone());
            }
            out.push(
                path.strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    out.sort();
    out
}

/// Insta filters that hide this world's temp path and timings.
pub fn filters(world: &World) -> Vec<(String, String)> {
    vec![
        (
            regex_escape(&world.path().display().to_string()),
            String::from("[TMP]"),
        ),
        (String::from(r"in \d+\.\ds"), String::from("in [TIME]")),
        (String::from(r"pid \d+"), String::from("pid [PID]")),
        (
            String::from(r"\d+(\.\d+)? (B|KiB|MiB|GiB)\b"),
            String::from("[SIZE]"),
        ),
        // Column padding follows the temp path's length.
        (
            String::from(r"Channel +Size"),
            String::from("Channel  Size"),
        ),
        (
            String::from(r"(linux-64|noarch) +\[SIZE\]"),
            String::from("$1  [SIZE]"),
        ),
    ]
}

fn regex_escape(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether the tests run as root: the tests that need other accounts,
/// mounts or namespaces skip (with a printed reason) otherwise.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Makes the account `user` (primary group `users`, and a member of
/// `group` when given, which is made too) unless it exists. Idempotent and
/// safe while another test adds the same account. False when it could not
/// be made (not root, no `useradd`).
pub fn ensure_account(user: &str, group: Option<&str>) -> bool {
    let ok = |cmd: &mut Command| cmd.status().is_ok_and(|s| s.success());
    let exists = || {
        ok(Command::new("id")
            .arg(user)
            .stdout(Stdio::null())
            .stderr(Stdio::null()))
    };
    let mut useradd = Command::new("useradd");
    useradd.args(["-M", "-N", "-g", "users"]);
    if let Some(group) = group {
        let _ = Command::new("groupadd").args(["-f", group]).status();
        useradd.args(["-G", group]);
    }
    exists() || ok(useradd.arg(user)) || exists()
}
