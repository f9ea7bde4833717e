//! The channels a run installs from ([`Scenario`]), and the one made of
//! the real packages of `$PKGR_DATASETS` (with stubs for what it lacks).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::measure::isolate;
use crate::bench::run_measured;
use crate::{
    archive_entries, current_subdir, python_package, ArchiveEntry, ChannelServer, Format,
    LocalChannel, Package,
};

/// A channel to install from, and what is known about its packages.
#[derive(Debug)]
pub(super) struct Scenario {
    pub(super) name: String,
    pub(super) channel: PathBuf,
    /// What `pkgr create` is asked for.
    pub(super) specs: Vec<String>,
    /// Archive stem (`name-version-build`) -> its archive (the `.conda` when
    /// both formats exist) and payload entries (files and symlinks).
    pub(super) packages: BTreeMap<String, ChannelPackage>,
    /// Stems the environment must end up with (all, for the generated channel).
    pub(super) expect_all: bool,
    /// `site-packages`-relative `.py` files of the noarch python packages.
    pub(super) noarch_modules: Vec<String>,
    pub(super) notes: Vec<String>,
}

#[derive(Debug, Clone)]
pub(super) struct ChannelPackage {
    pub(super) subdir: String,
    pub(super) file_name: String,
    pub(super) archive_bytes: u64,
    pub(super) files: usize,
    pub(super) unpacked_bytes: u64,
    pub(super) format: Format,
    pub(super) noarch_python: bool,
}

impl Scenario {
    pub(super) fn describe(&self) -> String {
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

/// The real packages of `$PKGR_DATASETS/packages` for this platform and
/// noarch, with stub packages (one file each; python a real-layout python
/// package) for the dependencies the data set does not have. Packages that
/// still cannot be installed are left out and said so.
pub(super) fn datasets_scenario(
    pkgr: &Path,
    datasets: &Path,
    root: &Path,
) -> Result<Scenario, String> {
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
pub(super) fn lower_bound(constraint: &str) -> Option<u64> {
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

pub(super) fn version_string(bound: u64) -> String {
    format!(
        "{}.{}.{}",
        bound / 100_000_000,
        bound / 10_000 % 10_000,
        bound % 10_000
    )
}
