use std::sync::atomic::{AtomicUsize, Ordering};

use rattler_conda_types::package::PathsJson;

use super::journal::*;
use super::scheduler::*;
use super::*;
use crate::meta::read_prefix_records;

fn repodata_record(name: &str) -> RepoDataRecord {
    crate::test_record(name)
}

/// An installed-package record claiming `files`, written to conda-meta.
fn install_record(prefix: &Path, name: &str, files: &[&str]) -> PrefixRecord {
    let entries = files
        .iter()
        .map(|f| {
            serde_json::from_value(serde_json::json!({"_path": f, "path_type": "hardlink"}))
                .unwrap()
        })
        .collect();
    let record = PrefixRecord::from_repodata_record(repodata_record(name), entries);
    crate::meta::write_prefix_record(prefix, &record).unwrap();
    record
}

fn touch(prefix: &Path, path: &str) {
    let full = prefix.join(path);
    fs_err::create_dir_all(full.parent().unwrap()).unwrap();
    fs_err::write(full, path).unwrap();
}

fn journals(prefix: &Path) -> Vec<PathBuf> {
    fs_err::read_dir(prefix.join("conda-meta"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == JOURNAL_SUFFIX))
        .collect()
}

/// An extracted package with one file per `(path, contents)`.
fn extracted_package(dir: &Path, name: &str, files: &[(&str, &str)]) {
    let paths: Vec<serde_json::Value> = files
        .iter()
        .map(|(path, contents)| {
            touch(dir, path);
            fs_err::write(dir.join(path), contents).unwrap();
            serde_json::json!({"_path": path, "path_type": "hardlink"})
        })
        .collect();
    fs_err::create_dir_all(dir.join("info")).unwrap();
    let index = serde_json::json!({
        "name": name, "version": "1.0", "build": "0", "build_number": 0, "subdir": "linux-64"
    });
    fs_err::write(dir.join("info/index.json"), index.to_string()).unwrap();
    let paths = serde_json::json!({"paths_version": 1, "paths": paths});
    fs_err::write(dir.join("info/paths.json"), paths.to_string()).unwrap();
}

#[test]
fn recover_without_journals_changes_nothing() {
    let prefix = tempfile::tempdir().unwrap();
    let p = prefix.path();
    // No conda-meta at all: a new environment.
    assert!(recover(p).unwrap().is_empty());
    touch(p, "bin/unclaimed");
    install_record(p, "foo", &["bin/foo"]);
    assert!(recover(p).unwrap().is_empty());
    assert!(p.join("bin/unclaimed").is_file());
}

#[test]
fn recover_removes_journaled_paths_no_record_claims() {
    let prefix = tempfile::tempdir().unwrap();
    let p = prefix.path();
    install_record(p, "bar", &["lib/shared.so", "bin/bar"]);
    for path in ["bin/bar", "bin/foo", "lib/shared.so", "lib/foo/mod.txt"] {
        touch(p, path);
    }
    // A kill while `foo` was being linked: its files are (partly) there,
    // its record is not.
    let journal = write_journal(
        p,
        &repodata_record("foo"),
        &[
            "bin/foo",
            "lib/shared.so",
            "lib/foo/mod.txt",
            "lib/foo/never-written",
        ]
        .map(PathBuf::from),
    )
    .unwrap();
    assert_eq!(journal, p.join("conda-meta").join("foo-1.0-0.pkgr-partial"));

    assert_eq!(recover(p).unwrap(), vec!["foo-1.0-0.conda".to_owned()]);
    assert!(!p.join("bin/foo").exists());
    assert!(!p.join("lib/foo").exists());
    assert!(p.join("lib/shared.so").is_file(), "claimed by bar's record");
    assert!(p.join("bin/bar").is_file());
    assert!(journals(p).is_empty());
    assert!(p.join("conda-meta/bar-1.0-0.json").is_file());
    // Done once: a second recovery finds nothing.
    assert!(recover(p).unwrap().is_empty());
}

#[test]
fn recover_keeps_the_files_of_a_package_whose_record_was_written() {
    // A kill after the record was written but before the journal was
    // removed: the package is installed, its files stay.
    let prefix = tempfile::tempdir().unwrap();
    let p = prefix.path();
    install_record(p, "foo", &["bin/foo"]);
    touch(p, "bin/foo");
    write_journal(p, &repodata_record("foo"), &[PathBuf::from("bin/foo")]).unwrap();
    assert_eq!(recover(p).unwrap(), vec!["foo-1.0-0.conda".to_owned()]);
    assert!(p.join("bin/foo").is_file());
    assert!(journals(p).is_empty());
}

