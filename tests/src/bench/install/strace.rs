//! Syscall counts of a create from `strace -ff` logs.

use std::collections::BTreeMap;
use std::path::Path;

/// Syscall counts from `strace -ff` logs.
#[derive(Debug, Default)]
pub(super) struct Syscalls {
    /// name -> (calls, errors), of pkgr's own threads.
    pub(super) own: BTreeMap<String, (u64, u64)>,
    /// Of the processes pkgr started (python byte-compiling).
    pub(super) children: u64,
    pub(super) children_processes: usize,
    pub(super) threads: usize,
}

impl Syscalls {
    pub(super) fn total(&self) -> u64 {
        self.own.values().map(|(c, _)| c).sum()
    }

    pub(super) fn group(&self, names: &[&str]) -> (u64, u64) {
        names.iter().fold((0, 0), |(c, e), n| {
            let (c2, e2) = self.own.get(*n).copied().unwrap_or((0, 0));
            (c + c2, e + e2)
        })
    }
}

pub(super) fn parse_strace(dir: &Path, pkgr: &Path) -> Syscalls {
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
