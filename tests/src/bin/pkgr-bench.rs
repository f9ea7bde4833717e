//! pkgr's shared-cache benchmark (not a timed test: run it, read the ratios).
//!
//! Builds a channel of generated packages (24 libraries of ~1.5 MB of
//! incompressible data in 150 files each, both archive formats), serves it on
//! 127.0.0.1, and measures with the real `pkgr` binary:
//!
//! 1. one `pkgr create` on a cold cache, and one on the warm cache;
//! 2. 16 concurrent creates of the same environment on one cold shared cache;
//! 3. 16 concurrent creates of 16 different, overlapping environments on one
//!    cold shared cache.
//!
//! It prints wall times, bytes served against the archives' sizes, the
//! concurrency efficiency T(16 concurrent, cold) / (T(1 cold) + 15 × T(1 warm))
//! (0.5 is perfect use of 2 cores), and whether any process waited for an entry
//! it does not need. With `--rattler` (and `python3 -c "import rattler"`
//! working) it runs scenario 2 with py-rattler too.
//!
//! Usage: `cargo build --release -p pkgr-cli -p pkgr-test-support &&
//! target/release/pkgr-bench [--pkgr PATH] [--procs N] [--rattler]`, or
//! `pkgr-bench --write-channel DIR` to only write the channel (for profiling).
//!
//! # `pkgr-bench install`: the install-speed benchmark
//!
//! ```text
//! target/release/pkgr-bench install [--smoke] [--runs N] [--pkgr PATH]
//!     [--datasets DIR] [--work-dir DIR] [--no-rattler] [--no-xfs] [--no-strace] [--no-datasets]
//! ```
//!
//! Builds a channel shaped like a scientific python environment (~70
//! packages, ~15k files, ~300 MB unpacked: python with its stdlib and `.pyc`
//! files, numpy/scipy/pandas/matplotlib-like packages with large `.so`
//! files, many small C libraries, terminfo/zoneinfo/tcl data, 13 `noarch:
//! python` packages with entry points; mostly `.conda`, 9 `.tar.bz2`; text
//! and binary prefix placeholders; contents that compress like code and
//! binaries), serves it on 127.0.0.1 and measures in one run, `--runs` times
//! each (default 3, medians):
//!
//! - warm create (warm package cache, fresh repodata cache) against `cp -al`
//!   of the finished environment;
//! - cold create (empty cache) against one `curl` fetching repodata and all
//!   archives + decompressing them on 2 cores (`unzip -p | zstd -d | tar x`,
//!   `tar xjf`) + one `cp -al` of the payloads;
//! - pkgr's peak RSS (`/usr/bin/time`, else `VmHWM` polling);
//! - syscalls per linked file of a warm create (`strace -ff`; pkgr's own
//!   threads, apart from the python it starts to byte-compile);
//! - py-rattler (`rattler.solve` + `rattler.install`) warm and cold, when
//!   `python3 -c "import rattler"` works (`pip install py-rattler`);
//! - as root with `mkfs.xfs` (`apt-get install xfsprogs`): warm and cold
//!   `create --copy` with cache and prefix on a loop-mounted XFS image with
//!   `reflink=1`, against `cp -a --reflink=always`, checking with `filefrag`
//!   and `df` that the copies share extents (the image is unmounted and
//!   deleted afterwards, also after a failure).
//!
//! With `$PKGR_DATASETS` (or `--datasets`) it repeats the measurements with
//! the real packages of `$PKGR_DATASETS/packages` for this platform and
//! noarch, adding one-file stub packages for the dependencies the data set
//! lacks, and leaving out (with the reason printed) packages pkgr cannot
//! install. It ends with one table: scenario, pkgr's median, the limit or
//! peer and its median, the ratio, pkgr's peak RSS, syscalls per file.
//!
//! `--smoke`: a 7-package, ~330-file channel, 2 runs, no py-rattler, no XFS;
//! the `it` test `bench::the_install_benchmark_smoke_run_prints_its_table`
//! runs it. The code is `pkgr_test_support::bench::install`.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pkgr_test_support::bench::{children_cpu, random_bytes, secs};
use pkgr_test_support::{ChannelServer, Format, LocalChannel, Package};

