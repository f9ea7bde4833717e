//! Reading conda package archives: `.conda` (a zip holding `info-*.tar.zst` and
//! `pkg-*.tar.zst`) and `.tar.bz2`. Everything is streamed: no archive or member
//! is ever held in memory whole.
//!
//! Every entry's path is checked before anything is written: absolute paths and
//! `..` components are rejected, and so are links whose target would leave the
//! extraction directory. A rejected archive is an error, never a silent skip.
//!
//! An archive is extracted from its file ([`extract`]) or, while it still
//! downloads, from the stream of its bytes ([`extract_stream`]); both unpack
//! every tarball through the same checks ([`unpack_tar`]) within the same
//! budget ([`ExtractLimits`] of the archive's size). A `.conda` stream is
//! walked by its zip local headers, in the order its members come; whatever
//! a stream cannot be followed through (a member whose size is not in its
//! local header, a compressed member) is [`ArchiveError::NotStreamable`],
//! and the caller extracts the file instead once it is there.

use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use pkgr_fs::paths::{check_link_target, check_relative_path, normalized};
use rattler_conda_types::package::{IndexJson, PackageFile};

/// The two conda archive formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// `.conda`: a zip of zstd-compressed tarballs.
    Conda,
    /// `.tar.bz2`: one bzip2-compressed tarball.
    TarBz2,
}

impl ArchiveFormat {
    /// The format named by a file name's extension, if it is a conda archive.
    pub fn from_file_name(name: &str) -> Option<Self> {
        if name.ends_with(".conda") {
            Some(Self::Conda)
        } else if name.ends_with(".tar.bz2") {
            Some(Self::TarBz2)
        } else {
            None
        }
    }

    /// The file name extension, with its leading dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Conda => ".conda",
            Self::TarBz2 => ".tar.bz2",
        }
    }
}

/// Permission bits stripped from every extracted file and directory: setuid,
/// setgid, sticky, and write for group and others.
pub const SHARED_CACHE_MASK: u32 = 0o7022;

/// Guards against archive bombs: extraction stops with
/// [`ArchiveError::TooLarge`] before writing past these limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtractLimits {
    /// Most entries (files, links, directories) an archive may hold.
    pub max_entries: u64,
    /// Most bytes an archive may unpack to, per byte of archive...
    pub max_ratio: u64,
    /// ...plus this many bytes, so small archives of sparse data still fit.
    pub slack: u64,
}

impl Default for ExtractLimits {
    /// 1,000,000 entries; 250 × the archive's size + 1 GiB. The largest
    /// conda-forge packages unpack to a few GiB from archives of hundreds of
    /// MB, well inside this; a 1 KB bomb stops at 1 GiB.
    fn default() -> Self {
        Self {
            max_entries: 1_000_000,
            max_ratio: 250,
            slack: 1 << 30,
        }
    }
}

/// What remains of the limits while an archive unpacks.
struct Budget {
    entries_left: u64,
    bytes_left: u64,
    limits: ExtractLimits,
}

impl Budget {
    /// The budget of an archive of `archive_size` bytes.
    fn new(archive_size: u64, limits: ExtractLimits) -> Self {
        Self {
            entries_left: limits.max_entries,
            bytes_left: archive_size
                .saturating_mul(limits.max_ratio)
                .saturating_add(limits.slack),
            limits,
        }
    }
}

