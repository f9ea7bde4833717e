//! `noarch: python` packages: where their files go, their entry points, and
//! byte-compiling their modules with the environment's python.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rattler_conda_types::package::EntryPoint;
use rattler_conda_types::PackageRecord;

/// The longest `#!` line the kernel honours (Linux reads 128 bytes of it;
/// conda uses the same bound).
pub const MAX_SHEBANG_LENGTH: usize = 127;

/// The python of an environment, as far as linking needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonInfo {
    /// Major and minor version (3, 12).
    pub version: (u64, u64),
    /// Where `site-packages/` of noarch packages goes, relative to the prefix.
    pub site_packages: PathBuf,
    /// The interpreter, relative to the prefix.
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
            PathBuf::from("bin/python")
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
    Path::new("bin").join(&entry_point.command)
}

/// The `#!` line for a script run by `python` (an absolute path): the path
/// itself when the kernel can take it, else `/usr/bin/env python` (the
/// environment's `bin/` must then be on PATH, as with conda).
pub fn shebang(python: &Path) -> String {
    let direct = format!("#!{}", python.display());
    if direct.len() > MAX_SHEBANG_LENGTH || direct.contains(' ') {
        String::from("#!/usr/bin/env python")
    } else {
        direct
    }
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

/// Byte-compiles `modules` (`.py` paths relative to `prefix`) with the
/// environment's python (`compileall`, as conda does). Returns the `.pyc`
/// files that exist afterwards; a module python cannot compile (a syntax error
/// for this version) simply gets none. `Err` only when python could not be run.
pub fn compile_pyc(
    prefix: &Path,
    python: &PythonInfo,
    modules: &[PathBuf],
) -> std::io::Result<Vec<PathBuf>> {
    if modules.is_empty() {
        return Ok(Vec::new());
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
        stdin.write_all(list.as_bytes())?;
    }
    // compileall exits non-zero when a module does not compile; those simply
    // have no .pyc, as with conda.
    child.wait()?;
    Ok(modules
        .iter()
        .filter_map(|m| python.pyc_path(m))
        .filter(|pyc| prefix.join(pyc).is_file())
        .collect())
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
            executable: PathBuf::from("bin/python"),
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
    fn long_or_spaced_shebangs_use_env() {
        assert_eq!(
            shebang(Path::new("/opt/env/bin/python")),
            "#!/opt/env/bin/python"
        );
        let long = format!("/{}/bin/python", "x".repeat(200));
        assert_eq!(shebang(Path::new(&long)), "#!/usr/bin/env python");
        assert_eq!(
            shebang(Path::new("/my env/bin/python")),
            "#!/usr/bin/env python"
        );
    }

    #[test]
    fn entry_point_script_imports_and_calls() {
        let ep: EntryPoint = "hello = hellopkg.cli:main.run".parse().unwrap();
        let text = entry_point_script(&ep, Path::new("/env/bin/python"));
        assert!(text.starts_with("#!/env/bin/python\n"), "{text}");
        assert!(text.contains("from hellopkg.cli import main\n"), "{text}");
        assert!(text.contains("sys.exit(main.run())"), "{text}");
    }
}
