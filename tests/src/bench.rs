//! Pieces shared by pkgr's benchmark commands (the `pkgr-bench` binary: the
//! shared-cache benchmark, and `pkgr-bench install`, the install-speed
//! benchmark in [`install`]): deterministic data, timing helpers, running a
//! command while measuring its wall time and peak RSS.
//!
//! Benchmarks are commands, not timed tests: timings on shared machines are
//! noisy, so they print ratios against limits measured in the same run.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub mod install;

/// A small deterministic PRNG (xorshift64*), so every run builds the same
/// channel.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A size between `min` and `max`, log-uniformly distributed (many small,
    /// few large, as file sizes are).
    pub fn log_uniform(&mut self, min: usize, max: usize) -> usize {
        if max <= min {
            return min;
        }
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let (lo, hi) = ((min.max(1) as f64).ln(), (max as f64).ln());
        (lo + unit * (hi - lo)).exp() as usize
    }
}

/// `len` incompressible bytes, the same for the same `seed`.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// `1.23s`
pub fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// CPU seconds (user + system) of all waited-for children so far (Linux:
/// `cutime` + `cstime` of /proc/self/stat, in clock ticks of 1/100 s).
pub fn children_cpu() -> f64 {
    let stat = fs_err::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_comm = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // After "pid (comm)", field 3 is index 0; cutime is field 16, cstime 17.
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(13) + tick(14)) / 100.0
}

/// The `pkgr` binary next to the running executable (both are built into
/// the same `target/<profile>/`).
pub fn default_pkgr() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().join("pkgr")
}

/// Whether `python3 -c "import rattler"` works.
pub fn rattler_available() -> bool {
    Command::new("python3")
        .args(["-c", "import rattler"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `program` can be run (`program --version` starts).
pub fn tool_available(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// The median of `values` (`NaN` when empty).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// One finished command: how long it took, its peak RSS and what it printed.
#[derive(Debug)]
pub struct Measured {
    /// Wall time from spawn to exit.
    pub wall: Duration,
    /// Peak resident set size in KiB (`/usr/bin/time`'s `%M`, i.e. the
    /// `ru_maxrss` of `wait4`; else the last `VmHWM` seen while polling).
    pub max_rss_kib: Option<u64>,
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Measured {
    /// Panics with the command's output unless it succeeded.
    pub fn expect_success(self, what: &str) -> Self {
        assert!(
            self.status.success(),
            "{what} failed ({}):\n{}\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

const GNU_TIME: &str = "/usr/bin/time";

/// Runs `program args` (after `setup` adjusted the command: environment,
/// directory) and measures its wall time and peak RSS: with `/usr/bin/time
/// -f %M` when present (the kernel's `ru_maxrss` of the process, exact),
/// else by polling `/proc/<pid>/status`'s `VmHWM` every 2 ms. Output goes to
/// temp files, not pipes, so a chatty process never blocks.
pub fn run_measured(program: &Path, args: &[OsString], setup: &dyn Fn(&mut Command)) -> Measured {
    let files = tempfile::Builder::new()
        .prefix("pkgr-bench-run-")
        .tempdir()
        .unwrap();
    let (out_path, err_path, rss_path) = (
        files.path().join("stdout"),
        files.path().join("stderr"),
        files.path().join("rss"),
    );
    let use_time = Path::new(GNU_TIME).is_file();
    let mut cmd = if use_time {
        let mut cmd = Command::new(GNU_TIME);
        cmd.args(["-f", "%M", "-o"])
            .arg(&rss_path)
            .arg(program)
            .args(args);
        cmd
    } else {
        let mut cmd = Command::new(program);
        cmd.args(args);
        cmd
    };
    setup(&mut cmd);
    cmd.stdin(Stdio::null())
        .stdout(fs_err::File::create(&out_path).unwrap().into_file())
        .stderr(fs_err::File::create(&err_path).unwrap().into_file());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let mut polled = None;
    let status = if use_time {
        child.wait().unwrap()
    } else {
        let status_file = format!("/proc/{}/status", child.id());
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if let Some(kib) = fs_err::read_to_string(&status_file)
                .ok()
                .and_then(|s| vm_hwm_kib(&s))
            {
                polled = Some(kib);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    let wall = started.elapsed();
    let max_rss_kib = if use_time {
        // "Command exited with non-zero status N" may come first.
        fs_err::read_to_string(&rss_path)
            .ok()
            .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()))
    } else {
        polled
    };
    Measured {
        wall,
        max_rss_kib,
        status,
        stdout: fs_err::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs_err::read_to_string(&err_path).unwrap_or_default(),
    }
}

fn vm_hwm_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_log_uniform_sizes() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        let mut rng = Rng::new(7);
        for _ in 0..1000 {
            let n = rng.log_uniform(100, 10_000);
            assert!((100..=10_000).contains(&n), "{n}");
        }
        assert_eq!(
            vm_hwm_kib("Name:\tx\nVmHWM:\t  1234 kB\nVmRSS: 1 kB\n"),
            Some(1234)
        );
    }

    #[test]
    fn a_measured_command_reports_its_output_and_peak_rss() {
        let run = run_measured(
            Path::new("sh"),
            &["-c".into(), "echo out; echo err >&2".into()],
            &|_| {},
        );
        assert!(run.status.success());
        assert_eq!(run.stdout, "out\n");
        assert_eq!(run.stderr, "err\n");
        // The polling fallback may miss a process this short.
        if Path::new(GNU_TIME).is_file() {
            assert!(run.max_rss_kib.is_some_and(|k| k > 0));
        }
    }
}