const LIBS: usize = 24;
const FILES_PER_LIB: usize = 150;
const FILE_SIZE: usize = 10_000;

/// The channel: libs `blib0..23`, a meta package `bench-env` needing all of
/// them, and apps `bapp0..15` each needing 8 consecutive libs (overlapping).
fn build_channel(root: &Path) -> (LocalChannel, u64) {
    let mut channel = LocalChannel::new(root);
    let mut total = 0;
    for i in 0..LIBS {
        let mut package = Package::new(&format!("blib{i}"), "1.0");
        for f in 0..FILES_PER_LIB {
            package = package.file(
                &format!("lib/blib{i}/f{f:03}.bin"),
                random_bytes((i * 1000 + f) as u64, FILE_SIZE),
            );
        }
        package = package.text_placeholder(
            &format!("etc/blib{i}.conf"),
            format!("prefix={}\n", pkgr_test_support::TEXT_PLACEHOLDER),
        );
        let format = if i % 3 == 0 {
            Format::TarBz2
        } else {
            Format::Conda
        };
        let path = channel.add(&package, format);
        total += fs_err::metadata(path).unwrap().len();
    }
    let mut meta = Package::new("bench-env", "1.0");
    for i in 0..LIBS {
        meta = meta.depends(&format!("blib{i}"));
    }
    channel.add(&meta, Format::Conda);
    for a in 0..16 {
        let mut app = Package::new(&format!("bapp{a}"), "1.0").file(&format!("share/bapp{a}"), "x");
        for k in 0..8 {
            app = app.depends(&format!("blib{}", (a + k) % LIBS));
        }
        channel.add(&app, Format::Conda);
    }
    channel.write_repodata();
    (channel, total)
}

struct Run {
    wall: Duration,
    /// CPU time (user + system) of the pkgr processes, seconds.
    cpu: f64,
    waits_for_unneeded: usize,
    waits: usize,
}

