//! Install semantics of noarch python packages on generated packages:
//! relocation, entry points (which one wins, long prefixes, escaping
//! names), byte-compiled modules and their reuse through the cache.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use pkgr_test_support::{machine_python_version, python_package, Format, LocalChannel, Package};

use crate::common::{assert_ok, run_with_timeout, stderr, stdout, World, TIMEOUT};
use crate::environments::{assert_meta_matches_disk, env_files, read_record};

/// `lib/pythonX.Y/site-packages` for the machine's python3, or None (the test
/// then says it was skipped: these tests need a python3 to run entry points).
fn site_packages() -> Option<(String, String)> {
    let Some(version) = machine_python_version() else {
        eprintln!("skipped: no python3 on this machine");
        return None;
    };
    let mut parts = version.split('.');
    let xy = format!("{}.{}", parts.next().unwrap(), parts.next().unwrap());
    Some((version, format!("lib/python{xy}/site-packages")))
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
        .executable("python-scripts/hello-script", "#!/bin/sh\necho script\n")
        .entry_point("hello = hellopkg.cli:main")
}

#[test]
fn an_entry_point_two_packages_ship_is_the_one_of_the_later_in_link_order() {
    let Some((version, _)) = site_packages() else {
        return;
    };
    let world = World::new();
    let mut channel = LocalChannel::new(&world.path().join("channel"));
    channel.add(&python_package(&version), Format::Conda);
    // `later` depends on `earlier`: conda links it after, so its `hello` is
    // the one left, however the linking threads ran.
    for (name, depends) in [("earlier", "python"), ("later", "earlier")] {
        let mut package = Package::new(name, "1.0")
            .noarch_python()
            .depends("python")
            .file(&format!("site-packages/{name}mod/__init__.py"), "")
            .file(
                &format!("site-packages/{name}mod/cli.py"),
                "def main():\n    return 0\n",
            )
            .entry_point(&format!("hello = {name}mod.cli:main"));
        if depends != "python" {
            package = package.depends(depends);
        }
        channel.add(&package, Format::Conda);
    }
    channel.write_repodata();
    for round in 0..8 {
        let prefix = world.env(&format!("py{round}"));
        let out = world.create(&prefix, channel.root().to_str().unwrap(), &["later"]);
        assert_ok(&out);
        let script = fs_err::read_to_string(prefix.join("bin/hello")).unwrap();
        assert!(script.contains("latermod.cli"), "round {round}: {script}");
        assert!(
            stderr(&out).contains("bin/hello"),
            "the clobbering is said: {}",
            stderr(&out)
        );
    }
}

