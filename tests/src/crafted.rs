//! Archives no conda tool writes, for testing pkgr's defences: raw tar
//! records (PAX sizes, sparse files) appended to a payload, and metadata
//! bombs.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::package::{append_file, header};
use crate::*;

/// Tar records (no end-of-archive blocks) of a regular 0644 file at `path`
/// whose ustar header says it holds 0 bytes and whose PAX extended header
/// says (`size=`) it holds `size`, followed by `size` zero bytes: a reader
/// that trusts the ustar header's size sees an empty file; `tar`, and every
/// extractor that follows POSIX, writes `size` bytes. For
/// [`Package::write_with_raw_payload`].
pub fn pax_sized_entry(path: &str, size: u64) -> Vec<u8> {
    let record = |text: &str| {
        // "<length> <text>\n", the length counting itself.
        let rest = text.len() + 2;
        let mut length = rest + rest.to_string().len();
        if length.to_string().len() + rest != length {
            length += 1;
        }
        format!("{length} {text}\n")
    };
    let records = record(&format!("size={size}"));
    let mut builder = tar::Builder::new(Vec::new());
    let mut pax = tar::Header::new_ustar();
    pax.set_path(format!("PaxHeaders/{path}")).unwrap();
    pax.set_size(records.len() as u64);
    pax.set_mode(0o644);
    pax.set_entry_type(tar::EntryType::XHeader);
    pax.set_cksum();
    builder.append(&pax, records.as_bytes()).unwrap();
    let mut header = tar::Header::new_ustar();
    header.set_path(path).unwrap();
    header.set_size(0);
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    builder.append(&header, std::io::empty()).unwrap();
    let mut out = builder.into_inner().unwrap();
    out.truncate(out.len() - 1024);
    let padded = size.div_ceil(512) * 512;
    out.resize(out.len() + usize::try_from(padded).unwrap(), 0);
    out
}

/// Tar records (no end-of-archive blocks) of a GNU sparse file at `path` of
/// `size` bytes (a multiple of 512, at least 512) of which only the last
/// 512 are stored, the rest a hole: about 1 KB of archive that unpacks to a
/// file of `size` bytes taking almost no disk (a bomb a test can afford).
/// For [`Package::write_with_raw_payload`].
pub fn sparse_entry(path: &str, size: u64) -> Vec<u8> {
    assert!(size >= 512 && size.is_multiple_of(512), "{size}");
    let octal = |field: &mut [u8], value: u64| {
        let text = format!("{value:0width$o}", width = field.len() - 1);
        assert_eq!(text.len(), field.len() - 1, "{value} does not fit");
        field[..text.len()].copy_from_slice(text.as_bytes());
        field[text.len()] = 0;
    };
    let mut header = tar::Header::new_gnu();
    header.set_path(path).unwrap();
    header.set_size(512);
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    header.set_entry_type(tar::EntryType::GNUSparse);
    {
        let gnu = header.as_gnu_mut().unwrap();
        octal(&mut gnu.realsize, size);
        octal(&mut gnu.sparse[0].offset, size - 512);
        octal(&mut gnu.sparse[0].numbytes, 512);
    }
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.extend_from_slice(&[b'x'; 512]);
    out
}

/// Tar records (no end-of-archive blocks) of a plain 0644 file at `path`
/// holding `bytes`. For [`Package::write_with_raw_payload`].
pub fn file_entry(path: &str, bytes: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    append_file(&mut builder, path, bytes, 0o644);
    let mut out = builder.into_inner().unwrap();
    out.truncate(out.len() - 1024);
    out
}

impl Package {
    /// Writes the package into `dir` as `format`, as [`Package::write`]
    /// does, with `records` (tar records: [`pax_sized_entry`],
    /// [`sparse_entry`], [`file_entry`]) appended to its payload's tarball
    /// and not listed in its paths.json; returns the archive's path.
    pub fn write_with_raw_payload(&self, dir: &Path, format: Format, records: &[u8]) -> PathBuf {
        fs_err::create_dir_all(dir).unwrap();
        let path = dir.join(self.file_name(format));
        let mut payload = self.payload_tar();
        payload.truncate(payload.len() - 1024);
        payload.extend_from_slice(records);
        payload.resize(payload.len() + 1024, 0);
        let bytes = match format {
            Format::TarBz2 => {
                let mut tar = self.info_tar();
                tar.truncate(tar.len() - 1024);
                tar.extend_from_slice(&payload);
                let mut encoder =
                    bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
                encoder.write_all(&tar).unwrap();
                encoder.finish().unwrap()
            }
            Format::Conda => {
                let stem = self.stem();
                let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
                let options = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Stored);
                zip.start_file("metadata.json", options).unwrap();
                zip.write_all(br#"{"conda_pkg_format_version": 2}"#)
                    .unwrap();
                for (member, tar) in [
                    (format!("info-{stem}.tar.zst"), self.info_tar()),
                    (format!("pkg-{stem}.tar.zst"), payload),
                ] {
                    zip.start_file(member, options).unwrap();
                    zip.write_all(&zstd::encode_all(tar.as_slice(), 3).unwrap())
                        .unwrap();
                }
                zip.finish().unwrap().into_inner()
            }
        };
        fs_err::write(&path, bytes).unwrap();
        path
    }
}

/// Writes into `dir` a package `name-1-0` in `format` whose only metadata
/// file is an `info/index.json` of `size` bytes (valid JSON: a real index
/// padded with spaces), compressed as it is made (never whole in memory):
/// a metadata bomb of a few KB, or tens of KB for a GiB. Returns its path.
pub fn write_index_json_bomb(dir: &Path, name: &str, format: Format, size: u64) -> PathBuf {
    let index = serde_json::to_vec(&Package::new(name, "1").index_json()).unwrap();
    let padding = size.checked_sub(index.len() as u64).unwrap();
    let index_json = || {
        // `{` + spaces + the rest of the real index.
        std::io::Read::chain(
            std::io::Read::chain(
                &index[..1],
                std::io::Read::take(std::io::repeat(b' '), padding),
            ),
            &index[1..],
        )
    };
    let tar_into = |out: &mut dyn Write| {
        let mut builder = tar::Builder::new(out);
        let mut h = header(0, 0o644, tar::EntryType::Regular);
        h.set_size(size);
        builder
            .append_data(&mut h, "info/index.json", index_json())
            .unwrap();
        builder.finish().unwrap();
    };
    fs_err::create_dir_all(dir).unwrap();
    let path = dir.join(format!("{name}-1-0{}", format.extension()));
    match format {
        Format::TarBz2 => {
            let file = fs_err::File::create(&path).unwrap();
            let mut encoder = bzip2::write::BzEncoder::new(file, bzip2::Compression::fast());
            tar_into(&mut encoder);
            encoder.finish().unwrap();
        }
        Format::Conda => {
            let mut encoder = zstd::Encoder::new(Vec::new(), 1).unwrap();
            tar_into(&mut encoder);
            let info = encoder.finish().unwrap();
            let mut zip = zip::ZipWriter::new(fs_err::File::create(&path).unwrap());
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored);
            zip.start_file("metadata.json", options).unwrap();
            zip.write_all(br#"{"conda_pkg_format_version": 2}"#)
                .unwrap();
            zip.start_file(format!("info-{name}-1-0.tar.zst"), options)
                .unwrap();
            zip.write_all(&info).unwrap();
            zip.finish().unwrap();
        }
    }
    path
}