/// Starts one `pkgr create` per spec list at once; waits for all.
fn run_creates(pkgr: &Path, cache: &Path, envs: &Path, url: &str, specs: &[Vec<String>]) -> Run {
    let cpu_before = children_cpu();
    let started = Instant::now();
    let children: Vec<_> = specs
        .iter()
        .enumerate()
        .map(|(i, specs)| {
            Command::new(pkgr)
                .args(["create", "-y", "--cache-dir"])
                .arg(cache)
                .arg("-p")
                .arg(envs.join(format!("env{i}")))
                .args(["-c", url])
                .args(specs)
                .env_remove("PKGR_JOBS")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn pkgr")
        })
        .collect();
    let mut waits = 0;
    let mut waits_for_unneeded = 0;
    for (child, specs) in children.into_iter().zip(specs) {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "pkgr failed: {stderr}");
        for line in stderr.lines().filter(|l| l.starts_with("waiting for")) {
            waits += 1;
            let needed = specs.iter().any(|s| line.contains(&format!("{s}-")))
                || (specs.iter().any(|s| s == "bench-env") && line.contains("blib"))
                || specs.iter().any(|s| {
                    s.strip_prefix("bapp")
                        .and_then(|n| n.parse::<usize>().ok())
                        .is_some_and(|a| {
                            (0..8).any(|k| line.contains(&format!("blib{}-", (a + k) % LIBS)))
                        })
                });
            if !needed {
                waits_for_unneeded += 1;
            }
        }
    }
    Run {
        wall: started.elapsed(),
        cpu: children_cpu() - cpu_before,
        waits_for_unneeded,
        waits,
    }
}

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("install") {
        args.next();
        let opts = match pkgr_test_support::bench::install::Options::parse(args) {
            Ok(opts) => opts,
            Err(e) => {
                eprintln!("pkgr-bench install: {e}");
                std::process::exit(2);
            }
        };
        pkgr_test_support::bench::install::run(&opts, &mut std::io::stdout());
        return;
    }
    let mut pkgr = pkgr_test_support::bench::default_pkgr();
    let mut procs = 16;
    let mut rattler = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--write-channel" => {
                let dir = PathBuf::from(args.next().expect("--write-channel DIR"));
                build_channel(&dir);
                println!("wrote the benchmark channel to {}", dir.display());
                return;
            }
            "--pkgr" => pkgr = PathBuf::from(args.next().expect("--pkgr PATH")),
            "--procs" => procs = args.next().expect("--procs N").parse().expect("a number"),
            "--rattler" => rattler = true,
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(
        pkgr.is_file(),
        "no pkgr binary at {} (build it, or pass --pkgr)",
        pkgr.display()
    );
    let work = tempfile::Builder::new()
        .prefix("pkgr-bench-")
        .tempdir()
        .unwrap();
    let w = work.path();
    let t = Instant::now();
    let (channel, lib_bytes) = build_channel(&w.join("channel"));
    let files = LIBS * (FILES_PER_LIB + 1);
    println!(
        "channel: {LIBS} libraries, {files} files, {:.1} MB of archives (built in {})",
        lib_bytes as f64 / 1e6,
        secs(t.elapsed())
    );
    let same = vec![vec![String::from("bench-env")]; procs];

    // 1. One process, cold then warm.
    let server = ChannelServer::serve(channel.root());
    let cold1 = run_creates(
        &pkgr,
        &w.join("c1"),
        &w.join("e1"),
        server.url(),
        &same[..1],
    );
    let warm1 = run_creates(
        &pkgr,
        &w.join("c1"),
        &w.join("e1w"),
        server.url(),
        &same[..1],
    );
    let served1 = server.bytes_served();
    drop(server);

    // 2. N processes, same environment, cold shared cache.
    let server = ChannelServer::serve(channel.root());
    let cold_n = run_creates(&pkgr, &w.join("cn"), &w.join("en"), server.url(), &same);
    let served_n = server.bytes_served();
    drop(server);

    // 3. N processes, different overlapping environments, cold shared cache.
    let server = ChannelServer::serve(channel.root());
    let different: Vec<Vec<String>> = (0..procs)
        .map(|a| vec![format!("bapp{}", a % 16)])
        .collect();
    let diff_n = run_creates(
        &pkgr,
        &w.join("cd"),
        &w.join("ed"),
        server.url(),
        &different,
    );
    let served_d = server.bytes_served();
    drop(server);

    let repodata_bytes = |dir: &Path| -> u64 {
        ["noarch", pkgr_test_support::current_subdir()]
            .iter()
            .map(|s| {
                fs_err::metadata(dir.join(s).join("repodata.json"))
                    .map(|m| m.len())
                    .unwrap_or(0)
            })
            .sum()
    };
    let meta_bytes: u64 =
        fs_err::read_dir(channel.root().join(pkgr_test_support::current_subdir()))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("bench-env")
            })
            .map(|p| fs_err::metadata(p).unwrap().len())
            .sum();
    let archives = lib_bytes + meta_bytes;
    let rd = repodata_bytes(channel.root());
    let ideal = cold1.wall + warm1.wall * (procs as u32 - 1);
    let efficiency = cold_n.wall.as_secs_f64() / ideal.as_secs_f64();
    println!();
    println!("scenario                                   wall     bytes served / archives");
    println!(
        "1 process, cold cache                      {:>7}  {:.2}x",
        secs(cold1.wall),
        (served1 - rd) as f64 / archives as f64
    );
    println!(
        "1 process, warm cache                      {:>7}",
        secs(warm1.wall)
    );
    println!(
        "{procs} processes, same env, cold shared cache {:>7}  {:.2}x  ({} waits reported)",
        secs(cold_n.wall),
        (served_n - rd) as f64 / archives as f64,
        cold_n.waits
    );
    println!(
        "{procs} processes, different envs, cold cache  {:>7}  {:.2}x of the union  ({} waits, {} for entries not needed)",
        secs(diff_n.wall),
        (served_d - rd) as f64 / lib_bytes_union(channel.root(), procs) as f64,
        diff_n.waits,
        diff_n.waits_for_unneeded
    );
    println!();
    println!(
        "concurrency efficiency T({procs} cold) / (T(1 cold) + {} x T(1 warm)) = {} / {} = {efficiency:.2}  (target <= 0.6; 0.5 = both cores fully used)",
        procs - 1,
        secs(cold_n.wall),
        secs(ideal)
    );
    let cpu_ideal = cold1.cpu + warm1.cpu * (procs - 1) as f64;
    println!(
        "CPU time (user+sys): 1 cold {:.2}s, 1 warm {:.2}s, {procs} concurrent {:.2}s = {:.2}x the CPU of 1 cold + {} warm; on 2 cores the wall time cannot be below {:.2}s",
        cold1.cpu,
        warm1.cpu,
        cold_n.cpu,
        cold_n.cpu / cpu_ideal,
        procs - 1,
        cold_n.cpu / 2.0
    );
    println!(
        "{procs} sequential cold creates would take about {}; {procs} concurrent took {} ({:.1}x faster)",
        secs(cold1.wall * procs as u32),
        secs(cold_n.wall),
        (cold1.wall * procs as u32).as_secs_f64() / cold_n.wall.as_secs_f64()
    );

    if rattler {
        run_rattler(channel.root(), w, procs);
    }
}

