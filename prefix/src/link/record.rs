//! What is left of linking a package once its files are in place:
//! byte-compiling a `noarch: python` package's modules, and the package's
//! conda-meta record.

use std::path::{Path, PathBuf};

use rattler_conda_types::prefix_record::{
    Link, LinkType, PathType as PrefixPathType, PathsEntry as PrefixPathsEntry,
};
use rattler_conda_types::PrefixRecord;

use super::{LinkedFiles, LinkedPackage, PackagePlan};
use crate::python;

impl PackagePlan {
    /// What is left once every package's files are in place (python's
    /// interpreter among them): byte-compiling a noarch python package's
    /// modules (done already when `compiled` is given: the batch that
    /// compiled every package's modules at once); returns the package's
    /// record (not yet written).
    pub fn finish(
        &self,
        prefix: &Path,
        files: LinkedFiles,
        compiled: Option<&python::CompiledBatch>,
    ) -> LinkedPackage {
        let LinkedFiles {
            mut entries,
            all_hardlinked,
        } = files;
        let mut warnings = Vec::new();
        if let Some(python) = &self.python {
            let interpreter = prefix.join(&python.executable);
            let modules = self.modules();
            // `exists` follows symlinks: a dangling bin/pythonX.Y is missing too.
            if interpreter.exists() {
                let outcome = match compiled {
                    Some(batch) => match &batch.error {
                        Some(e) => Err(e.clone()),
                        None => Ok((
                            modules
                                .iter()
                                .filter_map(|m| python.pyc_path(m))
                                .filter(|pyc| batch.pycs.contains(pyc))
                                .collect::<Vec<_>>(),
                            batch.failed,
                        )),
                    },
                    None => python::compile_pyc(prefix, python, &modules)
                        .map(|c| (c.pycs, c.status.filter(|s| !s.success())))
                        .map_err(|e| e.to_string()),
                };
                match outcome {
                    Ok((pycs, failed)) => {
                        if pycs.is_empty() && !modules.is_empty() {
                            if let Some(status) = failed {
                                warnings.push(format!(
                                    "{}: {} byte-compiled none of its .py files ({status}); \
                                     they still work, only their first import is slower",
                                    self.package,
                                    interpreter.display(),
                                ));
                            }
                        }
                        entries.extend(
                            pycs.into_iter()
                                .map(|p| bare_entry(p, PrefixPathType::PycFile)),
                        );
                    }
                    Err(e) => warnings.push(format!(
                        "{}: could not run {} to byte-compile its modules: {e}",
                        self.package,
                        interpreter.display()
                    )),
                }
            } else if let Some(warning) = self.missing_interpreter(&interpreter, &modules) {
                // conda writes the entry points all the same and its compile
                // step only logs at info level; say it instead of staying silent.
                warnings.push(warning);
            }
        }
        let mut record = PrefixRecord::from_repodata_record(self.record.clone(), entries);
        record.extracted_package_dir = Some(self.package_dir.clone());
        record.link = Some(Link {
            source: self.package_dir.clone(),
            // Files with placeholders are always written anew; the link type
            // says how the others got there.
            link_type: Some(if all_hardlinked {
                LinkType::HardLink
            } else {
                LinkType::Copy
            }),
        });
        #[allow(deprecated)]
        {
            record.requested_spec.clone_from(&self.requested_spec);
        }
        record.requested_specs = self.requested_spec.iter().cloned().collect();
        LinkedPackage { record, warnings }
    }
}

impl PackagePlan {
    /// The warning for a noarch python package whose environment lacks the
    /// interpreter (`bin/pythonX.Y`, which conda's entry points and
    /// byte-compiling use), or `None` when the package needs no interpreter.
    fn missing_interpreter(&self, interpreter: &Path, modules: &[PathBuf]) -> Option<String> {
        let commands: Vec<&str> = self
            .entry_points
            .iter()
            .map(|e| e.command.as_str())
            .collect();
        let consequence = match (commands.is_empty(), modules.is_empty()) {
            (true, true) => return None,
            (false, true) => format!("its entry points ({}) will not run", commands.join(", ")),
            (true, false) => String::from("its modules were not byte-compiled"),
            (false, false) => format!(
                "its entry points ({}) will not run and its modules were not byte-compiled",
                commands.join(", ")
            ),
        };
        Some(format!(
            "{}: the environment's python has no interpreter at {}: {consequence} \
             (the python package should provide it)",
            self.package,
            interpreter.display()
        ))
    }
}

pub(super) fn bare_entry(path: PathBuf, path_type: PrefixPathType) -> PrefixPathsEntry {
    PrefixPathsEntry {
        relative_path: path,
        original_path: None,
        path_type,
        no_link: false,
        sha256: None,
        sha256_in_prefix: None,
        size_in_bytes: None,
        file_mode: None,
        prefix_placeholder: None,
    }
}
