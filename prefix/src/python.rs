//! `noarch: python` packages: where their files go, their entry points, and
//! byte-compiling their modules with the environment's python.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use rattler_conda_types::package::EntryPoint;
use rattler_conda_types::PackageRecord;

/// The first entry point of an `info/link.json` (its text) that is not
/// `name = module:function`, with why (`None`: the entry points are not
/// what is wrong with the file). Asked only once link.json failed to parse,
/// so that the error names the entry rather than the whole file.
pub(crate) fn malformed_entry_point(link_json: &str) -> Option<(String, String)> {
    let value: serde_json::Value = serde_json::from_str(link_json).ok()?;
    let entries = value.get("noarch")?.get("entry_points")?.as_array()?;
    entries.iter().find_map(|entry| match entry.as_str() {
        Some(text) => text
            .parse::<EntryPoint>()
            .err()
            .map(|err| (text.to_owned(), err.to_string())),
        None => Some((entry.to_string(), String::from("not a string"))),
    })
}

/// The longest `#!` line written as is: conda's `MAX_SHEBANG_LENGTH`
/// (`conda/core/portability.py`), 127 on Linux (the kernel read 128 bytes of
/// it for a long time) and 512 elsewhere.
pub const MAX_SHEBANG_LENGTH: usize = if cfg!(target_os = "linux") { 127 } else { 512 };

/// The python of an environment, as far as linking needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonInfo {
    /// Major and minor version (3, 12).
    pub version: (u64, u64),
    /// Where `site-packages/` of noarch packages goes, relative to the prefix.
    pub site_packages: PathBuf,
    /// The interpreter, relative to the prefix: `bin/pythonX.Y` (conda's
    /// `get_python_short_path`; a python package need not ship `bin/python`),
    /// `python.exe` on Windows.
    pub executable: PathBuf,
}

impl PythonInfo {
    /// Describes the python of `record` (which must be the `python` package).
    /// Uses the record's `python_site_packages_path` (CEP 17, e.g. free-threaded
    /// builds' `lib/python3.13t/site-packages`) when it has one.
    pub fn from_record(record: &PackageRecord) -> Option<Self> {
        let (major, minor) = record.version.as_major_minor()?;
        let site_packages = record.python_site_packages_path.as_ref().map_or_else(
            || {
                if cfg!(windows) {
                    PathBuf::from("Lib/site-packages")
                } else {
                    PathBuf::from(format!("lib/python{major}.{minor}/site-packages"))
                }
            },
            PathBuf::from,
        );
        let executable = if cfg!(windows) {
            PathBuf::from("python.exe")
        } else {
            PathBuf::from(format!("bin/python{major}.{minor}"))
        };
        Some(Self {
            version: (major, minor),
            site_packages,
            executable,
        })
    }

    /// Where a path of a noarch python package goes: `site-packages/…` into
    /// the environment's site-packages, `python-scripts/…` into `bin/`, the
    /// rest unchanged.
    pub fn relocate(&self, path: &Path) -> PathBuf {
        if let Ok(rest) = path.strip_prefix("site-packages") {
            self.site_packages.join(rest)
        } else if let Ok(rest) = path.strip_prefix("python-scripts") {
            Path::new(if cfg!(windows) { "Scripts" } else { "bin" }).join(rest)
        } else {
            path.to_path_buf()
        }
    }

    /// The `.pyc` file CPython writes for module `py` (a `.py` path relative
    /// to the prefix): `__pycache__/<stem>.cpython-XY.pyc` beside it.
    pub fn pyc_path(&self, py: &Path) -> Option<PathBuf> {
        if py.extension()? != "py" {
            return None;
        }
        let stem = py.file_stem()?.to_str()?;
        let (major, minor) = self.version;
        let dir = py.parent().unwrap_or(Path::new(""));
        Some(
            dir.join("__pycache__")
                .join(format!("{stem}.cpython-{major}{minor}.pyc")),
        )
    }
}

/// Where an entry point's script goes, relative to the prefix.
pub fn entry_point_path(entry_point: &EntryPoint) -> PathBuf {
    pkgr_fs::paths::normalized(&Path::new("bin").join(&entry_point.command))
}

/// The first line(s), without the final newline, of an entry point run by
/// `python` (an absolute path), as conda's `generate_shebang_for_entry_point`
/// (`conda/core/portability.py`) writes them: `#!<python>` when that line,
/// newline included, is at most [`MAX_SHEBANG_LENGTH`] bytes and `python` has
/// no space; else a `/bin/sh` trampoline whose second line python reads as a
/// string:
///
/// ```text
/// #!/bin/sh
/// '''exec' "<python>" "$0" "$@" #'''
/// ```
///
/// so the script runs its own environment's python even when that
/// environment's `bin/` is not on PATH (conda since 22.9; a bare
/// `#!/usr/bin/env python` would run whichever python comes first on PATH).
pub fn shebang(python: &Path) -> String {
    let python = python.display().to_string();
    let direct = format!("#!{python}");
    if direct.len() < MAX_SHEBANG_LENGTH && !python.contains(' ') {
        return direct;
    }
    // Inside sh's double quotes these four keep a meaning unless escaped
    // (conda does not escape them; a prefix holding one would break).
    let mut quoted = String::with_capacity(python.len());
    for c in python.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    format!("#!/bin/sh\n'''exec' \"{quoted}\" \"$0\" \"$@\" #'''")
}

