//! Unit tests of [`super`]: limits, modes, stream against file extraction.
use super::*;

#[test]
fn archive_bombs_stop_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let package = pkgr_test_support::Package::new("bomb", "1")
        .file("a", "1")
        .file("b", "2")
        .file("c", vec![0u8; 4 << 20]);
    for format in [
        pkgr_test_support::Format::TarBz2,
        pkgr_test_support::Format::Conda,
    ] {
        let archive = package.write(dir.path(), format);
        let dest = dir.path().join(format!("out-{format:?}"));
        fs_err::create_dir_all(&dest).unwrap();
        let few = ExtractLimits {
            max_entries: 2,
            ..ExtractLimits::default()
        };
        let err = extract_with_limits(&archive, &dest, few).unwrap_err();
        assert!(err.to_string().contains("more than 2 entries"), "{err}");
        // 4 MiB of zeros compress to a few hundred bytes: far over 250x.
        let tight = ExtractLimits {
            slack: 0,
            ..ExtractLimits::default()
        };
        let err = extract_with_limits(&archive, &dest, tight).unwrap_err();
        assert!(matches!(err, ArchiveError::TooLarge { .. }), "{err}");
        assert!(
            !dest.join("c").exists(),
            "nothing of the big entry was written"
        );
        // Within the default limits it unpacks.
        let ok = dir.path().join(format!("ok-{format:?}"));
        fs_err::create_dir_all(&ok).unwrap();
        extract(&archive, &ok).unwrap();
        assert_eq!(fs_err::metadata(ok.join("c")).unwrap().len(), 4 << 20);
    }
}

#[test]
fn published_files_are_read_only_and_directories_their_owners() {
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("perm-1-0.tar.bz2");
    let file = fs_err::File::create(&archive).unwrap();
    let mut builder = tar::Builder::new(bzip2::write::BzEncoder::new(
        file,
        bzip2::Compression::fast(),
    ));
    for (path, mode, kind) in [
        ("info/index.json", 0o666, tar::EntryType::Regular),
        ("bin/tool", 0o777, tar::EntryType::Regular),
        ("bin/suid", 0o4755, tar::EntryType::Regular),
        ("share/open/", 0o2777, tar::EntryType::Directory),
        // Not even writable by its owner in the archive.
        ("share/locked/", 0o555, tar::EntryType::Directory),
        ("share/locked/file", 0o644, tar::EntryType::Regular),
    ] {
        let mut header = tar::Header::new_gnu();
        let data: &[u8] = if kind.is_dir() { b"" } else { b"{}" };
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_entry_type(kind);
        builder.append_data(&mut header, path, data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap();
    let (file, stream) = both_ways(&archive, ExtractLimits::default());
    let file = file.unwrap();
    assert_eq!(stream.unwrap(), file, "the stream gives the same modes");
    let mode = |p: &str| file[p].split(' ').nth(1).unwrap().to_owned();
    assert_eq!(mode("info/index.json"), "444", "{file:?}");
    assert_eq!(mode("bin/tool"), "555", "executable bits stay");
    assert_eq!(mode("bin/suid"), "555", "no setuid in a shared cache");
    assert_eq!(mode("share/locked/file"), "444");
    assert_eq!(mode("share/open"), "755", "directories stay their owner's");
    assert_eq!(mode("share/locked"), "755", "and the owner can remove them");
}

/// A tarball entry whose ustar header says 0 bytes and whose PAX
/// `size` record says 8 MiB: `tar` writes 8 MiB, so the budget counts 8.
#[test]
fn a_pax_size_counts_for_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let eight = 8 << 20;
    let records = pkgr_test_support::pax_sized_entry("lib/bomb", eight);
    for format in [
        pkgr_test_support::Format::Conda,
        pkgr_test_support::Format::TarBz2,
    ] {
        let at = dir.path().join(format!("{format:?}"));
        let archive = sample_package().write_with_raw_payload(&at, format, &records);
        let size = fs_err::metadata(&archive).unwrap().len();
        // Its budget is under 8 MiB: 2x its size plus 1 MiB.
        let limits = ExtractLimits {
            max_ratio: 2,
            slack: 1 << 20,
            ..ExtractLimits::default()
        };
        assert!(2 * size + (1 << 20) < eight, "{size}");
        let (file, stream) = both_ways(&archive, limits);
        let file = file.unwrap_err();
        assert!(file.contains("unpacks to more than"), "{file}");
        assert_eq!(stream.unwrap_err(), file);
        // Refused before writing it.
        let dest = at.join("out");
        fs_err::create_dir(&dest).unwrap();
        extract_with_limits(&archive, &dest, limits).unwrap_err();
        assert!(!dest.join("lib/bomb").exists());
        // Within a budget that holds it, it is the 8 MiB `tar` says.
        let ok = at.join("ok");
        fs_err::create_dir(&ok).unwrap();
        extract(&archive, &ok).unwrap();
        assert_eq!(fs_err::metadata(ok.join("lib/bomb")).unwrap().len(), eight);
    }
}

/// A stream's budget is that of the bytes received: a small bomb whose
/// index claims it is a TB big stops at its real bytes' budget.
#[test]
fn a_claimed_size_raises_no_budget() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = sample_package().file("zeros", vec![0u8; 4 << 20]);
    let limits = ExtractLimits {
        slack: 1 << 20,
        ..ExtractLimits::default()
    };
    for format in [
        pkgr_test_support::Format::Conda,
        pkgr_test_support::Format::TarBz2,
    ] {
        let archive = bomb.write(&dir.path().join(format!("{format:?}")), format);
        let real = fs_err::metadata(&archive).unwrap().len();
        assert!(250 * real + (1 << 20) < 4 << 20, "{real}");
        let dest = dir.path().join(format!("out-{format:?}"));
        fs_err::create_dir(&dest).unwrap();
        let stream = std::io::BufReader::new(fs_err::File::open(&archive).unwrap());
        let format = ArchiveFormat::from_file_name(&archive.display().to_string()).unwrap();
        let err =
            extract_stream(format, stream, 10u64.pow(12), &archive, &dest, limits).unwrap_err();
        assert!(matches!(err, ArchiveError::TooLarge { .. }), "{err}");
        assert!(!dest.join("zeros").exists(), "nothing of it was written");
    }
}

