//! Reading archives back ([`archive_entries`], independently of pkgr's own
//! extraction) and rewriting a `.conda`'s zip layout.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// One entry of a package archive, as read by [`archive_entries`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveEntry {
    /// A regular file and its bytes.
    File(Vec<u8>),
    /// A symlink and its target.
    Symlink(String),
    /// A directory.
    Directory,
}

/// Rewrites the `.conda` at `archive` in place with its members in the
/// order of `order` (prefixes of member names: `["info-", "pkg-",
/// "metadata.json"]`; members no prefix matches go last), every member
/// `Stored`, or `Deflated` when `deflated` (as no conda tool writes them,
/// but a zip may be).
pub fn rewrite_conda(archive: &Path, order: &[&str], deflated: bool) {
    use std::io::Read;
    let bytes = fs_err::read(archive).unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut members = Vec::new();
    for i in 0..zip.len() {
        let mut member = zip.by_index(i).unwrap();
        let mut data = Vec::new();
        member.read_to_end(&mut data).unwrap();
        members.push((member.name().to_owned(), data));
    }
    let rank = |name: &str| {
        order
            .iter()
            .position(|p| name.starts_with(p))
            .unwrap_or(order.len())
    };
    members.sort_by_key(|(name, _)| rank(name));
    let method = if deflated {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in members {
        out.start_file(name, options).unwrap();
        out.write_all(&data).unwrap();
    }
    fs_err::write(archive, out.finish().unwrap().into_inner()).unwrap();
}

/// Sets general-purpose flag bit 3 ("sizes in a data descriptor") in every
/// local header of the zip at `archive`, leaving the sizes there and the
/// central directory as they are: a reader that follows the local headers
/// (a stream) cannot tell where a member ends; one that reads the central
/// directory reads the archive as before.
pub fn set_data_descriptor_flag(archive: &Path) {
    let mut bytes = fs_err::read(archive).unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.clone())).unwrap();
    let starts: Vec<u64> = (0..zip.len())
        .map(|i| zip.by_index_raw(i).unwrap().header_start())
        .collect();
    drop(zip);
    for start in starts {
        let at = usize::try_from(start).unwrap() + 6;
        assert_eq!(&bytes[at - 6..at - 2], b"PK\x03\x04", "a local header");
        bytes[at] |= 1 << 3;
    }
    fs_err::write(archive, bytes).unwrap();
}

/// Reads every entry of a `.conda` or `.tar.bz2` archive into memory (for
/// checking what pkgr installed against the archive itself, independently of
/// pkgr's own extraction code).
pub fn archive_entries(path: &Path) -> HashMap<String, ArchiveEntry> {
    let mut out = HashMap::new();
    let mut read_tar = |reader: &mut dyn std::io::Read| {
        let mut tar = tar::Archive::new(reader);
        for entry in tar.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches("./")
                .to_owned();
            let kind = entry.header().entry_type();
            let value = if kind.is_symlink() {
                ArchiveEntry::Symlink(
                    entry
                        .link_name()
                        .unwrap()
                        .map(|l| l.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                )
            } else if kind.is_dir() {
                ArchiveEntry::Directory
            } else {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
                ArchiveEntry::File(bytes)
            };
            out.insert(name.trim_end_matches('/').to_owned(), value);
        }
    };
    let name = path.to_string_lossy();
    if name.ends_with(".conda") {
        let mut zip = zip::ZipArchive::new(fs_err::File::open(path).unwrap()).unwrap();
        let members: Vec<String> = zip
            .file_names()
            .filter(|n| n.ends_with(".tar.zst"))
            .map(ToOwned::to_owned)
            .collect();
        for member in members {
            let reader = zip.by_name(&member).unwrap();
            let mut decoder = zstd::Decoder::new(reader).unwrap();
            read_tar(&mut decoder);
        }
    } else {
        let file = fs_err::File::open(path).unwrap();
        let mut decoder = bzip2::read::MultiBzDecoder::new(std::io::BufReader::new(file));
        read_tar(&mut decoder);
    }
    out
}
