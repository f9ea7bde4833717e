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

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::{median, rattler_available, run_measured, secs, tool_available, Measured, Rng};
use crate::{
    archive_entries, binary_placeholder, current_subdir, machine_python_version, python_package,
    ArchiveEntry, ChannelServer, Format, LocalChannel, Package, TEXT_PLACEHOLDER,
};

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

/// One line of the final table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Scenario and measurement, e.g. `sci-env: warm create`.
    pub scenario: String,
    /// pkgr's median wall time.
    pub pkgr: Option<Duration>,
    /// What pkgr is compared with (or why the comparison was skipped).
    pub peer_name: String,
    /// The peer's median wall time.
    pub peer: Option<Duration>,
    /// pkgr's peak RSS over the runs, KiB.
    pub rss_kib: Option<u64>,
    /// Syscalls of pkgr per linked file.
    pub syscalls_per_file: Option<f64>,
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

// ---------------------------------------------------------------------------
// The channels

/// A channel to install from, and what is known about its packages.
#[derive(Debug)]
struct Scenario {
    name: String,
    channel: PathBuf,
    /// What `pkgr create` is asked for.
    specs: Vec<String>,
    /// Archive stem (`name-version-build`) -> its archive (the `.conda` when
    /// both formats exist) and payload entries (files and symlinks).
    packages: BTreeMap<String, ChannelPackage>,
    /// Stems the environment must end up with (all, for the generated channel).
    expect_all: bool,
    /// `site-packages`-relative `.py` files of the noarch python packages.
    noarch_modules: Vec<String>,
    notes: Vec<String>,
}

#[derive(Debug, Clone)]
struct ChannelPackage {
    subdir: String,
    file_name: String,
    archive_bytes: u64,
    files: usize,
    unpacked_bytes: u64,
    format: Format,
    noarch_python: bool,
}

impl Scenario {
    fn describe(&self) -> String {
        let p = self.packages.values();
        let files: usize = p.clone().map(|p| p.files).sum();
        let unpacked: u64 = p.clone().map(|p| p.unpacked_bytes).sum();
        let archives: u64 = p.clone().map(|p| p.archive_bytes).sum();
        let bz2 = p.clone().filter(|p| p.format == Format::TarBz2).count();
        let noarch = p.clone().filter(|p| p.noarch_python).count();
        let mut text = format!(
            "channel: {} packages ({} .conda, {bz2} .tar.bz2, {noarch} noarch: python), {files} files, \
             {:.1} MB unpacked, {:.1} MB of archives ({:.2}x compression); request: {}",
            self.packages.len(),
            self.packages.len() - bz2,
            unpacked as f64 / 1e6,
            archives as f64 / 1e6,
            unpacked as f64 / archives.max(1) as f64,
            self.specs.join(" "),
        );
        for note in &self.notes {
            text.push_str("\nnote: ");
            text.push_str(note);
        }
        text
    }
}

const WORDS: &[&str] = &[
    "array",
    "value",
    "index",
    "shape",
    "dtype",
    "axis",
    "result",
    "data",
    "name",
    "self",
    "other",
    "config",
    "buffer",
    "offset",
    "stride",
    "args",
    "item",
    "key",
    "node",
    "parse",
    "format",
    "string",
    "number",
    "matrix",
    "vector",
    "scalar",
    "frame",
    "series",
    "column",
    "group",
    "level",
    "window",
    "method",
    "handle",
    "stream",
    "reader",
    "writer",
    "token",
    "state",
    "error",
    "warning",
    "message",
    "default",
    "options",
    "module",
    "context",
    "manager",
    "factory",
    "builder",
    "cache",
    "lookup",
    "compute",
    "reduce",
    "transform",
    "apply",
    "filter",
    "select",
    "merge",
    "concat",
    "split",
    "join",
    "sort",
    "unique",
    "count",
    "mean",
    "std",
    "sum",
    "min",
    "max",
    "interp",
    "solve",
    "linalg",
    "sparse",
    "signal",
    "optimize",
    "integrate",
    "special",
    "stats",
    "figure",
    "canvas",
    "patch",
    "artist",
    "legend",
    "ticker",
    "color",
    "marker",
    "line",
    "text",
    "font",
    "image",
    "pixel",
    "request",
    "session",
    "adapter",
    "response",
    "header",
    "cookie",
    "url",
    "encode",
    "decode",
    "version",
    "platform",
    "path",
    "file",
    "open",
    "close",
    "check",
];

/// Content that compresses roughly like the real thing (python source ~4x,
/// bytecode ~3x, shared libraries ~2.5x, fonts and images ~1.3x).
struct Gen {
    rng: Rng,
}

impl Gen {
    fn word(&mut self) -> &'static str {
        WORDS[self.rng.below(WORDS.len())]
    }

    /// Valid python (pkgr byte-compiles noarch modules, and a module that
    /// does not compile would make that cheaper than it is).
    fn py_source(&mut self, len: usize) -> Vec<u8> {
        let mut s = String::with_capacity(len + 1024);
        s.push_str("# Licensed under the BSD 3-Clause license.\n\"\"\"The ");
        s.push_str(self.word());
        s.push_str(" module.\"\"\"\nimport os\nimport sys\n");
        while s.len() < len {
            let (a, b, c) = (self.word(), self.word(), self.word());
            if self.rng.below(4) == 0 {
                s.push_str(&format!(
                    "\n\nclass {}{b}(object):\n    \"\"\"A {a} of {c}.\"\"\"\n\n    def {c}(self, {b}_arg=None):\n        return {b}_arg\n",
                    a.to_uppercase()
                ));
                continue;
            }
            s.push_str(&format!(
                "\n\ndef {a}_{b}({c}_arg, {a}=None, **kwargs):\n    \"\"\"Return the {a} of {b} along {c}.\"\"\"\n"
            ));
            for _ in 0..2 + self.rng.below(6) {
                let (a, b, c) = (self.word(), self.word(), self.word());
                let n = self.rng.below(1000);
                match self.rng.below(5) {
                    0 => s.push_str(&format!("    {a} = {b}.{c}({a}, axis={n})\n")),
                    1 => s.push_str(&format!(
                        "    if {a} is not None and {b} > {n}:\n        raise ValueError(\"{c} {a}\")\n"
                    )),
                    2 => s.push_str(&format!("    # {a} {b} {c}: see {a}.{b} for the {c}\n")),
                    3 => s.push_str(&format!(
                        "    for {a} in range({n}):\n        {b}[{a}] += {c}\n"
                    )),
                    _ => s.push_str(&format!("    {a}_{b} = [{c} * {n} for {c} in {a}]\n")),
                }
            }
            s.push_str(&format!("    return {a}_{b}({c})\n"));
        }
        s.into_bytes()
    }

    fn c_header(&mut self, len: usize) -> Vec<u8> {
        let mut s = String::with_capacity(len + 128);
        s.push_str("/* Copyright (c) the authors. */\n#pragma once\n#include <stddef.h>\n\n");
        while s.len() < len {
            let (a, b, c) = (self.word(), self.word(), self.word());
            let n = self.rng.below(4096);
            match self.rng.below(4) {
                0 => s.push_str(&format!(
                    "#define {}_{} {n}\n",
                    a.to_uppercase(),
                    b.to_uppercase()
                )),
                1 => s.push_str(&format!(
                    "extern int {a}_{b}(const {c}_t *{a}, size_t {b});\n"
                )),
                2 => s.push_str(&format!(
                    "typedef struct {{ int {a}; double {b}[{n}]; }} {c}_t;\n"
                )),
                _ => s.push_str(&format!("/* {a} {b} {c} */\n")),
            }
        }
        s.truncate(len);
        s.into_bytes()
    }

    fn pyc(&mut self, len: usize) -> Vec<u8> {
        const OPS: [u8; 16] = [
            100, 101, 116, 124, 125, 131, 83, 90, 106, 107, 114, 115, 1, 9, 160, 161,
        ];
        let mut v = Vec::with_capacity(len + 64);
        v.extend_from_slice(b"\xa7\x0d\x0d\x0a\0\0\0\0\0\0\0\0\0\0\0\0\xe3");
        while v.len() < len {
            if self.rng.below(3) == 0 {
                let w = self.word();
                v.push(b'z');
                v.push(w.len() as u8);
                v.extend_from_slice(w.as_bytes());
            } else {
                let r = self.rng.next_u64();
                for k in 0..4 {
                    let b = (r >> (k * 16)) as u8;
                    v.push(OPS[usize::from(b & 15)]);
                    v.push((r >> (k * 16 + 8)) as u8 & 31);
                }
            }
        }
        v.truncate(len);
        v
    }

    fn binary(&mut self, len: usize) -> Vec<u8> {
        const COMMON: [u8; 32] = [
            0x00, 0x48, 0x89, 0x8b, 0xff, 0xe8, 0x0f, 0x85, 0x84, 0x24, 0x44, 0x45, 0x31, 0xc0,
            0x4c, 0x8d, 0x74, 0x75, 0xeb, 0x01, 0x83, 0xc4, 0x5d, 0xc3, 0x41, 0x5c, 0x10, 0x08,
            0x20, 0xf8, 0x39, 0xd0,
        ];
        let mut v = Vec::with_capacity(len + 4096);
        v.extend_from_slice(b"\x7fELF\x02\x01\x01\0");
        let mut address: u64 = 0x40_0000;
        while v.len() < len {
            let end = v.len() + 4096;
            match self.rng.below(100) {
                // machine code: skewed byte distribution
                0..=44 => {
                    while v.len() < end {
                        let r = self.rng.next_u64();
                        for k in 0..8 {
                            let b = (r >> (k * 8)) as u8;
                            v.push(if b & 3 != 0 {
                                COMMON[usize::from(b >> 3) & 31]
                            } else {
                                b
                            });
                        }
                    }
                }
                // symbol and string tables
                45..=59 => {
                    while v.len() < end {
                        let (a, b) = (self.word(), self.word());
                        v.extend_from_slice(
                            format!("_ZN{}{a}{}{b}Ev\0", a.len(), b.len()).as_bytes(),
                        );
                    }
                }
                // padding, .bss
                60..=74 => v.resize(end, 0),
                // compressed or encrypted data
                75..=84 => {
                    while v.len() < end {
                        v.extend_from_slice(&self.rng.next_u64().to_le_bytes());
                    }
                }
                // relocation tables
                _ => {
                    while v.len() < end {
                        address += 8 + (self.rng.next_u64() & 0x30);
                        v.extend_from_slice(&address.to_le_bytes());
                        v.extend_from_slice(&[8, 0, 0, 0, 0, 0, 0, 0]);
                    }
                }
            }
        }
        v.truncate(len);
        v
    }

    /// Fonts, images, compressed data: mostly incompressible.
    fn data(&mut self, len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 8);
        while v.len() < len {
            if self.rng.below(4) == 0 {
                let block = self.binary(1024);
                v.extend_from_slice(&block);
            } else {
                for _ in 0..128 {
                    v.extend_from_slice(&self.rng.next_u64().to_le_bytes());
                }
            }
        }
        v.truncate(len);
        v
    }

    /// A text file with the prefix placeholder on many lines (pkg-config
    /// files, scripts, `_sysconfigdata`).
    fn placeholder_text(&mut self, len: usize) -> Vec<u8> {
        let mut s = format!("#!/bin/sh\nprefix={TEXT_PLACEHOLDER}\nexec_prefix=${{prefix}}\n");
        while s.len() < len {
            let (a, b) = (self.word(), self.word());
            if self.rng.below(3) == 0 {
                s.push_str(&format!("{a}_dir='{TEXT_PLACEHOLDER}/lib/{b}'\n"));
            } else {
                s.push_str(&format!("# {a} {b}: configured for {a}\n"));
            }
        }
        s.into_bytes()
    }

    /// A binary with the long binary placeholder in it (NUL-terminated).
    fn placeholder_binary(&mut self, len: usize) -> Vec<u8> {
        let mut v = self.binary(len.max(1024));
        let string = format!("{}/lib\0", binary_placeholder());
        let at = v.len() / 3;
        let end = (at + string.len()).min(v.len());
        v[at..end].copy_from_slice(&string.as_bytes()[..end - at]);
        v
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A compiled library or tool.
    Arch,
    /// The interpreter.
    Python,
    /// Built for one python (ships its `.pyc` files).
    PyArch,
    NoarchPython,
    NoarchGeneric,
}