#[test]
fn metadata_bigger_than_its_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let over = pkgr_fs::bounded::METADATA_LIMIT + 1;
    for format in [
        pkgr_test_support::Format::Conda,
        pkgr_test_support::Format::TarBz2,
    ] {
        let at = dir.path().join(format!("{format:?}"));
        let archive = pkgr_test_support::write_index_json_bomb(&at, "big", format, over);
        let err = read_index_json(&archive).unwrap_err();
        assert!(
            matches!(err, ArchiveError::MetadataTooLarge { .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("info/index.json of more than 16 MiB"),
            "{err}"
        );
        let dest = at.join("out");
        fs_err::create_dir(&dest).unwrap();
        let err = extract(&archive, &dest).unwrap_err();
        assert!(
            matches!(err, ArchiveError::MetadataTooLarge { .. }),
            "{err}"
        );
        assert!(!dest.join("info/index.json").exists());
    }
    // An entry's files are read within the same limits, before any of
    // them is read (the size of the open file says so).
    let entry = dir.path().join("entry");
    fs_err::create_dir_all(entry.join("info")).unwrap();
    let paths = fs_err::File::create(entry.join("info/paths.json")).unwrap();
    paths
        .set_len(pkgr_fs::bounded::FILE_LIST_LIMIT + 1)
        .unwrap();
    let err = read_entry_paths_json(&entry).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::FileTooLarge, "{err}");
    assert!(err.to_string().contains("paths.json"), "{err}");
    let index = fs_err::File::create(entry.join("info/index.json")).unwrap();
    index.set_len(over).unwrap();
    let err = read_entry_file::<IndexJson>(&entry).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::FileTooLarge, "{err}");
    // A legacy entry's file list, too.
    fs_err::remove_file(entry.join("info/paths.json")).unwrap();
    fs_err::write(entry.join("info/files"), "a\n").unwrap();
    fs_err::write(entry.join("a"), "x").unwrap();
    assert_eq!(read_entry_paths_json(&entry).unwrap().paths.len(), 1);
    let has_prefix = fs_err::File::create(entry.join("info/has_prefix")).unwrap();
    has_prefix
        .set_len(pkgr_fs::bounded::FILE_LIST_LIMIT + 1)
        .unwrap();
    let err = read_entry_paths_json(&entry).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::FileTooLarge, "{err}");
}