#[test]
fn noarch_python_is_relocated_with_entry_points_and_pyc() {
    let Some((version, site_packages)) = site_packages() else {
        return;
    };
    let world = World::new();
    let mut channel = LocalChannel::new(&world.path().join("channel"));
    channel.add(&python_package(&version), Format::Conda);
    channel.add(&hello_package(), Format::TarBz2);
    channel.write_repodata();
    let prefix = world.env("py");
    // python asked for too: it stays when hellopkg is removed below.
    assert_ok(&world.create(
        &prefix,
        channel.root().to_str().unwrap(),
        &["hellopkg", "python"],
    ));

    let cli = format!("{site_packages}/hellopkg/cli.py");
    assert!(prefix.join(&cli).is_file(), "site-packages/ relocated");
    assert!(!prefix.join("site-packages").exists());
    assert_eq!(
        fs_err::read_to_string(prefix.join("bin/hello-script")).unwrap(),
        "#!/bin/sh\necho script\n"
    );

    // The entry point runs the environment's python (bin/pythonX.Y, as
    // conda) on the package's function.
    let script = fs_err::read_to_string(prefix.join("bin/hello")).unwrap();
    let xy = version.split('.').take(2).collect::<Vec<_>>().join(".");
    assert!(
        script.starts_with(&format!("#!{}/bin/python{xy}\n", prefix.display())),
        "{script}"
    );
    let out = run_with_timeout(Command::new(prefix.join("bin/hello")), TIMEOUT);
    assert_eq!(stdout(&out), "hello from hello\n");
    assert_eq!(
        out.status.code(),
        Some(3),
        "the function's return is the exit code"
    );

    // conda-meta lists relocated paths, the entry point and the .pyc files.
    let record = read_record(&prefix, "hellopkg-1.0-0");
    let files: Vec<&str> = record["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let tag = version.split('.').take(2).collect::<String>();
    let pyc = format!("{site_packages}/hellopkg/__pycache__/cli.cpython-{tag}.pyc");
    for expected in [cli.as_str(), "bin/hello", "bin/hello-script", pyc.as_str()] {
        assert!(files.contains(&expected), "{expected} not in {files:?}");
    }
    assert!(prefix.join(&pyc).is_file(), "the .pyc was really compiled");
    let types: Vec<(&str, &str)> = record["paths_data"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["_path"].as_str().unwrap(),
                p["path_type"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        types.contains(&("bin/hello", "unix_python_entry_point")),
        "{types:?}"
    );
    assert!(types.contains(&(pyc.as_str(), "pyc_file")), "{types:?}");
    assert_meta_matches_disk(&prefix);

    // Removing it leaves nothing of it, .pyc and __pycache__ included.
    let before: BTreeSet<String> = env_files(&prefix);
    assert_ok(&world.run(&["remove", "-p", prefix.to_str().unwrap(), "hellopkg"]));
    let after = env_files(&prefix);
    let gone: Vec<&String> = before.difference(&after).collect();
    assert!(
        after
            .iter()
            .all(|f| !f.contains("hellopkg") && !f.contains("hello")),
        "{after:?}"
    );
    assert!(gone.iter().any(|f| f.ends_with(".pyc")), "{gone:?}");
    assert!(
        prefix.join(&site_packages).is_dir(),
        "python's own directory stays"
    );
    assert_meta_matches_disk(&prefix);
}

/// A module two packages ship is compiled from the one in place, and its
/// `.pyc` kept for neither package: another environment with only the
/// loser must not get bytecode of the winner's source.
#[test]
fn a_module_two_packages_ship_is_compiled_here_and_kept_for_neither() {
    let Some((version, site_packages)) = site_packages() else {
        return;
    };
    let world = World::new();
    let mut channel = LocalChannel::new(&world.path().join("channel"));
    channel.add(&python_package(&version), Format::Conda);
    for (name, answer) in [("loser", 1), ("winner", 2)] {
        let mut package = Package::new(name, "1.0")
            .noarch_python()
            .depends("python")
            .file(&format!("site-packages/{name}_own.py"), "X = 0\n")
            .file("site-packages/together.py", format!("ANSWER = {answer}\n"));
        if name == "winner" {
            package = package.depends("loser");
        }
        channel.add(&package, Format::Conda);
    }
    channel.write_repodata();
    let tag = version.split('.').take(2).collect::<String>();
    let both = world.env("both");
    assert_ok(&world.create(&both, channel.root().to_str().unwrap(), &["winner"]));
    let pyc = format!("{site_packages}/__pycache__/together.cpython-{tag}.pyc");
    assert!(both.join(&pyc).is_file(), "compiled in place");
    let kept: Vec<_> = walk_files(&world.cache().join("pyc"))
        .into_iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    assert!(
        !kept.iter().any(|p| p.contains("together.")),
        "kept for a package: {kept:?}"
    );
    assert!(
        !kept.iter().any(|p| p.contains("own.")),
        "a package with a clobbered module keeps nothing: {kept:?}"
    );
    // The loser alone compiles its own.
    let alone = world.env("alone");
    assert_ok(&world.create(&alone, channel.root().to_str().unwrap(), &["loser"]));
    let out = run_with_timeout(
        {
            let mut cmd = Command::new(alone.join(format!(
                "bin/python{}",
                version.split('.').take(2).collect::<Vec<_>>().join(".")
            )));
            cmd.args(["-c", "import together; print(together.ANSWER)"]);
            cmd
        },
        TIMEOUT,
    );
    assert_eq!(stdout(&out), "1\n");
}

/// A noarch python package's modules are byte-compiled once per python:
/// the next environment hardlinks the `.pyc` files kept in the cache, and
/// python finds them valid (running the package's code rewrites none).
#[test]
fn byte_compiled_modules_are_kept_in_the_cache_and_reused() {
    use std::os::unix::fs::MetadataExt;
    let Some((version, site_packages)) = site_packages() else {
        return;
    };
    let world = World::new();
    let mut channel = LocalChannel::new(&world.path().join("channel"));
    channel.add(&python_package(&version), Format::Conda);
    channel.add(&hello_package(), Format::TarBz2);
    channel.write_repodata();
    let tag = version.split('.').take(2).collect::<String>();
    let pyc = format!("{site_packages}/hellopkg/__pycache__/cli.cpython-{tag}.pyc");
    let first = world.env("first");
    assert_ok(&world.create(&first, channel.root().to_str().unwrap(), &["hellopkg"]));
    let kept: Vec<_> = walk_files(&world.cache().join("pyc"))
        .into_iter()
        .filter(|p| p.ends_with(format!("cli.cpython-{tag}.pyc")))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let kept = &kept[0];
    assert!(
        kept.to_string_lossy().contains(&format!("cpython-{tag}")),
        "{kept:?}"
    );
    let mode = fs_err::metadata(kept).unwrap().mode();
    assert_eq!(mode & 0o022, 0, "never group- or world-writable: {mode:o}");

    let second = world.env("second");
    assert_ok(&world.create(&second, channel.root().to_str().unwrap(), &["hellopkg"]));
    let reused = fs_err::metadata(second.join(&pyc)).unwrap();
    assert_eq!(
        reused.ino(),
        fs_err::metadata(kept).unwrap().ino(),
        "the second environment's .pyc is the cache's"
    );
    let record = read_record(&second, "hellopkg-1.0-0");
    assert!(
        record["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f.as_str() == Some(pyc.as_str())),
        "recorded as the package's"
    );
    // python takes it as valid: importing the module rewrites nothing.
    let out = run_with_timeout(Command::new(second.join("bin/hello")), TIMEOUT);
    assert_eq!(stdout(&out), "hello from hello\n");
    assert_eq!(
        fs_err::metadata(second.join(&pyc)).unwrap().ino(),
        reused.ino(),
        "python did not compile the module again"
    );
    assert_meta_matches_disk(&second);

    // A copy (--copy) keeps its modules' mtimes: the kept .pyc is valid
    // there too.
    let copied = world.env("copied");
    let channel_dir = channel.root().to_str().unwrap();
    let copied_dir = copied.to_str().unwrap();
    assert_ok(&world.run(&[
        "create",
        "--copy",
        "-p",
        copied_dir,
        "-c",
        channel_dir,
        "hellopkg",
    ]));
    let before = fs_err::metadata(copied.join(&pyc)).unwrap().ino();
    assert_ne!(
        before,
        fs_err::metadata(kept).unwrap().ino(),
        "--copy shares nothing"
    );
    assert_eq!(
        fs_err::read(copied.join(&pyc)).unwrap(),
        fs_err::read(kept).unwrap()
    );
    let out = run_with_timeout(Command::new(copied.join("bin/hello")), TIMEOUT);
    assert_eq!(stdout(&out), "hello from hello\n");
    assert_eq!(
        fs_err::metadata(copied.join(&pyc)).unwrap().ino(),
        before,
        "python took the kept .pyc as valid for the copied module"
    );

    // Removing the package from one environment leaves the cache's copy.
    assert_ok(&world.run(&["remove", "-p", second.to_str().unwrap(), "hellopkg"]));
    assert!(kept.is_file());
    assert!(first.join(&pyc).is_file());
}

fn walk_files(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs_err::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// conda's `generate_shebang_for_entry_point`: a `#!` line too long for the
/// kernel becomes a `/bin/sh` trampoline exec'ing the environment's python,
/// so the entry point runs without activation.
#[test]
fn entry_points_in_a_long_prefix_exec_python_through_sh() {
    let Some((version, _)) = site_packages() else {
        return;
    };
    let world = World::new();
    let mut channel = LocalChannel::new(&world.path().join("channel"));
    channel.add(&python_package(&version), Format::Conda);
    channel.add(&hello_package(), Format::Conda);
    channel.write_repodata();
    let prefix = world.path().join("envs").join("x".repeat(120));
    assert_ok(&world.create(&prefix, channel.root().to_str().unwrap(), &["hellopkg"]));
    let script = fs_err::read_to_string(prefix.join("bin/hello")).unwrap();
    let xy = version.split('.').take(2).collect::<Vec<_>>().join(".");
    let python = prefix.join(format!("bin/python{xy}"));
    assert!(
        script.starts_with(&format!(
            "#!/bin/sh\n'''exec' \"{}\" \"$0\" \"$@\" #'''\n",
            python.display()
        )),
        "{script}"
    );
    // Without the environment's bin/ on PATH it runs the environment's python.
    let out = run_with_timeout(Command::new(prefix.join("bin/hello")), TIMEOUT);
    assert_eq!(stdout(&out), "hello from hello\n", "{}", stderr(&out));
}

#[test]
fn noarch_python_without_python_is_a_clear_error() {
    let world = World::new();
    let mut channel = LocalChannel::new(&world.path().join("channel"));
    channel.add(&hello_package(), Format::Conda);
    channel.write_repodata();
    let prefix = world.env("nopy");
    let out = world.run(&[
        "create",
        "-p",
        prefix.to_str().unwrap(),
        "-c",
        channel.root().to_str().unwrap(),
        "--no-deps",
        "hellopkg",
    ]);
    snapshot_failure!(&world, "noarch_python_without_python", out);
    assert!(!prefix.exists());
}

#[test]
fn escaping_entry_points_are_rejected() {
    let Some((version, _)) = site_packages() else {
        return;
    };
    let world = World::new();
    let mut channel = LocalChannel::new(&world.path().join("channel"));
    channel.add(&python_package(&version), Format::Conda);
    channel.add(
        &Package::new("evil", "1.0")
            .noarch_python()
            .depends("python")
            .file("site-packages/evil.py", "")
            .entry_point("../../../escaped = evil:main"),
        Format::Conda,
    );
    channel.write_repodata();
    let prefix = world.env("evil");
    // Without the download lines: python and evil finish in either order.
    snapshot_messages!(
        &world,
        "entry_point_escaping",
        world.create(&prefix, channel.root().to_str().unwrap(), &["evil"])
    );
    assert!(!world.path().join("envs/escaped").exists() && !world.path().join("escaped").exists());
}