#[test]
fn recover_drops_an_unreadable_journal_and_removes_nothing() {
    let prefix = tempfile::tempdir().unwrap();
    let p = prefix.path();
    touch(p, "bin/foo");
    touch(p, "conda-meta/foo-1.0-0.pkgr-partial");
    fs_err::write(
        p.join("conda-meta/foo-1.0-0.pkgr-partial"),
        b"{\"package\": \"fo",
    )
    .unwrap();
    assert!(recover(p).unwrap().is_empty());
    assert!(journals(p).is_empty());
    assert!(p.join("bin/foo").is_file());
}

#[test]
fn recover_never_follows_a_journal_out_of_the_prefix() {
    let root = tempfile::tempdir().unwrap();
    touch(root.path(), "outside.txt");
    let p = root.path().join("env");
    touch(&p, "conda-meta/x");
    let journal = Journal {
        package: "evil-1.0-0.conda".to_owned(),
        paths: vec![
            PathBuf::from("../outside.txt"),
            root.path().join("outside.txt"),
        ],
    };
    fs_err::write(
        p.join("conda-meta/evil-1.0-0.pkgr-partial"),
        serde_json::to_vec(&journal).unwrap(),
    )
    .unwrap();
    assert_eq!(recover(&p).unwrap(), vec!["evil-1.0-0.conda".to_owned()]);
    assert!(root.path().join("outside.txt").is_file());
}

#[test]
fn execute_links_then_unlinks_and_leaves_no_journal() {
    let root = tempfile::tempdir().unwrap();
    let package_dir = root.path().join("pkgs/foo-1.0-0");
    extracted_package(&package_dir, "foo", &[("bin/foo", "#!/bin/sh\n")]);
    let prefix = root.path().join("env");
    fs_err::create_dir_all(prefix.join("conda-meta")).unwrap();
    let install = Transaction {
        link: vec![LinkRequest {
            record: repodata_record("foo"),
            package_dir,
            requested_spec: Some("foo".to_owned()),
            checked: None,
        }],
        ..Transaction::default()
    };
    let linked = std::cell::RefCell::new(Vec::new());
    install
        .execute(&prefix, &[], &|event| {
            if let TransactionEvent::Linked(r) = event {
                linked.borrow_mut().push(r.identifier.to_string());
            }
        })
        .unwrap();
    assert_eq!(*linked.borrow(), ["foo-1.0-0.conda"]);
    assert!(prefix.join("bin/foo").is_file());
    assert!(journals(&prefix).is_empty());
    let installed = read_prefix_records(&prefix).unwrap();
    assert_eq!(installed.len(), 1);

    let remove = Transaction {
        unlink: installed.clone(),
        ..Transaction::default()
    };
    remove.execute(&prefix, &installed, &|_| {}).unwrap();
    assert!(!prefix.join("bin").exists());
    assert!(read_prefix_records(&prefix).unwrap().is_empty());
    assert!(journals(&prefix).is_empty());
}

