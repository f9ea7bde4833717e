//! Which interpreter noarch python packages use: conda's `bin/pythonX.Y` (the
//! python record's major.minor, `get_python_short_path` in conda) for entry
//! point shebangs and for byte-compiling, and a warning naming the package and
//! the path when that interpreter is missing (issue 13).

use std::path::Path;
use std::process::Command;

use pkgr_test_support::{
    machine_python_version, python_interpreter_script, python_package_without_interpreter, Format,
    LocalChannel, Package,
};

use crate::common::{assert_ok, run_with_timeout, stderr, stdout, World, TIMEOUT};

/// The machine's python3 version and its `X.Y`, or None (the test then says
/// it was skipped: running entry points and compiling needs a python3).
fn machine_python() -> Option<(String, String)> {
    let Some(version) = machine_python_version() else {
        eprintln!("skipped: no python3 on this machine (entry points and .pyc need one)");
        return None;
    };
    let xy = version.split('.').take(2).collect::<Vec<_>>().join(".");
    Some((version, xy))
}

fn hello_package() -> Package {
    Package::new("hellopkg", "1.0")
        .noarch_python()
        .depends("python")
        .file("site-packages/hellopkg/__init__.py", "")
        .file(
            "site-packages/hellopkg/cli.py",
            "import sys\n\ndef main():\n    print('hello from', sys.argv[0].rsplit('/', 1)[-1])\n    return 3\n",
        )
        .entry_point("hello = hellopkg.cli:main")
}

/// Installs `python` and `hellopkg` into a new environment and returns it
/// with pkgr's stderr.
fn install(world: &World, python: &Package) -> (std::path::PathBuf, String) {
    let mut channel = LocalChannel::new(&world.path().join("channel"));
    channel.add(python, Format::Conda);
    channel.add(&hello_package(), Format::Conda);
    channel.write_repodata();
    let prefix = world.env("py");
    let out = world.create(&prefix, channel.root().to_str().unwrap(), &["hellopkg"]);
    assert_ok(&out);
    (prefix, stderr(&out))
}

/// `(path, path_type)` of every entry of hellopkg's conda-meta record.
fn recorded_paths(prefix: &Path) -> Vec<(String, String)> {
    let path = prefix.join("conda-meta").join("hellopkg-1.0-0.json");
    let record: serde_json::Value = serde_json::from_slice(&fs_err::read(&path).unwrap()).unwrap();
    let files: Vec<&str> = record["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let paths: Vec<(String, String)> = record["paths_data"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["_path"].as_str().unwrap().to_owned(),
                p["path_type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let listed: Vec<&str> = paths.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(files, listed, "files and paths_data agree");
    paths
}

#[test]
fn a_python_with_only_bin_python_x_y_runs_entry_points_and_compiles() {
    let Some((version, xy)) = machine_python() else {
        return;
    };
    let world = World::new();
    // Only bin/pythonX.Y: no bin/python, no bin/python3.
    let python = python_package_without_interpreter(&version).executable(
        &format!("bin/python{xy}"),
        python_interpreter_script(&version),
    );
    let (prefix, err) = install(&world, &python);
    assert!(!prefix.join("bin/python").exists());
    assert!(!err.contains("warning"), "{err}");

    let script = fs_err::read_to_string(prefix.join("bin/hello")).unwrap();
    let interpreter = prefix.join(format!("bin/python{xy}"));
    assert!(
        script.starts_with(&format!("#!{}\n", interpreter.display())),
        "the shebang names bin/python{xy}:\n{script}"
    );
    let out = run_with_timeout(Command::new(prefix.join("bin/hello")), TIMEOUT);
    assert_eq!(stdout(&out), "hello from hello\n", "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(3));

    let site_packages = format!("lib/python{xy}/site-packages");
    let tag = xy.replace('.', "");
    let pycs = [
        format!("{site_packages}/hellopkg/__pycache__/__init__.cpython-{tag}.pyc"),
        format!("{site_packages}/hellopkg/__pycache__/cli.cpython-{tag}.pyc"),
    ];
    let paths = recorded_paths(&prefix);
    for pyc in &pycs {
        assert!(prefix.join(pyc).is_file(), "{pyc} was compiled");
        assert!(
            paths.contains(&(pyc.clone(), "pyc_file".to_owned())),
            "{pyc} is recorded as a pyc_file: {paths:?}"
        );
    }
    assert!(
        paths.contains(&("bin/hello".to_owned(), "unix_python_entry_point".to_owned())),
        "{paths:?}"
    );
}

#[test]
fn a_python_without_an_interpreter_warns_and_installs() {
    let Some((version, xy)) = machine_python() else {
        return;
    };
    let world = World::new();
    let (prefix, err) = install(&world, &python_package_without_interpreter(&version));
    let interpreter = prefix.join(format!("bin/python{xy}"));

    // Not silent: a warning names the package and the interpreter it needs.
    let warning = err
        .lines()
        .find(|l| l.starts_with("warning:") && l.contains("hellopkg"))
        .unwrap_or_else(|| panic!("no warning about hellopkg:\n{err}"));
    assert!(
        warning.contains(&interpreter.display().to_string()),
        "the warning names {}: {warning}",
        interpreter.display()
    );

    // The install succeeds as conda's does: the package and its entry point
    // (pointing at where python will be) are there and recorded; no .pyc is.
    let script = fs_err::read_to_string(prefix.join("bin/hello")).unwrap();
    assert!(
        script.starts_with(&format!("#!{}\n", interpreter.display())),
        "{script}"
    );
    let paths = recorded_paths(&prefix);
    assert!(paths.iter().any(|(p, _)| p.ends_with("hellopkg/cli.py")));
    assert!(
        paths.contains(&("bin/hello".to_owned(), "unix_python_entry_point".to_owned())),
        "{paths:?}"
    );
    assert!(
        !paths.iter().any(|(_, t)| t == "pyc_file"),
        "nothing was compiled, so nothing is recorded: {paths:?}"
    );
}