/// The text of the script conda writes for an entry point: import the
/// function, strip a `-script.py`/`.exe` suffix from `argv[0]`, exit with what
/// the function returns.
pub fn entry_point_script(entry_point: &EntryPoint, python: &Path) -> String {
    let function = &entry_point.function;
    let import = function.split('.').next().unwrap_or(function);
    format!(
        "{shebang}\n\
         # -*- coding: utf-8 -*-\n\
         import re\n\
         import sys\n\
         \n\
         from {module} import {import}\n\
         \n\
         if __name__ == '__main__':\n\
         \x20   sys.argv[0] = re.sub(r'(-script\\.pyw?|\\.exe)?$', '', sys.argv[0])\n\
         \x20   sys.exit({function}())\n",
        shebang = shebang(python),
        module = entry_point.module,
    )
}

/// What [`compile_pyc`] did.
#[derive(Debug)]
pub struct Compiled {
    /// The `.pyc` files that exist afterwards (relative to the prefix).
    pub pycs: Vec<PathBuf>,
    /// How python exited (`None` when there was nothing to compile).
    pub status: Option<ExitStatus>,
}

/// Byte-compiles `modules` (`.py` paths relative to `prefix`) with the
/// environment's python, `python.executable` (`compileall`, as conda's
/// `compile_multiple_pyc` does). A module python cannot compile (a syntax
/// error for this version) simply gets no `.pyc`. `Err` only when python
/// could not be run.
pub fn compile_pyc(
    prefix: &Path,
    python: &PythonInfo,
    modules: &[PathBuf],
) -> std::io::Result<Compiled> {
    if modules.is_empty() {
        return Ok(Compiled {
            pycs: Vec::new(),
            status: None,
        });
    }
    let mut list = String::new();
    for module in modules {
        list.push_str(&prefix.join(module).to_string_lossy());
        list.push('\n');
    }
    let mut child = Command::new(prefix.join(&python.executable))
        .args(["-Wi", "-m", "compileall", "-q", "-l", "-i", "-"])
        .current_dir(prefix)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        match stdin.write_all(list.as_bytes()) {
            // python exited without reading the list: it ran, and how it
            // exited says the rest.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other?,
        }
    }
    // compileall exits non-zero when a module does not compile; those simply
    // have no .pyc, as with conda.
    let status = child.wait()?;
    Ok(Compiled {
        pycs: modules
            .iter()
            .filter_map(|m| python.pyc_path(m))
            .filter(|pyc| prefix.join(pyc).is_file())
            .collect(),
        status: Some(status),
    })
}

/// Where byte-compiled modules of `noarch: python` packages are kept
/// between environments (the package cache), so that a package's modules
/// are compiled once per python, not once per environment.
pub trait CompiledModules: std::fmt::Debug + Send + Sync {
    /// The directory holding the `.pyc` files (paths relative to a prefix)
    /// of the package extracted at `package_dir` for the python `tag`.
    fn find(&self, package_dir: &Path, tag: &str) -> Option<PathBuf>;
    /// Keeps `pycs` (relative to `prefix`, just compiled there from the
    /// package's modules, hardlinks of its files or copies with their mtimes). Failing to keep them
    /// costs only a compile next time.
    fn keep(&self, package_dir: &Path, tag: &str, prefix: &Path, pycs: &[PathBuf]);
}

impl PythonInfo {
    /// The tag its byte-compiled modules are kept under
    /// ([`CompiledModules`]): `cpython-XY`, as in their file names.
    pub fn pyc_tag(&self) -> String {
        format!("cpython-{}{}", self.version.0, self.version.1)
    }
}

/// What byte-compiling the modules of many packages at once
/// ([`compile_pyc_batch`]) gave.
#[derive(Debug, Default)]
pub struct CompiledBatch {
    /// The `.pyc` files that exist afterwards (relative to the prefix).
    pub pycs: HashSet<PathBuf>,
    /// A python process that did not exit successfully (a module that does
    /// not compile), if any.
    pub failed: Option<ExitStatus>,
    /// Why python could not be run, if it could not.
    pub error: Option<String>,
}

