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
//! budget ([`ExtractLimits`] of the archive's bytes: its file's length, or
//! the bytes of the stream received so far, never a size a channel claims).
//! Extracted files are read-only ([`PUBLISHED_FILE_MASK`]); metadata files
//! pkgr reads whole are refused past their limits
//! ([`pkgr_fs::bounded::metadata_limit`]), and read within them
//! ([`read_info_file`], [`read_entry_file`], [`read_entry_paths_json`]). A `.conda` stream is
//! walked by its zip local headers, in the order its members come; whatever
//! a stream cannot be followed through (a member whose size is not in its
//! local header, a compressed member) is [`ArchiveError::NotStreamable`],
//! and the caller extracts the file instead once it is there.

use std::cell::Cell;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use pkgr_fs::paths::{check_link_target, check_relative_path, normalized};
use rattler_conda_types::package::{IndexJson, PackageFile, PathsJson};

/// The two conda archive formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// `.conda`: a zip of zstd-compressed tarballs.
    Conda,
    /// `.tar.bz2`: one bzip2-compressed tarball.
    TarBz2,
}

impl ArchiveFormat {
    /// Every format, `.conda` first.
    pub const ALL: [Self; 2] = [Self::Conda, Self::TarBz2];

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

/// Permission bits stripped from every extracted directory: setuid, setgid,
/// sticky, and write for group and others. A directory keeps its owner's
/// write bit (see [`PUBLISHED_FILE_MASK`]).
pub const SHARED_CACHE_MASK: u32 = 0o7022;

/// Permission bits stripped from every extracted file: all of
/// [`SHARED_CACHE_MASK`] and the owner's write bit too, so files are 0444, or
/// 0555 when executable. A published file is hardlinked into every
/// environment made from it: a program (a post-link script, an editor, a
/// `pip install` over it) that writes into an environment's file would
/// otherwise change the cache, and with it every other environment, for
/// every user of the cache. Directories stay writable by their owner, who
/// must be able to remove the entry.
pub const PUBLISHED_FILE_MASK: u32 = 0o7222;

/// The mode of a published file of mode `mode` (see [`PUBLISHED_FILE_MASK`]).
pub fn published_file_mode(mode: u32) -> u32 {
    mode & 0o7777 & !PUBLISHED_FILE_MASK
}

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
    /// Bytes of entries let through so far.
    written: u64,
    basis: Basis,
    limits: ExtractLimits,
}

/// The archive bytes the byte budget is a multiple of: only bytes pkgr
/// has, never a size a channel claims (a 100 KB archive that repodata says
/// is a TB big must not unpack to 250 TB).
enum Basis {
    /// The length of the archive's file.
    File(u64),
    /// The bytes of a stream received so far (counted by the reader that
    /// delivers them, [`Counted`]): the budget grows as they arrive.
    Received(Rc<Cell<u64>>),
}

impl Budget {
    /// The budget of an archive whose bytes are `basis`.
    fn new(basis: Basis, limits: ExtractLimits) -> Self {
        Self {
            entries_left: limits.max_entries,
            written: 0,
            basis,
            limits,
        }
    }

