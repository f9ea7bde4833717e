//! The install-speed benchmark: `pkgr-bench install` (see the binary's doc
//! comment for usage).
//!
//! It builds a channel shaped like a scientific python environment (the
//! [`sci_env`] generator: ~70 packages, ~15k files, ~300 MB unpacked, mostly
//! `.conda`, python and `noarch: python` packages, text and binary prefix
//! placeholders, file contents that compress like code and binaries), plus,
//! with `$PKGR_DATASETS`, a second scenario of the real packages there
//! (with stub packages for the dependencies the data set lacks). It serves each
//! on 127.0.0.1 and measures, in one run and each `--runs` times (medians):
//!
//! - warm create (warm package cache, fresh repodata cache) against `cp -al`
//!   of the finished environment;
//! - cold create (empty cache) against the limit measured in the same run:
//!   one `curl` process fetching the repodata and every archive, decompressing
//!   them (`unzip -p | zstd -d | tar x`, `tar xjf`) on 2 cores, and one
//!   `cp -al` of the extracted payloads into an environment;
//! - pkgr's peak RSS (warm and cold);
//! - syscalls per linked file of a warm create (`strace -ff`, pkgr's own
//!   threads apart from the python it runs to byte-compile);
//! - py-rattler (`rattler.solve` + `rattler.install`) warm and cold on the
//!   same channel, when `import rattler` works;
//! - as root with `mkfs.xfs`: warm and cold `create --copy` with cache and
//!   prefix on a loop-mounted XFS image with reflink, against `cp -a
//!   --reflink=always`, checking that the files really share extents.
//!
//! and prints one table at the end. `--smoke` does the same on a tiny channel
//! (no py-rattler, no XFS) for CI.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::bench::{secs, tool_available};
use measure::measure;
use scenario::datasets_scenario;
use sci_env::sci_env;

mod cold_limit;
mod content;
mod measure;
mod report;
mod scenario;
mod sci_env;
mod strace;
mod xfs;

pub use report::{table, Row};

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `pkgr` binary.
    pub pkgr: PathBuf,
    /// The tiny channel, no py-rattler, no XFS, 2 runs unless `--runs`.
    pub smoke: bool,
    /// How often each measurement runs (the median is reported).
    pub runs: usize,
    /// Compare with py-rattler when it is importable.
    pub rattler: bool,
    /// Measure `--copy` on a loop-mounted XFS with reflink (root only).
    pub xfs: bool,
    /// Count syscalls with strace (when installed).
    pub strace: bool,
    /// The real-packages data set (`$PKGR_DATASETS`).
    pub datasets: Option<PathBuf>,
    /// Where to work (a temp dir under it; default: the system temp dir).
    pub work_dir: Option<PathBuf>,
    /// Keep the work directory (channels, the last environments) for a look.
    pub keep: bool,
}

impl Options {
    /// Defaults: the `pkgr` next to this executable, 3 runs, everything on,
    /// the data set from `$PKGR_DATASETS`.
    pub fn new(pkgr: PathBuf) -> Self {
        Self {
            pkgr,
            smoke: false,
            runs: 3,
            rattler: true,
            xfs: true,
            strace: true,
            datasets: std::env::var_os("PKGR_DATASETS")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
            work_dir: None,
            keep: false,
        }
    }

    /// Parses `pkgr-bench install`'s arguments.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut opts = Self::new(super::default_pkgr());
        let mut args = args.into_iter();
        let mut runs_given = false;
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
            match arg.as_str() {
                "--smoke" => opts.smoke = true,
                "--pkgr" => opts.pkgr = PathBuf::from(value("--pkgr")?),
                "--runs" => {
                    runs_given = true;
                    opts.runs = value("--runs")?
                        .parse()
                        .map_err(|e| format!("--runs: {e}"))?;
                }
                "--datasets" => opts.datasets = Some(PathBuf::from(value("--datasets")?)),
                "--work-dir" => opts.work_dir = Some(PathBuf::from(value("--work-dir")?)),
                "--no-rattler" => opts.rattler = false,
                "--no-xfs" => opts.xfs = false,
                "--no-strace" => opts.strace = false,
                "--no-datasets" => opts.datasets = None,
                "--keep" => opts.keep = true,
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if opts.smoke && !runs_given {
            opts.runs = 2;
        }
        if opts.runs == 0 {
            return Err(String::from("--runs must be at least 1"));
        }
        Ok(opts)
    }
}