#[derive(Debug, Clone)]
enum Part {
    /// `.py` modules (and, for [`Kind::PyArch`] and [`Kind::Python`], their
    /// `__pycache__/*.pyc`), about 12 per directory, two levels deep.
    Py { dir: String, n: usize, avg: usize },
    /// Shared libraries `lib<stem><i>.so.1.0` with a `lib<stem><i>.so` symlink.
    So {
        dir: String,
        stem: &'static str,
        n: usize,
        min: usize,
        max: usize,
    },
    /// Python extension modules.
    Ext {
        dir: String,
        n: usize,
        min: usize,
        max: usize,
    },
    /// C headers.
    H { dir: String, n: usize, avg: usize },
    /// Data files (terminfo, zoneinfo, fonts, tcl scripts).
    Data {
        dir: String,
        ext: &'static str,
        n: usize,
        min: usize,
        max: usize,
        text: bool,
    },
    /// A text file with the prefix placeholder.
    Text { path: String, size: usize },
    /// A binary with the binary prefix placeholder.
    Bin { path: String, size: usize },
    /// An executable binary.
    Exe { path: String, size: usize },
}

#[derive(Debug, Clone)]
struct Spec {
    name: &'static str,
    version: String,
    build: Option<String>,
    kind: Kind,
    format: Format,
    deps: Vec<String>,
    parts: Vec<Part>,
    entry_points: Vec<&'static str>,
    smoke: bool,
}

fn spec(name: &'static str, version: &str, kind: Kind) -> Spec {
    Spec {
        name,
        version: version.to_owned(),
        build: None,
        kind,
        format: Format::Conda,
        deps: Vec::new(),
        parts: Vec::new(),
        entry_points: Vec::new(),
        smoke: false,
    }
}

impl Spec {
    fn deps(mut self, deps: &[&str]) -> Self {
        self.deps.extend(deps.iter().map(|d| (*d).to_owned()));
        self
    }
    fn bz2(mut self) -> Self {
        self.format = Format::TarBz2;
        self
    }
    fn smoke(mut self) -> Self {
        self.smoke = true;
        self
    }
    fn py(mut self, dir: &str, n: usize, avg: usize) -> Self {
        self.parts.push(Part::Py {
            dir: dir.to_owned(),
            n,
            avg,
        });
        self
    }
    fn so(mut self, dir: &str, stem: &'static str, n: usize, min: usize, max: usize) -> Self {
        self.parts.push(Part::So {
            dir: dir.to_owned(),
            stem,
            n,
            min,
            max,
        });
        self
    }
    fn ext(mut self, dir: &str, n: usize, min: usize, max: usize) -> Self {
        self.parts.push(Part::Ext {
            dir: dir.to_owned(),
            n,
            min,
            max,
        });
        self
    }
    fn h(mut self, dir: &str, n: usize, avg: usize) -> Self {
        self.parts.push(Part::H {
            dir: dir.to_owned(),
            n,
            avg,
        });
        self
    }
    fn data(mut self, dir: &str, ext: &'static str, n: usize, min: usize, max: usize) -> Self {
        self.parts.push(Part::Data {
            dir: dir.to_owned(),
            ext,
            n,
            min,
            max,
            text: false,
        });
        self
    }
    fn scripts(mut self, dir: &str, ext: &'static str, n: usize, min: usize, max: usize) -> Self {
        self.parts.push(Part::Data {
            dir: dir.to_owned(),
            ext,
            n,
            min,
            max,
            text: true,
        });
        self
    }
    fn text(mut self, path: &str, size: usize) -> Self {
        self.parts.push(Part::Text {
            path: path.to_owned(),
            size,
        });
        self
    }
    fn bin(mut self, path: &str, size: usize) -> Self {
        self.parts.push(Part::Bin {
            path: path.to_owned(),
            size,
        });
        self
    }
    fn exe(mut self, path: &str, size: usize) -> Self {
        self.parts.push(Part::Exe {
            path: path.to_owned(),
            size,
        });
        self
    }
    fn entry(mut self, entry_point: &'static str) -> Self {
        self.entry_points.push(entry_point);
        self
    }
}

