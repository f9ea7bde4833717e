//! The cold create's limit: one `curl` for every archive, decompressed on
//! all cores, and one `cp` of the payloads into an environment.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::measure::remove;
use super::scenario::ChannelPackage;
use crate::bench::run_measured;
use crate::{current_subdir, Format};

/// The cold limit's phases.
#[derive(Debug, Clone)]
pub(super) struct LimitRun {
    pub(super) download: Duration,
    pub(super) decompress: Duration,
    pub(super) link: Duration,
    /// Archives the command-line tools did not unpack cleanly (the limit is
    /// still measured; e.g. GNU tar refuses symlinks with empty targets).
    pub(super) failures: Vec<String>,
}

impl LimitRun {
    pub(super) fn total(&self) -> Duration {
        self.download + self.decompress + self.link
    }
}

pub(super) const DECOMPRESS_CONDA: &str = r#"set -e; mkdir -p "$2" "$2.info"
unzip -p "$1" 'pkg-*.tar.zst' | zstd -d -q | tar -x -C "$2"
unzip -p "$1" 'info-*.tar.zst' | zstd -d -q | tar -x -C "$2.info""#;

pub(super) const DECOMPRESS_TAR_BZ2: &str =
    r#"set -e; mkdir -p "$2"; tar -xjf "$1" -C "$2"; mv "$2/info" "$2.info""#;

/// One `curl` fetching the repodata and every archive of the environment,
/// decompressing them on `jobs` cores (largest first), one `cp` of all
/// payloads into one environment (`cp -al`, or `cp -a --reflink=always`).
pub(super) fn cold_limit(
    url: &str,
    archives: &[ChannelPackage],
    dir: &Path,
    reflink: bool,
    jobs: usize,
) -> LimitRun {
    remove(dir);
    let download_dir = dir.join("dl");
    let extract_dir = dir.join("x");
    let env = dir.join("env");
    for d in [&download_dir, &extract_dir, &env] {
        fs_err::create_dir_all(d).unwrap();
    }
    let mut args: Vec<OsString> = vec!["-s".into(), "-f".into()];
    for subdir in [current_subdir(), "noarch"] {
        args.extend([
            "-o".into(),
            download_dir.join(format!("repodata-{subdir}.json")).into(),
        ]);
        args.push(format!("{url}/{subdir}/repodata.json").into());
    }
    for archive in archives {
        args.extend(["-o".into(), download_dir.join(&archive.file_name).into()]);
        args.push(format!("{url}/{}/{}", archive.subdir, archive.file_name).into());
    }
    let download = run_measured(Path::new("curl"), &args, &|_| {})
        .expect_success("curl")
        .wall;

    let mut order: Vec<&ChannelPackage> = archives.iter().collect();
    order.sort_by_key(|a| std::cmp::Reverse(a.archive_bytes));
    let next = AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(archive) = order.get(i) else { break };
                let stem = archive
                    .file_name
                    .trim_end_matches(".conda")
                    .trim_end_matches(".tar.bz2");
                let script = match archive.format {
                    Format::Conda => DECOMPRESS_CONDA,
                    Format::TarBz2 => DECOMPRESS_TAR_BZ2,
                };
                let out = Command::new("sh")
                    .args(["-c", script, "sh"])
                    .arg(download_dir.join(&archive.file_name))
                    .arg(extract_dir.join(stem))
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                if !out.status.success() {
                    let why = String::from_utf8_lossy(&out.stderr);
                    let why = why.lines().next().unwrap_or("").trim();
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("{}: {why}", archive.file_name));
                }
            });
        }
    });
    let decompress = started.elapsed();

    let mut args: Vec<OsString> = if reflink {
        vec!["-a".into(), "--reflink=always".into()]
    } else {
        vec!["-al".into()]
    };
    for archive in archives {
        let stem = archive
            .file_name
            .trim_end_matches(".conda")
            .trim_end_matches(".tar.bz2");
        let mut source = extract_dir.join(stem).into_os_string();
        source.push("/.");
        args.push(source);
    }
    args.push(env.into());
    let link = run_measured(Path::new("cp"), &args, &|_| {})
        .expect_success("cp of the payloads")
        .wall;
    remove(dir);
    LimitRun {
        download,
        decompress,
        link,
        failures: failures.into_inner().unwrap(),
    }
}