#[test]
fn execute_rolls_back_a_package_whose_post_link_script_fails() {
    let root = tempfile::tempdir().unwrap();
    let package_dir = root.path().join("pkgs/foo-1.0-0");
    extracted_package(
        &package_dir,
        "foo",
        &[
            ("bin/foo", "tool"),
            ("bin/.foo-post-link.sh", "echo broken >&2\nexit 1\n"),
        ],
    );
    let prefix = root.path().join("env");
    fs_err::create_dir_all(prefix.join("conda-meta")).unwrap();
    let install = Transaction {
        link: vec![LinkRequest {
            record: repodata_record("foo"),
            package_dir,
            requested_spec: None,
            checked: None,
        }],
        ..Transaction::default()
    };
    let err = install.execute(&prefix, &[], &|_| {}).unwrap_err();
    assert!(
        matches!(&err, PrefixError::LinkScript { detail, .. } if detail.contains("broken")),
        "{err:?}"
    );
    assert!(!prefix.join("bin").exists(), "rolled back");
    assert!(read_prefix_records(&prefix).unwrap().is_empty());
    assert!(journals(&prefix).is_empty());
}
#[test]
fn a_path_two_packages_spell_differently_is_one_path() {
    let root = tempfile::tempdir().unwrap();
    let a_dir = root.path().join("pkgs/a-1.0-0");
    extracted_package(&a_dir, "a", &[("share/x", "a")]);
    let b_dir = root.path().join("pkgs/b-1.0-0");
    extracted_package(
        &b_dir,
        "b",
        &[("share/./x", "b"), ("bin/.b-post-link.sh", "exit 1\n")],
    );
    let mut b = repodata_record("b");
    b.package_record.depends = vec![String::from("a")];
    let prefix = root.path().join("env");
    fs_err::create_dir_all(prefix.join("conda-meta")).unwrap();
    let clobbered = Mutex::new(Vec::new());
    let install = Transaction {
        link: vec![
            LinkRequest {
                record: repodata_record("a"),
                package_dir: a_dir,
                requested_spec: None,
                checked: None,
            },
            LinkRequest {
                record: b,
                package_dir: b_dir,
                requested_spec: None,
                checked: None,
            },
        ],
        jobs: 2,
        ..Transaction::default()
    };
    let err = install
        .execute(&prefix, &[], &|event| {
            if let TransactionEvent::Clobbered { path, .. } = event {
                clobbered.lock().unwrap().push(path.to_path_buf());
            }
        })
        .unwrap_err();
    assert!(matches!(err, PrefixError::LinkScript { .. }), "{err:?}");
    let recorded: Vec<String> = read_prefix_records(&prefix)
        .unwrap()
        .iter()
        .map(|r| {
            r.repodata_record
                .package_record
                .name
                .as_normalized()
                .to_owned()
        })
        .collect();
    assert_eq!(recorded, ["a"]);
    assert!(
        prefix.join("share/x").is_file(),
        "b's rollback removed the file recorded a ships"
    );
    // b failed before it was recorded: nothing was clobbered.
    assert!(clobbered.into_inner().unwrap().is_empty());
}

#[test]
fn a_failing_pre_unlink_script_is_a_warning_and_the_package_goes() {
    let root = tempfile::tempdir().unwrap();
    let package_dir = root.path().join("pkgs/foo-1.0-0");
    extracted_package(
        &package_dir,
        "foo",
        &[
            ("bin/foo", "tool"),
            (
                "bin/.foo-pre-unlink.sh",
                "echo cannot-clean-up >&2\nexit 4\n",
            ),
        ],
    );
    let prefix = root.path().join("env");
    fs_err::create_dir_all(prefix.join("conda-meta")).unwrap();
    let install = Transaction {
        link: vec![LinkRequest {
            record: repodata_record("foo"),
            package_dir,
            requested_spec: None,
            checked: None,
        }],
        ..Transaction::default()
    };
    install.execute(&prefix, &[], &|_| {}).unwrap();
    let installed = read_prefix_records(&prefix).unwrap();
    let remove = Transaction {
        unlink: installed.clone(),
        ..Transaction::default()
    };
    let warnings = std::cell::RefCell::new(Vec::new());
    remove
        .execute(&prefix, &installed, &|event| {
            if let TransactionEvent::Warning(text) = event {
                warnings.borrow_mut().push(text.to_owned());
            }
        })
        .unwrap();
    let warnings = warnings.into_inner();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("pre-unlink") && warnings[0].contains("cannot-clean-up"),
        "{warnings:?}"
    );
    assert!(!prefix.join("bin").exists(), "removed anyway");
    assert!(read_prefix_records(&prefix).unwrap().is_empty());
}

/// `count` packages `pkg0..` with a few files each, one `share/same`
/// shipped by all of them (with different contents).
fn many_packages(root: &Path, count: usize) -> Vec<LinkRequest> {
    (0..count)
        .map(|i| {
            let name = format!("pkg{i}");
            let dir = root.join(format!("pkgs/{name}-1.0-0"));
            let own: Vec<(String, String)> = (0..20)
                .map(|f| {
                    (
                        format!("lib/{name}/sub{}/f{f}", f % 3),
                        format!("{name} {f}"),
                    )
                })
                .chain([(String::from("share/same"), name.clone())])
                .collect();
            let files: Vec<(&str, &str)> =
                own.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
            extracted_package(&dir, &name, &files);
            let paths = PathsJson::from_package_directory_with_deprecated_fallback(&dir).unwrap();
            LinkRequest {
                record: repodata_record(&name),
                package_dir: dir,
                requested_spec: None,
                checked: Some(CheckedFiles {
                    paths: Arc::new(paths),
                    symlinks: Arc::default(),
                }),
            }
        })
        .collect()
}

