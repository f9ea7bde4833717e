//! A cold fill extracts the archive while it downloads; whatever stops the
//! download (a failed sibling, a dropped caller, a bad body) publishes
//! nothing, and the extractor removes its staging directory before it lets
//! the entry's lock go.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use pkgr_cache::{streaming_counts, Layout, PackageCache, Silent};
use pkgr_fetch::Fetcher;
use pkgr_fs::lock::{FileLock, LockMode};
use pkgr_test_support::bench::random_bytes;
use pkgr_test_support::{ChannelServer, Fault, Format, LocalChannel, Package};
use rattler_conda_types::package::DistArchiveIdentifier;
use rattler_conda_types::{PackageRecord, RepoDataRecord};
use url::Url;

/// The record of `package` in `channel` (written, with repodata), with its
/// URL below `base` (a served channel) or the file itself.
fn record(
    channel: &mut LocalChannel,
    package: &Package,
    format: Format,
    base: Option<&str>,
) -> RepoDataRecord {
    let archive = channel.add(package, format);
    record_of(channel, &archive, base)
}

/// The record of the archive `archive` of `channel` (indexed anew).
fn record_of(channel: &LocalChannel, archive: &Path, base: Option<&str>) -> RepoDataRecord {
    channel.write_repodata();
    let repodata: serde_json::Value = serde_json::from_slice(
        &fs_err::read(archive.parent().unwrap().join("repodata.json")).unwrap(),
    )
    .unwrap();
    let file_name = archive.file_name().unwrap().to_str().unwrap();
    let key = if file_name.ends_with(".conda") {
        "packages.conda"
    } else {
        "packages"
    };
    let package_record: PackageRecord =
        serde_json::from_value(repodata[key][file_name].clone()).unwrap();
    let url = match base {
        Some(base) => {
            let subdir = archive.parent().unwrap().file_name().unwrap();
            Url::parse(&format!("{base}/{}/{file_name}", subdir.to_str().unwrap())).unwrap()
        }
        None => Url::from_file_path(archive).unwrap(),
    };
    RepoDataRecord {
        package_record,
        identifier: DistArchiveIdentifier::from_str(file_name).unwrap(),
        url,
        channel: None,
    }
}

/// The URL path of a record served by a [`ChannelServer`].
fn path_of(record: &RepoDataRecord) -> String {
    record.url.path().to_owned()
}

/// A package of `files` incompressible files of 20 KiB (an archive about
/// that many times 20 KiB).
fn big(name: &str, files: usize) -> Package {
    let mut package = Package::new(name, "1.0");
    for f in 0..files {
        package = package.file(
            &format!("lib/{name}/f{f}.bin"),
            random_bytes(f as u64, 20_000),
        );
    }
    package
}

/// Staging directories (`x-*`) in the cache's temp directories.
fn staging_dirs(cache: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for session in fs_err::read_dir(Layout::new(cache).tmp()).unwrap() {
        let session = session.unwrap().path();
        if !session.is_dir() {
            continue;
        }
        for entry in fs_err::read_dir(&session).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("x-")
            {
                found.push(path);
            }
        }
    }
    found
}

