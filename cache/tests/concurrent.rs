//! The cache's public API used from many tokio tasks and many threads at once:
//! one download per entry, no error, every user gets the complete entry.

#![allow(clippy::unwrap_used, missing_docs)]

use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pkgr_cache::{Layout, PackageCache, Reporter};
use pkgr_fetch::Fetcher;
use pkgr_test_support::{Format, LocalChannel, Package};
use rattler_conda_types::package::DistArchiveIdentifier;
use rattler_conda_types::{PackageRecord, RepoDataRecord};
use url::Url;

#[derive(Default)]
struct Counting {
    downloads: AtomicUsize,
    extractions: AtomicUsize,
}

impl Reporter for Counting {
    fn download_started(&self, _what: &str, _size: Option<u64>) {
        self.downloads.fetch_add(1, Ordering::SeqCst);
    }
    fn extracted(&self, _what: &str) {
        self.extractions.fetch_add(1, Ordering::SeqCst);
    }
}

fn record(dir: &std::path::Path) -> RepoDataRecord {
    record_of(
        dir,
        &Package::new("shared", "1.0").file("share/shared.txt", "shared\n"),
    )
}

fn record_of(dir: &std::path::Path, package: &Package) -> RepoDataRecord {
    let mut channel = LocalChannel::new(dir);
    let archive = channel.add(package, Format::Conda);
    channel.write_repodata();
    let repodata: serde_json::Value = serde_json::from_slice(
        &fs_err::read(archive.parent().unwrap().join("repodata.json")).unwrap(),
    )
    .unwrap();
    let file_name = package.file_name(Format::Conda);
    let package_record: PackageRecord =
        serde_json::from_value(repodata["packages.conda"][&file_name].clone()).unwrap();
    RepoDataRecord {
        package_record,
        identifier: DistArchiveIdentifier::from_str(&file_name).unwrap(),
        url: Url::from_file_path(&archive).unwrap(),
        channel: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_share_one_fetch() {
    let tmp = tempfile::tempdir().unwrap();
    let record = Arc::new(record(&tmp.path().join("channel")));
    let cache = PackageCache::open(tmp.path().join("cache"), Fetcher::new().unwrap()).unwrap();
    let counting = Arc::new(Counting::default());
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (cache, record, counting) = (cache.clone(), record.clone(), counting.clone());
        tasks.push(tokio::spawn(async move {
            let entry = cache
                .get_or_fetch(&record, counting.as_ref())
                .await
                .unwrap();
            fs_err::read_to_string(entry.dir().join("share/shared.txt")).unwrap()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), "shared\n");
    }
    assert_eq!(counting.downloads.load(Ordering::SeqCst), 1);
    assert_eq!(counting.extractions.load(Ordering::SeqCst), 1);
}

#[test]
fn many_threads_with_their_own_runtimes_share_one_fetch() {
    let tmp = tempfile::tempdir().unwrap();
    let record = Arc::new(record(&tmp.path().join("channel")));
    let root = tmp.path().join("does-not-exist-yet").join("cache");
    let counting = Arc::new(Counting::default());
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (record, counting, root) = (record.clone(), counting.clone(), root.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    // Every thread opens the (missing) root itself: creation is tolerant.
                    let cache = PackageCache::open(&root, Fetcher::new().unwrap()).unwrap();
                    let entry = cache
                        .get_or_fetch(&record, counting.as_ref())
                        .await
                        .unwrap();
                    assert!(entry.dir().join("share/shared.txt").is_file());
                });
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(counting.downloads.load(Ordering::SeqCst), 1);
}

/// One package fails (a 404 that comes after a delay) while another one is
/// being extracted. `get_all` returns the error only once the extraction has
/// finished under its lock: at that moment nothing is left in the temp
/// directory, the other entry is complete (or absent), and nothing changes in
/// the cache afterwards. (Before, the error returned at once, the temp
/// directory and the lock went with it, and the extraction published a
/// half-empty entry afterwards.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_package_waits_for_the_others_extraction() {
    let tmp = tempfile::tempdir().unwrap();
    let mut big = Package::new("big", "1.0");
    for i in 0..3000 {
        big = big.file(&format!("share/big/f{i}.txt"), format!("{i}\n").repeat(50));
    }
    let channel = tmp.path().join("channel");
    let mut big = record_of(&channel, &big);
    let server = pkgr_test_support::ChannelServer::serve(&channel);
    let file_name = big.identifier.to_string();
    let subdir = &big.package_record.subdir;
    big.url = Url::parse(&format!("{}/{subdir}/{file_name}", server.url())).unwrap();
    let mut missing = record_of(
        &tmp.path().join("other"),
        &Package::new("missing", "1.0").file("x", "x"),
    );
    missing.url = Url::parse(&format!("{}/{subdir}/missing-1.0-0.conda", server.url())).unwrap();
    server.delay(
        &format!("/{subdir}/missing-1.0-0.conda"),
        std::time::Duration::from_millis(150),
    );

    let cache_dir = tmp.path().join("cache");
    let cache = PackageCache::open(&cache_dir, Fetcher::new().unwrap().with_retries(0)).unwrap();
    let counting = Counting::default();
    let err = cache
        .get_all(&[big.clone(), missing], &counting)
        .await
        .unwrap_err();
    assert!(
        format!("{err} {:?}", std::error::Error::source(&err)).contains("missing-1.0-0.conda"),
        "{err}"
    );
    let leftovers: Vec<_> = fs_err::read_dir(cache.tmp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        leftovers.is_empty(),
        "work still ran after the error: {leftovers:?}"
    );
    let entry = Layout::new(&cache_dir).entry_dir(&PackageCache::entry_key(&big));
    let files = |dir: &std::path::Path| walk(dir).len();
    let at_return = files(&entry);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        files(&entry),
        at_return,
        "the entry changed after the return"
    );
    // The download took milliseconds, the 404 came after 150 ms: the
    // extraction of 3,000 files was under way, and finished.
    assert!(at_return > 3000, "the entry is complete: {at_return} files");
    assert_eq!(counting.extractions.load(Ordering::SeqCst), 1);
    drop(cache);
    let cache = PackageCache::open(&cache_dir, Fetcher::new().unwrap()).unwrap();
    let report = cache.verify(false).unwrap();
    assert!(report.corrupt.is_empty(), "{report:?}");
    assert_eq!(report.checked, 1);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs_err::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
            out.push(e.path());
        }
    }
    out
}