/// A legacy package whose `info/files` lists a file its archive lacks is
/// refused naming that file (not "info/files is unreadable", and not the
/// temp path where it was looked for).
#[test]
fn a_file_listed_in_info_files_but_missing_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let entry = dir.path().join("entry");
    fs_err::create_dir_all(entry.join("info")).unwrap();
    fs_err::write(entry.join("info/files"), "a\nsite-packages/pkg/PKG-INFO\n").unwrap();
    fs_err::write(entry.join("a"), "x").unwrap();
    let err = read_entry_paths_json(&entry).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    assert_eq!(
        err.to_string(),
        "`site-packages/pkg/PKG-INFO` is listed in its info/files but is not in the archive"
    );
    let problem = crate::validate::check_files(&entry, crate::validate::Depth::Sizes).unwrap_err();
    assert_eq!(
        problem,
        "`site-packages/pkg/PKG-INFO` is listed in its info/files but is not in the archive"
    );
}

/// An extracted tree (see [`tree`]) or the error's text.
type Tree = Result<std::collections::BTreeMap<String, String>, String>;

/// Everything in `dir`: path → file bytes and mode, symlink target, or
/// directory mode.
fn tree(dir: &Path) -> std::collections::BTreeMap<String, String> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(at) = todo.pop() {
        for entry in fs_err::read_dir(&at).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(dir).unwrap().display().to_string();
            let meta = fs_err::symlink_metadata(&path).unwrap();
            let mode = meta.permissions().mode() & 0o7777;
            let what = if meta.file_type().is_symlink() {
                format!("link {}", fs_err::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                todo.push(path.clone());
                format!("dir {mode:o}")
            } else {
                let bytes = fs_err::read(&path).unwrap();
                format!("file {mode:o} {}", pkgr_test_support::sha256_hex(&bytes))
            };
            out.insert(rel, what);
        }
    }
    out
}

/// Extracts `archive` from its file and from a stream of its bytes (in
/// small reads, as a download would deliver them); both results.
fn both_ways(archive: &Path, limits: ExtractLimits) -> (Tree, Tree) {
    let dir = tempfile::tempdir().unwrap();
    let (by_file, by_stream) = (dir.path().join("file"), dir.path().join("stream"));
    fs_err::create_dir(&by_file).unwrap();
    fs_err::create_dir(&by_stream).unwrap();
    let file = extract_with_limits(archive, &by_file, limits)
        .map(|()| tree(&by_file))
        .map_err(|e| e.to_string());
    let name = archive.file_name().unwrap().to_str().unwrap();
    let format = ArchiveFormat::from_file_name(name).unwrap();
    let size = fs_err::metadata(archive).unwrap().len();
    let stream = std::io::BufReader::with_capacity(1000, fs_err::File::open(archive).unwrap());
    let streamed = extract_stream(format, stream, size, archive, &by_stream, limits)
        .map(|members| {
            // What the stream walked is what the directory lists.
            members.match_central_directory(archive).unwrap();
            tree(&by_stream)
        })
        .map_err(|e| e.to_string());
    (file, streamed)
}

