//! `python` packages for tests, and the machine's own `python3`.

use crate::*;

/// A `python` package for this machine's subdir laid out like conda-forge's:
/// `bin/python<X.Y>` (X.Y from `version`) is [`python_interpreter_script`],
/// with `bin/python -> python<X.Y>` and `bin/python3 -> python<X.Y>`, and
/// `lib/python<X.Y>/site-packages/README.txt`.
pub fn python_package(version: &str) -> Package {
    let xy = major_minor(version);
    python_package_without_interpreter(version)
        .executable(
            &format!("bin/python{xy}"),
            python_interpreter_script(version),
        )
        .symlink("bin/python", &format!("python{xy}"))
        .symlink("bin/python3", &format!("python{xy}"))
}

/// A `python` package with `lib/python<X.Y>/site-packages/README.txt` and no
/// interpreter at all (add one with [`python_interpreter_script`] under the
/// name a test needs).
pub fn python_package_without_interpreter(version: &str) -> Package {
    Package::new("python", version).file(
        &format!(
            "lib/python{}/site-packages/README.txt",
            major_minor(version)
        ),
        "site-packages\n",
    )
}

/// A shell script standing in for python `version`: it runs the machine's
/// `python3` with the environment's site-packages on `PYTHONPATH` (found from
/// `$0`, which is the full path when the kernel runs it as an interpreter), so
/// entry points import the packages linked into the environment.
pub fn python_interpreter_script(version: &str) -> String {
    // The absolute path: with the environment's bin/ on PATH, a bare
    // `python3` would be this package's own bin/python3 and loop forever.
    let machine_python = machine_python_executable().unwrap_or_else(|| "python3".to_owned());
    format!(
        "#!/bin/sh\nprefix=\"${{0%/bin/*}}\"\nPYTHONPATH=\"$prefix/lib/python{}/site-packages${{PYTHONPATH:+:$PYTHONPATH}}\" exec '{machine_python}' \"$@\"\n",
        major_minor(version)
    )
}

/// `3.12` of `3.12.1`.
fn major_minor(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// The machine's `python3` version (`3.12.1`), or `None` if `python3` is
/// missing or fails.
pub fn machine_python_version() -> Option<String> {
    let output = std::process::Command::new("python3")
        .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
        .output()
        .ok()?;
    let version = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && !version.trim().is_empty()).then(|| version.trim().to_owned())
}

/// The absolute path of the machine's `python3` (`sys.executable`), or `None`.
pub fn machine_python_executable() -> Option<String> {
    let output = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    let path = String::from_utf8(output.stdout).ok()?;
    (output.status.success() && path.trim().starts_with('/')).then(|| path.trim().to_owned())
}