    /// Takes one entry that will write `size` bytes (its size after every
    /// PAX and GNU extension: what unpacking it writes) from the budget, or
    /// says which limit it passes.
    fn take(&mut self, archive: &Path, size: u64) -> Result<(), ArchiveError> {
        let too_large = |why| ArchiveError::TooLarge {
            path: archive.to_path_buf(),
            why,
        };
        if self.entries_left == 0 {
            return Err(too_large(format!(
                "more than {} entries",
                self.limits.max_entries
            )));
        }
        let basis = match &self.basis {
            Basis::File(len) => *len,
            Basis::Received(received) => received.get(),
        };
        let allowed = basis
            .saturating_mul(self.limits.max_ratio)
            .saturating_add(self.limits.slack);
        if size > allowed.saturating_sub(self.written) {
            return Err(too_large(format!(
                "more than {}x its size plus {} MiB",
                self.limits.max_ratio,
                self.limits.slack >> 20
            )));
        }
        self.entries_left -= 1;
        self.written += size;
        Ok(())
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
    /// A symlink whose target is empty: it cannot exist on disk, and conda
    /// refuses to extract such an archive too.
    #[error("{} holds `{entry}`, a symlink with an empty target, which cannot exist on disk; nothing of it was used (conda refuses such an archive too)", path.display())]
    EmptySymlink {
        /// The archive.
        path: PathBuf,
        /// The symlink's path in the archive.
        entry: String,
    },
    /// The archive unpacks to more than [`ExtractLimits`] allow.
    #[error("{} unpacks to more than pkgr allows ({why}); it was not extracted (an archive bomb, or a broken package)", path.display())]
    TooLarge {
        /// The archive.
        path: PathBuf,
        /// Which limit.
        why: String,
    },
    /// A metadata file of the archive (`info/index.json`, `info/paths.json`,
    /// …) is bigger than pkgr reads of it (see [`pkgr_fs::bounded`]).
    #[error("{} holds an {} of more than {} MiB, the most pkgr reads of it; it was not used (a broken or hostile package)", path.display(), file.display(), limit >> 20)]
    MetadataTooLarge {
        /// The archive.
        path: PathBuf,
        /// The metadata file, relative to the package.
        file: PathBuf,
        /// Its limit in bytes.
        limit: u64,
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
    let mut budget = Budget::new(Basis::File(archive_size), limits);
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
/// directory), with the checks of [`extract_with_limits`], and then reads
/// `stream` to its end: it must hold exactly `size` bytes (what the index
/// says it has). `archive` names the archive in errors.
///
/// The byte budget is that of [`extract_with_limits`] for the bytes
/// *received so far*, growing as they arrive: `size` is only a channel's
/// claim, and raises nothing (a small bomb claiming to be huge stops
/// where its real bytes' budget ends, not when its stream is found short).
/// An archive whose first entries are bigger than the budget of the bytes
/// before them fails here with [`ArchiveError::TooLarge`], and is extracted
/// from its verified file instead, within its real length's budget.
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
        read: Rc::default(),
    };
    let mut budget = Budget::new(Basis::Received(stream.read.clone()), limits);
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
    if stream.received() != size {
        return Err(unreadable(
            archive,
            format!("its stream held {} bytes, not {size}", stream.received()),
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
        let header_start = stream.received();
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

/// A reader that counts the bytes read through it (shared with the
/// [`Budget`] that grows with them).
struct Counted<R> {
    inner: R,
    read: Rc<Cell<u64>>,
}

impl<R> Counted<R> {
    /// The bytes read so far.
    fn received(&self) -> u64 {
        self.read.get()
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
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
/// A file bigger than its [`pkgr_fs::bounded::metadata_limit`] (or, for a
/// file without one, [`pkgr_fs::bounded::METADATA_LIMIT`]) is
/// [`ArchiveError::MetadataTooLarge`], found from its tar header before any
/// of it is read.
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

/// Reads the metadata file `T` (`info/index.json`, `info/link.json`, …) of
/// the extracted package at `dir`, reading no more of it than its
/// [`pkgr_fs::bounded::metadata_limit`]. Extraction refuses an archive whose
/// metadata is bigger than that, but an entry extracted by an older pkgr, or
/// changed since, must not make a reader take GiBs of memory either. Errors
/// name the file; one that is too big is of kind
/// [`std::io::ErrorKind::FileTooLarge`].
pub fn read_entry_file<T: PackageFile>(dir: &Path) -> std::io::Result<T> {
    let relative = T::package_path();
    let limit =
        pkgr_fs::bounded::metadata_limit(relative).unwrap_or(pkgr_fs::bounded::METADATA_LIMIT);
    let text = pkgr_fs::bounded::read_to_string_at_most(&dir.join(relative), limit)?;
    T::from_str(&text)
}

/// The `info/paths.json` of the extracted package at `dir`, or, for a
/// legacy package without one, the same made from its `info/files`,
/// `info/has_prefix`, `info/no_link` and `info/no_softlink` (as
/// [`PathsJson::from_package_directory_with_deprecated_fallback`] does),
/// each read within its limit ([`read_entry_file`]).
pub fn read_entry_paths_json(dir: &Path) -> std::io::Result<PathsJson> {
    use rattler_conda_types::package::{Files, HasPrefix, NoLink, NoSoftlink, PathType};
    fn optional<T>(read: std::io::Result<T>) -> std::io::Result<Option<T>> {
        match read {
            Ok(value) => Ok(Some(value)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
    if let Some(paths) = optional(read_entry_file::<PathsJson>(dir))? {
        return Ok(paths);
    }
    let files = read_entry_file::<Files>(dir)?;
    let has_prefix = optional(read_entry_file::<HasPrefix>(dir))?;
    let no_link = optional(read_entry_file::<NoLink>(dir))?;
    let no_softlink = optional(read_entry_file::<NoSoftlink>(dir))?;
    PathsJson::from_deprecated(files, has_prefix, no_link, no_softlink, |path| {
        match fs_err::symlink_metadata(dir.join(path)) {
            Ok(meta) if meta.is_symlink() => Ok(PathType::SoftLink),
            Ok(meta) if meta.is_dir() => Ok(PathType::Directory),
            Ok(_) => Ok(PathType::HardLink),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                ListedButMissing(path.to_path_buf()),
            )),
            Err(e) => Err(e),
        }
    })
}

/// A path a legacy package's `info/files` lists that its archive does not
/// hold (the error [`read_entry_paths_json`] gives for it, so that the
/// message names the path rather than where it was looked for).
#[derive(Debug, thiserror::Error)]
#[error("`{}` is listed in its info/files but is not in the archive", .0.display())]
pub struct ListedButMissing(pub PathBuf);

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
        let entry = entry.map_err(|e| unreadable(archive, e))?;
        let path = entry.path().map_err(|e| unreadable(archive, e))?;
        if normalized(&path) == wanted {
            let limit = pkgr_fs::bounded::metadata_limit(wanted)
                .unwrap_or(pkgr_fs::bounded::METADATA_LIMIT);
            // Its size after every extension: what reading it gives.
            let size = entry.size();
            if size > limit {
                return Err(metadata_too_large(archive, wanted, limit));
            }
            let mut text = String::with_capacity(usize::try_from(size).unwrap_or(0));
            entry
                .take(limit)
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
    // a writable file there would let whoever can write it (any local user
    // if group- or world-writable, any program of the owner's otherwise)
    // change every environment, and a setuid bit has no business in a
    // package. Keep the rest (executable bits); directories get their
    // owner's write bit back below.
    tar.set_mask(PUBLISHED_FILE_MASK);
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
        // Checked before anything of the entry is written, by the size
        // unpacking it writes: after every PAX and GNU extension (a PAX
        // `size` record overrides the header's size field, which can say
        // 0; a GNU sparse file's is its real size), not the header's.
        let size = entry.size();
        budget.take(archive, size)?;
        if path.components().any(|c| c.as_os_str() == "info") {
            let relative = normalized(&path);
            match pkgr_fs::bounded::metadata_limit(&relative) {
                // Its readers would refuse it: refused now, for all of them.
                Some(limit) if size > limit => {
                    return Err(metadata_too_large(archive, &relative, limit));
                }
                _ => {}
            }
        }
        let kind = entry.header().entry_type();
        if kind.is_symlink() {
            let target = entry.link_name().map_err(|e| unreadable(archive, e))?;
            match target {
                Some(target) if !target.as_os_str().is_empty() => {
                    check_link_target(&path, &target).map_err(|why| unsafe_path(&target, why))?;
                }
                _ => {
                    // A symlink with an empty target cannot exist on disk:
                    // refused, as conda refuses to extract it (kept as an
                    // empty file, it would leave a broken library link).
                    return Err(ArchiveError::EmptySymlink {
                        path: archive.to_path_buf(),
                        entry: path.display().to_string(),
                    });
                }
            }
        } else if kind.is_hard_link() {
            if let Some(target) = entry.link_name().map_err(|e| unreadable(archive, e))? {
                check_relative_path(&target).map_err(|why| unsafe_path(&target, why))?;
            }
        }
        // What `tar` unpacks as a directory (and so with the files' mask).
        let directory = kind.is_dir()
            || (entry.header().as_ustar().is_none() && entry.path_bytes().ends_with(b"/"));
        let unpacked = entry.unpack_in(dest).map_err(write_error)?;
        if !unpacked {
            return Err(unsafe_path(&path, "outside the destination"));
        }
        if directory {
            // Writable by its owner (who must be able to remove the entry),
            // and by nobody else, as without the files' mask.
            let mode = entry.header().mode().unwrap_or(0o755);
            let mode = (mode & 0o7777 & !SHARED_CACHE_MASK) | 0o700;
            // `unpack_in` made it a directory, not a symlink, below `dest`.
            set_dir_mode(&dest.join(&path), mode).map_err(write_error)?;
        }
    }
    Ok(())
}

/// Takes every write bit off the open `file`, if it has any (one `fstat`,
/// and a `fchmod` only then): for what the cache publishes besides the
/// extracted files (the archive renamed into `pkgs/`, the entry's marker),
/// read-only like them (see [`PUBLISHED_FILE_MASK`]). Nothing off Unix.
pub fn set_read_only(file: &fs_err::File) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata()?.permissions().mode();
        if mode & 0o7222 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(published_file_mode(mode)))?;
        }
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

/// Gives the directory `dir` the permission bits `mode` (nothing off Unix).
fn set_dir_mode(dir: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs_err::set_permissions(dir, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (dir, mode);
        Ok(())
    }
}

fn metadata_too_large(archive: &Path, file: &Path, limit: u64) -> ArchiveError {
    ArchiveError::MetadataTooLarge {
        path: archive.to_path_buf(),
        file: file.to_path_buf(),
        limit,
    }
}

/// Every conda archive below `<datasets>/packages` (not the channels'
/// `repodata*` files), for the unit tests that run on real packages.
#[cfg(test)]
pub(crate) fn dataset_archives(datasets: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![datasets.join("packages")];
    while let Some(dir) = todo.pop() {
        for entry in fs_err::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if ArchiveFormat::from_file_name(&name).is_some() && !name.starts_with("repodata") {
                found.push(path);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests;