/// Byte-compiles `modules` as [`compile_pyc`] does, split over up to
/// `processes` python processes running at once (one python per package
/// would start a process, and import `compileall`, for each).
pub fn compile_pyc_batch(
    prefix: &Path,
    python: &PythonInfo,
    modules: &[PathBuf],
    processes: usize,
) -> CompiledBatch {
    let processes = processes.clamp(1, modules.len().max(1));
    let chunk = modules.len().div_ceil(processes).max(1);
    let results: Vec<std::io::Result<Compiled>> = std::thread::scope(|scope| {
        let running: Vec<_> = modules
            .chunks(chunk)
            .map(|part| scope.spawn(move || compile_pyc(prefix, python, part)))
            .collect();
        running
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("a compiling thread panicked")))
            })
            .collect()
    });
    let mut batch = CompiledBatch::default();
    for result in results {
        match result {
            Ok(compiled) => {
                batch.pycs.extend(compiled.pycs);
                if let Some(status) = compiled.status.filter(|s| !s.success()) {
                    batch.failed.get_or_insert(status);
                }
            }
            Err(e) => {
                batch.error.get_or_insert(e.to_string());
            }
        }
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn python(version: (u64, u64)) -> PythonInfo {
        PythonInfo {
            version,
            site_packages: PathBuf::from(format!(
                "lib/python{}.{}/site-packages",
                version.0, version.1
            )),
            executable: PathBuf::from(format!("bin/python{}.{}", version.0, version.1)),
        }
    }

    #[test]
    fn the_interpreter_is_bin_python_x_y_like_conda() {
        // conda: get_python_short_path(major.minor of the python record).
        let record: PackageRecord = serde_json::from_value(serde_json::json!({
            "name": "python", "version": "3.11.9", "build": "h0_0_cpython",
            "build_number": 0, "subdir": "linux-64"
        }))
        .unwrap();
        let python = PythonInfo::from_record(&record).unwrap();
        assert_eq!(python.version, (3, 11));
        if cfg!(windows) {
            assert_eq!(python.executable, Path::new("python.exe"));
        } else {
            assert_eq!(python.executable, Path::new("bin/python3.11"));
            assert_eq!(
                python.site_packages,
                Path::new("lib/python3.11/site-packages")
            );
        }
    }

    #[test]
    fn relocates_like_conda() {
        let py = python((3, 12));
        assert_eq!(
            py.relocate(Path::new("site-packages/a/b.py")),
            Path::new("lib/python3.12/site-packages/a/b.py")
        );
        assert_eq!(
            py.relocate(Path::new("python-scripts/x")),
            Path::new("bin/x")
        );
        assert_eq!(py.relocate(Path::new("share/x")), Path::new("share/x"));
        assert_eq!(
            py.pyc_path(Path::new("lib/python3.12/site-packages/a/b.py")),
            Some(PathBuf::from(
                "lib/python3.12/site-packages/a/__pycache__/b.cpython-312.pyc"
            ))
        );
        assert_eq!(py.pyc_path(Path::new("a/b.txt")), None);
    }

    #[test]
    fn long_or_spaced_shebangs_exec_python_through_sh() {
        assert_eq!(
            shebang(Path::new("/opt/env/bin/python3.12")),
            "#!/opt/env/bin/python3.12"
        );
        let trampoline =
            |python: &str| format!("#!/bin/sh\n'''exec' \"{python}\" \"$0\" \"$@\" #'''");
        // conda counts the newline: `#!` + path + `\n` may be 127 bytes.
        let limit = MAX_SHEBANG_LENGTH - "#!\n".len();
        let fits = format!("/{}", "x".repeat(limit - 1));
        assert_eq!(shebang(Path::new(&fits)), format!("#!{fits}"));
        let long = format!("/{}", "x".repeat(limit));
        assert_eq!(shebang(Path::new(&long)), trampoline(&long));
        assert_eq!(
            shebang(Path::new("/my env/bin/python3.12")),
            trampoline("/my env/bin/python3.12")
        );
        assert_eq!(
            shebang(Path::new("/my $HOME/\"q\"/bin/python3.12")),
            trampoline("/my \\$HOME/\\\"q\\\"/bin/python3.12")
        );
    }

    /// The trampoline is what sh runs and what python reads past: sh execs
    /// the path with the script and its arguments, python sees a string.
    #[cfg(unix)]
    #[test]
    fn the_trampoline_runs_under_sh_and_parses_as_python() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("a dir with spaces");
        fs_err::create_dir_all(&bin).unwrap();
        let fake = bin.join("python3.12");
        fs_err::write(&fake, "#!/bin/sh\necho \"ran $# $2\"\n").unwrap();
        let script = dir.path().join("tool");
        fs_err::write(&script, format!("{}\nprint('ok')\n", shebang(&fake))).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            for path in [&fake, &script] {
                fs_err::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
        }
        let out = Command::new(&script).arg("arg").output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "ran 2 arg\n");
        if let Ok(out) = Command::new("python3").arg(&script).output() {
            assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n", "{out:?}");
        }
    }

    #[test]
    fn entry_point_script_imports_and_calls() {
        let ep: EntryPoint = "hello = hellopkg.cli:main.run".parse().unwrap();
        let text = entry_point_script(&ep, Path::new("/env/bin/python3.12"));
        assert!(text.starts_with("#!/env/bin/python3.12\n"), "{text}");
        assert!(text.contains("from hellopkg.cli import main\n"), "{text}");
        assert!(text.contains("sys.exit(main.run())"), "{text}");
    }
}