/// Sum of the archives the different-environments scenario needs.
fn lib_bytes_union(root: &Path, procs: usize) -> u64 {
    let mut needed = std::collections::BTreeSet::new();
    for a in 0..procs.min(16) {
        needed.insert(format!("bapp{a}-"));
        for k in 0..8 {
            needed.insert(format!("blib{}-", (a + k) % LIBS));
        }
    }
    let mut total = 0;
    for subdir in [pkgr_test_support::current_subdir(), "noarch"] {
        for entry in fs_err::read_dir(root.join(subdir)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if needed.iter().any(|n| name.starts_with(n.as_str())) {
                total += fs_err::metadata(&path).unwrap().len();
            }
        }
    }
    total
}

/// Scenario 1 and 2 with py-rattler, for comparison.
fn run_rattler(channel: &Path, work: &Path, procs: usize) {
    let script = work.join("rattler_create.py");
    fs_err::write(&script, RATTLER_SCRIPT).unwrap();
    let ok = Command::new("python3")
        .args(["-c", "import rattler"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!("\npy-rattler: not installed (pip install py-rattler), skipped");
        return;
    }
    let run = |cache: &Path, envs: &str, n: usize| -> (Duration, Vec<String>) {
        let server = ChannelServer::serve(channel);
        let started = Instant::now();
        let children: Vec<_> = (0..n)
            .map(|i| {
                Command::new("python3")
                    .arg(&script)
                    .arg(server.url())
                    .arg(cache)
                    .arg(work.join(envs).join(format!("env{i}")))
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut failures = Vec::new();
        for child in children {
            let out = child.wait_with_output().unwrap();
            if !out.status.success() {
                let text = String::from_utf8_lossy(&out.stderr);
                let last = text
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .to_owned();
                failures.push(format!("{}: {last}", out.status));
            }
        }
        (started.elapsed(), failures)
    };
    let (cold1, f1) = run(&work.join("r1"), "re1", 1);
    let (warm1, f2) = run(&work.join("r1"), "re1w", 1);
    let (cold_n, f3) = run(&work.join("rn"), "ren", procs);
    let ideal = cold1 + warm1 * (procs as u32 - 1);
    println!(
        "\npy-rattler: 1 cold {}, 1 warm {}, {procs} concurrent cold {}; efficiency {:.2}",
        secs(cold1),
        secs(warm1),
        secs(cold_n),
        cold_n.as_secs_f64() / ideal.as_secs_f64()
    );
    for (what, failures) in [("1 cold", f1), ("1 warm", f2), ("concurrent", f3)] {
        if !failures.is_empty() {
            println!(
                "py-rattler {what}: {} processes failed: {:?}",
                failures.len(),
                failures
            );
        }
    }
}

const RATTLER_SCRIPT: &str = r#"
import asyncio, sys
import rattler

async def main(url, cache, prefix):
    records = await rattler.solve(
        sources=[rattler.Channel(url)],
        specs=["bench-env"],
        platforms=[rattler.Platform.current(), rattler.Platform("noarch")],
        virtual_packages=rattler.VirtualPackage.detect(),
        gateway=rattler.Gateway(cache_dir=cache + "/repodata"),
    )
    await rattler.install(records, target_prefix=prefix, cache_dir=cache + "/pkgs", show_progress=False)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
"#;