#[test]
fn packages_link_concurrently_and_a_shared_path_goes_to_the_last() {
    let root = tempfile::tempdir().unwrap();
    let prefix = root.path().join("env");
    fs_err::create_dir_all(prefix.join("conda-meta")).unwrap();
    let install = Transaction {
        link: many_packages(root.path(), 8),
        jobs: 3,
        ..Transaction::default()
    };
    let linked = std::cell::RefCell::new(Vec::new());
    let clobbered = std::cell::RefCell::new(Vec::new());
    install
        .execute(&prefix, &[], &|event| match event {
            TransactionEvent::Linked(r) => linked
                .borrow_mut()
                .push(r.package_record.name.as_normalized().to_owned()),
            TransactionEvent::Clobbered { winner, .. } => {
                clobbered.borrow_mut().push(winner.to_owned());
            }
            _ => {}
        })
        .unwrap();
    let linked = linked.into_inner();
    assert_eq!(linked.len(), 8);
    for i in 0..8 {
        for f in 0..20 {
            let path = prefix.join(format!("lib/pkg{i}/sub{}/f{f}", f % 3));
            assert_eq!(fs_err::read_to_string(path).unwrap(), format!("pkg{i} {f}"));
        }
    }
    // The last linked wins, and each later one was said to win.
    let last = linked.last().unwrap();
    assert_eq!(
        &fs_err::read_to_string(prefix.join("share/same")).unwrap(),
        last
    );
    assert_eq!(clobbered.into_inner(), linked[1..].to_vec());
    assert_eq!(read_prefix_records(&prefix).unwrap().len(), 8);
    assert!(journals(&prefix).is_empty());
}