/// A reporter that panics when the download of `victim` finishes.
struct PanicsOn {
    victim: String,
}

impl Reporter for PanicsOn {
    fn download_finished(&self, what: &str, _size: u64) {
        assert!(what != self.victim, "injected panic for {what}");
    }
}

/// A panic in one task (here: in the reporter, right after one package's
/// download) unwinds the whole request while another package is being
/// extracted. The extraction owns its lock and the temp directory, so it
/// still finishes and publishes a complete entry, and the temp directory
/// goes only after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panicking_task_does_not_break_another_extraction() {
    let tmp = tempfile::tempdir().unwrap();
    let mut big = Package::new("big", "1.0");
    for i in 0..3000 {
        big = big.file(&format!("share/big/f{i}.txt"), format!("{i}\n").repeat(50));
    }
    let channel = tmp.path().join("channel");
    let mut big = record_of(&channel, &big);
    let mut small = record_of(
        &tmp.path().join("small"),
        &Package::new("small", "1.0").file("x", "x"),
    );
    let subdir = big.package_record.subdir.clone();
    fs_err::copy(
        small.url.to_file_path().unwrap(),
        channel.join(&subdir).join("small-1.0-0.conda"),
    )
    .unwrap();
    let server = pkgr_test_support::ChannelServer::serve(&channel);
    big.url = Url::parse(&format!("{}/{subdir}/{}", server.url(), big.identifier)).unwrap();
    small.url = Url::parse(&format!("{}/{subdir}/small-1.0-0.conda", server.url())).unwrap();
    server.delay(
        &format!("/{subdir}/small-1.0-0.conda"),
        std::time::Duration::from_millis(150),
    );

    let cache_dir = tmp.path().join("cache");
    let cache = PackageCache::open(&cache_dir, Fetcher::new().unwrap()).unwrap();
    let session_dir = cache.tmp_dir();
    let records = vec![big.clone(), small];
    let task = tokio::spawn(async move {
        let reporter = PanicsOn {
            victim: String::from("small-1.0-0.conda"),
        };
        cache.get_all(&records, &reporter).await.map(|_| ())
    });
    let joined = task.await;
    assert!(
        joined.unwrap_err().is_panic(),
        "the injected panic happened"
    );
    // The extraction of `big` goes on under its lock; wait for the lock.
    let lock = Layout::new(&cache_dir).entry_lock(&PackageCache::entry_key(&big));
    let started = std::time::Instant::now();
    while pkgr_fs::FileLock::try_acquire(&lock, pkgr_fs::LockMode::Exclusive)
        .unwrap()
        .is_none()
    {
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let entry = Layout::new(&cache_dir).entry_dir(&PackageCache::entry_key(&big));
    assert!(walk(&entry).len() > 3000, "big was published complete");
    // The last owner of the session (the extraction) removed its temp dir.
    let started = std::time::Instant::now();
    while session_dir.exists() {
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let cache = PackageCache::open(&cache_dir, Fetcher::new().unwrap()).unwrap();
    let report = cache.verify(false).unwrap();
    assert!(report.corrupt.is_empty(), "{report:?}");
}

/// A record whose build climbs out of the cache (`x/../../../outside`) is
/// refused by the cache itself, before its key becomes a lock file, entry
/// or archive path: nothing is made outside (or inside) `pkgs/` for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_is_not_one_file_is_refused_before_it_is_a_path() {
    let tmp = tempfile::tempdir().unwrap();
    let mut record = record(&tmp.path().join("channel"));
    // As a channel's repodata.json can say it.
    let mut json = serde_json::to_value(&record.package_record).unwrap();
    json["build"] = serde_json::json!("0/../../../../outside");
    record.package_record = serde_json::from_value(json).unwrap();
    let cache = PackageCache::open(tmp.path().join("cache"), Fetcher::new().unwrap()).unwrap();
    let err = cache
        .get_or_fetch(&record, &Counting::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, pkgr_cache::CacheError::UnsafeRecord { .. }),
        "{err}"
    );
    let everything = walk(tmp.path());
    assert!(
        everything
            .iter()
            .all(|p| !p.to_string_lossy().contains("outside")),
        "{everything:?}"
    );
}
