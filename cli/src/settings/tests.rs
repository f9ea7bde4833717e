#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn paths_expand_home_and_variables() {
    // HOME is set in any test environment this runs in.
    let home = home().unwrap();
    assert_eq!(expand_path("~/pkgs").unwrap(), home.join("pkgs"));
    assert_eq!(
        expand_path("${HOME}/x/$HOME").unwrap(),
        PathBuf::from(format!("{}/x/{}", home.display(), home.display()))
    );
    assert!(expand_path("$PKGR_SURELY_NOT_SET_42/x").is_err());
    assert!(expand_path("${HOME").is_err());
}

#[test]
fn a_file_sets_the_four_keys_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    fs_err::write(
        &path,
        "channels: [bioconda, conda-forge]\nchannel_alias: http://127.0.0.1:1/\npkgs_dirs: [/tmp/p1, /tmp/p2]\nenvs_dirs: [/tmp/e]\nsolver: libmamba\n",
    )
    .unwrap();
    let mut config = Config::default();
    config.read_file(&path, true).unwrap();
    assert_eq!(config.channels.value, ["bioconda", "conda-forge"]);
    assert_eq!(config.channels.origin, Origin::File(path.clone()));
    assert_eq!(config.channel_alias.value, "http://127.0.0.1:1/");
    assert_eq!(config.cache_dir.value, Some(PathBuf::from("/tmp/p1")));
    assert_eq!(config.envs_dirs.value, [PathBuf::from("/tmp/e")]);
    assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
    assert!(config.warnings[0].contains("`solver`"));
    // conda's own file: its other keys are not pkgr's to warn about.
    let mut condarc = Config::default();
    condarc.read_file(&path, false).unwrap();
    assert!(condarc.warnings.is_empty());
}

#[test]
fn allow_unverified_packages_is_a_yes_or_no_setting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let mut config = Config::default();
    assert!(!config.allow_unverified_packages.value);
    fs_err::write(&path, "allow_unverified_packages: true\n").unwrap();
    config.read_file(&path, true).unwrap();
    assert!(config.allow_unverified_packages.value);
    assert_eq!(
        config.allow_unverified_packages.origin,
        Origin::File(path.clone())
    );
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    fs_err::write(&path, "allow_unverified_packages: maybe\n").unwrap();
    let err = Config::default().read_file(&path, true).unwrap_err();
    assert!(
        err.to_string().contains("`allow_unverified_packages`"),
        "{err}"
    );
    assert_eq!(yes_or_no("1"), Some(true));
    assert_eq!(yes_or_no("False"), Some(false));
    assert_eq!(yes_or_no("2"), None);
}

#[test]
fn the_first_writable_pkgs_dir_is_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("condarc");
    // /proc takes no new files, even from root.
    fs_err::write(&path, "pkgs_dirs: [/proc/pkgr-read-only, /tmp/pkgr-p2]\n").unwrap();
    let mut config = Config::default();
    config.read_file(&path, false).unwrap();
    assert_eq!(config.cache_dir.value, Some(PathBuf::from("/tmp/pkgr-p2")));
}

#[test]
fn a_list_from_a_variable_goes_before_the_files_and_replaces_the_default() {
    let from_file = Setting {
        value: vec![String::from("b"), String::from("c")],
        origin: Origin::File(PathBuf::from("/home/u/.condarc")),
    };
    let list = merged(
        "CONDA_CHANNELS",
        split_list(" a, ,c ,", ',').map(ToOwned::to_owned).collect(),
        from_file,
        false,
    );
    assert_eq!(list.value, ["a", "c", "b"]);
    assert_eq!(
        list.origin.to_string(),
        "$CONDA_CHANNELS + /home/u/.condarc"
    );
    let list = merged(
        "CONDA_CHANNELS",
        vec![String::from("a")],
        Setting::default(vec![String::from(DEFAULT_CHANNEL)]),
        false,
    );
    assert_eq!(list.value, ["a"]);
    assert_eq!(list.origin, Origin::Env("CONDA_CHANNELS"));
    // pkgr's own envs directory stays after the variable's, as conda's
    // own ones do.
    let list = merged("CONDA_ENVS_PATH", vec![1], Setting::default(vec![2]), true);
    assert_eq!(list.value, [1, 2]);
    assert_eq!(list.origin.to_string(), "$CONDA_ENVS_PATH + default");
}

#[test]
fn booleans_as_conda_reads_them() {
    for yes in ["true", "Yes", "on", "y", "1", "2.5"] {
        assert_eq!(conda_bool(yes), Some(true), "{yes}");
    }
    for no in ["false", "NO", "off", "n", "none", "0"] {
        assert_eq!(conda_bool(no), Some(false), "{no}");
    }
    assert_eq!(conda_bool("maybe"), None);
}

#[test]
fn a_wrong_type_is_an_error_naming_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    fs_err::write(&path, "channels: {a: 1}\n").unwrap();
    let err = Config::default().read_file(&path, true).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("config.yaml") && text.contains("`channels`"),
        "{text}"
    );
    fs_err::write(&path, "channels: [a\n").unwrap();
    assert!(Config::default().read_file(&path, true).is_err());
    // A missing file is not an error.
    Config::default()
        .read_file(&dir.path().join("none.yaml"), true)
        .unwrap();
}
