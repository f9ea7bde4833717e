//! What a change does to an environment: the difference between what is
//! installed and what the solver chose, and the small record helpers the
//! steps share.

use std::collections::HashSet;

use pkgr_prefix::meta::spec_package_name;
use pkgr_prefix::PythonInfo;
use rattler_conda_types::{PrefixRecord, RepoDataRecord};
use url::Url;

/// What a change does to an environment.
#[derive(Debug, Default, Clone)]
pub struct Plan {
    /// Installed packages that go.
    pub unlink: Vec<PrefixRecord>,
    /// Packages that come.
    pub link: Vec<RepoDataRecord>,
}

impl Plan {
    /// The change from `installed` to `solution`. `noarch: python` packages
    /// that stay are relinked when python's minor version changes (their
    /// files live in `lib/pythonX.Y`).
    pub fn between(installed: &[PrefixRecord], solution: &[RepoDataRecord]) -> Self {
        let old_python = python_of(installed.iter().map(|r| &r.repodata_record));
        let new_python = python_of(solution.iter());
        let python_moved = old_python.is_some()
            && new_python.is_some()
            && old_python.map(|p| p.version) != new_python.map(|p| p.version);
        let relink =
            |record: &RepoDataRecord| python_moved && record.package_record.noarch.is_python();
        // Compared in the form records keep: conda-meta holds URLs without
        // credentials, the channels' records hold them with.
        let key = |url: &Url| pkgr_redact::url_for_record(url);
        let kept: HashSet<String> = solution.iter().map(|r| key(&r.url)).collect();
        let had: HashSet<String> = installed
            .iter()
            .map(|r| key(&r.repodata_record.url))
            .collect();
        Self {
            unlink: installed
                .iter()
                .filter(|r| {
                    !kept.contains(&key(&r.repodata_record.url)) || relink(&r.repodata_record)
                })
                .cloned()
                .collect(),
            link: solution
                .iter()
                .filter(|r| !had.contains(&key(&r.url)) || relink(r))
                .cloned()
                .collect(),
        }
    }

    /// Whether the environment stays as it is.
    pub fn is_empty(&self) -> bool {
        self.unlink.is_empty() && self.link.is_empty()
    }
}

/// The python of a set of records, if it has one.
pub fn python_of<'a>(records: impl Iterator<Item = &'a RepoDataRecord>) -> Option<PythonInfo> {
    records
        .map(|r| &r.package_record)
        .find(|p| p.name.as_normalized() == "python")
        .and_then(PythonInfo::from_record)
}

/// The spec an installed package was asked for with, if any (conda writes
/// the string `None` for dependencies).
pub fn requested_spec_of(record: &PrefixRecord) -> Option<String> {
    #[allow(deprecated)]
    let single = record.requested_spec.clone();
    single
        .into_iter()
        .chain(record.requested_specs.iter().cloned())
        .find(|s| !s.is_empty() && s != "None")
}