#[test]
fn local_headers_that_are_not_the_central_directory_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let archive = sample_package().write(dir.path(), pkgr_test_support::Format::Conda);
    let size = fs_err::metadata(&archive).unwrap().len();
    let stream = || std::io::BufReader::new(fs_err::File::open(&archive).unwrap());
    let out = dir.path().join("out");
    fs_err::create_dir(&out).unwrap();
    let members = extract_stream(
        ArchiveFormat::Conda,
        stream(),
        size,
        &archive,
        &out,
        ExtractLimits::default(),
    )
    .unwrap();
    members.match_central_directory(&archive).unwrap();
    // The directory names the payload otherwise than its local header
    // (same length, so the zip stays readable both ways).
    let mut bytes = fs_err::read(&archive).unwrap();
    let name = b"pkg-sample";
    let last = bytes.windows(name.len()).rposition(|w| w == name).unwrap();
    bytes[last..last + 3].copy_from_slice(b"PKG");
    fs_err::write(&archive, &bytes).unwrap();
    let err = members.match_central_directory(&archive).unwrap_err();
    assert!(
        err.contains("not what its central directory lists"),
        "{err}"
    );
    // A .tar.bz2 has nothing to match.
    assert!(StreamedMembers::default()
        .match_central_directory(Path::new("/nonexistent.tar.bz2"))
        .is_ok());
}

fn sample_package() -> pkgr_test_support::Package {
    pkgr_test_support::Package::new("sample", "1")
        .file("lib/a.txt", "alpha")
        .executable("bin/tool", "#!/bin/sh\necho hi\n")
        .file("share/big.bin", vec![7u8; 300_000])
        .symlink("lib/alias.txt", "a.txt")
        .symlink("lib/dir-link", "../share")
        .directory("empty/dir")
}

#[test]
fn stream_extraction_gives_the_tree_file_extraction_gives() {
    let dir = tempfile::tempdir().unwrap();
    let package = sample_package();
    let conda = package.write(&dir.path().join("a"), pkgr_test_support::Format::Conda);
    let bz2 = package.write(&dir.path().join("b"), pkgr_test_support::Format::TarBz2);
    // The two member orders real .conda files come in.
    let info_first = package.write(&dir.path().join("c"), pkgr_test_support::Format::Conda);
    pkgr_test_support::rewrite_conda(&info_first, &["info-", "pkg-", "metadata.json"], false);
    let info_last = package.write(&dir.path().join("d"), pkgr_test_support::Format::Conda);
    pkgr_test_support::rewrite_conda(&info_last, &["metadata.json", "pkg-", "info-"], false);
    for archive in [conda, bz2, info_first, info_last] {
        let (file, stream) = both_ways(&archive, ExtractLimits::default());
        let file = file.unwrap();
        assert!(file.contains_key("info/index.json"), "{file:?}");
        assert_eq!(file["lib/alias.txt"], "link a.txt");
        assert_eq!(stream.unwrap(), file, "{}", archive.display());
    }
}

#[test]
fn stream_extraction_refuses_what_file_extraction_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let bad = [
        sample_package().raw_entry("../evil", "x"),
        sample_package().raw_entry("/etc/evil", "x"),
        sample_package().raw_symlink("lib/out", "../../../etc/passwd"),
    ];
    for (i, package) in bad.iter().enumerate() {
        for format in [
            pkgr_test_support::Format::Conda,
            pkgr_test_support::Format::TarBz2,
        ] {
            let archive = package.write(&dir.path().join(format!("{i}")), format);
            let (file, stream) = both_ways(&archive, ExtractLimits::default());
            let file = file.unwrap_err();
            assert!(file.contains("points outside the package"), "{file}");
            assert_eq!(stream.unwrap_err(), file);
        }
    }
    // A symlink with an empty target cannot exist on disk: refused (as
    // conda refuses it), naming it, from the file and from the stream.
    let empty_target = sample_package().raw_symlink("lib/libz.so", "");
    for format in [
        pkgr_test_support::Format::Conda,
        pkgr_test_support::Format::TarBz2,
    ] {
        let archive = empty_target.write(&dir.path().join("empty-target"), format);
        let (file, stream) = both_ways(&archive, ExtractLimits::default());
        let file = file.unwrap_err();
        assert!(
            file.ends_with("holds `lib/libz.so`, a symlink with an empty target, which cannot exist on disk; nothing of it was used (conda refuses such an archive too)"),
            "{file}"
        );
        assert_eq!(stream.unwrap_err(), file);
    }
    // A bomb: over the entry limit, and over the size budget.
    let bomb = sample_package().file("zeros", vec![0u8; 4 << 20]);
    for format in [
        pkgr_test_support::Format::Conda,
        pkgr_test_support::Format::TarBz2,
    ] {
        let archive = bomb.write(&dir.path().join("bomb"), format);
        for limits in [
            ExtractLimits {
                max_entries: 2,
                ..ExtractLimits::default()
            },
            ExtractLimits {
                slack: 0,
                ..ExtractLimits::default()
            },
        ] {
            let (file, stream) = both_ways(&archive, limits);
            let file = file.unwrap_err();
            assert!(file.contains("unpacks to more than"), "{file}");
            assert_eq!(stream.unwrap_err(), file);
        }
    }
}