/// Held by every test here: [`streaming_counts`] is per process, so no
/// other test's fill may land between a test's two reads of it.
static COUNTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn fetcher() -> Fetcher {
    let settings = pkgr_fetch::NetworkSettings {
        backoff_factor: 0.01,
        ..pkgr_fetch::NetworkSettings::default()
    };
    Fetcher::with_settings(settings).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_fill_extracts_while_the_body_is_still_coming() {
    let _counting = COUNTING.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut channel = LocalChannel::new(&tmp.path().join("channel"));
    let server = ChannelServer::serve(channel.root());
    let package = big("slow", 100);
    let record = record(&mut channel, &package, Format::Conda, Some(server.url()));
    server.fault(
        &path_of(&record),
        Fault::StallMidBody(Duration::from_secs(2)),
    );
    let cache_dir = tmp.path().join("cache");
    let cache = PackageCache::open(&cache_dir, fetcher()).unwrap();
    let before = streaming_counts();
    let fill = tokio::spawn({
        let (cache, record) = (cache.clone(), record.clone());
        async move { cache.get_or_fetch(&record, &Silent).await.map(|_| ()) }
    });
    // While the server holds back the second half, the first half's files
    // are already in the staging directory.
    let started = Instant::now();
    let mut seen = 0;
    while started.elapsed() < Duration::from_millis(1800) && seen == 0 {
        seen = staging_dirs(&cache_dir)
            .iter()
            .map(|dir| {
                fs_err::read_dir(dir.join("lib/slow"))
                    .map(Iterator::count)
                    .unwrap_or(0)
            })
            .max()
            .unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        seen > 0 && seen < 100,
        "files extracted before the body was complete: {seen}"
    );
    fill.await.unwrap().unwrap();
    let after = streaming_counts();
    assert_eq!(after.streamed, before.streamed + 1, "{before:?} {after:?}");
    assert_eq!(after.fell_back, before.fell_back, "{before:?} {after:?}");
    let entry = cache.get_or_fetch(&record, &Silent).await.unwrap();
    assert_eq!(
        fs_err::read(entry.dir().join("lib/slow/f99.bin")).unwrap(),
        random_bytes(99, 20_000)
    );
    assert!(staging_dirs(&cache_dir).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_dropped_mid_stream_cleans_up_before_its_lock_goes() {
    let _counting = COUNTING.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut channel = LocalChannel::new(&tmp.path().join("channel"));
    let server = ChannelServer::serve(channel.root());
    // Many small files, so that removing the staging directory takes a
    // while: long enough to be seen if the lock went first.
    let mut package = Package::new("dropped", "1.0");
    for f in 0..4000 {
        package = package.file(&format!("lib/dropped/f{f}.bin"), random_bytes(f, 100));
    }
    let record = record(&mut channel, &package, Format::Conda, Some(server.url()));
    server.fault(
        &path_of(&record),
        Fault::StallMidBody(Duration::from_secs(5)),
    );
    let cache_dir = tmp.path().join("cache");
    let cache = PackageCache::open(&cache_dir, fetcher()).unwrap();
    let fill = tokio::spawn({
        let (cache, record) = (cache.clone(), record.clone());
        async move { cache.get_or_fetch(&record, &Silent).await.map(|_| ()) }
    });
    // Mid-body: its first files are extracted.
    let started = Instant::now();
    while !staging_dirs(&cache_dir)
        .iter()
        .any(|dir| dir.join("lib/dropped/f1000.bin").is_file())
    {
        assert!(started.elapsed() < Duration::from_secs(4), "never streamed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The caller goes away: the fill's future is dropped.
    fill.abort();
    let lock = Layout::new(&tmp.path().join("cache")).entry_lock(&PackageCache::entry_key(&record));
    // The moment the lock can be had, the staging directory is gone.
    let staging_when_free = std::thread::spawn({
        let cache_dir = cache_dir.clone();
        move || {
            let started = Instant::now();
            loop {
                if let Some(held) = FileLock::try_acquire(&lock, LockMode::Exclusive).unwrap() {
                    return (held, staging_dirs(&cache_dir));
                }
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "the lock never went"
                );
            }
        }
    })
    .join()
    .unwrap();
    let (held, staging) = staging_when_free;
    assert!(
        staging.is_empty(),
        "staging left under a free lock: {staging:?}"
    );
    let dest = Layout::new(&cache_dir).entry_dir(&PackageCache::entry_key(&record));
    assert!(!dest.exists(), "nothing was published");
    drop(held);
    server.clear_faults();
    let entry = cache.get_or_fetch(&record, &Silent).await.unwrap();
    assert!(entry.dir().join("lib/dropped/f3999.bin").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sibling_failing_mid_stream_publishes_no_half_entry() {
    let _counting = COUNTING.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut channel = LocalChannel::new(&tmp.path().join("channel"));
    let server = ChannelServer::serve(channel.root());
    let big = record(
        &mut channel,
        &big("bigone", 60),
        Format::Conda,
        Some(server.url()),
    );
    let small = record(
        &mut channel,
        &Package::new("small", "1.0").file("a", "a"),
        Format::TarBz2,
        Some(server.url()),
    );
    server.fault(&path_of(&big), Fault::StallMidBody(Duration::from_secs(3)));
    server.delay(&path_of(&small), Duration::from_millis(300));
    server.fault(&path_of(&small), Fault::WrongBytes);
    let cache_dir = tmp.path().join("cache");
    let cache = PackageCache::open(&cache_dir, fetcher()).unwrap();
    let started = Instant::now();
    let err = cache
        .get_all(&[big.clone(), small.clone()], &Silent)
        .await
        .unwrap_err();
    let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(text.contains("small-1.0-0.tar.bz2"), "{text}");
    assert!(text.contains("checksum mismatch"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the big one stopped without waiting for its body"
    );
    // get_all returned only after every task was over.
    assert!(staging_dirs(&cache_dir).is_empty());
    for record in [&big, &small] {
        let key = PackageCache::entry_key(record);
        assert!(!Layout::new(&cache_dir).entry_dir(&key).exists(), "{key}");
    }
    let report = cache.verify(false).unwrap();
    assert!(report.corrupt.is_empty(), "{report:?}");
    server.clear_faults();
    server.clear_delays();
    let entries = cache.get_all(&[big, small], &Silent).await.unwrap();
    assert!(entries[0].dir().join("lib/bigone/f59.bin").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_and_unfollowable_streams_fall_back_to_the_file() {
    let _counting = COUNTING.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut channel = LocalChannel::new(&tmp.path().join("channel"));
    let server = ChannelServer::serve(channel.root());
    // A body that breaks off, from a server that ignores ranges: the retry
    // starts over from byte 0.
    let restarted = record(
        &mut channel,
        &big("restarted", 20),
        Format::Conda,
        Some(server.url()),
    );
    server.fault(&path_of(&restarted), Fault::ResetMidBodyTimes(1));
    server.ignore_ranges();
    // A member whose sizes a stream cannot see, a deflated member, and a
    // central directory that names a member otherwise than its local
    // header (extracting the file reads the directory).
    let mut odd = Vec::new();
    for name in ["flagged", "deflated", "renamed"] {
        let package = big(name, 5);
        let archive = package.write(&tmp.path().join("odd"), Format::Conda);
        match name {
            "deflated" => pkgr_test_support::rewrite_conda(&archive, &["info-", "pkg-"], true),
            "flagged" => pkgr_test_support::set_data_descriptor_flag(&archive),
            _ => {
                let mut bytes = fs_err::read(&archive).unwrap();
                let at = bytes
                    .windows(b"pkg-renamed".len())
                    .rposition(|w| w == b"pkg-renamed")
                    .unwrap();
                bytes[at..at + 3].copy_from_slice(b"PKG");
                fs_err::write(&archive, bytes).unwrap();
            }
        }
        let archive = channel.add_archive(&archive);
        let record = record_of(&channel, &archive, Some(server.url()));
        odd.push(record);
    }
    let cache = PackageCache::open(tmp.path().join("cache"), fetcher()).unwrap();
    let before = streaming_counts();
    let mut records = vec![restarted];
    records.extend(odd);
    let entries = cache.get_all(&records, &Silent).await.unwrap();
    let after = streaming_counts();
    assert_eq!(
        after.fell_back,
        before.fell_back + 4,
        "{before:?} {after:?}"
    );
    assert_eq!(after.streamed, before.streamed, "{before:?} {after:?}");
    assert!(entries[0].dir().join("lib/restarted/f19.bin").is_file());
    assert_eq!(
        fs_err::read(entries[2].dir().join("lib/deflated/f4.bin")).unwrap(),
        random_bytes(4, 20_000)
    );
    assert!(entries[1].dir().join("lib/flagged/f4.bin").is_file());
    assert!(entries[3].dir().join("lib/renamed/f4.bin").is_file());
    let report = cache.verify(false).unwrap();
    assert!(report.corrupt.is_empty(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_extracts_but_fails_its_checksum_publishes_nothing() {
    let _counting = COUNTING.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut channel = LocalChannel::new(&tmp.path().join("channel"));
    let server = ChannelServer::serve(channel.root());
    for base in [Some(server.url()), None] {
        let name = if base.is_some() { "served" } else { "local" };
        let mut record = record(&mut channel, &big(name, 20), Format::Conda, base);
        // The archive is whole and unpacks; the index promises other bytes.
        let mut sha = record.package_record.sha256.unwrap();
        sha[0] ^= 0xFF;
        record.package_record.sha256 = Some(sha);
        let cache_dir = tmp.path().join(format!("cache-{name}"));
        let cache = PackageCache::open(&cache_dir, fetcher()).unwrap();
        let err = cache.get_or_fetch(&record, &Silent).await.unwrap_err();
        let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(text.contains("checksum mismatch"), "{text}");
        let dest = Layout::new(&cache_dir).entry_dir(&PackageCache::entry_key(&record));
        assert!(!dest.exists(), "{name}: published unverified bytes");
        assert!(staging_dirs(&cache_dir).is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_to_another_mirror_falls_back_to_the_file() {
    let _counting = COUNTING.lock().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut channel = LocalChannel::new(&tmp.path().join("channel"));
    let (bad, good) = (
        ChannelServer::serve(channel.root()),
        ChannelServer::serve(channel.root()),
    );
    let record = record(
        &mut channel,
        &big("mirrored", 20),
        Format::Conda,
        Some(bad.url()),
    );
    // The first mirror serves other bytes (after half the body has been
    // extracted), the second the right ones: the body starts over.
    bad.fault(&path_of(&record), Fault::WrongBytes);
    let mirrors = vec![(
        Url::parse(bad.url()).unwrap(),
        vec![
            Url::parse(bad.url()).unwrap(),
            Url::parse(good.url()).unwrap(),
        ],
    )];
    let cache =
        PackageCache::open(tmp.path().join("cache"), fetcher().with_mirrors(mirrors)).unwrap();
    let before = streaming_counts();
    let entry = cache.get_or_fetch(&record, &Silent).await.unwrap();
    let after = streaming_counts();
    assert_eq!(bad.count(&path_of(&record)), 1);
    assert_eq!(good.count(&path_of(&record)), 1);
    assert_eq!(
        after.fell_back,
        before.fell_back + 1,
        "{before:?} {after:?}"
    );
    assert_eq!(after.streamed, before.streamed, "{before:?} {after:?}");
    assert_eq!(
        fs_err::read(entry.dir().join("lib/mirrored/f19.bin")).unwrap(),
        random_bytes(19, 20_000)
    );
    let report = cache.verify(false).unwrap();
    assert!(report.corrupt.is_empty(), "{report:?}");
}
