//! Checks that keep paths taken from a package (its archive's members,
//! `paths.json`, symlink targets) inside the directory they are relative to.
//! The cache applies them when it extracts an archive, the linker again
//! before it writes anything into a prefix: a path that would escape is
//! refused, never cleaned up after.

use std::path::{Component, Path, PathBuf};

/// `path` without `.` components and doubled or trailing separators, so
/// that two spellings of one path (`share/./x`, `share//x`, `share/x`) are
/// the same text (paths of packages are compared and hashed as text).
pub fn normalized(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

/// Checks that `relative` stays inside the directory it is relative to: not
/// absolute, no `..`, no prefix. Returns the reason when it does not.
pub fn check_relative_path(relative: &Path) -> Result<(), &'static str> {
    if relative.as_os_str().is_empty() {
        return Err("empty path");
    }
    for component in relative.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err("`..` component"),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path"),
        }
    }
    Ok(())
}

/// Checks that a symlink at `link` (relative to the root) pointing at `target`
/// resolves to somewhere inside the root, by counting `..`: a check of the
/// link alone, taking every other component for a plain directory. A chain
/// (a component of `target` that is itself a symlink) is beyond it: the
/// cache and the linker resolve links through each other with
/// [`crate::Resolver`] as well.
pub fn check_link_target(link: &Path, target: &Path) -> Result<(), &'static str> {
    if target.is_absolute() {
        return Err("absolute link target");
    }
    // Depth of the directory holding the link, then walk the target.
    let mut depth: i64 = link.components().count() as i64 - 1;
    for component in target.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return Err("link target outside the package");
                }
            }
            Component::RootDir | Component::Prefix(_) => return Err("absolute link target"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_path_are_one_text() {
        for spelling in [
            "share/x",
            "share/./x",
            "./share//x",
            "share/x/",
            "share/x/.",
        ] {
            assert_eq!(
                normalized(Path::new(spelling)).as_os_str(),
                "share/x",
                "{spelling}"
            );
        }
        assert_eq!(normalized(Path::new("/env/")).as_os_str(), "/env");
    }

    #[test]
    fn relative_paths() {
        assert!(check_relative_path(Path::new("bin/x")).is_ok());
        assert!(check_relative_path(Path::new("./bin/x")).is_ok());
        assert!(check_relative_path(Path::new("../x")).is_err());
        assert!(check_relative_path(Path::new("a/../../x")).is_err());
        assert!(check_relative_path(Path::new("/etc/passwd")).is_err());
    }

    #[test]
    fn link_targets() {
        assert!(check_link_target(Path::new("lib/libz.so"), Path::new("libz.so.1")).is_ok());
        assert!(check_link_target(Path::new("bin/x"), Path::new("../lib/x")).is_ok());
        assert!(check_link_target(Path::new("bin/x"), Path::new("../../etc")).is_err());
        assert!(check_link_target(Path::new("x"), Path::new("/etc/passwd")).is_err());
    }
}
