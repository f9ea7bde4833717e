//! pkgr's fleet simulation (outside CI: needs root, `ip` and `socat`).
//!
//! Two "hosts" on one machine: two network namespaces (`ip netns add`), each
//! running N `pkgr create` processes (default 8) at once against ONE shared
//! cache directory, which each namespace sees at its own mount point (two
//! bind mounts of one directory, as two machines mount one export), and ONE
//! channel server. The server listens on 127.0.0.1 of the host only; each
//! namespace has its own loopback, so it is bridged over a unix socket: in
//! each namespace `socat` listens on 127.0.0.1:PORT and forwards to the
//! socket, where a host-side `socat` forwards to the server's 127.0.0.1:PORT.
//! Nothing listens on any other address.
//!
//! The channel has a few dozen generated packages (libraries and apps that
//! each need 8 of them), and the environments overlap: within a namespace,
//! across the two, and some are the same in both.
//!
//! Afterwards it checks and prints: every process succeeded; every archive
//! was requested from the server exactly once (the server counts requests
//! per path), and exactly the archives needed; every environment has the
//! packages it should, and every file its conda-meta records list is there
//! (with its sha256 where no prefix was written into it) and `pkgr list`
//! reads it; `pkgr cache verify` passes on the shared cache. It prints the
//! wall time, each process's time, and how long processes waited for locks
//! held by others (from pkgr's `pkgr_cache::wait` debug log).
//!
//! The namespaces, mounts and helper processes are removed at the end,
//! also when this program panics, and by a watchdog when it is killed
//! (Ctrl-C); namespaces left by a run killed with SIGKILL are removed by the
//! next run.
//!
//! Usage: `cargo build --release -p pkgr-cli -p pkgr-test-support && sudo
//! target/release/pkgr-fleet [--pkgr PATH] [--procs N] [--keep]`.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use pkgr_test_support::bench::{children_cpu, random_bytes};
use pkgr_test_support::{ChannelServer, Format, LocalChannel, Package};
use sha2::{Digest, Sha256};

const LIBS: usize = 30;
const APPS: usize = 12;
const LIBS_PER_APP: usize = 8;
const FILES_PER_LIB: usize = 40;
const FILE_SIZE: usize = 4_000;
const NS_PREFIX: &str = "pkgr-fleet-";
const TIMEOUT: Duration = Duration::from_secs(600);

/// The libraries an app needs.
fn libs_of(app: usize) -> Vec<usize> {
    (0..LIBS_PER_APP).map(|k| (app * 2 + k) % LIBS).collect()
}

/// `flib0..` (both archive formats, a text placeholder each) and `fapp0..`,
/// each app needing 8 libraries, neighbours sharing 6.
fn build_channel(root: &Path) -> (LocalChannel, u64) {
    let mut channel = LocalChannel::new(root);
    let mut bytes = 0;
    for i in 0..LIBS {
        let mut package = Package::new(&format!("flib{i}"), "1.0");
        for f in 0..FILES_PER_LIB {
            package = package.file(
                &format!("lib/flib{i}/f{f:03}.bin"),
                random_bytes((i * 1000 + f) as u64, FILE_SIZE),
            );
        }
        package = package.text_placeholder(
            &format!("etc/flib{i}.conf"),
            format!("prefix={}\n", pkgr_test_support::TEXT_PLACEHOLDER),
        );
        let format = if i % 3 == 0 {
            Format::TarBz2
        } else {
            Format::Conda
        };
        bytes += fs_err::metadata(channel.add(&package, format))
            .unwrap()
            .len();
    }
    for a in 0..APPS {
        let mut app = Package::new(&format!("fapp{a}"), "1.0")
            .executable(&format!("bin/fapp{a}"), format!("#!/bin/sh\necho {a}\n"));
        for lib in libs_of(a) {
            app = app.depends(&format!("flib{lib}"));
        }
        bytes += fs_err::metadata(channel.add(&app, Format::Conda))
            .unwrap()
            .len();
    }
    channel.write_repodata();
    (channel, bytes)
}

