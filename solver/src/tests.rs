use std::collections::HashMap;
use std::str::FromStr;

use super::*;

#[test]
fn dependency_names() {
    assert_eq!(dependency_name("numpy >=1.26"), "numpy");
    assert_eq!(dependency_name("python_abi 3.12.* *_cp312"), "python_abi");
    assert_eq!(dependency_name("libgcc-ng>=12"), "libgcc-ng");
    assert_eq!(dependency_name("conda-forge::xz"), "xz");
    assert_eq!(dependency_name("zlib"), "zlib");
}

/// A channel subdir held in memory: what the solver needs of a source and
/// nothing more (no files, no HTTP).
struct InMemory {
    channel: &'static str,
    records: HashMap<String, Vec<RepoDataRecord>>,
}

impl InMemory {
    fn new(channel: &'static str, packages: &[(&str, &str, &[&str])]) -> Self {
        let mut records: HashMap<String, Vec<RepoDataRecord>> = HashMap::new();
        for (name, version, depends) in packages {
            let mut package_record = PackageRecord::new(
                rattler_conda_types::PackageName::new_unchecked(*name),
                rattler_conda_types::Version::from_str(version).unwrap(),
                "0".parse().unwrap(),
            );
            package_record.subdir = String::from("linux-64");
            package_record.depends = depends.iter().map(|d| (*d).to_owned()).collect();
            let file_name = format!("{name}-{version}-0.conda");
            records
                .entry((*name).to_owned())
                .or_default()
                .push(RepoDataRecord {
                    package_record,
                    identifier: file_name.parse().unwrap(),
                    url: Url::parse(&format!(
                        "https://example.com/{channel}/linux-64/{file_name}"
                    ))
                    .unwrap(),
                    channel: Some(format!("https://example.com/{channel}/")),
                });
        }
        Self { channel, records }
    }
}

impl RecordSource for InMemory {
    type Error = std::io::Error;

    fn channel_shown(&self) -> String {
        self.channel.to_owned()
    }

    fn missing_note(&self) -> Option<&str> {
        None
    }

    fn names(&self) -> Box<dyn Iterator<Item = &str> + '_> {
        Box::new(self.records.keys().map(String::as_str))
    }

    fn contains(&self, name: &str) -> bool {
        self.records.contains_key(name)
    }

    fn records(&self, name: &str) -> Result<Vec<RepoDataRecord>, std::io::Error> {
        if name == "unreadable" {
            return Err(std::io::Error::other(
                "the records of unreadable are broken",
            ));
        }
        Ok(self.records.get(name).cloned().unwrap_or_default())
    }
}

fn spec(text: &str) -> MatchSpec {
    MatchSpec::from_str(text, rattler_conda_types::ParseStrictness::Lenient).unwrap()
}

#[test]
fn any_record_source_can_be_solved_against() {
    let source = InMemory::new(
        "chan",
        &[("a", "1", &["b >=2"]), ("b", "1", &[]), ("b", "2", &[])],
    );
    let solved = solve(
        &[source],
        &[spec("a")],
        &[],
        Vec::new(),
        &SolveOptions::default(),
    )
    .unwrap();
    let chosen: Vec<String> = solved.iter().map(|r| r.identifier.to_file_name()).collect();
    assert_eq!(chosen, ["b-2-0.conda", "a-1-0.conda"]);
}

#[test]
fn a_name_in_no_source_is_not_found_with_close_names() {
    let sources = [
        InMemory::new("one", &[("numpy", "1", &[])]),
        InMemory::new("two", &[]),
    ];
    let err = solve(
        &sources,
        &[spec("nupmy")],
        &[],
        Vec::new(),
        &SolveOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "package `nupmy` was not found in channels one, two; did you mean `numpy`?"
    );
}

#[test]
fn a_source_that_cannot_read_its_records_says_why() {
    let source = InMemory::new("chan", &[("unreadable", "1", &[])]);
    let err = solve(
        &[source],
        &[spec("unreadable")],
        &[],
        Vec::new(),
        &SolveOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, SolverError::Records(_)), "{err:?}");
    assert_eq!(err.to_string(), "the records of unreadable are broken");
}