#[test]
fn a_package_failing_beside_others_rolls_every_unrecorded_one_back() {
    let root = tempfile::tempdir().unwrap();
    let prefix = root.path().join("env");
    fs_err::create_dir_all(prefix.join("conda-meta")).unwrap();
    let mut link = many_packages(root.path(), 8);
    // pkg5 is damaged after it was checked: a file is gone.
    fs_err::remove_file(link[5].package_dir.join("lib/pkg5/sub1/f7")).unwrap();
    // Distinct paths for all, so they link in parallel.
    for request in &mut link {
        let paths = request.package_dir.join("info/paths.json");
        let text = fs_err::read_to_string(&paths).unwrap();
        let name = request
            .record
            .package_record
            .name
            .as_normalized()
            .to_owned();
        fs_err::write(&paths, text.replace("share/same", &format!("share/{name}"))).unwrap();
        fs_err::rename(
            request.package_dir.join("share/same"),
            request.package_dir.join(format!("share/{name}")),
        )
        .unwrap();
        // As the cache would have checked it.
        request.checked = Some(CheckedFiles {
            paths: Arc::new(
                PathsJson::from_package_directory_with_deprecated_fallback(&request.package_dir)
                    .unwrap(),
            ),
            symlinks: Arc::default(),
        });
    }
    let install = Transaction {
        link,
        jobs: 3,
        ..Transaction::default()
    };
    let err = install.execute(&prefix, &[], &|_| {}).unwrap_err();
    assert!(err.to_string().contains("f7"), "{err}");
    assert!(read_prefix_records(&prefix).unwrap().is_empty());
    assert!(journals(&prefix).is_empty());
    let left: Vec<_> = walk(&prefix)
        .into_iter()
        .filter(|p| !p.starts_with("conda-meta"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn packages_link_as_they_arrive_under_permits_and_roll_back_or_record() {
    for roll_back in [false, true] {
        let root = tempfile::tempdir().unwrap();
        let prefix = root.path().join("env");
        fs_err::create_dir_all(prefix.join("conda-meta")).unwrap();
        let requests = many_packages(root.path(), 6);
        let expected: Vec<RepoDataRecord> = requests.iter().map(|r| r.record.clone()).collect();
        let transaction = Transaction {
            jobs: 2,
            ..Transaction::default()
        };
        let (arrivals, receiver) = std::sync::mpsc::channel();
        let feeder = std::thread::spawn(move || {
            for request in requests {
                std::thread::sleep(std::time::Duration::from_millis(20));
                arrivals.send(request).unwrap();
            }
        });
        let holding = std::sync::Arc::new(AtomicUsize::new(0));
        let most = std::sync::Arc::new(AtomicUsize::new(0));
        struct Held(std::sync::Arc<AtomicUsize>);
        impl Drop for Held {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let permit = || -> Box<dyn Any> {
            let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            Box::new(Held(holding.clone()))
        };
        let staged = transaction
            .link_as_fetched(
                &prefix,
                &expected,
                &Mutex::new(receiver),
                &permit,
                &AtomicBool::new(false),
            )
            .unwrap();
        feeder.join().unwrap();
        assert!(most.load(Ordering::SeqCst) <= 2);
        assert_eq!(holding.load(Ordering::SeqCst), 0, "every permit given back");
        // Linked, not recorded, under journals.
        assert!(prefix.join("lib/pkg3/sub0/f0").is_file());
        assert!(read_prefix_records(&prefix).unwrap().is_empty());
        assert_eq!(journals(&prefix).len(), 6);
        if roll_back {
            staged.roll_back(&[]).unwrap();
            assert!(journals(&prefix).is_empty());
            let left: Vec<_> = walk(&prefix)
                .into_iter()
                .filter(|p| !p.starts_with("conda-meta"))
                .collect();
            assert!(left.is_empty(), "left behind: {left:?}");
        } else {
            let linked = std::cell::RefCell::new(Vec::new());
            staged
                .record(&[], &|event| {
                    if let TransactionEvent::Linked(r) = event {
                        linked
                            .borrow_mut()
                            .push(r.package_record.name.as_normalized().to_owned());
                    }
                })
                .unwrap();
            let linked = linked.into_inner();
            assert_eq!(read_prefix_records(&prefix).unwrap().len(), 6);
            assert!(journals(&prefix).is_empty());
            // Whatever order they arrived and linked in, the shared path
            // holds the file of the last one in link order.
            assert_eq!(
                &fs_err::read_to_string(prefix.join("share/same")).unwrap(),
                linked.last().unwrap()
            );
        }
    }
}

#[test]
fn a_dependent_arriving_first_waits_for_the_symlinked_directory_it_uses() {
    let root = tempfile::tempdir().unwrap();
    let prefix = root.path().join("env");
    fs_err::create_dir_all(prefix.join("conda-meta")).unwrap();
    // base ships lib/ and `lib64 -> lib`; app (which depends on it) ships
    // lib64/app.so.
    let base_dir = root.path().join("pkgs/base-1.0-0");
    extracted_package(&base_dir, "base", &[("lib/base.so", "base")]);
    fs_err::os::unix::fs::symlink("lib", base_dir.join("lib64")).unwrap();
    let paths = serde_json::json!({"paths_version": 1, "paths": [
        {"_path": "lib/base.so", "path_type": "hardlink"},
        {"_path": "lib64", "path_type": "softlink"},
    ]});
    fs_err::write(base_dir.join("info/paths.json"), paths.to_string()).unwrap();
    let app_dir = root.path().join("pkgs/app-1.0-0");
    extracted_package(&app_dir, "app", &[("lib64/app.so", "app")]);
    let base = repodata_record("base");
    let mut app = repodata_record("app");
    app.package_record.depends = vec![String::from("base >=1")];
    let expected = vec![base.clone(), app.clone()];
    let transaction = Transaction {
        jobs: 2,
        ..Transaction::default()
    };
    let (arrivals, receiver) = std::sync::mpsc::channel();
    // The dependent arrives first (its download finished first).
    arrivals
        .send(LinkRequest {
            record: app,
            package_dir: app_dir,
            requested_spec: None,
            checked: None,
        })
        .unwrap();
    let feeder = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        arrivals
            .send(LinkRequest {
                record: base,
                package_dir: base_dir,
                requested_spec: None,
                checked: None,
            })
            .unwrap();
    });
    let staged = transaction
        .link_as_fetched(
            &prefix,
            &expected,
            &Mutex::new(receiver),
            &|| Box::new(()),
            &AtomicBool::new(false),
        )
        .unwrap();
    feeder.join().unwrap();
    staged.record(&[], &|_| {}).unwrap();
    assert!(fs_err::symlink_metadata(prefix.join("lib64"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs_err::read_to_string(prefix.join("lib/app.so")).unwrap(),
        "app"
    );
    assert_eq!(read_prefix_records(&prefix).unwrap().len(), 2);
}

#[test]
fn a_dependent_waits_for_its_dependency_to_arrive_and_only_a_symlinked_directory_to_be_linked() {
    let root = tempfile::tempdir().unwrap();
    let plan = |name: &str, files: &[(&str, &str)], depends: &[&str]| {
        let dir = root.path().join(format!("pkgs/{name}-1.0-0"));
        extracted_package(&dir, name, files);
        let mut record = repodata_record(name);
        record.package_record.depends = depends.iter().map(|d| (*d).to_owned()).collect();
        Box::new(PackagePlan::new(&dir, &record, None, None).unwrap())
    };
    let ready = |queue: &LinkQueue| -> Vec<String> {
        queue
            .lock()
            .ready
            .iter()
            .map(|p| p.record().package_record.name.as_normalized().to_owned())
            .collect()
    };
    // Only base is ready; once it is linked, app is.
    let app_waits_until_base_is_linked = |queue: &LinkQueue| {
        assert_eq!(ready(queue), ["base"]);
        let next = queue.next().unwrap();
        assert_eq!(next.record().package_record.name.as_normalized(), "base");
        queue.linked(String::from("base"));
        assert_eq!(ready(queue), ["app"]);
    };
    let base = plan("base", &[("lib/base.so", "base")], &[]);
    let app = plan("app", &[("lib64/app.so", "app")], &["base >=1"]);
    let order = LinkOrder::new(
        [base.record(), app.record()]
            .map(|r| &r.package_record)
            .into_iter(),
    );
    assert_eq!(order.follows(&app), vec![String::from("base")]);
    assert!(order.follows(&base).is_empty());

    // base ships no symlinked directory: app goes once base arrived,
    // before base is linked.
    let queue = LinkQueue::default();
    queue.arrive(app, vec![String::from("base")], Vec::new());
    assert!(ready(&queue).is_empty(), "base's files are not known yet");
    queue.arrive(base, Vec::new(), Vec::new());
    assert_eq!(ready(&queue), ["app", "base"]);

    // base ships `lib64` as a symlink, app files below it: app waits
    // until base is linked.
    let base = plan("base", &[("lib/base.so", "base")], &[]);
    let app = plan("app", &[("lib64/app.so", "app")], &["base >=1"]);
    let queue = LinkQueue::default();
    queue.arrive(app, vec![String::from("base")], Vec::new());
    queue.arrive(base, Vec::new(), vec![PathBuf::from("lib64")]);
    app_waits_until_base_is_linked(&queue);

    // app ships `lib64` as a symlink itself: it goes once base, which
    // may have files below it, is linked.
    let base = plan("base", &[("lib64/base.so", "base")], &[]);
    let app = plan("app", &[("lib/app.so", "app")], &["base >=1"]);
    let queue = LinkQueue::default();
    queue.arrive(base, Vec::new(), Vec::new());
    queue.arrive(
        app,
        vec![String::from("base")],
        vec![PathBuf::from("lib64")],
    );
    app_waits_until_base_is_linked(&queue);

    // A symlink app puts nothing below holds nothing.
    let base = plan("base", &[("lib/base.so", "base")], &[]);
    let app = plan("app", &[("lib64/app.so", "app")], &["base >=1"]);
    let queue = LinkQueue::default();
    queue.arrive(app, vec![String::from("base")], Vec::new());
    queue.arrive(base, Vec::new(), vec![PathBuf::from("lib32")]);
    assert_eq!(ready(&queue), ["app", "base"]);
}

#[test]
fn symlinks_that_may_stand_for_directories_are_told_from_links_to_files() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("pkgs/base-1.0-0");
    extracted_package(&dir, "base", &[("lib/libz.so.1", "z")]);
    fs_err::os::unix::fs::symlink("lib", dir.join("lib64")).unwrap();
    fs_err::os::unix::fs::symlink("libz.so.1", dir.join("lib/libz.so")).unwrap();
    fs_err::os::unix::fs::symlink("../elsewhere", dir.join("lib/other")).unwrap();
    let paths = serde_json::json!({"paths_version": 1, "paths": [
        {"_path": "lib/libz.so.1", "path_type": "hardlink"},
        {"_path": "lib/libz.so", "path_type": "softlink"},
        {"_path": "lib/other", "path_type": "softlink"},
        {"_path": "lib64", "path_type": "softlink"},
    ]});
    fs_err::write(dir.join("info/paths.json"), paths.to_string()).unwrap();
    let plan = PackagePlan::new(&dir, &repodata_record("base"), None, None).unwrap();
    let mut dirs = plan.symlinked_dirs();
    dirs.sort();
    // A link to a file is not one; a link to nothing in the package may be.
    assert_eq!(dirs, [PathBuf::from("lib/other"), PathBuf::from("lib64")]);
    assert!(plan.has_path_below(Path::new("lib")));
    assert!(!plan.has_path_below(Path::new("lib64")));
    assert!(!plan.has_path_below(Path::new("lib/libz.so.1")));
}

/// Every file below `root`, relative.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs_err::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    out
}