/// What is removed at the end, whatever happens (see [`Drop`]).
#[derive(Default)]
struct Cleanup {
    children: Vec<Child>,
    mounts: Vec<PathBuf>,
    namespaces: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for mount in self.mounts.iter().rev() {
            let _ = quiet(Command::new("umount").arg(mount));
        }
        for ns in &self.namespaces {
            let _ = quiet(Command::new("ip").args(["netns", "del", ns]));
        }
    }
}

/// Runs `cmd` with its output discarded; whether it succeeded.
fn quiet(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `cmd`, failing with its stderr.
fn must(cmd: &mut Command) {
    let out = cmd.stdin(Stdio::null()).output().expect("run a command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_root() -> bool {
    fs_err::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(|uid| uid == "0"))
        .unwrap_or(false)
}

/// Removes the namespaces of earlier runs whose process is gone.
fn remove_stale_namespaces() {
    let out = Command::new("ip").args(["netns", "list"]).output();
    let text = out.map(|o| o.stdout).unwrap_or_default();
    for line in String::from_utf8_lossy(&text).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let pid = rest.rsplit('-').next().unwrap_or_default();
        if !Path::new("/proc").join(pid).exists() {
            println!("removing the namespace {name} left by an earlier run");
            let _ = quiet(Command::new("ip").args(["netns", "del", name]));
        }
    }
}

/// One `pkgr create` of the fleet.
struct Proc {
    pid: u32,
    ns: usize,
    app: usize,
    prefix: PathBuf,
    started: Instant,
    handle: std::thread::JoinHandle<(std::process::Output, Duration)>,
}

struct Outcome {
    name: String,
    ns: usize,
    app: usize,
    prefix: PathBuf,
    ok: bool,
    stderr: String,
    started_after: Duration,
    wall: Duration,
    /// Lock waits from the `pkgr_cache::wait` log: when each ended (time
    /// of day, s) and how long it was (ms).
    waits: Vec<(f64, u64)>,
    /// "waiting for" notices (a wait longer than a second).
    notices: usize,
}