/// The packages of the generated environment. `xy` is the python version
/// (`3.11`), `tag` its short form (`311`).
// `1 * M` reads better beside `32 * M` in the table.
#[allow(clippy::too_many_lines, clippy::identity_op)]
fn sci_env_specs(python_version: &str, xy: &str, tag: &str) -> Vec<Spec> {
    use Kind::{Arch, NoarchGeneric, NoarchPython, PyArch, Python};
    let sp = format!("lib/python{xy}/site-packages");
    let s = |sub: &str| format!("{sp}/{sub}");
    let lib = "lib";
    const K: usize = 1000;
    const M: usize = 1_000_000;
    vec![
        spec("libgomp", "13.2.0", Arch)
            .bz2()
            .so(lib, "gomp", 1, 300 * K, 300 * K),
        spec("_openmp_mutex", "4.5", Arch).deps(&["libgomp"]),
        spec("libgcc-ng", "13.2.0", Arch)
            .smoke()
            .deps(&["_openmp_mutex"])
            .so(lib, "gcc_s", 3, 100 * K, 600 * K),
        spec("libstdcxx-ng", "13.2.0", Arch)
            .deps(&["libgcc-ng"])
            .so(lib, "stdc++", 2, 300 * K, 12 * M)
            .data("share/gcc-13.2.0/python/libstdcxx", ".py", 8, 2 * K, 30 * K),
        spec("libgfortran5", "13.2.0", Arch)
            .deps(&["libgcc-ng"])
            .so(lib, "gfortran", 2, 200 * K, 2500 * K),
        spec("libgfortran-ng", "13.2.0", Arch).deps(&["libgfortran5"]),
        spec("libzlib", "1.2.13", Arch)
            .smoke()
            .bz2()
            .deps(&["libgcc-ng"])
            .so(lib, "z", 1, 100 * K, 100 * K)
            .h("include", 2, 15 * K)
            .text("lib/pkgconfig/zlib.pc", 300)
            .bin("lib/libz-prefix.so", 40 * K),
        spec("bzip2", "1.0.8", Arch)
            .bz2()
            .deps(&["libgcc-ng"])
            .so(lib, "bz2", 1, 80 * K, 80 * K)
            .exe("bin/bzip2", 40 * K)
            .h("include", 1, 6 * K)
            .scripts("bin", "", 4, 1 * K, 3 * K),
        spec("xz", "5.2.6", Arch)
            .deps(&["libgcc-ng"])
            .so(lib, "lzma", 1, 200 * K, 200 * K)
            .exe("bin/xz", 90 * K)
            .h("include/lzma", 12, 8 * K)
            .data("share/man/man1", ".1", 20, 2 * K, 10 * K)
            .text("lib/pkgconfig/liblzma.pc", 400),
        spec("libffi", "3.4.2", Arch)
            .deps(&["libgcc-ng"])
            .so(lib, "ffi", 1, 70 * K, 70 * K)
            .h("include", 2, 10 * K)
            .text("lib/pkgconfig/libffi.pc", 300),
        spec("libuuid", "2.38.1", Arch)
            .bz2()
            .deps(&["libgcc-ng"])
            .so(lib, "uuid", 1, 40 * K, 40 * K)
            .h("include/uuid", 1, 4 * K),
        spec("libnsl", "2.0.1", Arch)
            .bz2()
            .deps(&["libgcc-ng"])
            .so(lib, "nsl", 1, 80 * K, 80 * K)
            .h("include/rpcsvc", 3, 5 * K),
        spec("libxcrypt", "4.4.36", Arch)
            .deps(&["libgcc-ng"])
            .so(lib, "crypt", 1, 200 * K, 200 * K)
            .h("include", 2, 5 * K),
        spec("libsqlite", "3.45.1", Arch)
            .deps(&["libzlib"])
            .so(lib, "sqlite3", 1, 1500 * K, 1500 * K)
            .exe("bin/sqlite3", 1500 * K)
            .h("include", 2, 100 * K)
            .text("lib/pkgconfig/sqlite3.pc", 300),
        spec("ncurses", "6.4", Arch)
            .deps(&["libgcc-ng"])
            .so(lib, "ncursesw", 6, 50 * K, 400 * K)
            .h("include/ncursesw", 30, 8 * K)
            .data("share/terminfo", "", 1500, 500, 3500)
            .text("bin/ncursesw6-config", 8 * K)
            .text("lib/pkgconfig/ncursesw.pc", 400)
            .text("lib/pkgconfig/formw.pc", 400)
            .text("lib/pkgconfig/panelw.pc", 400),
        spec("readline", "8.2", Arch)
            .deps(&["ncurses"])
            .so(lib, "readline", 2, 60 * K, 400 * K)
            .h("include/readline", 8, 10 * K)
            .data("share/info", "", 4, 20 * K, 100 * K),
        spec("ca-certificates", "2024.2.2", Arch).data("ssl", ".pem", 1, 220 * K, 220 * K),
        spec("openssl", "3.2.1", Arch)
            .deps(&["ca-certificates", "libgcc-ng"])
            .so(lib, "crypto", 1, 5 * M, 5 * M)
            .so(lib, "ssl", 1, 700 * K, 700 * K)
            .exe("bin/openssl", 1 * M)
            .h("include/openssl", 100, 12 * K)
            .text("lib/pkgconfig/openssl.pc", 300)
            .text("lib/pkgconfig/libssl.pc", 300)
            .text("lib/pkgconfig/libcrypto.pc", 300)
            .text("bin/c_rehash", 7 * K)
            .text("ssl/misc/CA.pl", 8 * K),
        spec("tk", "8.6.13", Arch)
            .bz2()
            .deps(&["libzlib"])
            .so(lib, "tk8.6", 1, 1500 * K, 1500 * K)
            .so(lib, "tcl8.6", 1, 1800 * K, 1800 * K)
            .scripts("lib/tk8.6", ".tcl", 450, 1 * K, 40 * K)
            .data("lib/tcl8.6/encoding", ".enc", 80, 1 * K, 90 * K)
            .scripts("lib/tcl8.6", ".tcl", 200, 1 * K, 40 * K)
            .h("include", 20, 40 * K)
            .text("lib/tclConfig.sh", 8 * K)
            .text("lib/tkConfig.sh", 5 * K),
        spec("libexpat", "2.5.0", Arch)
            .deps(&["libgcc-ng"])
            .so(lib, "expat", 1, 200 * K, 200 * K)
            .h("include", 3, 20 * K),
        spec("tzdata", "2024a", NoarchGeneric).data("share/zoneinfo", "", 500, 100, 4 * K),
        spec("python_abi", xy, Arch).smoke(),
        spec("python", python_version, Python)
            .smoke()
            .deps(&[
                "bzip2",
                "libexpat",
                "libffi",
                "libgcc-ng",
                "libnsl",
                "libsqlite",
                "libuuid",
                "libxcrypt",
                "libzlib",
                "ncurses",
                "openssl",
                "readline",
                "tk",
                "tzdata",
                "xz",
            ])
            .so(lib, "python3.11-core", 1, 20 * M, 20 * M)
            .py(&format!("lib/python{xy}"), 1400, 11 * K)
            .ext(&format!("lib/python{xy}/lib-dynload"), 70, 20 * K, 1500 * K)
            .h(&format!("include/python{xy}"), 250, 7 * K)
            .text(
                &format!("lib/python{xy}/_sysconfigdata__linux_x86_64-linux-gnu.py"),
                40 * K,
            )
            .text(&format!("bin/python{xy}-config"), 4 * K)
            .text("bin/2to3", 200)
            .text("bin/pydoc3", 200)
            .text("bin/idle3", 200)
            .text(&format!("lib/pkgconfig/python-{xy}.pc"), 400)
            .bin(
                &format!("lib/python{xy}/config-{xy}-x86_64-linux-gnu/python.o"),
                300 * K,
            ),
        spec("libopenblas", "0.3.26", Arch)
            .deps(&["libgcc-ng", "libgfortran-ng"])
            .so(lib, "openblasp-r0.3.26", 1, 26 * M, 26 * M)
            .h("include", 6, 30 * K)
            .text("lib/cmake/openblas/OpenBLASConfig.cmake", 2 * K)
            .text("lib/pkgconfig/openblas.pc", 300),
        spec("libblas", "3.9.0", Arch)
            .deps(&["libopenblas"])
            .so(lib, "blas", 1, 1000, 1000),
        spec("libcblas", "3.9.0", Arch)
            .deps(&["libblas"])
            .so(lib, "cblas", 1, 1000, 1000),
        spec("liblapack", "3.9.0", Arch)
            .deps(&["libblas"])
            .so(lib, "lapack", 1, 1000, 1000),
        spec("numpy", "1.26.4", PyArch)
            .smoke()
            .deps(&["libblas", "libcblas", "liblapack", "libstdcxx-ng"])
            .py(&s("numpy"), 650, 9 * K)
            .ext(&s("numpy/core"), 25, 30 * K, 5 * M)
            .h(&s("numpy/core/include/numpy"), 60, 15 * K)
            .text("bin/f2py", 300),
        spec("scipy", "1.12.0", PyArch)
            .deps(&[
                "numpy",
                "libgfortran-ng",
                "libstdcxx-ng",
                "libblas",
                "liblapack",
            ])
            .py(&s("scipy"), 1000, 8 * K)
            .ext(&s("scipy/_lib"), 90, 20 * K, 1500 * K),
        spec("python-dateutil", "2.8.2", NoarchPython)
            .deps(&["six"])
            .py(&s("dateutil"), 25, 12 * K)
            .data(&s("dateutil/zoneinfo"), ".tar.gz", 1, 150 * K, 150 * K),
        spec("six", "1.16.0", NoarchPython)
            .bz2()
            .py(&s("six"), 1, 34 * K),
        spec("pytz", "2024.1", NoarchPython)
            .py(&s("pytz"), 10, 8 * K)
            .data(&s("pytz/zoneinfo"), "", 450, 100, 4 * K),
        spec("pandas", "2.2.1", PyArch)
            .deps(&["numpy", "python-dateutil", "pytz", "tzdata", "libstdcxx-ng"])
            .py(&s("pandas"), 850, 9 * K)
            .ext(&s("pandas/_libs"), 45, 20 * K, 3 * M),
        spec("libjpeg-turbo", "3.0.0", Arch)
            .deps(&["libgcc-ng"])
            .so(lib, "jpeg", 2, 300 * K, 700 * K)
            .exe("bin/cjpeg", 60 * K)
            .exe("bin/djpeg", 60 * K)
            .h("include", 5, 15 * K)
            .data("share/man/man1", ".1", 8, 2 * K, 8 * K),
        spec("libpng", "1.6.43", Arch)
            .deps(&["libzlib"])
            .so(lib, "png16", 1, 250 * K, 250 * K)
            .h("include/libpng16", 3, 40 * K)
            .text("bin/libpng16-config", 3 * K)
            .text("lib/pkgconfig/libpng16.pc", 300),
        spec("libdeflate", "1.19", Arch)
            .deps(&["libgcc-ng"])
            .so(lib, "deflate", 1, 100 * K, 100 * K)
            .h("include", 1, 15 * K),
        spec("zstd", "1.5.5", Arch)
            .deps(&["libzlib", "libstdcxx-ng"])
            .so(lib, "zstd", 1, 1 * M, 1 * M)
            .exe("bin/zstd", 1 * M)
            .h("include", 3, 40 * K)
            .text("lib/pkgconfig/libzstd.pc", 300),
        spec("lz4-c", "1.9.4", Arch)
            .deps(&["libgcc-ng"])
            .so(lib, "lz4", 1, 150 * K, 150 * K)
            .exe("bin/lz4", 150 * K)
            .h("include", 4, 30 * K),
        spec("libtiff", "4.6.0", Arch)
            .deps(&[
                "libjpeg-turbo",
                "libdeflate",
                "zstd",
                "lz4-c",
                "xz",
                "libzlib",
            ])
            .so(lib, "tiff", 2, 100 * K, 600 * K)
            .h("include", 6, 15 * K)
            .data("share/man/man3", ".3tiff", 30, 2 * K, 10 * K),
        spec("lcms2", "2.16", Arch)
            .deps(&["libjpeg-turbo", "libtiff"])
            .so(lib, "lcms2", 1, 500 * K, 500 * K)
            .h("include", 2, 80 * K),
        spec("libwebp-base", "1.3.2", Arch)
            .deps(&["libgcc-ng"])
            .so(lib, "webp", 4, 50 * K, 500 * K)
            .h("include/webp", 8, 20 * K),
        spec("openjpeg", "2.5.2", Arch)
            .deps(&["libpng", "libtiff"])
            .so(lib, "openjp2", 1, 400 * K, 400 * K)
            .h("include/openjpeg-2.5", 3, 50 * K)
            .data("lib/openjpeg-2.5", ".cmake", 4, 1 * K, 5 * K),
        spec("freetype", "2.12.1", Arch)
            .deps(&["libpng", "libzlib"])
            .so(lib, "freetype", 1, 800 * K, 800 * K)
            .h("include/freetype2/freetype", 50, 15 * K)
            .text("lib/pkgconfig/freetype2.pc", 300),
        spec("xorg-libxau", "1.0.11", Arch)
            .bz2()
            .deps(&["libgcc-ng"])
            .so(lib, "Xau", 1, 20 * K, 20 * K)
            .h("include/X11", 1, 3 * K),
        spec("xorg-libxdmcp", "1.1.3", Arch)
            .bz2()
            .deps(&["libgcc-ng"])
            .so(lib, "Xdmcp", 1, 30 * K, 30 * K)
            .h("include/X11", 1, 3 * K),
        spec("libxcb", "1.15", Arch)
            .deps(&["xorg-libxau", "xorg-libxdmcp"])
            .so(lib, "xcb", 25, 20 * K, 1200 * K)
            .h("include/xcb", 35, 60 * K),
        spec("qhull", "2020.2", Arch)
            .deps(&["libstdcxx-ng"])
            .so(lib, "qhull", 3, 300 * K, 1200 * K)
            .h("include/libqhull_r", 20, 30 * K)
            .exe("bin/qhull", 50 * K),
        spec("pillow", "10.2.0", PyArch)
            .deps(&[
                "freetype",
                "libjpeg-turbo",
                "libpng",
                "libtiff",
                "libwebp-base",
                "openjpeg",
                "lcms2",
                "libxcb",
                "tk",
            ])
            .py(&s("PIL"), 90, 14 * K)
            .ext(&s("PIL"), 10, 50 * K, 1 * M),
        spec("brotli-python", "1.1.0", PyArch)
            .ext(&sp, 1, 900 * K, 900 * K)
            .py(&s("brotli"), 1, 2 * K),
        spec("unicodedata2", "15.1.0", PyArch)
            .ext(&s("unicodedata2"), 1, 1 * M, 1 * M)
            .py(&s("unicodedata2"), 1, 1 * K),
        spec("fonttools", "4.49.0", PyArch)
            .deps(&["brotli-python", "unicodedata2"])
            .py(&s("fontTools"), 300, 12 * K)
            .ext(&s("fontTools/cu2qu"), 5, 100 * K, 900 * K),
        spec("kiwisolver", "1.4.5", PyArch)
            .deps(&["libstdcxx-ng"])
            .ext(&s("kiwisolver"), 1, 300 * K, 300 * K)
            .py(&s("kiwisolver"), 3, 3 * K),
        spec("contourpy", "1.2.0", PyArch)
            .deps(&["numpy", "libstdcxx-ng"])
            .ext(&s("contourpy"), 1, 1 * M, 1 * M)
            .py(&s("contourpy"), 10, 10 * K),
        spec("cycler", "0.12.1", NoarchPython).py(&s("cycler"), 3, 8 * K),
        spec("pyparsing", "3.1.1", NoarchPython).py(&s("pyparsing"), 15, 25 * K),
        spec("packaging", "23.2", NoarchPython).py(&s("packaging"), 20, 12 * K),
        spec("matplotlib-base", "3.8.3", PyArch)
            .deps(&[
                "numpy",
                "pillow",
                "fonttools",
                "kiwisolver",
                "contourpy",
                "cycler",
                "pyparsing",
                "packaging",
                "python-dateutil",
                "freetype",
                "qhull",
                "libstdcxx-ng",
            ])
            .py(&s("matplotlib"), 400, 12 * K)
            .ext(&s("matplotlib"), 12, 20 * K, 1 * M)
            .data(
                &s("matplotlib/mpl-data/fonts/ttf"),
                ".ttf",
                50,
                20 * K,
                700 * K,
            )
            .data(&s("matplotlib/mpl-data/images"), ".png", 400, 300, 20 * K)
            .scripts(
                &s("matplotlib/mpl-data/stylelib"),
                ".mplstyle",
                30,
                200,
                3 * K,
            )
            .data(
                &s("matplotlib/mpl-data/sample_data"),
                ".npy",
                40,
                1 * K,
                200 * K,
            ),
        spec("tornado", "6.4", PyArch)
            .py(&s("tornado"), 120, 15 * K)
            .ext(&s("tornado"), 1, 20 * K, 20 * K),
        spec("matplotlib", "3.8.3", PyArch).deps(&["matplotlib-base", "tornado"]),
        spec("idna", "3.6", NoarchPython).py(&s("idna"), 10, 30 * K),
        spec("certifi", "2024.2.2", NoarchPython)
            .py(&s("certifi"), 4, 2 * K)
            .data(&s("certifi"), ".pem", 1, 290 * K, 290 * K),
        spec("urllib3", "2.2.1", NoarchPython).py(&s("urllib3"), 40, 12 * K),
        spec("charset-normalizer", "3.3.2", NoarchPython)
            .py(&s("charset_normalizer"), 20, 15 * K)
            .entry("normalizer = charset_normalizer.cli:cli_detect"),
        spec("requests", "2.31.0", NoarchPython)
            .smoke()
            .bz2()
            .deps(&["idna", "certifi", "urllib3", "charset-normalizer"])
            .py(&s("requests"), 20, 12 * K),
        spec("libyaml", "0.2.5", Arch)
            .bz2()
            .deps(&["libgcc-ng"])
            .so(lib, "yaml", 1, 150 * K, 150 * K)
            .h("include", 1, 50 * K),
        spec("pyyaml", "6.0.1", PyArch)
            .deps(&["libyaml"])
            .py(&s("yaml"), 17, 12 * K)
            .ext(&s("yaml"), 1, 2 * M, 2 * M),
        spec("markupsafe", "2.1.5", PyArch)
            .py(&s("markupsafe"), 4, 8 * K)
            .ext(&s("markupsafe"), 1, 40 * K, 40 * K),
        spec("jinja2", "3.1.3", NoarchPython)
            .deps(&["markupsafe"])
            .py(&s("jinja2"), 25, 25 * K),
        spec("pip", "24.0", NoarchPython)
            .smoke()
            .py(&s("pip"), 120, 12 * K)
            .entry("pip = pip._internal.cli.main:main")
            .entry("pip3 = pip._internal.cli.main:main"),
    ]
    .into_iter()
    .map(|mut spec| {
        spec.build = Some(match spec.kind {
            PyArch => format!("py{tag}h0_0"),
            Python => String::from("h0_0_cpython"),
            NoarchPython => String::from("pyhd8ed1ab_0"),
            NoarchGeneric => String::from("hd8ed1ab_0"),
            Arch if spec.name == "python_abi" => format!("4_cp{tag}"),
            Arch => String::from("h0_0"),
        });
        spec
    })
    .collect()
}

