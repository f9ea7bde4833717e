//! Packages whose symlinks lead out of the environment through a chain
//! (issue 22, items 3 and 4): each link passes a check that counts `..`,
//! together they lead to `/`, and a file shipped (or merely listed) below
//! them would replace or delete a file anywhere the user can write. The
//! victim is a file beside the environment; it must stay as it was, and the
//! command must fail naming the package and the path.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use pkgr_test_support::{Format, LocalChannel, Package};

use crate::common::{assert_fails, assert_ok, complete_entries, World};

/// `d1/d2/…/d20`.
fn deep() -> String {
    (1..=20)
        .map(|i| format!("d{i}"))
        .collect::<Vec<_>>()
        .join("/")
}

/// `../..` `n` times.
fn ups(n: usize) -> String {
    vec![".."; n].join("/")
}

/// `d…/d20/l -> ../..(×20)`: the root of wherever it lands.
fn link_l(package: Package) -> Package {
    package.symlink(&format!("{}/l", deep()), &ups(20))
}

/// `d…/d20/m -> l/../..(×21)`: `/` once `l` is a link (and inside by
/// counting).
fn link_m(package: Package) -> Package {
    package.symlink(&format!("{}/m", deep()), &format!("l/{}", ups(21)))
}

/// The victim beside the environment, and what it holds.
struct Victim {
    path: PathBuf,
    inode: u64,
}

const VICTIM_TEXT: &str = "precious, not pkgr's\n";

impl Victim {
    fn new(world: &World) -> Self {
        let path = world.path().join("victim").join("precious.txt");
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(&path, VICTIM_TEXT).unwrap();
        let inode = fs_err::metadata(&path).unwrap().ino();
        Self { path, inode }
    }

    /// The victim's path below `m`, as a package ships it.
    fn below_m(&self) -> String {
        let absolute = self.path.to_str().unwrap();
        format!("{}/m/{}", deep(), absolute.trim_start_matches('/'))
    }

    #[track_caller]
    fn assert_untouched(&self) {
        let text = fs_err::read_to_string(&self.path)
            .unwrap_or_else(|e| panic!("the victim {} is gone: {e}", self.path.display()));
        assert_eq!(text, VICTIM_TEXT, "the victim was overwritten");
        assert_eq!(
            fs_err::metadata(&self.path).unwrap().ino(),
            self.inode,
            "the victim was replaced"
        );
    }
}

fn channel(world: &World, packages: &[Package]) -> LocalChannel {
    let mut channel = LocalChannel::new(&world.path().join("channel"));
    for package in packages {
        channel.add(package, Format::Conda);
    }
    channel.write_repodata();
    channel
}

fn url(channel: &LocalChannel) -> &str {
    channel.root().to_str().unwrap()
}

/// The two-package attack of item 3: one package ships `l` and `m`, the
/// second a file below `m`.
#[test]
fn a_chain_in_one_package_and_a_file_below_it_in_another() {
    let world = World::new();
    let victim = Victim::new(&world);
    let chain = link_m(link_l(Package::new("chain", "1")));
    let writer = Package::new("writer", "1")
        .depends("chain")
        .file(&victim.below_m(), "pwned\n");
    let channel = channel(&world, &[chain, writer]);
    let prefix = world.env("attacked");
    let out = world.create(&prefix, url(&channel), &["writer"]);
    victim.assert_untouched();
    // Names the package and the link; without the download lines (they
    // finish in either order).
    snapshot_messages!(&world, "chain_and_file_below_it", out);
}

/// The same chain split over three packages, none of which escapes on its
/// own: the linker must resolve each path through the links of every
/// package of the transaction.
#[test]
fn a_chain_split_across_packages_of_one_transaction() {
    let world = World::new();
    let victim = Victim::new(&world);
    let el = link_l(Package::new("el", "1"));
    let em = link_m(Package::new("em", "1").depends("el"));
    let writer = Package::new("writer", "1")
        .depends("em")
        .file(&victim.below_m(), "pwned\n");
    let channel = channel(&world, &[el, em, writer]);
    let prefix = world.env("attacked");
    let out = world.create(&prefix, url(&channel), &["writer"]);
    victim.assert_untouched();
    let err = assert_fails(&out);
    // Not a snapshot: which of the three packages the refusal names
    // depends on which is linked first (they are linked in parallel).
    assert!(
        ["el-1-0", "em-1-0", "writer-1-0"]
            .iter()
            .any(|p| err.contains(p)),
        "names a package: {err}"
    );
    assert!(
        err.contains(&format!("{}/m", deep())),
        "names the path: {err}"
    );
    assert!(err.contains("outside the prefix"), "{err}");
}