/// Whether the user's spec text is for package `name` (as
/// [`spec_package_name`] reads it).
pub fn spec_is_for(spec: &str, name: &str) -> bool {
    spec_package_name(spec).is_some_and(|named| named == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record of `name-version-0` from `channel`, `noarch: python` when asked.
    fn record(name: &str, version: &str, channel: &str, noarch_python: bool) -> RepoDataRecord {
        let mut json = serde_json::json!({
            "name": name,
            "version": version,
            "build": "0",
            "build_number": 0,
            "subdir": if noarch_python { "noarch" } else { "linux-64" },
            "fn": format!("{name}-{version}-0.conda"),
            "url": format!("{channel}/{}/{name}-{version}-0.conda",
                if noarch_python { "noarch" } else { "linux-64" }),
            "channel": channel,
        });
        if noarch_python {
            json["noarch"] = serde_json::json!("python");
        }
        serde_json::from_value(json).unwrap()
    }

    fn installed(records: &[RepoDataRecord]) -> Vec<PrefixRecord> {
        records
            .iter()
            .map(|r| PrefixRecord::from_repodata_record(r.clone(), Vec::new()))
            .collect()
    }

    fn names(records: impl IntoIterator<Item = RepoDataRecord>) -> Vec<String> {
        let mut names: Vec<String> = records
            .into_iter()
            .map(|r| r.identifier.to_string())
            .collect();
        names.sort();
        names
    }

    const CHAN: &str = "https://example.com/chan";

    #[test]
    fn a_new_environment_links_everything() {
        let solution = [record("a", "1", CHAN, false), record("b", "2", CHAN, false)];
        let plan = Plan::between(&[], &solution);
        assert!(plan.unlink.is_empty());
        assert_eq!(names(plan.link), ["a-1-0.conda", "b-2-0.conda"]);
    }

    #[test]
    fn what_stays_is_not_touched_and_an_upgrade_is_unlink_plus_link() {
        let old = installed(&[record("a", "1", CHAN, false), record("b", "1", CHAN, false)]);
        let solution = [record("a", "1", CHAN, false), record("b", "2", CHAN, false)];
        let plan = Plan::between(&old, &solution);
        assert_eq!(
            names(plan.unlink.into_iter().map(|r| r.repodata_record)),
            ["b-1-0.conda"]
        );
        assert_eq!(names(plan.link), ["b-2-0.conda"]);

        let same = Plan::between(
            &old,
            &[record("a", "1", CHAN, false), record("b", "1", CHAN, false)],
        );
        assert!(same.is_empty());
    }

    #[test]
    fn removing_a_package_unlinks_it_only() {
        let old = installed(&[record("a", "1", CHAN, false), record("b", "1", CHAN, false)]);
        let plan = Plan::between(&old, &[record("a", "1", CHAN, false)]);
        assert_eq!(
            names(plan.unlink.into_iter().map(|r| r.repodata_record)),
            ["b-1-0.conda"]
        );
        assert!(plan.link.is_empty());
    }

    #[test]
    fn credentials_in_the_channel_url_do_not_make_a_package_new() {
        // conda-meta keeps URLs without credentials; the solver's records
        // carry them.
        let kept = installed(&[record(
            "a",
            "1",
            "https://example.com/t/<TOKEN>/chan",
            false,
        )]);
        let solution = [record(
            "a",
            "1",
            "https://me:pw@example.com/t/tok123/chan",
            false,
        )];
        assert!(Plan::between(&kept, &solution).is_empty());
    }

    #[test]
    fn noarch_python_packages_are_relinked_when_python_moves_minor_version() {
        let old = installed(&[
            record("python", "3.11.4", CHAN, false),
            record("six", "1.16", CHAN, true),
            record("zlib", "1.3", CHAN, false),
        ]);
        // A patch release of python: six stays where it is.
        let patch = [
            record("python", "3.11.5", CHAN, false),
            record("six", "1.16", CHAN, true),
            record("zlib", "1.3", CHAN, false),
        ];
        let plan = Plan::between(&old, &patch);
        assert_eq!(names(plan.link), ["python-3.11.5-0.conda"]);
        // A new minor version: six moves to lib/python3.12 (zlib stays).
        let minor = [
            record("python", "3.12.1", CHAN, false),
            record("six", "1.16", CHAN, true),
            record("zlib", "1.3", CHAN, false),
        ];
        let plan = Plan::between(&old, &minor);
        assert_eq!(
            names(plan.unlink.into_iter().map(|r| r.repodata_record)),
            ["python-3.11.4-0.conda", "six-1.16-0.conda"]
        );
        assert_eq!(
            names(plan.link),
            ["python-3.12.1-0.conda", "six-1.16-0.conda"]
        );
    }

    #[test]
    fn requested_specs_and_spec_is_for() {
        let mut r = PrefixRecord::from_repodata_record(record("a", "1", CHAN, false), Vec::new());
        assert_eq!(requested_spec_of(&r), None);
        r.requested_specs = vec![String::from("None")];
        assert_eq!(requested_spec_of(&r), None);
        r.requested_specs = vec![String::from("a >=1")];
        assert_eq!(requested_spec_of(&r).as_deref(), Some("a >=1"));
        assert_eq!(
            spec_package_name("conda-forge::a >=1").as_deref(),
            Some("a")
        );
        assert_eq!(spec_package_name("*[md5=00]"), None);
        assert!(spec_is_for("a >=1", "a"));
        assert!(spec_is_for("conda-forge::a", "a"));
        assert!(!spec_is_for("ab", "a"));
        assert!(!spec_is_for("*[md5=00]", "a"));
    }
}