/// The top-level request for the generated environment.
const SCI_ENV_REQUEST: &[&str] = &[
    "python",
    "numpy",
    "scipy",
    "pandas",
    "matplotlib",
    "requests",
    "pyyaml",
    "jinja2",
    "pip",
];

/// Builds the generated channel (`smoke`: only the specs marked for it, with
/// a fifteenth of the files and a twentieth of the sizes).
fn sci_env(root: &Path, smoke: bool) -> Scenario {
    let python_version = machine_python_version().unwrap_or_else(|| String::from("3.11.7"));
    let mut parts = python_version.split('.');
    let (major, minor) = (
        parts.next().unwrap_or("3").to_owned(),
        parts.next().unwrap_or("11").parse::<u32>().unwrap_or(11),
    );
    let xy = format!("{major}.{minor}");
    let tag = format!("{major}{minor}");
    let python_dep = format!("python >={xy},<{major}.{}.0a0", minor + 1);
    let abi_dep = format!("python_abi {xy}.* *_cp{tag}");
    let mut specs = sci_env_specs(&python_version, &xy, &tag);
    if smoke {
        specs.retain(|s| s.smoke);
    }
    let names: BTreeSet<&str> = specs.iter().map(|s| s.name).collect();
    let (count, size) = if smoke { (15, 20) } else { (1, 1) };
    let scale_n = |n: usize| if n == 0 { 0 } else { (n / count).max(1) };
    let scale_size = |s: usize| (s / size).max(64);

    let mut channel = LocalChannel::new(root);
    let mut gen = Gen {
        rng: Rng::new(2024),
    };
    let mut packages = BTreeMap::new();
    let mut noarch_modules = Vec::new();
    let site_packages = format!("lib/python{xy}/site-packages/");
    for spec in &specs {
        let mut package = if spec.kind == Kind::Python {
            python_package(&spec.version)
        } else {
            Package::new(spec.name, &spec.version)
        };
        package = package.build(spec.build.as_deref().unwrap_or("h0_0"), 0);
        match spec.kind {
            Kind::PyArch => package = package.depends(&python_dep).depends(&abi_dep),
            Kind::NoarchPython => package = package.noarch_python().depends("python >=3.8"),
            Kind::NoarchGeneric => package = package.noarch_generic(),
            Kind::Arch | Kind::Python => {}
        }
        for dep in &spec.deps {
            if names.contains(dep.split_whitespace().next().unwrap_or("")) {
                package = package.depends(dep);
            }
        }
        for entry_point in &spec.entry_points {
            package = package.entry_point(entry_point);
        }
        // python_package has 4 entries of its own (interpreter, 2 symlinks, README).
        let mut files = if spec.kind == Kind::Python { 4 } else { 0 };
        let mut bytes = 0u64;
        let with_pyc = matches!(spec.kind, Kind::PyArch | Kind::Python);
        for part in &spec.parts {
            let mut add = |package: Package, path: String, content: Vec<u8>, how: u8| {
                files += 1;
                bytes += content.len() as u64;
                match how {
                    b't' => package.text_placeholder(&path, content),
                    b'b' => package.binary_placeholder(&path, content),
                    b'x' => package.executable(&path, content),
                    b'l' => package.symlink(&path, &String::from_utf8(content).unwrap()),
                    _ => package.file(&path, content),
                }
            };
            // Relocate noarch python paths: they are written under site-packages/.
            let place = |dir: &str| -> String {
                match (spec.kind, dir.strip_prefix(&site_packages)) {
                    (Kind::NoarchPython, Some(rest)) => format!("site-packages/{rest}"),
                    (Kind::NoarchPython, None) if dir == site_packages.trim_end_matches('/') => {
                        String::from("site-packages")
                    }
                    _ => dir.to_owned(),
                }
            };
            match part {
                Part::Py { dir, n, avg } => {
                    let n = scale_n(*n);
                    for i in 0..n {
                        let sub = grouped(&place(dir), i, n);
                        let len = gen
                            .rng
                            .log_uniform(scale_size(*avg) / 4, scale_size(*avg) * 2);
                        let source = gen.py_source(len);
                        let path = format!("{sub}/m{i}.py");
                        if spec.kind == Kind::NoarchPython {
                            noarch_modules
                                .push(path.trim_start_matches("site-packages/").to_owned());
                        }
                        package = add(package, path, source, b'f');
                        if with_pyc {
                            let pyc = gen.pyc(len * 4 / 5);
                            package = add(
                                package,
                                format!("{sub}/__pycache__/m{i}.cpython-{tag}.pyc"),
                                pyc,
                                b'f',
                            );
                        }
                    }
                }
                Part::So {
                    dir,
                    stem,
                    n,
                    min,
                    max,
                } => {
                    let n = scale_n(*n);
                    for i in 0..n {
                        let index = if n == 1 { String::new() } else { i.to_string() };
                        let real = format!("lib{stem}{index}.so.1.0");
                        let len = gen.rng.log_uniform(scale_size(*min), scale_size(*max));
                        let content = gen.binary(len);
                        package = add(package, format!("{dir}/{real}"), content, b'x');
                        package = add(
                            package,
                            format!("{dir}/lib{stem}{index}.so"),
                            real.into_bytes(),
                            b'l',
                        );
                    }
                }
                Part::Ext { dir, n, min, max } => {
                    let n = scale_n(*n);
                    for i in 0..n {
                        let sub = grouped(&place(dir), i, n);
                        let len = gen.rng.log_uniform(scale_size(*min), scale_size(*max));
                        let content = gen.binary(len);
                        let path = format!("{sub}/_m{i}.cpython-{tag}-x86_64-linux-gnu.so");
                        package = add(package, path, content, b'x');
                    }
                }
                Part::H { dir, n, avg } => {
                    let n = scale_n(*n);
                    for i in 0..n {
                        let sub = grouped(&place(dir), i, n);
                        let len = gen
                            .rng
                            .log_uniform(scale_size(*avg) / 4, scale_size(*avg) * 2);
                        let content = gen.c_header(len);
                        package = add(package, format!("{sub}/h{i}.h"), content, b'f');
                    }
                }
                Part::Data {
                    dir,
                    ext,
                    n,
                    min,
                    max,
                    text,
                } => {
                    let n = scale_n(*n);
                    for i in 0..n {
                        let sub = grouped(&place(dir), i, n);
                        let len = gen.rng.log_uniform(scale_size(*min), scale_size(*max));
                        let content = if *text {
                            gen.c_header(len)
                        } else {
                            gen.data(len)
                        };
                        package = add(package, format!("{sub}/f{i}{ext}"), content, b'f');
                    }
                }
                Part::Text { path, size } => {
                    let content = gen.placeholder_text(scale_size(*size));
                    package = add(package, place(path), content, b't');
                }
                Part::Bin { path, size } => {
                    let content = gen.placeholder_binary(scale_size(*size));
                    package = add(package, place(path), content, b'b');
                }
                Part::Exe { path, size } => {
                    let content = gen.binary(scale_size(*size));
                    package = add(package, place(path), content, b'x');
                }
            }
        }
        let path = channel.add(&package, spec.format);
        let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
        packages.insert(
            package.stem(),
            ChannelPackage {
                subdir: path
                    .parent()
                    .unwrap()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                file_name,
                archive_bytes: fs_err::metadata(&path).unwrap().len(),
                files,
                unpacked_bytes: bytes,
                format: spec.format,
                noarch_python: spec.kind == Kind::NoarchPython,
            },
        );
    }
    channel.write_repodata();
    let specs: Vec<String> = SCI_ENV_REQUEST
        .iter()
        .filter(|s| names.contains(**s))
        .map(|s| (*s).to_owned())
        .collect();
    Scenario {
        name: String::from(if smoke { "smoke" } else { "sci-env" }),
        channel: root.to_path_buf(),
        specs,
        packages,
        expect_all: true,
        noarch_modules,
        notes: vec![format!(
            "python {python_version} is a shell script running this machine's python3, so pkgr \
             really byte-compiles the noarch: python packages' modules"
        )],
    }
}