/// The chain split across the environment and later installs: `m` is
/// installed first (harmless alone), then `l` (completing the chain on
/// disk), then a package with a file below `m`, which must be refused.
#[test]
fn a_chain_split_across_an_environment_and_a_later_install() {
    let world = World::new();
    let victim = Victim::new(&world);
    let em = link_m(Package::new("em", "1"));
    let el = link_l(Package::new("el", "1"));
    let writer = Package::new("writer", "1").file(&victim.below_m(), "pwned\n");
    let channel = channel(&world, &[em, el, writer]);
    let prefix = world.env("attacked");
    let prefix_arg = prefix.to_str().unwrap();
    assert_ok(&world.create(&prefix, url(&channel), &["em"]));
    assert_ok(&world.run(&["install", "-p", prefix_arg, "-c", url(&channel), "el"]));
    victim.assert_untouched();
    let out = world.run(&["install", "-p", prefix_arg, "-c", url(&channel), "writer"]);
    victim.assert_untouched();
    // Names the package and the path.
    snapshot_failure!(&world, "chain_completed_by_a_later_install", out);
    assert!(!prefix.join("conda-meta/writer-1-0.json").exists());
}

/// Item 4: one package lists the victim below its own chain in paths.json
/// (with the victim's size) without shipping it. The cache's completeness
/// check must not follow the link (it would find the victim complete), the
/// linker would then remove it.
#[test]
fn a_package_listing_a_file_below_its_own_chain_is_refused_by_the_cache() {
    let world = World::new();
    let victim = Victim::new(&world);
    let deleter = link_m(link_l(Package::new("deleter", "1")))
        .listed_only(&victim.below_m(), VICTIM_TEXT.len() as u64);
    let channel = channel(&world, &[deleter]);
    let prefix = world.env("attacked");
    let out = world.create(&prefix, url(&channel), &["deleter"]);
    victim.assert_untouched();
    // Names the package and the path.
    snapshot_failure!(&world, "file_listed_below_own_chain", out);
    assert_eq!(
        complete_entries(&world.cache()),
        0,
        "no entry of it was published"
    );
}

/// `lib64 -> lib` shipped by one package and a file below `lib64` by
/// another: a legitimate in-prefix symlinked directory keeps working.
#[test]
fn a_symlinked_directory_inside_the_prefix_still_works() {
    let world = World::new();
    let libs = Package::new("libs", "1")
        .symlink("lib64", "lib")
        .file("lib/libx.so", "x\n")
        .symlink("lib/libx.so.1", "libx.so")
        .symlink("bin/x-link", "../lib64/libx.so.1");
    let user = Package::new("user", "1")
        .depends("libs")
        .file("lib64/liby.so", "y\n")
        .symlink("lib64/liby.so.1", "../lib64/liby.so");
    let channel = channel(&world, &[libs, user]);
    let prefix = world.env("fine");
    assert_ok(&world.create(&prefix, url(&channel), &["user"]));
    let read = |p: &str| fs_err::read_to_string(prefix.join(p)).unwrap();
    assert!(fs_err::symlink_metadata(prefix.join("lib64"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(read("lib/liby.so"), "y\n");
    assert_eq!(read("lib64/liby.so.1"), "y\n");
    assert_eq!(read("bin/x-link"), "x\n");
    // And it can be removed again.
    let out = world.run(&["remove", "-p", prefix.to_str().unwrap(), "user"]);
    assert_ok(&out);
    assert!(!prefix.join("lib/liby.so").exists());
    assert!(!prefix.join("conda-meta/user-1-0.json").exists());
}