/// What can be wrong with an archive.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The file name is not `*.conda` or `*.tar.bz2`.
    #[error("{} is not a conda package (expected a .conda or .tar.bz2 file)", path.display())]
    UnknownFormat {
        /// The archive.
        path: PathBuf,
    },
    /// The archive could not be read or decompressed.
    #[error("{} is unreadable: {message}", path.display())]
    Unreadable {
        /// The archive.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An entry would be written outside the destination.
    #[error("{} contains `{entry}`, which points outside the package ({why}); nothing of it was used", path.display())]
    UnsafePath {
        /// The archive.
        path: PathBuf,
        /// The offending entry (or link target).
        entry: String,
        /// Absolute path, `..` component, or link target escaping.
        why: &'static str,
    },
    /// The archive unpacks to more than [`ExtractLimits`] allow.
    #[error("{} unpacks to more than pkgr allows ({why}); it was not extracted (an archive bomb, or a broken package)", path.display())]
    TooLarge {
        /// The archive.
        path: PathBuf,
        /// Which limit.
        why: String,
    },
    /// The archive has no `info/index.json`.
    #[error("{} has no info/index.json: not a conda package", path.display())]
    MissingIndex {
        /// The archive.
        path: PathBuf,
    },
    /// The archive lacks something its own metadata lists (or has it with
    /// another size): refused before it is published in the cache.
    #[error("{} is incomplete: {problem} (its info/paths.json says otherwise); nothing of it was used", path.display())]
    Incomplete {
        /// The archive.
        path: PathBuf,
        /// What is missing or wrong, naming the path.
        problem: String,
    },
    /// The archive cannot be extracted while it streams in (its file can
    /// be: the caller extracts that instead, once it is downloaded).
    #[error("{} cannot be extracted while it downloads ({why})", path.display())]
    NotStreamable {
        /// The archive.
        path: PathBuf,
        /// What the stream does that cannot be followed.
        why: String,
    },
    /// Writing the extracted files failed.
    #[error("could not extract {} into {}", path.display(), dest.display())]
    Write {
        /// The archive.
        path: PathBuf,
        /// The destination directory.
        dest: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

fn unreadable(path: &Path, e: impl std::fmt::Display) -> ArchiveError {
    ArchiveError::Unreadable {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Extracts `archive` into `dest` (which should be an empty directory) within
/// the default [`ExtractLimits`].
pub fn extract(archive: &Path, dest: &Path) -> Result<(), ArchiveError> {
    extract_with_limits(archive, dest, ExtractLimits::default())
}

/// Extracts `archive` into `dest`, failing before writing past `limits`.
pub fn extract_with_limits(
    archive: &Path,
    dest: &Path,
    limits: ExtractLimits,
) -> Result<(), ArchiveError> {
    let name = archive
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let Some(format) = ArchiveFormat::from_file_name(name) else {
        return Err(ArchiveError::UnknownFormat {
            path: archive.to_path_buf(),
        });
    };
    let archive_size = fs_err::metadata(archive)
        .map_err(|e| unreadable(archive, e))?
        .len();
    let mut budget = Budget::new(archive_size, limits);
    match format {
        ArchiveFormat::TarBz2 => {
            let file = open(archive)?;
            let decoder = bzip2::read::MultiBzDecoder::new(BufReader::new(file));
            unpack_tar(archive, decoder, dest, &mut budget)
        }
        ArchiveFormat::Conda => {
            let mut zip = open_zip(archive)?;
            let members: Vec<String> = zip
                .file_names()
                .filter(|n| n.ends_with(".tar.zst"))
                .map(ToOwned::to_owned)
                .collect();
            if !members.iter().any(|m| m.starts_with("info-")) {
                return Err(ArchiveError::MissingIndex {
                    path: archive.to_path_buf(),
                });
            }
            for member in members {
                let reader = zip.by_name(&member).map_err(|e| unreadable(archive, e))?;
                let decoder = zstd::Decoder::new(reader).map_err(|e| unreadable(archive, e))?;
                unpack_tar(archive, decoder, dest, &mut budget)?;
            }
            Ok(())
        }
    }
}

/// Extracts an archive of `format` from `stream`, its bytes in order as
/// they arrive (a download still under way), into `dest` (an empty
/// directory), with the checks and the budget of [`extract_with_limits`]
/// for an archive of `size` bytes (what the index says it has), and then
/// reads `stream` to its end: it must hold exactly `size` bytes. `archive`
/// names the archive in errors.
///
/// A `.conda` is walked member by member through its zip local headers, in
/// whatever order the members come: each `*.tar.zst` is unpacked as its
/// bytes arrive, anything else (`metadata.json`) is read past. A member
/// whose sizes are not in its local header (a data descriptor: flag bit 3)
/// or that is compressed (deflate and others) is
/// [`ArchiveError::NotStreamable`]: nothing in the stream says where it
/// ends without decompressing it, and a `.conda` never needs that.
///
/// On any error `dest` holds whatever was written before it: the caller
/// removes it. Success says only that the bytes seen unpack; whether they
/// are the archive's bytes is for the caller's checksum, and whether a
/// `.conda`'s members are the ones its central directory lists (what
/// extracting the file reads, and conda too) is for
/// [`StreamedMembers::match_central_directory`] once the file is there.
pub fn extract_stream(
    format: ArchiveFormat,
    stream: impl Read,
    size: u64,
    archive: &Path,
    dest: &Path,
    limits: ExtractLimits,
) -> Result<StreamedMembers, ArchiveError> {
    let mut stream = Counted {
        inner: stream,
        read: 0,
    };
    let mut budget = Budget::new(size, limits);
    let mut members = StreamedMembers::default();
    match format {
        ArchiveFormat::TarBz2 => {
            let decoder = bzip2::read::MultiBzDecoder::new(&mut stream);
            unpack_tar(archive, decoder, dest, &mut budget)?;
        }
        ArchiveFormat::Conda => {
            members = unpack_conda_stream(archive, &mut stream, dest, &mut budget)?;
        }
    }
    // The rest (a .conda's central directory, a tarball's padding).
    std::io::copy(&mut stream, &mut std::io::sink()).map_err(|e| unreadable(archive, e))?;
    if stream.read != size {
        return Err(unreadable(
            archive,
            format!("its stream held {} bytes, not {size}", stream.read),
        ));
    }
    Ok(members)
}

/// The zip members a `.conda` stream held, as its local headers gave them
/// (none for a `.tar.bz2`): name, where the header starts, compressed size.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StreamedMembers(Vec<(String, u64, u64)>);

impl StreamedMembers {
    /// Checks that the central directory of the zip at `archive` (the file
    /// the stream was written to) lists exactly these members, at the same
    /// places, in the same order and with the same sizes: a zip whose local headers say
    /// otherwise than its directory (a member the directory leaves out, or
    /// names differently) would give one tree streamed and another
    /// extracted from the file. Nothing to check for a `.tar.bz2`.
    pub fn match_central_directory(&self, archive: &Path) -> Result<(), String> {
        if self.0.is_empty() {
            return Ok(());
        }
        let zip = open_zip(archive).map_err(|e| e.to_string())?;
        let mut listed = Vec::with_capacity(zip.len());
        let mut zip = zip;
        for index in 0..zip.len() {
            let member = zip.by_index_raw(index).map_err(|e| e.to_string())?;
            listed.push((
                member.name().to_owned(),
                member.header_start(),
                member.compressed_size(),
            ));
        }
        // In the same order too: both ways unpack the members in their
        // order, and a later member's file replaces an earlier one's.
        let streamed = &self.0;
        if *streamed == listed {
            Ok(())
        } else {
            Err(format!(
                "its zip local headers ({streamed:?}) are not what its central directory lists ({listed:?})"
            ))
        }
    }
}

/// The members of a `.conda` stream, in the order they come (see
/// [`extract_stream`]).
fn unpack_conda_stream<R: Read>(
    archive: &Path,
    stream: &mut Counted<R>,
    dest: &Path,
    budget: &mut Budget,
) -> Result<StreamedMembers, ArchiveError> {
    let not_streamable = |why: String| ArchiveError::NotStreamable {
        path: archive.to_path_buf(),
        why,
    };
    let mut saw_info = false;
    let mut members = StreamedMembers::default();
    loop {
        let header_start = stream.read;
        let member = match zip::read::read_zipfile_from_stream(stream) {
            Ok(Some(member)) => member,
            // The central directory: every member has been seen.
            Ok(None) => break,
            // A data descriptor (sizes after the data), encryption.
            Err(zip::result::ZipError::UnsupportedArchive(why)) => {
                return Err(not_streamable(why.to_owned()));
            }
            Err(e) => return Err(unreadable(archive, e)),
        };
        let name = member.name().to_owned();
        members
            .0
            .push((name.clone(), header_start, member.compressed_size()));
        if member.compression() != zip::CompressionMethod::Stored {
            return Err(not_streamable(format!(
                "its member {name} is {} compressed",
                member.compression()
            )));
        }
        if name.ends_with(".tar.zst") {
            saw_info |= name.starts_with("info-");
            let decoder = zstd::Decoder::new(member).map_err(|e| unreadable(archive, e))?;
            unpack_tar(archive, decoder, dest, budget)?;
        }
        // Dropping a member reads past what is left of it.
    }
    if !saw_info {
        return Err(ArchiveError::MissingIndex {
            path: archive.to_path_buf(),
        });
    }
    Ok(members)
}

/// A reader that counts the bytes read through it.
struct Counted<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// Reads `info/index.json` out of an archive without extracting it.
pub fn read_index_json(archive: &Path) -> Result<IndexJson, ArchiveError> {
    let text = read_info_file(archive, Path::new("info/index.json"))?.ok_or_else(|| {
        ArchiveError::MissingIndex {
            path: archive.to_path_buf(),
        }
    })?;
    IndexJson::from_str(&text).map_err(|e| unreadable(archive, format!("info/index.json: {e}")))
}

/// Reads one text file below `info/` out of an archive, or `None` if absent.
pub fn read_info_file(archive: &Path, wanted: &Path) -> Result<Option<String>, ArchiveError> {
    let name = archive
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    match ArchiveFormat::from_file_name(name) {
        Some(ArchiveFormat::TarBz2) => {
            let file = open(archive)?;
            let decoder = bzip2::read::MultiBzDecoder::new(BufReader::new(file));
            find_in_tar(archive, decoder, wanted)
        }
        Some(ArchiveFormat::Conda) => {
            let mut zip = open_zip(archive)?;
            let Some(member) = zip
                .file_names()
                .find(|n| n.starts_with("info-") && n.ends_with(".tar.zst"))
                .map(ToOwned::to_owned)
            else {
                return Ok(None);
            };
            let reader = zip.by_name(&member).map_err(|e| unreadable(archive, e))?;
            let decoder = zstd::Decoder::new(reader).map_err(|e| unreadable(archive, e))?;
            find_in_tar(archive, decoder, wanted)
        }
        None => Err(ArchiveError::UnknownFormat {
            path: archive.to_path_buf(),
        }),
    }
}

fn open(archive: &Path) -> Result<fs_err::File, ArchiveError> {
    fs_err::File::open(archive).map_err(|e| unreadable(archive, e))
}

fn open_zip(archive: &Path) -> Result<zip::ZipArchive<BufReader<fs_err::File>>, ArchiveError> {
    let file = open(archive)?;
    zip::ZipArchive::new(BufReader::new(file)).map_err(|e| unreadable(archive, e))
}

fn find_in_tar(
    archive: &Path,
    reader: impl Read,
    wanted: &Path,
) -> Result<Option<String>, ArchiveError> {
    let mut tar = tar::Archive::new(reader);
    for entry in tar.entries().map_err(|e| unreadable(archive, e))? {
        let mut entry = entry.map_err(|e| unreadable(archive, e))?;
        let path = entry.path().map_err(|e| unreadable(archive, e))?;
        if normalized(&path) == wanted {
            let mut text = String::new();
            entry
                .read_to_string(&mut text)
                .map_err(|e| unreadable(archive, e))?;
            return Ok(Some(text));
        }
    }
    Ok(None)
}

fn unpack_tar(
    archive: &Path,
    reader: impl Read,
    dest: &Path,
    budget: &mut Budget,
) -> Result<(), ArchiveError> {
    let mut tar = tar::Archive::new(reader);
    tar.set_preserve_permissions(true);
    // The cache is shared and its files are hardlinked into every environment:
    // a group- or world-writable file there would let any local user change
    // every environment, and a setuid bit has no business in a package. Keep
    // the rest (executable bits), as `tar` with the usual umask does.
    tar.set_mask(SHARED_CACHE_MASK);
    tar.set_preserve_mtime(true);
    tar.set_overwrite(true);
    let write_error = |source| ArchiveError::Write {
        path: archive.to_path_buf(),
        dest: dest.to_path_buf(),
        source,
    };
    for entry in tar.entries().map_err(|e| unreadable(archive, e))? {
        let mut entry = entry.map_err(|e| unreadable(archive, e))?;
        let path = entry
            .path()
            .map_err(|e| unreadable(archive, e))?
            .into_owned();
        let unsafe_path = |entry: &Path, why| ArchiveError::UnsafePath {
            path: archive.to_path_buf(),
            entry: entry.display().to_string(),
            why,
        };
        check_relative_path(&path).map_err(|why| unsafe_path(&path, why))?;
        // Checked from the header, before anything of the entry is written.
        let size = entry.header().size().map_err(|e| unreadable(archive, e))?;
        if budget.entries_left == 0 {
            return Err(ArchiveError::TooLarge {
                path: archive.to_path_buf(),
                why: format!("more than {} entries", budget.limits.max_entries),
            });
        }
        if size > budget.bytes_left {
            return Err(ArchiveError::TooLarge {
                path: archive.to_path_buf(),
                why: format!(
                    "more than {}x its size plus {} MiB",
                    budget.limits.max_ratio,
                    budget.limits.slack >> 20
                ),
            });
        }
        budget.entries_left -= 1;
        budget.bytes_left -= size;
        let kind = entry.header().entry_type();
        if kind.is_symlink() {
            let target = entry.link_name().map_err(|e| unreadable(archive, e))?;
            match target {
                Some(target) if !target.as_os_str().is_empty() => {
                    check_link_target(&path, &target).map_err(|why| unsafe_path(&target, why))?;
                }
                _ => {
                    // A symlink with an empty target cannot exist on disk. Some
                    // published archives carry them (conda's own test data, whose
                    // .tar.bz2 twin holds an empty file there): keep the entry as
                    // an empty file so that paths.json still finds it.
                    let dest_path = dest.join(&path);
                    if let Some(parent) = dest_path.parent() {
                        fs_err::create_dir_all(parent).map_err(write_error)?;
                    }
                    fs_err::File::create(&dest_path).map_err(write_error)?;
                    continue;
                }
            }
        } else if kind.is_hard_link() {
            if let Some(target) = entry.link_name().map_err(|e| unreadable(archive, e))? {
                check_relative_path(&target).map_err(|why| unsafe_path(&target, why))?;
            }
        }
        let unpacked = entry.unpack_in(dest).map_err(write_error)?;
        if !unpacked {
            return Err(unsafe_path(&path, "outside the destination"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
            std::fs::create_dir_all(&dest).unwrap();
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
            std::fs::create_dir_all(&ok).unwrap();
            extract(&archive, &ok).unwrap();
            assert_eq!(std::fs::metadata(ok.join("c")).unwrap().len(), 4 << 20);
        }
    }

    #[test]
    fn shared_cache_files_are_not_writable_by_others() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("perm-1-0.tar.bz2");
        let file = std::fs::File::create(&archive).unwrap();
        let mut builder = tar::Builder::new(bzip2::write::BzEncoder::new(
            file,
            bzip2::Compression::fast(),
        ));
        for (path, mode) in [
            ("info/index.json", 0o666),
            ("bin/tool", 0o777),
            ("bin/suid", 0o4755),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(2);
            header.set_mode(mode);
            header.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut header, path, &b"{}"[..]).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap();
        let dest = dir.path().join("out");
        std::fs::create_dir(&dest).unwrap();
        extract(&archive, &dest).unwrap();
        let mode = |p: &str| {
            std::fs::metadata(dest.join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777
        };
        assert_eq!(mode("info/index.json"), 0o644);
        assert_eq!(mode("bin/tool"), 0o755, "executable bits stay");
        assert_eq!(mode("bin/suid"), 0o755, "no setuid in a shared cache");
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
            for entry in std::fs::read_dir(&at).unwrap() {
                let path = entry.unwrap().path();
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                let meta = std::fs::symlink_metadata(&path).unwrap();
                let mode = meta.permissions().mode() & 0o7777;
                let what = if meta.file_type().is_symlink() {
                    format!("link {}", std::fs::read_link(&path).unwrap().display())
                } else if meta.is_dir() {
                    todo.push(path.clone());
                    format!("dir {mode:o}")
                } else {
                    let bytes = std::fs::read(&path).unwrap();
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
        std::fs::create_dir(&by_file).unwrap();
        std::fs::create_dir(&by_stream).unwrap();
        let file = extract_with_limits(archive, &by_file, limits)
            .map(|()| tree(&by_file))
            .map_err(|e| e.to_string());
        let name = archive.file_name().unwrap().to_str().unwrap();
        let format = ArchiveFormat::from_file_name(name).unwrap();
        let size = std::fs::metadata(archive).unwrap().len();
        let stream = std::io::BufReader::with_capacity(1000, std::fs::File::open(archive).unwrap());
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
        let size = std::fs::metadata(&archive).unwrap().len();
        let stream = || std::io::BufReader::new(std::fs::File::open(&archive).unwrap());
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
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
        let mut bytes = std::fs::read(&archive).unwrap();
        let name = b"pkg-sample";
        let last = bytes.windows(name.len()).rposition(|w| w == name).unwrap();
        bytes[last..last + 3].copy_from_slice(b"PKG");
        std::fs::write(&archive, &bytes).unwrap();
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
            .raw_symlink("lib/empty-target", "")
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
            assert!(file["lib/empty-target"].starts_with("file"), "{file:?}");
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
            let bytes = std::fs::read(&archive).unwrap();
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
    fn real_packages_stream_to_the_same_tree() {
        let Some(datasets) = std::env::var_os("PKGR_DATASETS") else {
            eprintln!("skipped: PKGR_DATASETS is not set");
            return;
        };
        let mut todo = vec![Path::new(&datasets).join("packages")];
        let (mut compared, mut info_last) = (0, 0);
        while let Some(dir) = todo.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    todo.push(path);
                    continue;
                }
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if ArchiveFormat::from_file_name(&name).is_none() || name.starts_with("repodata") {
                    continue;
                }
                if name.ends_with(".conda") {
                    let bytes = std::fs::read(&path).unwrap();
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
        }
        eprintln!("{compared} real archives compared, {info_last} .conda with info last");
        assert!(compared > 20 && info_last > 0, "{compared} {info_last}");
    }

    #[test]
    fn unknown_format() {
        let err = extract(Path::new("/nonexistent/x.zip"), Path::new("/tmp")).unwrap_err();
        assert!(matches!(err, ArchiveError::UnknownFormat { .. }));
    }
}