/// `dir` with two levels of subdirectories when there are many files (about
/// 12 files per directory, 8 directories per group), as packages are laid out.
fn grouped(dir: &str, i: usize, n: usize) -> String {
    if n <= 16 {
        dir.to_owned()
    } else {
        let d = i / 12;
        format!("{dir}/g{}/d{d}", d / 8)
    }
}

/// The real packages of `$PKGR_DATASETS/packages` for this platform and
/// noarch, with stub packages (one file each; python a real-layout python
/// package) for the dependencies the data set does not have. Packages that
/// still cannot be installed are left out and said so.
fn datasets_scenario(pkgr: &Path, datasets: &Path, root: &Path) -> Result<Scenario, String> {
    let packages_dir = datasets.join("packages");
    if !packages_dir.is_dir() {
        return Err(format!("{} does not exist", packages_dir.display()));
    }
    let mut archives = Vec::new();
    // Real channel builds only (not malformed/ or synthetic/, see PROVENANCE.md).
    for channel in [
        "anaconda-main",
        "anaconda-r",
        "conda-forge",
        "user-channel",
        "legacy-format",
    ] {
        for subdir in [current_subdir(), "noarch"] {
            let Ok(entries) = fs_err::read_dir(packages_dir.join(channel).join(subdir)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(".conda") || name.ends_with(".tar.bz2") {
                    archives.push(entry.path());
                }
            }
        }
    }
    archives.sort();
    if archives.is_empty() {
        return Err(format!(
            "no {} or noarch packages in {}",
            current_subdir(),
            packages_dir.display()
        ));
    }
    let mut channel = LocalChannel::new(root);
    let mut packages = BTreeMap::new();
    let mut provided = BTreeSet::new();
    let mut needed: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut real_names = BTreeSet::new();
    for archive in &archives {
        let entries = archive_entries(archive);
        let Some(ArchiveEntry::File(index)) = entries.get("info/index.json") else {
            continue;
        };
        let index: serde_json::Value = serde_json::from_slice(index).map_err(|e| e.to_string())?;
        let name = index["name"].as_str().unwrap_or_default().to_owned();
        for dep in index["depends"].as_array().into_iter().flatten() {
            let dep = dep.as_str().unwrap_or_default();
            let mut words = dep.split_whitespace();
            let dep_name = words.next().unwrap_or_default().to_owned();
            let bound = words.next().and_then(lower_bound).unwrap_or(0);
            needed.entry(dep_name).or_default().push(bound);
        }
        let path = channel.add_archive(archive);
        let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
        let stem = file_name
            .trim_end_matches(".conda")
            .trim_end_matches(".tar.bz2")
            .to_owned();
        let format = if file_name.ends_with(".conda") {
            Format::Conda
        } else {
            Format::TarBz2
        };
        let payload = entries
            .iter()
            .filter(|(n, e)| !n.starts_with("info/") && !matches!(e, ArchiveEntry::Directory));
        let info = ChannelPackage {
            subdir: index["subdir"].as_str().unwrap_or("noarch").to_owned(),
            file_name,
            archive_bytes: fs_err::metadata(&path).unwrap().len(),
            files: payload.clone().count(),
            unpacked_bytes: payload
                .map(|(_, e)| match e {
                    ArchiveEntry::File(b) => b.len() as u64,
                    _ => 0,
                })
                .sum(),
            format,
            noarch_python: index["noarch"].as_str() == Some("python"),
        };
        // Prefer the .conda, as pkgr does.
        if format == Format::Conda || !packages.contains_key(&stem) {
            packages.insert(stem, info);
        }
        provided.insert(name.clone());
        real_names.insert(name);
    }
    let mut stubs = Vec::new();
    for (name, bounds) in &needed {
        if provided.contains(name) || name.starts_with("__") {
            continue;
        }
        let bound = bounds.iter().max().copied().unwrap_or(0);
        let version = if bound == 0 {
            String::from("1.0")
        } else {
            version_string(bound)
        };
        let package = if name == "python" {
            python_package(&version)
        } else {
            Package::new(name, &version)
                .file(&format!("share/pkgr-bench-stubs/{name}.txt"), "stub\n")
        };
        let path = channel.add(&package, Format::Conda);
        let entries = archive_entries(&path);
        packages.insert(
            package.stem(),
            ChannelPackage {
                subdir: current_subdir().to_owned(),
                file_name: path.file_name().unwrap().to_string_lossy().into_owned(),
                archive_bytes: fs_err::metadata(&path).unwrap().len(),
                files: entries.keys().filter(|n| !n.starts_with("info/")).count(),
                unpacked_bytes: 0,
                format: Format::Conda,
                noarch_python: false,
            },
        );
        stubs.push(format!("{name} {version}"));
    }
    channel.write_repodata();

    // Which of the real packages install together? (Some are stripped test
    // copies without their payload, which pkgr rightly refuses.)
    let server = ChannelServer::serve(root);
    let try_install = |specs: &[String]| -> Result<(), String> {
        let scratch = tempfile::tempdir().unwrap();
        let mut args: Vec<OsString> = vec!["create".into(), "-y".into(), "--cache-dir".into()];
        args.push(scratch.path().join("cache").into());
        args.extend(["-p".into(), scratch.path().join("env").into_os_string()]);
        args.extend([
            "-c".into(),
            server.url().into(),
            "--override-channels".into(),
        ]);
        args.extend(specs.iter().map(OsString::from));
        let run = run_measured(pkgr, &args, &|cmd| isolate(cmd, scratch.path()));
        if run.status.success() {
            Ok(())
        } else {
            let lines: Vec<&str> = run
                .stderr
                .lines()
                .filter(|l| !l.trim().is_empty())
                .collect();
            let error = lines.iter().position(|l| l.starts_with("error"));
            Err(match error {
                Some(i) => lines[i..]
                    .iter()
                    .take(2)
                    .map(|l| l.trim())
                    .collect::<Vec<_>>()
                    .join(" "),
                None => lines.last().copied().unwrap_or("").to_owned(),
            })
        }
    };
    let all: Vec<String> = real_names.iter().cloned().collect();
    let mut notes =
        vec![format!(
        "{} real archives ({} packages); stub packages for the dependencies the data set lacks: {}",
        archives.len(),
        real_names.len(),
        if stubs.is_empty() { String::from("none") } else { stubs.join(", ") }
    )];
    let specs = match try_install(&all) {
        Ok(()) => all,
        Err(_) => {
            let mut ok = Vec::new();
            for name in &all {
                match try_install(std::slice::from_ref(name)) {
                    Ok(()) => ok.push(name.clone()),
                    Err(why) => notes.push(format!("left out {name}: {why}")),
                }
            }
            try_install(&ok).map_err(|why| {
                format!("the installable real packages do not install together: {why}")
            })?;
            ok
        }
    };
    if specs.is_empty() {
        return Err(String::from("none of the real packages is installable"));
    }
    notes.push(String::from(
        "a small environment: its timings are dominated by fixed costs (solve, process start)",
    ));
    Ok(Scenario {
        name: String::from("datasets"),
        channel: root.to_path_buf(),
        specs,
        packages,
        expect_all: false,
        noarch_modules: Vec::new(),
        notes,
    })
}

/// `>=1.14.0` / `>=3.10,<3.11.0a0` / `2.1.*` -> the lower bound, encoded
/// comparably (`version_string` turns it back).
fn lower_bound(constraint: &str) -> Option<u64> {
    constraint.split(',').find_map(|part| {
        let v = part
            .strip_prefix(">=")
            .or_else(|| part.strip_prefix("=="))
            .or_else(|| {
                part.starts_with(|c: char| c.is_ascii_digit())
                    .then_some(part)
            })?;
        let v = v.trim_end_matches(".*").trim_end_matches('*');
        let mut n = 0u64;
        let mut components = 0;
        for c in v.split('.').take(3) {
            let digits: String = c.chars().take_while(char::is_ascii_digit).collect();
            n = n * 10_000 + digits.parse::<u64>().ok()?;
            components += 1;
        }
        for _ in components..3 {
            n *= 10_000;
        }
        Some(n)
    })
}

fn version_string(bound: u64) -> String {
    format!(
        "{}.{}.{}",
        bound / 100_000_000,
        bound / 10_000 % 10_000,
        bound % 10_000
    )
}

// ---------------------------------------------------------------------------
// Measuring

/// HOME, PKGR_ROOT in `dir`; no inherited pkgr settings.
fn isolate(cmd: &mut Command, dir: &Path) {
    cmd.env("HOME", dir.join("home"))
        .env("PKGR_ROOT", dir.join("root"))
        .current_dir(dir);
    for var in [
        "PKGR_JOBS",
        "PKGR_CACHE_DIR",
        "PKGR_OFFLINE",
        "PKGR_REPODATA_TTL",
        "PKGR_CHANNEL_ALIAS",
        "PKGR_READONLY_CACHES",
        "PKGR_LOG",
        "XDG_CACHE_HOME",
        "XDG_CONFIG_HOME",
        "CONDA_PKGS_DIRS",
    ] {
        cmd.env_remove(var);
    }
}

fn create_args(
    scenario: &Scenario,
    url: &str,
    cache: &Path,
    prefix: &Path,
    copy: bool,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "create".into(),
        "-y".into(),
        "--cache-dir".into(),
        cache.into(),
    ];
    args.extend([
        "-p".into(),
        prefix.into(),
        "-c".into(),
        url.into(),
        "--override-channels".into(),
    ]);
    if copy {
        args.push("--copy".into());
    }
    args.extend(scenario.specs.iter().map(OsString::from));
    args
}

fn pkgr_create(
    pkgr: &Path,
    scenario: &Scenario,
    url: &str,
    cache: &Path,
    prefix: &Path,
    copy: bool,
    work: &Path,
) -> Measured {
    let args = create_args(scenario, url, cache, prefix, copy);
    run_measured(pkgr, &args, &|cmd| isolate(cmd, work)).expect_success("pkgr create")
}

/// The stems in the environment's conda-meta.
fn installed(prefix: &Path) -> BTreeSet<String> {
    fs_err::read_dir(prefix.join("conda-meta"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".json").map(ToOwned::to_owned)
        })
        .collect()
}

fn remove(path: &Path) {
    if path.exists() {
        fs_err::remove_dir_all(path).unwrap();
    }
}

fn cp(args: &[&str], from: &Path, to: &Path) -> Duration {
    let mut all: Vec<OsString> = args.iter().map(OsString::from).collect();
    all.push(from.into());
    all.push(to.into());
    run_measured(Path::new("cp"), &all, &|_| {})
        .expect_success("cp")
        .wall
}

/// The cold limit's phases.
#[derive(Debug, Clone)]
struct LimitRun {
    download: Duration,
    decompress: Duration,
    link: Duration,
    /// Archives the command-line tools did not unpack cleanly (the limit is
    /// still measured; e.g. GNU tar refuses symlinks with empty targets).
    failures: Vec<String>,
}