/// The lock waits in a pkgr's log: (when it ended, time of day in s; how
/// long, ms). Lines look like `2026-01-01T10:21:57.801626Z DEBUG
/// pkgr_cache::wait: waited for a lock what=... waited_ms=12`.
fn waits_of(stderr: &str) -> Vec<(f64, u64)> {
    stderr
        .lines()
        .filter(|l| l.contains("waited for a lock"))
        .filter_map(|l| {
            let clock = l.get(11..26)?;
            let mut parts = clock.split(':');
            let h: f64 = parts.next()?.parse().ok()?;
            let m: f64 = parts.next()?.parse().ok()?;
            let s: f64 = parts.next()?.parse().ok()?;
            let at = l.find("waited_ms=")? + "waited_ms=".len();
            let ms = l[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()?;
            Some((h * 3600.0 + m * 60.0 + s, ms))
        })
        .collect()
}

/// How long at least one of `waits` was going on (a process waits for
/// several entries at once; their union is the time it was held up).
fn time_waiting(waits: &[(f64, u64)]) -> Duration {
    let mut spans: Vec<(f64, f64)> = waits
        .iter()
        .map(|&(end, ms)| (end - ms as f64 / 1000.0, end))
        .collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut total = 0.0;
    let mut current: Option<(f64, f64)> = None;
    for (start, end) in spans {
        current = match current {
            Some((s, e)) if start <= e => Some((s, e.max(end))),
            Some((s, e)) => {
                total += e - s;
                Some((start, end))
            }
            None => Some((start, end)),
        };
    }
    if let Some((s, e)) = current {
        total += e - s;
    }
    Duration::from_secs_f64(total.max(0.0))
}

/// Checks an environment: the expected package names, every file of
/// every conda-meta record present, sha256 where nothing was rewritten.
/// Returns the number of files checked.
fn verify_environment(prefix: &Path, expected: &BTreeSet<String>) -> Result<usize, String> {
    let meta = prefix.join("conda-meta");
    let mut names = BTreeSet::new();
    let mut checked = 0;
    let entries = fs_err::read_dir(&meta).map_err(|e| e.to_string())?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = fs_err::read_to_string(&path).map_err(|e| e.to_string())?;
        let record: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        names.insert(record["name"].as_str().unwrap_or_default().to_owned());
        let files = record["files"].as_array().cloned().unwrap_or_default();
        if files.is_empty() {
            return Err(format!("{} lists no files", path.display()));
        }
        for file in &files {
            let rel = file.as_str().unwrap_or_default();
            if fs_err::symlink_metadata(prefix.join(rel)).is_err() {
                return Err(format!("{rel} of {} is missing", path.display()));
            }
            checked += 1;
        }
        let paths = record["paths_data"]["paths"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for entry in &paths {
            let rel = entry["_path"].as_str().unwrap_or_default();
            let (Some(sha), None) = (entry["sha256"].as_str(), entry.get("prefix_placeholder"))
            else {
                continue;
            };
            let bytes = fs_err::read(prefix.join(rel)).map_err(|e| format!("{rel}: {e}"))?;
            if hex::encode(Sha256::digest(&bytes)) != sha {
                return Err(format!(
                    "{rel} in {} has the wrong sha256",
                    prefix.display()
                ));
            }
        }
    }
    if &names != expected {
        return Err(format!(
            "{} has {names:?}, expected {expected:?}",
            prefix.display()
        ));
    }
    Ok(checked)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut pkgr = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .join("pkgr");
    let mut procs = 8;
    let mut keep = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--pkgr" => pkgr = PathBuf::from(args.next().expect("--pkgr PATH")),
            "--procs" => procs = args.next().expect("--procs N").parse().expect("a number"),
            "--keep" => keep = true,
            other => {
                eprintln!("unknown argument {other}; usage: pkgr-fleet [--pkgr PATH] [--procs N] [--keep]");
                return ExitCode::from(2);
            }
        }
    }
    if !is_root() {
        println!("skipped: the fleet simulation needs root (network namespaces, bind mounts)");
        return ExitCode::from(2);
    }
    for (tool, arg) in [("ip", "-V"), ("socat", "-V")] {
        if !quiet(Command::new(tool).arg(arg)) {
            println!("skipped: `{tool}` is not installed (apt-get install -y iproute2 socat)");
            return ExitCode::from(2);
        }
    }
    let pkgr = pkgr.canonicalize().unwrap_or(pkgr);
    assert!(
        pkgr.is_file(),
        "no pkgr binary at {} (build it, or pass --pkgr)",
        pkgr.display()
    );
    remove_stale_namespaces();
    let work = tempfile::Builder::new()
        .prefix("pkgr-fleet-")
        .tempdir()
        .unwrap();
    let w = work.path().to_path_buf();
    let mut cleanup = Cleanup::default();

    // The channel and its server (127.0.0.1 of the host).
    let (channel, archive_bytes) = build_channel(&w.join("channel"));
    let server = ChannelServer::serve(channel.root());
    let port = server
        .url()
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();

    // The host side of the bridge: unix socket -> the server.
    let socket = w.join("channel.sock");
    cleanup.children.push(
        Command::new("socat")
            .arg(format!("UNIX-LISTEN:{},fork,mode=600", socket.display()))
            .arg(format!("TCP:127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start socat"),
    );

    // Two namespaces, each with its loopback up and 127.0.0.1:PORT
    // forwarded to the socket.
    let namespaces: Vec<String> = ["a", "b"]
        .iter()
        .map(|tag| format!("{NS_PREFIX}{tag}-{}", std::process::id()))
        .collect();
    for ns in &namespaces {
        must(Command::new("ip").args(["netns", "add", ns]));
        cleanup.namespaces.push(ns.clone());
        must(Command::new("ip").args(["netns", "exec", ns, "ip", "link", "set", "lo", "up"]));
    }
    // One shared cache, seen by each namespace at its own mount point.
    let shared = w.join("shared-cache");
    fs_err::create_dir_all(&shared).unwrap();
    let mount_points: Vec<PathBuf> = (0..namespaces.len())
        .map(|i| w.join(format!("host-{i}")).join("cache"))
        .collect();
    for point in &mount_points {
        fs_err::create_dir_all(point).unwrap();
        must(Command::new("mount").arg("--bind").arg(&shared).arg(point));
        cleanup.mounts.push(point.clone());
    }
    // If this process is killed (Ctrl-C), a watchdog removes what it made.
    {
        let mut script = String::from(
            "trap '' INT TERM HUP; while kill -0 \"$0\" 2>/dev/null; do sleep 1; done; ",
        );
        for point in &mount_points {
            script.push_str(&format!("umount '{}' 2>/dev/null; ", point.display()));
        }
        for ns in &namespaces {
            script.push_str(&format!("ip netns del '{ns}' 2>/dev/null; "));
        }
        if !keep {
            script.push_str(&format!("rm -rf '{}'; ", w.display()));
        }
        script.push_str("exit 0");
        // Not waited for: it ends a second after this process does (and
        // is reaped by init then).
        #[allow(clippy::zombie_processes)]
        let _watchdog = Command::new("sh")
            .args(["-c", &script])
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the watchdog");
    }
    for ns in &namespaces {
        cleanup.children.push(
            Command::new("ip")
                .args(["netns", "exec", ns, "socat"])
                .arg(format!("TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr"))
                .arg(format!("UNIX-CONNECT:{}", socket.display()))
                .stdin(Stdio::null())
                .spawn()
                .expect("start socat in a namespace"),
        );
    }
    let url = format!("http://127.0.0.1:{port}");
    for ns in &namespaces {
        let deadline = Instant::now() + Duration::from_secs(10);
        let probe = format!("TCP:127.0.0.1:{port}");
        while !quiet(Command::new("ip").args([
            "netns",
            "exec",
            ns,
            "socat",
            "-u",
            "/dev/null",
            &probe,
        ])) {
            assert!(
                Instant::now() < deadline,
                "the bridge into {ns} did not come up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // The baseline: one process alone, cold cache of its own.
    let cpu_before_alone = children_cpu();
    let alone = {
        let t = Instant::now();
        let out = Command::new("ip")
            .args(["netns", "exec", &namespaces[0]])
            .arg(&pkgr)
            .args(["create", "-y", "-p"])
            .arg(w.join("envs/alone"))
            .args(["-c", &url, "fapp0", "--cache-dir"])
            .arg(w.join("alone-cache"))
            .env("HOME", w.join("home/alone"))
            .env("PKGR_ROOT", w.join("root/alone"))
            .env_remove("PKGR_JOBS")
            .stdin(Stdio::null())
            .output()
            .expect("run pkgr");
        out.status.success().then(|| t.elapsed())
    };
    let cpu_alone = children_cpu() - cpu_before_alone;
    let before = server.counts();

    println!(
        "fleet: {} network namespaces x {procs} `pkgr create` = {} processes; one cache ({}) bind-mounted at {} mount points; one channel server on 127.0.0.1:{port}, reached from each namespace's own 127.0.0.1:{port} through a unix socket",
        namespaces.len(),
        namespaces.len() * procs,
        shared.display(),
        mount_points.len()
    );
    println!(
        "channel: {} packages ({LIBS} libraries of {FILES_PER_LIB} files, {APPS} apps needing {LIBS_PER_APP} each), {:.1} MB of archives",
        LIBS + APPS,
        archive_bytes as f64 / 1e6
    );
    println!("pkgr: {}", pkgr.display());

    // The fleet: namespace n runs apps n*procs/2 .. (overlapping the other).
    let cpu_before = children_cpu();
    let started = Instant::now();
    let mut running = Vec::new();
    for (n, ns) in namespaces.iter().enumerate() {
        for i in 0..procs {
            let app = (n * procs / 2 + i) % APPS;
            let prefix = w.join(format!("envs/ns{n}-p{i}"));
            let home = w.join(format!("home/ns{n}-p{i}"));
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", ns])
                .arg(&pkgr)
                .args(["create", "-y", "-p"])
                .arg(&prefix)
                .args(["-c", &url, &format!("fapp{app}")])
                .env("HOME", &home)
                .env("PKGR_ROOT", w.join(format!("root/ns{n}-p{i}")))
                .env("PKGR_CACHE_DIR", &mount_points[n])
                .env("PKGR_LOG", "pkgr_cache::wait=debug")
                .env("NO_COLOR", "1")
                .env_remove("PKGR_JOBS")
                .env_remove("PKGR_READONLY_CACHES")
                .env_remove("XDG_CACHE_HOME")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let child = cmd.spawn().expect("spawn pkgr");
            let pid = child.id();
            let handle = std::thread::spawn(move || {
                let t = Instant::now();
                let out = child.wait_with_output().expect("wait for pkgr");
                (out, t.elapsed())
            });
            running.push(Proc {
                pid,
                ns: n,
                app,
                prefix,
                started: Instant::now(),
                handle,
            });
        }
    }
    while !running.iter().all(|p| p.handle.is_finished()) {
        if started.elapsed() > TIMEOUT {
            for proc in running.iter().filter(|p| !p.handle.is_finished()) {
                let _ = quiet(Command::new("kill").args(["-KILL", &proc.pid.to_string()]));
            }
            panic!("the fleet did not finish within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut outcomes = Vec::new();
    for proc in running {
        let (out, wall) = proc.handle.join().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        outcomes.push(Outcome {
            name: proc
                .prefix
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
            ns: proc.ns,
            app: proc.app,
            prefix: proc.prefix,
            ok: out.status.success(),
            waits: waits_of(&stderr),
            notices: stderr
                .lines()
                .filter(|l| l.starts_with("waiting for"))
                .count(),
            stderr,
            started_after: proc.started - started,
            wall,
        });
    }
    let wall = started.elapsed();
    let cpu = children_cpu() - cpu_before;

    // Checks.
    let mut problems = Vec::new();
    for o in outcomes.iter().filter(|o| !o.ok) {
        problems.push(format!("ns{} fapp{} failed:\n{}", o.ns, o.app, o.stderr));
    }
    let after = server.counts();
    let requests: BTreeMap<String, usize> = after
        .iter()
        .map(|(path, n)| (path.clone(), n - before.get(path).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let is_archive = |p: &str| p.ends_with(".conda") || p.ends_with(".tar.bz2");
    let fetched: BTreeMap<&String, &usize> =
        requests.iter().filter(|(p, _)| is_archive(p)).collect();
    let apps_used: BTreeSet<usize> = outcomes.iter().map(|o| o.app).collect();
    let needed: BTreeSet<String> = apps_used
        .iter()
        .flat_map(|&a| {
            libs_of(a)
                .into_iter()
                .map(|l| format!("flib{l}-1.0-0"))
                .chain([format!("fapp{a}-1.0-0")])
        })
        .collect();
    let fetched_names: BTreeSet<String> = fetched
        .keys()
        .filter_map(|p| p.rsplit('/').next())
        .map(|f| {
            f.trim_end_matches(".conda")
                .trim_end_matches(".tar.bz2")
                .to_owned()
        })
        .collect();
    for (path, n) in &fetched {
        if **n != 1 {
            problems.push(format!("{path} was requested {n} times"));
        }
    }
    if fetched_names != needed {
        problems.push(format!(
            "archives fetched {fetched_names:?}, needed {needed:?}"
        ));
    }
    let mut files_checked = 0;
    for o in outcomes.iter().filter(|o| o.ok) {
        let expected: BTreeSet<String> = libs_of(o.app)
            .into_iter()
            .map(|l| format!("flib{l}"))
            .chain([format!("fapp{}", o.app)])
            .collect();
        match verify_environment(&o.prefix, &expected) {
            Ok(n) => files_checked += n,
            Err(problem) => problems.push(problem),
        }
        let list = Command::new(&pkgr)
            .args(["list", "-p"])
            .arg(&o.prefix)
            .env("HOME", w.join("home/check"))
            .env("PKGR_CACHE_DIR", &shared)
            .output()
            .expect("run pkgr list");
        let listed = String::from_utf8_lossy(&list.stdout);
        if !list.status.success() || !expected.iter().all(|name| listed.contains(name.as_str())) {
            problems.push(format!(
                "`pkgr list -p {}` failed or is incomplete",
                o.prefix.display()
            ));
        }
    }
    let verify = Command::new(&pkgr)
        .args(["cache", "verify", "--cache-dir"])
        .arg(&shared)
        .env("HOME", w.join("home/check"))
        .output()
        .expect("run pkgr cache verify");
    if !verify.status.success() {
        problems.push(format!(
            "pkgr cache verify failed: {}",
            String::from_utf8_lossy(&verify.stderr)
        ));
    }

    // Report.
    println!();
    println!("process  app     started    wall      lock waits  held up for  longest wait  notices (>1 s)");
    for o in &outcomes {
        println!(
            "{:<8} fapp{:<3} +{:<9} {:<9} {:>10}  {:>11}  {:>12}  {}",
            o.name,
            o.app,
            secs(o.started_after),
            secs(o.wall),
            o.waits.len(),
            secs(time_waiting(&o.waits)),
            format!("{} ms", o.waits.iter().map(|w| w.1).max().unwrap_or(0)),
            o.notices
        );
    }
    let mut walls: Vec<Duration> = outcomes.iter().map(|o| o.wall).collect();
    walls.sort();
    let held_up: Vec<Duration> = outcomes.iter().map(|o| time_waiting(&o.waits)).collect();
    let held_up_total: Duration = held_up.iter().sum();
    let wall_total: Duration = walls.iter().sum();
    let waited = outcomes.iter().filter(|o| !o.waits.is_empty()).count();
    println!();
    println!(
        "wall time: {} for all {} processes (each: min {}, median {}, max {})",
        secs(wall),
        outcomes.len(),
        secs(walls[0]),
        secs(walls[walls.len() / 2]),
        secs(walls[walls.len() - 1])
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "CPU (user+sys) of the fleet's processes: {cpu:.2} s, so on this machine's {cores} cores the wall time cannot be below {:.2} s",
        cpu / cores as f64
    );
    if let Some(alone) = alone {
        println!(
            "one process alone on a cold cache: {} wall, {cpu_alone:.2} s CPU; {} one after another would take about {}",
            secs(alone),
            outcomes.len(),
            secs(alone * outcomes.len() as u32)
        );
    }
    println!(
        "lock waits: {waited} of {} processes waited for a lock another process held ({} waits); held up {} per process on average ({:.0}% of their wall time; max {}), longest single wait {} ms; {} waits over 1 s were reported",
        outcomes.len(),
        outcomes.iter().map(|o| o.waits.len()).sum::<usize>(),
        secs(held_up_total / outcomes.len() as u32),
        100.0 * held_up_total.as_secs_f64() / wall_total.as_secs_f64(),
        secs(held_up.iter().max().copied().unwrap_or_default()),
        outcomes
            .iter()
            .flat_map(|o| o.waits.iter().map(|w| w.1))
            .max()
            .unwrap_or(0),
        outcomes.iter().map(|o| o.notices).sum::<usize>()
    );
    println!(
        "server: {} archive requests for {} distinct archives ({} needed by the {} environments), max {} per archive; {} other requests (repodata and probes)",
        fetched.values().copied().sum::<usize>(),
        fetched.len(),
        needed.len(),
        apps_used.len(),
        fetched.values().copied().max().copied().unwrap_or(0),
        requests
            .iter()
            .filter(|(p, _)| !is_archive(p))
            .map(|(_, n)| n)
            .sum::<usize>()
    );
    println!(
        "environments: {} of {} verified ({files_checked} files checked against conda-meta, `pkgr list` on each); cache verify: {}",
        outcomes.iter().filter(|o| o.ok).count(),
        outcomes.len(),
        if verify.status.success() { "ok" } else { "FAILED" }
    );
    println!(
        "failed processes: {}",
        outcomes.iter().filter(|o| !o.ok).count()
    );
    drop(cleanup);
    if keep {
        println!("kept {}", work.keep().display());
    }
    if problems.is_empty() {
        println!("result: OK");
        ExitCode::SUCCESS
    } else {
        for problem in &problems {
            println!("PROBLEM: {problem}");
        }
        println!("result: FAILED");
        ExitCode::FAILURE
    }
}