#[test]
fn streams_that_cannot_be_followed_are_not_streamable() {
    let dir = tempfile::tempdir().unwrap();
    let package = sample_package();
    let flagged = package.write(&dir.path().join("a"), pkgr_test_support::Format::Conda);
    pkgr_test_support::set_data_descriptor_flag(&flagged);
    let deflated = package.write(&dir.path().join("b"), pkgr_test_support::Format::Conda);
    pkgr_test_support::rewrite_conda(&deflated, &["info-", "pkg-"], true);
    for archive in [flagged, deflated] {
        let (file, stream) = both_ways(&archive, ExtractLimits::default());
        assert!(file.is_ok(), "the file extracts: {file:?}");
        let stream = stream.unwrap_err();
        assert!(
            stream.contains("cannot be extracted while it downloads"),
            "{stream}"
        );
    }
}

#[test]
fn a_stream_cut_short_or_too_long_fails() {
    let dir = tempfile::tempdir().unwrap();
    let package = sample_package();
    for format in [
        pkgr_test_support::Format::Conda,
        pkgr_test_support::Format::TarBz2,
    ] {
        let archive = package.write(dir.path(), format);
        let bytes = fs_err::read(&archive).unwrap();
        let size = bytes.len() as u64;
        for (stream, claimed) in [
            (&bytes[..bytes.len() - 10], size),
            (&bytes[..], size + 1),
            (&bytes[..bytes.len() / 2], size),
        ] {
            let dest = tempfile::tempdir().unwrap();
            let format = ArchiveFormat::from_file_name(&archive.display().to_string());
            let result = extract_stream(
                format.unwrap(),
                stream,
                claimed,
                &archive,
                dest.path(),
                ExtractLimits::default(),
            );
            assert!(result.is_err(), "{} bytes of {claimed}", stream.len());
        }
    }
}

/// Every real package of `$PKGR_DATASETS/packages` (both member orders
/// are there) that extracts from its file extracts to the same tree
/// from its stream.
#[test]
#[ignore = "needs the conda datasets: set PKGR_DATASETS (.ci/run does)"]
fn real_packages_stream_to_the_same_tree() {
    let datasets = pkgr_test_support::datasets();
    let (mut compared, mut info_last) = (0, 0);
    for path in dataset_archives(&datasets) {
        if ArchiveFormat::from_file_name(&path.to_string_lossy()) == Some(ArchiveFormat::Conda) {
            let bytes = fs_err::read(&path).unwrap();
            let info = bytes.windows(5).position(|w| w == b"info-");
            let pkg = bytes.windows(4).position(|w| w == b"pkg-");
            if let (Some(info), Some(pkg)) = (info, pkg) {
                info_last += usize::from(info > pkg);
            }
        }
        let (file, stream) = both_ways(&path, ExtractLimits::default());
        match file {
            Ok(file) => {
                assert_eq!(stream, Ok(file), "{}", path.display());
                compared += 1;
            }
            Err(e) => eprintln!("{}: not a good archive ({e})", path.display()),
        }
    }
    eprintln!("{compared} real archives compared, {info_last} .conda with info last");
    assert!(compared > 20 && info_last > 0, "{compared} {info_last}");
}

#[test]
fn unknown_format() {
    let err = extract(Path::new("/nonexistent/x.zip"), Path::new("/tmp")).unwrap_err();
    assert!(matches!(err, ArchiveError::UnknownFormat { .. }));
}
