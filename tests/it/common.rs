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

/// Snapshots a failure `report` (see [`failure_report`]) as
/// `snapshots/it__<module>__<name>.snap`, with what varies between runs
/// replaced by its role (see [`failure_filters`]): this world's dirs, ports
/// of 127.0.0.1, times, pids. Extra dirs of the test (a channel in a temp dir
/// of its own, say) are given as `"[ROLE]" => path`.
macro_rules! snapshot_report {
    ($world:expr, $name:expr, $report:expr $(, $role:expr => $path:expr)* $(,)?) => {{
        let roles: Vec<(&str, std::path::PathBuf)> =
            vec![$(($role, std::path::PathBuf::from(&$path))),*];
        let filters = $crate::common::failure_filters($world, &roles);
        let filters: Vec<(&str, &str)> =
            filters.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        insta::with_settings!({ filters => filters, omit_expression => true }, {
            insta::assert_snapshot!($name, $report);
        });
    }};
}

/// Snapshots a failed `pkgr` run whole: asserts that it failed, then
/// snapshots its exit code and its entire stderr (see [`snapshot_report!`]
/// for the name, the filters and the `"[ROLE]" => path` arguments).
/// Evaluates to the stderr, for further checks.
macro_rules! snapshot_failure {
    ($world:expr, $name:expr, $out:expr $(, $role:expr => $path:expr)* $(,)?) => {{
        let out: &std::process::Output = &$out;
        let err = $crate::common::assert_fails(out);
        snapshot_report!($world, $name, $crate::common::failure_report(out, &err) $(, $role => $path)*);
        err
    }};
}

/// Like [`snapshot_failure!`], for a run whose packages are fetched in
/// parallel: snapshots the exit code and stderr without its lines of steps
/// (`downloaded ...`, `extracted ...`, `linked ...`: see [`without_steps`]),
/// whose order varies; every warning and the whole error stay. Evaluates to
/// the whole stderr.
macro_rules! snapshot_messages {
    ($world:expr, $name:expr, $out:expr $(, $role:expr => $path:expr)* $(,)?) => {{
        let out: &std::process::Output = &$out;
        let err = $crate::common::assert_fails(out);
        snapshot_report!(
            $world,
            $name,
            $crate::common::failure_report(out, &$crate::common::without_steps(&err))
            $(, $role => $path)*
        );
        err
    }};
}