impl LimitRun {
    fn total(&self) -> Duration {
        self.download + self.decompress + self.link
    }
}

const DECOMPRESS_CONDA: &str = r#"set -e; mkdir -p "$2" "$2.info"
unzip -p "$1" 'pkg-*.tar.zst' | zstd -d -q | tar -x -C "$2"
unzip -p "$1" 'info-*.tar.zst' | zstd -d -q | tar -x -C "$2.info""#;
const DECOMPRESS_TAR_BZ2: &str =
    r#"set -e; mkdir -p "$2"; tar -xjf "$1" -C "$2"; mv "$2/info" "$2.info""#;

/// One `curl` fetching the repodata and every archive of the environment,
/// decompressing them on `jobs` cores (largest first), one `cp` of all
/// payloads into one environment (`cp -al`, or `cp -a --reflink=always`).
fn cold_limit(
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

/// Syscall counts from `strace -ff` logs.
#[derive(Debug, Default)]
struct Syscalls {
    /// name -> (calls, errors), of pkgr's own threads.
    own: BTreeMap<String, (u64, u64)>,
    /// Of the processes pkgr started (python byte-compiling).
    children: u64,
    children_processes: usize,
    threads: usize,
}

impl Syscalls {
    fn total(&self) -> u64 {
        self.own.values().map(|(c, _)| c).sum()
    }

    fn group(&self, names: &[&str]) -> (u64, u64) {
        names.iter().fold((0, 0), |(c, e), n| {
            let (c2, e2) = self.own.get(*n).copied().unwrap_or((0, 0));
            (c + c2, e + e2)
        })
    }
}

fn parse_strace(dir: &Path, pkgr: &Path) -> Syscalls {
    let pkgr_name = pkgr.file_name().unwrap().to_string_lossy().into_owned();
    let mut result = Syscalls::default();
    for entry in fs_err::read_dir(dir).unwrap().flatten() {
        let text = fs_err::read_to_string(entry.path()).unwrap();
        let is_child = text.lines().any(|l| {
            l.strip_prefix("execve(\"")
                .and_then(|rest| rest.split('"').next())
                .is_some_and(|path| !path.ends_with(&format!("/{pkgr_name}")))
        });
        let mut counts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for line in text.lines() {
            if line.starts_with("+++") || line.starts_with("---") || line.starts_with("<...") {
                continue;
            }
            let Some(name) = line.split('(').next() else {
                continue;
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let slot = counts.entry(name.to_owned()).or_default();
            slot.0 += 1;
            if line.contains(") = -1 ") || line.contains(" = -1 E") {
                slot.1 += 1;
            }
        }
        if is_child {
            result.children += counts.values().map(|(c, _)| c).sum::<u64>();
            result.children_processes += 1;
        } else {
            result.threads += 1;
            for (name, (c, e)) in counts {
                let slot = result.own.entry(name).or_default();
                slot.0 += c;
                slot.1 += e;
            }
        }
    }
    result
}

fn is_root() -> bool {
    fs_err::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Uid:"))?.to_owned();
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// A loop-mounted XFS image with reflink; unmounted and deleted when dropped
/// (also when a measurement panics).
struct XfsMount {
    dir: PathBuf,
    mount_point: PathBuf,
    mounted: bool,
}

impl XfsMount {
    fn create(size: u64) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("pkgr-bench-xfs-")
            .tempdir()
            .map_err(|e| e.to_string())?
            .keep();
        let mut mount = Self {
            mount_point: dir.join("mnt"),
            dir,
            mounted: false,
        };
        let image = mount.dir.join("xfs.img");
        fs_err::create_dir_all(&mount.mount_point).map_err(|e| e.to_string())?;
        fs_err::File::create(&image)
            .and_then(|f| f.set_len(size))
            .map_err(|e| e.to_string())?;
        let run = |program: &str, args: &[&OsString]| -> Result<(), String> {
            let out = Command::new(program)
                .args(args)
                .output()
                .map_err(|e| format!("{program}: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{program} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        let (image_arg, mount_arg) = (
            image.into_os_string(),
            mount.mount_point.clone().into_os_string(),
        );
        run(
            "mkfs.xfs",
            &[&"-q".into(), &"-m".into(), &"reflink=1".into(), &image_arg],
        )?;
        run(
            "mount",
            &[&"-o".into(), &"loop".into(), &image_arg, &mount_arg],
        )?;
        mount.mounted = true;
        Ok(mount)
    }

    fn used_bytes(&self) -> Option<u64> {
        let out = Command::new("df")
            .args(["-B1", "--output=used"])
            .arg(&self.mount_point)
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for XfsMount {
    fn drop(&mut self) {
        if self.mounted {
            let unmounted = (0..5).any(|attempt| {
                if attempt > 0 {
                    std::thread::sleep(Duration::from_millis(500));
                }
                Command::new("umount")
                    .arg(&self.mount_point)
                    .status()
                    .is_ok_and(|s| s.success())
            });
            if !unmounted {
                let _ = Command::new("umount")
                    .arg("-l")
                    .arg(&self.mount_point)
                    .status();
            }
        }
        let _ = fs_err::remove_dir_all(&self.dir);
    }
}

/// The largest regular file under `dir` and the total of all regular files.
fn largest_file(dir: &Path) -> (Option<PathBuf>, u64) {
    let mut best: Option<(u64, PathBuf)> = None;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs_err::read_dir(&d).unwrap().flatten() {
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                let len = entry.metadata().unwrap().len();
                total += len;
                if best.as_ref().is_none_or(|(l, _)| len > *l) {
                    best = Some((len, entry.path()));
                }
            }
        }
    }
    (best.map(|(_, p)| p), total)
}

/// `text` on one line, whitespace runs collapsed, at most 300 characters.
fn one_line(text: &str) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(300) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text,
    }
}

fn mb(kib: Option<u64>) -> String {
    kib.map_or_else(
        || String::from("-"),
        |k| format!("{:.0} MB", k as f64 * 1024.0 / 1e6),
    )
}

fn med(runs: &[Duration]) -> Duration {
    Duration::from_secs_f64(median(
        &runs.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
    ))
}

fn list(runs: &[Duration]) -> String {
    runs.iter()
        .map(|d| format!("{:.3}", d.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[allow(clippy::too_many_lines)]
fn measure(
    opts: &Options,
    pkgr: &Path,
    tools: &Tools,
    scenario: &Scenario,
    work: &Path,
    out: &mut dyn Write,
) -> Vec<Row> {
    let name = &scenario.name;
    let dir = work.join(format!("{name}-runs"));
    fs_err::create_dir_all(&dir).unwrap();
    let server = ChannelServer::serve(&scenario.channel);
    let url = server.url().to_owned();
    let runs = opts.runs;
    let mut rows = Vec::new();

    // Cold: an empty cache each time (also no repodata).
    let mut cold = Vec::new();
    let mut cold_rss = None;
    let mut limits = Vec::new();
    let mut env_archives: Vec<ChannelPackage> = Vec::new();
    let mut files = 0;
    let cache = |i: usize| dir.join(format!("cold-cache-{i}"));
    let cold_env = |i: usize| dir.join(format!("cold-env-{i}"));
    for i in 0..runs {
        progress(&format!("{name}: cold create {}/{runs}", i + 1));
        let run = pkgr_create(pkgr, scenario, &url, &cache(i), &cold_env(i), false, work);
        cold.push(run.wall);
        cold_rss = cold_rss.max(run.max_rss_kib);
        if i == 0 {
            let stems = installed(&cold_env(0));
            let missing: Vec<&String> = scenario
                .packages
                .keys()
                .filter(|s| !stems.contains(*s))
                .collect();
            assert!(
                !scenario.expect_all || missing.is_empty(),
                "{name}: the environment lacks {missing:?}"
            );
            env_archives =
                stems
                    .iter()
                    .map(|s| {
                        scenario.packages.get(s).cloned().unwrap_or_else(|| {
                            panic!("{name}: installed {s} is not in the channel")
                        })
                    })
                    .collect();
            files = env_archives.iter().map(|p| p.files).sum::<usize>();
            say(
                out,
                &format!(
                    "environment: {} packages, {files} files linked",
                    env_archives.len()
                ),
            );
        } else {
            remove(&cache(i - 1));
            remove(&cold_env(i - 1));
        }
        if tools.limit_missing().is_none() {
            progress(&format!("{name}: cold limit {}/{runs}", i + 1));
            limits.push(cold_limit(
                &url,
                &env_archives,
                &dir.join("limit"),
                false,
                2,
            ));
        }
    }
    let warm_cache = cache(runs - 1);
    let finished_env = cold_env(runs - 1);

    // Warm: the last cold run's cache (packages and fresh repodata).
    let mut warm = Vec::new();
    let mut warm_rss = None;
    let mut copies = Vec::new();
    let mut warm_requests = 0;
    for i in 0..runs {
        progress(&format!("{name}: warm create {}/{runs}", i + 1));
        let copy = dir.join(format!("cp-al-{i}"));
        copies.push(cp(&["-al"], &finished_env, &copy));
        remove(&copy);
        let before: usize = server.counts().values().sum();
        let prefix = dir.join(format!("warm-env-{i}"));
        let run = pkgr_create(pkgr, scenario, &url, &warm_cache, &prefix, false, work);
        warm_requests = warm_requests.max(server.counts().values().sum::<usize>() - before);
        warm.push(run.wall);
        warm_rss = warm_rss.max(run.max_rss_kib);
        remove(&prefix);
    }
    say(out, &format!("warm create: {} s (median {}); cp -al: {} s; HTTP requests during a warm create: {warm_requests}",
        list(&warm), secs(med(&warm)), list(&copies)));
    say(
        out,
        &format!(
            "cold create: {} s (median {})",
            list(&cold),
            secs(med(&cold))
        ),
    );
    if !limits.is_empty() {
        let phase = |f: fn(&LimitRun) -> Duration| med(&limits.iter().map(f).collect::<Vec<_>>());
        say(
            out,
            &format!(
                "cold limit: {} s (median {}: curl {}, decompress on 2 cores {}, cp -al {})",
                list(&limits.iter().map(LimitRun::total).collect::<Vec<_>>()),
                secs(med(&limits.iter().map(LimitRun::total).collect::<Vec<_>>())),
                secs(phase(|l| l.download)),
                secs(phase(|l| l.decompress)),
                secs(phase(|l| l.link)),
            ),
        );
        if let Some(failures) = limits.iter().map(|l| &l.failures).find(|f| !f.is_empty()) {
            say(
                out,
                &format!(
                    "cold limit: the command-line tools did not unpack everything cleanly (measured anyway): {}",
                    failures.join("; ")
                ),
            );
        }
    }

    // Byte-compiling is part of pkgr's work that cp -al does not do: time it alone.
    if !scenario.noarch_modules.is_empty() {
        let python = fs_err::read_dir(finished_env.join("bin"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name().is_some_and(|n| {
                    let n = n.to_string_lossy();
                    n.starts_with("python3.") && !n.ends_with("-config")
                })
            });
        let site = fs_err::read_dir(finished_env.join("lib"))
            .unwrap()
            .flatten()
            .map(|e| e.path().join("site-packages"))
            .find(|p| p.is_dir());
        if let (Some(python), Some(site)) = (python, site) {
            let mut times = Vec::new();
            for i in 0..runs {
                let scratch = dir.join(format!("compile-{i}"));
                let mut args: Vec<OsString> =
                    vec!["-Wi".into(), "-m".into(), "compileall".into(), "-q".into()];
                for module in &scenario.noarch_modules {
                    let to = scratch.join(module);
                    fs_err::create_dir_all(to.parent().unwrap()).unwrap();
                    fs_err::copy(site.join(module), &to).unwrap();
                    args.push(to.into());
                }
                times.push(run_measured(&python, &args, &|_| {}).wall);
                remove(&scratch);
            }
            say(out, &format!(
                "byte-compiling the {} modules of the noarch: python packages alone (python -m compileall): median {} \
                 (part of pkgr's warm and cold time, not of cp -al's)",
                scenario.noarch_modules.len(), secs(med(&times))
            ));
        }
    }

    // Syscalls of one warm create.
    let mut per_file = None;
    if !opts.strace {
        say(out, "syscalls: skipped (--no-strace)");
    } else if !tools.strace {
        say(out, "syscalls: skipped, strace not found");
    } else {
        progress(&format!("{name}: warm create under strace"));
        let logs = dir.join("strace");
        fs_err::create_dir_all(&logs).unwrap();
        let prefix = dir.join("strace-env");
        let mut args: Vec<OsString> = vec![
            "-ff".into(),
            "-o".into(),
            logs.join("t").into(),
            pkgr.into(),
        ];
        args.extend(create_args(scenario, &url, &warm_cache, &prefix, false));
        run_measured(Path::new("strace"), &args, &|cmd| isolate(cmd, work))
            .expect_success("strace pkgr create");
        let calls = parse_strace(&logs, pkgr);
        remove(&logs);
        remove(&prefix);
        let f = files.max(1) as f64;
        per_file = Some(calls.total() as f64 / f);
        let group = |label: &str, names: &[&str]| {
            let (c, e) = calls.group(names);
            format!("{label} {:.2} ({c}, {e} failed)", c as f64 / f)
        };
        let mut top: Vec<(&String, &(u64, u64))> = calls.own.iter().collect();
        top.sort_by_key(|(_, (c, _))| std::cmp::Reverse(*c));
        say(out, &format!(
            "syscalls of a warm create (strace -ff): pkgr {} in {} threads = {:.2} per linked file ({files} files); \
             per file: {}, {}, {}, {}; plus {} in {} child processes (byte-compiling)",
            calls.total(), calls.threads, calls.total() as f64 / f,
            group("stat*", &["statx", "stat", "lstat", "newfstatat", "fstat"]),
            group("mkdir", &["mkdir", "mkdirat"]),
            group("link", &["linkat", "link"]),
            group("open", &["openat", "open"]),
            calls.children, calls.children_processes,
        ));
        say(
            out,
            &format!(
                "top syscalls: {}",
                top.iter()
                    .take(10)
                    .map(|(n, (c, e))| if *e > 0 {
                        format!("{n} {c} ({e} failed)")
                    } else {
                        format!("{n} {c}")
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }

    rows.push(Row {
        scenario: format!("{name}: warm create"),
        pkgr: Some(med(&warm)),
        peer_name: String::from("cp -al"),
        peer: Some(med(&copies)),
        rss_kib: warm_rss,
        syscalls_per_file: per_file,
    });
    rows.push(Row {
        scenario: format!("{name}: cold create"),
        pkgr: Some(med(&cold)),
        peer_name: match tools.limit_missing() {
            None => String::from("curl + unzip|zstd|tar, bzip2 + cp -al"),
            Some(tool) => format!("skipped: no {tool}"),
        },
        peer: (!limits.is_empty())
            .then(|| med(&limits.iter().map(LimitRun::total).collect::<Vec<_>>())),
        rss_kib: cold_rss,
        syscalls_per_file: None,
    });

    // py-rattler on the same channel.
    let rattler_skip = if opts.smoke {
        Some(String::from("skipped in --smoke"))
    } else if !opts.rattler {
        Some(String::from("skipped (--no-rattler)"))
    } else if !rattler_available() {
        Some(String::from(
            "skipped: python3 -c 'import rattler' fails (pip install py-rattler)",
        ))
    } else {
        None
    };
    if let Some(why) = rattler_skip {
        say(out, &format!("py-rattler: {why}"));
        rows.push(Row {
            scenario: format!("{name}: vs py-rattler"),
            pkgr: None,
            peer_name: why,
            peer: None,
            rss_kib: None,
            syscalls_per_file: None,
        });
    } else {
        let script = dir.join("rattler_install.py");
        fs_err::write(&script, RATTLER_SCRIPT).unwrap();
        // Ok((process, solve + install as timed inside python)), else why not.
        let rattler = |cache: &Path, prefix: &Path| -> Result<(Measured, f64), String> {
            let mut args: Vec<OsString> = vec![
                script.clone().into(),
                url.clone().into(),
                cache.into(),
                prefix.into(),
            ];
            args.extend(scenario.specs.iter().map(OsString::from));
            let run = run_measured(Path::new("python3"), &args, &|cmd| isolate(cmd, work));
            let report: serde_json::Value =
                serde_json::from_str(run.stdout.lines().last().unwrap_or("{}")).unwrap_or_default();
            match (report["solve"].as_f64(), report["install"].as_f64()) {
                (Some(solve), Some(install)) if run.status.success() => Ok((run, solve + install)),
                _ => Err(format!(
                    "py-rattler failed ({}): {}",
                    run.status,
                    one_line(
                        run.stderr
                            .lines()
                            .rfind(|l| !l.trim().is_empty())
                            .unwrap_or("")
                    )
                )),
            }
        };
        let (mut rcold, mut rwarm, mut rcold_proc, mut rwarm_proc) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut failure = None;
        for i in 0..runs {
            progress(&format!("{name}: py-rattler cold {}/{runs}", i + 1));
            let cache = dir.join(format!("rattler-cache-{i}"));
            let prefix = dir.join(format!("rattler-cold-{i}"));
            match rattler(&cache, &prefix) {
                Ok((run, inner)) => {
                    rcold.push(Duration::from_secs_f64(inner));
                    rcold_proc.push(run.wall);
                }
                Err(why) => failure = Some(why),
            }
            if i > 0 {
                remove(&dir.join(format!("rattler-cache-{}", i - 1)));
            }
            if i + 1 < runs {
                remove(&prefix);
            }
        }
        let rattler_cache = dir.join(format!("rattler-cache-{}", runs - 1));
        let rattler_env = dir.join(format!("rattler-cold-{}", runs - 1));
        for i in 0..runs {
            progress(&format!("{name}: py-rattler warm {}/{runs}", i + 1));
            let prefix = dir.join(format!("rattler-warm-{i}"));
            match rattler(&rattler_cache, &prefix) {
                Ok((run, inner)) => {
                    rwarm.push(Duration::from_secs_f64(inner));
                    rwarm_proc.push(run.wall);
                }
                Err(why) => failure = Some(why),
            }
            remove(&prefix);
        }
        if let Some(why) = &failure {
            say(out, &format!("py-rattler: {why}"));
        }
        let failure = failure.map(|_| String::from("py-rattler failed (see above)"));
        let pycs = count_noarch_pycs(&rattler_env, scenario);
        let pkgr_pycs = count_noarch_pycs(&finished_env, scenario);
        if !rcold.is_empty() || !rwarm.is_empty() {
            say(out, &format!(
                "py-rattler (solve + install inside python, without interpreter start): cold {} s, warm {} s; \
                 whole process: cold {} s, warm {} s; noarch .pyc files written: py-rattler {pycs}, pkgr {pkgr_pycs} \
                 (of {} modules)",
                list(&rcold), list(&rwarm), list(&rcold_proc), list(&rwarm_proc), scenario.noarch_modules.len()
            ));
        }
        remove(&rattler_env);
        remove(&rattler_cache);
        rows.push(Row {
            scenario: format!("{name}: warm vs py-rattler"),
            pkgr: Some(med(&warm)),
            peer_name: if rwarm.is_empty() {
                failure.clone().unwrap_or_default()
            } else {
                String::from("py-rattler solve+install")
            },
            peer: (!rwarm.is_empty()).then(|| med(&rwarm)),
            rss_kib: None,
            syscalls_per_file: None,
        });
        rows.push(Row {
            scenario: format!("{name}: cold vs py-rattler"),
            pkgr: Some(med(&cold)),
            peer_name: if rcold.is_empty() {
                failure.clone().unwrap_or_default()
            } else {
                String::from("py-rattler solve+install")
            },
            peer: (!rcold.is_empty()).then(|| med(&rcold)),
            rss_kib: None,
            syscalls_per_file: None,
        });
    }

    // --copy on XFS with reflink.
    let xfs_skip = if opts.smoke {
        Some(String::from("skipped in --smoke"))
    } else if !opts.xfs {
        Some(String::from("skipped (--no-xfs)"))
    } else if !is_root() {
        Some(String::from("skipped: not root (needs mount)"))
    } else if !tool_available("mkfs.xfs")
        && !Path::new("/usr/sbin/mkfs.xfs").is_file()
        && !Path::new("/sbin/mkfs.xfs").is_file()
    {
        Some(String::from(
            "skipped: no mkfs.xfs (apt-get install xfsprogs)",
        ))
    } else {
        None
    };
    let xfs_result = match xfs_skip {
        Some(why) => Err(why),
        None => {
            // Room for the cache (archives + extracted) and a few environments.
            let need: u64 = scenario
                .packages
                .values()
                .map(|p| p.unpacked_bytes + 2 * p.archive_bytes)
                .sum();
            XfsMount::create((4 * need).max(1 << 30)).map_err(|e| format!("skipped: {e}"))
        }
    };
    match xfs_result {
        Err(why) => {
            say(out, &format!("XFS reflink: {why}"));
            rows.push(Row {
                scenario: format!("{name}: XFS --copy"),
                pkgr: None,
                peer_name: why,
                peer: None,
                rss_kib: None,
                syscalls_per_file: None,
            });
        }
        Ok(mount) => {
            let x = mount.mount_point.join("bench");
            fs_err::create_dir_all(&x).unwrap();
            let (mut xcold, mut xcold_rss, mut xlimits) = (Vec::new(), None, Vec::new());
            for i in 0..runs {
                progress(&format!("{name}: XFS cold create --copy {}/{runs}", i + 1));
                if i > 0 {
                    remove(&x.join(format!("cache-{}", i - 1)));
                    remove(&x.join(format!("cold-{}", i - 1)));
                }
                let run = pkgr_create(
                    pkgr,
                    scenario,
                    &url,
                    &x.join(format!("cache-{i}")),
                    &x.join(format!("cold-{i}")),
                    true,
                    work,
                );
                xcold.push(run.wall);
                xcold_rss = xcold_rss.max(run.max_rss_kib);
                if tools.limit_missing().is_none() {
                    xlimits.push(cold_limit(&url, &env_archives, &x.join("limit"), true, 2));
                }
            }
            let xcache = x.join(format!("cache-{}", runs - 1));
            let xfinished = x.join(format!("cold-{}", runs - 1));
            let (mut xwarm, mut xwarm_rss, mut xcopies) = (Vec::new(), None, Vec::new());
            let mut reflink_note = String::new();
            for i in 0..runs {
                progress(&format!("{name}: XFS warm create --copy {}/{runs}", i + 1));
                let copy = x.join(format!("reflink-copy-{i}"));
                xcopies.push(cp(&["-a", "--reflink=always"], &xfinished, &copy));
                remove(&copy);
                let prefix = x.join(format!("warm-{i}"));
                let used_before = mount.used_bytes();
                let run = pkgr_create(pkgr, scenario, &url, &xcache, &prefix, true, work);
                let used_after = mount.used_bytes();
                xwarm.push(run.wall);
                xwarm_rss = xwarm_rss.max(run.max_rss_kib);
                if i == 0 {
                    reflink_note = reflink_check(&prefix, used_before, used_after);
                }
                remove(&prefix);
            }
            say(out, &format!(
                "XFS (loop image, reflink=1): warm --copy {} s, cp -a --reflink=always {} s; cold --copy {} s, limit {} s; {reflink_note}",
                list(&xwarm), list(&xcopies), list(&xcold), list(&xlimits.iter().map(LimitRun::total).collect::<Vec<_>>())
            ));
            rows.push(Row {
                scenario: format!("{name}: XFS warm --copy"),
                pkgr: Some(med(&xwarm)),
                peer_name: String::from("cp -a --reflink=always"),
                peer: Some(med(&xcopies)),
                rss_kib: xwarm_rss,
                syscalls_per_file: None,
            });
            rows.push(Row {
                scenario: format!("{name}: XFS cold --copy"),
                pkgr: Some(med(&xcold)),
                peer_name: String::from("curl + decompress + cp --reflink"),
                peer: (!xlimits.is_empty())
                    .then(|| med(&xlimits.iter().map(LimitRun::total).collect::<Vec<_>>())),
                rss_kib: xcold_rss,
                syscalls_per_file: None,
            });
            remove(&x);
            drop(mount);
        }
    }
    if !opts.keep {
        remove(&dir);
    }
    rows
}

/// Whether pkgr's `--copy` reflinked: the file system's usage grew by far
/// less than the bytes copied, and the largest file's extents are shared.
fn reflink_check(prefix: &Path, used_before: Option<u64>, used_after: Option<u64>) -> String {
    let (largest, total) = largest_file(prefix);
    let grew = match (used_before, used_after) {
        (Some(b), Some(a)) => format!("{:.1} MB", a.saturating_sub(b) as f64 / 1e6),
        _ => String::from("?"),
    };
    let shared = largest.as_ref().and_then(|file| {
        let out = Command::new("filefrag").arg("-v").arg(file).output().ok()?;
        Some(String::from_utf8_lossy(&out.stdout).contains("shared"))
    });
    let verdict = match (shared, used_before.zip(used_after)) {
        (Some(true), _) => "reflinked: yes",
        (Some(false), _) => "reflinked: NO (the largest file's extents are not shared)",
        (None, Some((b, a))) if a.saturating_sub(b) < total / 4 => "reflinked: yes (by disk usage)",
        (None, Some(_)) => "reflinked: NO (by disk usage)",
        (None, None) => "reflinked: unknown",
    };
    format!(
        "{verdict}; a warm --copy create of {:.1} MB of files grew the file system by {grew}{}",
        total as f64 / 1e6,
        largest.map_or_else(String::new, |p| format!(
            " (filefrag -v {})",
            p.file_name().unwrap().to_string_lossy()
        ))
    )
}

/// `.pyc` files next to the noarch python modules in `prefix`.
fn count_noarch_pycs(prefix: &Path, scenario: &Scenario) -> usize {
    let Ok(lib) = fs_err::read_dir(prefix.join("lib")) else {
        return 0;
    };
    let Some(site) = lib
        .flatten()
        .map(|e| e.path().join("site-packages"))
        .find(|p| p.is_dir())
    else {
        return 0;
    };
    scenario
        .noarch_modules
        .iter()
        .filter(|m| {
            let module = site.join(m);
            let (Some(dir), Some(stem)) = (module.parent(), module.file_stem()) else {
                return false;
            };
            fs_err::read_dir(dir.join("__pycache__")).is_ok_and(|entries| {
                entries.flatten().any(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("{}.", stem.to_string_lossy()))
                })
            })
        })
        .count()
}

/// The table: scenario, pkgr, limit or peer, ratio, RSS, syscalls per file.
pub fn table(rows: &[Row]) -> String {
    let header = [
        "scenario",
        "pkgr",
        "limit / peer",
        "time",
        "ratio",
        "pkgr RSS",
        "syscalls/file",
    ];
    let mut cells: Vec<[String; 7]> = vec![header.map(String::from)];
    for row in rows {
        let ratio = match (row.pkgr, row.peer) {
            (Some(p), Some(l)) if l.as_secs_f64() > 0.0 => {
                format!("{:.2}x", p.as_secs_f64() / l.as_secs_f64())
            }
            _ => String::from("-"),
        };
        cells.push([
            row.scenario.clone(),
            row.pkgr
                .map_or_else(|| String::from("-"), |d| format!("{:.3}s", d.as_secs_f64())),
            row.peer_name.clone(),
            row.peer
                .map_or_else(|| String::from("-"), |d| format!("{:.3}s", d.as_secs_f64())),
            ratio,
            mb(row.rss_kib),
            row.syscalls_per_file
                .map_or_else(|| String::from("-"), |s| format!("{s:.2}")),
        ]);
    }
    let widths: Vec<usize> = (0..7)
        .map(|c| {
            cells
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    for (i, row) in cells.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
        if i == 0 {
            text.push_str(
                &widths
                    .iter()
                    .map(|w| "-".repeat(*w))
                    .collect::<Vec<_>>()
                    .join("  "),
            );
            text.push('\n');
        }
    }
    text
}

const RATTLER_SCRIPT: &str = r#"
import asyncio, json, os, sys, time
import rattler

async def main(url, cache, prefix, specs):
    t0 = time.perf_counter()
    records = await rattler.solve(
        sources=[rattler.Channel(url)],
        specs=specs,
        platforms=[rattler.Platform.current(), rattler.Platform("noarch")],
        virtual_packages=rattler.VirtualPackage.detect(),
        gateway=rattler.Gateway(cache_dir=cache + "/repodata"),
    )
    t1 = time.perf_counter()
    await rattler.install(records, target_prefix=prefix, cache_dir=cache + "/pkgs", show_progress=False)
    t2 = time.perf_counter()
    print(json.dumps({"solve": t1 - t0, "install": t2 - t1, "records": len(records)}), flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]))
# py-rattler 0.28 can abort in interpreter finalization (PyGILState_Release);
# the work is done and reported, so skip finalization.
os._exit(0)
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_bounds_of_constraints() {
        assert_eq!(
            lower_bound(">=3.10,<3.11.0a0")
                .map(version_string)
                .as_deref(),
            Some("3.10.0")
        );
        assert_eq!(
            lower_bound(">=1.14.0").map(version_string).as_deref(),
            Some("1.14.0")
        );
        assert_eq!(
            lower_bound("2.1.*").map(version_string).as_deref(),
            Some("2.1.0")
        );
        assert_eq!(lower_bound("<2"), None);
        assert!(lower_bound(">=7.5.0") > lower_bound(">=7.3.0"));
    }

    #[test]
    fn strace_logs_split_pkgr_from_its_children() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(
            dir.path().join("t.1"),
            "execve(\"/x/pkgr\", [\"pkgr\"], 0x0 /* 3 vars */) = 0\nstatx(AT_FDCWD, \"/a\", 0) = 0\n\
             mkdir(\"/a\", 0777) = -1 EEXIST (File exists)\n+++ exited with 0 +++\n",
        )
        .unwrap();
        fs_err::write(
            dir.path().join("t.2"),
            "linkat(3, \"a\", 4, \"b\", 0) = 0\n",
        )
        .unwrap();
        fs_err::write(
            dir.path().join("t.3"),
            "execve(\"/env/bin/python3.11\", [\"python\"], 0x0) = 0\nopenat(AT_FDCWD, \"x\", O_RDONLY) = 3\n",
        )
        .unwrap();
        let calls = parse_strace(dir.path(), Path::new("/x/pkgr"));
        assert_eq!(calls.total(), 4);
        assert_eq!(calls.group(&["mkdir"]), (1, 1));
        assert_eq!(calls.threads, 2);
        assert_eq!((calls.children, calls.children_processes), (2, 1));
    }

    #[test]
    fn generated_content_compresses_like_the_real_thing() {
        let mut gen = Gen { rng: Rng::new(1) };
        let ratio = |bytes: Vec<u8>| {
            bytes.len() as f64 / zstd::encode_all(bytes.as_slice(), 3).unwrap().len() as f64
        };
        let py = ratio(gen.py_source(200_000));
        let so = ratio(gen.binary(400_000));
        let data = ratio(gen.data(200_000));
        assert!((2.5..12.0).contains(&py), "python source {py}");
        assert!((1.6..5.0).contains(&so), "binaries {so}");
        assert!((1.0..1.6).contains(&data), "data {data}");
    }

    #[test]
    fn generated_python_is_valid_python() {
        let dir = tempfile::tempdir().unwrap();
        let mut gen = Gen { rng: Rng::new(3) };
        let files: Vec<PathBuf> = (0..200)
            .map(|i| {
                let path = dir.path().join(format!("m{i}.py"));
                fs_err::write(&path, gen.py_source(100 + i * 100)).unwrap();
                path
            })
            .collect();
        let status = Command::new("python3")
            .args([
                "-c",
                "import sys\nfor f in sys.argv[1:]: compile(open(f).read(), f, \"exec\")",
            ])
            .args(&files)
            .status();
        match status {
            Ok(status) => assert!(status.success()),
            Err(e) => eprintln!("skipped: no python3 ({e})"),
        }
    }

    #[test]
    fn the_table_has_a_row_per_measurement() {
        let rows = [Row {
            scenario: String::from("x: warm create"),
            pkgr: Some(Duration::from_millis(300)),
            peer_name: String::from("cp -al"),
            peer: Some(Duration::from_millis(100)),
            rss_kib: Some(20_000),
            syscalls_per_file: Some(2.5),
        }];
        let text = table(&rows);
        assert!(text.starts_with("scenario"), "{text}");
        assert!(
            text.contains("x: warm create  0.300s  cp -al")
                && text.contains("3.00x")
                && text.contains("2.50"),
            "{text}"
        );
    }
}