/// Runs the benchmark; writes details as it goes and the table at the end to
/// `out`, progress to stderr. Returns the table's rows.
pub fn run(opts: &Options, out: &mut dyn Write) -> Vec<Row> {
    assert!(
        opts.pkgr.is_file(),
        "no pkgr binary at {} (build it, or pass --pkgr)",
        opts.pkgr.display()
    );
    let pkgr = opts.pkgr.canonicalize().unwrap();
    let mut builder = tempfile::Builder::new();
    builder.prefix("pkgr-bench-install-");
    let work = match &opts.work_dir {
        Some(dir) => {
            fs_err::create_dir_all(dir).unwrap();
            builder.tempdir_in(dir).unwrap()
        }
        None => builder.tempdir().unwrap(),
    };
    let work_dir = work;
    let work = work_dir.path().to_path_buf();
    let work = work.as_path();
    let tools = Tools::detect();
    say(
        out,
        &format!(
            "pkgr install benchmark{}: {} runs each (medians), pkgr = {}",
            if opts.smoke { " (smoke)" } else { "" },
            opts.runs,
            pkgr.display()
        ),
    );
    if let Some(missing) = tools.limit_missing() {
        say(out, &format!("cold limit: skipped, {missing} not found"));
    }

    let mut rows = Vec::new();
    let started = Instant::now();
    let scenario = sci_env(&work.join("sci-env"), opts.smoke);
    say(
        out,
        &format!(
            "\n== {} (built in {})\n{}",
            scenario.name,
            secs(started.elapsed()),
            scenario.describe()
        ),
    );
    rows.extend(measure(opts, &pkgr, &tools, &scenario, work, out));

    match &opts.datasets {
        None => say(
            out,
            "\n== datasets: skipped, PKGR_DATASETS is not set (or --no-datasets)",
        ),
        Some(datasets) => match datasets_scenario(&pkgr, datasets, &work.join("datasets")) {
            Err(why) => say(out, &format!("\n== datasets: skipped, {why}")),
            Ok(scenario) => {
                say(
                    out,
                    &format!("\n== {}\n{}", scenario.name, scenario.describe()),
                );
                rows.extend(measure(opts, &pkgr, &tools, &scenario, work, out));
            }
        },
    }

    say(out, &format!("\n{}", table(&rows)));
    if opts.keep {
        say(out, &format!("kept {}", work_dir.keep().display()));
    }
    rows
}

fn say(out: &mut dyn Write, text: &str) {
    writeln!(out, "{text}").unwrap();
    out.flush().unwrap();
}

fn progress(text: &str) {
    eprintln!("[pkgr-bench install] {text}");
}

/// The external programs the limits and measurements use.
#[derive(Debug)]
struct Tools {
    curl: bool,
    unzip: bool,
    zstd: bool,
    tar: bool,
    cp: bool,
    strace: bool,
}

impl Tools {
    fn detect() -> Self {
        Self {
            curl: tool_available("curl"),
            // unzip has no --version; -v prints its banner.
            unzip: Command::new("unzip")
                .arg("-v")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok(),
            zstd: tool_available("zstd"),
            tar: tool_available("tar"),
            cp: tool_available("cp"),
            strace: tool_available("strace"),
        }
    }

    fn limit_missing(&self) -> Option<&'static str> {
        [
            (self.curl, "curl"),
            (self.unzip, "unzip"),
            (self.zstd, "zstd"),
            (self.tar, "tar"),
            (self.cp, "cp"),
        ]
        .into_iter()
        .find(|(ok, _)| !ok)
        .map(|(_, name)| name)
    }
}

#[cfg(test)]
mod tests;