/// Like [`snapshot_failure!`], for a run whose warnings race too (retries of
/// two subdirs at once, say): snapshots the exit code and stderr from its
/// first `error:` line on (the whole error, with its causes). Evaluates to
/// the whole stderr.
macro_rules! snapshot_error {
    ($world:expr, $name:expr, $out:expr $(, $role:expr => $path:expr)* $(,)?) => {{
        let out: &std::process::Output = &$out;
        let err = $crate::common::assert_fails(out);
        snapshot_report!(
            $world,
            $name,
            $crate::common::failure_report(out, $crate::common::from_first_error(&err))
            $(, $role => $path)*
        );
        err
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

/// What a failure snapshot holds: the exit code, then `stderr`.
pub fn failure_report(out: &Output, stderr: &str) -> String {
    let status = match out.status.code() {
        Some(code) => format!("exit code: {code}"),
        None => format!("exit status: {}", out.status),
    };
    format!("{status}\n----- stderr -----\n{stderr}")
}

/// `stderr` from its first line that starts with `error:` (all of it when
/// there is none, so that the snapshot shows what came instead).
pub fn from_first_error(stderr: &str) -> &str {
    if stderr.starts_with("error:") {
        return stderr;
    }
    match stderr.find("\nerror:") {
        Some(at) => &stderr[at + 1..],
        None => stderr,
    }
}

/// `stderr` without the lines of finished steps that pkgr prints one per
/// package or download (`downloaded x (900 B)`, `extracted x`, `cached x`,
/// `linked x`, `removed x`) and without `tracing` log lines (of a test that
/// turns them on with `PKGR_LOG`): the order of parallel steps varies.
pub fn without_steps(stderr: &str) -> String {
    const STEPS: [&str; 5] = [
        "downloaded ",
        "extracted ",
        "cached ",
        "linked ",
        "removed ",
    ];
    const LEVELS: [&str; 5] = [" TRACE ", " DEBUG ", " INFO ", " WARN ", " ERROR "];
    // `2026-12-08T01:42:43.031386Z DEBUG target: ...`
    let is_log = |line: &str| {
        line.split_once(' ').is_some_and(|(time, _)| {
            time.len() > 20 && time.ends_with('Z') && time.as_bytes()[4] == b'-'
        }) && LEVELS.iter().any(|level| line.contains(level))
    };
    stderr
        .lines()
        .filter(|line| !STEPS.iter().any(|step| line.starts_with(step)) && !is_log(line))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// Insta filters for a failure snapshot: each of `roles` (a dir of the test,
/// by its role: `[CHANNEL]`, ...), this world's cache (`[CACHE]`) and the
/// world itself (`[TMP]`), longest path first, so a dir inside another keeps
/// its role; ports of 127.0.0.1 (`[PORT]`); durations (`[TIME]`); sizes in
/// progress lines (`[SIZE]`); file descriptors (`[FD]`); pids (`[PID]`);
/// the random part of temp file names (`[RANDOM]`); the hashes in cache
/// entry keys and cached repodata names (`[HASH]`).
/// Only the varying part is replaced: the words around it stay.
pub fn failure_filters(world: &World, roles: &[(&str, PathBuf)]) -> Vec<(String, String)> {
    let mut paths: Vec<(String, String)> = roles
        .iter()
        .map(|(role, path)| (path.display().to_string(), (*role).to_owned()))
        .collect();
    paths.push((world.cache().display().to_string(), String::from("[CACHE]")));
    paths.push((world.path().display().to_string(), String::from("[TMP]")));
    paths.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
    let mut filters: Vec<(String, String)> = paths
        .into_iter()
        .map(|(path, role)| (regex_escape(&path), role))
        .collect();
    filters.extend([
        (
            // Ports the tests' servers were given (a fixed low port, like
            // the closed port 9, stays).
            String::from(r"127\.0\.0\.1:\d{4,5}\b"),
            String::from("127.0.0.1:[PORT]"),
        ),
        (String::from(r"\b\d+\.\d+ ?s\b"), String::from("[TIME]")),
        // Sizes of the test's archives in progress lines (`downloaded x
        // (900 B)`), which follow the compressor's version; a size in the
        // words of a message (`more than 16 MiB`) stays.
        (
            String::from(r"\(\d+(\.\d+)? (B|KiB|MiB|GiB)\)"),
            String::from("([SIZE])"),
        ),
        // The descriptor number of a file pkgr opened, and the name of a
        // download's temp file (its pid and a random part).
        (
            String::from(r"/proc/self/fd/\d+/"),
            String::from("/proc/self/fd/[FD]/"),
        ),
        (
            String::from(r"\bdl-\d+-[A-Za-z0-9]+\.part\b"),
            String::from("dl-[PID]-[RANDOM].part"),
        ),
        // A cache entry's key ends in 12 hex digits of its archive's sha256,
        // which follows whatever varies in the archive (a temp path in it);
        // a cached repodata file is named by 16 of its URL's (with a port).
        (
            String::from(r"(\w)-[0-9a-f]{12}\b"),
            String::from("$1-[HASH]"),
        ),
        (
            String::from(r"\brepodata/[0-9a-f]{16}\."),
            String::from("repodata/[HASH]."),
        ),
        // A process's temp dir in the cache, and an extraction's dir in it.
        (
            String::from(r"\bproc-\d+-[0-9a-f]+/x-[A-Za-z0-9]+/"),
            String::from("proc-[PID]-[RANDOM]/x-[RANDOM]/"),
        ),
        (String::from(r"\bpid \d+"), String::from("pid [PID]")),
        (
            String::from(r"\bprocess \d+"),
            String::from("process [PID]"),
        ),
    ]);
    filters
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
